//! Helpers for the fault and soak tests: a timestamped event recorder, checkers for the
//! app-visible status grammar and for duplicate or reordered events, and a PostgreSQL helper.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use supa_realtime::{ConnectionState, ErrorKind, Event, Payload, SubscribeStatus};

type Timed = Vec<(Instant, Event)>;

/// Records every event with the instant it reached the callback.
#[derive(Clone, Default)]
pub struct Timeline {
    inner: Arc<(Mutex<Timed>, Condvar)>,
}

impl Timeline {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn sink(&self) -> impl Fn(&Event) + Send + Sync + 'static {
        let t = self.clone();
        move |e: &Event| t.push(e.clone())
    }

    pub fn push(&self, e: Event) {
        self.inner.0.lock().push((Instant::now(), e));
        self.inner.1.notify_all();
    }

    pub fn len(&self) -> usize {
        self.inner.0.lock().len()
    }

    pub fn events(&self) -> Vec<Event> {
        self.inner.0.lock().iter().map(|(_, e)| e.clone()).collect()
    }

    pub fn timed(&self) -> Vec<(Instant, Event)> {
        self.inner.0.lock().clone()
    }

    /// Waits (at most `within`) for an event at index `from` or later; returns its index and
    /// arrival time. Panics with the recorded events on timeout.
    pub fn wait_from(
        &self,
        from: usize,
        within: Duration,
        what: &str,
        pred: impl Fn(&Event) -> bool,
    ) -> (usize, Instant) {
        self.try_wait_from(from, within, &pred).unwrap_or_else(|| {
            let events = self.inner.0.lock();
            let tail: Vec<_> = events.iter().skip(from).map(|(_, e)| short(e)).collect();
            panic!("timed out ({within:?}) waiting for {what}; events since {from}: {tail:#?}")
        })
    }

    pub fn try_wait_from(
        &self,
        from: usize,
        within: Duration,
        pred: &dyn Fn(&Event) -> bool,
    ) -> Option<(usize, Instant)> {
        let deadline = Instant::now() + within;
        let mut events = self.inner.0.lock();
        loop {
            if let Some(i) = (from..events.len()).find(|i| pred(&events[*i].1)) {
                return Some((i, events[i].0));
            }
            if self.inner.1.wait_until(&mut events, deadline).timed_out() {
                return None;
            }
        }
    }
}

/// A compact label for lifecycle events (`conn:Connecting`, `realtime:x:SUBSCRIBED`,
/// `realtime:x:resumed`), `None` for data and heartbeat events.
pub fn lifecycle_label(e: &Event) -> Option<String> {
    match e {
        Event::ConnectionStatus { state, .. } => Some(format!("conn:{state:?}")),
        Event::ChannelStatus {
            topic,
            status,
            error_kind,
            ..
        } => Some(match (status, error_kind) {
            (SubscribeStatus::ChannelError, Some(ErrorKind::Terminal)) => {
                format!("{topic}:CHANNEL_ERROR(terminal)")
            }
            _ => format!("{topic}:{}", status.as_str()),
        }),
        Event::Resumed { topic, .. } => Some(format!("{topic}:resumed")),
        _ => None,
    }
}

/// The lifecycle labels from index `from` on.
pub fn lifecycle_from(events: &[Event], from: usize) -> Vec<String> {
    events[from..].iter().filter_map(lifecycle_label).collect()
}

fn short(e: &Event) -> String {
    match e {
        Event::Broadcast(b) => format!("broadcast {} {:?}", b.event, seq_of(e)),
        Event::PostgresChange(c) => format!("change {} {}", c.event_type, c.new),
        other => lifecycle_label(other).unwrap_or_else(|| format!("{other:?}")),
    }
}

/// The `seq` field of a JSON broadcast.
pub fn seq_of(e: &Event) -> Option<u64> {
    match e {
        Event::Broadcast(b) => match &b.payload {
            Payload::Json(v) => v.get("seq").and_then(|s| s.as_u64()),
            _ => None,
        },
        _ => None,
    }
}

