//! Everything the client tells the application, delivered in order on the dispatch queue.

use std::time::Duration;

use serde_json::Value;

use crate::error::ErrorKind;

/// Identifies a channel inside one client (handles, engine and dispatch queue agree on it).
pub(crate) type ChannelId = u64;

/// A broadcast or REST payload: JSON, or opaque bytes (binary kind 3/4 frames on vsn 2.0.0).
#[derive(Debug, Clone, PartialEq)]
pub enum Payload {
    Json(Value),
    Binary(Vec<u8>),
}

impl From<Value> for Payload {
    fn from(v: Value) -> Self {
        Payload::Json(v)
    }
}

impl From<Vec<u8>> for Payload {
    fn from(v: Vec<u8>) -> Self {
        Payload::Binary(v)
    }
}

/// The socket's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConnectionState {
    /// Not connected and not trying (initial state, or after `disconnect`).
    Disconnected,
    /// A connection attempt (or a wait before the next one) is in progress.
    Connecting,
    /// The WebSocket is open.
    Connected,
    /// `shutdown` was called or the last handle dropped; the client cannot connect again.
    ShutDown,
}

/// A channel's state, as phoenix.js names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChannelState {
    Closed,
    Joining,
    Joined,
    Leaving,
    Errored,
}

/// The statuses realtime-js hands to `subscribe` callbacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SubscribeStatus {
    /// `SUBSCRIBED`: joined (and, with postgres bindings and readiness on, changes flow).
    Subscribed,
    /// `TIMED_OUT`: no join reply within the push timeout (the client keeps retrying).
    TimedOut,
    /// `CLOSED`: the channel ended (unsubscribe, or the server closed it); no retry.
    Closed,
    /// `CHANNEL_ERROR`: the server refused or the link broke; `reason` says why.
    ChannelError,
}

impl SubscribeStatus {
    /// The realtime-js spelling (`SUBSCRIBED`, `TIMED_OUT`, `CLOSED`, `CHANNEL_ERROR`).
    pub fn as_str(self) -> &'static str {
        match self {
            SubscribeStatus::Subscribed => "SUBSCRIBED",
            SubscribeStatus::TimedOut => "TIMED_OUT",
            SubscribeStatus::Closed => "CLOSED",
            SubscribeStatus::ChannelError => "CHANNEL_ERROR",
        }
    }
}

/// Heartbeat outcomes, as phoenix.js reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HeartbeatStatus {
    Sent,
    Ok,
    Error,
    Timeout,
}

/// A received broadcast.
#[derive(Debug, Clone, PartialEq)]
pub struct Broadcast {
    /// The channel topic (`realtime:room1`).
    pub topic: String,
    /// The user event name.
    pub event: String,
    pub payload: Payload,
    /// `meta` (e.g. `{"id": ...}` for stored and database-originated messages), when present.
    pub meta: Option<Value>,
}

impl Broadcast {
    /// The stored message's id (`meta.id`), for persisted messages: the same whether the
    /// message came live or replayed.
    pub fn id(&self) -> Option<&str> {
        self.meta.as_ref()?.get("id")?.as_str()
    }

    /// Delivered by a replay on join (`meta.replayed`), not live.
    pub fn replayed(&self) -> bool {
        self.meta
            .as_ref()
            .and_then(|m| m.get("replayed"))
            .and_then(Value::as_bool)
            .unwrap_or(false)
    }
}

/// A presence change; metas carry `presence_ref` (phoenix's `phx_ref` keys removed).
#[derive(Debug, Clone, PartialEq)]
pub enum PresenceEvent {
    /// The state was updated (after a full state or a diff); read it with `presence_state()`.
    Sync { topic: String },
    /// `key` gained metas: `current` were known before, `new` arrived.
    Join {
        topic: String,
        key: String,
        current: Vec<Value>,
        new: Vec<Value>,
    },
    /// `key` lost metas: `current` remain, `left` went away.
    Leave {
        topic: String,
        key: String,
        current: Vec<Value>,
        left: Vec<Value>,
    },
}

