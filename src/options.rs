//! Client and channel configuration.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

pub use supa_realtime_protocol::Vsn;

use crate::error::Error;

/// The longest duration any option takes. Anything longer is surely a unit mistake (seconds
/// passed as milliseconds) and would overflow the deadlines computed from it.
pub(crate) const MAX_DURATION: Duration = Duration::from_secs(24 * 3600);

/// Checks a duration option: `name` must lie within `min..=MAX_DURATION`. Every language
/// reports a bad value with this same text (the Kotlin layer formats negative durations,
/// which cannot cross the boundary, the same way).
pub(crate) fn check_duration(name: &str, d: Duration, min: Duration) -> Result<(), Error> {
    if d < min || d > MAX_DURATION {
        return Err(Error::InvalidArgument(format!(
            "{name} must be between {} ms and {} ms (got {} ms)",
            min.as_millis(),
            MAX_DURATION.as_millis(),
            d.as_millis()
        )));
    }
    Ok(())
}

pub(crate) const ONE_MS: Duration = Duration::from_millis(1);

/// Checks an HTTP header for the upgrade request and REST calls: the name an RFC 9110 token,
/// the value visible ASCII, spaces and tabs only (no CR/LF, which would inject headers).
pub(crate) fn check_header(name: &str, value: &str) -> Result<(), Error> {
    let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if name.is_empty() || !name.bytes().all(token) {
        return Err(Error::InvalidArgument(format!(
            "header name {name:?} is not a valid HTTP token (letters, digits and !#$%&'*+-.^_`|~)"
        )));
    }
    if !value
        .bytes()
        .all(|b| b == b'\t' || (b' '..=b'~').contains(&b))
    {
        return Err(Error::InvalidArgument(format!(
            "header {name:?}: the value must be visible ASCII, spaces and tabs (no CR, LF or control characters)"
        )));
    }
    Ok(())
}

/// Checks a data-event queue capacity (at least 1).
pub(crate) fn check_queue_capacity(n: usize) -> Result<(), Error> {
    if n == 0 {
        return Err(Error::InvalidArgument(
            "queue_capacity must be at least 1".into(),
        ));
    }
    Ok(())
}

/// Checks the reconnect jitter: within 0..1.
pub(crate) fn check_jitter(jitter: f64) -> Result<(), Error> {
    if !(0.0..=1.0).contains(&jitter) {
        return Err(Error::InvalidArgument(format!(
            "reconnect_jitter must be within 0..1 (got {jitter})"
        )));
    }
    Ok(())
}

/// The smallest size bound accepted: below it not even a join reply fits.
pub(crate) const MIN_SIZE_BOUND: usize = 1024;

/// Checks a bound on what a server can make the client buffer: at least `min`.
pub(crate) fn check_bound(name: &str, value: usize, min: usize) -> Result<(), Error> {
    if value < min {
        return Err(Error::InvalidArgument(format!(
            "{name} must be at least {min} (got {value})"
        )));
    }
    Ok(())
}

/// Checks a reconnect or rejoin schedule: at least one delay, each within `0..=MAX_DURATION`.
pub(crate) fn check_delays(name: &str, delays: &[Duration]) -> Result<(), Error> {
    if delays.is_empty() {
        return Err(Error::InvalidArgument(format!(
            "{name} must hold at least one delay"
        )));
    }
    for d in delays {
        check_duration(name, *d, Duration::ZERO)?;
    }
    Ok(())
}

