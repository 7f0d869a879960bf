//! A timer queue keyed by deadline: each channel has at most one entry (its earliest
//! deadline), updated only when that deadline changes, so the engine's next wake-up is the
//! first entry and a tick visits only the channels that are due.

use std::collections::{BTreeSet, HashMap};
use std::time::Instant;

use crate::event::ChannelId;

#[derive(Debug, Default)]
pub(crate) struct Timers {
    queue: BTreeSet<(Instant, ChannelId)>,
    current: HashMap<ChannelId, Instant>,
}

impl Timers {
    /// Sets (or with `None` clears) the channel's deadline. O(log n), nothing when unchanged.
    pub(crate) fn set(&mut self, id: ChannelId, deadline: Option<Instant>) {
        let old = match deadline {
            Some(at) => self.current.insert(id, at),
            None => self.current.remove(&id),
        };
        if old == deadline {
            return;
        }
        if let Some(old) = old {
            self.queue.remove(&(old, id));
        }
        if let Some(at) = deadline {
            self.queue.insert((at, id));
        }
    }

    /// The earliest deadline of all channels.
    pub(crate) fn next(&self) -> Option<Instant> {
        self.queue.first().map(|(at, _)| *at)
    }

    /// Removes and returns the channels due at `now`, earliest first.
    pub(crate) fn take_due(&mut self, now: Instant) -> Vec<ChannelId> {
        let mut due = Vec::new();
        while let Some(&(at, id)) = self.queue.first() {
            if at > now {
                break;
            }
            self.queue.pop_first();
            self.current.remove(&id);
            due.push(id);
        }
        due
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.queue.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn keeps_one_entry_per_channel_and_pops_in_order() {
        let t0 = Instant::now();
        let at = |ms| Some(t0 + Duration::from_millis(ms));
        let mut t = Timers::default();
        t.set(1, at(30));
        t.set(2, at(10));
        t.set(3, at(20));
        t.set(1, at(5)); // moved earlier: the old entry goes
        t.set(3, None);
        t.set(4, None);
        assert_eq!(t.len(), 2);
        assert_eq!(t.next(), at(5));
        assert_eq!(t.take_due(t0 + Duration::from_millis(9)), vec![1]);
        assert_eq!(t.next(), at(10));
        t.set(2, at(10)); // unchanged
        assert_eq!(t.take_due(t0 + Duration::from_millis(100)), vec![2]);
        assert_eq!(t.next(), None);
        t.set(2, at(50)); // a channel that was due gets a fresh entry
        assert_eq!(t.next(), at(50));
    }
}
