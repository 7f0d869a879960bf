//! One task per WebSocket: it owns the socket's channels (an explicit state machine per
//! topic), answers frames, and writes everything the socket receives.
//!
//! Inputs are selected in one loop: client frames, deliveries from its [`Outbox`] (bounded in
//! bytes), delayed join errors, token expiry, idle and no-channel timeouts, overflow and server
//! shutdown. Outputs are collected per step and written with a deadline per frame, so a peer
//! that stops reading is dropped instead of holding the task forever.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use supa_realtime_protocol::{
    event, BinaryFrame, BroadcastPayload, Frame, JoinPayload, PostgresBinding, Vsn, PHOENIX_TOPIC,
    TOPIC_PREFIX,
};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::{sleep_until, Instant};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::hub::{Access, Fanout, SubId, TopicKey};
use crate::ids;
use crate::jwt::{now_secs, Verified};
use crate::listener::Ticket;
use crate::outbound::{self, ChannelBudget, Charge, Delivery, Item, Outbox, Outgoing};
use crate::postgres::{Extension, PgEvent, PgSubscription, StoredPayload, Subscriber};
use crate::ratelimit::Windows;
use crate::server::Shared;
use crate::stored::{self, ToStore};

/// An upgraded connection.
pub(crate) type Ws = WebSocketStream<TokioIo<Upgraded>>;

/// Close codes the server uses.
const CLOSE_NORMAL: u16 = 1000;
const CLOSE_GOING_AWAY: u16 = 1001;
const CLOSE_TRY_AGAIN_LATER: u16 = 1013;

/// Queued deliveries moved into one write, at most (a burst is flushed by one write).
const BATCH_FRAMES: usize = 256;
const BATCH_BYTES: usize = 1 << 20;

/// The text of the `system` error for postgres_changes bindings when there is no database.
pub(crate) const NO_DATABASE: &str =
    "postgres_changes need a database: this server was started without --database-url";

/// Refusals of broadcasts that would break subscribers (sent whether or not `ack` is on).
/// Upstream's join error for a topic the token may not read.
fn unauthorized(name: &str) -> String {
    format!("Unauthorized: You do not have permissions to read from this Channel topic: {name}")
}

/// Upstream's `system` texts for `config.broadcast.replication_ready`.
const REPLICATION_READY: &str = "Replication connection established";
const REPLICATION_NOT_READY: &str = "Replication connection was not established in time";
pub(crate) const NOT_AN_OBJECT: &str = "broadcast payload must be an object";
pub(crate) const EVENT_NOT_A_STRING: &str = "broadcast event must be a string";
pub(crate) const INVALID_JSON_PAYLOAD: &str =
    "broadcast payload is flagged JSON but is not valid JSON";

/// A joined channel.
struct Channel {
    sub: SubId,
    key: TopicKey,
    topic: String,
    join_ref: Option<String>,
    broadcast_self: bool,
    ack: bool,
    presence_key: String,
    /// The token in force (join `access_token`, or the connection's), its claims and expiry.
    token: String,
    claims: Value,
    exp: f64,
    bindings: Vec<(u32, Map<String, Value>)>,
    pg: Option<PgLink>,
    /// What this channel has queued on the socket, against the per-channel byte limit.
    budget: Arc<ChannelBudget>,
    /// Cached write permission per extension (private channels).
    can_write_broadcast: Option<bool>,
    can_write_presence: Option<bool>,
    /// Ids of the stored messages replayed on join: their live copies, if any arrive after
    /// the join, are skipped.
    replayed: HashSet<String>,
}

/// A database subscription plus the task that encodes its events for this socket and queues
/// them in the socket's outbox (under the channel's byte limit, like every other delivery).
struct PgLink {
    _subscription: PgSubscription,
    forward: JoinHandle<()>,
}

impl Drop for PgLink {
    fn drop(&mut self) {
        self.forward.abort();
    }
}

struct Conn {
    vsn: Vsn,
    shared: Arc<Shared>,
    outbox: Arc<Outbox>,
    conn_token: String,
    channels: HashMap<String, Channel>,
    /// Presence calls per topic, kept across leaving and joining again.
    presence_calls: Windows<String>,
    /// Messages to write at the end of the current step, each with the bytes it releases.
    out: Vec<(Outgoing, Option<Charge>)>,
    delayed_tx: mpsc::UnboundedSender<Outgoing>,
}

