//! One channel's state machine: sans-IO. Inputs are frames for its topic, timer ticks and
//! commands (push, leave, socket open/closed, token changes); outputs are frames and events
//! queued on the [`Ctx`]'s outbox, the published [`ChannelSnapshot`], and [`ChannelMachine::deadline`].
//! It reads no clock (every input carries `now`) and owns no socket.
//!
//! States and reactions follow phoenix.js/realtime-js (protocol reference §10): join with a
//! fresh ref (= join_ref), buffer pushes until joined, rejoin on the schedule after errors,
//! stop for good on `phx_close`. Each state carries the data that only it needs, so a deadline
//! exists only in the state it belongs to.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use serde_json::{json, Value};
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::Bytes;

use super::gap::{Admit, GapFill, WallClock};
use super::outbox::{Ctx, Reply};
use super::snapshot::{ChannelSnapshot, StatusSnap};
use crate::error::{is_token_rejection, reason_kind, Error, ErrorKind};
use crate::event::{
    Broadcast, ChannelId, ChannelState, Event, Payload, PresenceEvent, SubscribeStatus,
};
use crate::incoming::{RawBroadcast, RawPayload};
use crate::options::ChannelOptions;
use crate::postgres::{self, PostgresChangesFilter};
use crate::presence::{Change, Presence};
use crate::protocol::{
    event, replication_status, BinaryFrame, BroadcastConfig, BroadcastMeta, BroadcastPayload,
    Frame, JoinConfig, JoinPayload, Persist, PresenceConfig, ReplayConfig, Vsn,
};

/// realtime-js caps each channel's push buffer at 100, dropping the oldest.
pub(crate) const PUSH_BUFFER: usize = 100;

/// A channel message that expects (or may expect) a reply.
#[derive(Debug, Clone)]
pub(crate) enum PushOp {
    Broadcast {
        event: String,
        payload: Payload,
        persist: Persist,
    },
    Track(Value),
    Untrack,
}

/// What a channel is joined with; fixed at `subscribe`.
pub(crate) struct ChannelConfig {
    pub id: ChannelId,
    pub topic: Arc<str>,
    pub options: ChannelOptions,
    pub bindings: Vec<PostgresChangesFilter>,
    pub presence_enabled: bool,
    /// Where the machine publishes its state for the handles.
    pub snapshot: Arc<ChannelSnapshot>,
    /// Unix time for replay's `since` (read by the handle at subscribe).
    pub clock: WallClock,
}

/// What the engine should do with the machine after an input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum After {
    Keep,
    /// The channel is over: the engine takes the machine out and calls
    /// [`ChannelMachine::finish`], which reports the one final CLOSED.
    Close(CloseReason),
}

/// Why a channel ended: the reason of its final CLOSED status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CloseReason {
    /// `unsubscribe()`.
    Left,
    /// `remove_channel()`.
    Removed,
    /// The client shut down (or was dropped).
    Shutdown,
    /// The server ended it, or refused it for good: its reason text, unchanged.
    Server(String),
}

impl CloseReason {
    /// The CLOSED status's reason text.
    pub(crate) fn text(&self) -> &str {
        match self {
            CloseReason::Left => super::snapshot::LEFT_REASON,
            CloseReason::Removed => super::snapshot::REMOVED_REASON,
            CloseReason::Shutdown => super::snapshot::SHUTDOWN_REASON,
            CloseReason::Server(reason) => reason,
        }
    }

    /// What pending pushes and waiters of the channel fail with.
    fn error(&self) -> Error {
        match self {
            CloseReason::Shutdown => Error::Shutdown,
            CloseReason::Server(reason) => Error::ChannelError(reason.clone()),
            other => Error::ChannelError(format!("channel closed: {}", other.text())),
        }
    }
}

/// When an errored channel tries to join again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rejoin {
    /// As soon as the socket is open.
    OnOpen,
    /// At this time (the rejoin schedule).
    At(Instant),
    /// Once the token provider answered (its call is due or running).
    AwaitingToken,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// Subscribed, no join sent yet: waits for the socket. Reports TIMED_OUT at `deadline`
    /// (the join timeout) if no socket opened by then, so nobody waits without a word.
    AwaitingSocket {
        deadline: Option<Instant>,
    },
    Joining {
        join_ref: String,
        deadline: Instant,
    },
    Joined {
        join_ref: String,
        /// Waiting for `Subscribed to PostgreSQL` before reporting SUBSCRIBED.
        pg_ready_deadline: Option<Instant>,
    },
    /// Lost its join (error reply, timeout, `phx_error`, socket loss). Frames of the lost
    /// join still count as current until the next join.
    Errored {
        join_ref: Option<String>,
        rejoin: Rejoin,
    },
    Leaving {
        join_ref: String,
        leave_ref: String,
        deadline: Instant,
        /// Why it leaves: the reason of the CLOSED that ends it.
        why: CloseReason,
    },
    Closed,
}

impl State {
    fn public(&self) -> ChannelState {
        match self {
            State::AwaitingSocket { .. } | State::Joining { .. } => ChannelState::Joining,
            State::Joined { .. } => ChannelState::Joined,
            State::Errored { .. } => ChannelState::Errored,
            State::Leaving { .. } => ChannelState::Leaving,
            State::Closed => ChannelState::Closed,
        }
    }

