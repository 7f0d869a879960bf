//! The library's log records for the bindings (Python maps them to the `supa_realtime`
//! `logging` logger; Kotlin and Swift to their logger interfaces).

use std::sync::Arc;

use super::error::RealtimeError;
use super::listener::{call_foreign, Foreign};

/// Receives the library's log records (connection, join, reconnect, errors). Called on the
/// library's "supa-log" thread, one record at a time, in order; never on the runtime thread.
#[uniffi::export(foreign)]
pub trait Logger: Send + Sync {
    /// `level`: 1 error, 2 warn, 3 info, 4 debug, 5 trace; `target`: the library module.
    fn log(&self, level: u32, target: String, message: String) -> Result<(), RealtimeError>;
}

/// Sends the library's log records up to `level` (0 off ... 5 trace) to `logger`, process-wide;
/// `None` or level 0 turns logging off (the default, which costs nothing).
#[uniffi::export]
pub fn set_logger(level: u32, logger: Option<Arc<dyn Logger>>) -> Result<(), RealtimeError> {
    let filter = crate::logging::level_filter(level)?;
    let sink = logger.map(|l| {
        let l = Foreign::new(l);
        Box::new(move |level: log::Level, target: &str, message: &str| {
            call_foreign(|| {
                let _ = l.log(
                    crate::logging::level_number(level),
                    target.to_owned(),
                    message.to_owned(),
                );
            });
        }) as crate::logging::Sink
    });
    Ok(crate::logging::set_sink(filter, sink)?)
}
