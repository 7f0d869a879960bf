//! Running a binding's async call on the library runtime and completing it off that thread.
//!
//! uniffi hands us a foreign executor's waker. Waking it runs foreign code (Python takes the GIL
//! and calls `loop.call_soon_threadsafe`, Kotlin resumes a continuation), so it must not happen
//! on the runtime thread, which owns every socket. [`on_runtime`] spawns the work on the runtime
//! and relays each wake-up to one small `supa-wake` thread that calls the foreign waker.
//! App-pumped wakeup hooks, which the core may call on the runtime thread, go the same way.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use super::error::RealtimeError;

pub(crate) use super::listener::relay;

/// A waker that forwards to the foreign waker through the relay thread.
struct RelayWaker(Waker);

impl Wake for RelayWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref()
    }
    fn wake_by_ref(self: &Arc<Self>) {
        let waker = self.0.clone();
        relay(move || waker.wake());
    }
}

/// Polls the inner future with a relaying waker.
struct Relayed<F>(F);

impl<F: Future + Unpin> Future for Relayed<F> {
    type Output = F::Output;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let waker = Waker::from(Arc::new(RelayWaker(cx.waker().clone())));
        Pin::new(&mut self.0).poll(&mut Context::from_waker(&waker))
    }
}

/// Runs `fut` on the library runtime; the returned future can be polled by any executor.
/// Dropping it (a cancelled foreign await) leaves the operation to finish on its own.
pub(crate) async fn on_runtime<T, F>(fut: F) -> Result<T, RealtimeError>
where
    T: Send + 'static,
    F: Future<Output = Result<T, crate::Error>> + Send + 'static,
{
    let task = crate::runtime::handle().spawn(fut);
    match Relayed(task).await {
        Ok(r) => r.map_err(RealtimeError::from),
        Err(_) => Err(RealtimeError::Shutdown),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::task::Wake;
    use std::time::Duration;

    use super::*;

    /// Records which thread woke it and unparks the polling thread.
    struct Recorder {
        thread: std::thread::Thread,
        woken_on: Mutex<Vec<String>>,
    }

    impl Wake for Recorder {
        fn wake(self: Arc<Self>) {
            let name = std::thread::current().name().unwrap_or("").to_owned();
            self.woken_on.lock().unwrap().push(name);
            self.thread.unpark();
        }
    }

    /// A foreign-style executor: polls on this (non-tokio) thread, parks between polls.
    fn block_on<F: Future>(fut: F) -> (F::Output, Vec<String>) {
        let recorder = Arc::new(Recorder {
            thread: std::thread::current(),
            woken_on: Mutex::new(Vec::new()),
        });
        let waker = Waker::from(recorder.clone());
        let mut cx = Context::from_waker(&waker);
        let mut fut = std::pin::pin!(fut);
        loop {
            if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
                let woken = recorder.woken_on.lock().unwrap().clone();
                return (out, woken);
            }
            std::thread::park_timeout(Duration::from_secs(5));
        }
    }

    #[test]
    fn completes_outside_tokio_and_wakes_from_the_relay_thread() {
        let (out, woken) = block_on(on_runtime(async {
            // Needs the library runtime's timer: proves the work runs there.
            tokio::time::sleep(Duration::from_millis(20)).await;
            Ok::<_, crate::Error>(7)
        }));
        assert_eq!(out, Ok(7));
        assert!(!woken.is_empty());
        assert!(woken.iter().all(|t| t == "supa-wake"), "{woken:?}");
    }

    #[test]
    fn errors_map_to_the_binding_error() {
        let (out, _) = block_on(on_runtime(async {
            Err::<(), _>(crate::Error::ChannelError(
                "Unauthorized: You do not have permissions".into(),
            ))
        }));
        assert_eq!(
            out,
            Err(RealtimeError::ChannelError {
                reason: "Unauthorized: You do not have permissions".into(),
                recoverable: false
            })
        );
    }
}