    /// The join ref frames are checked against (phoenix.js `isMember`).
    fn join_ref(&self) -> Option<&str> {
        match self {
            State::Joining { join_ref, .. }
            | State::Joined { join_ref, .. }
            | State::Leaving { join_ref, .. } => Some(join_ref),
            State::Errored { join_ref, .. } => join_ref.as_deref(),
            State::AwaitingSocket { .. } | State::Closed => None,
        }
    }

    fn deadline(&self) -> Option<Instant> {
        match self {
            State::Joining { deadline, .. } | State::Leaving { deadline, .. } => Some(*deadline),
            State::AwaitingSocket { deadline } => *deadline,
            State::Joined {
                pg_ready_deadline, ..
            } => *pg_ready_deadline,
            State::Errored {
                rejoin: Rejoin::At(at),
                ..
            } => Some(*at),
            _ => None,
        }
    }
}

struct Buffered {
    op: PushOp,
    reply: Reply,
    deadline: Instant,
}

/// Sent pushes waiting for their reply, by ref and by deadline.
#[derive(Default)]
struct Inflight {
    by_ref: HashMap<String, (Instant, u64)>,
    by_deadline: BTreeMap<(Instant, u64), (String, Reply)>,
    seq: u64,
}

impl Inflight {
    fn insert(&mut self, r: String, deadline: Instant, reply: Reply) {
        self.seq += 1;
        self.by_ref.insert(r.clone(), (deadline, self.seq));
        self.by_deadline.insert((deadline, self.seq), (r, reply));
    }

    fn remove(&mut self, r: &str) -> Option<Reply> {
        let key = self.by_ref.remove(r)?;
        self.by_deadline.remove(&key).map(|(_, reply)| reply)
    }

    fn first_deadline(&self) -> Option<Instant> {
        self.by_deadline.keys().next().map(|k| k.0)
    }

    /// Takes the pushes whose deadline is at or before `now`.
    fn expire(&mut self, now: Instant) -> Vec<Reply> {
        let mut out = Vec::new();
        while let Some(entry) = self.by_deadline.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let (r, reply) = entry.remove();
            self.by_ref.remove(&r);
            out.push(reply);
        }
        out
    }

    fn drain(&mut self) -> impl Iterator<Item = Reply> {
        self.by_ref.clear();
        std::mem::take(&mut self.by_deadline)
            .into_values()
            .map(|(_, reply)| reply)
    }
}

pub(crate) struct ChannelMachine {
    config: ChannelConfig,
    state: State,
    /// Position on the rejoin schedule; reset by a successful join.
    rejoin_attempt: usize,
    /// Consecutive join refusals for the token (reset by a successful join).
    auth_failures: u32,
    /// The next rejoin asks the token provider first (the token was refused, or the provider
    /// failed): other rejoins use the token in force.
    needs_token: bool,
    /// Pushes made before the join completed, oldest first (so deadlines ascend).
    buffer: VecDeque<Buffered>,
    inflight: Inflight,
    /// The server's id for each binding, from the last successful join.
    server_ids: Vec<Value>,
    presence: Presence,
    /// The last tracked presence meta, tracked again after every rejoin.
    tracked: Option<Value>,
    /// When a subscribed channel lost its join (for `Resumed{gap}`).
    lost_at: Option<Instant>,
    ever_subscribed: bool,
    /// The first join attempt not yet answered by SUBSCRIBED (join latency metric).
    join_started: Option<Instant>,
    /// The message of a server shutdown `system` error, reported with the `phx_close` after it.
    close_reason: Option<String>,
    /// `unsubscribe()` callers, answered when the channel is closed.
    leave_waiters: Vec<Reply>,
    /// With `auto_replay`: de-duplication and the replay of the last rejoin.
    /// Boxed: only `auto_replay` channels have one, and it is a fifth of a machine's size.
    gap: Option<Box<GapFill>>,
    /// The join in flight asks to replay the gap (its Resumed waits for the replay).
    gap_replay_sent: bool,
}

impl ChannelMachine {
    /// A machine for a subscribed channel; call [`join`](Self::join) next.
    pub(crate) fn new(config: ChannelConfig) -> Self {
        let gap = config
            .options
            .auto_replay
            .then(|| Box::new(GapFill::new(config.clock)));
        ChannelMachine {
            gap,
            gap_replay_sent: false,
            config,
            state: State::Closed,
            rejoin_attempt: 0,
            auth_failures: 0,
            needs_token: false,
            buffer: VecDeque::new(),
            inflight: Inflight::default(),
            server_ids: Vec::new(),
            presence: Presence::new(),
            tracked: None,
            lost_at: None,
            ever_subscribed: false,
            join_started: None,
            close_reason: None,
            leave_waiters: Vec::new(),
        }
    }

    pub(crate) fn id(&self) -> ChannelId {
        self.config.id
    }

    pub(crate) fn topic(&self) -> &str {
        &self.config.topic
    }

    pub(crate) fn topic_arc(&self) -> &Arc<str> {
        &self.config.topic
    }

    /// A rejoin is due and waits for the token provider's answer.
    pub(crate) fn awaiting_token(&self) -> bool {
        matches!(
            self.state,
            State::Errored {
                rejoin: Rejoin::AwaitingToken,
                ..
            }
        )
    }

    /// The earliest time [`on_timer`](Self::on_timer) has work to do.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        [
            self.state.deadline(),
            self.buffer.front().map(|b| b.deadline),
            self.inflight.first_deadline(),
            self.gap.as_deref().and_then(GapFill::deadline),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    fn set_state(&mut self, state: State) {
        let public = state.public();
        self.state = state;
        self.config.snapshot.set_state(public);
    }

