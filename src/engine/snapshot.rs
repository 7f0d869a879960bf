//! What the engine publishes for handles to read: each channel's state, presence and last
//! subscribe status, and the client's counters. The engine is the only writer of all of it;
//! handles only read (and derive, see `RealtimeChannel::state`).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde_json::Value;
use tokio::sync::Notify;

use crate::error::{Error, ErrorKind};
use crate::event::{ChannelState, SubscribeStatus};

/// The CLOSED reason given to channels when their client shuts down.
pub(crate) const SHUTDOWN_REASON: &str = "client shut down";
/// The CLOSED reason after `unsubscribe()`.
pub(crate) const LEFT_REASON: &str = "left";
/// The CLOSED reason after `remove_channel()`.
pub(crate) const REMOVED_REASON: &str = "removed";

/// key → metas, as `presence_state()` returns it.
pub(crate) type PresenceList = Vec<(String, Vec<Value>)>;

/// The last subscribe status of a channel, for `subscribed()`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct StatusSnap {
    pub status: SubscribeStatus,
    pub reason: Option<String>,
    pub kind: Option<ErrorKind>,
    /// The typed error behind the status, when there is one (a failed connect, shutdown), so
    /// that a waiter fails with the cause itself.
    pub cause: Option<Error>,
}

/// What the engine last published about a channel.
pub(crate) struct Published {
    /// The engine took the channel's subscribe command: `state` is its answer from then on.
    accepted: bool,
    state: ChannelState,
    presence: PresenceList,
    /// The last subscribe status, for `subscribed()`.
    pub status: Option<StatusSnap>,
    /// The server's answer to `replication_ready`: ready, or its error message.
    pub replication: Option<Result<(), String>>,
}

/// One channel as the engine last published it.
///
/// Waiters are woken through one `Notify` rather than a `watch` channel per value: a
/// snapshot exists per joined channel, and two `watch` channels were about 780 bytes of it.
pub(crate) struct ChannelSnapshot {
    published: Mutex<Published>,
    changed: Notify,
}

impl Default for ChannelSnapshot {
    fn default() -> Self {
        ChannelSnapshot {
            published: Mutex::new(Published {
                accepted: false,
                state: ChannelState::Closed,
                presence: Vec::new(),
                status: None,
                replication: None,
            }),
            changed: Notify::new(),
        }
    }
}

impl ChannelSnapshot {
    /// The published state, or `None` before the engine took the subscribe command.
    pub(crate) fn state(&self) -> Option<ChannelState> {
        let p = self.published.lock();
        p.accepted.then_some(p.state)
    }

    pub(crate) fn presence(&self) -> PresenceList {
        self.published.lock().presence.clone()
    }

    #[cfg(test)]
    pub(crate) fn status(&self) -> Option<StatusSnap> {
        self.published.lock().status.clone()
    }

    #[cfg(test)]
    pub(crate) fn replication(&self) -> Option<Result<(), String>> {
        self.published.lock().replication.clone()
    }

    /// Resolves with the first `Some` that `check` returns, called now and again after each
    /// status or replication answer the engine publishes. `check` runs under the snapshot's
    /// lock: it must only read.
    pub(crate) async fn wait_for<T>(&self, mut check: impl FnMut(&Published) -> Option<T>) -> T {
        loop {
            // Registered before the check, so a change between the check and the wait
            // still wakes us.
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if let Some(t) = check(&self.published.lock()) {
                return t;
            }
            changed.await;
        }
    }

    // The writers below are called by the engine only.

    pub(crate) fn set_replication(&self, ready: Result<(), String>) {
        self.published.lock().replication = Some(ready);
        self.changed.notify_waiters();
    }

    pub(crate) fn set_state(&self, state: ChannelState) {
        let mut p = self.published.lock();
        p.accepted = true;
        p.state = state;
    }

    pub(crate) fn set_presence(&self, presence: PresenceList) {
        self.published.lock().presence = presence;
    }

    pub(crate) fn set_status(&self, snap: StatusSnap) {
        self.published.lock().status = Some(snap);
        self.changed.notify_waiters();
    }
}

/// Heartbeat round trips kept for the percentiles.
pub(crate) const RTT_SAMPLES: usize = 128;

/// The client's counters, written by the engine and its driver, read by `metrics()`.
#[derive(Default)]
pub(crate) struct Counters {
    pub connects: AtomicU64,
    pub reconnects: AtomicU64,
    pub messages_in: AtomicU64,
    pub messages_out: AtomicU64,
    pub heartbeat_rtt_us: AtomicU64,
    /// The last [`RTT_SAMPLES`] heartbeat round trips.
    pub rtts: Mutex<VecDeque<Duration>>,
    /// Time spent wanting a connection without one: closed outages plus the open one.
    pub outage: Mutex<(Duration, Option<Instant>)>,
    /// Last join latency per channel topic (first join attempt to SUBSCRIBED).
    pub join_latency: Mutex<HashMap<String, Duration>>,
    /// Why the last connect attempt failed, until a socket opens: what a caller that waited
    /// for the connection in vain is told.
    pub connect_error: Mutex<Option<Error>>,
}

impl Counters {
    pub(crate) fn record_rtt(&self, rtt: Duration) {
        self.heartbeat_rtt_us
            .store(rtt.as_micros().max(1) as u64, Ordering::Relaxed);
        let mut q = self.rtts.lock();
        if q.len() == RTT_SAMPLES {
            q.pop_front();
        }
        q.push_back(rtt);
    }

    /// The socket is wanted but not open (`true`), or open or not wanted (`false`).
    pub(crate) fn set_outage(&self, down: bool, now: Instant) {
        let mut o = self.outage.lock();
        match (down, o.1) {
            (true, None) => o.1 = Some(now),
            (false, Some(since)) => {
                o.0 += now.saturating_duration_since(since);
                o.1 = None;
            }
            _ => {}
        }
    }

    pub(crate) fn record_join_latency(&self, topic: &str, d: Duration) {
        self.join_latency.lock().insert(topic.to_owned(), d);
    }

    pub(crate) fn forget_channel(&self, topic: &str) {
        self.join_latency.lock().remove(topic);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_keep_the_last_rtts_and_sum_outages() {
        let c = Counters::default();
        for i in 0..200u64 {
            c.record_rtt(Duration::from_micros(i + 1));
        }
        assert_eq!(c.rtts.lock().len(), RTT_SAMPLES);
        assert_eq!(c.rtts.lock()[0], Duration::from_micros(73));
        let t0 = Instant::now();
        c.set_outage(true, t0);
        c.set_outage(true, t0 + Duration::from_secs(1)); // still the same outage
        c.set_outage(false, t0 + Duration::from_secs(2));
        assert_eq!(c.outage.lock().0, Duration::from_secs(2));
        c.set_outage(false, t0 + Duration::from_secs(3));
        assert_eq!(c.outage.lock().0, Duration::from_secs(2));
        assert!(c.outage.lock().1.is_none());
    }

    #[test]
    fn a_channel_is_unknown_until_the_engine_takes_it() {
        let s = ChannelSnapshot::default();
        assert_eq!(s.state(), None);
        s.set_state(ChannelState::Joining);
        assert_eq!(s.state(), Some(ChannelState::Joining));
    }
}
