//! The connection task: the single owner of a client's socket, channels, refs and timers.
//!
//! Handles send [`Command`]s; the task reacts to commands, frames and its own deadlines in one
//! loop (no locks around protocol state). Writes go through a writer task so that a stalled
//! socket never blocks heartbeat timing. Timers follow realtime-js: heartbeat every 25 s, an
//! unanswered heartbeat closes and reconnects, reconnect delays 1/2/5/10 s (with jitter).

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::{SplitStream, StreamExt};
use futures_util::SinkExt;
use parking_lot::Mutex;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;

use super::transport::{self, WsStream};
use super::Command;
use crate::dispatch::Dispatcher;
use crate::engine::channel::{After, ChannelMachine};
use crate::engine::outbox::{Ctx, Emit, Outbox, Refs, Transmit};
use crate::engine::snapshot::Counters;
use crate::error::Error;
use crate::event::{ChannelId, ConnectionState, Event, HeartbeatStatus};
use crate::options::{ClientOptions, Vsn};
use crate::protocol::{event, BinaryFrame, FanoutBroadcast, Frame, PHOENIX_TOPIC};

/// The connection-wide part of the task that channel machines work in.
pub(crate) struct Conn {
    pub opts: Arc<ClientOptions>,
    pub vsn: Vsn,
    pub token: Option<String>,
    dispatcher: Arc<Dispatcher>,
    refs: Refs,
    out: Outbox,
    writer: Option<mpsc::UnboundedSender<Message>>,
    counters: Arc<Counters>,
}

impl Conn {
    fn ctx(&mut self) -> Ctx<'_> {
        Ctx {
            opts: &self.opts,
            token: self.token.as_deref(),
            open: self.writer.is_some(),
            refs: &mut self.refs,
            out: &mut self.out,
            counters: &self.counters,
        }
    }

    fn make_ref(&mut self) -> String {
        self.refs.next()
    }

    fn send(&mut self, msg: Message) -> bool {
        match &self.writer {
            Some(w) if w.send(msg).is_ok() => {
                self.counters.messages_out.fetch_add(1, Ordering::Relaxed);
                true
            }
            _ => false,
        }
    }

    fn send_frame(&mut self, frame: &Frame) -> bool {
        let text = frame.encode(self.vsn);
        self.send(Message::text(text))
    }

    fn emit(&mut self, channel: Option<ChannelId>, event: Event) {
        self.out.emit(channel, event);
    }

    /// Hands what the machines produced to the writer and the dispatch queue.
    fn flush(&mut self) {
        for t in std::mem::take(&mut self.out.transmits) {
            let msg = match t {
                Transmit::Text(s) => Message::text(s),
                Transmit::Binary(b) => Message::binary(b),
            };
            self.send(msg);
        }
        for e in std::mem::take(&mut self.out.emits) {
            match e {
                Emit::Event(channel, event) => self.dispatcher.push(channel, event),
                Emit::RemoveChannel(id) => self.dispatcher.push_remove_channel(id),
            }
        }
    }
}

type TokenResult = Result<Option<String>, String>;
/// A connect attempt's socket, plus the token provider's answer when there is a provider.
type ConnectOutcome = (Result<WsStream, Error>, Option<TokenResult>);
type Connecting = JoinHandle<Box<ConnectOutcome>>;

enum Phase {
    /// Not connected, not trying.
    Idle,
    /// Waiting before the next attempt.
    Waiting(Instant),
    Connecting(Connecting),
    Open(OpenSocket),
}

struct OpenSocket {
    reader: SplitStream<WsStream>,
    next_heartbeat: Instant,
    pending_heartbeat: Option<(String, Instant)>,
    /// The next heartbeat is a link check: its reply is awaited for at most [`PROBE`].
    probe: bool,
}

/// How long a link check (network change, foreground) waits for its heartbeat reply.
const PROBE: Duration = Duration::from_secs(5);
/// A connect attempt older than this is restarted by a link check.
const PROBE_AGE: Duration = Duration::from_secs(1);

enum SocketEvent {
    Connected(Result<Box<ConnectOutcome>, tokio::task::JoinError>),
    Message(Option<Result<Message, tokio_tungstenite::tungstenite::Error>>),
}

async fn socket_event(phase: &mut Phase) -> SocketEvent {
    match phase {
        Phase::Connecting(handle) => SocketEvent::Connected(handle.await),
        Phase::Open(open) => SocketEvent::Message(open.reader.next().await),
        _ => std::future::pending().await,
    }
}

