//! Postgres changes, private-channel authorization and database broadcasts, backed by a
//! real PostgreSQL (logical decoding with wal2json, RLS evaluated inside the database).
//!
//! This is the boundary between the socket/channel side of the server and the database.
//! The channel code only uses the items below; everything else in this module is private.
//!
//! Delivery: every subscriber gets its own unbounded channel, filled in commit order by one
//! poller task, so a slow reader never delays the others and nothing is dropped (memory is
//! the bound; the socket side enforces its own limits).
//!
//! ```no_run
//! # async fn demo() -> Result<(), String> {
//! use supa_realtime_server::postgres::{PgChanges, PgEvent, Subscriber};
//! let (db_tx, _db_rx) = tokio::sync::mpsc::unbounded_channel();
//! let pg = PgChanges::connect("postgres://postgres@127.0.0.1:5432/postgres", db_tx).await?;
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
mod db;
mod filter;
mod poller;
mod private;
mod setup;
mod subscriptions;
mod values;
mod wal;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use serde_json::{Map, Value};
use tokio::sync::mpsc;

use subscriptions::Registry;

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

impl PgChanges {
    /// Connects, checks `wal_level=logical` and wal2json (an error says how to fix either),
    /// creates the Supabase objects that are missing, and starts reading changes.
    /// Database broadcasts are sent into `broadcasts`.
    pub async fn connect(
        database_url: &str,
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
        let mut client = db::open(&config).await.map_err(connect_error)?;
        setup::check_wal_level(&client).await?;
        setup::create_objects(&mut client).await?;
        static SLOTS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let slot = format!(
            "supa_realtime_{}_{}",
            std::process::id(),
            SLOTS.fetch_add(1, Ordering::Relaxed)
        );
        poller::create_slot(&client, &slot).await?;
        let registry = Arc::new(Registry::default());
        let poller = poller::Poller {
            config: config.clone(),
            client,
            slot,
            registry: Arc::downgrade(&registry),
            broadcasts,
            types: values::Types::default(),
        };
        tokio::spawn(poller.run());
        Ok(Arc::new(PgChanges {
            registry,
            pool: db::Pool::new(config),
        }))
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
                Ok(client) => subscriptions::resolve(&client, &subscriber, events.clone()).await,
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

    /// Evaluates read access to a private channel for these claims.
    pub async fn private_access(
        &self,
        claims: &Value,
        topic: &str,
    ) -> Result<PrivateAccess, String> {
        let mut client = self.pool.get().await?;
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
        let tx = client.transaction().await.map_err(|e| db::message(&e))?;
        private::write_access(tx, claims, topic, extension).await
    }
}