/// Asserts that the sequence numbers are strictly increasing: no duplicate, no reordering.
pub fn assert_strictly_increasing(what: &str, seqs: &[u64]) {
    for w in seqs.windows(2) {
        assert!(
            w[0] < w[1],
            "{what}: {} then {} (duplicate or out of order) in {seqs:?}",
            w[0],
            w[1]
        );
    }
}

/// Checks the status grammar the app relies on, over a whole run:
/// - the connection goes Connecting → Connected → (Connecting → Connected)* [→ Disconnected/ShutDown],
///   never repeating a state;
/// - per channel: SUBSCRIBED only while the socket is Connected; after a SUBSCRIBED, the next
///   status is a CHANNEL_ERROR/TIMED_OUT/CLOSED (never a second SUBSCRIBED without a loss in
///   between, except postgres re-subscription which the tests do not trigger);
/// - every SUBSCRIBED that follows a loss is immediately followed by `resumed`;
/// - a terminal status is followed by the channel's one final CLOSED, and nothing follows
///   CLOSED on that channel.
pub fn assert_status_grammar(events: &[Event]) {
    let labels: Vec<String> = events.iter().filter_map(lifecycle_label).collect();
    let mut conn: Option<ConnectionState> = None;
    // (subscribed, lost, terminal, closed)
    let mut chans: std::collections::HashMap<String, (bool, bool, bool, bool)> = Default::default();
    for (i, e) in events.iter().enumerate() {
        match e {
            Event::ConnectionStatus { state, .. } => {
                assert_ne!(
                    conn,
                    Some(*state),
                    "connection state repeated at {i}: {labels:#?}"
                );
                if *state == ConnectionState::Connected {
                    assert_eq!(
                        conn,
                        Some(ConnectionState::Connecting),
                        "Connected without Connecting at {i}: {labels:#?}"
                    );
                }
                conn = Some(*state);
            }
            Event::ChannelStatus {
                topic,
                status,
                error_kind,
                ..
            } => {
                let c = chans.entry(topic.clone()).or_default();
                assert!(!c.3, "{topic}: status after CLOSED at {i}: {labels:#?}");
                assert!(
                    !c.2 || *status == SubscribeStatus::Closed,
                    "{topic}: a terminal status not followed by CLOSED at {i}: {labels:#?}"
                );
                match status {
                    SubscribeStatus::Subscribed => {
                        assert_eq!(
                            conn,
                            Some(ConnectionState::Connected),
                            "{topic}: SUBSCRIBED while not connected at {i}: {labels:#?}"
                        );
                        assert!(!c.0, "{topic}: SUBSCRIBED twice at {i}: {labels:#?}");
                        let resumed = matches!(events.get(i + 1), Some(Event::Resumed { topic: t, .. }) if t == topic);
                        assert_eq!(
                            resumed, c.1,
                            "{topic}: SUBSCRIBED after a loss must be followed by resumed (and only then) at {i}: {labels:#?}"
                        );
                        *c = (true, false, false, false);
                    }
                    SubscribeStatus::Closed => c.3 = true,
                    _ => {
                        if *error_kind == Some(ErrorKind::Terminal) {
                            c.2 = true;
                        }
                        if c.0 {
                            c.1 = true;
                        }
                        c.0 = false;
                    }
                }
            }
            _ => {}
        }
    }
}

/// Runs SQL on `url` (a throwaway runtime on a helper thread).
pub fn sql(url: &str, statements: &str) {
    let url = url.to_owned();
    let statements = statements.to_owned();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let (db, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                .await
                .expect("connect to PostgreSQL");
            tokio::spawn(conn);
            db.batch_execute(&statements).await.expect("SQL");
        })
    })
    .join()
    .unwrap();
}

/// Process resources, for leak checks (Linux /proc).
#[derive(Debug, Clone, Copy)]
pub struct Resources {
    pub threads: usize,
    pub fds: usize,
    pub rss_kb: u64,
}

pub fn resources() -> Resources {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    Resources {
        threads: field("Threads:") as usize,
        fds: std::fs::read_dir("/proc/self/fd")
            .map(|d| d.count())
            .unwrap_or(0),
        rss_kb: field("VmRSS:"),
    }
}
