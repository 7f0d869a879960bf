//! The library-owned runtime: one thread ("supa-rt") running a current-thread tokio runtime,
//! shared by every client in the process. It only runs library tasks, never user code.

use std::future::Future;
use std::time::Duration;

use once_cell::sync::Lazy;
use tokio::runtime::Handle;

use crate::error::Error;

static RUNTIME: Lazy<Handle> = Lazy::new(|| {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .thread_name("supa-rt-blocking")
        .build()
        .expect("building the tokio runtime");
    let handle = rt.handle().clone();
    std::thread::Builder::new()
        .name("supa-rt".into())
        .spawn(move || rt.block_on(std::future::pending::<()>()))
        .expect("spawning the runtime thread");
    handle
});

/// The shared runtime's handle, starting the thread on first use.
pub(crate) fn handle() -> &'static Handle {
    &RUNTIME
}

/// Whether the current thread may block on the library: not on the dispatcher thread (the
/// awaited work may need it to deliver), not inside a token provider (a connect or rejoin may
/// be waiting for it).
pub(crate) fn may_block() -> Result<(), Error> {
    if crate::dispatch::on_dispatcher_thread() || crate::token::in_provider() {
        Err(Error::WouldDeadlock)
    } else {
        Ok(())
    }
}

/// Runs `fut` on the runtime and waits for it from a non-runtime thread, up to `timeout`.
/// Refuses where blocking could deadlock (see [`may_block`]).
pub(crate) fn block_on<T, F>(fut: F, timeout: Duration) -> Result<T, Error>
where
    F: Future<Output = Result<T, Error>> + Send + 'static,
    T: Send + 'static,
{
    may_block()?;
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    handle().spawn(async move {
        let r = match tokio::time::timeout(timeout, fut).await {
            Ok(r) => r,
            Err(_) => Err(Error::Timeout),
        };
        let _ = tx.send(r);
    });
    rx.recv().unwrap_or(Err(Error::Shutdown))
}
