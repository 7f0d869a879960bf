//! Postgres changes, private-channel authorization and database broadcasts, backed by a
//! real PostgreSQL (logical decoding with wal2json, RLS evaluated inside the database).
//!
//! This is the boundary between the socket/channel side of the server and the database.
//! The channel code only uses the items below; everything else in this module is private.
//!
//! INTERFACE STUB: the bodies are placeholders until issue 3 implements them.

use std::sync::Arc;

use serde_json::{Map, Value};
use tokio::sync::mpsc;

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
    _private: (),
}

/// Unsubscribes when dropped (the channel left, closed or re-subscribed).
pub struct PgSubscription {
    _private: (),
}

impl PgChanges {
    /// Connects, checks `wal_level=logical` and wal2json (an error says how to fix either),
    /// creates the Supabase objects that are missing, and starts reading changes.
    /// Database broadcasts are sent into `broadcasts`.
    pub async fn connect(
        database_url: &str,
        broadcasts: mpsc::UnboundedSender<DbBroadcast>,
    ) -> Result<Arc<PgChanges>, String> {
        let _ = (database_url, broadcasts);
        Err("postgres changes are not implemented yet".into())
    }

    /// Registers a channel's bindings. Events for it (the `system` ok or error, then
    /// changes in commit order) go into `events` until the returned handle is dropped.
    pub fn subscribe(
        self: &Arc<Self>,
        subscriber: Subscriber,
        events: mpsc::UnboundedSender<PgEvent>,
    ) -> PgSubscription {
        let _ = (subscriber, events);
        PgSubscription { _private: () }
    }

    /// Evaluates read access to a private channel for these claims.
    pub async fn private_access(&self, claims: &Value, topic: &str) -> Result<PrivateAccess, String> {
        let _ = (claims, topic);
        Err("private channels need a database".into())
    }

    /// Evaluates write access (INSERT policy) to a private channel for these claims.
    pub async fn can_write(&self, claims: &Value, topic: &str, extension: Extension) -> Result<bool, String> {
        let _ = (claims, topic, extension);
        Err("private channels need a database".into())
    }
}
