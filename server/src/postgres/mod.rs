//! Postgres changes, private-channel authorization and database broadcasts, backed by a
//! real PostgreSQL (streaming logical replication, RLS evaluated inside the database).
//!
//! This is the boundary between the socket/channel side of the server and the database.
//! The channel code only uses the items below; everything else in this module is private.
//!
//! Delivery: every subscriber gets its own unbounded channel, filled in commit order by one
//! feed task, so a slow reader never delays the others and nothing is dropped (memory is
//! the bound; the socket side enforces its own limits).
//!
//! ```no_run
//! # async fn demo() -> Result<(), String> {
//! use supa_realtime_server::postgres::{Options, PgChanges, PgEvent, Subscriber};
//! let (db_tx, _db_rx) = tokio::sync::mpsc::unbounded_channel();
//! let url = "postgres://postgres@127.0.0.1:5432/postgres";
//! let pg = PgChanges::connect(url, &Options::default(), db_tx).await?;
//! let binding = serde_json::json!({"event": "INSERT", "schema": "public", "table": "messages"});
//! let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
//! let _sub = pg.subscribe(
//!     Subscriber {
//!         channel: "room1".into(),
//!         bindings: vec![(1, binding.as_object().unwrap().clone())],
//!         claims: serde_json::json!({"role": "anon"}),
//!     },
//!     tx,
//! );
//! while let Some(event) = rx.recv().await {
//!     if let PgEvent::Change(payload) = event {
//!         println!("{payload}");
//!     }
//! }
//! # Ok(()) }
//! ```

mod binding;
mod change;
mod db;
mod fanout;
mod feed;
mod filter;
mod messages;
mod pgoutput;
mod poller;
mod private;
mod rls;
mod roles;
mod setup;
mod stream;
mod subscriptions;
mod values;
mod wal2json;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde_json::{Map, Value};
use tokio::sync::{mpsc, watch};

pub use messages::{Stored, StoredPayload, MAX_REPLAY};
use subscriptions::Registry;

/// The publications the stream reads: the tables clients may subscribe to, and
/// `realtime.messages` for `realtime.send` broadcasts (the names Supabase uses).
const PUBLICATIONS: [&str; 2] = [
    "supabase_realtime",
    "supabase_realtime_messages_publication",
];

/// How changes are read from PostgreSQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Streaming logical replication with `pgoutput` (built into PostgreSQL).
    Stream,
    /// Polling a temporary slot with the wal2json plugin, as hosted Supabase does (for
    /// comparison, and for databases that allow no replication connection but have wal2json).
    Poll,
}

/// Database-side settings.
///
/// ```
/// use std::time::Duration;
/// use supa_realtime_server::postgres::{Options, Source};
/// let options = Options { slot: Some("my_server".into()), ..Options::default() };
/// assert_eq!(options.source, Source::Stream);
/// assert_eq!(options.statement_timeout, Duration::from_secs(1));
/// ```
#[derive(Debug, Clone)]
pub struct Options {
    /// How changes are read. Default: [`Source::Stream`].
    pub source: Source,
    /// A permanent replication slot of this name (stream only): changes committed while the
    /// server is down are delivered after it restarts. `None` (the library default): a
    /// temporary slot per server, gone with its connection.
    pub slot: Option<String>,
    /// `statement_timeout` of every query the server runs (filters, RLS checks, subscription
    /// checks, private-channel probes). Default 1 s.
    pub statement_timeout: Duration,
    /// With a permanent slot that holds changes from while the server was down: how long to
    /// wait after start for clients to resubscribe before delivering them. Default 5 s.
    pub resume_window: Duration,
    /// The roles RLS may be evaluated as, besides `NOLOGIN` roles granted to the server's
    /// login role. Default `anon`, `authenticated`, `service_role`.
    pub roles: Vec<String>,
    /// How long stored broadcasts (`persist`) are kept: older rows of `realtime.messages`
    /// are deleted by a periodic sweep. Default 72 hours, as upstream drops its partitions.
    pub retention: Duration,
    /// How often the sweep runs (it deletes at most a bounded number of rows per run).
    /// Default 60 s.
    pub sweep_interval: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            source: Source::Stream,
            slot: None,
            statement_timeout: Duration::from_secs(1),
            resume_window: Duration::from_secs(5),
            roles: roles::DEFAULT_ROLES.iter().map(|r| r.to_string()).collect(),
            retention: Duration::from_secs(72 * 3600),
            sweep_interval: Duration::from_secs(60),
        }
    }
}

