//! Foreign traits: what the application implements in Python, Kotlin or Swift.
//!
//! Listeners are called on the client's dispatch thread (never the runtime thread), one event
//! at a time, in order; they may call any method of the client or its channels, but should
//! return quickly. An error (exception) thrown by a listener is dropped: catch your own.
//! The client keeps each listener until it is removed or its channel closes, so a listener that
//! holds the client keeps it alive: call `shutdown()` when done.

use super::error::RealtimeError;
use super::types::{BroadcastMessage, PostgresChangePayload, PresenceEvent, RealtimeEvent};

/// Receives every event of a client, or of one channel.
#[uniffi::export(foreign)]
pub trait EventListener: Send + Sync {
    fn on_event(&self, event: RealtimeEvent) -> Result<(), RealtimeError>;
}

/// Receives broadcasts.
#[uniffi::export(foreign)]
pub trait BroadcastListener: Send + Sync {
    fn on_broadcast(&self, message: BroadcastMessage) -> Result<(), RealtimeError>;
}

/// Receives presence sync/join/leave.
#[uniffi::export(foreign)]
pub trait PresenceListener: Send + Sync {
    fn on_presence(&self, event: PresenceEvent) -> Result<(), RealtimeError>;
}

/// Receives database changes for one binding.
#[uniffi::export(foreign)]
pub trait PostgresChangeListener: Send + Sync {
    fn on_change(&self, change: PostgresChangePayload) -> Result<(), RealtimeError>;
}

/// Receives `system` messages (payload as JSON text).
#[uniffi::export(foreign)]
pub trait SystemListener: Send + Sync {
    fn on_system(&self, payload_json: String) -> Result<(), RealtimeError>;
}

/// Supplies a fresh access token before each connect, rejoin and heartbeat. Called on a
/// helper thread of the library; it may block (e.g. on a refresh request).
#[uniffi::export(foreign)]
pub trait TokenProvider: Send + Sync {
    /// The token, `None` for "use the API key"; an error is reported as a client error event.
    fn token(&self) -> Result<Option<String>, RealtimeError>;
}

/// App-pumped mode: called from any library thread (the runtime thread included) when events
/// are waiting. It must only schedule a `dispatch()` call on the app's thread.
#[uniffi::export(foreign)]
pub trait WakeupListener: Send + Sync {
    fn wake(&self) -> Result<(), RealtimeError>;
}
