//! Records and enums crossing the boundary, and their conversions from the core types.
//! JSON values travel as text (`*_json` fields).

use std::collections::HashMap;
use std::time::Duration;

use serde_json::Value;

use super::error::{parse_json, RealtimeError};
use crate::{error as core_error, event as core, options as core_options};

/// The socket's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum ConnectionState {
    Disconnected,
    Connecting,
    Connected,
    ShutDown,
}

/// A channel's state, as phoenix.js names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum ChannelState {
    Closed,
    Joining,
    Joined,
    Leaving,
    Errored,
}

/// realtime-js' subscribe statuses (`SUBSCRIBED`, `TIMED_OUT`, `CLOSED`, `CHANNEL_ERROR`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum SubscribeStatus {
    Subscribed,
    TimedOut,
    Closed,
    ChannelError,
}

/// Heartbeat outcomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum HeartbeatStatus {
    Sent,
    Ok,
    Error,
    Timeout,
}

/// Whether an error may clear up by itself (the client retries) or not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum ErrorKind {
    Recoverable,
    Terminal,
}

/// Who runs listeners: a dispatch thread per client (default), or the app via `dispatch()`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum DispatchMode {
    Thread,
    AppPumped,
}

/// Serializer version: 2.0.0 (default; binary broadcasts) or 1.0.0 (JSON only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum SerializerVersion {
    V1,
    V2,
}

/// Client configuration. Only `url` and `api_key` are required; `None` keeps the library
/// default (realtime-js' values: heartbeat 25 s, push timeout 10 s, reconnect 1/2/5/10 s).
#[derive(Debug, Clone, uniffi::Record)]
pub struct ClientOptions {
    /// `http(s)://.../realtime/v1` or a full `ws(s)://.../websocket` URL.
    pub url: String,
    /// The project's API key (sent as `apikey`).
    pub api_key: String,
    /// A user JWT for channel joins; defaults to the API key.
    #[uniffi(default = None)]
    pub access_token: Option<String>,
    /// Extra query parameters.
    #[uniffi(default)]
    pub params: HashMap<String, String>,
    /// Extra HTTP headers on the upgrade request and REST calls.
    #[uniffi(default)]
    pub headers: HashMap<String, String>,
    #[uniffi(default = None)]
    pub vsn: Option<SerializerVersion>,
    #[uniffi(default = None)]
    pub heartbeat_interval_ms: Option<u64>,
    #[uniffi(default = None)]
    pub push_timeout_ms: Option<u64>,
    #[uniffi(default = None)]
    pub reconnect_delays_ms: Option<Vec<u64>>,
    /// 0..1: each delay is scaled by a random factor in `[1 - j, 1 + j]`.
    #[uniffi(default = None)]
    pub reconnect_jitter: Option<f64>,
    #[uniffi(default = None)]
    pub rejoin_delays_ms: Option<Vec<u64>>,
    /// Extra trusted root certificates (PEM).
    #[uniffi(default = None)]
    pub custom_ca_pem: Option<String>,
    /// Trust the platform's roots besides the bundled ones.
    #[uniffi(default = false)]
    pub native_roots: bool,
    #[uniffi(default = None)]
    pub dispatch: Option<DispatchMode>,
    /// Data events queued beyond this are dropped and reported by one `Lagged` event.
    #[uniffi(default = None)]
    pub queue_capacity: Option<u32>,
    /// With a token provider: ask it this long before the JWT's `exp` (default 60 s).
    #[uniffi(default = None)]
    pub token_refresh_margin_ms: Option<u64>,
    /// With a token provider: join refusals for the token tolerated before the channel stops
    /// (default 3).
    #[uniffi(default = None)]
    pub auth_retries: Option<u32>,
    /// The largest WebSocket message read from the server, in bytes (default 16 MiB, at least
    /// 1024). A larger one is a `ClientError` event and the connection is dropped and
    /// reconnected.
    #[uniffi(default = None)]
    pub max_message_size: Option<u64>,
    /// The largest frame decoded into events, in bytes (default 8 MiB, at least 1024). A larger
    /// one is skipped with a `ClientError` event; the connection stays up.
    #[uniffi(default = None)]
    pub max_payload_size: Option<u64>,
    /// Per channel, the presence keys kept (default 100,000, at least 1). A presence state or
    /// diff that would go over is not applied and is reported as a `ClientError` event.
    #[uniffi(default = None)]
    pub max_presence_keys: Option<u64>,
    /// Per channel, the presence state's size as JSON text, in bytes (default 32 MiB, at least
    /// 1024); over it, as for `max_presence_keys`.
    #[uniffi(default = None)]
    pub max_presence_size: Option<u64>,
}