    fn status(
        &self,
        ctx: &mut Ctx,
        status: SubscribeStatus,
        reason: Option<String>,
        kind: Option<ErrorKind>,
    ) {
        self.status_with_cause(ctx, status, reason, kind, None);
    }

    /// A status whose `cause` is the typed error behind it (a failed connect), for waiters.
    fn status_with_cause(
        &self,
        ctx: &mut Ctx,
        status: SubscribeStatus,
        reason: Option<String>,
        kind: Option<ErrorKind>,
        cause: Option<Error>,
    ) {
        self.config.snapshot.set_status(StatusSnap {
            status,
            reason: reason.clone(),
            kind,
            cause,
        });
        ctx.emit(
            Some(self.id()),
            Event::ChannelStatus {
                topic: self.topic().to_owned(),
                status,
                reason,
                error_kind: kind,
            },
        );
    }

    /// The replay a join asks for: the gap since the last delivery on a rejoin with
    /// `auto_replay` (`true`), else the channel's `replay` option, every time (as realtime-js).
    fn replay_config(&self) -> (Option<ReplayConfig>, bool) {
        let gap = self.gap.as_deref().filter(|_| self.ever_subscribed);
        match gap.and_then(GapFill::rejoin_replay) {
            Some(r) => (Some(r), true),
            None => (self.config.options.replay.map(|r| r.to_config()), false),
        }
    }

    fn join_payload(&self, ctx: &Ctx, replay: Option<ReplayConfig>) -> JoinPayload {
        let o = &self.config.options;
        JoinPayload {
            config: Some(JoinConfig {
                broadcast: BroadcastConfig {
                    ack: o.broadcast_ack,
                    self_: o.broadcast_self,
                    replay,
                    replication_ready: o.replication_ready,
                },
                presence: PresenceConfig {
                    key: o.presence_key.clone(),
                    enabled: self.config.presence_enabled,
                },
                private: o.private,
                postgres_changes: self
                    .config
                    .bindings
                    .iter()
                    .map(PostgresChangesFilter::to_binding)
                    .collect(),
            }),
            access_token: ctx.token.map(str::to_owned),
            ..JoinPayload::default()
        }
    }

    /// Sends `phx_join` now if the socket is open; otherwise waits for it (a first join says
    /// TIMED_OUT after the join timeout if no socket opened by then).
    pub(crate) fn join(&mut self, ctx: &mut Ctx, now: Instant) {
        if !ctx.open {
            let next = match &self.state {
                State::Errored { join_ref, .. } => State::Errored {
                    join_ref: join_ref.clone(),
                    rejoin: Rejoin::OnOpen,
                },
                _ => State::AwaitingSocket {
                    deadline: Some(now + ctx.push_timeout()),
                },
            };
            self.set_state(next);
            return;
        }
        if let Some(failure) = ctx.token_error {
            // The provider failed and no token is in force: a join now would silently use the
            // API key's role instead of the user's. Say why, and ask the provider again on the
            // rejoin schedule.
            self.needs_token = true;
            self.lose_join(now);
            self.status(
                ctx,
                SubscribeStatus::ChannelError,
                Some(format!("token provider failed: {failure}")),
                Some(ErrorKind::Recoverable),
            );
            self.schedule_rejoin(ctx, now);
            return;
        }
        let r = ctx.refs.next();
        log::debug!("join {} (ref {r})", self.topic());
        self.presence.reset_pending();
        let (replay, gap_replay) = self.replay_config();
        self.gap_replay_sent = gap_replay;
        let frame = Frame::join(r.clone(), self.topic(), &self.join_payload(ctx, replay));
        ctx.send(&frame);
        self.join_started.get_or_insert(now);
        self.set_state(State::Joining {
            join_ref: r,
            deadline: now + ctx.push_timeout(),
        });
    }

    /// Joined or joining → errored: the bookkeeping shared by socket loss, `phx_error` and
    /// timeouts. The channel waits for the socket unless the caller schedules a rejoin.
    fn lose_join(&mut self, now: Instant) {
        // Lost again while its replay was arriving: the outage it reported goes on.
        if let Some(gap) = self.gap.as_deref_mut().and_then(GapFill::cancel) {
            self.lost_at = Some(now.checked_sub(gap).unwrap_or(now));
        }
        if matches!(self.state, State::Joined { .. }) && self.ever_subscribed {
            self.lost_at.get_or_insert(now);
        }
        let join_ref = self.state.join_ref().map(str::to_owned);
        self.set_state(State::Errored {
            join_ref,
            rejoin: Rejoin::OnOpen,
        });
    }

    fn schedule_rejoin(&mut self, ctx: &Ctx, now: Instant) {
        let delays = &ctx.opts.rejoin_delays;
        let d = delays[self.rejoin_attempt.min(delays.len() - 1)];
        self.rejoin_attempt += 1;
        if let State::Errored { rejoin, .. } = &mut self.state {
            *rejoin = Rejoin::At(now + d);
        }
    }

    fn report_subscribed(&mut self, ctx: &mut Ctx, now: Instant) {
        if let State::Joined {
            pg_ready_deadline, ..
        } = &mut self.state
        {
            *pg_ready_deadline = None;
        }
        if let Some(start) = self.join_started.take() {
            ctx.counters
                .record_join_latency(self.topic(), now.saturating_duration_since(start));
        }
        self.status(ctx, SubscribeStatus::Subscribed, None, None);
        if let Some(lost) = self.lost_at.take() {
            let gap = now.saturating_duration_since(lost);
            match self.gap.as_mut() {
                // Resumed waits for the replay of the gap, which follows the join reply.
                Some(fill) if self.gap_replay_sent => fill.start(gap, now),
                _ => self.resumed(ctx, gap, false),
            }
        }
        if let Some(fill) = &mut self.gap {
            fill.on_subscribed(now);
        }
        self.ever_subscribed = true;
    }