/// Runs one upgraded socket until it closes.
pub(crate) async fn run(
    mut ws: Ws,
    vsn: Vsn,
    conn_token: String,
    _verified: Verified,
    shared: Arc<Shared>,
    // The connection counts as open until this task ends.
    _ticket: Ticket,
) {
    let limits = &shared.config.limits;
    let (outbox, mut queue) = Outbox::new(limits.outbound_queue, limits.max_socket_queue_bytes);
    let (delayed_tx, mut delayed_rx) = mpsc::unbounded_channel();
    let mut shutdown = shared.shutdown.clone();
    let idle = shared.config.idle_timeout;
    let no_channel_timeout = shared.config.no_channel_timeout;
    let write_timeout = shared.config.write_timeout;
    let mut conn = Conn {
        vsn,
        shared,
        outbox: Arc::clone(&outbox),
        conn_token,
        channels: HashMap::new(),
        presence_calls: Windows::default(),
        out: Vec::new(),
        delayed_tx,
    };
    let mut idle_deadline = Instant::now() + idle;
    // Set while the socket has no channel: heartbeats alone do not keep it open forever.
    let mut no_channel_deadline = Some(Instant::now() + no_channel_timeout);
    let close = loop {
        let expiry = conn.next_expiry();
        // Unbiased on purpose: a flood in one direction must not starve the other.
        tokio::select! {
            _ = async { let _ = shutdown.wait_for(|stop| *stop).await; } => {
                break Some((CLOSE_GOING_AWAY, "server shutting down".to_owned()))
            }
            _ = outbox.attention.notified() => {
                if outbox.overflowed() {
                    break Some((CLOSE_TRY_AGAIN_LATER, conn.too_slow()));
                }
                conn.close_overflowed_channels();
            }
            _ = sleep_until(idle_deadline) => break Some((CLOSE_NORMAL, "idle timeout".to_owned())),
            _ = sleep_until(no_channel_deadline.unwrap_or(idle_deadline)), if no_channel_deadline.is_some() => {
                break Some((CLOSE_NORMAL, "no channel joined".to_owned()))
            }
            _ = sleep_until(expiry.unwrap_or(idle_deadline)), if expiry.is_some() => conn.expire_tokens(),
            msg = ws.next() => {
                idle_deadline = Instant::now() + idle;
                match msg {
                    Some(Ok(Message::Text(text))) => conn.on_text(text.as_str()).await,
                    Some(Ok(Message::Binary(bytes))) => conn.on_binary(&bytes).await,
                    Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
                    Some(Ok(Message::Close(_))) => {
                        // Complete the closing handshake: the library queued the echo.
                        let _ = tokio::time::timeout(write_timeout, ws.flush()).await;
                        break None;
                    }
                    None => break None,
                    // Protocol errors, oversize frames, resets: the connection is over.
                    Some(Err(_)) => break None,
                }
            }
            Some(delivery) = queue.recv() => {
                let mut bytes = conn.on_delivery(delivery);
                // Take what is already queued so one write flushes a burst.
                while conn.out.len() < BATCH_FRAMES && bytes < BATCH_BYTES {
                    match queue.try_recv() {
                        Ok(delivery) => bytes += conn.on_delivery(delivery),
                        Err(_) => break,
                    }
                }
            }
            Some(msg) = delayed_rx.recv() => conn.out.push((msg, None)),
        }
        if !conn.out.is_empty() && !outbound::write_all(&mut ws, &mut conn.out, write_timeout).await
        {
            break None;
        }
        if !conn.channels.is_empty() {
            no_channel_deadline = None;
        } else if no_channel_deadline.is_none() {
            no_channel_deadline = Some(Instant::now() + no_channel_timeout);
        }
    };
    conn.leave_all();
    // What is still queued is released with the queue (and its charges) here.
    drop(queue);
    if let Some((code, reason)) = close {
        let frame = CloseFrame {
            code: CloseCode::from(code),
            reason: reason.into(),
        };
        let _ = tokio::time::timeout(Duration::from_secs(1), ws.send(Message::Close(Some(frame))))
            .await;
    }
}

