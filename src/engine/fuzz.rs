//! A way in for fuzzers: an engine with joined channels over an open socket, fed arbitrary
//! frames without one. Re-exported (hidden) as `supa_realtime::fuzzing`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::channel::ChannelConfig;
use super::snapshot::{ChannelSnapshot, Counters};
use super::Engine;
use crate::event::ConnectionState;
use crate::options::{ChannelOptions, ClientOptions, Vsn};
use crate::postgres::PostgresChangesFilter;
use crate::protocol::Frame;

/// An engine with `channels` joined channels (`realtime:fuzz-0`, `realtime:fuzz-1`, …; every
/// second one with a postgres binding and presence on), ready for frames.
///
/// ```
/// use supa_realtime::fuzzing::FuzzEngine;
/// let mut e = FuzzEngine::new(3, false);
/// e.text(r#"[null,null,"realtime:fuzz-1","broadcast",{"event":"e","payload":{}}]"#);
/// e.binary(&[4, 1, 1, 0, 1, b'x', b'e']);
/// e.advance(std::time::Duration::from_secs(30));
/// assert!(e.drain() > 0);
/// ```
pub struct FuzzEngine {
    engine: Engine,
    now: Instant,
    topics: Vec<String>,
}

impl FuzzEngine {
    /// `vsn1`: speak vsn 1.0.0 (JSON objects) instead of 2.0.0.
    pub fn new(channels: usize, vsn1: bool) -> FuzzEngine {
        let vsn = if vsn1 { Vsn::V1 } else { Vsn::V2 };
        let opts = ClientOptions::new("ws://127.0.0.1:1/realtime/v1", "key")
            .vsn(vsn)
            .access_token("token");
        let (state, _) = watch::channel(ConnectionState::Disconnected);
        let mut engine = Engine::new(Arc::new(opts), Arc::new(Counters::default()), state, 1);
        let now = Instant::now();
        let mut topics = Vec::with_capacity(channels);
        for i in 0..channels {
            let pg = i % 2 == 1;
            let topic = format!("realtime:fuzz-{i}");
            engine.subscribe(
                ChannelConfig {
                    id: i as u64,
                    topic: topic.as_str().into(),
                    options: ChannelOptions::default(),
                    bindings: if pg {
                        vec![PostgresChangesFilter::new("INSERT", "public").table("todos")]
                    } else {
                        Vec::new()
                    },
                    presence_enabled: pg,
                    snapshot: Arc::new(ChannelSnapshot::default()),
                },
                now,
            );
            topics.push(topic);
        }
        engine.on_connected(Ok(()), None, now);
        // Answer every join, echoing the bindings as the server does.
        let joins: Vec<Frame> = engine
            .outbox()
            .transmits
            .drain(..)
            .filter_map(|t| match t {
                super::outbox::Transmit::Text(s) => Frame::decode(vsn, &s).ok(),
                super::outbox::Transmit::Binary(_) => None,
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
            engine.on_text(reply.encode(vsn).into(), now);
        }
        let mut e = FuzzEngine {
            engine,
            now,
            topics,
        };
        e.drain();
        e
    }

    /// The joined channels' topics, for aiming frames.
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

    /// Moves time forward and runs what fell due (heartbeats, timeouts, rejoins).
    pub fn advance(&mut self, by: Duration) {
        self.now += by;
        self.engine.on_tick(self.now);
    }

    /// Drops everything the engine produced; returns how many frames, events and actions
    /// that were.
    pub fn drain(&mut self) -> usize {
        let out = self.engine.outbox();
        let n = out.transmits.len() + out.emits.len();
        out.transmits.clear();
        out.emits.clear();
        n + self.engine.take_actions().len()
    }
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
