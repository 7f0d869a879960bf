//! Topic → channels: the index every inbound frame is routed by, so per-frame work does not
//! grow with the number of joined channels.

use std::sync::Arc;

use rustc_hash::FxHashMap;

use crate::event::ChannelId;

/// Usually one channel per topic; two while an old channel of the topic is still leaving and
/// a new one joins (in the order they were added).
#[derive(Debug, Default)]
pub(crate) struct Router {
    by_topic: FxHashMap<Arc<str>, Vec<ChannelId>>,
}

impl Router {
    pub(crate) fn insert(&mut self, topic: &Arc<str>, id: ChannelId) {
        self.by_topic.entry(topic.clone()).or_default().push(id);
    }

    pub(crate) fn remove(&mut self, topic: &str, id: ChannelId) {
        if let Some(ids) = self.by_topic.get_mut(topic) {
            ids.retain(|c| *c != id);
            if ids.is_empty() {
                self.by_topic.remove(topic);
            }
        }
    }

    /// The channels on `topic` (none for topics nobody joined, e.g. `phoenix`).
    pub(crate) fn get(&self, topic: &str) -> &[ChannelId] {
        self.by_topic.get(topic).map(Vec::as_slice).unwrap_or(&[])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_by_topic_in_insertion_order() {
        let mut r = Router::default();
        let (a, b): (Arc<str>, Arc<str>) = ("realtime:a".into(), "realtime:b".into());
        r.insert(&a, 1);
        r.insert(&b, 2);
        r.insert(&a, 3);
        assert_eq!(r.get("realtime:a"), &[1, 3]);
        assert_eq!(r.get("realtime:b"), &[2]);
        assert!(r.get("phoenix").is_empty());
        r.remove("realtime:a", 1);
        assert_eq!(r.get("realtime:a"), &[3]);
        r.remove("realtime:a", 3);
        r.remove("realtime:zzz", 3);
        assert!(r.get("realtime:a").is_empty());
        assert_eq!(r.by_topic.len(), 1);
    }
}
