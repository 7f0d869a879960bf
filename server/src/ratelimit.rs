//! Sliding-window call counts per key, for rate limits that must survive the thing that made
//! the calls (a channel left and joined again keeps its count).

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::time::Duration;

use tokio::time::Instant;

/// Calls per key within a sliding window; keys without a call in the window are forgotten.
pub(crate) struct Windows<K> {
    calls: HashMap<K, VecDeque<Instant>>,
    /// The number of keys after the last sweep; the next sweep runs once it has doubled.
    swept: usize,
}

impl<K> Default for Windows<K> {
    fn default() -> Self {
        Windows {
            calls: HashMap::new(),
            swept: 0,
        }
    }
}

impl<K: Hash + Eq> Windows<K> {
    /// Records a call for `key` at `now` and returns the calls within `window`, this one
    /// included.
    pub(crate) fn record(&mut self, key: K, now: Instant, window: Duration) -> usize {
        let recent = |t: &Instant| now.saturating_duration_since(*t) < window;
        if self.calls.len() > 2 * self.swept.max(16) {
            self.calls
                .retain(|_, calls| calls.back().is_some_and(recent));
            self.swept = self.calls.len();
        }
        let calls = self.calls.entry(key).or_default();
        while calls.front().is_some_and(|t| !recent(t)) {
            calls.pop_front();
        }
        calls.push_back(now);
        calls.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_within_the_window_and_forgets_idle_keys() {
        let window = Duration::from_secs(30);
        let start = Instant::now();
        let mut w = Windows::default();
        for n in 1..=5 {
            assert_eq!(w.record("a", start, window), n);
        }
        assert_eq!(w.record("b", start, window), 1);
        assert_eq!(w.record("a", start + window, window), 1);

        // Keys idle for a window are swept once the map has grown.
        let old: Vec<String> = (0..100).map(|k| format!("old{k}")).collect();
        let new: Vec<String> = (0..200).map(|k| format!("new{k}")).collect();
        let mut w = Windows::default();
        for k in &old {
            w.record(k.as_str(), start, window);
        }
        for k in &new {
            w.record(k.as_str(), start + window, window);
        }
        assert!(w.calls.keys().all(|k| k.starts_with("new")));
    }
}
