//! The log hook for foreign callers (a C callback, a binding's logger): the library's `log`
//! records go to one sink that runs on a thread of its own ("supa-log"), never on the runtime
//! thread. Off by default: with no sink `log::max_level()` is `Off`, so a disabled log
//! statement costs one relaxed load. Rust applications use the `log` facade directly with the
//! logger of their choice instead.

use std::sync::mpsc::{sync_channel, Receiver, SyncSender};

use parking_lot::Mutex;

use crate::error::Error;

/// Receives each record: level, target (`supa_realtime::engine`, ...), message.
pub(crate) type Sink = Box<dyn Fn(log::Level, &str, &str) + Send>;

/// Records waiting for the sink; beyond this they are dropped rather than slow the network.
const BACKLOG: usize = 1024;

enum Msg {
    Record(log::Level, String, String),
    /// A new sink (or none); the old one is dropped on the log thread.
    Replace(Option<Sink>),
}

struct Hook {
    tx: Mutex<Option<SyncSender<Msg>>>,
}

static HOOK: Hook = Hook {
    tx: Mutex::new(None),
};

impl log::Log for Hook {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        if let Some(tx) = self.tx.lock().as_ref() {
            let _ = tx.try_send(Msg::Record(
                record.level(),
                record.target().to_owned(),
                record.args().to_string(),
            ));
        }
    }

    fn flush(&self) {}
}

fn run(rx: Receiver<Msg>) {
    let mut sink: Option<Sink> = None;
    for msg in rx {
        match msg {
            Msg::Record(level, target, message) => {
                if let Some(f) = &sink {
                    // The sink is user code: a panic must not end the log thread.
                    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        f(level, &target, &message)
                    }));
                }
            }
            Msg::Replace(next) => {
                let old = std::mem::replace(&mut sink, next);
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(old)));
            }
        }
    }
}

/// Sends records up to `level` to `sink` (`None`, or `LevelFilter::Off`, turns logging off).
/// Fails when the process already has another `log` logger.
pub(crate) fn set_sink(level: log::LevelFilter, sink: Option<Sink>) -> Result<(), Error> {
    let mut tx = HOOK.tx.lock();
    if tx.is_none() {
        log::set_logger(&HOOK).map_err(|_| {
            Error::InvalidArgument(
                "another `log` logger is installed in this process: records go to it".into(),
            )
        })?;
        let (sender, rx) = sync_channel(BACKLOG);
        std::thread::Builder::new()
            .name("supa-log".into())
            .spawn(move || run(rx))
            .map_err(|e| Error::Io(format!("could not start the log thread: {e}")))?;
        *tx = Some(sender);
    }
    let level = if sink.is_some() {
        level
    } else {
        log::LevelFilter::Off
    };
    if let Some(sender) = tx.as_ref() {
        // Blocking send: a replacement must not be dropped like a record.
        let _ = sender.send(Msg::Replace(sink));
    }
    log::set_max_level(level);
    Ok(())
}

/// The `log` level for a number as C and the bindings give it: 0 off, 1 error, 2 warn, 3 info,
/// 4 debug, 5 trace.
pub(crate) fn level_filter(n: u32) -> Result<log::LevelFilter, Error> {
    use log::LevelFilter::*;
    [Off, Error, Warn, Info, Debug, Trace]
        .get(n as usize)
        .copied()
        .ok_or_else(|| {
            crate::error::Error::InvalidArgument(format!(
                "log level must be 0 (off) to 5 (trace), got {n}"
            ))
        })
}

/// The number of a `log` level (1 error ... 5 trace).
pub(crate) fn level_number(level: log::Level) -> u32 {
    level as u32
}
