//! The pubsub hub: who is subscribed to which topic, presence state per topic, and fan-out.
//!
//! A message is encoded at most once per wire form (V1 text, V2 text, V2 binary) and the
//! encoded bytes are shared by every recipient. Delivery never waits: each socket has an
//! [`Outbox`] bounded in bytes, and a socket (or channel) past its limit is told to close
//! rather than stalling the sender or the other subscribers.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use parking_lot::Mutex;
use serde_json::{json, Map, Value};
use supa_realtime_protocol::{event, BinaryFrame, BroadcastPayload, Frame, Vsn};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Bytes;

use crate::ids;
use crate::outbound::{ChannelBudget, Item, Outbox, Outgoing};
use crate::ratelimit::Windows;

/// A topic as the server keys it: public and private rooms of one name are distinct.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct TopicKey {
    pub private: bool,
    /// The name without `realtime:`.
    pub name: String,
}

impl TopicKey {
    pub(crate) fn wire_topic(&self) -> String {
        format!("{}{}", supa_realtime_protocol::TOPIC_PREFIX, self.name)
    }
}

/// One channel subscription of one socket (unique per server).
pub(crate) type SubId = u64;

/// A fan-out message (both refs null on the wire), encoded lazily once per wire form.
pub(crate) struct Fanout {
    topic: String,
    body: Body,
    /// About the encoded size, for the byte limits of the queues it waits in.
    size: usize,
    v1: OnceLock<Option<Outgoing>>,
    v2: OnceLock<Option<Outgoing>>,
    /// The `realtime.messages` id of a stored broadcast (also in its `meta`), so a channel that
    /// replayed it on join can skip the live copy.
    message_id: Option<String>,
}

enum Body {
    /// A JSON text frame, identical for V1 and V2 apart from the envelope.
    Json { event: String, payload: Value },
    /// A user broadcast: kind 4 for V2; for V1 converted to JSON text (dropped if binary).
    User {
        event: String,
        /// JSON text or empty.
        metadata: String,
        payload: BroadcastPayload,
    },
}

/// The length of `value` as JSON text, without building the text.
pub(crate) fn json_len(value: &Value) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    let _ = serde_json::to_writer(&mut count, value);
    count.0
}

/// Envelope bytes beyond topic, event and payload (refs, brackets, V1 field names).
const ENVELOPE: usize = 48;

impl Fanout {
    /// A text frame `[null,null,topic,event,payload]`.
    pub(crate) fn json(topic: String, event: &str, payload: Value) -> Arc<Fanout> {
        Arc::new(Fanout::json_unshared(topic, event, payload))
    }

    fn json_unshared(topic: String, event: &str, payload: Value) -> Fanout {
        let size = json_len(&payload) + topic.len() + event.len() + ENVELOPE;
        Fanout::new(
            topic,
            Body::Json {
                event: event.to_owned(),
                payload,
            },
            size,
        )
    }

    /// A user broadcast (sent as kind 3, by REST single, or by the database).
    pub(crate) fn user(
        topic: String,
        event: String,
        metadata: String,
        payload: BroadcastPayload,
    ) -> Arc<Fanout> {
        Arc::new(Fanout::user_unshared(topic, event, metadata, payload))
    }

    fn user_unshared(
        topic: String,
        event: String,
        metadata: String,
        payload: BroadcastPayload,
    ) -> Fanout {
        let payload_len = match &payload {
            BroadcastPayload::Json(text) => text.len(),
            BroadcastPayload::Binary(bytes) => bytes.len(),
        };
        let size = payload_len + topic.len() + event.len() + metadata.len() + ENVELOPE;
        Fanout::new(
            topic,
            Body::User {
                event,
                metadata,
                payload,
            },
            size,
        )
    }

    /// A stored user broadcast: `meta: {"id": id}` on the wire, and [`Fanout::message_id`].
    pub(crate) fn stored_user(
        topic: String,
        event: String,
        id: String,
        payload: BroadcastPayload,
    ) -> Arc<Fanout> {
        let metadata = json!({ "id": id }).to_string();
        let mut fanout = Fanout::user_unshared(topic, event, metadata, payload);
        fanout.message_id = Some(id);
        Arc::new(fanout)
    }

    /// A stored broadcast pushed as JSON (`payload` already carries `meta.id`).
    pub(crate) fn stored_json(topic: String, payload: Value, id: String) -> Arc<Fanout> {
        let mut fanout = Fanout::json_unshared(topic, event::BROADCAST, payload);
        fanout.message_id = Some(id);
        Arc::new(fanout)
    }

    fn new(topic: String, body: Body, size: usize) -> Fanout {
        Fanout {
            topic,
            body,
            size,
            v1: OnceLock::new(),
            v2: OnceLock::new(),
            message_id: None,
        }
    }

    /// The stored message's id, for broadcasts kept in `realtime.messages`.
    pub(crate) fn message_id(&self) -> Option<&str> {
        self.message_id.as_deref()
    }

