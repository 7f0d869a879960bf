//! The C ABI (`include/supa_realtime.h`, generated from this module by cbindgen).
//!
//! A thin layer over the Rust API: opaque handles ([`supa_options`], [`supa_client`],
//! [`supa_channel`], [`supa_event`]), numeric result codes ([`supa_result`]) with a
//! thread-local message, and callbacks with `void *userdata` plus a destructor.
//!
//! Rules every export follows (after rustls-ffi):
//! * is a safe `extern "C" fn`: its pointer arguments are read only through the unsafe
//!   helpers below (each call in its own `unsafe {}` block whose `SAFETY:` line names the
//!   header's contract that makes it sound);
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

pub(crate) use error::supa_result;

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

// The unsafe helpers: every read of a pointer argument goes through one of them. Their
// `# Safety` sections are the header's conventions ("Every pointer argument ...") for one kind
// of argument; a call site's `SAFETY:` line says which convention the argument falls under.

/// Borrows the object behind a handle argument; `None` for NULL.
///
/// # Safety
///
/// `p` is NULL or points to a live `T` (a handle not yet freed, or the event a callback is
/// running with) that nothing mutates while the borrow lasts.
pub(crate) unsafe fn borrow<'a, T>(p: *const T) -> Option<&'a T> {
    // SAFETY: NULL or a live, unmutated `T`, as the caller promises.
    unsafe { p.as_ref() }
}

/// Borrows the object behind a handle argument for changing it; `None` for NULL.
///
/// # Safety
///
/// `p` is NULL or points to a live `T` that nothing else reads or writes while the borrow
/// lasts (the options objects are "one thread at a time").
pub(crate) unsafe fn borrow_mut<'a, T>(p: *mut T) -> Option<&'a mut T> {
    // SAFETY: NULL or a live `T` used by this call alone, as the caller promises.
    unsafe { p.as_mut() }
}

/// Writes an out-parameter; NULL means the caller does not want the value.
///
/// # Safety
///
/// `out` is NULL or valid for writing a `T` (aligned; what it held before is not read or
/// dropped, so it may be uninitialised).
pub(crate) unsafe fn put<T>(out: *mut T, value: T) {
    if !out.is_null() {
        // SAFETY: non-NULL, so writable and aligned, as the caller promises.
        unsafe { out.write(value) }
    }
}

/// Takes back and drops an object handed out with `Box::into_raw`; NULL is a no-op.
///
/// # Safety
///
/// `p` is NULL or came from `Box::into_raw` for a `T` and was not freed before; nothing uses it
/// after this call.
pub(crate) unsafe fn free_box<T>(p: *mut T) {
    if !p.is_null() {
        // SAFETY: a box of ours, freed once, as the caller promises.
        drop(unsafe { Box::from_raw(p) });
    }
}

/// Borrows `len` elements at `p` (NULL is allowed only when `len` is 0; `what` names the
/// argument in the error message).
///
/// # Safety
///
/// When `len` is not 0, `p` is NULL or points to `len` initialised `T`s that stay unchanged
/// while the borrow lasts.
pub(crate) unsafe fn slice_arg<'a, T>(
    p: *const T,
    len: usize,
    what: &str,
) -> Result<&'a [T], supa_result> {
    if len == 0 {
        return Ok(&[]);
    }
    if p.is_null() {
        return Err(error::fail(
            supa_result::SUPA_NULL_ARGUMENT,
            &format!("`{what}` is NULL"),
        ));
    }
    // SAFETY: non-NULL with `len` initialised elements, as the caller promises.
    Ok(unsafe { std::slice::from_raw_parts(p, len) })
}

/// Borrows a NUL-terminated UTF-8 argument (`what` names it in the error message).
///
/// # Safety
///
/// `p` is NULL or points to a NUL-terminated string that stays unchanged while the borrow
/// lasts.
pub(crate) unsafe fn str_arg<'a>(p: *const c_char, what: &str) -> Result<&'a str, supa_result> {
    if p.is_null() {
        return Err(error::fail(
            supa_result::SUPA_NULL_ARGUMENT,
            &format!("`{what}` is NULL"),
        ));
    }
    // SAFETY: non-NULL, so a NUL-terminated string, as the caller promises.
    unsafe { CStr::from_ptr(p) }.to_str().map_err(|e| {
        error::fail(
            supa_result::SUPA_INVALID_UTF8,
            &format!("`{what}` is not valid UTF-8 ({e})"),
        )
    })
}

/// Like [`str_arg`], but NULL means "absent".
///
/// # Safety
///
/// As [`str_arg`].
pub(crate) unsafe fn opt_str_arg<'a>(
    p: *const c_char,
    what: &str,
) -> Result<Option<&'a str>, supa_result> {
    if p.is_null() {
        Ok(None)
    } else {
        // SAFETY: the caller's promise for `p`, passed on.
        unsafe { str_arg(p, what) }.map(Some)
    }
}

/// Parses a NUL-terminated JSON text argument.
///
/// # Safety
///
/// As [`str_arg`].
pub(crate) unsafe fn json_arg(
    p: *const c_char,
    what: &str,
) -> Result<serde_json::Value, supa_result> {
    // SAFETY: the caller's promise for `p`, passed on.
    let text = unsafe { str_arg(p, what) }?;
    serde_json::from_str(text).map_err(|e| {
        error::fail(
            supa_result::SUPA_INVALID_JSON,
            &format!("`{what}` is not valid JSON: {e}"),
        )
    })
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
pub extern "C" fn supa_string_free(s: *mut c_char) {
    boundary(|| {
        if !s.is_null() {
            // SAFETY: the header allows only NULL or a string of ours, freed once
            // (`owned_c_string` made it with `CString::into_raw`).
            drop(unsafe { CString::from_raw(s) });
        }
    })
}

/// The library version, e.g. `"0.1.0"`: a static NUL-terminated string.
#[no_mangle]
pub extern "C" fn supa_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}