fn millis(v: &[u64]) -> Vec<Duration> {
    v.iter().map(|ms| Duration::from_millis(*ms)).collect()
}

impl ClientOptions {
    pub(crate) fn into_core(self) -> core_options::ClientOptions {
        let mut o = core_options::ClientOptions::new(self.url, self.api_key);
        o.access_token = self.access_token;
        // HashMap order is arbitrary; sort for a stable URL.
        let mut params: Vec<_> = self.params.into_iter().collect();
        params.sort();
        o.params = params;
        let mut headers: Vec<_> = self.headers.into_iter().collect();
        headers.sort();
        o.headers = headers;
        if let Some(v) = self.vsn {
            o.vsn = match v {
                SerializerVersion::V1 => core_options::Vsn::V1,
                SerializerVersion::V2 => core_options::Vsn::V2,
            };
        }
        if let Some(ms) = self.heartbeat_interval_ms {
            o.heartbeat_interval = Duration::from_millis(ms);
        }
        if let Some(ms) = self.push_timeout_ms {
            o.push_timeout = Duration::from_millis(ms);
        }
        if let Some(d) = self.reconnect_delays_ms {
            o.reconnect_delays = millis(&d);
        }
        if let Some(j) = self.reconnect_jitter {
            o.reconnect_jitter = j;
        }
        if let Some(d) = self.rejoin_delays_ms {
            o.rejoin_delays = millis(&d);
        }
        o.custom_ca_pem = self.custom_ca_pem.map(String::into_bytes);
        o.native_roots = self.native_roots;
        if let Some(d) = self.dispatch {
            o.dispatch = match d {
                DispatchMode::Thread => core_options::DispatchMode::Thread,
                DispatchMode::AppPumped => core_options::DispatchMode::AppPumped,
            };
        }
        if let Some(n) = self.queue_capacity {
            o.queue_capacity = n as usize;
        }
        if let Some(ms) = self.token_refresh_margin_ms {
            o.token_refresh_margin = Duration::from_millis(ms);
        }
        if let Some(n) = self.auth_retries {
            o.auth_retries = n;
        }
        // (A value beyond the address space is no bound at all.)
        let size = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
        if let Some(n) = self.max_message_size {
            o.max_message_size = size(n);
        }
        if let Some(n) = self.max_payload_size {
            o.max_payload_size = size(n);
        }
        if let Some(n) = self.max_presence_keys {
            o.max_presence_keys = size(n);
        }
        if let Some(n) = self.max_presence_size {
            o.max_presence_size = size(n);
        }
        o
    }
}

/// Options for one channel, sent in its join `config`.
#[derive(Debug, Clone, uniffi::Record)]
pub struct ChannelOptions {
    /// Receive your own broadcasts.
    #[uniffi(default = false)]
    pub broadcast_self: bool,
    /// Ask the server to ack broadcasts: `send_broadcast` then completes on the ack.
    #[uniffi(default = false)]
    pub broadcast_ack: bool,
    /// Presence key; empty lets the server pick one.
    #[uniffi(default = "")]
    pub presence_key: String,
    /// Presence on at join (a presence listener also turns it on).
    #[uniffi(default = false)]
    pub presence_enabled: bool,
    /// Private channel (authorized by RLS on `realtime.messages`).
    #[uniffi(default = false)]
    pub private: bool,
    /// With postgres bindings, report SUBSCRIBED only once changes flow.
    #[uniffi(default = true)]
    pub wait_for_postgres_ready: bool,
    #[uniffi(default = 20000)]
    pub postgres_ready_timeout_ms: u64,
    /// Replay stored broadcasts on join (private channels only) from this Unix time in ms.
    #[uniffi(default = None)]
    pub replay_since_ms: Option<i64>,
    /// At most this many replayed messages (the server's default and cap: 25).
    #[uniffi(default = None)]
    pub replay_limit: Option<u32>,
    /// Ask for the `system` message that says the channel's replication is ready.
    #[uniffi(default = false)]
    pub replication_ready: bool,
    /// Gap fill (private channels only): replay what was stored during an outage.
    #[uniffi(default = false)]
    pub auto_replay: bool,
}

