//! C callbacks with `void *userdata`, and the destructor that runs exactly once after the last
//! call.
//!
//! A registration's closure owns a [`UserData`]. The dispatcher clones the closure's `Arc` while
//! it calls it, so the `UserData` drops (and runs the destructor) only after the last callback
//! has returned, whichever of removal, channel close or client shutdown came first.

use std::ffi::{c_char, c_void};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

use super::event::{deliver, supa_event, Borrowed};
use crate::event::Event;

/// Called with each event of a registration, on the client's dispatcher thread (or inside
/// `supa_client_dispatch` in app-pumped mode). `event` is borrowed: valid only until the
/// callback returns (keep it with `supa_event_copy`). The callback may call any `supa_*`
/// function except blocking ones (which return `SUPA_WOULD_DEADLOCK` here), including
/// unsubscribing and freeing the channel or the client.
pub type supa_event_cb =
    Option<unsafe extern "C" fn(userdata: *mut c_void, event: *const supa_event)>;

/// Releases a registration's userdata. Runs exactly once, after the registration's last
/// callback; on the dispatcher thread, in `supa_client_dispatch`, or on a library thread when the
/// client is freed in app-pumped mode. Never runs when the registering call failed.
pub type supa_destroy_cb = Option<unsafe extern "C" fn(userdata: *mut c_void)>;

/// App-pumped mode: the event queue became non-empty. Called from any library thread; it must
/// only schedule a `supa_client_dispatch` call on the application's thread (signal a condition
/// variable, write to a pipe, post to a main loop) and must not call `supa_*` functions.
pub type supa_wakeup_cb = Option<unsafe extern "C" fn(userdata: *mut c_void)>;

/// Supplies the access token before each connect and each channel rejoin, ahead of the current
/// JWT's `exp` (see `supa_options_set_token_refresh_margin_ms`) and on
/// `supa_client_app_foregrounded`, on a library helper thread (never the dispatcher), so it may
/// block (for example on a refresh request).
///
/// Return 0 with `*token` set to a NUL-terminated UTF-8 token, or to NULL to use the API key.
/// The library copies the token at once; it must stay valid only until the callback returns.
/// Any other return value is a failure, reported as a `SUPA_EVENT_ERROR` event; so is a token
/// that is not valid UTF-8 (never a silent fall-back to the API key). A blocking `supa_*` call
/// made inside it returns `SUPA_WOULD_DEADLOCK` and does nothing. It must return normally (no
/// C++ exception or `longjmp` out of it); the library's own code around the call runs under a
/// panic boundary.
pub type supa_token_cb =
    Option<unsafe extern "C" fn(userdata: *mut c_void, token: *mut *const c_char) -> i32>;

const PENDING: u8 = 0;
const ARMED: u8 = 1;
const DROPPED_PENDING: u8 = 2;
const CANCELLED: u8 = 3;

/// Registration outcome shared between a [`UserData`] and the registering call, so that a
/// failed registration never runs the destructor and a successful one always does.
pub(crate) struct Arming(Arc<AtomicU8>);

/// The userdata pointer plus its destructor. Sent to the dispatcher thread: the header states
/// that userdata is used there, so it must be safe to use from that thread.
pub(crate) struct UserData {
    ptr: *mut c_void,
    destroy: supa_destroy_cb,
    state: Arc<AtomicU8>,
}

// SAFETY: the header states that userdata is used on library threads (the dispatcher, the log
// thread, a token helper): the C caller promises that the pointer may be used from them.
unsafe impl Send for UserData {}
// SAFETY: as for `Send`; callbacks of one registration never run concurrently on the pointer.
unsafe impl Sync for UserData {}

impl UserData {
    /// A userdata whose destructor runs only once [`Arming::armed`] confirms the registration.
    pub(crate) fn pending(ptr: *mut c_void, destroy: supa_destroy_cb) -> (UserData, Arming) {
        let state = Arc::new(AtomicU8::new(PENDING));
        (
            UserData {
                ptr,
                destroy,
                state: state.clone(),
            },
            Arming(state),
        )
    }

    /// A userdata whose destructor runs on drop (the registration cannot fail any more).
    pub(crate) fn armed(ptr: *mut c_void, destroy: supa_destroy_cb) -> UserData {
        UserData {
            ptr,
            destroy,
            state: Arc::new(AtomicU8::new(ARMED)),
        }
    }

    pub(crate) fn ptr(&self) -> *mut c_void {
        self.ptr
    }

    fn run_destroy(ptr: *mut c_void, destroy: supa_destroy_cb) {
        if let Some(f) = destroy {
            // SAFETY: the caller's destructor with its own userdata, called exactly once (the
            // state machine above), after the registration's last callback.
            unsafe { f(ptr) }
        }
    }
}

impl Drop for UserData {
    fn drop(&mut self) {
        match self.state.compare_exchange(
            PENDING,
            DROPPED_PENDING,
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            // Dropped before the registering call decided: it runs the destructor if it succeeded.
            Ok(_) => {}
            Err(ARMED) => Self::run_destroy(self.ptr, self.destroy),
            Err(_) => {} // cancelled: the caller keeps the userdata
        }
    }
}

impl Arming {
    /// The registration succeeded: the destructor will run (now, if the closure is already gone).
    pub(crate) fn armed(self, ptr: *mut c_void, destroy: supa_destroy_cb) {
        if self
            .0
            .compare_exchange(PENDING, ARMED, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            UserData::run_destroy(ptr, destroy);
        }
    }

    /// The registration failed: never call the destructor.
    pub(crate) fn cancelled(self) {
        self.0.store(CANCELLED, Ordering::Release);
    }
}

/// Wraps a C event callback as a core listener that owns `userdata`.
pub(crate) fn event_listener(
    cb: unsafe extern "C" fn(*mut c_void, *const supa_event),
    userdata: UserData,
) -> impl Fn(&Event) + Send + Sync + 'static {
    move |e: &Event| deliver(cb, userdata.ptr(), Borrowed::Event(e))
}