/// Supplies the access token (a user JWT) when the client needs one: before each connect
/// (the first and every reconnect), ahead of the current token's expiry
/// ([`ClientOptions::token_refresh_margin`]), before a rejoin after the server refused the
/// token, and on [`app_foregrounded`](crate::RealtimeClient::app_foregrounded). It is not asked
/// on heartbeats or ordinary rejoins.
///
/// It runs on a helper thread of the library, never on the runtime thread or the dispatcher, so
/// it may block (e.g. on a refresh request), for at most [`ClientOptions::token_timeout`]; one
/// call runs at a time. A blocking call of the library made inside it fails with
/// [`Error::WouldDeadlock`](crate::Error::WouldDeadlock). An error is reported as
/// `Event::Error`; while no token is in force, channels then wait for one (they never fall
/// back to the API key's role silently).
pub trait TokenProvider: Send + Sync {
    /// The current token, `Ok(None)` for "use the API key", or an error message.
    fn token(&self) -> Result<Option<String>, String>;
}

impl<F> TokenProvider for F
where
    F: Fn() -> Result<Option<String>, String> + Send + Sync,
{
    fn token(&self) -> Result<Option<String>, String> {
        self()
    }
}

/// Who runs user callbacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DispatchMode {
    /// A dispatcher thread per client ("supa-dispatch") calls the callbacks. The default.
    #[default]
    Thread,
    /// The application calls [`crate::RealtimeClient::dispatch`] (e.g. from a GUI main loop);
    /// a wakeup hook tells it when events are waiting.
    AppPumped,
}

/// Options for [`crate::RealtimeClient::new`]. Builder style:
///
/// ```
/// use std::time::Duration;
/// use supa_realtime::ClientOptions;
/// let opts = ClientOptions::new("https://abc.supabase.co/realtime/v1", "anon-key")
///     .heartbeat_interval(Duration::from_secs(15))
///     .param("log_level", "info");
/// assert_eq!(opts.heartbeat_interval, Duration::from_secs(15));
/// ```
#[derive(Clone)]
pub struct ClientOptions {
    /// `http(s)://` or `ws(s)://` endpoint: `.../realtime/v1` or the full `.../websocket` URL.
    pub url: String,
    /// Sent as the `apikey` query parameter (and as `apikey` on REST calls).
    pub api_key: String,
    /// The user token for channel joins; defaults to the API key.
    pub access_token: Option<String>,
    /// Extra query parameters (after `apikey`, before `vsn`).
    pub params: Vec<(String, String)>,
    /// Extra HTTP headers on the upgrade request and REST calls.
    pub headers: Vec<(String, String)>,
    /// Serializer version; 2.0.0 by default (binary broadcasts).
    pub vsn: Vsn,
    /// 25 s, as realtime-js. An unanswered heartbeat at the next tick closes and reconnects.
    pub heartbeat_interval: Duration,
    /// 10 s: how long a push (join, broadcast with ack, track) waits for its reply.
    pub push_timeout: Duration,
    /// Delay before reconnect attempt n (the last repeats): 1, 2, 5, 10 s.
    pub reconnect_delays: Vec<Duration>,
    /// Each delay is scaled by a random factor in `[1 - jitter, 1 + jitter]`; 0 turns it off.
    pub reconnect_jitter: f64,
    /// Delay before channel rejoin attempt n (the last repeats): 1, 2, 5, 10 s.
    pub rejoin_delays: Vec<Duration>,
    /// Extra trusted root certificates (PEM) for `wss://` and `https://`.
    pub custom_ca_pem: Option<Vec<u8>>,
    /// Trust the platform's root store in addition to the bundled webpki roots.
    pub native_roots: bool,
    /// Dispatcher thread (default) or app-pumped.
    pub dispatch: DispatchMode,
    /// Data events queued beyond this are dropped and reported by one `Event::Lagged`.
    pub queue_capacity: usize,
    /// Asked for a fresh token when one is needed (see [`TokenProvider`]).
    pub token_provider: Option<Arc<dyn TokenProvider>>,
    /// How long a token provider call may take before it counts as failed. 10 s.
    pub token_timeout: Duration,
    /// With a token provider: ask it this long before the current JWT's `exp` (half-way for
    /// tokens shorter-lived than twice this), so channels never hit the server's expiry
    /// close. 60 s.
    pub token_refresh_margin: Duration,
    /// With a token provider: consecutive join refusals for the token (`InvalidJWTToken`,
    /// `MalformedJWT`, `JwtSignatureError`) tolerated before the channel stops for good. 3.
    pub auth_retries: u32,
    /// The largest WebSocket message (or frame) read from the server: 16 MiB. A larger one
    /// is an `Event::Error`, and the connection is dropped and reconnected (the socket cannot
    /// skip it).
    pub max_message_size: usize,
    /// The largest frame decoded into events (text frames: the JSON text; binary frames: all
    /// of it; the payload is nearly all of a frame): 8 MiB, well above the server's broadcast
    /// limit (3 MB upstream). A larger frame is skipped with an `Event::Error`; the
    /// connection stays up. Decoded JSON takes a few times its text in memory.
    pub max_payload_size: usize,
    /// Per channel, the presence keys kept: 100,000. A `presence_state`/`presence_diff` that
    /// would go over is not applied (the state stays as it was) and is reported as an
    /// `Event::Error`.
    pub max_presence_keys: usize,
    /// Per channel, the presence state's size as JSON text (keys and metas): 32 MiB; and
    /// separately the diffs held until the state of a new join arrives. Over it, as for
    /// `max_presence_keys`.
    pub max_presence_size: usize,
}

