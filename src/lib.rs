//! libsupa_realtime: a native Supabase Realtime client.
//!
//! One [`RealtimeClient`] owns one WebSocket to a Realtime server and any number of
//! [`RealtimeChannel`]s (topic `realtime:<name>`), each with broadcast, presence and
//! postgres-changes listeners. The wire codec is [`protocol`].
//!
//! # Threads and delivery
//!
//! * All network work runs on one runtime thread owned by the library (`supa-rt`), shared by
//!   every client in the process. User code never runs there.
//! * Each client has one ordered event queue. By default a `supa-dispatch` thread per client
//!   calls your callbacks; with [`DispatchMode::AppPumped`] you call
//!   [`RealtimeClient::dispatch`] yourself (a wakeup hook says when). Events of one client are
//!   delivered in the order they were produced.
//! * API calls only send a command to the runtime; no lock is held while a callback runs, so a
//!   callback may send, unsubscribe, or drop the client. `*_blocking` helpers called from a
//!   callback return [`Error::WouldDeadlock`] instead of hanging.
//! * The queue is bounded ([`ClientOptions::queue_capacity`]): when full, data events
//!   (broadcast, presence, changes, system, heartbeat) are dropped and one [`Event::Lagged`]
//!   says how many; lifecycle events (statuses, errors, resumed) are never dropped.
//!
//! # Example
//!
//! ```no_run
//! use supa_realtime::*;
//! # async fn demo() -> Result<(), Error> {
//! let client = RealtimeClient::new(ClientOptions::new("http://127.0.0.1:4000/realtime/v1", "anon-jwt"))?;
//! let ch = client.channel("room1", ChannelOptions::default().broadcast_self(true));
//! ch.on_broadcast("*", |b| println!("{} {:?}", b.event, b.payload));
//! ch.on_presence(|p| println!("presence: {p:?}"));
//! ch.subscribe()?;
//! ch.subscribed().await?;
//! ch.send_broadcast("hello", serde_json::json!({"n": 1}).into()).await?;
//! ch.track(serde_json::json!({"user": "alice"})).await?;
//! # Ok(()) }
//! ```

// Every unsafe block says why it is sound, and unsafe operations inside an `unsafe fn` need
// their own block (the C ABI's exports are safe functions, see `capi`).
#![deny(unsafe_op_in_unsafe_fn, clippy::undocumented_unsafe_blocks)]

// The C ABI is for C callers only: `#[no_mangle]` exports its symbols from the library, while
// as Rust items its safe `extern "C"` functions stay inside the crate, so no safe Rust caller
// can hand them an invalid pointer.
mod capi;
mod channel;
mod client;
mod command;
mod dispatch;
mod driver;
mod engine;
mod error;
mod event;
mod incoming;
mod logging;
mod options;
pub mod postgres;
pub mod presence;
mod runtime;
mod token;
mod transport;
pub mod uniffi;

::uniffi::setup_scaffolding!("supa_realtime");

pub use channel::RealtimeChannel;
pub use client::{Metrics, RealtimeClient};
pub use dispatch::ListenerId;
pub use error::{is_token_rejection, Error, ErrorKind};
pub use event::{
    Broadcast, ChannelState, ConnectionState, Event, HeartbeatStatus, Payload, PostgresChange,
    PresenceEvent, SubscribeStatus,
};
pub use options::{ChannelOptions, ClientOptions, DispatchMode, Replay, TokenProvider, Vsn};
pub use postgres::PostgresChangesFilter;
pub use supa_realtime_protocol as protocol;
pub use supa_realtime_protocol::Persist;

/// For fuzz targets only (not a supported API): the engine fed frames without a socket.
#[doc(hidden)]
pub mod fuzzing {
    pub use crate::engine::fuzz::FuzzEngine;
}
