//! Batch delivery: one foreign call per run of queued events instead of one per event.
//!
//! Crossing into foreign code is the dominant cost of a binding's event path: Python takes the
//! GIL and lifts a record field by field in interpreted code, the JVM enters through a JNA
//! upcall. An [`EventBatchListener`] receives every event of a client or channel that the
//! dispatcher delivers in one run (the run ends when the queue is momentarily empty, so a
//! batch never waits for more events; see `crate::dispatch`) as a single JSON array, which the
//! foreign side decodes with its native parser (Python's `json.loads` is C code and decodes
//! the payloads in the same pass). Measured against a `Vec<RealtimeEvent>` of uniffi records,
//! the JSON text is several times cheaper to decode in Python (see `bindings/python`).
//!
//! Each element is an object with a `type`; where the official Python client (`realtime` on
//! PyPI) has the same concept, the object has its shape, so the Python layer hands it to
//! callbacks as is:
//!
//! | `type` | other keys |
//! | --- | --- |
//! | `broadcast` | `topic`, `event`, `payload` (JSON) or `binary` (index into `binaries`), `meta` when present |
//! | `postgres_changes` | `topic`, `ids` (indices of the channel's bindings, registration order), `data`: `schema`, `table`, `commit_timestamp`, `type` (`INSERT`/`UPDATE`/`DELETE`), `errors`, `columns`, `record`, `old_record` |
//! | `presence` | `topic`, `event` (`sync`, `join`, `leave`); join: `key`, `current_presences`, `new_presences`; leave: `key`, `current_presences`, `left_presences` |
//! | `status` | `topic`, `status` (`SUBSCRIBED`, `TIMED_OUT`, `CLOSED`, `CHANNEL_ERROR`), `reason`, `error_kind` (`RECOVERABLE`, `TERMINAL` or null), `token_rejected` |
//! | `connection` | `state` (`DISCONNECTED`, `CONNECTING`, `CONNECTED`, `SHUT_DOWN`), `reason` |
//! | `heartbeat` | `status` (`SENT`, `OK`, `ERROR`, `TIMEOUT`), `rtt_ms` |
//! | `system` | `topic`, `payload` |
//! | `resumed` | `topic`, `gap_ms`, `filled` |
//! | `lagged` | `dropped` |
//! | `error` | `message` |

use std::sync::Arc;

use parking_lot::Mutex;
use serde::Serialize;
use serde_json::Value;

use super::error::RealtimeError;
use super::listener::{call_foreign, Foreign};
use crate::dispatch::{Callback, RunEnd};
use crate::error::ErrorKind;
use crate::event::{
    ConnectionState, Event, HeartbeatStatus, Payload, PostgresChange, PresenceEvent,
};

/// Receives events in batches: every event delivered in one run of the dispatcher, in order,
/// as one JSON array (format in the module docs). Called on the dispatch thread (or inside
/// `dispatch()`), like the per-event listeners.
#[uniffi::export(foreign)]
pub trait EventBatchListener: Send + Sync {
    /// `events_json` is a JSON array of events; `binaries` holds the payloads of binary
    /// broadcasts, which refer to them by index (`"binary": 0`).
    fn on_events(&self, events_json: String, binaries: Vec<Vec<u8>>) -> Result<(), RealtimeError>;
}

#[derive(Default)]
struct Pending {
    json: Vec<u8>,
    binaries: Vec<Vec<u8>>,
    /// The last batch's size: the next buffer starts that large.
    last_len: usize,
}

/// Collects the events of a run and hands them on at the run's end.
struct Batcher {
    listener: Foreign<dyn EventBatchListener>,
    pending: Mutex<Pending>,
}

impl Batcher {
    fn add(&self, event: &Event) {
        let mut p = self.pending.lock();
        let p = &mut *p;
        if p.json.is_empty() {
            p.json.reserve(p.last_len);
            p.json.push(b'[');
        } else {
            p.json.push(b',');
        }
        let wire = WireEvent::new(event, &mut p.binaries);
        // Writing into a Vec cannot fail, and every value here serializes.
        let _ = serde_json::to_writer(&mut p.json, &wire);
    }

