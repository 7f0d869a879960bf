//! [`RealtimeChannel`] for the bindings: broadcast, presence and postgres changes on one topic.

use std::sync::{Arc, Weak};

use serde_json::{Map, Value};

use super::batch::{batching, EventBatchListener};
use super::error::{parse_json, RealtimeError};
use super::listener::{call_foreign, Foreign};
use super::listener::{
    BroadcastListener, EventListener, PostgresChangeListener, PresenceListener, SystemListener,
};
use super::relay::on_runtime;
use super::types::{ChannelState, Payload, PostgresChangesFilter};

/// One channel (topic `realtime:<name>`). Register presence and postgres listeners before
/// `subscribe()`. A channel is single-use: after it closes, get a new one from the client.
#[derive(uniffi::Object)]
pub struct RealtimeChannel {
    inner: crate::RealtimeChannel,
    /// For `remove_listener`; weak, as core channels do not keep their client alive.
    client: Weak<crate::client::ClientInner>,
    /// The core channel's id, for the dispatcher filter of batching listeners (`on_events`).
    id: Option<crate::event::ChannelId>,
}

impl RealtimeChannel {
    /// `inner` was just returned by `client.channel()`, so the client's registry maps its
    /// topic to it (a live channel is never replaced there).
    pub(crate) fn wrap(client: &crate::RealtimeClient, inner: crate::RealtimeChannel) -> Self {
        let id = client
            .inner
            .channels
            .lock()
            .get(inner.topic())
            .and_then(Weak::upgrade)
            .map(|shared| shared.id);
        RealtimeChannel {
            inner,
            client: Arc::downgrade(&client.inner),
            id,
        }
    }

    /// `Err(Shutdown)` once the client was shut down (or released): every call that acts on
    /// the channel fails with it, and a listener registered then is refused.
    fn check(&self) -> Result<(), RealtimeError> {
        let client = self.client.upgrade().ok_or(RealtimeError::Shutdown)?;
        Ok(client.check()?)
    }

    /// The core channel, for the client's `remove_channel`.
    pub(crate) fn core(&self) -> &crate::RealtimeChannel {
        &self.inner
    }
}

#[uniffi::export]
impl RealtimeChannel {
    /// The wire topic, `realtime:<name>`.
    pub fn topic(&self) -> String {
        self.inner.topic().to_owned()
    }

    pub fn state(&self) -> ChannelState {
        self.inner.state().into()
    }

    /// Every event of this channel (statuses, broadcasts, presence, changes, system).
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

    /// Every event of this channel, delivered in batches (one call per run of the queue, see
    /// [`EventBatchListener`]); returns its id. With [`add_postgres_changes`](Self::add_postgres_changes)
    /// and [`enable_presence`](Self::enable_presence) it is all a binding needs.
    pub fn on_events(&self, listener: Arc<dyn EventBatchListener>) -> Result<u64, RealtimeError> {
        self.check()?;
        let (Some(client), Some(id)) = (self.client.upgrade(), self.id) else {
            return Err(RealtimeError::Shutdown);
        };
        let (callback, run_end) = batching(listener);
        let filter = crate::dispatch::Filter::Channel(id);
        Ok(client
            .dispatcher
            .add_batching_listener(filter, callback, Some(run_end))
            .0)
    }

    /// Adds a postgres-changes binding without a listener of its own: its changes reach the
    /// channel's event listeners, whose `bindings` (`ids` in a batch) hold its index — the
    /// number of bindings added to this channel before it. Must come before `subscribe()`.
    pub fn add_postgres_changes(&self, filter: PostgresChangesFilter) -> Result<(), RealtimeError> {
        self.check()?;
        let id = self.inner.on_postgres_changes(filter.into(), |_| {})?;
        self.remove_listener(id.0);
        Ok(())
    }

    /// Turns presence on for this channel, as a presence listener does, for bindings that
    /// receive presence through `on_events`. Must come before `subscribe()`.
    pub fn enable_presence(&self) -> Result<(), RealtimeError> {
        self.check()?;
        let id = self.inner.on_presence(|_| {});
        self.remove_listener(id.0);
        Ok(())
    }

    /// Broadcasts named `event` (case-insensitive), or all of them with `"*"`.
    pub fn on_broadcast(
        &self,
        event: String,
        listener: Arc<dyn BroadcastListener>,
    ) -> Result<u64, RealtimeError> {
        self.check()?;
        let listener = Foreign::new(listener);
        Ok(self
            .inner
            .on_broadcast(&event, move |b| {
                call_foreign(|| {
                    let _ = listener.on_broadcast(b.into());
                });
            })
            .0)
    }

    /// Presence sync/join/leave; turns presence on for this channel.
    pub fn on_presence(&self, listener: Arc<dyn PresenceListener>) -> Result<u64, RealtimeError> {
        self.check()?;
        let listener = Foreign::new(listener);
        Ok(self
            .inner
            .on_presence(move |p| {
                call_foreign(|| {
                    let _ = listener.on_presence(p.into());
                });
            })
            .0)
    }

    /// Adds a postgres-changes binding; must come before `subscribe()`.
    pub fn on_postgres_changes(
        &self,
        filter: PostgresChangesFilter,
        listener: Arc<dyn PostgresChangeListener>,
    ) -> Result<u64, RealtimeError> {
        self.check()?;
        let listener = Foreign::new(listener);
        Ok(self
            .inner
            .on_postgres_changes(filter.into(), move |c| {
                call_foreign(|| {
                    let _ = listener.on_change(c.into());
                });
            })?
            .0)
    }

