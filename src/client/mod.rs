//! [`RealtimeClient`]: the handle applications hold. Every method only sends a [`Command`] to
//! the client's engine, which a driver task runs on the library's runtime thread; nothing here
//! waits on the network except the explicit `*_blocking` helpers and the async methods.

pub(crate) mod inner;
pub(crate) mod url;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::{mpsc, watch};

pub(crate) use self::inner::ClientInner;
use crate::channel::shared::ChannelShared;
use crate::channel::RealtimeChannel;
use crate::command::Command;
use crate::dispatch::{Callback, Dispatcher, Filter, ListenerId};
use crate::driver::Driver;
use crate::engine::snapshot::Counters;
use crate::engine::Engine;
use crate::error::Error;
use crate::event::{ChannelState, ConnectionState, Event};
use crate::options::{ChannelOptions, ClientOptions};
use crate::transport;

/// A snapshot of the client's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Metrics {
    /// Successful socket opens, the first included.
    pub connects: u64,
    /// Opens after the first.
    pub reconnects: u64,
    /// Frames received and sent (heartbeats included).
    pub messages_in: u64,
    pub messages_out: u64,
    /// The last heartbeat round trip.
    pub heartbeat_rtt: Option<Duration>,
    /// Median and 99th percentile of the last 128 heartbeat round trips.
    pub heartbeat_rtt_p50: Option<Duration>,
    pub heartbeat_rtt_p99: Option<Duration>,
    /// Total time the client wanted a connection and had none (connect attempts, outages,
    /// the current one included); time after `disconnect()` does not count.
    pub time_disconnected: Duration,
    /// Events waiting on the dispatch queue.
    pub queue_depth: usize,
    /// Data events dropped because the queue was full.
    pub dropped_events: u64,
    /// `Event::Lagged` markers queued (each covers a run of dropped events).
    pub lagged_events: u64,
    /// Per live channel topic: time from its (re)join attempt to SUBSCRIBED, last join.
    pub join_latency: Vec<(String, Duration)>,
}

/// Nearest-rank percentile `p` (1..=100) of sorted samples.
fn percentile(sorted: &[Duration], p: usize) -> Option<Duration> {
    (!sorted.is_empty()).then(|| sorted[(sorted.len() * p).div_ceil(100).max(1) - 1])
}

/// A Supabase Realtime client: one WebSocket, many channels.
///
/// Cheap to clone; dropping the last clone (or calling [`shutdown`](Self::shutdown)) closes the
/// socket and stops event delivery. Channel handles do not keep the client alive.
///
/// ```no_run
/// use supa_realtime::{ChannelOptions, ClientOptions, Event, RealtimeClient};
/// # async fn demo() -> Result<(), supa_realtime::Error> {
/// let client = RealtimeClient::new(ClientOptions::new("https://abc.supabase.co/realtime/v1", "anon"))?;
/// let room = client.channel("room1", ChannelOptions::default());
/// room.on_broadcast("cursor", |b| println!("{:?}", b.payload));
/// room.subscribe()?;
/// room.subscribed().await?;
/// room.send_broadcast("cursor", serde_json::json!({"x": 1}).into()).await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RealtimeClient {
    pub(crate) inner: Arc<ClientInner>,
}

