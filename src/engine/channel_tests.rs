//! The channel machine driven by golden frames: every transition, with exact frames out.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::sync::oneshot;

use super::channel::{After, ChannelConfig, ChannelMachine, CloseReason, PushOp, PUSH_BUFFER};
use super::outbox::{Ctx, Outbox, Refs, Transmit};
use super::snapshot::{ChannelSnapshot, Counters};
use crate::error::{Error, ErrorKind};
use crate::event::{ChannelState, Event, Payload, PresenceEvent, SubscribeStatus};
use crate::incoming::Emit;
use crate::options::{ChannelOptions, ClientOptions};
use crate::postgres::PostgresChangesFilter;
use crate::protocol::{BinaryFrame, BroadcastPayload, Frame, Vsn};

const TOPIC: &str = "realtime:room1";
const JOIN_PAYLOAD: &str = r#"{"config":{"broadcast":{"ack":false,"self":false},"presence":{"key":"","enabled":false},"private":false,"postgres_changes":[]},"access_token":"tok"}"#;

type Status = (SubscribeStatus, Option<String>, Option<ErrorKind>);

struct H {
    m: ChannelMachine,
    snapshot: Arc<ChannelSnapshot>,
    opts: ClientOptions,
    token: Option<String>,
    open: bool,
    /// The connect failure the engine would hand the machine.
    cause: Option<Error>,
    refs: Refs,
    out: Outbox,
    counters: Counters,
    t0: Instant,
}

impl H {
    fn new(options: ChannelOptions) -> H {
        H::with_bindings(options, Vec::new())
    }

    fn with_bindings(options: ChannelOptions, bindings: Vec<PostgresChangesFilter>) -> H {
        let snapshot = Arc::new(ChannelSnapshot::default());
        let m = ChannelMachine::new(ChannelConfig {
            id: 7,
            topic: TOPIC.into(),
            options,
            bindings,
            presence_enabled: false,
            snapshot: snapshot.clone(),
            clock: crate::engine::gap::WallClock::at(Instant::now(), 0),
        });
        H {
            m,
            snapshot,
            opts: ClientOptions::new("ws://127.0.0.1:1/realtime/v1", "key"),
            token: Some("tok".into()),
            open: true,
            cause: None,
            refs: Refs::default(),
            out: Outbox::default(),
            counters: Counters::default(),
            t0: Instant::now(),
        }
    }

    fn at(&self, ms: u64) -> Instant {
        self.t0 + Duration::from_millis(ms)
    }