impl PresenceEvent {
    pub fn topic(&self) -> &str {
        match self {
            PresenceEvent::Sync { topic }
            | PresenceEvent::Join { topic, .. }
            | PresenceEvent::Leave { topic, .. } => topic,
        }
    }
}

/// A database change, shaped as realtime-js hands it to callbacks (values converted by column type).
#[derive(Debug, Clone, PartialEq)]
pub struct PostgresChange {
    pub topic: String,
    pub schema: String,
    pub table: String,
    pub commit_timestamp: String,
    /// `INSERT`, `UPDATE` or `DELETE`.
    pub event_type: String,
    /// The new row (INSERT/UPDATE), else `{}`.
    pub new: Value,
    /// The old row (UPDATE/DELETE: replica-identity columns), else `{}`.
    pub old: Value,
    /// `null` or an array of error strings (`Error 401: Unauthorized`, ...).
    pub errors: Value,
    /// `[{name, type}]` as sent by the server.
    pub columns: Value,
    /// Indices (registration order) of the channel's bindings this change matched.
    pub bindings: Vec<usize>,
}

/// One event on a client's dispatch queue.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// The socket's state changed; `reason` says why when it was not requested.
    ConnectionStatus {
        state: ConnectionState,
        reason: Option<String>,
    },
    /// A heartbeat was sent or answered (`rtt` on `Ok`).
    Heartbeat {
        status: HeartbeatStatus,
        rtt: Option<Duration>,
    },
    /// A channel's subscribe status, with the server's reason text when there is one.
    ChannelStatus {
        topic: String,
        status: SubscribeStatus,
        reason: Option<String>,
        error_kind: Option<ErrorKind>,
    },
    Broadcast(Broadcast),
    Presence(PresenceEvent),
    /// Boxed: a change is much larger than the other events.
    PostgresChange(Box<PostgresChange>),
    /// A `system` message (`{extension, status, message, channel}`), delivered as sent.
    System {
        topic: String,
        payload: Value,
    },
    /// The channel joined again after being away for `gap`: events may have been missed.
    /// With [`auto_replay`](crate::ChannelOptions::auto_replay), it comes after the replayed
    /// messages, and `filled` says that every broadcast stored during the gap was delivered
    /// (`false` without gap fill, or when more were stored than one replay carries).
    Resumed {
        topic: String,
        gap: Duration,
        filled: bool,
    },
    /// The queue was full: this many data events were dropped here.
    Lagged {
        dropped: u64,
    },
    /// A problem not tied to a request (malformed frame, token provider failure, ...).
    Error {
        message: String,
    },
}

impl Event {
    /// The channel topic this event belongs to, if any.
    pub fn topic(&self) -> Option<&str> {
        match self {
            Event::ChannelStatus { topic, .. }
            | Event::System { topic, .. }
            | Event::Resumed { topic, .. } => Some(topic),
            Event::Broadcast(b) => Some(&b.topic),
            Event::Presence(p) => Some(p.topic()),
            Event::PostgresChange(c) => Some(&c.topic),
            _ => None,
        }
    }

    /// The distinct terminal status for a refused access token: `CHANNEL_ERROR`, terminal,
    /// with a token reason (see [`crate::is_token_rejection`]). The channel will not rejoin;
    /// get a new token, `set_auth`, and subscribe a new channel.
    pub fn is_token_rejected(&self) -> bool {
        matches!(
            self,
            Event::ChannelStatus {
                status: SubscribeStatus::ChannelError,
                error_kind: Some(ErrorKind::Terminal),
                reason: Some(r),
                ..
            } if crate::error::is_token_rejection(r)
        )
    }

    /// Lifecycle events are never dropped when the queue is full; data events may be.
    pub fn is_lifecycle(&self) -> bool {
        matches!(
            self,
            Event::ConnectionStatus { .. }
                | Event::ChannelStatus { .. }
                | Event::Resumed { .. }
                | Event::Lagged { .. }
                | Event::Error { .. }
        )
    }
}