    /// About the encoded size in bytes.
    pub(crate) fn size(&self) -> usize {
        self.size
    }

    /// The message for a socket of this version, or `None` when it cannot be represented
    /// (binary payload to V1, header field over 255 bytes).
    pub(crate) fn encoded(&self, vsn: Vsn) -> Option<Outgoing> {
        let cell = match vsn {
            Vsn::V1 => &self.v1,
            Vsn::V2 => &self.v2,
        };
        cell.get_or_init(|| self.encode(vsn)).clone()
    }

    fn encode(&self, vsn: Vsn) -> Option<Outgoing> {
        match (&self.body, vsn) {
            (Body::Json { event, payload }, _) => {
                let frame = Frame::new(
                    None,
                    None,
                    self.topic.clone(),
                    event.clone(),
                    payload.clone(),
                );
                Some(Outgoing::text(frame.encode_server(vsn)))
            }
            (
                Body::User {
                    event,
                    metadata,
                    payload,
                },
                Vsn::V2,
            ) => BinaryFrame::UserBroadcast {
                topic: self.topic.clone(),
                event: event.clone(),
                metadata: metadata.clone(),
                payload: payload.clone(),
            }
            .encode()
            .ok()
            .map(Outgoing::binary),
            (
                Body::User {
                    event: user_event,
                    metadata,
                    payload,
                },
                Vsn::V1,
            ) => {
                let BroadcastPayload::Json(text) = payload else {
                    return None; // V1 cannot carry raw binary: dropped, as upstream does.
                };
                let inner: Value = serde_json::from_str(text).ok()?;
                let mut obj = Map::new();
                obj.insert("type".into(), json!("broadcast"));
                obj.insert("event".into(), json!(user_event));
                obj.insert("payload".into(), inner);
                if !metadata.is_empty() {
                    if let Ok(meta) = serde_json::from_str::<Value>(metadata) {
                        obj.insert("meta".into(), meta);
                    }
                }
                let frame = Frame::new(
                    None,
                    None,
                    self.topic.clone(),
                    event::BROADCAST,
                    Value::Object(obj),
                );
                Some(Outgoing::text(frame.encode_server(Vsn::V1)))
            }
        }
    }
}

struct Member {
    outbox: Arc<Outbox>,
    budget: Arc<ChannelBudget>,
    /// Receives presence diffs (presence enabled at join, or turned on by a track).
    presence: bool,
    access: Access,
}

/// What a member may read. Public channels read everything; private ones what RLS allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Access {
    pub broadcast: bool,
    pub presence: bool,
}

impl Access {
    pub(crate) const ALL: Access = Access {
        broadcast: true,
        presence: true,
    };
}

/// Which members a fan-out is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Audience {
    /// Broadcasts: members with broadcast read access.
    Broadcast,
    /// Presence diffs: members with presence on and presence read access.
    Presence,
}

struct PresenceEntry {
    phx_ref: String,
    key: String,
    /// The tracked payload plus `phx_ref` (and `phx_ref_prev` after an update).
    meta: Map<String, Value>,
    /// The payload as tracked, to recognise an identical re-track.
    payload: Value,
}

#[derive(Default)]
struct Topic {
    members: HashMap<SubId, Member>,
    /// One entry per tracking subscription.
    presences: HashMap<SubId, PresenceEntry>,
    /// The presence state as JSON text, built once and shared by every joiner until the
    /// presences change.
    state: Option<Bytes>,
}

impl Topic {
    fn presence_state(&mut self) -> Bytes {
        let presences = &self.presences;
        self.state
            .get_or_insert_with(|| {
                let mut state = Map::new();
                for entry in presences.values() {
                    push_meta(&mut state, &entry.key, &entry.meta);
                }
                Bytes::from(Value::Object(state).to_string())
            })
            .clone()
    }

    fn deliver(&self, msg: &Arc<Fanout>, except: Option<SubId>, audience: Audience) {
        for (&sub, member) in &self.members {
            let wanted = match audience {
                Audience::Broadcast => member.access.broadcast,
                Audience::Presence => member.presence && member.access.presence,
            };
            if Some(sub) == except || !wanted {
                continue;
            }
            let item = Item::Fanout(Arc::clone(msg));
            member.outbox.offer(&member.budget, sub, item, msg.size());
        }
    }

    fn diff(&mut self, key: &TopicKey, joins: Value, leaves: Value) {
        self.state = None;
        let payload = json!({"joins": joins, "leaves": leaves});
        let msg = Fanout::json(key.wire_topic(), event::PRESENCE_DIFF, payload);
        self.deliver(&msg, None, Audience::Presence);
    }
}

