//! The engine driven without a socket: connection schedule (connect, heartbeat, reconnect,
//! link checks), routing across many channels, timers and token refresh.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::sync::{oneshot, watch};

use super::channel::{ChannelConfig, CloseReason, PushOp};
use super::outbox::Transmit;
use super::snapshot::{ChannelSnapshot, Counters};
use super::{Action, Engine};
use crate::error::Error;
use crate::event::{ChannelId, ChannelState, ConnectionState, Event, HeartbeatStatus, Payload};
use crate::incoming::Emit;
use crate::options::{ChannelOptions, ClientOptions};

struct E {
    engine: Engine,
    state: watch::Receiver<ConnectionState>,
    t0: Instant,
    snapshots: Vec<Arc<ChannelSnapshot>>,
}

fn opts() -> ClientOptions {
    ClientOptions::new("ws://127.0.0.1:1/realtime/v1", "key").reconnect_jitter(0.0)
}

impl E {
    fn new(opts: ClientOptions) -> E {
        let (tx, state) = watch::channel(ConnectionState::Disconnected);
        E {
            engine: Engine::new(Arc::new(opts), Arc::new(Counters::default()), tx, 1),
            state,
            t0: Instant::now(),
            snapshots: Vec::new(),
        }
    }

    fn at(&self, ms: u64) -> Instant {
        self.t0 + Duration::from_millis(ms)
    }

    fn actions(&mut self) -> Vec<Action> {
        self.engine.take_actions()
    }

    fn sent(&mut self) -> Vec<String> {
        self.engine
            .outbox()
            .transmits
            .drain(..)
            .map(|t| match t {
                Transmit::Text(s) => s,
                Transmit::Binary(b) => format!("bin:{}", b[0]),
            })
            .collect()
    }

    fn emits(&mut self) -> Vec<Emit> {
        self.engine.outbox().emits.drain(..).collect()
    }

    fn events(&mut self) -> Vec<Event> {
        self.emits()
            .into_iter()
            .filter_map(|e| match e {
                Emit::Event(_, e) => Some(e.to_event()),
                Emit::RemoveChannel(_) => None,
            })
            .collect()
    }

    /// Connects and opens the socket at `ms`.
    fn open(&mut self, ms: u64) {
        self.engine.connect(self.at(ms));
        assert_eq!(self.actions(), vec![Action::Connect { fetch_token: false }]);
        self.engine.on_connected(Ok(()), None, self.at(ms));
        assert_eq!(*self.state.borrow(), ConnectionState::Connected);
    }

    fn subscribe(&mut self, id: ChannelId, name: &str, ms: u64) {
        let snapshot = Arc::new(ChannelSnapshot::default());
        self.snapshots.push(snapshot.clone());
        self.engine.subscribe(
            ChannelConfig {
                id,
                topic: format!("realtime:{name}").into(),
                options: ChannelOptions::default(),
                bindings: Vec::new(),
                presence_enabled: false,
                snapshot,
                clock: crate::engine::gap::WallClock::at(std::time::Instant::now(), 0),
            },
            self.at(ms),
        );
    }

    fn text(&mut self, text: &str, ms: u64) {
        self.engine.on_text(text.to_owned().into(), self.at(ms));
    }

    fn tick(&mut self, ms: u64) {
        self.engine.on_tick(self.at(ms));
    }
}