    fn resumed(&self, ctx: &mut Ctx, gap: std::time::Duration, filled: bool) {
        ctx.emit(
            Some(self.id()),
            Event::Resumed {
                topic: self.topic().to_owned(),
                gap,
                filled,
            },
        );
    }

    /// Gap fill's word on a received broadcast (`stored`: its meta, read when gap fill is
    /// on), whose delivery `deliver` emits; a duplicate is dropped. Reports `Resumed` where a
    /// pending replay ends.
    fn admit(
        &mut self,
        ctx: &mut Ctx,
        stored: Option<BroadcastMeta>,
        now: Instant,
        deliver: impl FnOnce(&mut Ctx),
    ) {
        let (Some(fill), Some(meta)) = (&mut self.gap, stored) else {
            return deliver(ctx);
        };
        let v = fill.admit(&meta, now);
        if let Some((gap, filled)) = v.resumed_before {
            self.resumed(ctx, gap, filled);
        }
        if v.admit == Admit::Deliver {
            deliver(ctx);
        }
        if let Some((gap, filled)) = v.resumed_after {
            self.resumed(ctx, gap, filled);
        }
    }

    fn fail_all(&mut self, err: Error) {
        for b in self.buffer.drain(..) {
            let _ = b.reply.send(Err(err.clone()));
        }
        for reply in self.inflight.drain() {
            let _ = reply.send(Err(err.clone()));
        }
    }

    /// The end of the channel, and the only place that reports CLOSED: it takes the machine
    /// by value, so it runs at most once, and the engine calls it for every machine it drops
    /// (on [`After::Close`] and at shutdown), so it runs at least once. Fails pending pushes,
    /// answers `unsubscribe()` callers and publishes the final state before the app hears.
    pub(crate) fn finish(mut self, ctx: &mut Ctx, why: CloseReason) {
        log::debug!("{} closed ({})", self.topic(), why.text());
        self.set_state(State::Closed);
        self.fail_all(why.error());
        let cause = match &why {
            CloseReason::Shutdown => Some(Error::Shutdown),
            _ => None,
        };
        self.status_with_cause(
            ctx,
            SubscribeStatus::Closed,
            Some(why.text().to_owned()),
            None,
            cause,
        );
        for w in self.leave_waiters.drain(..) {
            let _ = w.send(Ok(()));
        }
    }

    /// The connection attempt failed with `ctx.cause`: a channel waiting for its first socket
    /// says so now (CHANNEL_ERROR with the cause; the client keeps reconnecting and joins when
    /// the server comes back), as realtime-js reports socket errors to joining channels.
    pub(crate) fn on_connect_failed(&mut self, ctx: &mut Ctx) {
        if !matches!(self.state, State::AwaitingSocket { .. }) {
            return;
        }
        self.set_state(State::Errored {
            join_ref: None,
            rejoin: Rejoin::OnOpen,
        });
        let cause = ctx.cause.cloned();
        let reason = match &cause {
            Some(e) => format!("could not connect: {e}"),
            None => "could not connect".to_owned(),
        };
        self.status_with_cause(
            ctx,
            SubscribeStatus::ChannelError,
            Some(reason),
            Some(ErrorKind::Recoverable),
            cause,
        );
    }

    /// A push from the application: sent when joined, else buffered until the join.
    pub(crate) fn push(&mut self, ctx: &mut Ctx, op: PushOp, reply: Reply, now: Instant) {
        match self.state {
            State::Joined { .. } if ctx.open => {
                self.send_op(ctx, op, reply, now + ctx.push_timeout());
                return;
            }
            State::Leaving { .. } | State::Closed => {
                let _ = reply.send(Err(Error::NotConnected));
                return;
            }
            _ => {}
        }
        if self.buffer.len() >= PUSH_BUFFER {
            if let Some(old) = self.buffer.pop_front() {
                let _ = old.reply.send(Err(Error::InvalidArgument(
                    "push buffer full (100): oldest push dropped".into(),
                )));
            }
        }
        self.buffer.push_back(Buffered {
            op,
            reply,
            deadline: now + ctx.push_timeout(),
        });
    }