fn reply_ok(frame: &Frame) -> Frame {
    Frame::reply_to(frame, "ok", json!({}))
}

fn reply_reason(frame: &Frame, reason: &str) -> Frame {
    Frame::reply_to(frame, "error", json!({ "reason": reason }))
}

impl Conn {
    fn push(&mut self, frame: Frame) {
        self.out
            .push((Outgoing::text(frame.encode_server(self.vsn)), None));
    }

    /// `{"status":"error","response":{"reason":"unmatched topic"}}` with a null join_ref.
    fn unmatched(&mut self, frame: &Frame) {
        let mut reply = reply_reason(frame, "unmatched topic");
        reply.join_ref = None;
        self.push(reply);
    }

    async fn on_text(&mut self, text: &str) {
        // Malformed frames are dropped; the connection stays open (upstream logs them).
        let Ok(frame) = Frame::decode(self.vsn, text) else {
            return;
        };
        // Heartbeats; any other message to `phoenix` is for an unjoined topic like any other.
        if frame.topic == PHOENIX_TOPIC && frame.event == event::HEARTBEAT {
            return self.push(reply_ok(&frame));
        }
        if frame.event == event::JOIN {
            return self.join(frame).await;
        }
        if !self.channels.contains_key(&frame.topic) {
            if frame.event == event::LEAVE {
                self.push(reply_ok(&frame));
            } else {
                self.unmatched(&frame);
            }
            return;
        }
        match frame.event.as_str() {
            event::BROADCAST => self.broadcast_json(frame, text.len()).await,
            event::PRESENCE => self.presence(frame).await,
            event::ACCESS_TOKEN => self.access_token(frame).await,
            event::LEAVE => {
                self.push(reply_ok(&frame));
                if let Some(channel) = self.channels.remove(&frame.topic) {
                    self.close_channel(channel);
                }
            }
            // Unknown channel events are ignored without a reply, as upstream does.
            _ => {}
        }
    }

