//! [`RealtimeChannel`]: a handle to one topic. Its state machine runs in the engine; the
//! handle only registers listeners, sends commands and reads what the engine publishes.

pub(crate) mod shared;

use std::sync::{Arc, Weak};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::oneshot;

use self::shared::ChannelShared;
use crate::client::inner::ClientInner;
use crate::command::Command;
use crate::dispatch::{Callback, Filter, ListenerId};
use crate::engine::channel::{ChannelConfig, PushOp};
use crate::engine::gap::WallClock;
use crate::engine::snapshot::{StatusSnap, SHUTDOWN_REASON};
use crate::error::{Error, ErrorKind};
use crate::event::{
    Broadcast, ChannelState, Event, Payload, PostgresChange, PresenceEvent, SubscribeStatus,
};
use crate::incoming::BroadcastRef;
use crate::options::Vsn;
use crate::postgres::PostgresChangesFilter;
use crate::protocol::{Persist, MAX_HEADER_FIELD};

/// One channel (topic `realtime:<name>`): broadcast, presence and postgres changes.
///
/// Register presence and postgres listeners before [`subscribe`](Self::subscribe). Every
/// callback runs on the client's dispatch queue, in order, and may call any API.
///
/// ```no_run
/// # use supa_realtime::*;
/// # async fn demo(client: RealtimeClient) -> Result<(), Error> {
/// let ch = client.channel("todos", ChannelOptions::default());
/// ch.on_postgres_changes(
///     PostgresChangesFilter::new("INSERT", "public").table("todos"),
///     |change| println!("new row: {}", change.new),
/// )?;
/// ch.subscribe()?;
/// ch.subscribed().await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RealtimeChannel {
    shared: Arc<ChannelShared>,
    /// Weak: channel handles do not keep their client alive.
    client: Weak<ClientInner>,
}

impl RealtimeChannel {
    pub(crate) fn new(shared: Arc<ChannelShared>, client: &Arc<ClientInner>) -> Self {
        RealtimeChannel {
            shared,
            client: Arc::downgrade(client),
        }
    }

    fn client(&self) -> Result<Arc<ClientInner>, Error> {
        let client = self.client.upgrade().ok_or(Error::Shutdown)?;
        client.check()?;
        Ok(client)
    }

    /// The wire topic, `realtime:<name>`.
    pub fn topic(&self) -> &str {
        &self.shared.topic
    }

    pub fn state(&self) -> ChannelState {
        self.shared.state()
    }

    fn listen(&self, filter: Filter, f: Arc<dyn Fn(&Event) + Send + Sync>) -> ListenerId {
        self.listen_with(filter, Callback::Event(f))
    }

    fn listen_with(&self, filter: Filter, callback: Callback) -> ListenerId {
        match self.client() {
            Ok(c) => c.dispatcher.add_listener(filter, callback),
            Err(_) => ListenerId(0),
        }
    }

    /// Every event of this channel (statuses, broadcasts, presence, changes, system, resumed).
    pub fn on_event(&self, f: impl Fn(&Event) + Send + Sync + 'static) -> ListenerId {
        self.listen(Filter::Channel(self.shared.id), Arc::new(f))
    }

    /// Broadcasts whose event equals `event` (case-insensitive), or all with `"*"`.
    pub fn on_broadcast(
        &self,
        event: &str,
        f: impl Fn(&Broadcast) + Send + Sync + 'static,
    ) -> ListenerId {
        let filter = Filter::Broadcast {
            channel: self.shared.id,
            event: event.to_owned(),
        };
        self.listen(
            filter,
            Arc::new(move |e: &Event| {
                if let Event::Broadcast(b) = e {
                    f(b)
                }
            }),
        )
    }