    fn with<R>(&mut self, f: impl FnOnce(&mut ChannelMachine, &mut Ctx<'_>) -> R) -> R {
        let mut ctx = Ctx {
            opts: &self.opts,
            token: self.token.as_deref(),
            open: self.open,
            cause: self.cause.as_ref(),
            token_error: None,
            refs: &mut self.refs,
            out: &mut self.out,
            counters: &self.counters,
        };
        f(&mut self.m, &mut ctx)
    }

    /// Does what the engine does with `after`: a closed channel is finished (its one final
    /// CLOSED) and replaced by an idle machine on the same snapshot.
    fn settle(&mut self, after: After) -> After {
        if let After::Close(why) = &after {
            let idle = ChannelMachine::new(ChannelConfig {
                id: 7,
                topic: TOPIC.into(),
                options: ChannelOptions::default(),
                bindings: Vec::new(),
                presence_enabled: false,
                snapshot: self.snapshot.clone(),
                clock: crate::engine::gap::WallClock::at(Instant::now(), 0),
            });
            let m = std::mem::replace(&mut self.m, idle);
            let why = why.clone();
            self.with(|_, c| m.finish(c, why));
        }
        after
    }

    fn subscribe(&mut self, ms: u64) {
        let now = self.at(ms);
        self.with(|m, c| m.join(c, now));
    }

    fn recv(&mut self, text: &str, ms: u64) -> After {
        let frame = Frame::decode(self.opts.vsn, text).expect("golden frame");
        let now = self.at(ms);
        let after = self.with(|m, c| m.on_frame(c, frame, now));
        self.settle(after)
    }

    fn recv_binary(&mut self, frame: BinaryFrame, ms: u64) -> After {
        let now = self.at(ms);
        let after = self.with(|m, c| m.on_binary(c, frame, now));
        self.settle(after)
    }

    fn tick(&mut self, ms: u64) -> After {
        let now = self.at(ms);
        let after = self.with(|m, c| m.on_timer(c, now));
        self.settle(after)
    }

    fn push(&mut self, op: PushOp, ms: u64) -> oneshot::Receiver<Result<(), Error>> {
        let (tx, rx) = oneshot::channel();
        let now = self.at(ms);
        self.with(|m, c| m.push(c, op, tx, now));
        rx
    }

    fn leave(&mut self, ms: u64) -> (After, oneshot::Receiver<Result<(), Error>>) {
        let (tx, rx) = oneshot::channel();
        let now = self.at(ms);
        let after = self.with(|m, c| m.leave(c, tx, CloseReason::Left, now));
        (self.settle(after), rx)
    }

    /// Text frames sent since the last call; binary ones as `bin:<kind>`.
    fn sent(&mut self) -> Vec<String> {
        self.out
            .transmits
            .drain(..)
            .map(|t| match t {
                Transmit::Text(s) => s,
                Transmit::Binary(b) => format!("bin:{}", b[0]),
            })
            .collect()
    }

    fn events(&mut self) -> Vec<Event> {
        self.out
            .emits
            .drain(..)
            .map(|e| match e {
                Emit::Event(_, e) => e.to_event(),
                Emit::RemoveChannel(id) => panic!("the machine never removes itself ({id})"),
            })
            .collect()
    }

    fn statuses(&mut self) -> Vec<Status> {
        self.events()
            .into_iter()
            .filter_map(|e| match e {
                Event::ChannelStatus {
                    status,
                    reason,
                    error_kind,
                    ..
                } => Some((status, reason, error_kind)),
                _ => None,
            })
            .collect()
    }

    fn state(&self) -> ChannelState {
        self.snapshot
            .state()
            .expect("the machine published a state")
    }

    /// Subscribes and completes the join with ref "1" at t = 0.
    fn joined(options: ChannelOptions) -> H {
        let mut h = H::new(options);
        h.subscribe(0);
        h.recv(&ok_reply("1", "1", "{}"), 5);
        h.out = Outbox::default();
        h
    }
}

fn join_frame(r: &str) -> String {
    format!(r#"["{r}","{r}","{TOPIC}","phx_join",{JOIN_PAYLOAD}]"#)
}

fn ok_reply(join_ref: &str, r: &str, response: &str) -> String {
    format!(r#"["{join_ref}","{r}","{TOPIC}","phx_reply",{{"status":"ok","response":{response}}}]"#)
}

fn error_reply(join_ref: &str, r: &str, reason: &str) -> String {
    format!(
        r#"["{join_ref}","{r}","{TOPIC}","phx_reply",{{"status":"error","response":{{"reason":"{reason}"}}}}]"#
    )
}

fn outcome(rx: &mut oneshot::Receiver<Result<(), Error>>) -> Option<Result<(), Error>> {
    rx.try_recv().ok()
}

fn recoverable(reason: &str) -> Status {
    (
        SubscribeStatus::ChannelError,
        Some(reason.into()),
        Some(ErrorKind::Recoverable),
    )
}

#[test]
fn join_ok() {
    let mut h = H::new(ChannelOptions::default());
    h.subscribe(0);
    assert_eq!(h.sent(), vec![join_frame("1")]);
    assert_eq!(h.state(), ChannelState::Joining);
    assert_eq!(h.m.deadline(), Some(h.at(10_000)), "the push timeout");
    assert_eq!(h.recv(&ok_reply("1", "1", "{}"), 40), After::Keep);
    assert_eq!(h.state(), ChannelState::Joined);
    assert_eq!(
        h.statuses(),
        vec![(SubscribeStatus::Subscribed, None, None)]
    );
    assert_eq!(h.m.deadline(), None);
    assert_eq!(
        h.counters.join_latency.lock().get(TOPIC),
        Some(&Duration::from_millis(40))
    );
}

#[test]
fn join_waits_for_the_socket() {
    let mut h = H::new(ChannelOptions::default());
    h.open = false;
    h.subscribe(0);
    assert!(h.sent().is_empty());
    assert_eq!(h.state(), ChannelState::Joining);
    h.open = true;
    let now = h.at(100);
    h.with(|m, c| m.on_socket_open(c, now));
    assert_eq!(h.sent(), vec![join_frame("1")]);
}

#[test]
fn join_error_recoverable_then_the_rejoin_ladder() {
    let mut h = H::new(ChannelOptions::default());
    h.subscribe(0);
    h.sent();
    let reason = "ChannelRateLimitReached: Too many channels";
    h.recv(&error_reply("1", "1", reason), 10);
    assert_eq!(h.state(), ChannelState::Errored);
    assert_eq!(h.statuses(), vec![recoverable(reason)]);
    // realtime-js' schedule: 1, 2, 5, 10 s, then 10 s again; each attempt has a fresh ref.
    let mut t = 10;
    for (i, delay) in [1_000, 2_000, 5_000, 10_000, 10_000]
        .into_iter()
        .enumerate()
    {
        assert_eq!(h.m.deadline(), Some(h.at(t + delay)), "attempt {i}");
        assert_eq!(h.tick(t + delay - 1), After::Keep);
        assert!(h.sent().is_empty(), "not before the delay");
        t += delay;
        h.tick(t);
        let r = (i + 2).to_string();
        assert_eq!(h.sent(), vec![join_frame(&r)]);
        h.recv(&error_reply(&r, &r, reason), t);
        assert_eq!(h.statuses(), vec![recoverable(reason)]);
    }
    // A success resets the ladder.
    h.tick(t + 10_000);
    assert_eq!(h.sent(), vec![join_frame("7")]);
    h.recv(&ok_reply("7", "7", "{}"), t + 10_010);
    let now = h.at(t + 20_000);
    h.with(|m, c| m.on_socket_closed(c, "gone", now));
    h.recv(&error_reply("8", "8", reason), 0); // outdated: another join's reply
    let now = h.at(t + 20_001);
    h.with(|m, c| m.on_socket_open(c, now));
    h.sent();
    h.recv(&error_reply("8", "8", reason), t + 20_002);
    assert_eq!(h.m.deadline(), Some(h.at(t + 21_002)), "back to 1 s");
}

#[test]
fn join_error_terminal_closes_for_good() {
    let mut h = H::new(ChannelOptions::default());
    h.subscribe(0);
    let mut rx = h.push(PushOp::Untrack, 1);
    let reason = "Unauthorized: You do not have permissions to read from this Channel topic: room1";
    assert_eq!(
        h.recv(&error_reply("1", "1", reason), 10),
        After::Close(CloseReason::Server(reason.into()))
    );
    assert_eq!(h.state(), ChannelState::Closed);
    assert_eq!(
        h.statuses(),
        vec![
            (
                SubscribeStatus::ChannelError,
                Some(reason.into()),
                Some(ErrorKind::Terminal)
            ),
            (SubscribeStatus::Closed, Some(reason.into()), None)
        ]
    );
    assert_eq!(
        outcome(&mut rx),
        Some(Err(Error::ChannelError(reason.into())))
    );
}

#[test]
fn join_timeout_leaves_that_join_and_retries() {
    let mut h = H::new(ChannelOptions::default());
    h.subscribe(0);
    h.sent();
    h.tick(9_999);
    assert!(h.sent().is_empty());
    h.tick(10_000);
    assert_eq!(
        h.sent(),
        vec![format!(r#"["1","2","{TOPIC}","phx_leave",{{}}]"#)]
    );
    assert_eq!(h.state(), ChannelState::Errored);
    assert_eq!(
        h.statuses(),
        vec![(
            SubscribeStatus::TimedOut,
            Some("join timed out".into()),
            Some(ErrorKind::Recoverable)
        )]
    );
    h.tick(11_000);
    assert_eq!(h.sent(), vec![join_frame("3")]);
    // The late reply to the first join is for another ref: ignored.
    h.recv(&ok_reply("1", "1", "{}"), 11_001);
    assert_eq!(h.state(), ChannelState::Joining);
}

#[test]
fn leave_sends_phx_leave_and_closes_on_the_reply() {
    let mut h = H::joined(ChannelOptions::default());
    let (after, mut rx) = h.leave(100);
    assert_eq!(after, After::Keep);
    assert_eq!(
        h.sent(),
        vec![format!(r#"["1","2","{TOPIC}","phx_leave",{{}}]"#)]
    );
    assert_eq!(h.state(), ChannelState::Leaving);
    assert_eq!(outcome(&mut rx), None);
    // A second unsubscribe waits for the same leave.
    let (after, mut rx2) = h.leave(101);
    assert_eq!(after, After::Keep);
    assert!(h.sent().is_empty());
    assert_eq!(
        h.recv(&ok_reply("1", "2", "{}"), 120),
        After::Close(CloseReason::Left)
    );
    assert_eq!(h.state(), ChannelState::Closed);
    assert_eq!(
        h.statuses(),
        vec![(SubscribeStatus::Closed, Some("left".into()), None)]
    );
    assert_eq!(outcome(&mut rx), Some(Ok(())));
    assert_eq!(outcome(&mut rx2), Some(Ok(())));
}

#[test]
fn leave_times_out_into_closed_and_without_a_join_closes_at_once() {
    let mut h = H::joined(ChannelOptions::default());
    h.leave(100);
    assert_eq!(h.m.deadline(), Some(h.at(10_100)));
    assert_eq!(h.tick(10_100), After::Close(CloseReason::Left));
    assert_eq!(h.state(), ChannelState::Closed);

    let mut h = H::new(ChannelOptions::default());
    h.open = false;
    h.subscribe(0);
    let (after, mut rx) = h.leave(1);
    assert_eq!(after, After::Close(CloseReason::Left));
    assert!(h.sent().is_empty());
    assert_eq!(outcome(&mut rx), Some(Ok(())));
}

/// A duplicate join makes the server close the old channel: `phx_close` with the old
/// join_ref, which is outdated for the current join and ignored; one for the current join
/// closes the channel.
#[test]
fn duplicate_join_close_of_the_old_join_is_ignored() {
    let mut h = H::joined(ChannelOptions::default());
    let now = h.at(50);
    h.with(|m, c| m.on_socket_closed(c, "connection lost", now));
    let now = h.at(60);
    h.with(|m, c| m.on_socket_open(c, now));
    assert_eq!(h.sent(), vec![join_frame("2")]);
    h.recv(&ok_reply("2", "2", "{}"), 70);
    h.events();
    assert_eq!(
        h.recv(&format!(r#"["1","1","{TOPIC}","phx_close",{{}}]"#), 80),
        After::Keep
    );
    assert_eq!(h.state(), ChannelState::Joined);
    assert!(h.events().is_empty());
    assert_eq!(
        h.recv(&format!(r#"["2","2","{TOPIC}","phx_close",{{}}]"#), 90),
        After::Close(CloseReason::Server("closed by the server".into()))
    );
    assert_eq!(
        h.statuses(),
        vec![(
            SubscribeStatus::Closed,
            Some("closed by the server".into()),
            None
        )]
    );
}

#[test]
fn socket_loss_errors_then_rejoins_and_reports_the_gap() {
    let mut h = H::joined(ChannelOptions::default().broadcast_ack(true));
    let mut rx = h.push(
        PushOp::Broadcast {
            persist: crate::protocol::Persist::No,
            event: "e".into(),
            payload: json!({}).into(),
        },
        10,
    );
    assert_eq!(h.sent(), vec!["bin:3".to_owned()]);
    let now = h.at(100);
    assert_eq!(
        h.with(|m, c| m.on_socket_closed(c, "connection lost", now)),
        After::Keep
    );
    assert_eq!(outcome(&mut rx), Some(Err(Error::NotConnected)));
    assert_eq!(h.state(), ChannelState::Errored);
    assert_eq!(h.statuses(), vec![recoverable("connection lost")]);
    assert_eq!(h.m.deadline(), None, "waits for the socket, not a timer");
    let now = h.at(2_100);
    h.with(|m, c| m.on_socket_open(c, now));
    let sent = h.sent();
    assert!(
        sent.len() == 1 && sent[0].starts_with(r#"["3","3","realtime:room1","phx_join""#),
        "{sent:?}"
    );
    h.recv(&ok_reply("3", "3", "{}"), 2_150);
    let events = h.events();
    assert!(matches!(
        events.as_slice(),
        [
            Event::ChannelStatus {
                status: SubscribeStatus::Subscribed,
                ..
            },
            Event::Resumed { gap, .. }
        ] if *gap == Duration::from_millis(2_050)
    ));
}

#[test]
fn phx_error_errors_and_rejoins_on_the_schedule() {
    let mut h = H::joined(ChannelOptions::default());
    h.recv(&format!(r#"["1","1","{TOPIC}","phx_error",{{}}]"#), 100);
    assert_eq!(h.state(), ChannelState::Errored);
    assert_eq!(h.statuses(), vec![recoverable("channel error (phx_error)")]);
    h.tick(1_100);
    assert_eq!(h.sent(), vec![join_frame("2")]);
    // A phx_error of an older join is ignored.
    h.recv(&ok_reply("2", "2", "{}"), 1_110);
    h.events();
    h.recv(&format!(r#"["1","1","{TOPIC}","phx_error",{{}}]"#), 1_200);
    assert_eq!(h.state(), ChannelState::Joined);
}

#[test]
fn token_refresh_goes_to_joined_channels_only() {
    let mut h = H::new(ChannelOptions::default());
    h.subscribe(0);
    h.sent();
    h.token = Some("new".into());
    h.with(|m, c| m.send_token(c));
    assert!(
        h.sent().is_empty(),
        "not joined yet: the next join carries it"
    );
    h.recv(&ok_reply("1", "1", "{}"), 5);
    h.with(|m, c| m.send_token(c));
    assert_eq!(
        h.sent(),
        vec![format!(
            r#"["1","2","{TOPIC}","access_token",{{"access_token":"new"}}]"#
        )]
    );
}

/// Token expiry: the server's shutdown `system` error, then `phx_close`: the token-rejected
/// terminal status, then CLOSED with the server's text.
#[test]
fn token_expiry_is_a_terminal_error_then_closed() {
    let mut h = H::joined(ChannelOptions::default());
    let msg = "Token has expired 0 seconds ago";
    h.recv(
        &format!(
            r#"["1",null,"{TOPIC}","system",{{"extension":"system","status":"error","message":"{msg}","channel":"room1"}}]"#
        ),
        100,
    );
    assert_eq!(
        h.recv(&format!(r#"["1","1","{TOPIC}","phx_close",{{}}]"#), 101),
        After::Close(CloseReason::Server(msg.into()))
    );
    let events = h.events();
    assert!(matches!(&events[0], Event::System { .. }));
    assert!(events[1].is_token_rejected(), "{:?}", events[1]);
    assert!(matches!(
        &events[2],
        Event::ChannelStatus { status: SubscribeStatus::Closed, reason: Some(r), .. } if r == msg
    ));
}

#[test]
fn with_a_token_provider_refused_tokens_are_retried_then_terminal() {
    let mut h = H::new(ChannelOptions::default());
    h.opts = h
        .opts
        .clone()
        .token_provider(|| Ok(Some("t".to_owned())))
        .auth_retries(1);
    h.subscribe(0);
    h.sent();
    let reason = "InvalidJWTToken: Token has expired 3 seconds ago";
    h.recv(&error_reply("1", "1", reason), 10);
    assert_eq!(h.statuses(), vec![recoverable(reason)]);
    // The rejoin waits for the provider.
    h.tick(1_010);
    assert!(h.sent().is_empty());
    assert!(h.m.awaiting_token());
    assert_eq!(h.m.deadline(), None);
    let now = h.at(1_020);
    h.with(|m, c| m.on_token_ready(c, now));
    assert_eq!(h.sent(), vec![join_frame("2")]);
    assert_eq!(
        h.recv(&error_reply("2", "2", reason), 1_030),
        After::Close(CloseReason::Server(reason.into()))
    );
    assert_eq!(
        h.statuses(),
        vec![
            (
                SubscribeStatus::ChannelError,
                Some(reason.into()),
                Some(ErrorKind::Terminal)
            ),
            (SubscribeStatus::Closed, Some(reason.into()), None)
        ]
    );
}

#[test]
fn binary_frames() {
    let mut h = H::joined(ChannelOptions::default());
    h.recv_binary(
        BinaryFrame::UserBroadcast {
            topic: TOPIC.into(),
            event: "cursor".into(),
            metadata: r#"{"id":"u1"}"#.into(),
            payload: BroadcastPayload::Json(r#"{"x":1}"#.into()),
        },
        10,
    );
    h.recv_binary(
        BinaryFrame::UserBroadcast {
            topic: TOPIC.into(),
            event: "blob".into(),
            metadata: String::new(),
            payload: BroadcastPayload::Binary(vec![0, 255]),
        },
        11,
    );
    h.recv_binary(
        BinaryFrame::UserBroadcast {
            topic: TOPIC.into(),
            event: "bad".into(),
            metadata: String::new(),
            payload: BroadcastPayload::Json("{nope".into()),
        },
        12,
    );
    let events = h.events();
    match &events[..] {
        [Event::Broadcast(a), Event::Broadcast(b), Event::Error { message }] => {
            assert_eq!(
                (a.event.as_str(), &a.payload, &a.meta),
                (
                    "cursor",
                    &Payload::Json(json!({"x": 1})),
                    &Some(json!({"id": "u1"}))
                )
            );
            assert_eq!(b.payload, Payload::Binary(vec![0, 255]));
            assert!(message.contains("invalid JSON payload"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    // Kind 1 (a binary reply) answers pushes like a text reply.
    let mut h = H::new(ChannelOptions::default());
    h.subscribe(0);
    h.recv_binary(
        BinaryFrame::Reply {
            join_ref: Some("1".into()),
            r#ref: Some("1".into()),
            topic: TOPIC.into(),
            status: "ok".into(),
            payload: b"{}".to_vec(),
        },
        5,
    );
    assert_eq!(h.state(), ChannelState::Joined);
}

#[test]
fn broadcast_json_frames_and_meta() {
    let mut h = H::joined(ChannelOptions::default());
    h.recv(
        &format!(
            r#"[null,null,"{TOPIC}","broadcast",{{"type":"broadcast","event":"e","payload":{{"n":1}},"meta":{{"id":"x"}}}}]"#
        ),
        10,
    );
    match &h.events()[..] {
        [Event::Broadcast(b)] => {
            assert_eq!(b.topic, TOPIC);
            assert_eq!(b.payload, Payload::Json(json!({"n": 1})));
            assert_eq!(b.meta, Some(json!({"id": "x"})));
        }
        other => panic!("{other:?}"),
    }
}

fn pg_binding() -> Vec<PostgresChangesFilter> {
    vec![PostgresChangesFilter::new("INSERT", "public").table("todos")]
}

const PG_JOIN_OK: &str =
    r#"{"postgres_changes":[{"id":11,"event":"INSERT","schema":"public","table":"todos"}]}"#;

fn pg_system(status: &str, message: &str) -> String {
    format!(
        r#"["1",null,"{TOPIC}","system",{{"extension":"postgres_changes","status":"{status}","message":"{message}","channel":"room1"}}]"#
    )
}

#[test]
fn postgres_ready_then_changes_route_by_id() {
    let mut h = H::with_bindings(ChannelOptions::default(), pg_binding());
    h.subscribe(0);
    let sent = h.sent();
    assert!(
        sent[0].contains(
            r#""postgres_changes":[{"event":"INSERT","schema":"public","table":"todos"}]"#
        ),
        "{sent:?}"
    );
    h.recv(&ok_reply("1", "1", PG_JOIN_OK), 10);
    assert_eq!(h.state(), ChannelState::Joined);
    assert!(h.statuses().is_empty(), "SUBSCRIBED waits for the database");
    assert_eq!(h.m.deadline(), Some(h.at(20_010)));
    h.recv(&pg_system("ok", "Subscribed to PostgreSQL"), 500);
    assert_eq!(
        h.statuses(),
        vec![(SubscribeStatus::Subscribed, None, None)]
    );
    h.recv(
        &format!(
            r#"[null,null,"{TOPIC}","postgres_changes",{{"ids":[11],"data":{{"schema":"public","table":"todos","type":"INSERT","commit_timestamp":"t","columns":[{{"name":"id","type":"int8"}}],"record":{{"id":"7"}},"errors":null}}}}]"#
        ),
        600,
    );
    h.recv(
        &format!(
            r#"[null,null,"{TOPIC}","postgres_changes",{{"ids":[99],"data":{{"type":"INSERT"}}}}]"#
        ),
        601,
    );
    match &h.events()[..] {
        [Event::PostgresChange(c)] => {
            assert_eq!(c.new, json!({"id": 7}));
            assert_eq!(c.bindings, vec![0]);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn postgres_ready_error_and_timeout() {
    let mut h = H::with_bindings(ChannelOptions::default(), pg_binding());
    h.subscribe(0);
    h.recv(&ok_reply("1", "1", PG_JOIN_OK), 10);
    let msg = "Error parsing `filter` params: [\\\"x\\\"]";
    h.recv(&pg_system("error", msg), 20);
    let statuses = h.statuses();
    assert_eq!(statuses.len(), 1);
    assert_eq!(statuses[0].2, Some(ErrorKind::Terminal));

    let mut h = H::with_bindings(ChannelOptions::default(), pg_binding());
    h.subscribe(0);
    h.recv(&ok_reply("1", "1", PG_JOIN_OK), 10);
    h.tick(20_010);
    assert_eq!(
        h.statuses(),
        vec![(
            SubscribeStatus::TimedOut,
            Some("timed out waiting for `Subscribed to PostgreSQL`".into()),
            Some(ErrorKind::Recoverable)
        )]
    );
    assert_eq!(h.m.deadline(), None);
}

#[test]
fn postgres_binding_mismatch_leaves_and_stops() {
    let mut h = H::with_bindings(ChannelOptions::default(), pg_binding());
    h.subscribe(0);
    h.sent();
    let swapped =
        r#"{"postgres_changes":[{"id":11,"event":"UPDATE","schema":"public","table":"todos"}]}"#;
    assert!(matches!(
        h.recv(&ok_reply("1", "1", swapped), 10),
        After::Close(CloseReason::Server(_))
    ));
    assert_eq!(
        h.sent(),
        vec![format!(r#"["1","2","{TOPIC}","phx_leave",{{}}]"#)]
    );
    assert_eq!(h.state(), ChannelState::Closed);
    let statuses = h.statuses();
    assert_eq!(
        statuses,
        vec![
            (
                SubscribeStatus::ChannelError,
                Some(crate::postgres::MISMATCH.into()),
                Some(ErrorKind::Terminal)
            ),
            (
                SubscribeStatus::Closed,
                Some(crate::postgres::MISMATCH.into()),
                None
            )
        ]
    );
}

/// Presence over `max_presence_keys` is refused whole with an error and the published state
/// stays as it was. (A hand-written hostile payload: the real server sends only presences it
/// holds.)
#[test]
fn presence_over_the_key_limit_is_refused_with_an_error() {
    let mut h = H::joined(ChannelOptions::default());
    h.opts.max_presence_keys = 1;
    h.recv(
        &format!(
            r#"["1",null,"{TOPIC}","presence_state",{{"a":{{"metas":[{{"phx_ref":"a1"}}]}}}}]"#
        ),
        10,
    );
    assert_eq!(h.snapshot.presence().len(), 1);
    h.events();
    h.recv(
        &format!(
            r#"["1",null,"{TOPIC}","presence_diff",{{"joins":{{"b":{{"metas":[{{"phx_ref":"b1"}}]}}}},"leaves":{{}}}}]"#
        ),
        11,
    );
    let events = h.events();
    assert!(
        matches!(&events[..], [Event::Error { message }] if message == &format!("{TOPIC}: presence_diff refused: 2 presence keys, over max_presence_keys (1)")),
        "{events:?}"
    );
    assert_eq!(h.snapshot.presence().len(), 1);
}

#[test]
fn presence_state_and_diff() {
    let mut h = H::joined(ChannelOptions::default());
    // A diff before the state of this join waits for it.
    h.recv(
        &format!(
            r#"[null,null,"{TOPIC}","presence_diff",{{"joins":{{"bob":{{"metas":[{{"phx_ref":"b1"}}]}}}},"leaves":{{}}}}]"#
        ),
        10,
    );
    assert!(h.events().is_empty());
    h.recv(
        &format!(
            r#"["1",null,"{TOPIC}","presence_state",{{"alice":{{"metas":[{{"phx_ref":"a1","user":"alice"}}]}}}}]"#
        ),
        11,
    );
    let events = h.events();
    let keys: Vec<&str> = events
        .iter()
        .filter_map(|e| match e {
            Event::Presence(PresenceEvent::Join { key, .. }) => Some(key.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(keys, vec!["alice", "bob"]);
    assert!(matches!(
        events.last(),
        Some(Event::Presence(PresenceEvent::Sync { .. }))
    ));
    let state = h.snapshot.presence();
    assert_eq!(state.len(), 2);
    assert_eq!(state[0].1[0]["presence_ref"], "a1");
    // A state of an older join is outdated.
    h.recv(
        &format!(r#"["0",null,"{TOPIC}","presence_state",{{}}]"#),
        12,
    );
    assert!(h.events().is_empty());
    assert_eq!(h.snapshot.presence().len(), 2);
}

#[test]
fn pushes_wait_for_the_join_and_flush_in_order() {
    let mut h = H::new(ChannelOptions::default().broadcast_ack(true));
    h.subscribe(0);
    h.sent();
    let mut a = h.push(PushOp::Track(json!({"u": 1})), 1);
    let mut b = h.push(
        PushOp::Broadcast {
            persist: crate::protocol::Persist::No,
            event: "e".into(),
            payload: json!({"n": 1}).into(),
        },
        2,
    );
    assert!(h.sent().is_empty());
    h.recv(&ok_reply("1", "1", "{}"), 5);
    assert_eq!(
        h.sent(),
        vec![
            format!(
                r#"["1","2","{TOPIC}","presence",{{"type":"presence","event":"track","payload":{{"u":1}}}}]"#
            ),
            "bin:3".to_owned()
        ]
    );
    h.recv(&ok_reply("1", "2", "{}"), 6);
    h.recv(&error_reply("1", "3", "payload_size_exceeded"), 7);
    assert_eq!(outcome(&mut a), Some(Ok(())));
    assert_eq!(
        outcome(&mut b),
        Some(Err(Error::ChannelError("payload_size_exceeded".into())))
    );
    // Tracked presence is tracked again after a rejoin.
    let now = h.at(8);
    h.with(|m, c| m.on_socket_closed(c, "x", now));
    let now = h.at(9);
    h.with(|m, c| m.on_socket_open(c, now));
    h.sent();
    h.recv(&ok_reply("4", "4", "{}"), 10);
    assert_eq!(
        h.sent(),
        vec![format!(
            r#"["4","5","{TOPIC}","presence",{{"type":"presence","event":"track","payload":{{"u":1}}}}]"#
        )]
    );
}

#[test]
fn push_buffer_is_bounded_and_pushes_time_out() {
    let mut h = H::new(ChannelOptions::default());
    h.subscribe(0);
    let mut first = h.push(PushOp::Untrack, 1);
    let mut rest: Vec<_> = (0..PUSH_BUFFER)
        .map(|i| h.push(PushOp::Untrack, 2 + i as u64))
        .collect();
    assert!(matches!(
        outcome(&mut first),
        Some(Err(Error::InvalidArgument(_)))
    ));
    // The join times out first (at 10 s), then each buffered push at its own deadline.
    assert_eq!(h.m.deadline(), Some(h.at(10_000)));
    h.tick(10_000);
    assert_eq!(h.m.deadline(), Some(h.at(10_002)), "the oldest push");
    h.tick(10_002);
    assert_eq!(outcome(&mut rest[0]), Some(Err(Error::Timeout)));
    assert_eq!(outcome(&mut rest[1]), None);
    h.tick(20_000);
    assert!(rest[1..]
        .iter_mut()
        .all(|r| outcome(r) == Some(Err(Error::Timeout))));

    // An acked broadcast whose ack never comes times out too.
    let mut h = H::joined(ChannelOptions::default().broadcast_ack(true));
    let mut rx = h.push(
        PushOp::Broadcast {
            persist: crate::protocol::Persist::No,
            event: "e".into(),
            payload: json!(1).into(),
        },
        100,
    );
    assert_eq!(h.m.deadline(), Some(h.at(10_100)));
    h.tick(10_100);
    assert_eq!(outcome(&mut rx), Some(Err(Error::Timeout)));
    assert_eq!(h.m.deadline(), None);
}

#[test]
fn pushes_after_leave_and_bad_broadcasts_fail_at_once() {
    let mut h = H::joined(ChannelOptions::default());
    let mut rx = h.push(
        PushOp::Broadcast {
            persist: crate::protocol::Persist::No,
            event: "e".repeat(300),
            payload: json!({}).into(),
        },
        10,
    );
    assert_eq!(
        outcome(&mut rx),
        Some(Err(Error::InvalidArgument(
            "event longer than 255 bytes".into()
        )))
    );
    let mut ok = h.push(
        PushOp::Broadcast {
            persist: crate::protocol::Persist::No,
            event: "e".into(),
            payload: json!({}).into(),
        },
        11,
    );
    assert_eq!(
        outcome(&mut ok),
        Some(Ok(())),
        "no ack asked: written is done"
    );
    h.leave(12);
    let mut late = h.push(PushOp::Untrack, 13);
    assert_eq!(outcome(&mut late), Some(Err(Error::NotConnected)));
}

#[test]
fn vsn1_broadcasts_are_json_frames() {
    let mut h = H::new(ChannelOptions::default());
    h.opts = h.opts.clone().vsn(Vsn::V1);
    h.subscribe(0);
    h.sent();
    h.recv(
        &format!(
            r#"{{"topic":"{TOPIC}","event":"phx_reply","payload":{{"status":"ok","response":{{}}}},"ref":"1"}}"#
        ),
        5,
    );
    h.push(
        PushOp::Broadcast {
            persist: crate::protocol::Persist::No,
            event: "e".into(),
            payload: json!({"n": 1}).into(),
        },
        6,
    );
    let mut bin = h.push(
        PushOp::Broadcast {
            persist: crate::protocol::Persist::No,
            event: "e".into(),
            payload: Payload::Binary(vec![1]),
        },
        7,
    );
    let sent: Vec<Value> = h
        .sent()
        .iter()
        .map(|s| serde_json::from_str(s).unwrap())
        .collect();
    assert_eq!(
        sent,
        vec![
            json!({"topic": TOPIC, "event": "broadcast", "ref": "2", "join_ref": "1",
                    "payload": {"type": "broadcast", "event": "e", "payload": {"n": 1}}})
        ]
    );
    assert!(matches!(
        outcome(&mut bin),
        Some(Err(Error::InvalidArgument(_)))
    ));
}

#[test]
fn shutdown_publishes_closed_with_the_shutdown_reason() {
    let mut h = H::joined(ChannelOptions::default());
    let mut rx = h.push(PushOp::Untrack, 6);
    h.settle(After::Close(CloseReason::Shutdown));
    assert_eq!(outcome(&mut rx), Some(Err(Error::Shutdown)));
    assert_eq!(
        h.statuses(),
        vec![(
            SubscribeStatus::Closed,
            Some(super::snapshot::SHUTDOWN_REASON.into()),
            None
        )]
    );
    assert_eq!(h.state(), ChannelState::Closed);
    let snap = h.snapshot.status().unwrap();
    assert_eq!(snap.status, SubscribeStatus::Closed);
    assert_eq!(
        snap.reason.as_deref(),
        Some(super::snapshot::SHUTDOWN_REASON)
    );
}

/// A machine whose wall clock reads 1,000,000 ms at `t0`.
fn with_clock(options: ChannelOptions) -> H {
    let mut h = H::new(options.clone());
    h.m = ChannelMachine::new(ChannelConfig {
        id: 7,
        topic: TOPIC.into(),
        options,
        bindings: Vec::new(),
        presence_enabled: false,
        snapshot: h.snapshot.clone(),
        clock: crate::engine::gap::WallClock::at(h.t0, 1_000_000),
    });
    h
}

fn stored(join_ref: &str, id: &str, replayed: bool) -> String {
    format!(
        r#"["{join_ref}",null,"{TOPIC}","broadcast",{{"type":"broadcast","event":"e","payload":{{"id":"{id}"}},"meta":{{"id":"{id}","replayed":{replayed}}}}}]"#
    )
}

/// (id, replayed) of the broadcasts, and `Resumed` as `("resumed", filled)`.
fn deliveries(events: Vec<Event>) -> Vec<(String, bool)> {
    events
        .into_iter()
        .filter_map(|e| match e {
            Event::Broadcast(b) => Some((b.id().unwrap_or("-").to_owned(), b.replayed())),
            Event::Resumed { filled, .. } => Some(("resumed".to_owned(), filled)),
            _ => None,
        })
        .collect()
}

#[test]
fn join_asks_for_replay_and_replication_and_sends_persist() {
    let since = std::time::UNIX_EPOCH + Duration::from_millis(1_700_000_000_000);
    let opts = ChannelOptions::default()
        .private(true)
        .replication_ready(true)
        .replay(crate::Replay::since(since).limit(10));
    let mut h = H::new(opts);
    h.subscribe(0);
    let sent = h.sent();
    assert!(
        sent[0].contains(r#""broadcast":{"ack":false,"self":false,"replay":{"since":1700000000000,"limit":10},"replication_ready":true}"#),
        "{sent:?}"
    );
    h.recv(&ok_reply("1", "1", "{}"), 5);
    h.recv(
        &format!(
            r#"["1",null,"{TOPIC}","system",{{"extension":"system","status":"ok","message":"Replication connection established","channel":"room1"}}]"#
        ),
        6,
    );
    assert_eq!(h.snapshot.replication(), Some(Ok(())));

    // persist rides in a kind-3 frame's metadata (vsn 2.0.0) or the push (vsn 1.0.0).
    let _sent = h.push(
        PushOp::Broadcast {
            event: "e".into(),
            payload: json!({"n": 1}).into(),
            persist: crate::protocol::Persist::Yes,
        },
        10,
    );
    let Transmit::Binary(bytes) = h.out.transmits.pop().expect("a frame") else {
        panic!("binary")
    };
    match BinaryFrame::decode_from_client(&bytes).expect("kind 3") {
        BinaryFrame::UserBroadcastPush { metadata, .. } => {
            assert_eq!(metadata, r#"{"persist":true}"#)
        }
        other => panic!("{other:?}"),
    }
    h.opts.vsn = Vsn::V1;
    let _sent = h.push(
        PushOp::Broadcast {
            event: "e".into(),
            payload: json!({"n": 2}).into(),
            persist: crate::protocol::Persist::Ttl(Duration::from_secs(60)),
        },
        11,
    );
    let sent = h.sent();
    assert!(
        sent[0].contains(r#""payload":{"n":2},"persist":{"ttl":60}"#),
        "{sent:?}"
    );
}

#[test]
fn gap_fill_asks_since_the_last_delivery_and_drops_duplicates() {
    let opts = ChannelOptions::default().private(true).auto_replay(true);
    let mut h = with_clock(opts);
    h.subscribe(0);
    assert!(
        !h.sent()[0].contains("replay"),
        "a first join replays nothing"
    );
    h.recv(&ok_reply("1", "1", "{}"), 5);
    h.recv(&stored("1", "a", false), 100);
    h.recv_binary(
        BinaryFrame::UserBroadcast {
            topic: TOPIC.into(),
            event: "e".into(),
            metadata: r#"{"id":"b"}"#.into(),
            payload: BroadcastPayload::Json("{}".into()),
        },
        200,
    );
    assert_eq!(
        deliveries(h.events()),
        vec![("a".into(), false), ("b".into(), false)]
    );

    // The outage: the rejoin asks for what was stored since "b" (less the clock margin).
    let now = h.at(300);
    h.with(|m, c| m.on_socket_closed(c, "connection lost", now));
    let now = h.at(1_300);
    h.with(|m, c| m.on_socket_open(c, now));
    let sent = h.sent();
    assert!(
        sent[0].contains(r#""replay":{"since":995200,"limit":25}"#),
        "{sent:?}"
    );
    h.recv(&ok_reply("2", "2", "{}"), 1_350);
    // Resumed waits for the replay; "b" was delivered before and is dropped.
    h.recv(&stored("2", "b", true), 1_351);
    h.recv(&stored("2", "c", true), 1_352);
    assert_eq!(h.m.deadline(), Some(h.at(1_850)));
    h.recv(&stored("2", "d", false), 1_400);
    h.recv(&stored("2", "d", false), 1_401);
    let events = h.events();
    let gap = events.iter().find_map(|e| match e {
        Event::Resumed { gap, .. } => Some(*gap),
        _ => None,
    });
    assert_eq!(gap, Some(Duration::from_millis(1_050)));
    assert_eq!(
        deliveries(events),
        vec![
            ("c".into(), true),
            ("resumed".into(), true),
            ("d".into(), false)
        ]
    );
    assert_eq!(h.m.deadline(), None);

    // A second outage whose replay is full and all new: more may have been stored.
    let now = h.at(2_000);
    h.with(|m, c| m.on_socket_closed(c, "connection lost", now));
    let now = h.at(3_000);
    h.with(|m, c| m.on_socket_open(c, now));
    assert!(h.sent()[0].contains(r#""since":996400"#));
    h.recv(&ok_reply("3", "3", "{}"), 3_010);
    for i in 0..25 {
        h.recv(&stored("3", &format!("r{i}"), true), 3_020);
    }
    let d = deliveries(h.events());
    assert_eq!(d.len(), 26, "{d:?}");
    assert_eq!(d[25], ("resumed".into(), false));

    // A third, quiet one: Resumed comes when the settle time is over.
    let now = h.at(4_000);
    h.with(|m, c| m.on_socket_closed(c, "connection lost", now));
    let now = h.at(4_100);
    h.with(|m, c| m.on_socket_open(c, now));
    h.recv(&ok_reply("4", "4", "{}"), 4_110);
    assert_eq!(deliveries(h.events()), vec![]);
    h.tick(4_610);
    assert_eq!(deliveries(h.events()), vec![("resumed".into(), true)]);
}

#[test]
fn without_gap_fill_resumed_is_at_once_and_not_filled() {
    let mut h = H::joined(ChannelOptions::default().private(true));
    let now = h.at(100);
    h.with(|m, c| m.on_socket_closed(c, "connection lost", now));
    let now = h.at(200);
    h.with(|m, c| m.on_socket_open(c, now));
    assert!(!h.sent()[0].contains("replay"));
    h.recv(&ok_reply("2", "2", "{}"), 210);
    h.recv(&stored("2", "x", false), 220);
    h.recv(&stored("2", "x", false), 221);
    assert_eq!(
        deliveries(h.events()),
        vec![
            ("resumed".into(), false),
            ("x".into(), false),
            ("x".into(), false)
        ]
    );
}