impl fmt::Debug for ClientOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientOptions")
            .field("url", &self.url)
            .field("vsn", &self.vsn)
            .field("heartbeat_interval", &self.heartbeat_interval)
            .field("push_timeout", &self.push_timeout)
            .field("reconnect_delays", &self.reconnect_delays)
            .field("rejoin_delays", &self.rejoin_delays)
            .field("dispatch", &self.dispatch)
            .field("queue_capacity", &self.queue_capacity)
            .field("max_message_size", &self.max_message_size)
            .field("max_payload_size", &self.max_payload_size)
            .field("max_presence_keys", &self.max_presence_keys)
            .field("max_presence_size", &self.max_presence_size)
            .finish_non_exhaustive()
    }
}

fn secs(v: &[u64]) -> Vec<Duration> {
    v.iter().map(|s| Duration::from_secs(*s)).collect()
}

impl ClientOptions {
    /// Every check [`RealtimeClient::new`](crate::RealtimeClient::new) makes on the options
    /// besides the URL and TLS ones: the same errors the C setters and the bindings report.
    pub(crate) fn validate(&self) -> Result<(), Error> {
        check_duration("heartbeat_interval", self.heartbeat_interval, ONE_MS)?;
        check_duration("push_timeout", self.push_timeout, ONE_MS)?;
        check_duration("token_timeout", self.token_timeout, ONE_MS)?;
        check_duration(
            "token_refresh_margin",
            self.token_refresh_margin,
            Duration::ZERO,
        )?;
        check_delays("reconnect_delays", &self.reconnect_delays)?;
        check_delays("rejoin_delays", &self.rejoin_delays)?;
        check_jitter(self.reconnect_jitter)?;
        check_queue_capacity(self.queue_capacity)?;
        check_bound("max_message_size", self.max_message_size, MIN_SIZE_BOUND)?;
        check_bound("max_payload_size", self.max_payload_size, MIN_SIZE_BOUND)?;
        check_bound("max_presence_keys", self.max_presence_keys, 1)?;
        check_bound("max_presence_size", self.max_presence_size, MIN_SIZE_BOUND)?;
        for (name, value) in &self.headers {
            check_header(name, value)?;
        }
        Ok(())
    }