    fn flush(&self) {
        let (mut json, binaries) = {
            let mut p = self.pending.lock();
            if p.json.is_empty() {
                return;
            }
            p.last_len = p.json.len() + 1;
            (std::mem::take(&mut p.json), std::mem::take(&mut p.binaries))
        };
        json.push(b']');
        // serde_json writes UTF-8 only.
        let json = String::from_utf8(json).unwrap_or_default();
        call_foreign(|| {
            let _ = self.listener.on_events(json, binaries);
        });
    }
}

/// The dispatcher callback and run-end hook of a batching listener.
pub(crate) fn batching(listener: Arc<dyn EventBatchListener>) -> (Callback, RunEnd) {
    let batcher = Arc::new(Batcher {
        listener: Foreign::new(listener),
        pending: Mutex::new(Pending::default()),
    });
    let collect = batcher.clone();
    (
        Callback::Event(Arc::new(move |e: &Event| collect.add(e))),
        Arc::new(move || batcher.flush()),
    )
}

/// One event as it is written into a batch (borrowed from the core event).
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum WireEvent<'a> {
    Broadcast {
        topic: &'a str,
        event: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        payload: Option<&'a Value>,
        #[serde(skip_serializing_if = "Option::is_none")]
        binary: Option<usize>,
        #[serde(skip_serializing_if = "Option::is_none")]
        meta: Option<&'a Value>,
    },
    PostgresChanges {
        topic: &'a str,
        ids: &'a [usize],
        data: ChangeData<'a>,
    },
    Presence(PresenceWire<'a>),
    Status {
        topic: &'a str,
        status: &'static str,
        reason: Option<&'a str>,
        error_kind: Option<&'static str>,
        token_rejected: bool,
    },
    Connection {
        state: &'static str,
        reason: Option<&'a str>,
    },
    Heartbeat {
        status: &'static str,
        rtt_ms: Option<f64>,
    },
    System {
        topic: &'a str,
        payload: &'a Value,
    },
    Resumed {
        topic: &'a str,
        gap_ms: u64,
        filled: bool,
    },
    Lagged {
        dropped: u64,
    },
    Error {
        message: &'a str,
    },
}

#[derive(Serialize)]
struct PresenceWire<'a> {
    topic: &'a str,
    event: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    current_presences: Option<&'a [Value]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    new_presences: Option<&'a [Value]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    left_presences: Option<&'a [Value]>,
}

/// `data` of a postgres change, as the server sends it (values converted by column type).
#[derive(Serialize)]
struct ChangeData<'a> {
    schema: &'a str,
    table: &'a str,
    commit_timestamp: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    errors: &'a Value,
    columns: &'a Value,
    record: &'a Value,
    old_record: &'a Value,
}

