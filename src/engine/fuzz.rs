//! A way in for fuzzers: an engine with joined channels over an open socket, fed arbitrary
//! frames without one. Re-exported (hidden) as `supa_realtime::fuzzing`.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::{oneshot, watch};

use super::channel::{ChannelConfig, CloseReason, PushOp};
use super::outbox::Transmit;
use super::snapshot::{ChannelSnapshot, Counters};
use super::Engine;
use crate::event::{ChannelId, ConnectionState, Payload};
use crate::options::{ChannelOptions, ClientOptions, Vsn};
use crate::postgres::PostgresChangesFilter;
use crate::protocol::{BinaryFrame, Frame};

/// How many frames the engine wrote are remembered for [`FuzzEngine::reply`].
const SENT_KEPT: usize = 64;

/// The refs and topic of a frame the engine wrote, for aiming a reply at it.
#[derive(Debug, Clone)]
struct Sent {
    join_ref: Option<String>,
    r#ref: Option<String>,
    topic: String,
}

/// An engine with `channels` joined channels (`realtime:fuzz-0`, `realtime:fuzz-1`, …; every
/// second one with a postgres binding and presence on; channel i joined with join ref i + 1),
/// ready for frames, commands and ticks.
///
/// ```
/// use supa_realtime::fuzzing::FuzzEngine;
/// let mut e = FuzzEngine::new(3, false);
/// e.text(r#"[null,null,"realtime:fuzz-1","broadcast",{"event":"e","payload":{}}]"#);
/// e.binary(&[4, 1, 1, 0, 1, b'x', b'e']);
/// e.track(1, serde_json::json!({"u": 1}));
/// e.reply(0, "ok", r#"{"odd":[1]}"#);
/// e.advance(std::time::Duration::from_secs(30));
/// assert!(e.drain() > 0);
/// ```
pub struct FuzzEngine {
    engine: Engine,
    opts: Arc<ClientOptions>,
    now: Instant,
    topics: Vec<String>,
    /// Every channel subscribed so far, oldest first: (id, topic index, snapshot).
    channels: Vec<(ChannelId, usize, Arc<ChannelSnapshot>)>,
    sent: VecDeque<Sent>,
}

impl FuzzEngine {
    /// `vsn1`: speak vsn 1.0.0 (JSON objects) instead of 2.0.0.
    pub fn new(channels: usize, vsn1: bool) -> FuzzEngine {
        let vsn = if vsn1 { Vsn::V1 } else { Vsn::V2 };
        let opts = ClientOptions::new("ws://127.0.0.1:1/realtime/v1", "key")
            .vsn(vsn)
            .access_token("token");
        FuzzEngine::with_options(channels, opts)
    }

    /// As [`new`](Self::new), with the given options (the URL is not used; the `vsn`, limits,
    /// schedules and token provider are).
    pub fn with_options(channels: usize, opts: ClientOptions) -> FuzzEngine {
        let vsn = opts.vsn;
        let opts = Arc::new(opts);
        let (state, _) = watch::channel(ConnectionState::Disconnected);
        let engine = Engine::new(opts.clone(), Arc::new(Counters::default()), state, 1);
        let now = Instant::now();
        let mut e = FuzzEngine {
            engine,
            opts,
            now,
            topics: (0..channels)
                .map(|i| format!("realtime:fuzz-{i}"))
                .collect(),
            channels: Vec::new(),
            sent: VecDeque::new(),
        };
        // Open the socket first so the joins go out in order: channel i joins with ref i + 1.
        e.engine.connect(now);
        e.engine.on_connected(Ok(()), None, now);
        for i in 0..channels {
            e.subscribe(i);
        }
        // Answer every join, echoing the bindings as the server does.
        let joins: Vec<Frame> = e
            .engine
            .outbox()
            .transmits
            .drain(..)
            .filter_map(|t| match t {
                Transmit::Text(s) => Frame::decode(vsn, &s).ok(),
                Transmit::Binary(_) => None,
            })
            .collect();
        for join in joins {
            let mut echoed = join
                .payload
                .pointer("/config/postgres_changes")
                .cloned()
                .unwrap_or_default();
            if let Some(items) = echoed.as_array_mut() {
                for (n, item) in items.iter_mut().enumerate() {
                    item["id"] = (n + 1).into();
                }
            }
            let reply = Frame::reply_to(
                &join,
                "ok",
                serde_json::json!({ "postgres_changes": echoed }),
            );
            e.engine.on_text(reply.encode(vsn).into(), now);
        }
        e.drain();
        e
    }

    /// The channels' topics, for aiming frames.
    pub fn topics(&self) -> &[String] {
        &self.topics
    }

    /// A text frame as it came off the socket.
    pub fn text(&mut self, frame: &str) {
        self.engine.on_text(frame.to_owned().into(), self.now);
    }

    /// A binary frame as it came off the socket.
    pub fn binary(&mut self, frame: &[u8]) {
        self.engine.on_binary(frame.to_vec().into(), self.now);
    }

