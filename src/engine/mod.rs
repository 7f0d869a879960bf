//! The sans-IO core of a client: the connection schedule (connect, heartbeat, reconnect,
//! token refresh) and one [`ChannelMachine`] per channel, behind a topic index and a timer
//! queue. No sockets, no clock, no dispatcher: every input carries `now`, and outputs are
//! queued in the [`Outbox`] — frames to write, events to emit, [`Action`]s for the driver —
//! plus [`Engine::next_deadline`]. The driver (`crate::driver`) does the I/O.
//!
//! Costs: a frame is routed through [`Router`] (one hash lookup) and touches only the
//! channels of its topic; a channel's deadline lives in [`Timers`] and is updated only when
//! it changes, so the next wake-up is one lookup and a tick visits only due channels; token and
//! heartbeat work touch channels only when the protocol needs all of them (a changed token, a
//! socket that opened or closed). Join and leave are O(log n).

pub(crate) mod channel;
pub(crate) mod fuzz;
pub(crate) mod gap;
pub(crate) mod outbox;
pub(crate) mod router;
pub(crate) mod snapshot;
pub(crate) mod timers;

#[cfg(test)]
mod channel_tests;
#[cfg(test)]
mod engine_tests;

use rustc_hash::FxHashMap;
use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio_tungstenite::tungstenite::{Bytes, Utf8Bytes};

use self::channel::{After, ChannelConfig, ChannelMachine, CloseReason, PushOp};
use self::outbox::{Ctx, Outbox, Refs, Reply};
use self::router::Router;
use self::snapshot::Counters;
use self::timers::Timers;
use crate::error::Error;
use crate::event::{ChannelId, ConnectionState, Event, HeartbeatStatus};
use crate::incoming::{Emit, RawPayload};
use crate::options::{ClientOptions, Vsn};
use crate::protocol::{
    event, BinaryFrame, FanoutBroadcast, Frame, UserBroadcastRef, UserPayloadRef, PHOENIX_TOPIC,
};

/// How long a link check (network change, foreground) waits for its heartbeat reply.
const PROBE: Duration = Duration::from_secs(5);
/// A connect attempt older than this is restarted by a link check.
const PROBE_AGE: Duration = Duration::from_secs(1);

/// What the token provider answered: a token, "use the API key", or an error message.
pub(crate) type TokenResult = Result<Option<String>, String>;

/// I/O the engine asks the driver for, in order, after the frames of the same turn.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Action {
    /// Open a socket (any attempt in flight is dropped). With `fetch_token`, ask the token
    /// provider first; report with [`Engine::on_connected`].
    Connect { fetch_token: bool },
    /// Drop the socket or the attempt in flight; send a close frame (1000, `reason`) first
    /// when `send_frame` and the socket is open.
    Close { reason: String, send_frame: bool },
    /// Ask the token provider (on a helper thread); report with [`Engine::on_token`].
    FetchToken,
    /// The client is done: close the dispatch queue with a final `ShutDown` status.
    Shutdown,
}

/// The connection's phase and the timers that belong to it.
#[derive(Debug)]
enum Phase {
    /// Not connected, not trying.
    Idle,
    /// Waiting before the next attempt.
    Waiting(Instant),
    /// An attempt is in flight (started at the given time).
    Connecting(Instant),
    Open(Heartbeat),
}

#[derive(Debug)]
struct Heartbeat {
    next: Instant,
    /// The heartbeat in flight: its ref and when it was sent.
    pending: Option<(String, Instant)>,
    /// The next heartbeat is a link check: its reply is awaited for at most [`PROBE`].
    probe: bool,
}

