//! Server configuration: where to listen, how to verify tokens, and the limits of §12.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

/// The public Supabase local-development JWT secret (the one `supabase start` uses), so that the
/// well-known local anon and service_role keys work against this server out of the box.
pub const DEFAULT_JWT_SECRET: &str = "super-secret-jwt-token-with-at-least-32-characters-long";

/// How to run a [`Server`](crate::Server).
///
/// ```
/// use supa_realtime_server::{Config, Limits};
/// let config = Config {
///     limits: Limits { max_channels_per_client: 10, ..Limits::default() },
///     ..Config::default()
/// };
/// assert_eq!(config.listen.port(), 0);
/// ```
#[derive(Debug, Clone)]
pub struct Config {
    /// Address to bind; port 0 picks a free port (see [`Server::local_addr`](crate::Server::local_addr)).
    /// Default `127.0.0.1:0`.
    pub listen: SocketAddr,
    /// HS256/384/512 secret that verifies every token (connection apikey, join and refreshed
    /// `access_token`s, REST calls) and signs [`Server::anon_key`](crate::Server::anon_key).
    pub jwt_secret: String,
    /// PostgreSQL for postgres_changes, private channels and database broadcasts. Without it,
    /// joins with postgres_changes bindings get a `system` error and private joins are refused.
    pub database_url: Option<String>,
    /// How the database is used (change source, replication slot, statement timeout, roles).
    pub postgres: crate::postgres::Options,
    /// Per-socket and per-channel limits.
    pub limits: Limits,
    /// A socket that sends no frame for this long is dropped (Phoenix's 60 s).
    pub idle_timeout: Duration,
    /// A socket without a joined channel (never joined, or left them all) for this long is
    /// closed, heartbeats or not (upstream's `NO_CHANNEL_TIMEOUT_IN_MS`, 10 minutes).
    pub no_channel_timeout: Duration,
    /// A connection must deliver a complete request head within this time of opening (or of
    /// its previous response); silent and slowloris connections are closed after it.
    pub header_timeout: Duration,
    /// An HTTP request must be answered within this time once its head arrived (a REST body
    /// that trickles in gets 408); for a WebSocket it bounds the upgrade.
    pub request_timeout: Duration,
    /// Delay before a join error reply. Hosted Realtime waits 5 s to slow down retry loops;
    /// the library default is 0 so tests run fast.
    pub join_error_delay: Duration,
    /// Delay before refusing a WebSocket upgrade (bad apikey). Hosted: 2 s; library default 0.
    pub connect_error_delay: Duration,
    /// A socket whose peer does not take a frame within this time is dropped, so a stalled
    /// reader cannot hold its task (and its share of memory) forever.
    pub write_timeout: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            jwt_secret: DEFAULT_JWT_SECRET.to_owned(),
            database_url: None,
            postgres: crate::postgres::Options::default(),
            limits: Limits::default(),
            idle_timeout: Duration::from_secs(60),
            no_channel_timeout: Duration::from_secs(600),
            header_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            join_error_delay: Duration::ZERO,
            connect_error_delay: Duration::ZERO,
            write_timeout: Duration::from_secs(10),
        }
    }
}

/// Limits, with the defaults of hosted Supabase Realtime (protocol reference §12).
#[derive(Debug, Clone)]
pub struct Limits {
    /// Channels one socket may have joined at once (`ChannelRateLimitReached: Too many channels`).
    pub max_channels_per_client: usize,
    /// Largest broadcast / presence payload, in bytes of JSON (3000 KB + 500 B slack).
    pub max_payload_bytes: usize,
    /// Largest WebSocket frame/message; a bigger one closes the connection.
    pub max_frame_bytes: usize,
    /// Presence messages per window, per socket and topic and per topic and presence key (across
    /// leaving and joining again), before the channel is shut down
    /// (`Client presence rate limit exceeded`).
    pub presence_max_calls: usize,
    /// The presence rate-limit window.
    pub presence_window: Duration,
    /// Concurrent connections (HTTP and WebSocket); one more is answered with HTTP 503 and
    /// closed. Lowered at start to fit the open-file limit.
    pub max_connections: usize,
    /// Bytes queued for one socket and not yet taken by its peer; past this the socket is
    /// closed (code 1013), as upstream drops a socket whose process outgrows its heap
    /// (`WEBSOCKET_MAX_HEAP_SIZE`, 50 MB). Shared messages count once per socket.
    pub max_socket_queue_bytes: usize,
    /// Bytes queued for one channel of a socket (broadcasts, presence, postgres changes); past
    /// this the channel is shut down (`system` error, then `phx_close`), the socket stays.
    pub max_channel_queue_bytes: usize,
    /// Frames queued for one socket before it counts as too slow and is dropped. Fan-out never
    /// waits for a slow socket: it drops that socket instead of stalling the others.
    pub outbound_queue: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_channels_per_client: 100,
            max_payload_bytes: 3_000 * 1_000 + 500,
            max_frame_bytes: 5_000_000,
            presence_max_calls: 5,
            presence_window: Duration::from_secs(30),
            outbound_queue: 100_000,
            max_socket_queue_bytes: 50_000_000,
            max_channel_queue_bytes: 25_000_000,
            max_connections: 10_000,
        }
    }
}
