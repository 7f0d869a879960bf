//! One channel's state machine, owned by the connection task (no locks, no user code).
//!
//! States and reactions follow phoenix.js/realtime-js (protocol reference §10): join with a
//! fresh ref (= join_ref), buffer pushes until joined, rejoin on the schedule after errors,
//! stop for good on `phx_close`.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use serde_json::{json, Value};
use tokio::sync::oneshot;

use super::{ChannelShared, StatusSnap};
use crate::client::task::Ctx;
use crate::client::{ChannelSpec, PushOp};
use crate::error::{is_token_rejection, reason_kind, Error, ErrorKind};
use crate::event::{Broadcast, ChannelState, Event, Payload, PresenceEvent, SubscribeStatus};
use crate::postgres::{self, PostgresChangesFilter};
use crate::presence::{Change, Presence};
use crate::protocol::{
    event, BinaryFrame, BroadcastConfig, BroadcastPayload, Frame, JoinConfig, JoinPayload,
    PresenceConfig, Vsn,
};

/// realtime-js caps each channel's push buffer at 100, dropping the oldest.
const PUSH_BUFFER: usize = 100;

type Reply = oneshot::Sender<Result<(), Error>>;

struct Buffered {
    op: PushOp,
    reply: Reply,
    deadline: Instant,
}

/// What the task should do with the machine after an input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum After {
    Keep,
    Remove,
}

pub(crate) struct ChannelMachine {
    pub shared: Arc<ChannelShared>,
    bindings: Vec<PostgresChangesFilter>,
    presence_enabled: bool,
    pub state: ChannelState,
    pub join_ref: Option<String>,
    join_deadline: Option<Instant>,
    rejoin_at: Option<Instant>,
    rejoin_attempt: usize,
    /// A rejoin is due but waits for the token provider.
    pub needs_token: bool,
    buffer: VecDeque<Buffered>,
    inflight: HashMap<String, (Instant, Reply)>,
    server_ids: Vec<Value>,
    presence: Presence,
    pg_ready_deadline: Option<Instant>,
    /// When a subscribed channel lost its join (for `Resumed{gap}`).
    lost_at: Option<Instant>,
    ever_subscribed: bool,
    leave: Option<(String, Instant)>,
    leave_waiters: Vec<Reply>,
    /// The last tracked presence meta, tracked again after every rejoin.
    tracked: Option<Value>,
    /// The first join attempt not yet answered by SUBSCRIBED (join latency metric).
    join_started: Option<Instant>,
    /// Consecutive join refusals for the token (reset by a successful join).
    auth_failures: u32,
    /// The message of a server shutdown `system` error, reported with the `phx_close` after it.
    close_reason: Option<String>,
}

impl ChannelMachine {
    pub fn new(spec: ChannelSpec) -> Self {
        ChannelMachine {
            shared: spec.shared,
            bindings: spec.bindings,
            presence_enabled: spec.presence_enabled,
            state: ChannelState::Closed,
            join_ref: None,
            join_deadline: None,
            rejoin_at: None,
            rejoin_attempt: 0,
            needs_token: false,
            buffer: VecDeque::new(),
            inflight: HashMap::new(),
            server_ids: Vec::new(),
            presence: Presence::new(),
            pg_ready_deadline: None,
            lost_at: None,
            ever_subscribed: false,
            leave: None,
            leave_waiters: Vec::new(),
            tracked: None,
            join_started: None,
            auth_failures: 0,
            close_reason: None,
        }
    }

    pub fn id(&self) -> u64 {
        self.shared.id
    }

    pub fn topic(&self) -> &str {
        &self.shared.topic
    }

    fn set_state(&mut self, state: ChannelState) {
        self.state = state;
        self.shared.snapshot.lock().0 = state;
    }

