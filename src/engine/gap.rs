//! Gap fill for one channel ([`ChannelOptions::auto_replay`](crate::ChannelOptions)): after a
//! rejoin, ask the server to replay the stored broadcasts since the last one delivered, drop
//! the ones already delivered (by message id), and say in `Resumed` whether the replay covered
//! the whole gap.
//!
//! The server answers a join with replay by sending the newest `limit` stored messages since
//! `since`, oldest first, right after the join reply and before any live message. So the
//! replay is over at the first live broadcast, once `limit` messages came, or after a short
//! settle time (a quiet channel sends nothing else). It covered the gap when fewer than
//! `limit` came (nothing was left out), or when the oldest one was already delivered (every
//! message after it is in the replay).

use std::collections::{HashSet, VecDeque};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::protocol::{BroadcastMeta, ReplayConfig};

/// Upstream's cap on `limit`: a gap replay asks for all it may.
pub(crate) const REPLAY_LIMIT: i64 = 25;
/// Ids of delivered messages kept for de-duplication (ten full replays).
pub(crate) const SEEN_IDS: usize = 256;
/// `since` lies this far before the last delivery: the server stamps messages with its own
/// clock, and a message stored just before the last one delivered may not have arrived.
pub(crate) const CLOCK_MARGIN: Duration = Duration::from_secs(5);
/// How long after the join reply a replay may still be arriving when nothing else marks its
/// end (the server sends it in one go, right behind the reply).
pub(crate) const SETTLE: Duration = Duration::from_millis(500);

/// Unix milliseconds for the engine's instants: both clocks read once, by the handle (the
/// engine reads no clock).
#[derive(Debug, Clone, Copy)]
pub(crate) struct WallClock {
    at: Instant,
    unix_ms: i64,
}

impl WallClock {
    pub(crate) fn now() -> WallClock {
        let unix_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        WallClock::at(Instant::now(), unix_ms)
    }

    pub(crate) fn at(at: Instant, unix_ms: i64) -> WallClock {
        WallClock { at, unix_ms }
    }

    pub(crate) fn unix_ms(&self, t: Instant) -> i64 {
        let after = t.saturating_duration_since(self.at).as_millis() as i64;
        let before = self.at.saturating_duration_since(t).as_millis() as i64;
        self.unix_ms + after - before
    }
}

/// What to do with a received broadcast.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admit {
    Deliver,
    /// Already delivered (its id was seen): drop it.
    Duplicate,
}

/// [`GapFill::admit`]'s answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Verdict {
    pub admit: Admit,
    /// `Resumed { gap, filled }` to report before the message.
    pub resumed_before: Option<(Duration, bool)>,
    /// ... or after it.
    pub resumed_after: Option<(Duration, bool)>,
}

/// A rejoin's replay that is still arriving; `Resumed` waits for its end.
#[derive(Debug)]
struct Pending {
    /// The outage, for `Resumed { gap }`.
    gap: Duration,
    /// Replayed messages received (duplicates included).
    count: i64,
    /// Whether the oldest replayed message had been delivered before.
    first_seen: Option<bool>,
    deadline: Instant,
}

/// The gap-fill state of one channel.
#[derive(Debug)]
pub(crate) struct GapFill {
    clock: WallClock,
    seen: HashSet<String>,
    order: VecDeque<String>,
    /// When the last stored message was delivered (or the channel first subscribed).
    mark: Option<Instant>,
    pending: Option<Pending>,
}

impl GapFill {
    pub(crate) fn new(clock: WallClock) -> GapFill {
        GapFill {
            clock,
            seen: HashSet::new(),
            order: VecDeque::new(),
            mark: None,
            pending: None,
        }
    }

    /// The replay a rejoin asks for; `None` before the channel was first subscribed.
    pub(crate) fn rejoin_replay(&self) -> Option<ReplayConfig> {
        let mark = self.mark?;
        let since = self.clock.unix_ms(mark) - CLOCK_MARGIN.as_millis() as i64;
        Some(ReplayConfig {
            since: Some(since),
            limit: Some(REPLAY_LIMIT),
            ..ReplayConfig::default()
        })
    }

    /// SUBSCRIBED: the replay window starts here if nothing was delivered yet.
    pub(crate) fn on_subscribed(&mut self, now: Instant) {
        self.mark.get_or_insert(now);
    }

    /// A rejoin that asked for a replay was accepted: `Resumed` waits for the replay's end.
    pub(crate) fn start(&mut self, gap: Duration, now: Instant) {
        self.pending = Some(Pending {
            gap,
            count: 0,
            first_seen: None,
            deadline: now + SETTLE,
        });
    }

    /// The join was lost again before the replay ended: the outage it reported goes on, so
    /// it returns how long ago it began.
    pub(crate) fn cancel(&mut self) -> Option<Duration> {
        self.pending.take().map(|p| p.gap)
    }

    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.pending.as_ref().map(|p| p.deadline)
    }

    /// A broadcast arrived with `meta`: deliver it or drop it as a duplicate. When it ends a
    /// pending replay, `Resumed` is due (`gap`, `filled`): before it when it is live, after
    /// it when it is the last replayed message the server could send.
    pub(crate) fn admit(&mut self, meta: &BroadcastMeta, now: Instant) -> Verdict {
        let admit = match &meta.id {
            Some(id) if self.seen.contains(id) => Admit::Duplicate,
            Some(id) => {
                self.remember(id.clone());
                self.mark = Some(now);
                Admit::Deliver
            }
            None => Admit::Deliver,
        };
        let mut verdict = Verdict {
            admit,
            resumed_before: None,
            resumed_after: None,
        };
        if let Some(p) = &mut self.pending {
            if meta.replayed {
                p.count += 1;
                p.first_seen.get_or_insert(admit == Admit::Duplicate);
                if p.count >= REPLAY_LIMIT {
                    verdict.resumed_after = self.end();
                }
            } else {
                // A live message: the replay is behind it.
                verdict.resumed_before = self.end();
            }
        }
        verdict
    }

    /// The settle time passed: the replay is over.
    pub(crate) fn on_timer(&mut self, now: Instant) -> Option<(Duration, bool)> {
        match &self.pending {
            Some(p) if p.deadline <= now => self.end(),
            _ => None,
        }
    }

    fn end(&mut self) -> Option<(Duration, bool)> {
        let p = self.pending.take()?;
        let filled = p.count < REPLAY_LIMIT || p.first_seen == Some(true);
        Some((p.gap, filled))
    }

    fn remember(&mut self, id: String) {
        if self.order.len() >= SEEN_IDS {
            if let Some(old) = self.order.pop_front() {
                self.seen.remove(&old);
            }
        }
        self.seen.insert(id.clone());
        self.order.push_back(id);
    }
}
