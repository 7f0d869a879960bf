//! Foreign traits: what the application implements in Python, Kotlin or Swift.
//!
//! Listeners are called on the client's dispatch thread (never the runtime thread), one event
//! at a time, in order; they may call any method of the client or its channels, but should
//! return quickly. An error (exception) thrown by a listener is dropped: catch your own.
//! The client keeps each listener until it is removed or its channel closes, so a listener that
//! holds the client keeps it alive: call `shutdown()` when done.

use std::ops::Deref;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use once_cell::sync::Lazy;

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

/// Supplies a fresh access token before each connect, ahead of the token's expiry, before a
/// rejoin after the server refused the token, and on `app_foregrounded()` (never on
/// heartbeats). Called on a helper thread of the library, one call at a time; it may block
/// (e.g. on a refresh request) for up to 10 s, after which the call counts as failed.
#[uniffi::export(foreign)]
pub trait TokenProvider: Send + Sync {
    /// The token, `None` for "use the API key"; an error is reported as a client error event.
    fn token(&self) -> Result<Option<String>, RealtimeError>;
}

/// App-pumped mode: called on a library helper thread (`supa-wake`) when events are waiting.
/// It should only schedule a `dispatch()` call on the app's thread.
#[uniffi::export(foreign)]
pub trait WakeupListener: Send + Sync {
    fn wake(&self) -> Result<(), RealtimeError>;
}

static STOPPED: AtomicBool = AtomicBool::new(false);
static IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);

struct InFlight;

impl Drop for InFlight {
    fn drop(&mut self) {
        IN_FLIGHT.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Runs `f` (a call into foreign code) unless [`stop_callbacks`] was called; then `f` is
/// leaked rather than dropped, as dropping what it captured may call foreign code too.
pub(crate) fn call_foreign(f: impl FnOnce()) {
    IN_FLIGHT.fetch_add(1, Ordering::SeqCst);
    let _guard = InFlight;
    if STOPPED.load(Ordering::SeqCst) {
        std::mem::forget(f);
    } else {
        f()
    }
}

/// Stops every call from the library into foreign code, process-wide and for good (listeners,
/// token providers, wakeups, async completions), and waits up to `timeout_ms` for those in
/// flight; returns whether none is left. For interpreter shutdown: a library thread entering
/// a finalizing Python interpreter is killed mid-call, which aborts the process. The Python
/// package registers it with `atexit`.
#[uniffi::export]
pub fn stop_callbacks(timeout_ms: u64) -> bool {
    STOPPED.store(true, Ordering::SeqCst);
    let deadline = Instant::now() + Duration::from_millis(timeout_ms);
    while IN_FLIGHT.load(Ordering::SeqCst) > 0 {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    true
}

/// A foreign object held by the library. Releasing it calls into foreign code (uniffi's free
/// callback), so the release is relayed to the `supa-wake` thread: it never happens on the
/// runtime thread (which may drop the last listener at shutdown), and after
/// [`stop_callbacks`] it is leaked instead.
pub(crate) struct Foreign<T: ?Sized + Send + Sync + 'static>(Option<Arc<T>>);

impl<T: ?Sized + Send + Sync + 'static> Foreign<T> {
    pub(crate) fn new(obj: Arc<T>) -> Self {
        Foreign(Some(obj))
    }
}

impl<T: ?Sized + Send + Sync + 'static> Deref for Foreign<T> {
    type Target = T;
    fn deref(&self) -> &T {
        self.0.as_deref().expect("present until dropped")
    }
}

impl<T: ?Sized + Send + Sync + 'static> Drop for Foreign<T> {
    fn drop(&mut self) {
        if let Some(obj) = self.0.take() {
            relay(move || drop(obj));
        }
    }
}

/// The `supa-wake` thread that runs foreign code the runtime thread must not run (see
/// `super::relay`).
type Job = Box<dyn FnOnce() + Send>;

static RELAY: Lazy<mpsc::Sender<Job>> = Lazy::new(|| {
    let (tx, rx) = mpsc::channel::<Job>();
    std::thread::Builder::new()
        .name("supa-wake".into())
        .spawn(move || {
            for job in rx {
                // One failing job must not end the relay (every later await would hang).
                let _ =
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| call_foreign(job)));
            }
        })
        .expect("spawning the supa-wake thread");
    tx
});

/// Runs `f` (foreign code) on the `supa-wake` thread, in order.
pub(crate) fn relay(f: impl FnOnce() + Send + 'static) {
    let _ = RELAY.send(Box::new(f));
}
