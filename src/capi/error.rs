//! Result codes and the thread-local last-error message.

use std::cell::RefCell;
use std::ffi::{c_char, CString};

use crate::error::Error;

/// The outcome of a call. Values are stable: never renumbered, never reused.
///
/// Every fallible function returns one; on anything but `SUPA_OK`,
/// `supa_last_error_message()` on the same thread says what went wrong.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum supa_result {
    /// Success.
    SUPA_OK = 0,
    /// A required pointer argument was NULL.
    SUPA_NULL_ARGUMENT = 1,
    /// A string argument was not valid UTF-8.
    SUPA_INVALID_UTF8 = 2,
    /// An argument was unusable (bad URL, bad option value, wrong dispatch mode, ...).
    SUPA_INVALID_ARGUMENT = 3,
    /// A JSON text argument did not parse (or was not an object where one is needed).
    SUPA_INVALID_JSON = 4,
    /// The operation needs a connected socket or a joined channel.
    SUPA_NOT_CONNECTED = 5,
    /// No reply in time (a blocking call's timeout, or the push timeout).
    SUPA_TIMEOUT = 6,
    /// The server refused; the message carries its reason text unchanged.
    SUPA_CHANNEL_ERROR = 7,
    /// A blocking call was made on the dispatcher thread (inside a callback), where it
    /// would wait on itself. Use the non-blocking variant there.
    SUPA_WOULD_DEADLOCK = 8,
    /// The client was shut down or freed.
    SUPA_SHUTDOWN = 9,
    /// An HTTP request got a non-success status; the message has the status and body.
    SUPA_HTTP = 10,
    /// A TLS configuration or handshake problem.
    SUPA_TLS = 11,
    /// A transport problem (DNS, TCP, WebSocket).
    SUPA_IO = 12,
    /// The library panicked: a bug. The handle stays usable but the call did nothing.
    SUPA_PANIC = 13,
}

impl supa_result {
    /// The NUL-terminated name.
    fn name(self) -> &'static str {
        match self {
            supa_result::SUPA_OK => "SUPA_OK\0",
            supa_result::SUPA_NULL_ARGUMENT => "SUPA_NULL_ARGUMENT\0",
            supa_result::SUPA_INVALID_UTF8 => "SUPA_INVALID_UTF8\0",
            supa_result::SUPA_INVALID_ARGUMENT => "SUPA_INVALID_ARGUMENT\0",
            supa_result::SUPA_INVALID_JSON => "SUPA_INVALID_JSON\0",
            supa_result::SUPA_NOT_CONNECTED => "SUPA_NOT_CONNECTED\0",
            supa_result::SUPA_TIMEOUT => "SUPA_TIMEOUT\0",
            supa_result::SUPA_CHANNEL_ERROR => "SUPA_CHANNEL_ERROR\0",
            supa_result::SUPA_WOULD_DEADLOCK => "SUPA_WOULD_DEADLOCK\0",
            supa_result::SUPA_SHUTDOWN => "SUPA_SHUTDOWN\0",
            supa_result::SUPA_HTTP => "SUPA_HTTP\0",
            supa_result::SUPA_TLS => "SUPA_TLS\0",
            supa_result::SUPA_IO => "SUPA_IO\0",
            supa_result::SUPA_PANIC => "SUPA_PANIC\0",
        }
    }

    const ALL: [supa_result; 14] = [
        supa_result::SUPA_OK,
        supa_result::SUPA_NULL_ARGUMENT,
        supa_result::SUPA_INVALID_UTF8,
        supa_result::SUPA_INVALID_ARGUMENT,
        supa_result::SUPA_INVALID_JSON,
        supa_result::SUPA_NOT_CONNECTED,
        supa_result::SUPA_TIMEOUT,
        supa_result::SUPA_CHANNEL_ERROR,
        supa_result::SUPA_WOULD_DEADLOCK,
        supa_result::SUPA_SHUTDOWN,
        supa_result::SUPA_HTTP,
        supa_result::SUPA_TLS,
        supa_result::SUPA_IO,
        supa_result::SUPA_PANIC,
    ];
}

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