    /// Removes a listener registered on this channel (or its client).
    pub fn remove_listener(&self, id: u64) {
        if let Some(client) = self.client.upgrade() {
            client.dispatcher.remove_listener(crate::ListenerId(id));
        }
    }

    /// `system` messages (e.g. `Subscribed to PostgreSQL`).
    pub fn on_system(&self, listener: Arc<dyn SystemListener>) -> Result<u64, RealtimeError> {
        self.check()?;
        let listener = Foreign::new(listener);
        Ok(self
            .inner
            .on_system(move |v| {
                call_foreign(|| {
                    let _ = listener.on_system(v.to_string());
                });
            })
            .0)
    }

    /// Joins (connecting if needed) and completes on SUBSCRIBED; fails with the server's
    /// reason on a terminal error, or on TIMED_OUT/CLOSED. The matching `ChannelStatus` event
    /// may arrive before or after this completes.
    pub async fn subscribe(&self) -> Result<(), RealtimeError> {
        self.inner.subscribe()?;
        let ch = self.inner.clone();
        on_runtime(async move { ch.subscribed().await }).await
    }

    /// Starts joining without waiting; statuses arrive as `ChannelStatus` events.
    pub fn subscribe_nowait(&self) -> Result<(), RealtimeError> {
        Ok(self.inner.subscribe()?)
    }

    /// Sends a broadcast; with `broadcast_ack` completes on the server's ack.
    pub async fn send_broadcast(
        &self,
        event: String,
        payload: Payload,
    ) -> Result<(), RealtimeError> {
        self.check()?;
        let payload = payload.into_core()?;
        let ch = self.inner.clone();
        on_runtime(async move { ch.send_broadcast(&event, payload).await }).await
    }

    /// Queues a broadcast without waiting for the outcome (usable inside a listener).
    pub fn send_broadcast_nowait(
        &self,
        event: String,
        payload: Payload,
    ) -> Result<(), RealtimeError> {
        Ok(self
            .inner
            .send_broadcast_nowait(&event, payload.into_core()?)?)
    }

    /// Sends a broadcast that the server stores (private channels only) for `ttl_seconds`
    /// (0: the server's retention), so that a join with replay can replay it.
    pub async fn send_broadcast_persist(
        &self,
        event: String,
        payload: Payload,
        ttl_seconds: u32,
    ) -> Result<(), RealtimeError> {
        let payload = payload.into_core()?;
        let ch = self.inner.clone();
        let persist = crate::options::persist_for_ttl(ttl_seconds);
        on_runtime(async move { ch.send_broadcast_persist(&event, payload, persist).await }).await
    }

    /// REST broadcast that the server stores, as `send_broadcast_persist`.
    pub async fn http_send_persist(
        &self,
        event: String,
        payload: Payload,
        ttl_seconds: u32,
    ) -> Result<(), RealtimeError> {
        let payload = payload.into_core()?;
        let ch = self.inner.clone();
        let persist = crate::options::persist_for_ttl(ttl_seconds);
        on_runtime(async move { ch.http_send_persist(&event, payload, persist).await }).await
    }

    /// Completes once the server said the channel's replication is ready (with the
    /// `replication_ready` option); fails with its message when it is not.
    pub async fn replication_ready(&self) -> Result<(), RealtimeError> {
        let ch = self.inner.clone();
        on_runtime(async move { ch.replication_ready().await }).await
    }

    /// Broadcasts over REST (works without joining).
    pub async fn http_send(&self, event: String, payload: Payload) -> Result<(), RealtimeError> {
        self.check()?;
        let payload = payload.into_core()?;
        let ch = self.inner.clone();
        on_runtime(async move { ch.http_send(&event, payload).await }).await
    }

    /// Tracks this client's presence with `meta_json` (a JSON object).
    pub async fn track(&self, meta_json: String) -> Result<(), RealtimeError> {
        self.check()?;
        let meta = parse_json("presence meta", &meta_json)?;
        let ch = self.inner.clone();
        on_runtime(async move { ch.track(meta).await }).await
    }

    /// Stops tracking.
    pub async fn untrack(&self) -> Result<(), RealtimeError> {
        self.check()?;
        let ch = self.inner.clone();
        on_runtime(async move { ch.untrack().await }).await
    }

    /// The presence state as a JSON object: key → array of metas (each with `presence_ref`).
    pub fn presence_state_json(&self) -> Result<String, RealtimeError> {
        self.check()?;
        let map: Map<String, Value> = self
            .inner
            .presence_state()
            .into_iter()
            .map(|(k, metas)| (k, Value::Array(metas)))
            .collect();
        Ok(Value::Object(map).to_string())
    }

    /// Leaves; completes once the server confirmed (or the push timed out).
    pub async fn unsubscribe(&self) -> Result<(), RealtimeError> {
        self.check()?;
        let ch = self.inner.clone();
        on_runtime(async move { ch.unsubscribe().await }).await
    }

    /// Leaves without waiting (usable inside a listener).
    pub fn unsubscribe_nowait(&self) -> Result<(), RealtimeError> {
        Ok(self.inner.unsubscribe_nowait()?)
    }
}