impl<'a> WireEvent<'a> {
    /// Binary payloads are copied into `binaries` and referenced by index.
    fn new(e: &'a Event, binaries: &mut Vec<Vec<u8>>) -> Self {
        match e {
            Event::Broadcast(b) => {
                let (payload, binary) = match &b.payload {
                    Payload::Json(v) => (Some(v), None),
                    Payload::Binary(bytes) => {
                        binaries.push(bytes.clone());
                        (None, Some(binaries.len() - 1))
                    }
                };
                WireEvent::Broadcast {
                    topic: &b.topic,
                    event: &b.event,
                    payload,
                    binary,
                    meta: b.meta.as_ref(),
                }
            }
            Event::PostgresChange(c) => change(c),
            Event::Presence(p) => presence(p),
            Event::ChannelStatus {
                topic,
                status,
                reason,
                error_kind,
            } => WireEvent::Status {
                topic,
                status: status.as_str(),
                reason: reason.as_deref(),
                error_kind: error_kind.map(|k| match k {
                    ErrorKind::Recoverable => "RECOVERABLE",
                    ErrorKind::Terminal => "TERMINAL",
                }),
                token_rejected: e.is_token_rejected(),
            },
            Event::ConnectionStatus { state, reason } => WireEvent::Connection {
                state: match state {
                    ConnectionState::Disconnected => "DISCONNECTED",
                    ConnectionState::Connecting => "CONNECTING",
                    ConnectionState::Connected => "CONNECTED",
                    ConnectionState::ShutDown => "SHUT_DOWN",
                },
                reason: reason.as_deref(),
            },
            Event::Heartbeat { status, rtt } => WireEvent::Heartbeat {
                status: match status {
                    HeartbeatStatus::Sent => "SENT",
                    HeartbeatStatus::Ok => "OK",
                    HeartbeatStatus::Error => "ERROR",
                    HeartbeatStatus::Timeout => "TIMEOUT",
                },
                rtt_ms: rtt.map(|d| d.as_secs_f64() * 1000.0),
            },
            Event::System { topic, payload } => WireEvent::System { topic, payload },
            Event::Resumed { topic, gap, filled } => WireEvent::Resumed {
                topic,
                gap_ms: gap.as_millis() as u64,
                filled: *filled,
            },
            Event::Lagged { dropped } => WireEvent::Lagged { dropped: *dropped },
            Event::Error { message } => WireEvent::Error { message },
        }
    }
}

fn change(c: &PostgresChange) -> WireEvent<'_> {
    WireEvent::PostgresChanges {
        topic: &c.topic,
        ids: &c.bindings,
        data: ChangeData {
            schema: &c.schema,
            table: &c.table,
            commit_timestamp: &c.commit_timestamp,
            kind: &c.event_type,
            errors: &c.errors,
            columns: &c.columns,
            record: &c.new,
            old_record: &c.old,
        },
    }
}

