//! uniffi bindings (Python, Kotlin, Swift) over the Rust API, exported from this same library.
//!
//! A thin layer: every call forwards to [`crate::RealtimeClient`] / [`crate::RealtimeChannel`].
//! JSON crosses the boundary as strings (`*_json`), which each language layer turns into its
//! native type. Threads follow the core's rules:
//!
//! * listener traits ([`EventListener`], [`BroadcastListener`], ...) are called on the client's
//!   dispatch thread (or inside `dispatch()` in app-pumped mode), never on the runtime thread;
//!   an [`EventBatchListener`] gets the same events in batches, one call per run of the queue
//!   (the fast path the Python and Kotlin layers use);
//! * async methods run on the library runtime and complete by waking the foreign executor
//!   from a small relay thread (`supa-wake`), so foreign code (Python's GIL, the JVM) never runs
//!   on the runtime thread either. No second runtime is started.
//!
//! Generate the bindings with `scripts/gen-bindings`; see `docs/bindings.md`. From Python
//! (the generated module, under the idiomatic `supa_realtime` package):
//!
//! ```python
//! from supa_realtime._native import supa_realtime as rt
//! client = rt.RealtimeClient(rt.ClientOptions(url="http://127.0.0.1:4000/realtime/v1", api_key=key), None)
//! room = client.channel("room1", rt.ChannelOptions(broadcast_self=True))
//! await room.subscribe()                                   # completes on SUBSCRIBED
//! await room.send_broadcast("hello", rt.Payload.JSON('{"n": 1}'))
//! ```

mod batch;
mod channel;
mod client;
mod error;
mod listener;
mod logging;
mod relay;
mod types;

pub use batch::EventBatchListener;
pub use channel::RealtimeChannel;
pub use client::RealtimeClient;
pub use error::{IoCause, RealtimeError};
pub use listener::{
    stop_callbacks, BroadcastListener, EventListener, PostgresChangeListener, PresenceListener,
    SystemListener, TokenProvider, WakeupListener,
};
pub use logging::{set_logger, Logger};
pub use types::*;