impl From<ChannelOptions> for core_options::ChannelOptions {
    fn from(o: ChannelOptions) -> Self {
        let options = core_options::ChannelOptions::default()
            .broadcast_self(o.broadcast_self)
            .broadcast_ack(o.broadcast_ack)
            .presence_key(o.presence_key)
            .presence_enabled(o.presence_enabled)
            .private(o.private)
            .wait_for_postgres_ready(o.wait_for_postgres_ready)
            .postgres_ready_timeout(Duration::from_millis(o.postgres_ready_timeout_ms));
        let replay = o.replay_since_ms.map(|since| {
            let r = core_options::Replay::since_ms(since);
            match o.replay_limit {
                Some(limit) => r.limit(limit),
                None => r,
            }
        });
        core_options::ChannelOptions {
            replay,
            replication_ready: o.replication_ready,
            auto_replay: o.auto_replay,
            ..options
        }
    }
}

/// One postgres-changes binding: `event` is `*`, `INSERT`, `UPDATE` or `DELETE`.
#[derive(Debug, Clone, uniffi::Record)]
pub struct PostgresChangesFilter {
    #[uniffi(default = "*")]
    pub event: String,
    #[uniffi(default = "public")]
    pub schema: String,
    #[uniffi(default = None)]
    pub table: Option<String>,
    /// PostgREST-style filter, e.g. `room_id=eq.1`.
    #[uniffi(default = None)]
    pub filter: Option<String>,
    #[uniffi(default = None)]
    pub select: Option<Vec<String>>,
}

impl From<PostgresChangesFilter> for crate::PostgresChangesFilter {
    fn from(f: PostgresChangesFilter) -> Self {
        let mut out = crate::PostgresChangesFilter::new(f.event, f.schema);
        out.table = f.table;
        out.filter = f.filter;
        out.select = f.select;
        out
    }
}

/// A broadcast payload: JSON text or raw bytes (vsn 2.0.0 binary frames).
#[derive(Debug, Clone, PartialEq, uniffi::Enum)]
pub enum Payload {
    Json { json: String },
    Binary { data: Vec<u8> },
}

impl Payload {
    pub(crate) fn into_core(self) -> Result<core::Payload, RealtimeError> {
        Ok(match self {
            Payload::Json { json } => core::Payload::Json(parse_json("payload", &json)?),
            Payload::Binary { data } => core::Payload::Binary(data),
        })
    }
}

impl From<&core::Payload> for Payload {
    fn from(p: &core::Payload) -> Self {
        match p {
            core::Payload::Json(v) => Payload::Json {
                json: v.to_string(),
            },
            core::Payload::Binary(b) => Payload::Binary { data: b.clone() },
        }
    }
}

/// A received broadcast.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct BroadcastMessage {
    pub topic: String,
    pub event: String,
    pub payload: Payload,
    /// `meta` (e.g. `{"id": ...}` for database-originated messages), when present.
    pub meta_json: Option<String>,
    /// The stored message's id (`meta.id`), for persisted messages.
    pub id: Option<String>,
    /// Delivered by a replay on join, not live.
    pub replayed: bool,
}

/// Presence changes; metas are JSON arrays of objects carrying `presence_ref`.
#[derive(Debug, Clone, PartialEq, uniffi::Enum)]
pub enum PresenceEvent {
    /// The state changed; read it with `presence_state_json()`.
    Sync { topic: String },
    Join {
        topic: String,
        key: String,
        current_json: String,
        new_json: String,
    },
    Leave {
        topic: String,
        key: String,
        current_json: String,
        left_json: String,
    },
}

/// A database change, shaped as realtime-js delivers it (values converted by column type).
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct PostgresChangePayload {
    pub topic: String,
    pub schema: String,
    pub table: String,
    pub commit_timestamp: String,
    /// `INSERT`, `UPDATE` or `DELETE`.
    pub event_type: String,
    /// The new row (`{}` for DELETE).
    pub new_json: String,
    /// The old row's replica-identity columns (`{}` for INSERT).
    pub old_json: String,
    /// `null` or an array of error strings.
    pub errors_json: String,
    /// `[{name, type}]`.
    pub columns_json: String,
    /// Which of the channel's bindings (registration order) matched.
    pub bindings: Vec<u32>,
}