fn presence(p: &PresenceEvent) -> WireEvent<'_> {
    let sync = PresenceWire {
        topic: p.topic(),
        event: "sync",
        key: None,
        current_presences: None,
        new_presences: None,
        left_presences: None,
    };
    WireEvent::Presence(match p {
        PresenceEvent::Sync { .. } => sync,
        PresenceEvent::Join {
            key, current, new, ..
        } => PresenceWire {
            event: "join",
            key: Some(key.as_str()),
            current_presences: Some(current.as_slice()),
            new_presences: Some(new.as_slice()),
            ..sync
        },
        PresenceEvent::Leave {
            key, current, left, ..
        } => PresenceWire {
            event: "leave",
            key: Some(key.as_str()),
            current_presences: Some(current.as_slice()),
            left_presences: Some(left.as_slice()),
            ..sync
        },
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;

    use super::*;
    use crate::event::{Broadcast, SubscribeStatus};

    fn wire(e: &Event) -> (Value, Vec<Vec<u8>>) {
        let mut binaries = Vec::new();
        let v = serde_json::to_value(WireEvent::new(e, &mut binaries)).unwrap();
        (v, binaries)
    }

    #[test]
    fn broadcasts_have_the_realtime_shape_and_binaries_go_aside() {
        let json = Event::Broadcast(Broadcast {
            topic: "realtime:room".into(),
            event: "msg".into(),
            payload: Payload::Json(json!({"n": 1})),
            meta: Some(json!({"id": "x"})),
        });
        assert_eq!(
            wire(&json).0,
            json!({"type": "broadcast", "topic": "realtime:room", "event": "msg",
                   "payload": {"n": 1}, "meta": {"id": "x"}})
        );
        let bin = Event::Broadcast(Broadcast {
            topic: "realtime:room".into(),
            event: "raw".into(),
            payload: Payload::Binary(vec![0, 255]),
            meta: None,
        });
        let (v, binaries) = wire(&bin);
        assert_eq!(
            v,
            json!({"type": "broadcast", "topic": "realtime:room", "event": "raw", "binary": 0})
        );
        assert_eq!(binaries, vec![vec![0, 255]]);
    }

    #[test]
    fn changes_presence_and_lifecycle_events() {
        let change = Event::PostgresChange(Box::new(PostgresChange {
            topic: "realtime:db".into(),
            schema: "public".into(),
            table: "todos".into(),
            commit_timestamp: "2026-01-01T00:00:00Z".into(),
            event_type: "UPDATE".into(),
            new: json!({"id": 1, "done": true}),
            old: json!({"id": 1}),
            errors: Value::Null,
            columns: json!([{"name": "id", "type": "int4"}]),
            bindings: vec![0, 2],
        }));
        assert_eq!(
            wire(&change).0,
            json!({"type": "postgres_changes", "topic": "realtime:db", "ids": [0, 2],
                   "data": {"schema": "public", "table": "todos",
                            "commit_timestamp": "2026-01-01T00:00:00Z", "type": "UPDATE",
                            "errors": null, "columns": [{"name": "id", "type": "int4"}],
                            "record": {"id": 1, "done": true}, "old_record": {"id": 1}}})
        );
        let join = Event::Presence(PresenceEvent::Join {
            topic: "realtime:lobby".into(),
            key: "bob".into(),
            current: vec![],
            new: vec![json!({"user": "bob", "presence_ref": "r1"})],
        });
        assert_eq!(
            wire(&join).0,
            json!({"type": "presence", "topic": "realtime:lobby", "event": "join", "key": "bob",
                   "current_presences": [],
                   "new_presences": [{"user": "bob", "presence_ref": "r1"}]})
        );
        let sync = Event::Presence(PresenceEvent::Sync {
            topic: "realtime:lobby".into(),
        });
        assert_eq!(
            wire(&sync).0,
            json!({"type": "presence", "topic": "realtime:lobby", "event": "sync"})
        );
        let status = Event::ChannelStatus {
            topic: "realtime:db".into(),
            status: SubscribeStatus::ChannelError,
            reason: Some("Unauthorized: You do not have permissions".into()),
            error_kind: Some(ErrorKind::Terminal),
        };
        assert_eq!(
            wire(&status).0,
            json!({"type": "status", "topic": "realtime:db", "status": "CHANNEL_ERROR",
                   "reason": "Unauthorized: You do not have permissions",
                   "error_kind": "TERMINAL", "token_rejected": false})
        );
        let hb = Event::Heartbeat {
            status: HeartbeatStatus::Ok,
            rtt: Some(Duration::from_micros(1500)),
        };
        assert_eq!(
            wire(&hb).0,
            json!({"type": "heartbeat", "status": "OK", "rtt_ms": 1.5})
        );
        assert_eq!(
            wire(&Event::Lagged { dropped: 3 }).0,
            json!({"type": "lagged", "dropped": 3})
        );
    }

    struct Recorder(Mutex<Vec<(String, Vec<Vec<u8>>)>>);

    impl EventBatchListener for Recorder {
        fn on_events(&self, json: String, binaries: Vec<Vec<u8>>) -> Result<(), RealtimeError> {
            self.0.lock().push((json, binaries));
            Ok(())
        }
    }

    #[test]
    fn one_call_per_run_with_a_json_array() {
        let recorder = Arc::new(Recorder(Mutex::new(Vec::new())));
        let (Callback::Event(collect), end) = batching(recorder.clone()) else {
            panic!("a batching listener takes parsed events")
        };
        end(); // nothing collected: no call
        for n in 0..3 {
            collect(&Event::Lagged { dropped: n });
        }
        end();
        let calls = recorder.0.lock().clone();
        assert_eq!(calls.len(), 1);
        let batch: Value = serde_json::from_str(&calls[0].0).unwrap();
        assert_eq!(
            batch,
            json!([{"type": "lagged", "dropped": 0}, {"type": "lagged", "dropped": 1},
                   {"type": "lagged", "dropped": 2}])
        );
    }
}