fn push_meta(state: &mut Map<String, Value>, key: &str, meta: &Map<String, Value>) {
    let entry = state
        .entry(key.to_owned())
        .or_insert_with(|| json!({"metas": []}));
    if let Some(metas) = entry.get_mut("metas").and_then(Value::as_array_mut) {
        metas.push(Value::Object(meta.clone()));
    }
}

fn single(key: &str, meta: &Map<String, Value>) -> Value {
    let mut map = Map::new();
    push_meta(&mut map, key, meta);
    Value::Object(map)
}

/// All topics of the server.
#[derive(Default)]
pub(crate) struct Hub {
    topics: Mutex<HashMap<TopicKey, Topic>>,
    /// Presence calls per topic and presence key, across sockets and rejoins.
    presence_calls: Mutex<Windows<(TopicKey, String)>>,
}

impl Hub {
    /// Records a presence call under `presence_key` on `key`; returns the calls within
    /// `window`, this one included.
    pub(crate) fn presence_call(
        &self,
        key: &TopicKey,
        presence_key: &str,
        now: Instant,
        window: Duration,
    ) -> usize {
        self.presence_calls
            .lock()
            .record((key.clone(), presence_key.to_owned()), now, window)
    }

    /// Subscribes; returns the current presence state (JSON text, shared) when `presence` is
    /// on. Snapshot and subscription happen atomically, so every later diff reaches the socket
    /// after it.
    pub(crate) fn join(
        &self,
        key: &TopicKey,
        sub: SubId,
        outbox: &Arc<Outbox>,
        budget: &Arc<ChannelBudget>,
        presence: bool,
        access: Access,
    ) -> Option<Bytes> {
        let mut topics = self.topics.lock();
        let topic = topics.entry(key.clone()).or_default();
        topic.members.insert(
            sub,
            Member {
                outbox: Arc::clone(outbox),
                budget: Arc::clone(budget),
                presence,
                access,
            },
        );
        (presence && access.presence).then(|| topic.presence_state())
    }

    /// Updates what a member may read (private channels, after a token refresh).
    pub(crate) fn set_access(&self, key: &TopicKey, sub: SubId, access: Access) {
        if let Some(member) = self
            .topics
            .lock()
            .get_mut(key)
            .and_then(|t| t.members.get_mut(&sub))
        {
            member.access = access;
        }
    }

    /// Unsubscribes, removing the subscription's presence (others get a `leaves` diff).
    pub(crate) fn leave(&self, key: &TopicKey, sub: SubId) {
        let mut topics = self.topics.lock();
        let Some(topic) = topics.get_mut(key) else {
            return;
        };
        topic.members.remove(&sub);
        if let Some(entry) = topic.presences.remove(&sub) {
            topic.diff(key, json!({}), single(&entry.key, &entry.meta));
        }
        if topic.members.is_empty() && topic.presences.is_empty() {
            topics.remove(key);
        }
    }

    /// Sends `msg` to every subscriber of `key` except `except`.
    pub(crate) fn broadcast(&self, key: &TopicKey, msg: Arc<Fanout>, except: Option<SubId>) {
        if let Some(topic) = self.topics.lock().get(key) {
            topic.deliver(&msg, except, Audience::Broadcast);
        }
    }

    /// Tracks (or re-tracks) this subscription's one presence under `presence_key`.
    pub(crate) fn track(&self, key: &TopicKey, sub: SubId, presence_key: &str, payload: Value) {
        let mut topics = self.topics.lock();
        let topic = topics.entry(key.clone()).or_default();
        if let Some(member) = topic.members.get_mut(&sub) {
            member.presence = true; // a track turns presence on for the channel
        }
        let old = topic.presences.get(&sub);
        if old.is_some_and(|o| o.payload == payload && o.key == presence_key) {
            return; // an identical re-track is a no-op
        }
        let phx_ref = ids::phx_ref();
        let mut meta = Map::new();
        meta.insert("phx_ref".into(), json!(phx_ref));
        if let Some(old) = old {
            meta.insert("phx_ref_prev".into(), json!(old.phx_ref));
        }
        if let Value::Object(fields) = &payload {
            for (k, v) in fields {
                if k != "phx_ref" && k != "phx_ref_prev" {
                    meta.insert(k.clone(), v.clone());
                }
            }
        }
        let joins = single(presence_key, &meta);
        let entry = PresenceEntry {
            phx_ref,
            key: presence_key.to_owned(),
            meta,
            payload,
        };
        let leaves = match topic.presences.insert(sub, entry) {
            Some(old) => single(&old.key, &old.meta),
            None => json!({}),
        };
        topic.diff(key, joins, leaves);
    }

    /// Removes this subscription's presence, if any.
    pub(crate) fn untrack(&self, key: &TopicKey, sub: SubId) {
        let mut topics = self.topics.lock();
        if let Some(topic) = topics.get_mut(key) {
            if let Some(entry) = topic.presences.remove(&sub) {
                topic.diff(key, json!({}), single(&entry.key, &entry.meta));
            }
        }
    }
}