    fn send_op(&mut self, ctx: &mut Ctx, op: PushOp, reply: Reply, deadline: Instant) {
        let r = ctx.refs.next();
        let jr = self.state.join_ref().map(str::to_owned);
        let expects_reply = match &op {
            PushOp::Broadcast { .. } => self.config.options.broadcast_ack,
            PushOp::Track(_) | PushOp::Untrack => true,
        };
        match &op {
            PushOp::Track(meta) => self.tracked = Some(meta.clone()),
            PushOp::Untrack => self.tracked = None,
            PushOp::Broadcast { .. } => {}
        }
        let sent = match op {
            PushOp::Broadcast {
                event: ev,
                payload,
                persist,
            } => match (ctx.vsn(), payload) {
                (Vsn::V2, payload) => {
                    let payload = match payload {
                        Payload::Json(v) => BroadcastPayload::Json(v.to_string()),
                        Payload::Binary(b) => BroadcastPayload::Binary(b),
                    };
                    let frame =
                        BinaryFrame::user_broadcast_push(jr, r.clone(), self.topic(), ev, payload)
                            .with_persist(persist);
                    match frame.encode() {
                        Ok(bytes) => ctx.send_binary(bytes),
                        Err(field) => {
                            let _ = reply.send(Err(Error::InvalidArgument(format!(
                                "{field} longer than 255 bytes"
                            ))));
                            return;
                        }
                    }
                }
                (Vsn::V1, Payload::Json(v)) => ctx.send(
                    &Frame::broadcast(jr, r.clone(), self.topic(), &ev, v).with_persist(persist),
                ),
                (Vsn::V1, Payload::Binary(_)) => {
                    let _ = reply.send(Err(Error::InvalidArgument(
                        "binary payloads need vsn 2.0.0".into(),
                    )));
                    return;
                }
            },
            PushOp::Track(meta) => {
                ctx.send(&Frame::presence_track(jr, r.clone(), self.topic(), meta))
            }
            PushOp::Untrack => ctx.send(&Frame::presence_untrack(jr, r.clone(), self.topic())),
        };
        if !sent {
            let _ = reply.send(Err(Error::NotConnected));
        } else if expects_reply {
            self.inflight.insert(r, deadline, reply);
        } else {
            let _ = reply.send(Ok(()));
        }
    }

    /// `unsubscribe()` (`why` = left) or `remove_channel()` (removed): leaves, answering
    /// `waiter` once closed, or closes at once when there is no join to leave.
    pub(crate) fn leave(
        &mut self,
        ctx: &mut Ctx,
        waiter: Reply,
        why: CloseReason,
        now: Instant,
    ) -> After {
        self.leave_waiters.push(waiter);
        let join_ref = match &mut self.state {
            State::Leaving { why: leaving, .. } => {
                // A removal while leaving says "removed" at the end.
                if why == CloseReason::Removed {
                    *leaving = why;
                }
                return After::Keep;
            }
            State::Joined { join_ref, .. } | State::Joining { join_ref, .. } if ctx.open => {
                join_ref.clone()
            }
            _ => return After::Close(why),
        };
        let r = ctx.refs.next();
        ctx.send(&Frame::leave(
            Some(join_ref.clone()),
            r.clone(),
            self.topic(),
        ));
        self.set_state(State::Leaving {
            join_ref,
            leave_ref: r,
            deadline: now + ctx.push_timeout(),
            why,
        });
        After::Keep
    }

    /// Why a leaving channel leaves (left when not leaving).
    fn leaving_why(&self) -> CloseReason {
        match &self.state {
            State::Leaving { why, .. } => why.clone(),
            _ => CloseReason::Left,
        }
    }

    /// The socket opened: join if the channel wants to be joined (an errored channel does
    /// not wait for its rejoin timer then).
    pub(crate) fn on_socket_open(&mut self, ctx: &mut Ctx, now: Instant) {
        if matches!(
            self.state,
            State::AwaitingSocket { .. } | State::Errored { .. }
        ) {
            self.join(ctx, now);
        }
    }

    /// The socket closed (or was closed by us): everything in flight is lost.
    pub(crate) fn on_socket_closed(&mut self, ctx: &mut Ctx, reason: &str, now: Instant) -> After {
        for reply in self.inflight.drain() {
            let _ = reply.send(Err(Error::NotConnected));
        }
        match self.state {
            State::Leaving { .. } => After::Close(self.leaving_why()),
            State::Joined { .. } | State::Joining { .. } => {
                let was_joined = matches!(self.state, State::Joined { .. });
                self.lose_join(now);
                if was_joined {
                    self.status(
                        ctx,
                        SubscribeStatus::ChannelError,
                        Some(reason.to_owned()),
                        Some(ErrorKind::Recoverable),
                    );
                }
                After::Keep
            }
            _ => After::Keep,
        }
    }

    /// Work that is due at `now` (see [`deadline`](Self::deadline)).
    pub(crate) fn on_timer(&mut self, ctx: &mut Ctx, now: Instant) -> After {
        match &self.state {
            State::Leaving { deadline, why, .. } if *deadline <= now => {
                return After::Close(why.clone())
            }
            State::AwaitingSocket {
                deadline: Some(deadline),
            } if *deadline <= now => {
                // No socket within the join timeout: say so (with the connect failure, if one is
                // known) and keep waiting for the socket without a deadline.
                self.set_state(State::AwaitingSocket { deadline: None });
                let cause = ctx.cause.cloned();
                let reason = match &cause {
                    Some(e) => format!("join timed out: could not connect: {e}"),
                    None => "join timed out: no connection to the server yet".to_owned(),
                };
                self.status_with_cause(
                    ctx,
                    SubscribeStatus::TimedOut,
                    Some(reason),
                    Some(ErrorKind::Recoverable),
                    cause,
                );
            }
            State::Joining { join_ref, deadline } if *deadline <= now => {
                // As phoenix.js: leave that join attempt, report TIMED_OUT, retry on schedule.
                let jr = join_ref.clone();
                let r = ctx.refs.next();
                ctx.send(&Frame::leave(Some(jr), r, self.topic()));
                self.lose_join(now);
                self.status(
                    ctx,
                    SubscribeStatus::TimedOut,
                    Some("join timed out".into()),
                    Some(ErrorKind::Recoverable),
                );
                self.schedule_rejoin(ctx, now);
            }
            _ => {}
        }
        let rejoin_due = matches!(
            self.state,
            State::Errored { rejoin: Rejoin::At(at), .. } if at <= now
        );
        if rejoin_due {
            // The provider is asked only when the token was the problem; other rejoins use the
            // token in force (refreshed ahead of its expiry anyway).
            if ctx.opts.token_provider.is_some() && self.needs_token {
                if let State::Errored { rejoin, .. } = &mut self.state {
                    *rejoin = Rejoin::AwaitingToken;
                }
            } else {
                self.join(ctx, now);
            }
        }
        if let State::Joined {
            pg_ready_deadline, ..
        } = &mut self.state
        {
            if pg_ready_deadline.is_some_and(|d| d <= now) {
                *pg_ready_deadline = None;
                self.status(
                    ctx,
                    SubscribeStatus::TimedOut,
                    Some("timed out waiting for `Subscribed to PostgreSQL`".into()),
                    Some(ErrorKind::Recoverable),
                );
            }
        }
        while self.buffer.front().is_some_and(|b| b.deadline <= now) {
            if let Some(b) = self.buffer.pop_front() {
                let _ = b.reply.send(Err(Error::Timeout));
            }
        }
        for reply in self.inflight.expire(now) {
            let _ = reply.send(Err(Error::Timeout));
        }
        if let Some((gap, filled)) = self.gap.as_mut().and_then(|g| g.on_timer(now)) {
            self.resumed(ctx, gap, filled);
        }
        After::Keep
    }