    fn status(
        &self,
        ctx: &Ctx,
        status: SubscribeStatus,
        reason: Option<String>,
        kind: Option<ErrorKind>,
    ) {
        self.shared.status.send_replace(Some(StatusSnap {
            status,
            reason: reason.clone(),
            kind,
        }));
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

    /// Wants to be joined: waiting for the socket, a rejoin timer, or a token.
    pub fn wants_join(&self) -> bool {
        matches!(self.state, ChannelState::Joining | ChannelState::Errored)
            && self.join_deadline.is_none()
    }

    fn join_payload(&self, ctx: &Ctx) -> JoinPayload {
        let o = &self.shared.options;
        JoinPayload {
            config: Some(JoinConfig {
                broadcast: BroadcastConfig {
                    ack: o.broadcast_ack,
                    self_: o.broadcast_self,
                    ..BroadcastConfig::default()
                },
                presence: PresenceConfig {
                    key: o.presence_key.clone(),
                    enabled: self.presence_enabled,
                },
                private: o.private,
                postgres_changes: self
                    .bindings
                    .iter()
                    .map(PostgresChangesFilter::to_binding)
                    .collect(),
            }),
            access_token: ctx.token.clone(),
            ..JoinPayload::default()
        }
    }

    /// Sends `phx_join` now if the socket is open; otherwise waits for it.
    pub fn join(&mut self, ctx: &mut Ctx, now: Instant) {
        self.rejoin_at = None;
        self.needs_token = false;
        if !ctx.is_open() {
            if self.state != ChannelState::Errored {
                self.set_state(ChannelState::Joining);
            }
            return;
        }
        let r = ctx.make_ref();
        self.join_ref = Some(r.clone());
        self.presence.reset_pending();
        let frame = Frame::join(r, self.topic(), &self.join_payload(ctx));
        ctx.send_frame(&frame);
        self.join_started.get_or_insert(now);
        self.join_deadline = Some(now + ctx.opts.push_timeout);
        self.set_state(ChannelState::Joining);
    }

    fn schedule_rejoin(&mut self, ctx: &Ctx, now: Instant) {
        let delays = &ctx.opts.rejoin_delays;
        let d = delays[self.rejoin_attempt.min(delays.len() - 1)];
        self.rejoin_attempt += 1;
        self.rejoin_at = Some(now + d);
    }

    /// Joined → errored bookkeeping shared by socket loss, phx_error and timeouts.
    fn lose_join(&mut self, now: Instant) {
        if self.state == ChannelState::Joined && self.ever_subscribed && self.lost_at.is_none() {
            self.lost_at = Some(now);
        }
        self.join_deadline = None;
        self.pg_ready_deadline = None;
        self.set_state(ChannelState::Errored);
    }

    fn report_subscribed(&mut self, ctx: &Ctx, now: Instant) {
        self.pg_ready_deadline = None;
        if let Some(start) = self.join_started.take() {
            ctx.counters()
                .record_join_latency(self.topic(), now.saturating_duration_since(start));
        }
        self.status(ctx, SubscribeStatus::Subscribed, None, None);
        if let Some(lost) = self.lost_at.take() {
            ctx.emit(
                Some(self.id()),
                Event::Resumed {
                    topic: self.topic().to_owned(),
                    gap: now.saturating_duration_since(lost),
                },
            );
        }
        self.ever_subscribed = true;
    }

    fn fail_all(&mut self, err: Error) {
        for b in self.buffer.drain(..) {
            let _ = b.reply.send(Err(err.clone()));
        }
        for (_, (_, reply)) in self.inflight.drain() {
            let _ = reply.send(Err(err.clone()));
        }
    }

    /// Final transition to closed: report, fail pending work, release waiters.
    fn close(&mut self, ctx: &Ctx, reason: Option<String>) -> After {
        self.set_state(ChannelState::Closed);
        self.join_deadline = None;
        self.rejoin_at = None;
        self.pg_ready_deadline = None;
        self.leave = None;
        self.fail_all(Error::ChannelError(
            reason.clone().unwrap_or_else(|| "channel closed".into()),
        ));
        self.status(ctx, SubscribeStatus::Closed, reason, None);
        for w in self.leave_waiters.drain(..) {
            let _ = w.send(Ok(()));
        }
        After::Remove
    }

    /// A push from the application.
    pub fn push(&mut self, ctx: &mut Ctx, op: PushOp, reply: Reply, now: Instant) {
        if self.state == ChannelState::Joined && ctx.is_open() {
            self.send_op(ctx, op, reply, now + ctx.opts.push_timeout);
            return;
        }
        if matches!(self.state, ChannelState::Leaving | ChannelState::Closed) {
            let _ = reply.send(Err(Error::NotConnected));
            return;
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
            deadline: now + ctx.opts.push_timeout,
        });
    }