    /// Options with realtime-js' defaults.
    pub fn new(url: impl Into<String>, api_key: impl Into<String>) -> Self {
        ClientOptions {
            url: url.into(),
            api_key: api_key.into(),
            access_token: None,
            params: Vec::new(),
            headers: Vec::new(),
            vsn: Vsn::V2,
            heartbeat_interval: Duration::from_secs(25),
            push_timeout: Duration::from_secs(10),
            reconnect_delays: secs(&[1, 2, 5, 10]),
            reconnect_jitter: 0.1,
            rejoin_delays: secs(&[1, 2, 5, 10]),
            custom_ca_pem: None,
            native_roots: false,
            dispatch: DispatchMode::Thread,
            queue_capacity: 10_000,
            token_provider: None,
            token_timeout: Duration::from_secs(10),
            token_refresh_margin: Duration::from_secs(60),
            auth_retries: 3,
            max_message_size: 16 << 20,
            max_payload_size: 8 << 20,
            max_presence_keys: 100_000,
            max_presence_size: 32 << 20,
        }
    }

    /// The presence bounds as the presence merge takes them.
    pub(crate) fn presence_limits(&self) -> crate::presence::PresenceLimits {
        crate::presence::PresenceLimits {
            max_keys: self.max_presence_keys,
            max_size: self.max_presence_size,
        }
    }

    pub fn access_token(mut self, token: impl Into<String>) -> Self {
        self.access_token = Some(token.into());
        self
    }
    pub fn param(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.params.push((key.into(), value.into()));
        self
    }
    pub fn header(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((key.into(), value.into()));
        self
    }
    pub fn vsn(mut self, vsn: Vsn) -> Self {
        self.vsn = vsn;
        self
    }
    pub fn heartbeat_interval(mut self, d: Duration) -> Self {
        self.heartbeat_interval = d;
        self
    }
    pub fn push_timeout(mut self, d: Duration) -> Self {
        self.push_timeout = d;
        self
    }
    pub fn reconnect_delays(mut self, d: Vec<Duration>) -> Self {
        self.reconnect_delays = d;
        self
    }
    pub fn reconnect_jitter(mut self, j: f64) -> Self {
        self.reconnect_jitter = j;
        self
    }
    pub fn rejoin_delays(mut self, d: Vec<Duration>) -> Self {
        self.rejoin_delays = d;
        self
    }
    pub fn custom_ca_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.custom_ca_pem = Some(pem.into());
        self
    }
    pub fn native_roots(mut self, on: bool) -> Self {
        self.native_roots = on;
        self
    }
    pub fn dispatch(mut self, mode: DispatchMode) -> Self {
        self.dispatch = mode;
        self
    }
    pub fn queue_capacity(mut self, n: usize) -> Self {
        self.queue_capacity = n;
        self
    }
    pub fn token_provider(mut self, p: impl TokenProvider + 'static) -> Self {
        self.token_provider = Some(Arc::new(p));
        self
    }
    pub fn token_timeout(mut self, d: Duration) -> Self {
        self.token_timeout = d;
        self
    }
    pub fn token_refresh_margin(mut self, d: Duration) -> Self {
        self.token_refresh_margin = d;
        self
    }
    pub fn auth_retries(mut self, n: u32) -> Self {
        self.auth_retries = n;
        self
    }
    pub fn max_message_size(mut self, bytes: usize) -> Self {
        self.max_message_size = bytes;
        self
    }
    pub fn max_payload_size(mut self, bytes: usize) -> Self {
        self.max_payload_size = bytes;
        self
    }
    pub fn max_presence_keys(mut self, n: usize) -> Self {
        self.max_presence_keys = n;
        self
    }
    pub fn max_presence_size(mut self, bytes: usize) -> Self {
        self.max_presence_size = bytes;
        self
    }
}

