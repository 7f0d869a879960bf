//! `supa_set_log_callback`: the library's log records (connection, join, reconnect, errors)
//! delivered to a C callback on the library's log thread.

use std::ffi::{c_char, c_void, CString};

use super::callback::{supa_destroy_cb, UserData};
use super::error::supa_result;
use super::{boundary, result};

/// Receives one log record: `level` 1 error, 2 warn, 3 info, 4 debug, 5 trace; `target` the
/// library module (`supa_realtime::engine`); `message` the text. Both strings are valid only
/// during the call. Runs on the library's "supa-log" thread, one record at a time, in order;
/// it may call non-blocking `supa_*` functions. Records that arrive faster than it returns are
/// dropped beyond a backlog of 1024.
pub type supa_log_cb = Option<
    unsafe extern "C" fn(
        userdata: *mut c_void,
        level: u32,
        target: *const c_char,
        message: *const c_char,
    ),
>;

/// Sends the library's log records up to `level` (0 off, 1 error, 2 warn, 3 info, 4 debug,
/// 5 trace) to `cb`, process-wide. Logging is off by default and costs nothing then. A new call
/// replaces the previous callback (whose `destroy` then runs once, on the log thread); `cb`
/// NULL or `level` 0 turns logging off.
///
/// Errors: `SUPA_INVALID_ARGUMENT` for a level above 5 (the callback and `destroy` are then
/// never called).
#[no_mangle]
pub extern "C" fn supa_set_log_callback(
    level: u32,
    cb: supa_log_cb,
    userdata: *mut c_void,
    destroy: supa_destroy_cb,
) -> supa_result {
    boundary(|| {
        let filter = match crate::logging::level_filter(level) {
            Ok(f) => f,
            Err(e) => return result(Err(e)),
        };
        let sink: Option<crate::logging::Sink> = cb.map(|cb| {
            let ud = UserData::armed(userdata, destroy);
            Box::new(move |level: log::Level, target: &str, message: &str| {
                let target = CString::new(target.replace('\0', " ")).unwrap_or_default();
                let message = CString::new(message.replace('\0', " ")).unwrap_or_default();
                // SAFETY: `cb` is the caller's function, called with its own userdata and two
                // NUL-terminated strings that live until it returns, as `supa_log_cb` states.
                unsafe {
                    cb(
                        ud.ptr(),
                        crate::logging::level_number(level),
                        target.as_ptr(),
                        message.as_ptr(),
                    )
                };
            }) as crate::logging::Sink
        });
        result(crate::logging::set_sink(filter, sink))
    })
}
