//! The C ABI (`include/supa_realtime.h`, generated from this module by cbindgen).
//!
//! A thin layer over the Rust API: opaque handles ([`supa_options`], [`supa_client`],
//! [`supa_channel`], [`supa_event`]), numeric result codes ([`supa_result`]) with a
//! thread-local message, and callbacks with `void *userdata` plus a destructor.
//!
//! Rules every export follows (after rustls-ffi):
//! * runs under `boundary`: a panic becomes `SUPA_PANIC` (or NULL/0), never an unwind into C;
//! * checks every pointer: NULL gives `SUPA_NULL_ARGUMENT`; `_free(NULL)` is a no-op;
//! * reads strings as NUL-terminated UTF-8 (`SUPA_INVALID_UTF8` otherwise) and copies them;
//! * writes outputs only on success;
//! * returns `SUPA_SHUTDOWN` once the client was shut down (the handle accessors check it),
//!   except the getters, `supa_client_shutdown`, `supa_client_dispatch` and the `_free`s;
//! * a call that takes a callback and fails never calls it, and never calls its destructor:
//!   the caller still owns the userdata.
//!
//! ```c
//! supa_options *o; supa_client *c; supa_channel *ch;
//! supa_options_new("http://127.0.0.1:4000/realtime/v1", anon_key, &o);
//! supa_client_new(o, &c);
//! supa_options_free(o);
//! supa_client_channel(c, "room1", NULL, &ch);
//! supa_channel_on_broadcast(ch, "*", on_message, state, free_state, NULL);
//! if (supa_channel_subscribe_blocking(ch, 10000) != SUPA_OK)
//!     fprintf(stderr, "%s\n", supa_last_error_message());
//! ```
//!
//! See `docs/c.md`, `examples/c/` and `tests/c/`.

#![allow(non_camel_case_types)]
#![allow(clippy::missing_safety_doc)]
// The exports' bodies use the `unsafe fn` context for their pointer arguments (each is
// NULL-checked, and the header states what the caller guarantees). Turning them into safe
// `extern "C"` bodies with small commented unsafe blocks, as rustls-ffi does, is still to do;
// explicit unsafe blocks here already carry a `SAFETY:` line (clippy enforces it).
#![allow(unsafe_op_in_unsafe_fn)]

mod callback;
mod channel;
mod client;
mod error;
mod event;
mod logging;
mod options;
#[cfg(test)]
mod pure_tests;
mod stored;

pub use callback::{supa_destroy_cb, supa_event_cb, supa_token_cb, supa_wakeup_cb};
pub use channel::*;
pub use client::*;
pub use error::*;
pub use event::*;
pub use logging::*;
pub use options::*;
pub use stored::*;

use std::ffi::{c_char, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Duration;

use crate::error::Error;

/// What an export returns when its body panicked.
pub(crate) trait OnPanic {
    fn on_panic() -> Self;
}

impl OnPanic for supa_result {
    fn on_panic() -> Self {
        supa_result::SUPA_PANIC
    }
}
impl<T> OnPanic for *const T {
    fn on_panic() -> Self {
        std::ptr::null()
    }
}
impl<T> OnPanic for *mut T {
    fn on_panic() -> Self {
        std::ptr::null_mut()
    }
}
impl OnPanic for () {
    fn on_panic() -> Self {}
}
impl OnPanic for u64 {
    fn on_panic() -> Self {
        0
    }
}
impl OnPanic for u32 {
    fn on_panic() -> Self {
        0
    }
}
impl OnPanic for bool {
    fn on_panic() -> Self {
        false
    }
}

/// The panic boundary every export runs its body in.
pub(crate) fn boundary<R: OnPanic>(f: impl FnOnce() -> R) -> R {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(_) => {
            error::set_last_error("internal error: the library panicked (a bug; please report)");
            R::on_panic()
        }
    }
}

/// Early-returns `SUPA_NULL_ARGUMENT` (with a message naming the argument) for a NULL pointer.
macro_rules! non_null {
    ($($p:ident),+) => {
        $(
            if $p.is_null() {
                return $crate::capi::error::fail(
                    $crate::capi::supa_result::SUPA_NULL_ARGUMENT,
                    concat!("`", stringify!($p), "` is NULL"),
                );
            }
        )+
    };
}
pub(crate) use non_null;