/// Everything the client reports, in order, on its dispatch queue.
#[derive(Debug, Clone, PartialEq, uniffi::Enum)]
pub enum RealtimeEvent {
    ConnectionStatus {
        state: ConnectionState,
        reason: Option<String>,
    },
    Heartbeat {
        status: HeartbeatStatus,
        rtt_ms: Option<f64>,
    },
    /// A channel's subscribe status, with the server's reason when there is one.
    /// `token_rejected`: the terminal status for a refused access token (the channel will not
    /// rejoin: `set_auth` a new token and subscribe a new channel).
    ChannelStatus {
        topic: String,
        status: SubscribeStatus,
        reason: Option<String>,
        error_kind: Option<ErrorKind>,
        token_rejected: bool,
    },
    Broadcast {
        message: BroadcastMessage,
    },
    Presence {
        event: PresenceEvent,
    },
    PostgresChange {
        change: PostgresChangePayload,
    },
    System {
        topic: String,
        payload_json: String,
    },
    /// The channel joined again after `gap_ms` away: events may have been missed. With
    /// `auto_replay`, `filled` says every broadcast stored during the gap was delivered.
    Resumed {
        topic: String,
        gap_ms: u64,
        filled: bool,
    },
    /// The queue was full: this many data events were dropped.
    Lagged {
        dropped: u64,
    },
    /// A problem not tied to a request (malformed frame, token provider failure, ...).
    ClientError {
        message: String,
    },
}

/// A snapshot of the client's counters.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct Metrics {
    /// Successful socket opens, the first included.
    pub connects: u64,
    pub reconnects: u64,
    /// Frames received and sent (heartbeats included).
    pub messages_in: u64,
    pub messages_out: u64,
    /// The last heartbeat round trip, and the median/99th percentile of the last 128.
    pub heartbeat_rtt_ms: Option<f64>,
    pub heartbeat_rtt_p50_ms: Option<f64>,
    pub heartbeat_rtt_p99_ms: Option<f64>,
    /// Total time the client wanted a connection and had none.
    pub time_disconnected_ms: f64,
    /// Events waiting on the dispatch queue.
    pub queue_depth: u64,
    /// Data events dropped because the queue was full, and `Lagged` markers queued.
    pub dropped_events: u64,
    pub lagged_events: u64,
    /// Per live channel: time from its last (re)join attempt to SUBSCRIBED.
    pub join_latency: Vec<JoinLatency>,
}

/// One channel's last join latency.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct JoinLatency {
    pub topic: String,
    pub latency_ms: f64,
}

impl From<crate::Metrics> for Metrics {
    fn from(m: crate::Metrics) -> Self {
        Metrics {
            connects: m.connects,
            reconnects: m.reconnects,
            messages_in: m.messages_in,
            messages_out: m.messages_out,
            heartbeat_rtt_ms: m.heartbeat_rtt.map(ms),
            heartbeat_rtt_p50_ms: m.heartbeat_rtt_p50.map(ms),
            heartbeat_rtt_p99_ms: m.heartbeat_rtt_p99.map(ms),
            time_disconnected_ms: ms(m.time_disconnected),
            queue_depth: m.queue_depth as u64,
            dropped_events: m.dropped_events,
            lagged_events: m.lagged_events,
            join_latency: m
                .join_latency
                .into_iter()
                .map(|(topic, d)| JoinLatency {
                    topic,
                    latency_ms: ms(d),
                })
                .collect(),
        }
    }
}

/// A live channel's state (diagnostics).
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct ChannelStateEntry {
    pub topic: String,
    pub state: ChannelState,
}