    /// The token provider answered: a rejoin that waited for it goes ahead.
    pub(crate) fn on_token_ready(&mut self, ctx: &mut Ctx, now: Instant) {
        if self.awaiting_token() {
            self.join(ctx, now);
        }
    }

    /// The access token changed: tell the server if joined (no reply is expected).
    pub(crate) fn send_token(&mut self, ctx: &mut Ctx) {
        let State::Joined { join_ref, .. } = &self.state else {
            return;
        };
        if let Some(t) = ctx.token {
            let r = ctx.refs.next();
            let frame = Frame::access_token(Some(join_ref.clone()), r, self.topic(), t);
            ctx.send(&frame);
        }
    }

    /// A broadcast for this topic whose payload is still text (the fan-out fast path): it
    /// goes to the dispatch queue as is, to be parsed there (see `crate::incoming`). The parts
    /// are slices of `frame` (or of copies, which are then copied into a buffer of their own).
    pub(crate) fn on_raw_broadcast(
        &mut self,
        ctx: &mut Ctx,
        frame: &Bytes,
        (event, payload, meta): (&str, RawPayload<'_>, Option<&str>),
        now: Instant,
    ) -> After {
        // Read only for gap fill: other channels leave `meta` as text.
        let stored = self
            .gap
            .is_some()
            .then(|| meta.map(BroadcastMeta::from_json).unwrap_or_default());
        let b = RawBroadcast::new(self.config.topic.clone(), frame, event, payload, meta);
        let id = self.id();
        self.admit(ctx, stored, now, |ctx| ctx.emit(Some(id), b));
        After::Keep
    }

    /// A kind-4 user broadcast: a JSON payload must be JSON (checked without building it), and
    /// empty metadata is none.
    pub(crate) fn on_user_broadcast(
        &mut self,
        ctx: &mut Ctx,
        frame: &Bytes,
        (event, payload, metadata): (&str, RawPayload<'_>, &str),
        now: Instant,
    ) -> After {
        if let RawPayload::Json(text) = payload {
            if let Err(e) = serde_json::from_str::<serde::de::IgnoredAny>(text) {
                ctx.emit(
                    None,
                    Event::Error {
                        message: format!(
                            "broadcast {event:?} on {}: invalid JSON payload: {e}",
                            self.topic()
                        ),
                    },
                );
                return After::Keep;
            }
        }
        let meta = (!metadata.is_empty()).then_some(metadata);
        self.on_raw_broadcast(ctx, frame, (event, payload, meta), now)
    }

    /// A JSON broadcast for this topic, already parsed (from a frame of the general path).
    pub(crate) fn on_broadcast(
        &mut self,
        ctx: &mut Ctx,
        event: String,
        payload: Value,
        meta: Option<Value>,
        now: Instant,
    ) -> After {
        let stored = self.gap.is_some().then(|| {
            meta.as_ref()
                .map(BroadcastMeta::from_value)
                .unwrap_or_default()
        });
        let b = Broadcast {
            topic: self.topic().to_owned(),
            event,
            payload: Payload::Json(payload),
            meta,
        };
        let id = self.id();
        self.admit(ctx, stored, now, |ctx| {
            ctx.emit(Some(id), Event::Broadcast(b))
        });
        After::Keep
    }

    /// A text frame for this topic.
    pub(crate) fn on_frame(&mut self, ctx: &mut Ctx, frame: Frame, now: Instant) -> After {
        if frame.event == event::REPLY {
            return self.on_reply(ctx, frame, now);
        }
        // Frames of an older join are outdated (phoenix.js `isMember`).
        if frame
            .join_ref
            .as_deref()
            .is_some_and(|jr| Some(jr) != self.state.join_ref())
        {
            return After::Keep;
        }
        match frame.event.as_str() {
            event::CLOSE => {
                if self.state == State::Closed {
                    return After::Keep;
                }
                if matches!(self.state, State::Leaving { .. }) {
                    // The server confirming our leave.
                    return After::Close(self.leaving_why());
                }
                let reason = self.close_reason.take();
                if let Some(r) = reason.as_deref().filter(|r| is_token_rejection(r)) {
                    // The server refused the token in force (expired, revoked, garbage):
                    // the distinct terminal status, then CLOSED.
                    self.status(
                        ctx,
                        SubscribeStatus::ChannelError,
                        Some(r.to_owned()),
                        Some(ErrorKind::Terminal),
                    );
                }
                After::Close(CloseReason::Server(
                    reason.unwrap_or_else(|| "closed by the server".to_owned()),
                ))
            }
            event::ERROR => {
                if !matches!(self.state, State::Joined { .. } | State::Joining { .. }) {
                    return After::Keep;
                }
                self.lose_join(now);
                let reason = frame
                    .payload
                    .get("reason")
                    .and_then(Value::as_str)
                    .unwrap_or("channel error (phx_error)")
                    .to_owned();
                self.status(
                    ctx,
                    SubscribeStatus::ChannelError,
                    Some(reason),
                    Some(ErrorKind::Recoverable),
                );
                self.schedule_rejoin(ctx, now);
                After::Keep
            }
            event::BROADCAST => {
                // The frame is ours: move the user payload out instead of deep-cloning it.
                let mut p = frame.payload;
                let event = p
                    .get("event")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                let payload = p.get_mut("payload").map(Value::take).unwrap_or(Value::Null);
                let meta = p.get_mut("meta").map(Value::take);
                self.on_broadcast(ctx, event, payload, meta, now)
            }
            event::PRESENCE_STATE => {
                let limits = ctx.opts.presence_limits();
                let changes =
                    self.presence
                        .apply_state(self.state.join_ref(), &frame.payload, limits);
                self.emit_presence(ctx, changes);
                After::Keep
            }
            event::PRESENCE_DIFF => {
                let limits = ctx.opts.presence_limits();
                let changes =
                    self.presence
                        .apply_diff(self.state.join_ref(), &frame.payload, limits);
                self.emit_presence(ctx, changes);
                After::Keep
            }
            event::POSTGRES_CHANGES => {
                if let Some(change) = postgres::route_change(
                    self.topic(),
                    &self.config.bindings,
                    &self.server_ids,
                    &frame.payload,
                ) {
                    ctx.emit(Some(self.id()), Event::PostgresChange(Box::new(change)));
                }
                After::Keep
            }
            event::SYSTEM => self.on_system(ctx, frame.payload, now),
            _ => After::Keep,
        }
    }

    fn on_system(&mut self, ctx: &mut Ctx, payload: Value, now: Instant) -> After {
        ctx.emit(
            Some(self.id()),
            Event::System {
                topic: self.topic().to_owned(),
                payload: payload.clone(),
            },
        );
        if let Some(ready) = replication_status(&payload) {
            self.config.snapshot.set_replication(ready);
        }
        let ext = payload.get("extension").and_then(Value::as_str);
        let status = payload.get("status").and_then(Value::as_str);
        if ext == Some("system") && status == Some("error") {
            // A shutdown message: a `phx_close` follows (protocol §5).
            self.close_reason = payload
                .get("message")
                .and_then(Value::as_str)
                .map(str::to_owned);
        }
        let waiting = matches!(
            self.state,
            State::Joined {
                pg_ready_deadline: Some(_),
                ..
            }
        );
        if ext == Some("postgres_changes") && waiting {
            if status == Some("ok") {
                self.report_subscribed(ctx, now);
            } else {
                if let State::Joined {
                    pg_ready_deadline, ..
                } = &mut self.state
                {
                    *pg_ready_deadline = None;
                }
                let msg = payload.get("message").map(|m| match m {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                });
                let kind = msg
                    .as_deref()
                    .map(reason_kind)
                    .unwrap_or(ErrorKind::Terminal);
                self.status(ctx, SubscribeStatus::ChannelError, msg, Some(kind));
            }
        }
        After::Keep
    }

    fn emit_presence(&mut self, ctx: &mut Ctx, changes: Vec<Change>) {
        if changes.iter().any(|c| !matches!(c, Change::Refused { .. })) {
            self.config.snapshot.set_presence(self.presence.state());
        }
        let topic = self.topic().to_owned();
        for c in changes {
            let ev = match c {
                Change::Sync => PresenceEvent::Sync {
                    topic: topic.clone(),
                },
                Change::Join { key, current, new } => PresenceEvent::Join {
                    topic: topic.clone(),
                    key,
                    current,
                    new,
                },
                Change::Leave { key, current, left } => PresenceEvent::Leave {
                    topic: topic.clone(),
                    key,
                    current,
                    left,
                },
                Change::Refused { reason } => {
                    log::warn!("{topic}: {reason}");
                    let message = format!("{topic}: {reason}");
                    ctx.emit(None, Event::Error { message });
                    continue;
                }
            };
            ctx.emit(Some(self.id()), Event::Presence(ev));
        }
    }

    fn on_reply(&mut self, ctx: &mut Ctx, frame: Frame, now: Instant) -> After {
        let Some(r) = frame.r#ref.as_deref() else {
            return After::Keep;
        };
        let ok = frame.reply_status() == Some("ok");
        let response = frame.reply_response().unwrap_or(&Value::Null);
        match &self.state {
            State::Leaving { leave_ref, why, .. } if leave_ref == r => {
                return After::Close(why.clone())
            }
            State::Joining { join_ref, .. } if join_ref == r => {
                return if ok {
                    self.on_join_ok(ctx, response, now)
                } else {
                    self.on_join_error(ctx, response, now)
                };
            }
            _ => {}
        }
        if let Some(reply) = self.inflight.remove(r) {
            let result = if ok {
                Ok(())
            } else {
                Err(Error::ChannelError(reason_text(response)))
            };
            let _ = reply.send(result);
        }
        After::Keep
    }

    fn on_join_ok(&mut self, ctx: &mut Ctx, response: &Value, now: Instant) -> After {
        let join_ref = self.state.join_ref().unwrap_or_default().to_owned();
        match postgres::match_server_ids(&self.config.bindings, response) {
            Err(mismatch) => {
                // realtime-js: unsubscribe, then CHANNEL_ERROR; the channel does not rejoin.
                log::info!("join {}: {mismatch}", self.topic());
                let r = ctx.refs.next();
                ctx.send(&Frame::leave(Some(join_ref), r, self.topic()));
                self.set_state(State::Closed);
                self.status(
                    ctx,
                    SubscribeStatus::ChannelError,
                    Some(mismatch.into()),
                    Some(ErrorKind::Terminal),
                );
                After::Close(CloseReason::Server(mismatch.into()))
            }
            Ok(ids) => {
                log::debug!("joined {}", self.topic());
                self.server_ids = ids;
                self.rejoin_attempt = 0;
                self.auth_failures = 0;
                self.needs_token = false;
                self.set_state(State::Joined {
                    join_ref,
                    pg_ready_deadline: None,
                });
                // The server forgot our presence with the old join: track it again.
                if let Some(meta) = self.tracked.clone() {
                    let (reply, _) = oneshot::channel();
                    self.send_op(ctx, PushOp::Track(meta), reply, now + ctx.push_timeout());
                }
                for b in std::mem::take(&mut self.buffer) {
                    self.send_op(ctx, b.op, b.reply, b.deadline);
                }
                let o = &self.config.options;
                if !self.config.bindings.is_empty() && o.wait_for_postgres_ready {
                    let at = now + o.postgres_ready_timeout;
                    if let State::Joined {
                        pg_ready_deadline, ..
                    } = &mut self.state
                    {
                        *pg_ready_deadline = Some(at);
                    }
                } else {
                    self.report_subscribed(ctx, now);
                }
                After::Keep
            }
        }
    }

    fn on_join_error(&mut self, ctx: &mut Ctx, response: &Value, now: Instant) -> After {
        let reason = reason_text(response);
        log::info!("join {} refused: {reason}", self.topic());
        let mut kind = reason_kind(&reason);
        // A token provider may hand out a token the server accepts next time, but a provider
        // that keeps handing out refused tokens must not cause an endless rejoin loop.
        if is_token_rejection(&reason) {
            self.auth_failures += 1;
            self.needs_token = true;
            kind = if ctx.opts.token_provider.is_some()
                && self.auth_failures <= ctx.opts.auth_retries
            {
                ErrorKind::Recoverable
            } else {
                ErrorKind::Terminal
            };
        }
        self.lose_join(now);
        if kind == ErrorKind::Terminal {
            // The state is final before the app hears about it.
            self.set_state(State::Closed);
        }
        self.status(
            ctx,
            SubscribeStatus::ChannelError,
            Some(reason.clone()),
            Some(kind),
        );
        if kind == ErrorKind::Terminal {
            return After::Close(CloseReason::Server(reason));
        }
        self.schedule_rejoin(ctx, now);
        After::Keep
    }

    /// A binary frame for this topic.
    pub(crate) fn on_binary(&mut self, ctx: &mut Ctx, frame: BinaryFrame, now: Instant) -> After {
        match frame {
            BinaryFrame::UserBroadcast {
                event: ev,
                metadata,
                payload,
                ..
            } => {
                let payload = match &payload {
                    BroadcastPayload::Json(text) => RawPayload::Json(text),
                    BroadcastPayload::Binary(b) => RawPayload::Binary(b),
                };
                // Decoded parts: `new` copies them into one buffer.
                let none = Bytes::new();
                self.on_user_broadcast(ctx, &none, (&ev, payload, &metadata), now)
            }
            // Kinds 0-2 (phoenix.js' binary serializer): JSON payloads become ordinary frames.
            BinaryFrame::Push {
                join_ref,
                topic,
                event: ev,
                payload,
                ..
            } => match serde_json::from_slice(&payload) {
                Ok(p) => self.on_frame(ctx, Frame::new(join_ref, None, topic, ev, p), now),
                Err(_) => After::Keep,
            },
            BinaryFrame::Broadcast {
                topic,
                event: ev,
                payload,
            } => match serde_json::from_slice(&payload) {
                Ok(p) => self.on_frame(ctx, Frame::new(None, None, topic, ev, p), now),
                Err(_) => After::Keep,
            },
            BinaryFrame::Reply {
                join_ref,
                r#ref,
                topic,
                status,
                payload,
            } => {
                let response = serde_json::from_slice(&payload).unwrap_or(Value::Null);
                let p = json!({"status": status, "response": response});
                self.on_frame(
                    ctx,
                    Frame::new(join_ref, r#ref, topic, event::REPLY, p),
                    now,
                )
            }
            BinaryFrame::UserBroadcastPush { .. } => After::Keep,
        }
    }
}

/// The reason text of an error reply: `response.reason`, a bare string, or the JSON.
fn reason_text(response: &Value) -> String {
    match response {
        Value::String(s) => s.clone(),
        Value::Object(o) => match o.get("reason") {
            Some(Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
            None => response.to_string(),
        },
        other => other.to_string(),
    }
}