/// The engine of one client.
pub(crate) struct Engine {
    opts: Arc<ClientOptions>,
    token: Option<String>,
    refs: Refs,
    out: Outbox,
    actions: Vec<Action>,
    counters: Arc<Counters>,
    state_tx: watch::Sender<ConnectionState>,
    /// Boxed: a machine is most of a kilobyte, and a table of them inline is a power of two
    /// of slots (16,384 for 10,000 channels), each a machine's size.
    channels: FxHashMap<ChannelId, Box<ChannelMachine>>,
    router: Router,
    timers: Timers,
    phase: Phase,
    /// The application wants a connection (connect/subscribe, until disconnect).
    want: bool,
    /// Position on the reconnect schedule; reset by a successful open.
    attempt: usize,
    rng: u64,
    /// With a token provider: when to ask for a fresh token ahead of the JWT's `exp`.
    refresh_at: Option<Instant>,
    token_fetching: bool,
    /// Channels whose rejoin waits for the token provider.
    awaiting_token: BTreeSet<ChannelId>,
    /// Why the last connect attempt failed (cleared when a socket opens): the cause channels
    /// waiting for a connection report, and their waiters fail with.
    connect_cause: Option<Error>,
    /// The token provider's last failure while no token is in force (joins wait for a token
    /// rather than fall back to the API key).
    token_error: Option<String>,
}

/// Builds the [`Ctx`] a machine works in from the engine's fields (a macro, so the borrows
/// stay disjoint from `self.channels`).
macro_rules! ctx {
    ($e:ident) => {
        Ctx {
            opts: &$e.opts,
            token: $e.token.as_deref(),
            open: matches!($e.phase, Phase::Open(_)),
            cause: $e.connect_cause.as_ref(),
            token_error: $e.token_error.as_deref(),
            refs: &mut $e.refs,
            out: &mut $e.out,
            counters: &$e.counters,
        }
    };
}

impl Engine {
    /// An engine with no channels, not connected. `seed` spreads reconnect jitter.
    pub(crate) fn new(
        opts: Arc<ClientOptions>,
        counters: Arc<Counters>,
        state_tx: watch::Sender<ConnectionState>,
        seed: u64,
    ) -> Engine {
        Engine {
            token: opts.access_token.clone(),
            opts,
            refs: Refs::default(),
            out: Outbox::default(),
            actions: Vec::new(),
            counters,
            state_tx,
            channels: FxHashMap::default(),
            router: Router::default(),
            timers: Timers::default(),
            phase: Phase::Idle,
            want: false,
            attempt: 0,
            rng: seed | 1,
            refresh_at: None,
            token_fetching: false,
            awaiting_token: BTreeSet::new(),
            connect_cause: None,
            token_error: None,
        }
    }

    /// Frames and events produced since the last call.
    pub(crate) fn outbox(&mut self) -> &mut Outbox {
        &mut self.out
    }

    /// Actions requested since the last call, in order.
    pub(crate) fn take_actions(&mut self) -> Vec<Action> {
        std::mem::take(&mut self.actions)
    }

    /// The access token in force (set by `set_auth` or the token provider).
    pub(crate) fn token(&self) -> Option<String> {
        self.token.clone()
    }