/// Options for one channel, sent in its join `config`.
///
/// ```
/// use supa_realtime::ChannelOptions;
/// let opts = ChannelOptions::default().broadcast_self(true).presence_key("alice");
/// assert!(opts.broadcast_self);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct ChannelOptions {
    /// Receive your own broadcasts.
    pub broadcast_self: bool,
    /// Ask the server to ack each broadcast: `send_broadcast` then resolves on the ack.
    pub broadcast_ack: bool,
    /// Presence key; empty means the server picks one per join.
    pub presence_key: String,
    /// Presence on at join; also switched on by registering a presence listener.
    pub presence_enabled: bool,
    /// Private channel (RLS on `realtime.messages`).
    pub private: bool,
    /// With postgres bindings, report SUBSCRIBED only after the server's
    /// `Subscribed to PostgreSQL` message (on by default); off = realtime-js' plain behaviour.
    pub wait_for_postgres_ready: bool,
    /// How long to wait for that message before reporting TIMED_OUT.
    pub postgres_ready_timeout: std::time::Duration,
    /// Replay stored broadcasts on join (private channels only): the server sends the newest
    /// `limit` messages stored since `since`, oldest first, before any live one, each with
    /// [`Broadcast::replayed`](crate::Broadcast::replayed) set.
    pub replay: Option<Replay>,
    /// Ask the server for a `system` message once the channel's replication is ready; wait
    /// for it with [`RealtimeChannel::replication_ready`](crate::RealtimeChannel::replication_ready).
    pub replication_ready: bool,
    /// Gap fill (private channels only): after a rejoin, replay the stored broadcasts since
    /// the last one delivered, dropping those already delivered, so no persisted message is
    /// lost across an outage; `Event::Resumed { filled, .. }` says whether the whole gap was
    /// replayed.
    pub auto_replay: bool,
}

/// The foreign APIs' persist argument: a TTL in seconds, 0 for the server's retention.
pub(crate) fn persist_for_ttl(ttl_seconds: u32) -> crate::Persist {
    match ttl_seconds {
        0 => crate::Persist::Yes,
        s => crate::Persist::Ttl(Duration::from_secs(u64::from(s))),
    }
}

/// `replay` of [`ChannelOptions`]: stored broadcasts from `since` on, at most `limit` of
/// them (the server's default and cap: 25).
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use supa_realtime::{ChannelOptions, Replay};
/// let hour_ago = SystemTime::now() - Duration::from_secs(3600);
/// let opts = ChannelOptions::default().private(true).replay(Replay::since(hour_ago).limit(10));
/// assert_eq!(opts.replay.unwrap().limit, Some(10));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Replay {
    pub since: std::time::SystemTime,
    pub limit: Option<u32>,
}

impl Replay {
    pub fn since(since: std::time::SystemTime) -> Replay {
        Replay { since, limit: None }
    }

    /// `since` as Unix milliseconds (the wire's form); earlier than 1970 is 0.
    pub fn since_ms(since_ms: i64) -> Replay {
        let ms = Duration::from_millis(since_ms.max(0) as u64);
        Replay::since(std::time::UNIX_EPOCH + ms)
    }

    pub fn limit(mut self, limit: u32) -> Replay {
        self.limit = Some(limit);
        self
    }

    /// The wire's `{since, limit}`.
    pub(crate) fn to_config(self) -> crate::protocol::ReplayConfig {
        let since = self
            .since
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        crate::protocol::ReplayConfig {
            since: Some(since),
            limit: self.limit.map(i64::from),
            ..Default::default()
        }
    }
}

impl Default for ChannelOptions {
    fn default() -> Self {
        ChannelOptions {
            broadcast_self: false,
            broadcast_ack: false,
            presence_key: String::new(),
            presence_enabled: false,
            private: false,
            wait_for_postgres_ready: true,
            postgres_ready_timeout: std::time::Duration::from_secs(20),
            replay: None,
            replication_ready: false,
            auto_replay: false,
        }
    }
}

impl ChannelOptions {
    /// Checked by `subscribe()`.
    pub(crate) fn validate(&self) -> Result<(), Error> {
        check_duration(
            "postgres_ready_timeout",
            self.postgres_ready_timeout,
            ONE_MS,
        )?;
        if self.auto_replay && !self.private {
            return Err(Error::InvalidArgument(
                "auto_replay needs a private channel (only private channels store messages)".into(),
            ));
        }
        if self.replay.is_some_and(|r| r.limit == Some(0)) {
            return Err(Error::InvalidArgument(
                "replay limit must be at least 1".into(),
            ));
        }
        Ok(())
    }