/// PostgreSQL's rule for slot names (they are spliced into replication commands).
fn valid_slot_name(name: &str) -> bool {
    (1..=63).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// Quotes an identifier for SQL.
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// What a channel asks for when it joins with `postgres_changes` bindings.
#[derive(Debug, Clone)]
pub struct Subscriber {
    /// The channel name without the `realtime:` prefix (the `channel` key of `system` messages).
    pub channel: String,
    /// Each binding as the client sent it, with the integer id the join reply echoed.
    pub bindings: Vec<(u32, Map<String, Value>)>,
    /// The verified JWT claims of the channel's token (role = `claims.role`).
    pub claims: Value,
}

/// What the database side sends to one subscribed channel.
#[derive(Debug, Clone)]
pub enum PgEvent {
    /// A `system` push for the channel: `{"extension":"postgres_changes","status":status,
    /// "message":message,"channel":<name>}`.
    System { status: String, message: String },
    /// A complete `postgres_changes` payload: `{"ids":[...],"data":{...}}`.
    Change(Arc<Value>),
}

/// A message created in the database by `realtime.send` / `realtime.broadcast_changes`.
#[derive(Debug, Clone)]
pub struct DbBroadcast {
    /// Topic name without `realtime:`.
    pub topic: String,
    pub event: String,
    pub payload: Value,
    pub private: bool,
    /// The message id (becomes `meta.id`).
    pub id: String,
}

/// Read permissions of a token on a private channel topic (RLS on `realtime.messages`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrivateAccess {
    pub broadcast_read: bool,
    pub presence_read: bool,
}

/// The `realtime.messages` extension a write is checked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Extension {
    Broadcast,
    Presence,
}

/// The database side of the server. One per server; cheap to share behind `Arc`.
pub struct PgChanges {
    registry: Arc<Registry>,
    pool: db::Pool,
    roles: Vec<String>,
    stop: watch::Sender<bool>,
    feed: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// Unsubscribes when dropped (the channel left, closed or re-subscribed).
pub struct PgSubscription {
    key: u64,
    alive: Arc<AtomicBool>,
    registry: std::sync::Weak<Registry>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for PgSubscription {
    fn drop(&mut self) {
        self.alive.store(false, Ordering::SeqCst);
        self.task.abort();
        if let Some(registry) = self.registry.upgrade() {
            registry.remove(self.key);
        }
    }
}

impl Drop for PgChanges {
    fn drop(&mut self) {
        // The feed task ends by itself once the registry is gone; this also ends it when it
        // is waiting (the resume window, a retry back-off).
        self.stop.send_replace(true);
    }
}

impl PgChanges {
    /// Connects, checks `wal_level=logical`, creates the Supabase objects that are missing,
    /// and starts reading changes (an error says how to fix the database). Database
    /// broadcasts are sent into `broadcasts`. Every change committed after this returns is
    /// delivered.
    pub async fn connect(
        database_url: &str,
        options: &Options,
        broadcasts: mpsc::UnboundedSender<DbBroadcast>,
    ) -> Result<Arc<PgChanges>, String> {
        let config: tokio_postgres::Config = database_url.parse().map_err(|e| {
            format!(
                "invalid database URL: {e} (expected postgres://user:password@host:port/database)"
            )
        })?;
        let connect_error = |e: tokio_postgres::Error| {
            format!("could not connect to PostgreSQL: {}", db::message(&e))
        };
        let mut client = db::open(&config, None).await.map_err(connect_error)?;
        setup::check_wal_level(&client).await?;
        setup::create_objects(&mut client).await?;
        let registry = Arc::new(Registry::default());
        let feed = feed::Feed {
            registry: Arc::downgrade(&registry),
            fanout: fanout::Fanout::new(config.clone(), options.statement_timeout),
            broadcasts,
        };
        let (stop, stop_rx) = watch::channel(false);
        let task = match options.source {
            Source::Stream => {
                let slot = match &options.slot {
                    Some(name) if valid_slot_name(name) => stream::Slot::Permanent(name.clone()),
                    Some(name) => {
                        return Err(format!(
                            "invalid replication slot name {name:?}: use 1 to 63 lowercase letters, digits and underscores"
                        ))
                    }
                    None => stream::Slot::Temporary,
                };
                let stream =
                    stream::Stream::start(config.clone(), &client, slot, options.resume_window)
                        .await?;
                tokio::spawn(stream.run(feed, config.clone(), stop_rx))
            }
            Source::Poll => {
                let poller = poller::Poller::start(config.clone()).await?;
                tokio::spawn(poller.run(feed, stop_rx))
            }
        };
        tokio::spawn(sweep(
            config.clone(),
            options.retention,
            options.sweep_interval,
            stop.subscribe(),
        ));
        Ok(Arc::new(PgChanges {
            registry,
            pool: db::Pool::new(config, options.statement_timeout),
            roles: options.roles.clone(),
            stop,
            feed: Mutex::new(Some(task)),
        }))
    }