    fn send_op(&mut self, ctx: &mut Ctx, op: PushOp, reply: Reply, deadline: Instant) {
        let r = ctx.make_ref();
        let jr = self.join_ref.clone();
        let expects_reply = match &op {
            PushOp::Broadcast { .. } => self.shared.options.broadcast_ack,
            PushOp::Track(_) | PushOp::Untrack => true,
        };
        match &op {
            PushOp::Track(meta) => self.tracked = Some(meta.clone()),
            PushOp::Untrack => self.tracked = None,
            PushOp::Broadcast { .. } => {}
        }
        let sent = match op {
            PushOp::Broadcast { event: ev, payload } => match (ctx.vsn, payload) {
                (Vsn::V2, payload) => {
                    let payload = match payload {
                        Payload::Json(v) => BroadcastPayload::Json(v.to_string()),
                        Payload::Binary(b) => BroadcastPayload::Binary(b),
                    };
                    let frame =
                        BinaryFrame::user_broadcast_push(jr, r.clone(), self.topic(), ev, payload);
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
                (Vsn::V1, Payload::Json(v)) => {
                    ctx.send_frame(&Frame::broadcast(jr, r.clone(), self.topic(), &ev, v))
                }
                (Vsn::V1, Payload::Binary(_)) => {
                    let _ = reply.send(Err(Error::InvalidArgument(
                        "binary payloads need vsn 2.0.0".into(),
                    )));
                    return;
                }
            },
            PushOp::Track(meta) => {
                ctx.send_frame(&Frame::presence_track(jr, r.clone(), self.topic(), meta))
            }
            PushOp::Untrack => {
                ctx.send_frame(&Frame::presence_untrack(jr, r.clone(), self.topic()))
            }
        };
        if !sent {
            let _ = reply.send(Err(Error::NotConnected));
        } else if expects_reply {
            self.inflight.insert(r, (deadline, reply));
        } else {
            let _ = reply.send(Ok(()));
        }
    }

    fn flush(&mut self, ctx: &mut Ctx) {
        for b in std::mem::take(&mut self.buffer) {
            self.send_op(ctx, b.op, b.reply, b.deadline);
        }
    }

    /// `unsubscribe()`.
    pub fn leave(&mut self, ctx: &mut Ctx, waiter: Reply, now: Instant) -> After {
        self.leave_waiters.push(waiter);
        if self.state == ChannelState::Leaving {
            return After::Keep;
        }
        let joined_or_joining = matches!(self.state, ChannelState::Joined | ChannelState::Joining)
            && self.join_ref.is_some();
        if !ctx.is_open() || !joined_or_joining {
            return self.close(ctx, None);
        }
        let r = ctx.make_ref();
        let frame = Frame::leave(self.join_ref.clone(), r.clone(), self.topic());
        ctx.send_frame(&frame);
        self.leave = Some((r, now + ctx.opts.push_timeout));
        self.join_deadline = None;
        self.rejoin_at = None;
        self.set_state(ChannelState::Leaving);
        After::Keep
    }

    /// The socket opened: rejoin if we want to be joined.
    pub fn on_socket_open(&mut self, ctx: &mut Ctx, now: Instant) {
        if self.wants_join() {
            self.join(ctx, now);
        }
    }

    /// The socket closed (or was closed by us): everything in flight is lost.
    pub fn on_socket_closed(&mut self, ctx: &Ctx, reason: &str, now: Instant) -> After {
        for (_, (_, reply)) in self.inflight.drain() {
            let _ = reply.send(Err(Error::NotConnected));
        }
        match self.state {
            ChannelState::Leaving => self.close(ctx, None),
            ChannelState::Joined | ChannelState::Joining => {
                let was_joined = self.state == ChannelState::Joined;
                self.lose_join(now);
                self.rejoin_at = None;
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

    /// Earliest timer of this channel.
    pub fn next_deadline(&self) -> Option<Instant> {
        [
            self.join_deadline,
            self.rejoin_at,
            self.pg_ready_deadline,
            self.leave.as_ref().map(|l| l.1),
            self.buffer.iter().map(|b| b.deadline).min(),
            self.inflight.values().map(|v| v.0).min(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    pub fn on_timer(&mut self, ctx: &mut Ctx, now: Instant) -> After {
        if self.leave.as_ref().is_some_and(|l| l.1 <= now) {
            return self.close(ctx, None);
        }
        if self.join_deadline.is_some_and(|d| d <= now) {
            // As phoenix.js: leave that join attempt, report TIMED_OUT, retry on the schedule.
            if let Some(jr) = self.join_ref.clone() {
                let r = ctx.make_ref();
                ctx.send_frame(&Frame::leave(Some(jr), r, self.topic()));
            }
            self.lose_join(now);
            self.status(
                ctx,
                SubscribeStatus::TimedOut,
                Some("join timed out".into()),
                Some(ErrorKind::Recoverable),
            );
            self.schedule_rejoin(ctx, now);
        }
        if self.rejoin_at.is_some_and(|d| d <= now) {
            self.rejoin_at = None;
            if ctx.opts.token_provider.is_some() {
                self.needs_token = true;
            } else {
                self.join(ctx, now);
            }
        }
        if self.pg_ready_deadline.is_some_and(|d| d <= now) {
            self.pg_ready_deadline = None;
            self.status(
                ctx,
                SubscribeStatus::TimedOut,
                Some("timed out waiting for `Subscribed to PostgreSQL`".into()),
                Some(ErrorKind::Recoverable),
            );
        }
        while self.buffer.front().is_some_and(|b| b.deadline <= now) {
            if let Some(b) = self.buffer.pop_front() {
                let _ = b.reply.send(Err(Error::Timeout));
            }
        }
        // Buffered deadlines are mostly in order; sweep any stragglers.
        let expired: Vec<usize> = (0..self.buffer.len())
            .filter(|i| self.buffer[*i].deadline <= now)
            .collect();
        for i in expired.into_iter().rev() {
            if let Some(b) = self.buffer.remove(i) {
                let _ = b.reply.send(Err(Error::Timeout));
            }
        }
        let timed_out: Vec<String> = self
            .inflight
            .iter()
            .filter(|(_, v)| v.0 <= now)
            .map(|(k, _)| k.clone())
            .collect();
        for r in timed_out {
            if let Some((_, reply)) = self.inflight.remove(&r) {
                let _ = reply.send(Err(Error::Timeout));
            }
        }
        After::Keep
    }

    /// Sends `access_token` if joined (no reply is expected).
    pub fn send_token(&mut self, ctx: &mut Ctx) {
        if self.state != ChannelState::Joined {
            return;
        }
        if let Some(t) = ctx.token.clone() {
            let r = ctx.make_ref();
            let frame = Frame::access_token(self.join_ref.clone(), r, self.topic(), &t);
            ctx.send_frame(&frame);
        }
    }

    /// A JSON broadcast for this topic (from a `broadcast` frame, or the client's fast path for
    /// fan-out broadcasts, which skips building the envelope's `Value`).
    pub fn on_broadcast(
        &mut self,
        ctx: &mut Ctx,
        event: String,
        payload: Value,
        meta: Option<Value>,
    ) -> After {
        let b = Broadcast {
            topic: self.topic().to_owned(),
            event,
            payload: Payload::Json(payload),
            meta,
        };
        ctx.emit(Some(self.id()), Event::Broadcast(b));
        After::Keep
    }

    /// A text frame for this topic.
    pub fn on_frame(&mut self, ctx: &mut Ctx, frame: Frame, now: Instant) -> After {
        if frame.event == event::REPLY {
            return self.on_reply(ctx, frame, now);
        }
        // Frames of an older join are outdated (phoenix.js `isMember`).
        if frame.join_ref.is_some() && frame.join_ref != self.join_ref {
            return After::Keep;
        }
        match frame.event.as_str() {
            event::CLOSE => {
                if self.state == ChannelState::Closed {
                    return After::Keep;
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
                self.close(ctx, reason)
            }
            event::ERROR => {
                if !matches!(self.state, ChannelState::Joined | ChannelState::Joining) {
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
                // The frame is ours: move the user payload out instead of deep-cloning it
                // (the clone was the runtime thread's largest cost per broadcast).
                let mut p = frame.payload;
                let event = p
                    .get("event")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                let payload = p.get_mut("payload").map(Value::take).unwrap_or(Value::Null);
                let meta = p.get_mut("meta").map(Value::take);
                self.on_broadcast(ctx, event, payload, meta)
            }
            event::PRESENCE_STATE => {
                let changes = self
                    .presence
                    .apply_state(self.join_ref.as_deref(), &frame.payload);
                self.emit_presence(ctx, changes);
                After::Keep
            }
            event::PRESENCE_DIFF => {
                let changes = self
                    .presence
                    .apply_diff(self.join_ref.as_deref(), &frame.payload);
                self.emit_presence(ctx, changes);
                After::Keep
            }
            event::POSTGRES_CHANGES => {
                if let Some(change) = postgres::route_change(
                    self.topic(),
                    &self.bindings,
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
        let ext = payload.get("extension").and_then(Value::as_str);
        let status = payload.get("status").and_then(Value::as_str);
        if ext == Some("system") && status == Some("error") {
            // A shutdown message: a `phx_close` follows (protocol §5).
            self.close_reason = payload
                .get("message")
                .and_then(Value::as_str)
                .map(str::to_owned);
        }
        if ext == Some("postgres_changes")
            && self.pg_ready_deadline.is_some()
            && self.state == ChannelState::Joined
        {
            if status == Some("ok") {
                self.report_subscribed(ctx, now);
            } else {
                self.pg_ready_deadline = None;
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

    fn emit_presence(&mut self, ctx: &Ctx, changes: Vec<Change>) {
        if changes.is_empty() {
            return;
        }
        self.shared.snapshot.lock().1 = self.presence.state();
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
            };
            ctx.emit(Some(self.id()), Event::Presence(ev));
        }
    }

    fn on_reply(&mut self, ctx: &mut Ctx, frame: Frame, now: Instant) -> After {
        let Some(r) = frame.r#ref.clone() else {
            return After::Keep;
        };
        let ok = frame.reply_status() == Some("ok");
        let response = frame.reply_response().cloned().unwrap_or(Value::Null);
        if self.leave.as_ref().is_some_and(|l| l.0 == r) {
            return self.close(ctx, None);
        }
        if self.join_deadline.is_some() && self.join_ref.as_deref() == Some(r.as_str()) {
            self.join_deadline = None;
            return if ok {
                self.on_join_ok(ctx, &response, now)
            } else {
                self.on_join_error(ctx, &response, now)
            };
        }
        if let Some((_, reply)) = self.inflight.remove(&r) {
            let result = if ok {
                Ok(())
            } else {
                Err(Error::ChannelError(reason_text(&response)))
            };
            let _ = reply.send(result);
        }
        After::Keep
    }

    fn on_join_ok(&mut self, ctx: &mut Ctx, response: &Value, now: Instant) -> After {
        match postgres::match_server_ids(&self.bindings, response) {
            Err(mismatch) => {
                // realtime-js: unsubscribe, then CHANNEL_ERROR; the channel does not rejoin.
                let r = ctx.make_ref();
                ctx.send_frame(&Frame::leave(self.join_ref.clone(), r, self.topic()));
                self.set_state(ChannelState::Closed);
                self.fail_all(Error::ChannelError(mismatch.into()));
                self.status(
                    ctx,
                    SubscribeStatus::ChannelError,
                    Some(mismatch.into()),
                    Some(ErrorKind::Terminal),
                );
                for w in self.leave_waiters.drain(..) {
                    let _ = w.send(Ok(()));
                }
                After::Remove
            }
            Ok(ids) => {
                self.server_ids = ids;
                self.rejoin_attempt = 0;
                self.auth_failures = 0;
                self.set_state(ChannelState::Joined);
                // The server forgot our presence with the old join: track it again.
                if let Some(meta) = self.tracked.clone() {
                    let (reply, _) = oneshot::channel();
                    let deadline = now + ctx.opts.push_timeout;
                    self.send_op(ctx, PushOp::Track(meta), reply, deadline);
                }
                self.flush(ctx);
                if !self.bindings.is_empty() && self.shared.options.wait_for_postgres_ready {
                    self.pg_ready_deadline = Some(now + self.shared.options.postgres_ready_timeout);
                } else {
                    self.report_subscribed(ctx, now);
                }
                After::Keep
            }
        }
    }

    fn on_join_error(&mut self, ctx: &mut Ctx, response: &Value, now: Instant) -> After {
        let reason = reason_text(response);
        let mut kind = reason_kind(&reason);
        // A token provider may hand out a token the server accepts next time, but a provider
        // that keeps handing out refused tokens must not cause an endless rejoin loop.
        if is_token_rejection(&reason) {
            self.auth_failures += 1;
            if ctx.opts.token_provider.is_some() && self.auth_failures <= ctx.opts.auth_retries {
                kind = ErrorKind::Recoverable;
            } else {
                kind = ErrorKind::Terminal;
            }
        }
        self.lose_join(now);
        if kind == ErrorKind::Terminal {
            // The state is final before the app hears about it.
            self.set_state(ChannelState::Closed);
        }
        self.status(
            ctx,
            SubscribeStatus::ChannelError,
            Some(reason.clone()),
            Some(kind),
        );
        if kind == ErrorKind::Terminal {
            self.fail_all(Error::ChannelError(reason));
            return After::Remove;
        }
        self.schedule_rejoin(ctx, now);
        After::Keep
    }

    /// A binary frame for this topic.
    pub fn on_binary(&mut self, ctx: &mut Ctx, frame: BinaryFrame, now: Instant) -> After {
        match frame {
            BinaryFrame::UserBroadcast {
                event: ev,
                metadata,
                payload,
                ..
            } => {
                let payload = match payload {
                    BroadcastPayload::Json(text) => match serde_json::from_str(&text) {
                        Ok(v) => Payload::Json(v),
                        Err(e) => {
                            ctx.emit(
                                None,
                                Event::Error {
                                    message: format!(
                                        "broadcast {ev:?} on {}: invalid JSON payload: {e}",
                                        self.topic()
                                    ),
                                },
                            );
                            return After::Keep;
                        }
                    },
                    BroadcastPayload::Binary(b) => Payload::Binary(b),
                };
                let meta = if metadata.is_empty() {
                    None
                } else {
                    serde_json::from_str(&metadata).ok()
                };
                let b = Broadcast {
                    topic: self.topic().to_owned(),
                    event: ev,
                    payload,
                    meta,
                };
                ctx.emit(Some(self.id()), Event::Broadcast(b));
                After::Keep
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