pub(crate) fn set_last_error(message: &str) {
    let text = CString::new(message.replace('\0', " ")).unwrap_or_default();
    LAST_ERROR.with(|m| *m.borrow_mut() = text);
}

/// Records `message` and returns `code`.
pub(crate) fn fail(code: supa_result, message: &str) -> supa_result {
    set_last_error(message);
    code
}

/// Success: clears the message.
pub(crate) fn ok() -> supa_result {
    set_last_error("");
    supa_result::SUPA_OK
}

pub(crate) fn code_of(e: &Error) -> supa_result {
    match e {
        Error::InvalidArgument(_) => supa_result::SUPA_INVALID_ARGUMENT,
        Error::NotConnected => supa_result::SUPA_NOT_CONNECTED,
        Error::Timeout => supa_result::SUPA_TIMEOUT,
        Error::ChannelError(_) => supa_result::SUPA_CHANNEL_ERROR,
        Error::WouldDeadlock => supa_result::SUPA_WOULD_DEADLOCK,
        Error::Shutdown => supa_result::SUPA_SHUTDOWN,
        Error::Http { .. } => supa_result::SUPA_HTTP,
        Error::Tls(_) => supa_result::SUPA_TLS,
        Error::Io(_) => supa_result::SUPA_IO,
    }
}

/// Records a core error's text and returns its code.
pub(crate) fn from_error(e: &Error) -> supa_result {
    fail(code_of(e), &e.to_string())
}

/// The name of a result code (`"SUPA_TIMEOUT"`), or `"SUPA_UNKNOWN"` for a value that is not
/// one. A static NUL-terminated string: never free it.
#[no_mangle]
pub extern "C" fn supa_result_name(result: u32) -> *const c_char {
    super::boundary(|| {
        supa_result::ALL
            .iter()
            .find(|r| **r as u32 == result)
            .map_or("SUPA_UNKNOWN\0", |r| r.name())
            .as_ptr()
            .cast()
    })
}

/// The message of the last failed call on this thread; `""` after a successful call.
///
/// Lifetime: valid until the next `supa_*` call on this thread. Never NULL; never free it.
/// Thread-safety: each thread has its own message.
#[no_mangle]
pub extern "C" fn supa_last_error_message() -> *const c_char {
    super::boundary(|| LAST_ERROR.with(|m| m.borrow().as_ptr()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;

    fn name(code: u32) -> &'static str {
        // SAFETY: `supa_result_name` returns a static NUL-terminated string.
        unsafe { CStr::from_ptr(supa_result_name(code)) }
            .to_str()
            .unwrap()
    }

    #[test]
    fn the_header_version_is_the_crate_version() {
        let config = include_str!("../../cbindgen.toml");
        let define = format!(
            "#define SUPA_REALTIME_VERSION \"{}\"",
            env!("CARGO_PKG_VERSION")
        );
        assert!(
            config.contains(&define),
            "update SUPA_REALTIME_VERSION in cbindgen.toml"
        );
    }

    #[test]
    fn every_code_has_its_own_name_and_values_are_stable() {
        for (i, r) in supa_result::ALL.iter().enumerate() {
            assert_eq!(*r as u32, i as u32, "values are dense and never renumbered");
            assert_eq!(name(*r as u32), format!("{r:?}"));
        }
        assert_eq!(name(999), "SUPA_UNKNOWN");
    }

    #[test]
    fn the_last_error_is_per_thread_and_cleared_by_success() {
        assert_eq!(
            fail(supa_result::SUPA_TIMEOUT, "slow"),
            supa_result::SUPA_TIMEOUT
        );
        // SAFETY: the message is NUL-terminated and valid until the next call on this thread.
        let msg = || unsafe { CStr::from_ptr(supa_last_error_message()) }.to_owned();
        assert_eq!(msg().to_str().unwrap(), "slow");
        std::thread::spawn(move || {
            assert_eq!(
                // SAFETY: as above, on this thread.
                unsafe { CStr::from_ptr(supa_last_error_message()) }.to_bytes(),
                b""
            )
        })
        .join()
        .unwrap();
        ok();
        assert_eq!(msg().to_bytes(), b"");
    }
}