/// Unwraps a `Result<T, supa_result>` or returns the code (the message is already set).
macro_rules! tri {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(code) => return code,
        }
    };
}
pub(crate) use tri;

/// Borrows a NUL-terminated UTF-8 argument (`what` names it in the error message).
pub(crate) unsafe fn str_arg<'a>(p: *const c_char, what: &str) -> Result<&'a str, supa_result> {
    if p.is_null() {
        return Err(error::fail(
            supa_result::SUPA_NULL_ARGUMENT,
            &format!("`{what}` is NULL"),
        ));
    }
    CStr::from_ptr(p).to_str().map_err(|e| {
        error::fail(
            supa_result::SUPA_INVALID_UTF8,
            &format!("`{what}` is not valid UTF-8 ({e})"),
        )
    })
}

/// Like [`str_arg`], but NULL means "absent".
pub(crate) unsafe fn opt_str_arg<'a>(
    p: *const c_char,
    what: &str,
) -> Result<Option<&'a str>, supa_result> {
    if p.is_null() {
        Ok(None)
    } else {
        str_arg(p, what).map(Some)
    }
}

/// Parses a NUL-terminated JSON text argument.
pub(crate) unsafe fn json_arg(
    p: *const c_char,
    what: &str,
) -> Result<serde_json::Value, supa_result> {
    let text = str_arg(p, what)?;
    serde_json::from_str(text).map_err(|e| {
        error::fail(
            supa_result::SUPA_INVALID_JSON,
            &format!("`{what}` is not valid JSON: {e}"),
        )
    })
}

/// Borrows `len` bytes (NULL is allowed only when `len` is 0).
pub(crate) unsafe fn bytes_arg<'a>(
    p: *const u8,
    len: usize,
    what: &str,
) -> Result<&'a [u8], supa_result> {
    if len == 0 {
        return Ok(&[]);
    }
    if p.is_null() {
        return Err(error::fail(
            supa_result::SUPA_NULL_ARGUMENT,
            &format!("`{what}` is NULL"),
        ));
    }
    Ok(std::slice::from_raw_parts(p, len))
}

/// A millisecond count from C.
pub(crate) fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

/// A duration as whole microseconds for C (saturating).
pub(crate) fn us(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// An optional duration in microseconds; 0 when absent.
pub(crate) fn opt_us(d: Option<Duration>) -> u64 {
    d.map_or(0, us)
}

/// `SUPA_SHUTDOWN`: a call on a client (or a channel of one) that was shut down or freed.
pub(crate) fn shut_down() -> supa_result {
    error::fail(supa_result::SUPA_SHUTDOWN, "client shut down")
}

/// Maps a core result to a code, recording the message.
pub(crate) fn result(r: Result<(), Error>) -> supa_result {
    match r {
        Ok(()) => error::ok(),
        Err(e) => error::from_error(&e),
    }
}

/// A library-allocated NUL-terminated string for the caller, freed with `supa_string_free`.
pub(crate) fn owned_c_string(s: String) -> *mut c_char {
    // JSON text and our own strings never contain NUL; strip defensively rather than fail.
    let bytes: Vec<u8> = s.into_bytes().into_iter().filter(|b| *b != 0).collect();
    CString::new(bytes).map_or(std::ptr::null_mut(), CString::into_raw)
}

/// Frees a string the library returned (for example from `supa_channel_presence_state_json`).
///
/// Ownership: takes back the string; `NULL` is a no-op. Never pass it to `free()`, and never
/// pass a string the library did not allocate.
#[no_mangle]
pub unsafe extern "C" fn supa_string_free(s: *mut c_char) {
    boundary(|| {
        if !s.is_null() {
            drop(CString::from_raw(s));
        }
    })
}

/// The library version, e.g. `"0.1.0"`: a static NUL-terminated string.
#[no_mangle]
pub extern "C" fn supa_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}