fn heartbeat(r: &str) -> String {
    format!(r#"[null,"{r}","phoenix","heartbeat",{{}}]"#)
}

fn heartbeat_reply(r: &str) -> String {
    format!(r#"[null,"{r}","phoenix","phx_reply",{{"status":"ok","response":{{}}}}]"#)
}

#[test]
fn heartbeats_every_interval_after_the_reply() {
    let mut e = E::new(opts());
    e.open(0);
    assert_eq!(e.engine.next_deadline(), Some(e.at(25_000)));
    e.tick(24_999);
    assert!(e.sent().is_empty());
    e.tick(25_000);
    assert_eq!(e.sent(), vec![heartbeat("1")]);
    e.text(&heartbeat_reply("1"), 25_040);
    let events = e.events();
    assert!(events.iter().any(|ev| matches!(
        ev,
        Event::Heartbeat { status: HeartbeatStatus::Ok, rtt: Some(rtt) } if *rtt == Duration::from_millis(40)
    )));
    assert_eq!(e.engine.next_deadline(), Some(e.at(50_040)));
    // A reply to another ref changes nothing.
    e.tick(50_040);
    e.text(&heartbeat_reply("1"), 50_050);
    assert_eq!(e.engine.next_deadline(), Some(e.at(75_040)));
}

#[test]
fn an_unanswered_heartbeat_closes_and_reconnects_on_the_schedule() {
    let mut e = E::new(opts());
    e.open(0);
    e.tick(25_000);
    e.sent();
    e.events();
    e.tick(50_000);
    assert_eq!(
        e.actions(),
        vec![Action::Close {
            reason: "heartbeat timeout".into(),
            send_frame: true
        }]
    );
    let events = e.events();
    assert!(matches!(
        events[0],
        Event::Heartbeat {
            status: HeartbeatStatus::Timeout,
            ..
        }
    ));
    assert!(matches!(
        &events[1],
        Event::ConnectionStatus { state: ConnectionState::Connecting, reason: Some(r) } if r == "heartbeat timeout"
    ));
    // 1, 2, 5, 10, 10 s between failed attempts (jitter off).
    let mut t = 50_000;
    for delay in [1_000, 2_000, 5_000, 10_000, 10_000] {
        assert_eq!(e.engine.next_deadline(), Some(e.at(t + delay)));
        t += delay;
        e.tick(t);
        assert_eq!(e.actions(), vec![Action::Connect { fetch_token: false }]);
        e.engine
            .on_connected(Err(Error::Io("refused".into())), None, e.at(t));
        assert!(e.events().iter().any(
            |ev| matches!(ev, Event::Error { message } if message == "could not connect: I/O error: refused")
        ));
    }
    e.tick(t + 10_000);
    e.actions();
    e.engine.on_connected(Ok(()), None, e.at(t + 10_000));
    assert_eq!(*e.state.borrow(), ConnectionState::Connected);
    // The schedule starts over after a successful open.
    e.engine.on_closed("connection lost", e.at(t + 11_000));
    assert_eq!(e.engine.next_deadline(), Some(e.at(t + 12_000)));
}

#[test]
fn check_link_probes_at_once_and_skips_the_wait() {
    let mut e = E::new(opts());
    e.open(0);
    e.engine.check_link(e.at(1_000));
    e.tick(1_000);
    assert_eq!(e.sent(), vec![heartbeat("1")]);
    // The probe's reply is awaited for 5 s, not a whole interval.
    assert_eq!(e.engine.next_deadline(), Some(e.at(6_000)));
    e.tick(6_000);
    assert_eq!(
        e.actions(),
        vec![Action::Close {
            reason: "heartbeat timeout".into(),
            send_frame: true
        }]
    );
    // Waiting for a reconnect: a link check connects at once.
    e.engine.check_link(e.at(6_100));
    e.tick(6_100);
    assert_eq!(e.actions(), vec![Action::Connect { fetch_token: false }]);
    // A young attempt is left alone; an older one is restarted.
    e.engine.check_link(e.at(6_200));
    assert!(e.actions().is_empty());
    e.engine.check_link(e.at(7_200));
    assert_eq!(e.actions(), vec![Action::Connect { fetch_token: false }]);
}

#[test]
fn subscribing_connects_and_joins_once_open() {
    let mut e = E::new(opts());
    e.subscribe(1, "a", 0);
    assert_eq!(e.actions(), vec![Action::Connect { fetch_token: false }]);
    assert!(e.sent().is_empty());
    assert_eq!(e.snapshots[0].state(), Some(ChannelState::Joining));
    e.engine.on_connected(Ok(()), None, e.at(10));
    let sent = e.sent();
    assert_eq!(sent.len(), 1);
    assert!(sent[0].starts_with(r#"["1","1","realtime:a","phx_join""#));
}

#[test]
fn disconnect_errors_channels_and_connect_rejoins_them() {
    let mut e = E::new(opts());
    e.open(0);
    e.subscribe(1, "a", 0);
    e.text(
        r#"["1","1","realtime:a","phx_reply",{"status":"ok","response":{}}]"#,
        5,
    );
    e.sent();
    e.events();
    e.engine.disconnect(e.at(10));
    assert_eq!(
        e.actions(),
        vec![Action::Close {
            reason: "disconnect requested".into(),
            send_frame: true
        }]
    );
    assert_eq!(*e.state.borrow(), ConnectionState::Disconnected);
    assert_eq!(e.snapshots[0].state(), Some(ChannelState::Errored));
    assert_eq!(
        e.engine.next_deadline(),
        None,
        "nothing to do until connect"
    );
    e.open(20);
    let sent = e.sent();
    assert!(
        sent[0].starts_with(r#"["2","2","realtime:a","phx_join""#),
        "{sent:?}"
    );
}

#[test]
fn a_connect_result_after_disconnect_is_dropped() {
    let mut e = E::new(opts());
    e.engine.connect(e.at(0));
    e.actions();
    e.engine.disconnect(e.at(1));
    assert_eq!(
        e.actions(),
        vec![Action::Close {
            reason: "disconnect requested".into(),
            send_frame: false
        }]
    );
    e.engine.on_connected(Ok(()), None, e.at(2));
    assert_eq!(
        e.actions(),
        vec![Action::Close {
            reason: String::new(),
            send_frame: false
        }]
    );
    assert_eq!(*e.state.borrow(), ConnectionState::Disconnected);
}

/// 1,000 channels on one socket: each frame reaches exactly the channel of its topic, and
/// joined channels have no timers (the next wake-up is the heartbeat).
#[test]
fn routes_each_frame_to_exactly_its_channel_among_a_thousand() {
    const N: u64 = 1000;
    let mut e = E::new(opts());
    e.open(0);
    for id in 0..N {
        e.subscribe(id, &format!("room-{id}"), 0);
    }
    assert_eq!(e.engine.timers.len(), N as usize, "one join deadline each");
    for id in 0..N {
        let r = id + 1;
        e.text(
            &format!(
                r#"["{r}","{r}","realtime:room-{id}","phx_reply",{{"status":"ok","response":{{}}}}]"#
            ),
            1,
        );
    }
    assert_eq!(e.engine.timers.len(), 0);
    assert_eq!(e.engine.next_deadline(), Some(e.at(25_000)));
    e.emits();
    for id in (0..N).rev() {
        e.text(
            &format!(
                r#"[null,null,"realtime:room-{id}","broadcast",{{"type":"broadcast","event":"e","payload":{{"ch":{id}}}}}]"#
            ),
            2,
        );
    }
    e.text(
        r#"[null,null,"realtime:nobody","broadcast",{"event":"e","payload":{}}]"#,
        2,
    );
    let emits = e.emits();
    assert_eq!(emits.len(), N as usize);
    for (k, emit) in emits.iter().enumerate() {
        let id = N - 1 - k as u64;
        match emit {
            Emit::Event(Some(ch), e) => {
                let Event::Broadcast(b) = e.to_event() else {
                    panic!("{e:?}")
                };
                assert_eq!(*ch, id);
                assert_eq!(b.topic, format!("realtime:room-{id}"));
                assert_eq!(b.payload, Payload::Json(json!({ "ch": id })));
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn unsubscribe_removes_the_channel_from_routing_and_timers() {
    let mut e = E::new(opts());
    e.open(0);
    e.subscribe(1, "a", 0);
    e.subscribe(2, "b", 0);
    e.text(
        r#"["1","1","realtime:a","phx_reply",{"status":"ok","response":{}}]"#,
        1,
    );
    let (tx, mut rx) = oneshot::channel();
    e.engine.leave(1, CloseReason::Left, tx, e.at(2));
    e.text(
        r#"["1","3","realtime:a","phx_reply",{"status":"ok","response":{}}]"#,
        3,
    );
    assert_eq!(rx.try_recv(), Ok(Ok(())));
    let emits = e.emits();
    assert!(matches!(emits.last(), Some(Emit::RemoveChannel(1))));
    e.text(
        r#"[null,null,"realtime:a","broadcast",{"event":"e","payload":{}}]"#,
        4,
    );
    assert!(e.emits().is_empty());
    assert_eq!(e.engine.timers.len(), 1, "only b's join deadline is left");
    // Unknown channels: unsubscribe succeeds, pushes fail.
    let (tx, mut rx) = oneshot::channel();
    e.engine.leave(9, CloseReason::Removed, tx, e.at(5));
    assert_eq!(rx.try_recv(), Ok(Ok(())));
    let (tx, mut rx) = oneshot::channel();
    e.engine.push(9, PushOp::Untrack, tx, e.at(5));
    assert_eq!(rx.try_recv(), Ok(Err(Error::NotConnected)));
}

#[test]
fn set_auth_reaches_joined_channels_and_later_joins() {
    let mut e = E::new(opts());
    e.open(0);
    e.subscribe(1, "a", 0);
    e.text(
        r#"["1","1","realtime:a","phx_reply",{"status":"ok","response":{}}]"#,
        1,
    );
    e.sent();
    e.engine.set_auth(Some("t2".into()));
    assert_eq!(
        e.sent(),
        vec![r#"["1","2","realtime:a","access_token",{"access_token":"t2"}]"#.to_owned()]
    );
    e.engine.set_auth(Some("t2".into()));
    assert!(e.sent().is_empty(), "unchanged: nothing sent");
    assert_eq!(e.engine.token().as_deref(), Some("t2"));
    e.subscribe(2, "b", 2);
    assert!(e.sent()[0].ends_with(r#""access_token":"t2"}]"#));
}

/// The provider is asked on connect and when the token was refused, not on heartbeats or
/// ordinary rejoins (a hung provider must not stall every rejoin).
#[test]
fn with_a_token_provider_only_token_refusals_wait_for_it() {
    let mut e = E::new(opts().token_provider(|| Ok(Some("fresh".to_owned()))));
    e.engine.connect(e.at(0));
    assert_eq!(e.actions(), vec![Action::Connect { fetch_token: true }]);
    e.engine
        .on_connected(Ok(()), Some(Ok(Some("t1".into()))), e.at(0));
    assert_eq!(e.engine.token().as_deref(), Some("t1"));
    e.subscribe(1, "a", 0);
    e.sent();
    // An ordinary rejoin uses the token in force.
    e.text(r#"["1","1","realtime:a","phx_error",{}]"#, 1);
    e.tick(1_001);
    assert!(e.actions().is_empty());
    let sent = e.sent();
    assert!(
        sent.iter()
            .any(|s| s.contains("phx_join") && s.contains(r#""access_token":"t1""#)),
        "{sent:?}"
    );
    // A refused token: the rejoin waits for the provider, one fetch at a time.
    e.text(
        r#"["2","2","realtime:a","phx_reply",{"status":"error","response":{"reason":"InvalidJWTToken: Token has expired 3 seconds ago"}}]"#,
        2,
    );
    e.tick(1_900);
    assert!(e.actions().is_empty(), "not before the rejoin delay");
    e.tick(2_002);
    assert_eq!(e.actions(), vec![Action::FetchToken]);
    assert!(e.sent().iter().all(|s| !s.contains("phx_join")));
    e.tick(2_003);
    assert!(e.actions().is_empty());
    e.engine.on_token(Ok(Some("fresh".into())), e.at(2_100));
    let sent = e.sent();
    assert!(
        sent.iter()
            .any(|s| s.contains("phx_join") && s.contains(r#""access_token":"fresh""#)),
        "{sent:?}"
    );
    // Heartbeats do not ask it.
    e.tick(25_000);
    assert!(!e.actions().contains(&Action::FetchToken));
    e.engine.on_token(Err("offline".into()), e.at(25_001));
    assert!(e
        .events()
        .iter()
        .any(|ev| matches!(ev, Event::Error { message } if message == "token provider: offline")));
}

#[test]
fn malformed_frames_are_reported_and_change_nothing() {
    let mut e = E::new(opts());
    e.open(0);
    e.subscribe(1, "a", 0);
    e.sent();
    e.events();
    for bad in [
        "",
        "{}",
        "[1,2",
        r#"[null,null,"realtime:a","broadcast",{"payload":{]"#,
    ] {
        e.text(bad, 1);
    }
    e.engine.on_binary(vec![9, 9, 9].into(), e.at(1));
    let events = e.events();
    assert_eq!(events.len(), 5);
    assert!(events.iter().all(|ev| matches!(ev, Event::Error { .. })));
    assert_eq!(e.snapshots[0].state(), Some(ChannelState::Joining));
}

#[test]
fn shutdown_closes_everything() {
    let mut e = E::new(opts());
    e.open(0);
    e.subscribe(1, "a", 0);
    e.engine.shutdown(e.at(1));
    let actions = e.actions();
    assert_eq!(
        actions,
        vec![
            Action::Close {
                reason: "shutdown".into(),
                send_frame: true
            },
            Action::Shutdown
        ]
    );
    assert_eq!(*e.state.borrow(), ConnectionState::ShutDown);
    assert_eq!(e.snapshots[0].state(), Some(ChannelState::Closed));
}

/// A frame over `max_payload_size` is skipped with an error before it is decoded; the link
/// stays up and later frames still arrive. (A hand-written hostile frame: the real server
/// never sends more than its own limits allow.)
#[test]
fn frames_over_max_payload_size_are_skipped_and_reported() {
    let mut e = E::new(opts().max_payload_size(100));
    e.open(0);
    e.subscribe(1, "a", 0);
    e.text(
        r#"["1","1","realtime:a","phx_reply",{"status":"ok","response":{}}]"#,
        1,
    );
    e.sent();
    e.events();
    let big = format!(
        r#"[null,null,"realtime:a","broadcast",{{"event":"e","payload":{{"x":"{}"}}}}]"#,
        "x".repeat(200)
    );
    e.text(&big, 2);
    // A user broadcast (kind 4): topic and event lengths, no metadata, JSON payload.
    let mut bin = vec![4, 10, 1, 0, 1];
    bin.extend_from_slice(b"realtime:ae");
    bin.extend(std::iter::repeat_n(b'y', 200));
    e.engine.on_binary(bin.clone().into(), e.at(3));
    let events = e.events();
    assert_eq!(events.len(), 2, "{events:?}");
    for (ev, kind, len) in [
        (&events[0], "text", big.len()),
        (&events[1], "binary", bin.len()),
    ] {
        let want = format!("skipped a {kind} frame of {len} bytes: over max_payload_size (100)");
        assert!(
            matches!(ev, Event::Error { message } if *message == want),
            "{ev:?}"
        );
    }
    assert!(e.actions().is_empty());
    assert_eq!(*e.state.borrow(), ConnectionState::Connected);
    e.text(
        r#"[null,null,"realtime:a","broadcast",{"event":"e","payload":{}}]"#,
        4,
    );
    assert!(matches!(&e.events()[..], [Event::Broadcast(_)]));
}

/// A protocol error on the socket (e.g. a message over `max_message_size`) is reported, then
/// handled as a lost connection: close, reconnect on the schedule, rejoin.
#[test]
fn a_protocol_error_is_reported_and_the_link_reconnects() {
    let mut e = E::new(opts());
    e.open(0);
    e.subscribe(1, "a", 0);
    e.sent();
    e.events();
    e.engine
        .on_protocol_error("the server broke the protocol: too big", e.at(5));
    assert_eq!(
        e.actions(),
        vec![Action::Close {
            reason: "the server broke the protocol: too big".into(),
            send_frame: true
        }]
    );
    let events = e.events();
    assert!(matches!(
        &events[0],
        Event::Error { message } if message == "the server broke the protocol: too big"
    ));
    assert_eq!(*e.state.borrow(), ConnectionState::Connecting);
    e.tick(1_005);
    assert_eq!(e.actions(), vec![Action::Connect { fetch_token: false }]);
    e.engine.on_connected(Ok(()), None, e.at(1_005));
    assert!(e.sent().iter().any(|f| f.contains("phx_join")));
    // Once the link is gone, a late error from the old socket changes nothing.
    e.engine.on_closed("closed", e.at(1_006));
    e.events();
    e.engine.on_protocol_error("late", e.at(1_007));
    assert!(e.events().is_empty());
}