    pub fn broadcast_self(mut self, on: bool) -> Self {
        self.broadcast_self = on;
        self
    }
    pub fn broadcast_ack(mut self, on: bool) -> Self {
        self.broadcast_ack = on;
        self
    }
    pub fn presence_key(mut self, key: impl Into<String>) -> Self {
        self.presence_key = key.into();
        self
    }
    pub fn presence_enabled(mut self, on: bool) -> Self {
        self.presence_enabled = on;
        self
    }
    pub fn private(mut self, on: bool) -> Self {
        self.private = on;
        self
    }
    pub fn wait_for_postgres_ready(mut self, on: bool) -> Self {
        self.wait_for_postgres_ready = on;
        self
    }
    pub fn postgres_ready_timeout(mut self, d: std::time::Duration) -> Self {
        self.postgres_ready_timeout = d;
        self
    }
    pub fn replay(mut self, replay: Replay) -> Self {
        self.replay = Some(replay);
        self
    }
    pub fn replication_ready(mut self, on: bool) -> Self {
        self.replication_ready = on;
        self
    }
    pub fn auto_replay(mut self, on: bool) -> Self {
        self.auto_replay = on;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_values_are_refused_with_one_text() {
        let ms = Duration::from_millis;
        let text = |r: Result<(), Error>| r.unwrap_err().to_string();
        assert_eq!(
            text(check_duration("push_timeout", Duration::ZERO, ONE_MS)),
            "invalid argument: push_timeout must be between 1 ms and 86400000 ms (got 0 ms)"
        );
        assert!(check_duration("x", MAX_DURATION + ms(1), ONE_MS).is_err());
        assert!(check_duration("x", MAX_DURATION, ONE_MS).is_ok());
        assert!(check_header("X-Client-Info", "app/1.0 (linux)\tx").is_ok());
        assert!(text(check_header("X-Bad", "a\r\nInjected: 1")).contains("no CR, LF"));
        assert!(check_header("Bad Name", "v").is_err());
        assert!(check_header("", "v").is_err());
        assert!(check_header("X-Utf8", "é").is_err());
        assert!(check_queue_capacity(0).is_err());
        assert!(check_delays("reconnect_delays", &[]).is_err());
        assert!(check_delays("reconnect_delays", &[ms(0), ms(10)]).is_ok());
        let o = ClientOptions::new("ws://x", "k");
        assert!(o.validate().is_ok());
        assert!(o.clone().header("a\nb", "v").validate().is_err());
        assert!(o.clone().queue_capacity(0).validate().is_err());
        assert_eq!(
            text(o.clone().max_payload_size(100).validate()),
            "invalid argument: max_payload_size must be at least 1024 (got 100)"
        );
        assert!(o.clone().max_message_size(1023).validate().is_err());
        assert!(o.clone().max_presence_keys(0).validate().is_err());
        assert!(o.clone().max_presence_keys(1).validate().is_ok());
        assert!(o.clone().max_presence_size(0).validate().is_err());
        assert!(o.clone().reconnect_jitter(-0.5).validate().is_err());
        assert!(o
            .clone()
            .heartbeat_interval(Duration::from_secs(u64::MAX / 2))
            .validate()
            .is_err());
        assert!(ChannelOptions::default()
            .postgres_ready_timeout(Duration::ZERO)
            .validate()
            .is_err());
        assert!(ChannelOptions::default()
            .auto_replay(true)
            .validate()
            .is_err());
        assert!(ChannelOptions::default()
            .private(true)
            .auto_replay(true)
            .validate()
            .is_ok());
    }
}