impl RealtimeClient {
    /// Creates a client (not yet connected: call [`connect`](Self::connect), or subscribe a
    /// channel, which connects). Fails on a malformed URL or TLS option.
    pub fn new(options: ClientOptions) -> Result<RealtimeClient, Error> {
        let ws_url = url::websocket_url(&options)?;
        let api_url = url::http_api_url(&options)?;
        let tls = transport::tls_config(&options)?;
        options.validate()?;
        let options = Arc::new(options);
        let dispatcher = Dispatcher::start(options.dispatch, options.queue_capacity);
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        let (state_tx, state_rx) = watch::channel(ConnectionState::Disconnected);
        let counters = Arc::new(Counters::default());
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0x9E37_79B9);
        let engine = Engine::new(options.clone(), counters.clone(), state_tx, seed);
        let driver = Driver::new(
            engine,
            options.clone(),
            ws_url,
            tls.clone(),
            dispatcher.clone(),
            counters.clone(),
            cmd_rx,
        );
        crate::runtime::handle().spawn(driver.run());
        Ok(RealtimeClient {
            inner: Arc::new(ClientInner {
                cmd: cmd_tx,
                dispatcher,
                options,
                tls,
                api_url,
                state: state_rx,
                counters,
                channels: Mutex::new(HashMap::new()),
                next_channel: AtomicU64::new(1),
                shut_down: AtomicBool::new(false),
            }),
        })
    }

    /// Starts connecting (and keeps reconnecting on the schedule until `disconnect`).
    pub fn connect(&self) {
        let _ = self.inner.send(Command::Connect);
    }

    /// Closes the socket (code 1000) and stops reconnecting. Channels stay registered and
    /// rejoin on the next `connect`.
    pub fn disconnect(&self) {
        let _ = self.inner.send(Command::Disconnect);
    }

    /// Closes everything for good; later calls fail with [`Error::Shutdown`]. Events already
    /// queued are delivered, then each channel's final CLOSED ("client shut down"), then
    /// `ConnectionStatus{ShutDown}`; the listeners are dropped after that.
    pub fn shutdown(&self) {
        if !self.inner.shut_down.swap(true, Ordering::SeqCst) {
            let _ = self.inner.cmd.send(Command::Shutdown);
        }
    }

    /// Whether [`shutdown`](Self::shutdown) was called (or the client is going away): every
    /// call then fails with [`Error::Shutdown`] or does nothing.
    pub fn is_shut_down(&self) -> bool {
        self.inner.check().is_err()
    }

    /// Sets the access token: sent as `access_token` to every joined channel and used on every
    /// (re)join. `None` falls back to the API key.
    pub fn set_auth(&self, token: Option<String>) {
        let _ = self.inner.send(Command::SetAuth(token));
    }

    /// The channel for topic `realtime:<name>`. As realtime-js, an existing live channel with
    /// the same topic is returned (its options win).
    pub fn channel(&self, name: &str, options: ChannelOptions) -> RealtimeChannel {
        let topic = format!("{}{name}", crate::protocol::TOPIC_PREFIX);
        let mut map = self.inner.channels.lock();
        if let Some(existing) = map.get(&topic).and_then(Weak::upgrade) {
            if !existing.is_finished() {
                return RealtimeChannel::new(existing, &self.inner);
            }
        }
        let id = self.inner.next_channel.fetch_add(1, Ordering::Relaxed);
        let shared = Arc::new(ChannelShared::new(id, topic.clone(), options));
        map.retain(|_, w| w.strong_count() > 0);
        map.insert(topic, Arc::downgrade(&shared));
        RealtimeChannel::new(shared, &self.inner)
    }

    /// Every live channel of this client (subscribed or not yet, and not ended), as
    /// realtime-js' `getChannels()`.
    pub fn channels(&self) -> Vec<RealtimeChannel> {
        let map = self.inner.channels.lock();
        let mut live: Vec<_> = map
            .values()
            .filter_map(Weak::upgrade)
            .filter(|c| !c.is_finished())
            .collect();
        live.sort_by_key(|c| c.id);
        live.into_iter()
            .map(|c| RealtimeChannel::new(c, &self.inner))
            .collect()
    }

    /// Leaves `channel` and forgets it, as realtime-js' `removeChannel`: its final CLOSED
    /// status says "removed". Resolves once the server confirmed (or the push timed out).
    ///
    /// ```no_run
    /// # use supa_realtime::*;
    /// # async fn demo(client: RealtimeClient) -> Result<(), Error> {
    /// let ch = client.channel("room", ChannelOptions::default());
    /// ch.subscribe()?;
    /// client.remove_channel(&ch).await?;
    /// assert!(client.channels().is_empty());
    /// # Ok(()) }
    /// ```
    pub async fn remove_channel(&self, channel: &RealtimeChannel) -> Result<(), Error> {
        let rx = channel.leave(true)?;
        rx.await.unwrap_or(Err(Error::Shutdown))
    }

    /// [`remove_channel`](Self::remove_channel) for synchronous callers.
    pub fn remove_channel_blocking(
        &self,
        channel: &RealtimeChannel,
        timeout: Duration,
    ) -> Result<(), Error> {
        // Refuse before leaving, so a refused call has no effect.
        crate::runtime::may_block()?;
        let rx = channel.leave(true)?;
        crate::runtime::block_on(
            async move { rx.await.unwrap_or(Err(Error::Shutdown)) },
            timeout,
        )
    }

    /// Removes every channel (see [`remove_channel`](Self::remove_channel)); the first error,
    /// if any, after all were asked to leave.
    pub async fn remove_all_channels(&self) -> Result<(), Error> {
        let waits: Vec<_> = self
            .channels()
            .iter()
            .map(|c| c.leave(true))
            .collect::<Result<_, _>>()?;
        let mut first = Ok(());
        for rx in waits {
            let r = rx.await.unwrap_or(Err(Error::Shutdown));
            if first.is_ok() {
                first = r;
            }
        }
        first
    }

    /// [`remove_all_channels`](Self::remove_all_channels) for synchronous callers.
    pub fn remove_all_channels_blocking(&self, timeout: Duration) -> Result<(), Error> {
        let this = self.clone();
        crate::runtime::block_on(async move { this.remove_all_channels().await }, timeout)
    }

    /// Registers a callback for every event of this client (all channels included).
    pub fn on_event(&self, f: impl Fn(&Event) + Send + Sync + 'static) -> ListenerId {
        self.inner
            .dispatcher
            .add_listener(Filter::All, Callback::Event(Arc::new(f)))
    }

    /// Removes a listener registered on this client or any of its channels.
    pub fn remove_listener(&self, id: ListenerId) {
        self.inner.dispatcher.remove_listener(id);
    }

    /// App-pumped mode: runs up to `max` queued callbacks on this thread; returns how many.
    pub fn dispatch(&self, max: usize) -> usize {
        self.inner.dispatcher.dispatch(max)
    }

    /// App-pumped mode: `f` is called (from any thread) when the queue becomes non-empty.
    /// It should only schedule a `dispatch` call on the app's thread.
    pub fn set_wakeup(&self, f: impl Fn() + Send + Sync + 'static) {
        self.inner.dispatcher.set_wakeup(Some(Arc::new(f)));
    }

    pub fn connection_state(&self) -> ConnectionState {
        *self.inner.state.borrow()
    }

    pub fn metrics(&self) -> Metrics {
        let c = &self.inner.counters;
        let rtt = c.heartbeat_rtt_us.load(Ordering::Relaxed);
        let mut rtts: Vec<Duration> = c.rtts.lock().iter().copied().collect();
        rtts.sort_unstable();
        let pct = |p| percentile(&rtts, p);
        let time_disconnected = {
            let o = c.outage.lock();
            o.0 + o.1.map(|s| s.elapsed()).unwrap_or_default()
        };
        let mut join_latency: Vec<(String, Duration)> = c
            .join_latency
            .lock()
            .iter()
            .map(|(t, d)| (t.clone(), *d))
            .collect();
        join_latency.sort();
        Metrics {
            connects: c.connects.load(Ordering::Relaxed),
            reconnects: c.reconnects.load(Ordering::Relaxed),
            messages_in: c.messages_in.load(Ordering::Relaxed),
            messages_out: c.messages_out.load(Ordering::Relaxed),
            heartbeat_rtt: (rtt > 0).then(|| Duration::from_micros(rtt)),
            heartbeat_rtt_p50: pct(50),
            heartbeat_rtt_p99: pct(99),
            time_disconnected,
            queue_depth: self.inner.dispatcher.queue_depth(),
            dropped_events: self.inner.dispatcher.dropped_total.load(Ordering::Relaxed),
            lagged_events: self.inner.dispatcher.lagged_total.load(Ordering::Relaxed),
            join_latency,
        }
    }

    /// The network changed: check the link now (heartbeat; reconnect at once if waiting).
    pub fn network_changed(&self) {
        let _ = self.inner.send(Command::CheckLink);
    }

    /// The app went to the background. Deliberately changes nothing: the socket and the
    /// heartbeat keep running for as long as the OS lets the process run (realtime-js does
    /// the same), and a suspended process cannot act anyway. Closing here would only trade a
    /// possibly-alive link for a certain gap. What matters happens in
    /// [`app_foregrounded`](Self::app_foregrounded).
    pub fn app_backgrounded(&self) {}

    /// The app came back: check the link at once as for
    /// [`network_changed`](Self::network_changed) (a dead socket is replaced within a few
    /// seconds instead of a heartbeat interval), and ask the token provider for a fresh token
    /// (the old one may have expired while the device slept).
    pub fn app_foregrounded(&self) {
        let _ = self.inner.send(Command::Foregrounded);
    }

    /// Connects if needed and resolves once the socket is open (`Err(Shutdown)` if shut down).
    pub async fn connected(&self) -> Result<(), Error> {
        self.inner.check()?;
        let mut rx = self.inner.state.clone();
        self.connect();
        let state = rx
            .wait_for(|s| matches!(s, ConnectionState::Connected | ConnectionState::ShutDown))
            .await
            .map_err(|_| Error::Shutdown)?;
        match *state {
            ConnectionState::Connected => Ok(()),
            _ => Err(Error::Shutdown),
        }
    }

    /// [`connected`](Self::connected) for synchronous callers, bounded by `timeout`. When
    /// no socket opened in time it fails with why the last attempt failed (refused, DNS, TLS,
    /// the upgrade's HTTP status and body), else with `Error::Timeout`.
    pub fn connect_blocking(&self, timeout: Duration) -> Result<(), Error> {
        let this = self.clone();
        match crate::runtime::block_on(async move { this.connected().await }, timeout) {
            Err(Error::Timeout) => Err(self
                .inner
                .counters
                .connect_error
                .lock()
                .clone()
                .unwrap_or(Error::Timeout)),
            other => other,
        }
    }

    /// The current channel state of every live channel, by topic (diagnostics).
    pub fn channel_states(&self) -> Vec<(String, ChannelState)> {
        self.inner
            .channels
            .lock()
            .values()
            .filter_map(Weak::upgrade)
            .map(|c| (c.topic.to_string(), c.state()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let ms = |v: &[u64]| {
            v.iter()
                .map(|m| Duration::from_millis(*m))
                .collect::<Vec<_>>()
        };
        assert_eq!(percentile(&[], 50), None);
        assert_eq!(percentile(&ms(&[7]), 99), Some(Duration::from_millis(7)));
        let hundred = ms(&(1..=100).collect::<Vec<_>>());
        assert_eq!(percentile(&hundred, 50), Some(Duration::from_millis(50)));
        assert_eq!(percentile(&hundred, 99), Some(Duration::from_millis(99)));
    }
}