    async fn on_binary(&mut self, bytes: &[u8]) {
        if self.vsn == Vsn::V1 {
            return; // V1 has no binary frames
        }
        // Only kind 3 (user broadcast) is used by clients; other kinds are dropped.
        let Ok(BinaryFrame::UserBroadcastPush {
            join_ref,
            r#ref,
            topic,
            event: user_event,
            metadata,
            payload,
        }) = BinaryFrame::decode_from_client(bytes)
        else {
            return;
        };
        let request = Frame::new(join_ref, r#ref, topic, event::BROADCAST, Value::Null);
        let Some(channel) = self.channels.get(&request.topic) else {
            return self.unmatched(&request);
        };
        let ack = channel.ack;
        let size = match &payload {
            BroadcastPayload::Json(s) => s.len(),
            BroadcastPayload::Binary(b) => b.len(),
        };
        if size > self.shared.config.limits.max_payload_bytes {
            if ack {
                self.push(Frame::reply_to(
                    &request,
                    "error",
                    json!("payload_size_exceeded"),
                ));
            }
            return;
        }
        // Subscribers parse a payload flagged JSON (realtime-js throws on bad JSON and the
        // subscriber dies), so only valid JSON is relayed, as on the REST path.
        if let BroadcastPayload::Json(text) = &payload {
            if serde_json::from_str::<serde::de::IgnoredAny>(text).is_err() {
                return self.push(reply_reason(&request, INVALID_JSON_PAYLOAD));
            }
        }
        // The metadata's only key in use is `persist` (realtime-js sends nothing else).
        let persist = match serde_json::from_str::<Value>(&metadata) {
            Ok(meta) => stored::persist_option(meta.get("persist")),
            Err(_) => Ok(None),
        };
        let persist = match persist {
            Ok(p) => p,
            Err(e) => return self.push(Frame::reply_to(&request, "error", json!({ "error": e }))),
        };
        if !self.may_write(&request.topic, Extension::Broadcast).await {
            return;
        }
        let Some(channel) = self.channels.get(&request.topic) else {
            return;
        };
        if let Some(ttl) = persist {
            let payload = StoredPayload::from(payload);
            let except = (!channel.broadcast_self).then_some(channel.sub);
            let key = channel.key.clone();
            let msg = ToStore {
                key: &key,
                event: &user_event,
                payload,
                ttl,
                except,
            };
            return match stored::store_and_fan_out(&self.shared, msg, None).await {
                Ok(_) if ack => self.push(reply_ok(&request)),
                Ok(_) => {}
                Err(e) => self.push(Frame::reply_to(&request, "error", json!({ "error": e }))),
            };
        }
        // Other client metadata is not relayed (upstream does not relay it either).
        let msg = Fanout::user(request.topic.clone(), user_event, String::new(), payload);
        let except = (!channel.broadcast_self).then_some(channel.sub);
        self.shared.hub.broadcast(&channel.key, msg, except);
        if ack {
            self.push(reply_ok(&request));
        }
    }

    /// Moves a queued delivery into this step's output; returns its size in bytes.
    fn on_delivery(&mut self, delivery: Delivery) -> usize {
        // Deliveries for a subscription that ended meanwhile (left, or replaced) are stale;
        // dropping one releases its bytes.
        let Some(channel) = self.channels.values_mut().find(|c| c.sub == delivery.sub) else {
            return 0;
        };
        let msg = match delivery.item {
            // A stored message this channel already got by replay.
            Item::Fanout(msg)
                if !channel.replayed.is_empty()
                    && msg
                        .message_id()
                        .is_some_and(|id| channel.replayed.remove(id)) =>
            {
                return 0
            }
            Item::Fanout(msg) => msg.encoded(self.vsn),
            Item::Encoded(msg) => Some(msg),
        };
        let Some(msg) = msg else { return 0 };
        let len = msg.len();
        self.out.push((msg, Some(delivery.charge)));
        len
    }

    /// Why the socket is dropped when its outbox overflowed.
    fn too_slow(&self) -> String {
        let limits = &self.shared.config.limits;
        if self.outbox.queued() > self.outbox.max() {
            format!(
                "too slow: more than {} bytes queued for this socket",
                self.outbox.max()
            )
        } else {
            format!(
                "too slow: more than {} messages queued for this socket",
                limits.outbound_queue
            )
        }
    }

    /// Shuts down every channel that crossed its own byte limit (the socket stays).
    fn close_overflowed_channels(&mut self) {
        let overflowed: Vec<String> = self
            .channels
            .values()
            .filter(|c| c.budget.overflowed())
            .map(|c| c.topic.clone())
            .collect();
        let max = self.shared.config.limits.max_channel_queue_bytes;
        for topic in overflowed {
            let message = format!(
                "Too slow: more than {max} bytes queued for this channel; the client does not read them fast enough"
            );
            self.shutdown_channel(&topic, &message);
        }
    }

    async fn join(&mut self, frame: Frame) {
        if !frame.topic.starts_with(TOPIC_PREFIX) {
            return self.unmatched(&frame);
        }
        // A duplicate join replaces the old channel: it is closed with its own join_ref first.
        if let Some(old) = self.channels.remove(&frame.topic) {
            self.close_channel(old);
        }
        match self.open_channel(&frame).await {
            Ok(()) => {}
            Err(reason) => {
                let reply = reply_reason(&frame, &reason);
                let msg = Outgoing::text(reply.encode_server(self.vsn));
                let delay = self.shared.config.join_error_delay;
                if delay.is_zero() {
                    self.out.push((msg, None));
                } else {
                    // Upstream delays join errors to slow down rejoin loops; the socket
                    // keeps serving its other channels meanwhile.
                    let tx = self.delayed_tx.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(delay).await;
                        let _ = tx.send(msg);
                    });
                }
            }
        }
    }

    /// Validates a join and, when it is allowed, subscribes and answers it.
    async fn open_channel(&mut self, frame: &Frame) -> Result<(), String> {
        let name = &frame.topic[TOPIC_PREFIX.len()..];
        if name.is_empty() {
            return Err("TopicNameRequired: You must provide a topic name".into());
        }
        if self.channels.len() >= self.shared.config.limits.max_channels_per_client {
            return Err("ChannelRateLimitReached: Too many channels".into());
        }
        // The protocol crate reads the join as the server does: leniently, field by field.
        let join = JoinPayload::deserialize(&frame.payload).unwrap_or_default();
        let config = join.config.unwrap_or_default();
        // As upstream: an `sb_…` key means "use the connection's token"; otherwise the legacy
        // `user_token` wins over `access_token`, and without either the connection's is used.
        let opaque_key = join
            .access_token
            .as_deref()
            .or(join.user_token.as_deref())
            .is_some_and(|t| t.starts_with("sb_"));
        let given = join.user_token.as_deref().or(join.access_token.as_deref());
        let token = match given {
            Some(t) if !opaque_key => t,
            _ => &self.conn_token,
        }
        .trim()
        .to_owned();
        let verified = self
            .shared
            .jwt
            .verify(&token)
            .map_err(|e| e.join_reason())?;
        let private = config.private;
        let broadcast = &config.broadcast;
        let replay = stored::replay_params(broadcast.replay.as_ref())?;
        if !private && replay.is_some() {
            return Err(stored::REPLAY_PUBLIC.into());
        }
        let access = if private {
            self.check_read(&verified.claims, name).await?
        } else {
            Access::ALL
        };
        let replayed = match (replay, &self.shared.pg) {
            (Some(_), _) if !access.broadcast => return Err(unauthorized(name)),
            (Some((since, limit)), Some(pg)) => pg
                .replay(name, since, limit)
                .await
                .map_err(|_| stored::REPLAY_FAILED.to_owned())?,
            _ => Vec::new(),
        };
        let replication_ready = broadcast.replication_ready;
        let broadcast_self = broadcast.self_;
        let ack = broadcast.ack;
        let presence_enabled = config.presence.enabled;
        let presence_key = match config.presence.key {
            key if key.is_empty() => ids::uuid_v1(),
            key => key,
        };
        let mut bindings = Vec::new();
        let mut echoed = Vec::new();
        for PostgresBinding(map) in config.postgres_changes {
            let id = ids::binding_id(&map);
            let mut with_id = Map::with_capacity(map.len() + 1);
            with_id.insert("id".into(), json!(id));
            with_id.extend(map.iter().map(|(k, v)| (k.clone(), v.clone())));
            echoed.push(Value::Object(with_id));
            bindings.push((id, map));
        }

        let key = TopicKey {
            private,
            name: name.to_owned(),
        };
        let sub = self.shared.next_sub();
        let budget = ChannelBudget::new(self.shared.config.limits.max_channel_queue_bytes);
        let state =
            self.shared
                .hub
                .join(&key, sub, &self.outbox, &budget, presence_enabled, access);
        let mut channel = Channel {
            sub,
            key,
            topic: frame.topic.clone(),
            join_ref: frame.join_ref.clone(),
            broadcast_self,
            ack,
            presence_key,
            token,
            claims: verified.claims,
            exp: verified.exp,
            bindings,
            pg: None,
            budget,
            can_write_broadcast: None,
            can_write_presence: None,
            replayed: replayed.iter().map(|m| m.id.clone()).collect(),
        };
        self.push(Frame::reply_to(
            frame,
            "ok",
            json!({ "postgres_changes": echoed }),
        ));
        // Stored messages first, oldest first, before anything live.
        for msg in &replayed {
            if let Some(out) =
                stored::replayed_frame(self.vsn, channel.join_ref.as_deref(), &channel.topic, msg)
            {
                self.out.push((out, None));
            }
        }
        if let Some(state) = state {
            // The state's text is the topic's, shared by every joiner; only the envelope
            // (with this join's ref) is this socket's own.
            let msg = Outgoing::push(
                self.vsn,
                channel.join_ref.as_deref(),
                &channel.topic,
                event::PRESENCE_STATE,
                state,
            );
            self.out.push((msg, None));
        }
        if !channel.bindings.is_empty() {
            if self.shared.pg.is_some() {
                channel.pg = self.pg_subscribe(&channel);
            } else {
                let system = Frame::new(
                    channel.join_ref.clone(),
                    None,
                    channel.topic.clone(),
                    event::SYSTEM,
                    json!({"extension": "postgres_changes", "status": "error", "message": NO_DATABASE, "channel": name}),
                );
                self.push(system);
            }
        }
        let topic = channel.topic.clone();
        self.channels.insert(topic.clone(), channel);
        if replication_ready {
            // The server reads changes from the moment it has a database (the stream is
            // running before it accepts connections), so readiness is known at join time.
            if self.shared.pg.is_some() {
                self.push(Frame::new(
                    frame.join_ref.clone(),
                    None,
                    topic,
                    event::SYSTEM,
                    json!({"extension": "system", "status": "ok", "message": REPLICATION_READY, "channel": name}),
                ));
            } else {
                self.shutdown_channel(&topic, REPLICATION_NOT_READY);
            }
        }
        Ok(())
    }

    /// Private channels: read access is decided by RLS in the database; a join needs
    /// broadcast or presence read.
    async fn check_read(&self, claims: &Value, name: &str) -> Result<Access, String> {
        let denied = unauthorized(name);
        let Some(pg) = &self.shared.pg else {
            return Err(format!(
                "{denied} (private channels need a database: start the server with --database-url)"
            ));
        };
        match pg.private_access(claims, name).await {
            Ok(a) if a.broadcast_read || a.presence_read => Ok(Access {
                broadcast: a.broadcast_read,
                presence: a.presence_read,
            }),
            Ok(_) => Err(denied),
            Err(_) => Err("Realtime was unable to connect to the project database".into()),
        }
    }

    fn pg_subscribe(&self, channel: &Channel) -> Option<PgLink> {
        let pg = self.shared.pg.as_ref()?;
        let (tx, mut rx) = mpsc::unbounded_channel();
        let subscription = pg.subscribe(
            Subscriber {
                channel: channel.key.name.clone(),
                bindings: channel.bindings.clone(),
                claims: channel.claims.clone(),
            },
            tx,
        );
        let (outbox, budget, sub, vsn) = (
            Arc::clone(&self.outbox),
            Arc::clone(&channel.budget),
            channel.sub,
            self.vsn,
        );
        let (topic, join_ref, name) = (
            channel.topic.clone(),
            channel.join_ref.clone(),
            channel.key.name.clone(),
        );
        // Encodes each event for this socket and queues it like any other delivery, so the
        // channel's and the socket's byte limits bound postgres changes too.
        let forward = tokio::spawn(async move {
            while let Some(ev) = rx.recv().await {
                // Past a limit the channel (or socket) is being closed: stop taking events,
                // which ends the subscription's hand-off queue too.
                if budget.overflowed() || outbox.overflowed() {
                    break;
                }
                let frame = match ev {
                    PgEvent::System { status, message } => Frame::new(
                        join_ref.clone(),
                        None,
                        topic.clone(),
                        event::SYSTEM,
                        json!({"extension": "postgres_changes", "status": status, "message": message, "channel": name}),
                    ),
                    PgEvent::Change(payload) => Frame::new(
                        None,
                        None,
                        topic.clone(),
                        event::POSTGRES_CHANGES,
                        // Each subscriber gets its own payload, so this rarely copies.
                        Arc::try_unwrap(payload).unwrap_or_else(|shared| (*shared).clone()),
                    ),
                };
                let msg = Outgoing::text(frame.encode_server(vsn));
                let len = msg.len();
                outbox.offer(&budget, sub, Item::Encoded(msg), len);
            }
        });
        Some(PgLink {
            _subscription: subscription,
            forward,
        })
    }

    /// Write permission on a private channel, asked once per extension and cached.
    async fn may_write(&mut self, topic: &str, extension: Extension) -> bool {
        let Some(channel) = self.channels.get(topic) else {
            return false;
        };
        if !channel.key.private {
            return true;
        }
        let cached = match extension {
            Extension::Broadcast => channel.can_write_broadcast,
            Extension::Presence => channel.can_write_presence,
        };
        if let Some(allowed) = cached {
            return allowed;
        }
        let allowed = match &self.shared.pg {
            Some(pg) => pg
                .can_write(&channel.claims, &channel.key.name, extension)
                .await
                .unwrap_or(false),
            None => false,
        };
        if let Some(channel) = self.channels.get_mut(topic) {
            match extension {
                Extension::Broadcast => channel.can_write_broadcast = Some(allowed),
                Extension::Presence => channel.can_write_presence = Some(allowed),
            }
        }
        allowed
    }

    async fn broadcast_json(&mut self, frame: Frame, frame_len: usize) {
        let Some(channel) = self.channels.get(&frame.topic) else {
            return;
        };
        let ack = channel.ack;
        // A broadcast is an object ({type, event, payload}) whose event is a string:
        // subscribers dispatch on the event name (realtime-js throws on anything else and the
        // subscriber dies), so nothing else is relayed.
        if !frame.payload.is_object() {
            return self.push(reply_reason(&frame, NOT_AN_OBJECT));
        }
        if !frame.payload.get("event").is_some_and(Value::is_string) {
            return self.push(reply_reason(&frame, EVENT_NOT_A_STRING));
        }
        let max = self.shared.config.limits.max_payload_bytes;
        // The frame's length bounds the payload's; measure exactly only when it might matter.
        if frame_len > max && frame.payload.to_string().len() > max {
            if ack {
                self.push(Frame::reply_to(
                    &frame,
                    "error",
                    json!("payload_size_exceeded"),
                ));
            }
            return;
        }
        // Without write permission the message is dropped silently, even with ack.
        if !self.may_write(&frame.topic, Extension::Broadcast).await {
            return;
        }
        let Some(channel) = self.channels.get(&frame.topic) else {
            return;
        };
        match stored::persist_option(frame.payload.get("persist")) {
            Ok(None) => {}
            Ok(Some(ttl)) => {
                let push = frame.payload.as_object().cloned().unwrap_or_default();
                let user_event = push
                    .get("event")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                let inner = push.get("payload").cloned().unwrap_or(Value::Null);
                let except = (!channel.broadcast_self).then_some(channel.sub);
                let key = channel.key.clone();
                let msg = ToStore {
                    key: &key,
                    event: &user_event,
                    payload: StoredPayload::Json(inner.to_string()),
                    ttl,
                    except,
                };
                return match stored::store_and_fan_out(&self.shared, msg, Some(push)).await {
                    Ok(_) if ack => self.push(reply_ok(&frame)),
                    Ok(_) => {}
                    Err(e) => self.push(Frame::reply_to(&frame, "error", json!({ "error": e }))),
                };
            }
            Err(e) => return self.push(Frame::reply_to(&frame, "error", json!({ "error": e }))),
        }
        // The whole push payload is relayed unchanged (extra keys survive).
        let msg = Fanout::json(frame.topic.clone(), event::BROADCAST, frame.payload.clone());
        let except = (!channel.broadcast_self).then_some(channel.sub);
        self.shared.hub.broadcast(&channel.key, msg, except);
        if ack {
            self.push(reply_ok(&frame));
        }
    }

    async fn presence(&mut self, frame: Frame) {
        // A presence message without an `event` is a no-op that is still acknowledged.
        if frame.payload.get("event").is_none() {
            return self.push(reply_ok(&frame));
        }
        let limits = self.shared.config.limits.clone();
        let Some(channel) = self.channels.get(&frame.topic) else {
            return;
        };
        // Counted per socket and topic, and per topic and presence key across sockets, so
        // neither leaving and joining again nor a second socket resets the count.
        let now = Instant::now();
        let window = limits.presence_window;
        let on_socket = self.presence_calls.record(frame.topic.clone(), now, window);
        let on_key =
            self.shared
                .hub
                .presence_call(&channel.key, &channel.presence_key, now, window);
        if on_socket.max(on_key) > limits.presence_max_calls {
            let topic = frame.topic.clone();
            return self.shutdown_channel(&topic, "Client presence rate limit exceeded");
        }
        let inner = frame
            .payload
            .get("event")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_ascii_lowercase();
        match inner.as_str() {
            "track" => {
                let payload = frame.payload.get("payload").cloned().unwrap_or(Value::Null);
                if !payload.is_object() {
                    return self.push(reply_reason(&frame, "Presence track payload must be a map"));
                }
                if payload.to_string().len() > limits.max_payload_bytes {
                    return self
                        .shutdown_channel(&frame.topic.clone(), "Track message size exceeded");
                }
                if !self.may_write(&frame.topic, Extension::Presence).await {
                    return self.push(Frame::reply_to(&frame, "error", json!({})));
                }
                let Some(channel) = self.channels.get(&frame.topic) else {
                    return;
                };
                self.shared
                    .hub
                    .track(&channel.key, channel.sub, &channel.presence_key, payload);
                self.push(reply_ok(&frame));
            }
            "untrack" => {
                self.shared.hub.untrack(&channel.key, channel.sub);
                self.push(reply_ok(&frame));
            }
            _ => self.push(Frame::reply_to(&frame, "error", json!({}))),
        }
    }

    async fn access_token(&mut self, frame: Frame) {
        let Some(channel) = self.channels.get(&frame.topic) else {
            return;
        };
        let verified = match frame.payload.get("access_token") {
            None | Some(Value::Null) => return,
            Some(Value::String(t)) if t.starts_with("sb_") || *t == channel.token => return,
            Some(Value::String(t)) => self.shared.jwt.verify(t).map(|v| (t.trim().to_owned(), v)),
            // Not a string: not an access_token message upstream either; ignored.
            Some(_) => return,
        };
        let (token, verified) = match verified {
            Ok(ok) => ok,
            Err(e) => return self.shutdown_channel(&frame.topic, &e.message(false)),
        };
        if channel.key.private {
            // Policies are re-evaluated with the new claims; losing read access ends the channel.
            let (key, sub) = (channel.key.clone(), channel.sub);
            match self.check_read(&verified.claims, &key.name).await {
                Ok(access) => self.shared.hub.set_access(&key, sub, access),
                Err(_) => {
                    let message = format!(
                        "You no longer have permission to read from this Channel topic: {}",
                        key.name
                    );
                    return self.shutdown_channel(&frame.topic, &message);
                }
            }
        }
        let Some(channel) = self.channels.get_mut(&frame.topic) else {
            return;
        };
        channel.token = token;
        channel.claims = verified.claims;
        channel.exp = verified.exp;
        channel.can_write_broadcast = None;
        channel.can_write_presence = None;
        if !channel.bindings.is_empty() && self.shared.pg.is_some() {
            // Re-subscribe with the new claims; the old subscription ends first.
            channel.pg = None;
            let link = self.pg_subscribe(&self.channels[&frame.topic]);
            if let Some(channel) = self.channels.get_mut(&frame.topic) {
                channel.pg = link;
            }
        }
    }

    /// The earliest token expiry among the channels.
    fn next_expiry(&self) -> Option<Instant> {
        let exp = self
            .channels
            .values()
            .map(|c| c.exp)
            .fold(f64::INFINITY, f64::min);
        if !exp.is_finite() {
            return None;
        }
        let left = (exp - now_secs()).max(0.0);
        Some(Instant::now() + Duration::from_secs_f64(left.min(1e9)))
    }

    fn expire_tokens(&mut self) {
        let now = now_secs();
        let expired: Vec<(String, f64)> = self
            .channels
            .values()
            .filter(|c| c.exp <= now)
            .map(|c| (c.topic.clone(), c.exp))
            .collect();
        for (topic, exp) in expired {
            let ago = (now - exp).floor() as i64;
            self.shutdown_channel(&topic, &format!("Token has expired {ago} seconds ago"));
        }
    }

    /// The server ends a channel: a `system` error naming why, then `phx_close`.
    fn shutdown_channel(&mut self, topic: &str, message: &str) {
        let Some(channel) = self.channels.remove(topic) else {
            return;
        };
        self.push(Frame::new(
            channel.join_ref.clone(),
            None,
            channel.topic.clone(),
            event::SYSTEM,
            json!({"extension": "system", "status": "error", "message": message, "channel": channel.key.name}),
        ));
        self.close_channel(channel);
    }

    /// Unsubscribes a channel and sends its `phx_close` (both refs = its join_ref).
    fn close_channel(&mut self, channel: Channel) {
        self.shared.hub.leave(&channel.key, channel.sub);
        self.push(Frame::new(
            channel.join_ref.clone(),
            channel.join_ref.clone(),
            channel.topic.clone(),
            event::CLOSE,
            json!({}),
        ));
    }

    fn leave_all(&mut self) {
        for (_, channel) in self.channels.drain() {
            self.shared.hub.leave(&channel.key, channel.sub);
        }
    }
}