    /// A `phx_reply` to the `nth` most recent frame the engine wrote (wrapping), echoing its
    /// refs and topic, with `status` and `response` as given (`response` is raw JSON text, so
    /// any shape). Nothing happens when no frame was written yet.
    pub fn reply(&mut self, nth: usize, status: &str, response: &str) {
        self.collect_sent();
        if self.sent.is_empty() {
            return;
        }
        let s = &self.sent[self.sent.len() - 1 - nth % self.sent.len()];
        let text = match self.opts.vsn {
            Vsn::V2 => format!(
                "[{},{},{},\"phx_reply\",{{\"status\":{},\"response\":{response}}}]",
                json_opt(&s.join_ref),
                json_opt(&s.r#ref),
                Value::from(s.topic.as_str()),
                Value::from(status),
            ),
            Vsn::V1 => format!(
                "{{\"topic\":{},\"event\":\"phx_reply\",\"ref\":{},\"payload\":{{\"status\":{},\"response\":{response}}}}}",
                Value::from(s.topic.as_str()),
                json_opt(&s.r#ref),
                Value::from(status),
            ),
        };
        self.text(&text);
    }

    /// Moves time forward and runs what fell due (heartbeats, timeouts, rejoins).
    pub fn advance(&mut self, by: Duration) {
        self.now += by;
        self.engine.on_tick(self.now);
    }

    /// `subscribe()` of a new channel on topic `topic % topics` (several channels may share
    /// a topic); odd topics get a postgres binding and presence.
    pub fn subscribe(&mut self, topic: usize) {
        if self.topics.is_empty() {
            return;
        }
        let t = topic % self.topics.len();
        let pg = t % 2 == 1;
        let id = self.channels.last().map_or(0, |c| c.0 + 1);
        let snapshot = Arc::new(ChannelSnapshot::default());
        self.engine.subscribe(
            ChannelConfig {
                id,
                topic: self.topics[t].as_str().into(),
                options: ChannelOptions::default().broadcast_ack(pg),
                bindings: if pg {
                    vec![PostgresChangesFilter::new("INSERT", "public").table("todos")]
                } else {
                    Vec::new()
                },
                presence_enabled: pg,
                snapshot: snapshot.clone(),
                clock: crate::engine::gap::WallClock::at(std::time::Instant::now(), 0),
            },
            self.now,
        );
        self.channels.push((id, t, snapshot));
    }

    /// `unsubscribe()` of the `nth` channel subscribed (wrapping).
    pub fn unsubscribe(&mut self, nth: usize) {
        if let Some(id) = self.channel(nth) {
            self.engine
                .leave(id, CloseReason::Left, oneshot::channel().0, self.now);
        }
    }

    /// `send_broadcast()` on the `nth` channel.
    pub fn broadcast(&mut self, nth: usize, event: &str, payload: Value, binary: bool) {
        let payload = if binary {
            Payload::Binary(payload.to_string().into_bytes())
        } else {
            Payload::Json(payload)
        };
        let op = PushOp::Broadcast {
            persist: crate::protocol::Persist::No,
            event: event.to_owned(),
            payload,
        };
        self.push(nth, op);
    }

    /// `track()` on the `nth` channel.
    pub fn track(&mut self, nth: usize, meta: Value) {
        self.push(nth, PushOp::Track(meta));
    }

    /// `untrack()` on the `nth` channel.
    pub fn untrack(&mut self, nth: usize) {
        self.push(nth, PushOp::Untrack);
    }

    fn push(&mut self, nth: usize, op: PushOp) {
        if let Some(id) = self.channel(nth) {
            self.engine.push(id, op, oneshot::channel().0, self.now);
        }
    }

    fn channel(&self, nth: usize) -> Option<ChannelId> {
        (!self.channels.is_empty()).then(|| self.channels[nth % self.channels.len()].0)
    }

    /// `set_auth()`.
    pub fn set_auth(&mut self, token: Option<String>) {
        self.engine.set_auth(token);
    }

    /// `connect()` / `disconnect()`.
    pub fn connect(&mut self, on: bool) {
        if on {
            self.engine.connect(self.now);
        } else {
            self.engine.disconnect(self.now);
        }
    }

    /// A connect attempt ended: the socket opened (`ok`) or failed; `token` is the token
    /// provider's answer when it was asked (`Some(Err)` = the provider failed).
    pub fn connected(&mut self, ok: bool, token: Option<Result<Option<String>, String>>) {
        let result = if ok {
            Ok(())
        } else {
            Err(crate::Error::Io("fuzz: refused".into()))
        };
        self.engine.on_connected(result, token, self.now);
    }

    /// The socket closed under the engine.
    pub fn closed(&mut self, reason: &str) {
        self.engine.on_closed(reason, self.now);
    }

    /// The token provider answered.
    pub fn token(&mut self, token: Result<Option<String>, String>) {
        self.engine.on_token(token, self.now);
    }

    /// The network changed (`foreground`: the app came back instead).
    pub fn check_link(&mut self, foreground: bool) {
        if foreground {
            self.engine.foregrounded(self.now);
        } else {
            self.engine.check_link(self.now);
        }
    }

    /// The largest presence state any channel publishes: (keys, metas).
    pub fn presence_size(&self) -> (usize, usize) {
        self.channels
            .iter()
            .map(|(_, _, s)| {
                let p = s.presence();
                (p.len(), p.iter().map(|(_, m)| m.len()).sum())
            })
            .fold((0, 0), |a, b| (a.0.max(b.0), a.1.max(b.1)))
    }

    fn collect_sent(&mut self) {
        let vsn = self.opts.vsn;
        for t in self.engine.outbox().transmits.drain(..) {
            let sent = match t {
                Transmit::Text(s) => Frame::decode(vsn, &s).ok().map(|f| Sent {
                    join_ref: f.join_ref,
                    r#ref: f.r#ref,
                    topic: f.topic,
                }),
                Transmit::Binary(b) => match BinaryFrame::decode_from_client(&b) {
                    Ok(BinaryFrame::UserBroadcastPush {
                        join_ref,
                        r#ref,
                        topic,
                        ..
                    }) => Some(Sent {
                        join_ref,
                        r#ref,
                        topic,
                    }),
                    _ => None,
                },
            };
            if let Some(s) = sent {
                if self.sent.len() == SENT_KEPT {
                    self.sent.pop_front();
                }
                self.sent.push_back(s);
            }
        }
    }

    /// Drops everything the engine produced (remembering the refs of written frames for
    /// [`reply`](Self::reply)); returns how many frames, events and actions that were.
    pub fn drain(&mut self) -> usize {
        let n = self.engine.outbox().transmits.len() + self.engine.outbox().emits.len();
        self.collect_sent();
        self.engine.outbox().emits.clear();
        n + self.engine.take_actions().len()
    }
}

fn json_opt(s: &Option<String>) -> Value {
    s.as_deref().map_or(Value::Null, Value::from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{BinaryFrame, BroadcastPayload};

    fn corpus(topic: &str) -> Vec<String> {
        vec![
            format!(
                r#"[null,null,"{topic}","broadcast",{{"type":"broadcast","event":"e","payload":{{"x":[1,2.5,"s",null,true]}},"meta":{{"id":"u"}}}}]"#
            ),
            format!(
                r#"["1",null,"{topic}","presence_state",{{"a":{{"metas":[{{"phx_ref":"r1","u":1}}]}}}}]"#
            ),
            format!(
                r#"[null,null,"{topic}","presence_diff",{{"joins":{{"b":{{"metas":[{{"phx_ref":"r2"}}]}}}},"leaves":{{"a":{{"metas":[{{"phx_ref":"r1"}}]}}}}}}]"#
            ),
            format!(
                r#"[null,null,"{topic}","postgres_changes",{{"ids":[1],"data":{{"type":"INSERT","columns":[{{"name":"n","type":"_int4"}}],"record":{{"n":"{{1,2}}"}}}}}}]"#
            ),
            format!(
                r#"["2",null,"{topic}","system",{{"extension":"postgres_changes","status":"ok","message":"Subscribed to PostgreSQL"}}]"#
            ),
            format!(r#"["2","9","{topic}","phx_reply",{{"status":"error","response":"x"}}]"#),
            format!(r#"["2","2","{topic}","phx_error",{{}}]"#),
            format!(r#"["2","2","{topic}","phx_close",{{}}]"#),
            r#"[null,"1","phoenix","phx_reply",{"status":"ok","response":{}}]"#.to_owned(),
        ]
    }

    /// Every golden frame, every truncation of it and a few byte flips: the engine never
    /// panics, whatever arrives (a deterministic stand-in for the fuzzer).
    #[test]
    fn survives_truncated_and_flipped_frames() {
        let mut e = FuzzEngine::new(4, false);
        let topics = e.topics().to_vec();
        for topic in &topics {
            for frame in corpus(topic) {
                for cut in 0..=frame.len() {
                    if let Some(prefix) = frame.get(..cut) {
                        e.text(prefix);
                    }
                }
                let mut bytes = frame.clone().into_bytes();
                for i in (0..bytes.len()).step_by(7) {
                    bytes[i] ^= 0x20;
                    if let Ok(s) = std::str::from_utf8(&bytes) {
                        e.text(s);
                    }
                    e.binary(&bytes);
                }
                e.text(&frame);
                e.drain();
            }
            let kind4 = BinaryFrame::UserBroadcast {
                topic: topic.clone(),
                event: "e".into(),
                metadata: r#"{"id":1}"#.into(),
                payload: BroadcastPayload::Json("[1]".into()),
            }
            .encode()
            .unwrap();
            for cut in 0..=kind4.len() {
                e.binary(&kind4[..cut]);
            }
            e.advance(Duration::from_secs(3));
        }
        e.advance(Duration::from_secs(120));
        assert!(e.drain() > 0);
        let mut v1 = FuzzEngine::new(2, true);
        v1.text(
            r#"{"topic":"realtime:fuzz-0","event":"broadcast","payload":{"event":"e"},"ref":null}"#,
        );
        v1.text("[]");
        assert!(v1.drain() >= 2);
    }
}