    /// Stops reading changes: the batch in flight is delivered and confirmed first, so a
    /// server started later on the same permanent slot continues exactly where this one
    /// stopped. Bounded (a few seconds).
    pub async fn shutdown(&self) {
        self.stop.send_replace(true);
        let task = self.feed.lock().take();
        if let Some(task) = task {
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
    }

    /// Registers a channel's bindings. Events for it (the `system` ok or error, then
    /// changes in commit order) go into `events` until the returned handle is dropped.
    /// Must be called inside a Tokio runtime.
    pub fn subscribe(
        self: &Arc<Self>,
        subscriber: Subscriber,
        events: mpsc::UnboundedSender<PgEvent>,
    ) -> PgSubscription {
        let key = self.registry.reserve();
        let alive = Arc::new(AtomicBool::new(true));
        let this = Arc::clone(self);
        let flag = Arc::clone(&alive);
        let task = tokio::spawn(async move {
            let resolved = match this.pool.get().await {
                Ok(client) => {
                    subscriptions::resolve(&client, &this.roles, &subscriber, events.clone()).await
                }
                Err(e) => Err(format!("{{:error, \"{e}\"}}")),
            };
            let system = match resolved {
                Ok(sub) => {
                    if !this.registry.insert_if(key, sub, &flag) {
                        return;
                    }
                    PgEvent::System {
                        status: "ok".into(),
                        message: "Subscribed to PostgreSQL".into(),
                    }
                }
                Err(message) => PgEvent::System {
                    status: "error".into(),
                    message,
                },
            };
            let _ = events.send(system);
        });
        PgSubscription {
            key,
            alive,
            registry: Arc::downgrade(&self.registry),
            task,
        }
    }

    /// The broadcasts stored for private `topic` since `since_ms` (Unix ms), at most `limit`
    /// (clamped to 1..=[`MAX_REPLAY`]), oldest first.
    pub async fn replay(
        &self,
        topic: &str,
        since_ms: i64,
        limit: i64,
    ) -> Result<Vec<Stored>, String> {
        let client = self.pool.get().await?;
        messages::replay(&client, topic, since_ms, limit).await
    }

    /// Stores a broadcast under `id` (the id its live delivery carries as `meta.id`), to
    /// expire after `ttl` when given.
    pub async fn store(
        &self,
        id: &str,
        topic: &str,
        private: bool,
        event: &str,
        payload: &StoredPayload,
        ttl: Option<Duration>,
    ) -> Result<(), String> {
        let mut client = self.pool.get().await?;
        messages::store(&mut client, id, topic, private, event, payload, ttl).await
    }

    /// Evaluates read access to a private channel for these claims.
    pub async fn private_access(
        &self,
        claims: &Value,
        topic: &str,
    ) -> Result<PrivateAccess, String> {
        let mut client = self.pool.get().await?;
        if roles::check(&client, &self.roles, &subscriptions::role_of(claims))
            .await
            .is_err()
        {
            return Ok(PrivateAccess {
                broadcast_read: false,
                presence_read: false,
            });
        }
        let tx = client.transaction().await.map_err(|e| db::message(&e))?;
        private::read_access(tx, claims, topic).await
    }

    /// Evaluates write access (INSERT policy) to a private channel for these claims.
    pub async fn can_write(
        &self,
        claims: &Value,
        topic: &str,
        extension: Extension,
    ) -> Result<bool, String> {
        let mut client = self.pool.get().await?;
        if roles::check(&client, &self.roles, &subscriptions::role_of(claims))
            .await
            .is_err()
        {
            return Ok(false);
        }
        let tx = client.transaction().await.map_err(|e| db::message(&e))?;
        private::write_access(tx, claims, topic, extension).await
    }
}

/// Deletes expired and old stored broadcasts every `interval` on a connection of its own,
/// until the server stops. Failures are reported and retried at the next round.
async fn sweep(
    config: tokio_postgres::Config,
    retention: Duration,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut client = None;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        if client
            .as_ref()
            .is_none_or(|c: &tokio_postgres::Client| c.is_closed())
        {
            client = db::open(&config, Some(Duration::from_secs(30))).await.ok();
        }
        let Some(c) = &client else { continue };
        if let Err(e) = messages::sweep(c, retention).await {
            eprintln!("supa-realtime-server: sweeping stored broadcasts: {e}");
        }
    }
}