    /// When the engine next has timed work ([`on_tick`](Self::on_tick)).
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        let phase = match &self.phase {
            Phase::Waiting(at) => Some(*at),
            Phase::Open(hb) => Some(hb.next),
            _ => None,
        };
        [self.timers.next(), phase, self.refresh_at]
            .into_iter()
            .flatten()
            .min()
    }

    fn emit(&mut self, event: Event) {
        self.out.emit(None, event);
    }

    fn set_state(&mut self, state: ConnectionState, reason: Option<String>, now: Instant) {
        let changed = self.state_tx.send_if_modified(|s| {
            let changed = *s != state;
            *s = state;
            changed
        });
        self.counters
            .set_outage(state == ConnectionState::Connecting, now);
        if changed || reason.is_some() {
            self.emit(Event::ConnectionStatus { state, reason });
        }
    }

    // ---- commands

    /// `connect()`: start connecting (and keep reconnecting until `disconnect`).
    pub(crate) fn connect(&mut self, now: Instant) {
        self.want = true;
        if matches!(self.phase, Phase::Idle) {
            self.start_connect(now);
        }
    }

    /// `disconnect()`: close (1000) and stop reconnecting; channels stay and rejoin on the
    /// next connect.
    pub(crate) fn disconnect(&mut self, now: Instant) {
        self.want = false;
        self.close_socket("disconnect requested", true, now);
        self.phase = Phase::Idle;
        self.set_state(ConnectionState::Disconnected, None, now);
    }

    /// `set_auth()`: the token for joins from now on, pushed to joined channels.
    pub(crate) fn set_auth(&mut self, token: Option<String>) {
        if self.token == token {
            return;
        }
        self.token = token;
        for m in self.channels.values_mut() {
            m.send_token(&mut ctx!(self));
        }
    }

    /// Heartbeat now and give the reply [`PROBE`] (at most one interval); reconnect at once
    /// when waiting (network changed, app foregrounded).
    pub(crate) fn check_link(&mut self, now: Instant) {
        let probe = self.opts.heartbeat_interval.min(PROBE);
        match &mut self.phase {
            Phase::Waiting(at) => *at = now,
            // An attempt in flight for a while may be stuck on the old route: start over on
            // the new one (a young attempt is left alone, so flapping cannot starve it).
            Phase::Connecting(started) if now - *started >= probe.min(PROBE_AGE) => {
                self.start_connect(now);
            }
            Phase::Open(hb) => {
                if hb.pending.is_none() {
                    hb.next = now;
                    hb.probe = true;
                } else {
                    hb.next = hb.next.min(now + probe);
                }
            }
            _ => {}
        }
    }

    /// The app came back: check the link, and ask the token provider (the token may have
    /// expired while the device slept).
    pub(crate) fn foregrounded(&mut self, now: Instant) {
        self.check_link(now);
        self.start_token_fetch(true);
    }

    /// `subscribe()`: a new channel joins (connecting the client if needed).
    pub(crate) fn subscribe(&mut self, config: ChannelConfig, now: Instant) {
        let id = config.id;
        log::debug!("subscribe {}", config.topic);
        let mut m = Box::new(ChannelMachine::new(config));
        self.router.insert(m.topic_arc(), id);
        m.join(&mut ctx!(self), now);
        self.timers.set(id, m.deadline());
        self.channels.insert(id, m);
        self.connect(now);
    }

    /// `unsubscribe()` (`why` = left) or `remove_channel()` (removed): `reply` is answered
    /// once the channel is closed.
    pub(crate) fn leave(&mut self, id: ChannelId, why: CloseReason, reply: Reply, now: Instant) {
        match self.channels.get_mut(&id) {
            Some(m) => {
                let after = m.leave(&mut ctx!(self), reply, why, now);
                self.after(id, after);
            }
            None => {
                let _ = reply.send(Ok(()));
            }
        }
    }

    /// A broadcast or presence push from the application.
    pub(crate) fn push(&mut self, id: ChannelId, op: PushOp, reply: Reply, now: Instant) {
        match self.channels.get_mut(&id) {
            Some(m) => {
                m.push(&mut ctx!(self), op, reply, now);
                self.timers.set(id, m.deadline());
            }
            None => {
                let _ = reply.send(Err(Error::NotConnected));
            }
        }
    }

    /// The client ends: close the socket, end every channel (each reports its final CLOSED,
    /// "client shut down"), report `ShutDown`, stop the queue behind those events.
    pub(crate) fn shutdown(&mut self, now: Instant) {
        if *self.state_tx.borrow() == ConnectionState::ShutDown {
            return;
        }
        log::info!("shutting down");
        self.want = false;
        self.close_socket("shutdown", true, now);
        let mut ids: Vec<ChannelId> = self.channels.keys().copied().collect();
        ids.sort_unstable();
        for id in ids {
            self.finish_channel(id, CloseReason::Shutdown);
        }
        self.phase = Phase::Idle;
        self.refresh_at = None;
        self.set_state(ConnectionState::ShutDown, None, now);
        self.actions.push(Action::Shutdown);
    }

    // ---- channel bookkeeping

    /// Files the channel's new deadline, or ends it when it is over.
    fn after(&mut self, id: ChannelId, after: After) {
        match after {
            After::Close(why) => self.finish_channel(id, why),
            After::Keep => {
                if let Some(m) = self.channels.get(&id) {
                    self.timers.set(id, m.deadline());
                }
            }
        }
    }

    /// The only way a machine leaves the engine: out of every index, then
    /// [`ChannelMachine::finish`] (its one CLOSED), then the removal of its listeners behind
    /// that status on the dispatch queue.
    fn finish_channel(&mut self, id: ChannelId, why: CloseReason) {
        let Some(m) = self.channels.remove(&id) else {
            return;
        };
        self.router.remove(m.topic(), id);
        self.timers.set(id, None);
        self.awaiting_token.remove(&id);
        self.counters.forget_channel(m.topic());
        (*m).finish(&mut ctx!(self), why);
        self.out.emits.push(Emit::RemoveChannel(id));
    }

    /// Hands `item` to each channel of `topic` (the last one takes the original: a deep
    /// clone per message was a hot spot) and files what they return.
    fn route<T: Clone>(
        &mut self,
        topic: &str,
        item: T,
        mut handle: impl FnMut(&mut ChannelMachine, &mut Ctx<'_>, T) -> After,
    ) {
        let ids = self.router.get(topic);
        match ids {
            [] => {}
            [id] => {
                let id = *id;
                if let Some(m) = self.channels.get_mut(&id) {
                    let after = handle(m, &mut ctx!(self), item);
                    self.after(id, after);
                }
            }
            many => {
                let ids = many.to_vec();
                let last = ids.len() - 1;
                let mut item = Some(item);
                for (i, id) in ids.into_iter().enumerate() {
                    let it = if i == last { item.take() } else { item.clone() };
                    if let (Some(m), Some(it)) = (self.channels.get_mut(&id), it) {
                        let after = handle(m, &mut ctx!(self), it);
                        self.after(id, after);
                    }
                }
            }
        }
    }

    // ---- the socket

    fn start_connect(&mut self, now: Instant) {
        log::debug!("connecting (attempt {})", self.attempt + 1);
        self.phase = Phase::Connecting(now);
        self.set_state(ConnectionState::Connecting, None, now);
        self.actions.push(Action::Connect {
            fetch_token: self.opts.token_provider.is_some(),
        });
    }

    /// A connect attempt ended: `result` says whether the socket is open (the driver holds
    /// it), `token` is the provider's answer when [`Action::Connect`] asked for one.
    pub(crate) fn on_connected(
        &mut self,
        result: Result<(), Error>,
        token: Option<TokenResult>,
        now: Instant,
    ) {
        if !matches!(self.phase, Phase::Connecting(_)) {
            // Superseded (disconnect, shutdown): the driver drops the socket.
            if result.is_ok() {
                self.actions.push(Action::Close {
                    reason: String::new(),
                    send_frame: false,
                });
            }
            return;
        }
        if let Some(token) = token {
            self.apply_token(token);
        }
        self.schedule_refresh(now);
        if let Err(e) = result {
            log::warn!("could not connect: {e}");
            self.emit(Event::Error {
                message: format!("could not connect: {e}"),
            });
            *self.counters.connect_error.lock() = Some(e.clone());
            self.connect_cause = Some(e);
            for (id, m) in self.channels.iter_mut() {
                m.on_connect_failed(&mut ctx!(self));
                self.timers.set(*id, m.deadline());
            }
            self.schedule_reconnect(now);
            return;
        }
        self.connect_cause = None;
        *self.counters.connect_error.lock() = None;
        if !self.want {
            self.phase = Phase::Idle;
            self.actions.push(Action::Close {
                reason: String::new(),
                send_frame: false,
            });
            return;
        }
        if self.counters.connects.fetch_add(1, Ordering::Relaxed) > 0 {
            self.counters.reconnects.fetch_add(1, Ordering::Relaxed);
            log::info!("reconnected after {} attempt(s)", self.attempt + 1);
        } else {
            log::info!("connected");
        }
        self.attempt = 0;
        self.phase = Phase::Open(Heartbeat {
            next: now + self.opts.heartbeat_interval,
            pending: None,
            probe: false,
        });
        self.set_state(ConnectionState::Connected, None, now);
        for (id, m) in self.channels.iter_mut() {
            m.on_socket_open(&mut ctx!(self), now);
            self.timers.set(*id, m.deadline());
        }
    }

    /// The socket closed or failed (`reason` says how): reconnect on the schedule.
    pub(crate) fn on_closed(&mut self, reason: &str, now: Instant) {
        if !matches!(self.phase, Phase::Open(_)) {
            return;
        }
        self.connection_lost(reason, now);
    }

    /// The server broke the WebSocket protocol (a message over `max_message_size`, a
    /// malformed frame): an error event, then a lost connection like any other.
    pub(crate) fn on_protocol_error(&mut self, message: &str, now: Instant) {
        if !matches!(self.phase, Phase::Open(_)) {
            return;
        }
        log::warn!("{message}");
        self.emit(Event::Error {
            message: message.to_owned(),
        });
        self.connection_lost(message, now);
    }

    fn connection_lost(&mut self, reason: &str, now: Instant) {
        log::info!("connection lost: {reason}");
        self.close_socket(reason, true, now);
        self.set_state(ConnectionState::Connecting, Some(reason.to_owned()), now);
        self.schedule_reconnect(now);
    }

    /// Drops the socket (sending a close frame while we still can) and errors the channels.
    fn close_socket(&mut self, reason: &str, send_frame: bool, now: Instant) {
        let open = matches!(self.phase, Phase::Open(_));
        if open || matches!(self.phase, Phase::Connecting(_)) {
            self.actions.push(Action::Close {
                reason: reason.to_owned(),
                send_frame: send_frame && open,
            });
        }
        // From here on the machines see a closed socket.
        self.phase = Phase::Idle;
        let mut closed = Vec::new();
        for (id, m) in self.channels.iter_mut() {
            match m.on_socket_closed(&mut ctx!(self), reason, now) {
                After::Close(why) => closed.push((*id, why)),
                After::Keep => self.timers.set(*id, m.deadline()),
            }
        }
        closed.sort_by_key(|(id, _)| *id);
        for (id, why) in closed {
            self.finish_channel(id, why);
        }
    }

    fn schedule_reconnect(&mut self, now: Instant) {
        if !self.want {
            self.phase = Phase::Idle;
            self.set_state(ConnectionState::Disconnected, None, now);
            return;
        }
        let delays = &self.opts.reconnect_delays;
        let base = delays[self.attempt.min(delays.len() - 1)];
        self.attempt += 1;
        let jitter = self.opts.reconnect_jitter.clamp(0.0, 1.0);
        let factor = 1.0 + jitter * (2.0 * self.random() - 1.0);
        let delay = base.mul_f64(factor.max(0.0));
        log::debug!("reconnect in {delay:?} (attempt {})", self.attempt);
        self.phase = Phase::Waiting(now + delay);
        self.set_state(ConnectionState::Connecting, None, now);
    }

    fn random(&mut self) -> f64 {
        // xorshift64: enough to spread reconnects; not for anything secret.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        (self.rng >> 11) as f64 / (1u64 << 53) as f64
    }

    // ---- inbound frames

    /// A text frame from the socket. Broadcasts keep pointing into it: it is not copied.
    pub(crate) fn on_text(&mut self, text: Utf8Bytes, now: Instant) {
        self.counters.messages_in.fetch_add(1, Ordering::Relaxed);
        if self.oversized("text", text.len()) {
            return;
        }
        if self.opts.vsn == Vsn::V2 && self.fanout_broadcast(&text, now) {
            return;
        }
        match Frame::decode(self.opts.vsn, text.as_str()) {
            Ok(frame) => self.on_frame(frame, now),
            Err(e) => {
                log::debug!("dropped a frame: {e}");
                self.emit(Event::Error {
                    message: e.to_string(),
                })
            }
        }
    }

    /// A frame over `max_payload_size` is reported and skipped before anything is decoded.
    fn oversized(&mut self, kind: &str, len: usize) -> bool {
        let max = self.opts.max_payload_size;
        if len <= max {
            return false;
        }
        log::warn!("skipped a {kind} frame of {len} bytes");
        self.emit(Event::Error {
            message: format!(
                "skipped a {kind} frame of {len} bytes: over max_payload_size ({max})"
            ),
        });
        true
    }

    /// The fast path for fan-out broadcasts (the bulk of inbound traffic): routed with the
    /// user payload left as text. `false` for any other frame.
    fn fanout_broadcast(&mut self, text: &Utf8Bytes, now: Instant) -> bool {
        let Some(b) = FanoutBroadcast::decode(text.as_str()) else {
            return false;
        };
        let payload = match b.payload {
            Some(p) => RawPayload::Json(p),
            None => RawPayload::Absent,
        };
        let parts = (b.event.as_deref().unwrap_or_default(), payload, b.meta);
        let frame: &Bytes = text.as_ref();
        self.route(&b.topic, parts, |m, ctx, parts| {
            m.on_raw_broadcast(ctx, frame, parts, now)
        });
        true
    }

    fn on_frame(&mut self, frame: Frame, now: Instant) {
        if frame.topic == PHOENIX_TOPIC {
            if frame.event == event::REPLY {
                self.on_heartbeat_reply(&frame, now);
            }
            return;
        }
        // The machines know their topic; the frame's copy is only needed for routing.
        let mut frame = frame;
        let topic = std::mem::take(&mut frame.topic);
        self.route(&topic, frame, |m, ctx, f| m.on_frame(ctx, f, now));
    }

    /// A binary frame from the socket. Kind 4 (user broadcasts, what servers send) keeps
    /// pointing into it; the other kinds are decoded into owned frames.
    pub(crate) fn on_binary(&mut self, bytes: Bytes, now: Instant) {
        self.counters.messages_in.fetch_add(1, Ordering::Relaxed);
        if self.oversized("binary", bytes.len()) {
            return;
        }
        let frame = match UserBroadcastRef::decode(&bytes) {
            Some(Ok(b)) => return self.user_broadcast(&bytes, b, now),
            Some(Err(e)) => Err(e),
            None => BinaryFrame::decode_from_server(&bytes),
        };
        let frame = match frame {
            Ok(frame) => frame,
            Err(e) => {
                log::debug!("dropped a binary frame: {e}");
                return self.emit(Event::Error {
                    message: e.to_string(),
                });
            }
        };
        let topic = match &frame {
            BinaryFrame::Push { topic, .. }
            | BinaryFrame::Reply { topic, .. }
            | BinaryFrame::Broadcast { topic, .. }
            | BinaryFrame::UserBroadcastPush { topic, .. }
            | BinaryFrame::UserBroadcast { topic, .. } => topic.clone(),
        };
        self.route(&topic, frame, |m, ctx, f| m.on_binary(ctx, f, now));
    }

    fn user_broadcast(&mut self, bytes: &Bytes, b: UserBroadcastRef<'_>, now: Instant) {
        if self.router.get(b.topic).is_empty() {
            return;
        }
        // The decoder's parts are slices of `bytes`: the broadcast keeps them there.
        let payload = match b.payload {
            UserPayloadRef::Json(json) => RawPayload::Json(json),
            UserPayloadRef::Binary(bin) => RawPayload::Binary(bin),
        };
        self.route(b.topic, (b.event, payload, b.metadata), |m, ctx, parts| {
            m.on_user_broadcast(ctx, bytes, parts, now)
        });
    }

    fn on_heartbeat_reply(&mut self, frame: &Frame, now: Instant) {
        let Phase::Open(hb) = &mut self.phase else {
            return;
        };
        match &hb.pending {
            Some((r, _)) if frame.r#ref.as_deref() == Some(r.as_str()) => {}
            _ => return,
        }
        let Some((_, sent)) = hb.pending.take() else {
            return;
        };
        let rtt = now.saturating_duration_since(sent);
        hb.next = now + self.opts.heartbeat_interval;
        let status = if frame.reply_status() == Some("ok") {
            HeartbeatStatus::Ok
        } else {
            HeartbeatStatus::Error
        };
        self.counters.record_rtt(rtt);
        self.emit(Event::Heartbeat {
            status,
            rtt: Some(rtt),
        });
    }

    // ---- time

    /// Does the work due at `now`: reconnect, heartbeat, token refresh, channel timers.
    pub(crate) fn on_tick(&mut self, now: Instant) {
        match &self.phase {
            Phase::Waiting(at) if *at <= now => self.start_connect(now),
            Phase::Open(hb) if hb.next <= now => self.heartbeat(now),
            _ => {}
        }
        if self.refresh_at.is_some_and(|at| at <= now) {
            // on_token plans the next one.
            self.refresh_at = None;
            self.start_token_fetch(true);
        }
        for id in self.timers.take_due(now) {
            let Some(m) = self.channels.get_mut(&id) else {
                continue;
            };
            let after = m.on_timer(&mut ctx!(self), now);
            if m.awaiting_token() {
                self.awaiting_token.insert(id);
            }
            self.after(id, after);
        }
        if !self.awaiting_token.is_empty() {
            self.start_token_fetch(false);
        }
    }

    fn heartbeat(&mut self, now: Instant) {
        let Phase::Open(hb) = &mut self.phase else {
            return;
        };
        if hb.pending.is_some() {
            log::warn!("heartbeat timeout");
            self.emit(Event::Heartbeat {
                status: HeartbeatStatus::Timeout,
                rtt: None,
            });
            return self.connection_lost("heartbeat timeout", now);
        }
        let r = self.refs.next();
        let interval = self.opts.heartbeat_interval;
        hb.pending = Some((r.clone(), now));
        hb.next = now
            + if hb.probe {
                interval.min(PROBE)
            } else {
                interval
            };
        hb.probe = false;
        let _ = ctx!(self).send(&Frame::heartbeat(r));
        self.emit(Event::Heartbeat {
            status: HeartbeatStatus::Sent,
            rtt: None,
        });
    }

    // ---- tokens

    /// Plans the next provider call ahead of the current token's expiry.
    fn schedule_refresh(&mut self, now: Instant) {
        self.refresh_at = None;
        if self.opts.token_provider.is_none() {
            return;
        }
        let Some(left) = self.token.as_deref().and_then(crate::token::time_left) else {
            return;
        };
        // An expired token (the provider had nothing better) is asked about again each second.
        let after = crate::token::refresh_after(left, self.opts.token_refresh_margin)
            .max(Duration::from_secs(1));
        self.refresh_at = Some(now + after);
    }

    /// Asks the provider when a rejoin waits for it, or with `refresh` anyway (a changed token
    /// is then pushed to joined channels as `access_token`).
    fn start_token_fetch(&mut self, refresh: bool) {
        let channels = &self.channels;
        self.awaiting_token
            .retain(|id| channels.get(id).is_some_and(|m| m.awaiting_token()));
        let wanted = refresh || !self.awaiting_token.is_empty();
        if self.token_fetching || !wanted || self.opts.token_provider.is_none() {
            return;
        }
        self.token_fetching = true;
        self.actions.push(Action::FetchToken);
    }

    fn apply_token(&mut self, token: TokenResult) {
        match token {
            Ok(t) => {
                self.token_error = None;
                if let Some(t) = t {
                    self.set_auth(Some(t));
                }
            }
            Err(e) => {
                log::warn!("token provider: {e}");
                self.emit(Event::Error {
                    message: format!("token provider: {e}"),
                });
                // With a token in force, joins go on with it (the server refuses it if it
                // expired); without one they wait, so the API key's role is never used silently.
                if self.token.is_none() {
                    self.token_error = Some(e);
                }
            }
        }
    }

    /// The token provider answered an [`Action::FetchToken`]: rejoins waiting for it go ahead.
    pub(crate) fn on_token(&mut self, token: TokenResult, now: Instant) {
        self.token_fetching = false;
        self.apply_token(token);
        self.schedule_refresh(now);
        for id in std::mem::take(&mut self.awaiting_token) {
            if let Some(m) = self.channels.get_mut(&id) {
                m.on_token_ready(&mut ctx!(self), now);
                self.timers.set(id, m.deadline());
            }
        }
    }
}
