//! [`RealtimeClient`] for the bindings: one WebSocket, many channels.

use std::sync::Arc;

use super::batch::{batching, EventBatchListener};
use super::channel::RealtimeChannel;
use super::error::RealtimeError;
use super::listener::{call_foreign, Foreign};
use super::listener::{EventListener, TokenProvider, WakeupListener};
use super::relay::{on_runtime, relay};
use super::types::{ChannelOptions, ChannelStateEntry, ClientOptions, ConnectionState, Metrics};

/// A Supabase Realtime client. Creating one does not connect: `connect()`, or subscribing a
/// channel, does. `shutdown()` closes it for good; releasing the last reference (Kotlin
/// `close()`, Python/Swift going out of scope) does the same.
#[derive(uniffi::Object)]
pub struct RealtimeClient {
    inner: crate::RealtimeClient,
}

/// Adapts a foreign token provider to the core's trait.
struct ForeignTokens(Foreign<dyn TokenProvider>);

impl crate::TokenProvider for ForeignTokens {
    fn token(&self) -> Result<Option<String>, String> {
        let mut out = Ok(None);
        call_foreign(|| out = self.0.token().map_err(|e| e.to_string()));
        out
    }
}

impl RealtimeClient {
    /// `Err(Shutdown)` once `shutdown()` was called: every call that acts fails with it.
    fn check(&self) -> Result<(), RealtimeError> {
        Ok(self.inner.inner.check()?)
    }

    /// Registers a batching listener with `filter`; refused after shutdown.
    fn add_batching(
        &self,
        filter: crate::dispatch::Filter,
        listener: Arc<dyn EventBatchListener>,
    ) -> Result<u64, RealtimeError> {
        self.check()?;
        let (callback, run_end) = batching(listener);
        Ok(self
            .inner
            .inner
            .dispatcher
            .add_batching_listener(filter, callback, Some(run_end))
            .0)
    }
}

#[uniffi::export]
impl RealtimeClient {
    /// Creates a client; fails on a malformed URL or TLS option.
    #[uniffi::constructor(default(token_provider = None))]
    pub fn new(
        options: ClientOptions,
        token_provider: Option<Arc<dyn TokenProvider>>,
    ) -> Result<Arc<Self>, RealtimeError> {
        let mut core = options.into_core();
        if let Some(p) = token_provider {
            core = core.token_provider(ForeignTokens(Foreign::new(p)));
        }
        Ok(Arc::new(RealtimeClient {
            inner: crate::RealtimeClient::new(core)?,
        }))
    }

    /// Starts connecting (and keeps reconnecting until `disconnect()`).
    pub fn connect(&self) -> Result<(), RealtimeError> {
        self.check()?;
        self.inner.connect();
        Ok(())
    }

    /// Connects if needed; completes once the socket is open.
    pub async fn connected(&self) -> Result<(), RealtimeError> {
        let c = self.inner.clone();
        on_runtime(async move { c.connected().await }).await
    }

    /// Closes the socket and stops reconnecting; channels rejoin on the next `connect()`.
    pub fn disconnect(&self) -> Result<(), RealtimeError> {
        self.check()?;
        self.inner.disconnect();
        Ok(())
    }

    /// Closes everything for good; later calls fail with `Shutdown` (the state, metrics and
    /// `dispatch()`/`remove_listener()` excepted). Idempotent.
    pub fn shutdown(&self) {
        self.inner.shutdown()
    }

    /// Sets the user token (sent to every joined channel); `None` falls back to the API key.
    pub fn set_auth(&self, token: Option<String>) -> Result<(), RealtimeError> {
        self.check()?;
        self.inner.set_auth(token);
        Ok(())
    }

    /// The channel for topic `realtime:<name>`; an existing live one is returned as is.
    pub fn channel(
        &self,
        name: String,
        options: ChannelOptions,
    ) -> Result<Arc<RealtimeChannel>, RealtimeError> {
        self.check()?;
        Ok(Arc::new(RealtimeChannel::wrap(
            &self.inner,
            self.inner.channel(&name, options.into()),
        )))
    }