    /// Broadcasts as [`on_broadcast`](Self::on_broadcast), without parsing a payload that
    /// arrived as text: for bindings that hand the JSON text on (the C ABI).
    pub(crate) fn on_broadcast_raw(
        &self,
        event: &str,
        f: impl Fn(BroadcastRef<'_>) + Send + Sync + 'static,
    ) -> ListenerId {
        let filter = Filter::Broadcast {
            channel: self.shared.id,
            event: event.to_owned(),
        };
        self.listen_with(filter, Callback::Broadcast(Arc::new(f)))
    }

    /// Presence sync/join/leave. Registering one turns presence on in the join config.
    pub fn on_presence(&self, f: impl Fn(&PresenceEvent) + Send + Sync + 'static) -> ListenerId {
        self.shared.setup.lock().presence_listener = true;
        self.listen(
            Filter::Presence(self.shared.id),
            Arc::new(move |e: &Event| {
                if let Event::Presence(p) = e {
                    f(p)
                }
            }),
        )
    }

    /// Adds a postgres-changes binding with its callback. Must come before `subscribe`.
    pub fn on_postgres_changes(
        &self,
        filter: PostgresChangesFilter,
        f: impl Fn(&PostgresChange) + Send + Sync + 'static,
    ) -> Result<ListenerId, Error> {
        crate::postgres::check_event(&filter.event)?;
        let binding = {
            let mut setup = self.shared.setup.lock();
            if setup.subscribed {
                return Err(Error::InvalidArgument(
                    "postgres_changes bindings must be added before subscribe()".into(),
                ));
            }
            setup.bindings.push(filter);
            setup.bindings.len() - 1
        };
        Ok(self.listen(
            Filter::Postgres {
                channel: self.shared.id,
                binding,
            },
            Arc::new(move |e: &Event| {
                if let Event::PostgresChange(c) = e {
                    f(c)
                }
            }),
        ))
    }

    /// `system` messages (e.g. `Subscribed to PostgreSQL`), payload as sent.
    pub fn on_system(&self, f: impl Fn(&Value) + Send + Sync + 'static) -> ListenerId {
        self.listen(
            Filter::System(self.shared.id),
            Arc::new(move |e: &Event| {
                if let Event::System { payload, .. } = e {
                    f(payload)
                }
            }),
        )
    }

    /// Joins the channel (connecting the client if needed). Statuses arrive as
    /// `Event::ChannelStatus`; await [`subscribed`](Self::subscribed) for the outcome.
    /// Calling it again while subscribed does nothing. A channel is single-use: once it is
    /// closed (unsubscribe, server close, terminal join error) its listeners are removed and
    /// `subscribe` fails; `client.channel(name)` then returns a fresh channel.
    pub fn subscribe(&self) -> Result<(), Error> {
        let client = self.client()?;
        self.shared.options.validate()?;
        let (bindings, presence_enabled) = {
            let mut setup = self.shared.setup.lock();
            if setup.subscribed {
                // Single use, as a phoenix.js channel: once closed, make a new one. Read the
                // engine's word directly: `shared.state()` takes the setup lock held here, so a
                // second subscribe() before the engine published a state deadlocked.
                return match self.shared.snapshot.state() {
                    Some(ChannelState::Closed) => Err(Error::InvalidArgument(
                        "this channel was closed; get a new one with client.channel()".into(),
                    )),
                    _ => Ok(()),
                };
            }
            setup.subscribed = true;
            (
                setup.bindings.clone(),
                setup.presence_listener || self.shared.options.presence_enabled,
            )
        };
        client.send(Command::Subscribe(ChannelConfig {
            id: self.shared.id,
            topic: self.shared.topic.clone(),
            options: self.shared.options.clone(),
            bindings,
            presence_enabled,
            snapshot: self.shared.snapshot.clone(),
            clock: WallClock::now(),
        }))
    }

    /// Resolves once the server said the channel's replication is ready (the `system`
    /// message asked for with [`ChannelOptions::replication_ready`](crate::ChannelOptions)).
    /// Fails with the server's message when it is not ready in time (the server then closes
    /// the channel), when the channel closes first, or after the join timeout when the
    /// option is off or the server never answers.
    pub async fn replication_ready(&self) -> Result<(), Error> {
        let client = self.client()?;
        let timeout = client.options.push_timeout;
        drop(client);
        let wait = self.shared.snapshot.wait_for(|p| {
            if let Some(answer) = &p.replication {
                return Some(answer.clone().map_err(Error::ChannelError));
            }
            let closed = p.status.as_ref().map(|s| s.status) == Some(SubscribeStatus::Closed);
            closed.then(|| {
                Err(Error::ChannelError(
                    "the channel closed before its replication was ready".into(),
                ))
            })
        });
        // Counted from SUBSCRIBED at the latest: the server answers right after the join.
        let joined = async {
            let _ = self.subscribed().await;
            tokio::time::sleep(timeout).await;
        };
        tokio::select! {
            r = wait => r,
            () = joined => Err(Error::Timeout),
        }
    }

    /// [`replication_ready`](Self::replication_ready) for synchronous callers.
    pub fn replication_ready_blocking(&self, timeout: Duration) -> Result<(), Error> {
        let this = self.clone();
        crate::runtime::block_on(async move { this.replication_ready().await }, timeout)
    }

    /// Resolves on SUBSCRIBED. Fails with the cause on CLOSED (the server's reason, or
    /// `Error::Shutdown`), on a terminal CHANNEL_ERROR and on TIMED_OUT (with the connect
    /// failure when there is one: refused, DNS, TLS, the upgrade's HTTP status and body).
    /// A connect refused for good (HTTP 401 from the upgrade: a wrong or expired key) fails at
    /// once. Recoverable errors (`ChannelRateLimitReached`, a refused connection) are retried by the client;
    /// the wait goes on through them for at most the join timeout
    /// ([`ClientOptions::push_timeout`](crate::ClientOptions::push_timeout)) and then fails
    /// with the last of them, while the channel keeps trying underneath.
    pub async fn subscribed(&self) -> Result<(), Error> {
        let join_timeout = self.client()?.options.push_timeout;
        let deadline = tokio::time::Instant::now() + join_timeout;
        let mut last: Option<Error> = None;
        let wait = self.shared.snapshot.wait_for(|p| {
            let StatusSnap {
                status,
                reason,
                kind,
                cause,
            } = p.status.as_ref()?;
            let error = || {
                cause.clone().unwrap_or_else(|| {
                    Error::ChannelError(
                        reason.clone().unwrap_or_else(|| status.as_str().to_owned()),
                    )
                })
            };
            match status {
                SubscribeStatus::Subscribed => Some(Ok(())),
                SubscribeStatus::Closed => {
                    if reason.as_deref() == Some(SHUTDOWN_REASON) {
                        return Some(Err(Error::Shutdown));
                    }
                    Some(Err(error()))
                }
                SubscribeStatus::TimedOut => Some(Err(cause.clone().unwrap_or(Error::Timeout))),
                // Terminal: the server refused the join for good, or the connection failed
                // in a way a retry cannot mend (the upgrade refused the key).
                SubscribeStatus::ChannelError
                    if *kind == Some(ErrorKind::Terminal)
                        || cause
                            .as_ref()
                            .is_some_and(|c| c.kind() == ErrorKind::Terminal) =>
                {
                    Some(Err(error()))
                }
                SubscribeStatus::ChannelError => {
                    last = Some(error());
                    None
                }
            }
        });
        match tokio::time::timeout_at(deadline, wait).await {
            Ok(result) => result,
            Err(_) => Err(last.unwrap_or(Error::Timeout)),
        }
    }

    /// [`subscribe`](Self::subscribe) then [`subscribed`](Self::subscribed), bounded by `timeout`.
    pub fn subscribe_blocking(&self, timeout: Duration) -> Result<(), Error> {
        // Refuse before subscribing (on the dispatcher thread or inside a token provider), so
        // a refused call has no effect.
        crate::runtime::may_block()?;
        self.subscribe()?;
        let this = self.clone();
        crate::runtime::block_on(async move { this.subscribed().await }, timeout)
    }

    fn push(&self, op: PushOp) -> Result<oneshot::Receiver<Result<(), Error>>, Error> {
        let client = self.client()?;
        if let PushOp::Broadcast {
            event,
            payload,
            persist,
        } = &op
        {
            validate_broadcast(client.options.vsn, &self.shared.topic, event, payload)?;
            self.validate_persist(*persist)?;
        }
        if !self.shared.setup.lock().subscribed {
            return Err(Error::InvalidArgument(
                "subscribe() the channel before pushing to it".into(),
            ));
        }
        let (tx, rx) = oneshot::channel();
        client.send(Command::Push(self.shared.id, op, tx))?;
        Ok(rx)
    }

    /// Sends a broadcast (binary kind 3 on vsn 2.0.0, JSON on 1.0.0). With `broadcast_ack` it
    /// resolves when the server acks; otherwise once written. Before the join completes the
    /// message waits in the channel's buffer (100 entries, push timeout applies).
    pub async fn send_broadcast(&self, event: &str, payload: Payload) -> Result<(), Error> {
        self.send_broadcast_persist(event, payload, Persist::No)
            .await
    }

    /// [`send_broadcast`](Self::send_broadcast) that asks the server to store the message
    /// (private channels only), so that a join with [`Replay`](crate::Replay) or
    /// `auto_replay` can replay it. Refused here on a public channel, as realtime-js does.
    ///
    /// ```no_run
    /// # use supa_realtime::*;
    /// # async fn demo(ch: RealtimeChannel) -> Result<(), Error> {
    /// let payload = serde_json::json!({"text": "hi"}).into();
    /// ch.send_broadcast_persist("message", payload, Persist::Yes).await?;
    /// # Ok(()) }
    /// ```
    pub async fn send_broadcast_persist(
        &self,
        event: &str,
        payload: Payload,
        persist: Persist,
    ) -> Result<(), Error> {
        let rx = self.push_broadcast(event, payload, persist)?;
        rx.await.unwrap_or(Err(Error::Shutdown))
    }

    /// Queues a broadcast; the receiver gets its outcome (see [`send_broadcast`](Self::send_broadcast)).
    pub(crate) fn push_broadcast(
        &self,
        event: &str,
        payload: Payload,
        persist: Persist,
    ) -> Result<oneshot::Receiver<Result<(), Error>>, Error> {
        self.push(PushOp::Broadcast {
            event: event.to_owned(),
            payload,
            persist,
        })
    }

    /// Queues a broadcast without waiting for the outcome.
    pub fn send_broadcast_nowait(&self, event: &str, payload: Payload) -> Result<(), Error> {
        self.push_broadcast(event, payload, Persist::No).map(drop)
    }

    /// [`send_broadcast`](Self::send_broadcast) for synchronous callers.
    pub fn send_broadcast_blocking(
        &self,
        event: &str,
        payload: Payload,
        timeout: Duration,
    ) -> Result<(), Error> {
        self.send_broadcast_persist_blocking(event, payload, Persist::No, timeout)
    }

    /// [`send_broadcast_persist`](Self::send_broadcast_persist) for synchronous callers.
    pub fn send_broadcast_persist_blocking(
        &self,
        event: &str,
        payload: Payload,
        persist: Persist,
        timeout: Duration,
    ) -> Result<(), Error> {
        // Refused before sending, so a refused call has no effect.
        crate::runtime::may_block()?;
        let rx = self.push_broadcast(event, payload, persist)?;
        crate::runtime::block_on(
            async move { rx.await.unwrap_or(Err(Error::Shutdown)) },
            timeout,
        )
    }

    /// Only private channels store messages; a TTL is whole seconds.
    fn validate_persist(&self, persist: Persist) -> Result<(), Error> {
        match persist {
            Persist::No => Ok(()),
            _ if !self.shared.options.private => Err(Error::InvalidArgument(
                "Messages can only be stored on private channels".into(),
            )),
            Persist::Ttl(ttl) if ttl.as_secs() == 0 => Err(Error::InvalidArgument(
                "persist ttl must be at least 1 second".into(),
            )),
            _ => Ok(()),
        }
    }

    /// Broadcast over REST (`POST .../api/broadcast/<name>/events/<event>`), as realtime-js'
    /// `httpSend`: works without joining; JSON or binary body; 202 is success.
    pub async fn http_send(&self, event: &str, payload: Payload) -> Result<(), Error> {
        self.http_send_persist(event, payload, Persist::No).await
    }

    /// [`http_send`](Self::http_send) that asks the server to store the message (private
    /// channels only), as realtime-js' `httpSend(event, payload, { persist })`.
    pub async fn http_send_persist(
        &self,
        event: &str,
        payload: Payload,
        persist: Persist,
    ) -> Result<(), Error> {
        self.validate_persist(persist)?;
        let client = self.client()?;
        let name = self
            .shared
            .topic
            .strip_prefix(crate::protocol::TOPIC_PREFIX)
            .unwrap_or(&self.shared.topic);
        let mut url = format!(
            "{}/broadcast/{}/events/{}",
            client.api_url,
            crate::client::url::encode(name),
            crate::client::url::encode(event)
        );
        let query: Vec<String> = self
            .shared
            .options
            .private
            .then(|| "private=true".to_owned())
            .into_iter()
            .chain(persist.query())
            .collect();
        if !query.is_empty() {
            url.push('?');
            url.push_str(&query.join("&"));
        }
        // Asked of the engine, which took any earlier `set_auth` first.
        let (tx, rx) = oneshot::channel();
        client.send(Command::Token(tx))?;
        let token = rx.await.map_err(|_| Error::Shutdown)?;
        let mut headers: Vec<(String, String)> = client.options.headers.clone();
        if let Some(t) = token {
            headers.push(("Authorization".into(), format!("Bearer {t}")));
        }
        headers.push(("apikey".into(), client.options.api_key.clone()));
        let (content_type, body) = match payload {
            Payload::Json(v) => ("application/json", v.to_string().into_bytes()),
            Payload::Binary(b) => ("application/octet-stream", b),
        };
        headers.push(("Content-Type".into(), content_type.into()));
        let tls = client.tls.clone();
        let timeout = client.options.push_timeout;
        drop(client);
        // The timer runs on our runtime too, so this future can be awaited from any executor.
        let job = async move {
            tokio::time::timeout(
                timeout,
                crate::transport::http_post(&url, &headers, &body, tls),
            )
            .await
            .map_err(|_| Error::Timeout)?
        };
        let (status, body) = spawn_on_runtime(job).await?;
        if status == 202 || (200..300).contains(&status) {
            Ok(())
        } else {
            // realtime-js surfaces `error` or `message` from a JSON body.
            Err(Error::Http {
                status,
                body: crate::transport::error_text(&body),
            })
        }
    }

    /// [`http_send`](Self::http_send) for synchronous callers.
    pub fn http_send_blocking(
        &self,
        event: &str,
        payload: Payload,
        timeout: Duration,
    ) -> Result<(), Error> {
        self.http_send_persist_blocking(event, payload, Persist::No, timeout)
    }

    /// [`http_send_persist`](Self::http_send_persist) for synchronous callers.
    pub fn http_send_persist_blocking(
        &self,
        event: &str,
        payload: Payload,
        persist: Persist,
        timeout: Duration,
    ) -> Result<(), Error> {
        let this = self.clone();
        let event = event.to_owned();
        crate::runtime::block_on(
            async move { this.http_send_persist(&event, payload, persist).await },
            timeout,
        )
    }

    /// Tracks this client's presence with `meta` (a JSON object); resolves on the reply.
    pub async fn track(&self, meta: Value) -> Result<(), Error> {
        if !meta.is_object() {
            return Err(Error::InvalidArgument(
                "presence meta must be a JSON object".into(),
            ));
        }
        let rx = self.push(PushOp::Track(meta))?;
        rx.await.unwrap_or(Err(Error::Shutdown))
    }

    /// Stops tracking; resolves on the reply.
    pub async fn untrack(&self) -> Result<(), Error> {
        let rx = self.push(PushOp::Untrack)?;
        rx.await.unwrap_or(Err(Error::Shutdown))
    }

    /// [`track`](Self::track) for synchronous callers.
    pub fn track_blocking(&self, meta: Value, timeout: Duration) -> Result<(), Error> {
        let this = self.clone();
        crate::runtime::block_on(async move { this.track(meta).await }, timeout)
    }

    /// [`untrack`](Self::untrack) for synchronous callers.
    pub fn untrack_blocking(&self, timeout: Duration) -> Result<(), Error> {
        let this = self.clone();
        crate::runtime::block_on(async move { this.untrack().await }, timeout)
    }

    /// key → metas (each with `presence_ref`), as realtime-js' `presenceState()`.
    pub fn presence_state(&self) -> Vec<(String, Vec<Value>)> {
        self.shared.snapshot.presence()
    }

    /// Leaves the channel; resolves once the server confirmed (or the push timed out).
    /// The channel's listeners are removed; `client.channel(name)` then gives a fresh channel.
    /// Its final CLOSED status says "left".
    pub async fn unsubscribe(&self) -> Result<(), Error> {
        let rx = self.leave(false)?;
        rx.await.unwrap_or(Err(Error::Shutdown))
    }

    /// Leaves without waiting.
    pub fn unsubscribe_nowait(&self) -> Result<(), Error> {
        self.leave(false).map(drop)
    }

    /// Asks the engine to end the channel; `removed` makes its final CLOSED say "removed"
    /// (`remove_channel`) rather than "left" (`unsubscribe`).
    pub(crate) fn leave(
        &self,
        removed: bool,
    ) -> Result<oneshot::Receiver<Result<(), Error>>, Error> {
        let client = self.client()?;
        let (tx, rx) = oneshot::channel();
        client.send(Command::Unsubscribe {
            id: self.shared.id,
            removed,
            reply: tx,
        })?;
        Ok(rx)
    }

    /// [`unsubscribe`](Self::unsubscribe) for synchronous callers.
    pub fn unsubscribe_blocking(&self, timeout: Duration) -> Result<(), Error> {
        let this = self.clone();
        crate::runtime::block_on(async move { this.unsubscribe().await }, timeout)
    }
}

/// Runs `fut` on the library runtime (which owns the sockets) and awaits it from anywhere.
async fn spawn_on_runtime<T: Send + 'static>(
    fut: impl std::future::Future<Output = Result<T, Error>> + Send + 'static,
) -> Result<T, Error> {
    crate::runtime::handle()
        .spawn(fut)
        .await
        .unwrap_or(Err(Error::Shutdown))
}

fn validate_broadcast(vsn: Vsn, topic: &str, event: &str, payload: &Payload) -> Result<(), Error> {
    match vsn {
        Vsn::V2 => {
            if event.len() > MAX_HEADER_FIELD || topic.len() > MAX_HEADER_FIELD {
                return Err(Error::InvalidArgument(format!(
                    "topic and event must be at most {MAX_HEADER_FIELD} bytes on vsn 2.0.0"
                )));
            }
        }
        Vsn::V1 => {
            if matches!(payload, Payload::Binary(_)) {
                return Err(Error::InvalidArgument(
                    "binary payloads need vsn 2.0.0".into(),
                ));
            }
        }
    }
    Ok(())
}