pub(crate) fn json_list(v: &[Value]) -> String {
    Value::Array(v.to_vec()).to_string()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

impl From<core::ConnectionState> for ConnectionState {
    fn from(s: core::ConnectionState) -> Self {
        match s {
            core::ConnectionState::Disconnected => ConnectionState::Disconnected,
            core::ConnectionState::Connecting => ConnectionState::Connecting,
            core::ConnectionState::Connected => ConnectionState::Connected,
            core::ConnectionState::ShutDown => ConnectionState::ShutDown,
        }
    }
}

impl From<core::ChannelState> for ChannelState {
    fn from(s: core::ChannelState) -> Self {
        match s {
            core::ChannelState::Closed => ChannelState::Closed,
            core::ChannelState::Joining => ChannelState::Joining,
            core::ChannelState::Joined => ChannelState::Joined,
            core::ChannelState::Leaving => ChannelState::Leaving,
            core::ChannelState::Errored => ChannelState::Errored,
        }
    }
}

impl From<core::SubscribeStatus> for SubscribeStatus {
    fn from(s: core::SubscribeStatus) -> Self {
        match s {
            core::SubscribeStatus::Subscribed => SubscribeStatus::Subscribed,
            core::SubscribeStatus::TimedOut => SubscribeStatus::TimedOut,
            core::SubscribeStatus::Closed => SubscribeStatus::Closed,
            core::SubscribeStatus::ChannelError => SubscribeStatus::ChannelError,
        }
    }
}

impl From<core::HeartbeatStatus> for HeartbeatStatus {
    fn from(s: core::HeartbeatStatus) -> Self {
        match s {
            core::HeartbeatStatus::Sent => HeartbeatStatus::Sent,
            core::HeartbeatStatus::Ok => HeartbeatStatus::Ok,
            core::HeartbeatStatus::Error => HeartbeatStatus::Error,
            core::HeartbeatStatus::Timeout => HeartbeatStatus::Timeout,
        }
    }
}

impl From<core_error::ErrorKind> for ErrorKind {
    fn from(k: core_error::ErrorKind) -> Self {
        match k {
            core_error::ErrorKind::Recoverable => ErrorKind::Recoverable,
            core_error::ErrorKind::Terminal => ErrorKind::Terminal,
        }
    }
}

impl From<&core::Broadcast> for BroadcastMessage {
    fn from(b: &core::Broadcast) -> Self {
        BroadcastMessage {
            topic: b.topic.clone(),
            event: b.event.clone(),
            payload: (&b.payload).into(),
            meta_json: b.meta.as_ref().map(Value::to_string),
            id: b.id().map(str::to_owned),
            replayed: b.replayed(),
        }
    }
}

impl From<&core::PresenceEvent> for PresenceEvent {
    fn from(p: &core::PresenceEvent) -> Self {
        match p {
            core::PresenceEvent::Sync { topic } => PresenceEvent::Sync {
                topic: topic.clone(),
            },
            core::PresenceEvent::Join {
                topic,
                key,
                current,
                new,
            } => PresenceEvent::Join {
                topic: topic.clone(),
                key: key.clone(),
                current_json: json_list(current),
                new_json: json_list(new),
            },
            core::PresenceEvent::Leave {
                topic,
                key,
                current,
                left,
            } => PresenceEvent::Leave {
                topic: topic.clone(),
                key: key.clone(),
                current_json: json_list(current),
                left_json: json_list(left),
            },
        }
    }
}

impl From<&core::PostgresChange> for PostgresChangePayload {
    fn from(c: &core::PostgresChange) -> Self {
        PostgresChangePayload {
            topic: c.topic.clone(),
            schema: c.schema.clone(),
            table: c.table.clone(),
            commit_timestamp: c.commit_timestamp.clone(),
            event_type: c.event_type.clone(),
            new_json: c.new.to_string(),
            old_json: c.old.to_string(),
            errors_json: c.errors.to_string(),
            columns_json: c.columns.to_string(),
            bindings: c.bindings.iter().map(|b| *b as u32).collect(),
        }
    }
}

impl From<&core::Event> for RealtimeEvent {
    fn from(e: &core::Event) -> Self {
        match e {
            core::Event::ConnectionStatus { state, reason } => RealtimeEvent::ConnectionStatus {
                state: (*state).into(),
                reason: reason.clone(),
            },
            core::Event::Heartbeat { status, rtt } => RealtimeEvent::Heartbeat {
                status: (*status).into(),
                rtt_ms: rtt.map(ms),
            },
            core::Event::ChannelStatus {
                topic,
                status,
                reason,
                error_kind,
            } => RealtimeEvent::ChannelStatus {
                topic: topic.clone(),
                status: (*status).into(),
                reason: reason.clone(),
                error_kind: error_kind.map(Into::into),
                token_rejected: e.is_token_rejected(),
            },
            core::Event::Broadcast(b) => RealtimeEvent::Broadcast { message: b.into() },
            core::Event::Presence(p) => RealtimeEvent::Presence { event: p.into() },
            core::Event::PostgresChange(c) => RealtimeEvent::PostgresChange {
                change: c.as_ref().into(),
            },
            core::Event::System { topic, payload } => RealtimeEvent::System {
                topic: topic.clone(),
                payload_json: payload.to_string(),
            },
            core::Event::Resumed { topic, gap, filled } => RealtimeEvent::Resumed {
                topic: topic.clone(),
                gap_ms: gap.as_millis() as u64,
                filled: *filled,
            },
            core::Event::Lagged { dropped } => RealtimeEvent::Lagged { dropped: *dropped },
            core::Event::Error { message } => RealtimeEvent::ClientError {
                message: message.clone(),
            },
        }
    }
}