    /// Every live channel of this client, as realtime-js' `getChannels()`.
    pub fn channels(&self) -> Result<Vec<Arc<RealtimeChannel>>, RealtimeError> {
        self.check()?;
        Ok(self
            .inner
            .channels()
            .into_iter()
            .map(|c| Arc::new(RealtimeChannel::wrap(&self.inner, c)))
            .collect())
    }

    /// Leaves `channel` and forgets it; its final CLOSED status says "removed".
    pub async fn remove_channel(&self, channel: Arc<RealtimeChannel>) -> Result<(), RealtimeError> {
        self.check()?;
        let c = self.inner.clone();
        let ch = channel.core().clone();
        on_runtime(async move { c.remove_channel(&ch).await }).await
    }

    /// Removes every channel (see `remove_channel`).
    pub async fn remove_all_channels(&self) -> Result<(), RealtimeError> {
        self.check()?;
        let c = self.inner.clone();
        on_runtime(async move { c.remove_all_channels().await }).await
    }

    /// Registers a listener for every event of this client; returns its id. Refused after
    /// shutdown (it would never be called).
    pub fn on_event(&self, listener: Arc<dyn EventListener>) -> Result<u64, RealtimeError> {
        self.check()?;
        let listener = Foreign::new(listener);
        Ok(self
            .inner
            .on_event(move |e| {
                call_foreign(|| {
                    let _ = listener.on_event(e.into());
                });
            })
            .0)
    }

    /// Registers a listener for every event of this client, delivered in batches (one call per
    /// run of the queue, see [`EventBatchListener`]); returns its id.
    pub fn on_events(&self, listener: Arc<dyn EventBatchListener>) -> Result<u64, RealtimeError> {
        self.add_batching(crate::dispatch::Filter::All, listener)
    }

    /// Like [`on_events`](Self::on_events), for the client's own events only (connection,
    /// heartbeat, `lagged`, errors), not its channels': what a binding watching the connection
    /// needs, without being handed (and serializing) every broadcast of every channel.
    pub fn on_client_events(
        &self,
        listener: Arc<dyn EventBatchListener>,
    ) -> Result<u64, RealtimeError> {
        self.add_batching(crate::dispatch::Filter::Client, listener)
    }

    /// Removes a listener registered on this client or any of its channels (also after
    /// shutdown, where it does nothing).
    pub fn remove_listener(&self, id: u64) {
        self.inner.remove_listener(crate::ListenerId(id))
    }

    /// App-pumped mode: runs up to `max` queued listener calls on this thread. Still works
    /// after shutdown: the final statuses queued by it are delivered this way.
    pub fn dispatch(&self, max: u32) -> u32 {
        self.inner.dispatch(max as usize) as u32
    }

    /// App-pumped mode: `listener.wake()` is called (on a library helper thread) when events
    /// are waiting; it should only schedule a `dispatch()` call on the app's thread.
    pub fn set_wakeup(&self, listener: Arc<dyn WakeupListener>) -> Result<(), RealtimeError> {
        self.check()?;
        // The core may call this on the runtime thread: hop to the relay thread first.
        let listener = Arc::new(Foreign::new(listener));
        self.inner.set_wakeup(move || {
            let listener = listener.clone();
            relay(move || {
                let _ = listener.wake();
            });
        });
        Ok(())
    }

    pub fn connection_state(&self) -> ConnectionState {
        self.inner.connection_state().into()
    }

    pub fn metrics(&self) -> Metrics {
        self.inner.metrics().into()
    }

    /// The network changed: check the link now.
    pub fn network_changed(&self) -> Result<(), RealtimeError> {
        self.check()?;
        self.inner.network_changed();
        Ok(())
    }

    pub fn app_backgrounded(&self) -> Result<(), RealtimeError> {
        self.check()?;
        self.inner.app_backgrounded();
        Ok(())
    }

    pub fn app_foregrounded(&self) -> Result<(), RealtimeError> {
        self.check()?;
        self.inner.app_foregrounded();
        Ok(())
    }

    /// Every live channel's state (diagnostics).
    pub fn channel_states(&self) -> Vec<ChannelStateEntry> {
        self.inner
            .channel_states()
            .into_iter()
            .map(|(topic, state)| ChannelStateEntry {
                topic,
                state: state.into(),
            })
            .collect()
    }
}