pub(crate) struct Task {
    ctx: Conn,
    channels: HashMap<ChannelId, ChannelMachine>,
    cmd_rx: mpsc::UnboundedReceiver<Command>,
    token_rx: mpsc::UnboundedReceiver<TokenResult>,
    token_tx: mpsc::UnboundedSender<TokenResult>,
    token_fetching: bool,
    phase: Phase,
    /// The application wants a connection (connect/subscribe, until disconnect).
    want: bool,
    attempt: usize,
    ws_url: String,
    tls: Arc<rustls::ClientConfig>,
    state_tx: watch::Sender<ConnectionState>,
    token_shared: Arc<Mutex<Option<String>>>,
    rng: u64,
    /// With a token provider: when to ask for a fresh token ahead of the JWT's `exp`.
    refresh_at: Option<Instant>,
    /// When the current connect attempt started.
    connect_started: Instant,
}

impl Task {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        opts: Arc<ClientOptions>,
        ws_url: String,
        tls: Arc<rustls::ClientConfig>,
        dispatcher: Arc<Dispatcher>,
        state_tx: watch::Sender<ConnectionState>,
        token_shared: Arc<Mutex<Option<String>>>,
        counters: Arc<Counters>,
        cmd_rx: mpsc::UnboundedReceiver<Command>,
    ) -> Task {
        let (token_tx, token_rx) = mpsc::unbounded_channel();
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0x9E37_79B9);
        Task {
            ctx: Conn {
                vsn: opts.vsn,
                token: opts.access_token.clone(),
                opts,
                dispatcher,
                refs: Refs::default(),
                out: Outbox::default(),
                writer: None,
                counters,
            },
            channels: HashMap::new(),
            cmd_rx,
            token_rx,
            token_tx,
            token_fetching: false,
            phase: Phase::Idle,
            want: false,
            attempt: 0,
            ws_url,
            tls,
            state_tx,
            token_shared,
            rng: seed | 1,
            refresh_at: None,
            connect_started: Instant::now(),
        }
    }

    pub(crate) async fn run(mut self) {
        // One timer for the task's lifetime, moved only when the next deadline changes: a
        // fresh `sleep_until` per turn re-registered the timer (and woke the time driver
        // through its eventfd) for every received frame.
        let timer = tokio::time::sleep_until(far_future());
        tokio::pin!(timer);
        let mut armed: Option<Instant> = None;
        loop {
            let deadline = self.next_deadline();
            if deadline != armed {
                timer.as_mut().reset(deadline.unwrap_or_else(far_future));
                armed = deadline;
            }
            tokio::select! {
                cmd = self.cmd_rx.recv() => match cmd {
                    Some(Command::Shutdown) | None => break,
                    Some(cmd) => self.on_command(cmd),
                },
                ev = socket_event(&mut self.phase) => match ev {
                    SocketEvent::Connected(res) => self.on_connected(res),
                    SocketEvent::Message(msg) => self.on_message(msg),
                },
                Some(token) = self.token_rx.recv() => self.on_token(token),
                _ = &mut timer, if armed.is_some() => {
                    armed = None;
                    self.on_timers()
                }
            }
            self.ctx.flush();
        }
        self.shutdown();
    }

    fn set_state(&mut self, state: ConnectionState, reason: Option<String>) {
        let changed = self.state_tx.send_if_modified(|s| {
            let changed = *s != state;
            *s = state;
            changed
        });
        self.ctx.counters.set_outage(
            state == ConnectionState::Connecting,
            std::time::Instant::now(),
        );
        if changed || reason.is_some() {
            self.ctx
                .emit(None, Event::ConnectionStatus { state, reason });
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        let socket = match &self.phase {
            Phase::Waiting(at) => Some(*at),
            Phase::Open(open) => Some(open.next_heartbeat),
            _ => None,
        };
        self.channels
            .values()
            .filter_map(|c| c.deadline().map(Instant::from_std))
            .chain(socket)
            .chain(self.refresh_at)
            .min()
    }

    fn on_command(&mut self, cmd: Command) {
        let now = Instant::now();
        match cmd {
            Command::Connect => self.want_connection(),
            Command::Disconnect => {
                self.want = false;
                self.close_socket("disconnect requested", true);
                self.phase = Phase::Idle;
                self.set_state(ConnectionState::Disconnected, None);
            }
            Command::Shutdown => {}
            Command::SetAuth(token) => self.set_token(token),
            Command::CheckLink => self.check_link(now),
            Command::Foregrounded => {
                self.check_link(now);
                // The token may have expired while the device slept.
                self.start_token_fetch(true);
            }
            Command::Subscribe(config) => {
                let id = config.id;
                let mut machine = ChannelMachine::new(config);
                machine.join(&mut self.ctx.ctx(), now.into_std());
                self.channels.insert(id, machine);
                self.want_connection();
            }
            Command::Unsubscribe(id, reply) => match self.channels.get_mut(&id) {
                Some(m) => {
                    if m.leave(&mut self.ctx.ctx(), reply, now.into_std()) == After::Remove {
                        self.remove_channel(id);
                    }
                }
                None => {
                    let _ = reply.send(Ok(()));
                }
            },
            Command::Push(id, op, reply) => match self.channels.get_mut(&id) {
                Some(m) => m.push(&mut self.ctx.ctx(), op, reply, now.into_std()),
                None => {
                    let _ = reply.send(Err(Error::NotConnected));
                }
            },
        }
    }

    /// Heartbeat now and give the reply [`PROBE`] (at most one interval); reconnect at once
    /// when waiting.
    fn check_link(&mut self, now: Instant) {
        let probe = self.ctx.opts.heartbeat_interval.min(PROBE);
        match &mut self.phase {
            Phase::Waiting(at) => *at = now,
            // An attempt in flight for a while may be stuck on the old route: start over on
            // the new one (a young attempt is left alone, so flapping cannot starve it).
            Phase::Connecting(h) if now - self.connect_started >= probe.min(PROBE_AGE) => {
                h.abort();
                self.start_connect();
            }
            Phase::Open(open) => {
                if open.pending_heartbeat.is_none() {
                    open.next_heartbeat = now;
                    open.probe = true;
                } else {
                    open.next_heartbeat = open.next_heartbeat.min(now + probe);
                }
            }
            _ => {}
        }
    }

    /// Plans the next provider call ahead of the current token's expiry.
    fn schedule_refresh(&mut self) {
        self.refresh_at = None;
        if self.ctx.opts.token_provider.is_none() {
            return;
        }
        let Some(left) = self.ctx.token.as_deref().and_then(crate::token::time_left) else {
            return;
        };
        // An expired token (the provider had nothing better) is asked about again each second.
        let after = crate::token::refresh_after(left, self.ctx.opts.token_refresh_margin)
            .max(Duration::from_secs(1));
        self.refresh_at = Some(Instant::now() + after);
    }

    fn remove_channel(&mut self, id: ChannelId) {
        if let Some(m) = self.channels.remove(&id) {
            self.ctx.counters.forget_channel(m.topic());
            self.ctx.out.emits.push(Emit::RemoveChannel(id));
        }
    }

    fn set_token(&mut self, token: Option<String>) {
        if self.ctx.token == token {
            return;
        }
        self.ctx.token = token.clone();
        *self.token_shared.lock() = token;
        for m in self.channels.values_mut() {
            m.send_token(&mut self.ctx.ctx());
        }
    }

    fn want_connection(&mut self) {
        self.want = true;
        if matches!(self.phase, Phase::Idle) {
            self.start_connect();
        }
    }

    fn start_connect(&mut self) {
        self.connect_started = Instant::now();
        self.set_state(ConnectionState::Connecting, None);
        let url = self.ws_url.clone();
        let headers = self.ctx.opts.headers.clone();
        let tls = self.tls.clone();
        let timeout = self.ctx.opts.push_timeout;
        let provider = self.ctx.opts.token_provider.clone();
        self.phase = Phase::Connecting(tokio::spawn(async move {
            // The provider is user code: it runs on a blocking-pool thread, not here.
            let token = match provider {
                Some(p) => Some(
                    tokio::task::spawn_blocking(move || p.token())
                        .await
                        .unwrap_or_else(|_| Err("token provider panicked".into())),
                ),
                None => None,
            };
            Box::new((
                transport::connect_ws(&url, &headers, tls, timeout).await,
                token,
            ))
        }));
    }

    fn on_connected(&mut self, res: Result<Box<ConnectOutcome>, tokio::task::JoinError>) {
        let (ws, token) = match res {
            Ok(r) => *r,
            Err(e) => (Err(Error::Io(format!("connect task failed: {e}"))), None),
        };
        match token {
            Some(Ok(Some(t))) => self.set_token(Some(t)),
            Some(Ok(None)) => {}
            Some(Err(e)) => self.ctx.emit(
                None,
                Event::Error {
                    message: format!("token provider: {e}"),
                },
            ),
            None => {}
        }
        self.schedule_refresh();
        let ws = match ws {
            Ok(ws) => ws,
            Err(e) => {
                self.ctx.emit(
                    None,
                    Event::Error {
                        message: format!("connect failed: {e}"),
                    },
                );
                self.schedule_reconnect();
                return;
            }
        };
        if !self.want {
            self.phase = Phase::Idle;
            return;
        }
        let (mut sink, reader) = ws.split();
        let (tx, mut rx) = mpsc::unbounded_channel::<Message>();
        tokio::spawn(async move {
            while let Some(msg) = rx.recv().await {
                let closing = matches!(msg, Message::Close(_));
                if sink.send(msg).await.is_err() || closing {
                    break;
                }
            }
            let _ = sink.close().await;
        });
        self.ctx.writer = Some(tx);
        let c = &self.ctx.counters;
        if c.connects.fetch_add(1, Ordering::Relaxed) > 0 {
            c.reconnects.fetch_add(1, Ordering::Relaxed);
        }
        self.attempt = 0;
        let now = Instant::now();
        self.phase = Phase::Open(OpenSocket {
            reader,
            next_heartbeat: now + self.ctx.opts.heartbeat_interval,
            pending_heartbeat: None,
            probe: false,
        });
        self.set_state(ConnectionState::Connected, None);
        for m in self.channels.values_mut() {
            m.on_socket_open(&mut self.ctx.ctx(), now.into_std());
        }
    }

    fn schedule_reconnect(&mut self) {
        if !self.want {
            self.phase = Phase::Idle;
            self.set_state(ConnectionState::Disconnected, None);
            return;
        }
        let delays = &self.ctx.opts.reconnect_delays;
        let base = delays[self.attempt.min(delays.len() - 1)];
        self.attempt += 1;
        let jitter = self.ctx.opts.reconnect_jitter.clamp(0.0, 1.0);
        let factor = 1.0 + jitter * (2.0 * self.random() - 1.0);
        self.phase = Phase::Waiting(Instant::now() + base.mul_f64(factor.max(0.0)));
        self.set_state(ConnectionState::Connecting, None);
    }

    fn random(&mut self) -> f64 {
        // xorshift64: enough to spread reconnects; not for anything secret.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        (self.rng >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Closes the socket (sending a close frame when we still can) and errors the channels.
    fn close_socket(&mut self, reason: &str, send_close: bool) {
        if let Phase::Connecting(h) = &self.phase {
            h.abort();
        }
        if let Some(w) = self.ctx.writer.take() {
            if send_close {
                let _ = w.send(Message::Close(Some(CloseFrame {
                    code: CloseCode::Normal,
                    reason: reason.to_owned().into(),
                })));
            }
        }
        let now = std::time::Instant::now();
        let mut removed = Vec::new();
        for (id, m) in self.channels.iter_mut() {
            if m.on_socket_closed(&mut self.ctx.ctx(), reason, now) == After::Remove {
                removed.push(*id);
            }
        }
        for id in removed {
            self.remove_channel(id);
        }
    }

    fn on_message(&mut self, msg: Option<Result<Message, tokio_tungstenite::tungstenite::Error>>) {
        let reason = match msg {
            Some(Ok(Message::Text(text))) => {
                self.ctx
                    .counters
                    .messages_in
                    .fetch_add(1, Ordering::Relaxed);
                if self.ctx.vsn == Vsn::V2 && self.fast_broadcast(text.as_str()) {
                    return;
                }
                match Frame::decode(self.ctx.vsn, text.as_str()) {
                    Ok(frame) => self.on_frame(frame),
                    Err(e) => self.ctx.emit(
                        None,
                        Event::Error {
                            message: e.to_string(),
                        },
                    ),
                }
                return;
            }
            Some(Ok(Message::Binary(bytes))) => {
                self.ctx
                    .counters
                    .messages_in
                    .fetch_add(1, Ordering::Relaxed);
                match BinaryFrame::decode_from_server(&bytes) {
                    Ok(frame) => self.on_binary(frame),
                    Err(e) => self.ctx.emit(
                        None,
                        Event::Error {
                            message: e.to_string(),
                        },
                    ),
                }
                return;
            }
            Some(Ok(Message::Close(frame))) => match frame {
                Some(f) => format!("closed by server ({}): {}", u16::from(f.code), f.reason),
                None => "closed by server".to_owned(),
            },
            Some(Ok(_)) => return, // ping/pong are handled by tungstenite
            Some(Err(e)) => format!("connection lost: {e}"),
            None => "connection lost".to_owned(),
        };
        self.connection_lost(&reason);
    }

    fn connection_lost(&mut self, reason: &str) {
        self.close_socket(reason, true);
        self.set_state(ConnectionState::Connecting, Some(reason.to_owned()));
        self.schedule_reconnect();
    }

    fn on_frame(&mut self, frame: Frame) {
        let now = std::time::Instant::now();
        if frame.topic == PHOENIX_TOPIC {
            if frame.event == event::REPLY {
                self.on_heartbeat_reply(&frame);
            }
            return;
        }
        let ids = self.channels_of(&frame.topic);
        self.deliver(ids, frame, |m, ctx, f| m.on_frame(ctx, f, now));
        self.start_token_fetch(false);
    }

    /// Delivers a fan-out JSON broadcast (`[null,null,topic,"broadcast",{…}]`, the bulk of
    /// inbound traffic) without building the envelope's `Value` tree: about ten allocations
    /// fewer per message. Returns false, having done nothing, for any other frame; those (and
    /// odd shapes such as duplicate keys or extra elements) take the general path.
    fn fast_broadcast(&mut self, text: &str) -> bool {
        let Some(b) = FanoutBroadcast::decode(text) else {
            return false;
        };
        let parse = |raw: Option<&serde_json::value::RawValue>| {
            raw.map(|r| serde_json::from_str::<serde_json::Value>(r.get()))
                .transpose()
        };
        let (Ok(payload), Ok(meta)) = (parse(b.payload), parse(b.meta)) else {
            return false;
        };
        let ids = self.channels_of(&b.topic);
        let event = b.event.map(Cow::into_owned).unwrap_or_default();
        self.deliver(
            ids,
            (event, payload.unwrap_or_default(), meta),
            |m, ctx, (event, payload, meta)| m.on_broadcast(ctx, event, payload, meta),
        );
        true
    }

    fn on_binary(&mut self, frame: BinaryFrame) {
        let topic = match &frame {
            BinaryFrame::Push { topic, .. }
            | BinaryFrame::Reply { topic, .. }
            | BinaryFrame::Broadcast { topic, .. }
            | BinaryFrame::UserBroadcastPush { topic, .. }
            | BinaryFrame::UserBroadcast { topic, .. } => topic,
        };
        let now = std::time::Instant::now();
        let ids = self.channels_of(topic);
        self.deliver(ids, frame, |m, ctx, f| m.on_binary(ctx, f, now));
    }

    /// The channels joined (or joining) to `topic`: usually one, two while an old channel of
    /// that topic is still leaving.
    fn channels_of(&self, topic: &str) -> Vec<ChannelId> {
        self.channels
            .iter()
            .filter(|(_, m)| m.topic() == topic)
            .map(|(id, _)| *id)
            .collect()
    }

    /// Hands `item` to each of `ids` through `handle`, then removes the channels that asked
    /// to go. Only a topic joined twice needs copies: the last channel takes the original (a
    /// deep clone per broadcast was a hot spot).
    fn deliver<T: Clone>(
        &mut self,
        ids: Vec<ChannelId>,
        item: T,
        mut handle: impl FnMut(&mut ChannelMachine, &mut Ctx<'_>, T) -> After,
    ) {
        let last = ids.len().saturating_sub(1);
        let mut item = Some(item);
        let mut removed = Vec::new();
        for (i, id) in ids.into_iter().enumerate() {
            let it = if i == last { item.take() } else { item.clone() };
            if let (Some(m), Some(it)) = (self.channels.get_mut(&id), it) {
                if handle(m, &mut self.ctx.ctx(), it) == After::Remove {
                    removed.push(id);
                }
            }
        }
        for id in removed {
            self.remove_channel(id);
        }
    }

    fn on_heartbeat_reply(&mut self, frame: &Frame) {
        let Phase::Open(open) = &mut self.phase else {
            return;
        };
        let Some((r, sent)) = &open.pending_heartbeat else {
            return;
        };
        if frame.r#ref.as_deref() != Some(r.as_str()) {
            return;
        }
        let now = Instant::now();
        let rtt = now - *sent;
        open.pending_heartbeat = None;
        open.next_heartbeat = now + self.ctx.opts.heartbeat_interval;
        let status = if frame.reply_status() == Some("ok") {
            HeartbeatStatus::Ok
        } else {
            HeartbeatStatus::Error
        };
        self.ctx.counters.record_rtt(rtt);
        self.ctx.emit(
            None,
            Event::Heartbeat {
                status,
                rtt: Some(rtt),
            },
        );
    }

    fn on_timers(&mut self) {
        let now = Instant::now();
        match &mut self.phase {
            Phase::Waiting(at) if *at <= now => self.start_connect(),
            Phase::Open(open) if open.next_heartbeat <= now => {
                if open.pending_heartbeat.is_some() {
                    self.ctx.emit(
                        None,
                        Event::Heartbeat {
                            status: HeartbeatStatus::Timeout,
                            rtt: None,
                        },
                    );
                    self.connection_lost("heartbeat timeout");
                } else {
                    let r = self.ctx.make_ref();
                    let interval = self.ctx.opts.heartbeat_interval;
                    if let Phase::Open(open) = &mut self.phase {
                        open.pending_heartbeat = Some((r.clone(), now));
                        let wait = if open.probe {
                            interval.min(PROBE)
                        } else {
                            interval
                        };
                        open.probe = false;
                        open.next_heartbeat = now + wait;
                    }
                    self.ctx.send_frame(&Frame::heartbeat(r));
                    self.ctx.emit(
                        None,
                        Event::Heartbeat {
                            status: HeartbeatStatus::Sent,
                            rtt: None,
                        },
                    );
                    self.start_token_fetch(true);
                }
            }
            _ => {}
        }
        if self.refresh_at.is_some_and(|at| at <= now) {
            // on_token plans the next one.
            self.refresh_at = None;
            self.start_token_fetch(true);
        }
        let std_now = now.into_std();
        let mut removed = Vec::new();
        for (id, m) in self.channels.iter_mut() {
            if m.deadline().is_some_and(|d| d <= std_now)
                && m.on_timer(&mut self.ctx.ctx(), std_now) == After::Remove
            {
                removed.push(*id);
            }
        }
        for id in removed {
            self.remove_channel(id);
        }
        self.start_token_fetch(false);
    }

    /// Channels whose rejoin is due wait for one provider call, then all rejoin. `refresh`
    /// asks anyway (on each heartbeat, as realtime-js): a changed token is pushed to joined
    /// channels as `access_token`.
    fn start_token_fetch(&mut self, refresh: bool) {
        if self.token_fetching
            || !(refresh || self.channels.values().any(ChannelMachine::awaiting_token))
        {
            return;
        }
        let Some(provider) = self.ctx.opts.token_provider.clone() else {
            return;
        };
        self.token_fetching = true;
        let tx = self.token_tx.clone();
        tokio::spawn(async move {
            let r = tokio::task::spawn_blocking(move || provider.token())
                .await
                .unwrap_or_else(|_| Err("token provider panicked".into()));
            let _ = tx.send(r);
        });
    }

    fn on_token(&mut self, token: Result<Option<String>, String>) {
        self.token_fetching = false;
        match token {
            Ok(Some(t)) => self.set_token(Some(t)),
            Ok(None) => {}
            Err(e) => self.ctx.emit(
                None,
                Event::Error {
                    message: format!("token provider: {e}"),
                },
            ),
        }
        self.schedule_refresh();
        let now = std::time::Instant::now();
        for m in self.channels.values_mut() {
            m.on_token_ready(&mut self.ctx.ctx(), now);
        }
    }

    fn shutdown(&mut self) {
        self.want = false;
        self.close_socket("shutdown", true);
        for (_, mut m) in self.channels.drain() {
            m.on_shutdown();
        }
        self.ctx.flush();
        self.phase = Phase::Idle;
        self.state_tx.send_replace(ConnectionState::ShutDown);
        self.ctx.dispatcher.close(Some(Event::ConnectionStatus {
            state: ConnectionState::ShutDown,
            reason: None,
        }));
    }
}

/// A deadline that never comes (the timer is disabled while nothing is due).
fn far_future() -> Instant {
    Instant::now() + std::time::Duration::from_secs(86_400 * 365)
}
