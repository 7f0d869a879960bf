//! The client under real network faults, injected by a TCP proxy between it and the
//! in-process server (tests/support/fault_proxy.rs): black-holed (half-open) links, dropped
//! connections, refused connections, server kill and restart, latency, throttling, a stalled
//! consumer, and the token lifecycle. Each test asserts the app-visible sequence of statuses
//! and events with deadlines, and that no event is duplicated or reordered.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use serde_json::json;
use supa_realtime::{
    ChannelOptions, ClientOptions, ConnectionState, ErrorKind, Event, HeartbeatStatus,
    PostgresChangesFilter, PresenceEvent, RealtimeChannel, RealtimeClient, SubscribeStatus,
};
use supa_realtime_server::{Config, Limits, Server};
use support::fault_proxy::{FaultProxy, Mode};
use support::resilience::{
    assert_status_grammar, assert_strictly_increasing, lifecycle_from, seq_of, sql, Timeline,
};
use support::{user_token, DEADLINE};

/// Client options through `proxy` with heartbeat interval `h` and quick retries.
fn via(proxy: &FaultProxy, server: &Server, h: Duration) -> ClientOptions {
    ClientOptions::new(
        format!("ws://{}/realtime/v1", proxy.addr()),
        server.anon_key(),
    )
    .heartbeat_interval(h)
    // A handshake tried while the link is still dead gives up quickly.
    .push_timeout(Duration::from_secs(2))
    .reconnect_delays(vec![Duration::from_millis(100), Duration::from_millis(300)])
    .reconnect_jitter(0.0)
    .rejoin_delays(vec![Duration::from_millis(100), Duration::from_millis(300)])
}

fn direct(server: &Server) -> RealtimeClient {
    RealtimeClient::new(support::options(server)).unwrap()
}

fn is_status(e: &Event, topic: &str, status: SubscribeStatus) -> bool {
    matches!(e, Event::ChannelStatus { topic: t, status: s, .. } if t == topic && *s == status)
}

/// `subscribe_blocking` returns once the status is set; its event may still be on the way to
/// the listener. Marks are taken after it arrived.
fn joined(t: &Timeline, topic: &str) {
    t.wait_from(0, DEADLINE, "SUBSCRIBED delivered", |e| {
        is_status(e, topic, SubscribeStatus::Subscribed)
    });
}

fn seqs(t: &Timeline) -> Vec<u64> {
    t.events().iter().filter_map(seq_of).collect()
}

/// Sends broadcasts `range` as `tick {seq}` from `peer`, each acknowledged by the server.
fn publish(peer: &RealtimeChannel, range: std::ops::RangeInclusive<u64>) {
    for seq in range {
        peer.send_broadcast_blocking("tick", json!({ "seq": seq }).into(), DEADLINE)
            .expect("peer broadcast acked");
    }
}

fn wait_seq(t: &Timeline, seq: u64) {
    t.wait_from(0, DEADLINE, &format!("broadcast {seq}"), |e| {
        seq_of(e) == Some(seq)
    });
}

/// A victim client behind the proxy and a peer straight on the server, both in `room`; the
/// victim tracks presence as "victim".
struct Rig {
    server: Server,
    proxy: FaultProxy,
    client: RealtimeClient,
    ch: RealtimeChannel,
    t: Timeline,
    peer_client: RealtimeClient,
    peer: RealtimeChannel,
    peer_t: Timeline,
    topic: String,
}

fn rig(room: &str, h: Duration) -> Rig {
    let server = support::server();
    let proxy = FaultProxy::start(server.local_addr());
    let client = RealtimeClient::new(via(&proxy, &server, h)).unwrap();
    let t = Timeline::new();
    client.on_event(t.sink());
    let ch = client.channel(room, ChannelOptions::default().presence_key("victim"));
    ch.on_presence(|_| {});
    ch.subscribe_blocking(DEADLINE).expect("victim subscribed");
    joined(&t, &format!("realtime:{room}"));
    ch.track_blocking(json!({"v": 1}), DEADLINE)
        .expect("tracked");
    let peer_client = direct(&server);
    let peer_t = Timeline::new();
    peer_client.on_event(peer_t.sink());
    let peer = peer_client.channel(
        room,
        ChannelOptions::default()
            .broadcast_ack(true)
            .presence_key("peer"),
    );
    peer.on_presence(|_| {});
    peer.subscribe_blocking(DEADLINE).expect("peer subscribed");
    let topic = format!("realtime:{room}");
    Rig {
        server,
        proxy,
        client,
        ch,
        t,
        peer_client,
        peer,
        peer_t,
        topic,
    }
}

/// The exact lifecycle sequence of one outage noticed by the client and healed.
fn outage_then_recovery(topic: &str) -> Vec<String> {
    vec![
        format!("{topic}:CHANNEL_ERROR"),
        "conn:Connecting".into(),
        "conn:Connected".into(),
        format!("{topic}:SUBSCRIBED"),
        format!("{topic}:resumed"),
    ]
}

#[test]
fn a_black_holed_link_is_noticed_within_two_heartbeats_and_everything_comes_back() {
    let h = Duration::from_secs(2);
    let r = rig("blackhole", h);
    publish(&r.peer, 1..=10);
    wait_seq(&r.t, 10);
    let mark = r.t.len();
    let peer_mark = r.peer_t.len();

    let cut = Instant::now();
    r.proxy.set_mode(Mode::BlackHole);
    // Half-open: the sockets stay up, so only the heartbeat can tell. Within 2H the client
    // gives up on the link (the slack covers event delivery on a loaded machine).
    let (i, noticed) = r.t.wait_from(mark, h * 2 + Duration::from_secs(2), "link declared dead", |e| {
        matches!(e, Event::ConnectionStatus { state: ConnectionState::Connecting, reason: Some(r) } if r == "heartbeat timeout")
    });
    assert!(
        noticed - cut <= h * 2 + Duration::from_secs(1),
        "dead link noticed after {:?} (H = {h:?})",
        noticed - cut
    );
    assert!(matches!(
        r.t.events()[..i]
            .iter()
            .rev()
            .find(|e| matches!(e, Event::Heartbeat { .. })),
        Some(Event::Heartbeat {
            status: HeartbeatStatus::Timeout,
            ..
        })
    ));
    // Broadcasts sent into the dead link are lost (and must not show up later).
    publish(&r.peer, 11..=20);
    r.proxy.set_mode(Mode::Pass);
    let (j, _) = r.t.wait_from(i, DEADLINE, "resumed", |e| {
        matches!(e, Event::Resumed { .. })
    });
    let gap = match &r.t.events()[j] {
        Event::Resumed { gap, .. } => *gap,
        _ => unreachable!(),
    };
    assert!(gap > Duration::ZERO && gap <= cut.elapsed(), "gap {gap:?}");
    publish(&r.peer, 21..=30);
    wait_seq(&r.t, 30);

    assert_eq!(
        lifecycle_from(&r.t.events(), mark),
        outage_then_recovery(&r.topic)
    );
    let got = seqs(&r.t);
    assert_strictly_increasing("victim broadcasts", &got);
    assert!((1..=10).chain(21..=30).all(|s| got.contains(&s)), "{got:?}");
    // Presence was tracked again on the new join: the peer sees the victim join anew.
    r.peer_t.wait_from(peer_mark, DEADLINE, "victim re-tracked", |e| {
        matches!(e, Event::Presence(PresenceEvent::Join { key, new, .. }) if key == "victim" && new[0]["v"] == 1)
    });
    assert_status_grammar(&r.t.events());
    let m = r.client.metrics();
    assert_eq!((m.connects, m.reconnects), (2, 1));
    assert!(m.time_disconnected > Duration::ZERO);
}

#[test]
fn a_dropped_connection_reconnects_and_rejoins_in_order() {
    let r = rig("drop", Duration::from_secs(25));
    publish(&r.peer, 1..=5);
    wait_seq(&r.t, 5);
    let mark = r.t.len();
    r.proxy.drop_connections();
    let (i, _) = r.t.wait_from(mark, DEADLINE, "resumed", |e| {
        matches!(e, Event::Resumed { .. })
    });
    publish(&r.peer, 6..=10);
    wait_seq(&r.t, 10);
    assert_eq!(
        lifecycle_from(&r.t.events(), mark),
        outage_then_recovery(&r.topic)
    );
    assert!(matches!(
        &r.t.events()[mark..i].iter().find(|e| matches!(e, Event::ConnectionStatus { .. })),
        Some(Event::ConnectionStatus { reason: Some(reason), .. }) if reason.starts_with("connection lost") || reason.starts_with("closed")
    ));
    let got = seqs(&r.t);
    assert_strictly_increasing("victim broadcasts", &got);
    assert_eq!(got, (1..=10).collect::<Vec<_>>());
    assert_status_grammar(&r.t.events());
    assert_eq!(r.ch.state(), supa_realtime::ChannelState::Joined);
}

#[test]
fn channels_rejoin_with_the_token_set_during_the_outage() {
    let r = rig("newtoken", Duration::from_secs(25));
    let mark = r.t.len();
    r.proxy.set_refuse(true);
    r.proxy.drop_connections();
    r.t.wait_from(mark, DEADLINE, "outage", |e| {
        is_status(e, "realtime:newtoken", SubscribeStatus::ChannelError)
    });
    // A token the server refuses, set while disconnected: the rejoin must carry it, so the
    // server refuses the rejoin (no token provider: terminal at once).
    r.client.set_auth(Some("not-a-jwt".into()));
    r.proxy.set_refuse(false);
    let (i, _) =
        r.t.wait_from(mark, DEADLINE, "rejoin refused", Event::is_token_rejected);
    r.t.wait_from(i, DEADLINE, "final CLOSED", |e| {
        is_status(e, "realtime:newtoken", SubscribeStatus::Closed)
    });
    assert_eq!(
        lifecycle_from(&r.t.events(), mark),
        [
            "realtime:newtoken:CHANNEL_ERROR",
            "conn:Connecting",
            "conn:Connected",
            "realtime:newtoken:CHANNEL_ERROR(terminal)",
            "realtime:newtoken:CLOSED"
        ]
    );
    assert!(
        matches!(&r.t.events()[i], Event::ChannelStatus { reason: Some(reason), .. } if reason.starts_with("MalformedJWT"))
    );
    assert_status_grammar(&r.t.events());
}

#[test]
fn refused_connections_are_retried_on_the_schedule_until_the_server_is_back() {
    let r = rig("refused", Duration::from_secs(25));
    let mark = r.t.len();
    r.proxy.set_refuse(true);
    r.proxy.drop_connections();
    // Several failed attempts, each reported as an error, the state staying Connecting.
    let mut from = mark;
    for n in 0..3 {
        from =
            r.t.wait_from(
                from,
                DEADLINE,
                &format!("failed attempt {n}"),
                |e| matches!(e, Event::Error { message } if message.starts_with("could not connect")),
            )
            .0 + 1;
    }
    assert_eq!(r.client.connection_state(), ConnectionState::Connecting);
    r.proxy.set_refuse(false);
    r.t.wait_from(from, DEADLINE, "resumed", |e| {
        matches!(e, Event::Resumed { .. })
    });
    assert_eq!(
        lifecycle_from(&r.t.events(), mark),
        outage_then_recovery(&r.topic)
    );
    assert_status_grammar(&r.t.events());
}

#[test]
fn a_killed_server_is_replaced_and_channels_presence_come_back() {
    let Rig {
        server,
        proxy,
        client,
        ch: _ch,
        t,
        peer_client,
        peer: _,
        peer_t: _,
        topic,
    } = rig("phoenix", Duration::from_secs(25));
    let mark = t.len();
    drop(peer_client);
    server.shutdown();
    t.wait_from(mark, DEADLINE, "channel error", |e| {
        is_status(e, &topic, SubscribeStatus::ChannelError)
    });
    // A new server process (here in-process, on a fresh port) behind the same address.
    let second = support::server();
    proxy.set_upstream(second.local_addr());
    t.wait_from(mark, DEADLINE, "resumed", |e| {
        matches!(e, Event::Resumed { .. })
    });
    assert_eq!(
        lifecycle_from(&t.events(), mark),
        outage_then_recovery(&topic)
    );
    // Presence is tracked on the new server, broadcasts flow again.
    let peer_client = direct(&second);
    let pt = Timeline::new();
    peer_client.on_event(pt.sink());
    let peer = peer_client.channel("phoenix", ChannelOptions::default().broadcast_ack(true));
    peer.on_presence(|_| {});
    peer.subscribe_blocking(DEADLINE).unwrap();
    pt.wait_from(
        0,
        DEADLINE,
        "victim on the new server",
        |e| matches!(e, Event::Presence(PresenceEvent::Join { key, .. }) if key == "victim"),
    );
    publish(&peer, 1..=3);
    wait_seq(&t, 3);
    assert_status_grammar(&t.events());
    drop(client);
    second.shutdown();
}

#[test]
fn latency_and_throttling_slow_the_link_but_lose_and_reorder_nothing() {
    // H = 10 s: the throttled backlog below (~4 s) must not look like a dead link.
    let h = Duration::from_secs(10);
    let r = rig("slow", h);
    let mark = r.t.len();
    // 150 ms each way: heartbeats still come back within the interval.
    r.proxy.set_mode(Mode::Delay(Duration::from_millis(150)));
    r.client.network_changed(); // a heartbeat through the slow link
    r.t.wait_from(mark, DEADLINE, "heartbeat through the delay", |e| {
        matches!(
            e,
            Event::Heartbeat {
                status: HeartbeatStatus::Ok,
                ..
            }
        )
    });
    publish(&r.peer, 1..=40);
    wait_seq(&r.t, 40);
    // 16 KB/s each way, 60 broadcasts of ~1 KB: a few seconds of backlog.
    r.proxy.set_mode(Mode::Throttle(16 * 1024));
    let filler = "x".repeat(1000);
    for seq in 41..=100 {
        r.peer
            .send_broadcast_blocking(
                "tick",
                json!({"seq": seq, "filler": filler}).into(),
                DEADLINE,
            )
            .unwrap();
    }
    wait_seq(&r.t, 100);
    r.proxy.set_mode(Mode::Pass);
    assert_eq!(seqs(&r.t), (1..=100).collect::<Vec<_>>());
    assert!(
        lifecycle_from(&r.t.events(), mark).is_empty(),
        "a slow link is not a dead one: {:?}",
        lifecycle_from(&r.t.events(), mark)
    );
    let m = r.client.metrics();
    let (p50, p99) = (m.heartbeat_rtt_p50.unwrap(), m.heartbeat_rtt_p99.unwrap());
    assert!(p50 <= p99);
    assert!(m.messages_in >= 100 && m.messages_out >= 3, "{m:?}");
    assert!(m.join_latency.iter().any(|(t, _)| t == &r.topic), "{m:?}");
}

#[test]
fn a_stalled_consumer_keeps_memory_bounded_and_lifecycle_events() {
    let server = support::server();
    let client = RealtimeClient::new(support::options(&server).queue_capacity(50)).unwrap();
    let t = Timeline::new();
    // The first broadcast blocks the dispatcher until released.
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let release_rx = parking_lot::Mutex::new(release_rx);
    let blocked = Arc::new(AtomicUsize::new(0));
    let b2 = blocked.clone();
    let sink = t.sink();
    client.on_event(move |e| {
        sink(e);
        if seq_of(e) == Some(1) {
            b2.store(1, Ordering::SeqCst);
            let _ = release_rx.lock().recv_timeout(DEADLINE);
        }
    });
    let ch = client.channel("stall", ChannelOptions::default());
    ch.subscribe_blocking(DEADLINE).unwrap();
    let peer_client = direct(&server);
    let peer = peer_client.channel("stall", ChannelOptions::default().broadcast_ack(true));
    peer.subscribe_blocking(DEADLINE).unwrap();
    publish(&peer, 1..=500);
    // While the consumer is stuck on broadcast 1, the queue holds at most its 50 data
    // events: the other 449 are dropped as they arrive.
    let deadline = Instant::now() + DEADLINE;
    while client.metrics().dropped_events < 449 {
        assert!(Instant::now() < deadline, "{:?}", client.metrics());
        std::thread::sleep(Duration::from_millis(20));
    }
    let m = client.metrics();
    assert_eq!(blocked.load(Ordering::SeqCst), 1);
    assert!(m.queue_depth <= 51, "{m:?}");
    assert_eq!(m.dropped_events, 449, "{m:?}");
    // A lifecycle event queued behind the backlog is not dropped.
    client.disconnect();
    release_tx.send(()).unwrap();
    let (i, _) = t.wait_from(0, DEADLINE, "lagged", |e| matches!(e, Event::Lagged { .. }));
    t.wait_from(i, DEADLINE, "disconnected", |e| {
        matches!(
            e,
            Event::ConnectionStatus {
                state: ConnectionState::Disconnected,
                ..
            }
        )
    });
    let events = t.events();
    let got: Vec<u64> = events.iter().filter_map(seq_of).collect();
    let lagged: u64 = events
        .iter()
        .map(|e| match e {
            Event::Lagged { dropped } => *dropped,
            _ => 0,
        })
        .sum();
    assert_strictly_increasing("delivered", &got);
    assert_eq!(got.len() as u64 + lagged, 500);
    let m = client.metrics();
    assert_eq!(m.dropped_events, lagged);
    assert!(m.lagged_events >= 1);
}

#[test]
fn the_token_provider_refreshes_before_expiry_and_the_channel_outlives_its_first_token() {
    let server = Arc::new(support::server());
    let (calls_tx, calls_rx) = mpsc::channel::<()>();
    let s2 = server.clone();
    let calls_tx = parking_lot::Mutex::new(calls_tx);
    // Every token lives 4 s; no heartbeat polling within the test (H = 25 s).
    let client = RealtimeClient::new(support::options(&server).token_provider(move || {
        let _ = calls_tx.lock().send(());
        Ok(Some(user_token(&s2, "authenticated", 4)))
    }))
    .unwrap();
    let t = Timeline::new();
    client.on_event(t.sink());
    let ch = client.channel(
        "fresh",
        ChannelOptions::default()
            .broadcast_self(true)
            .broadcast_ack(true),
    );
    ch.subscribe_blocking(DEADLINE).unwrap();
    let start = Instant::now();
    // Refreshes keep coming ahead of each expiry; wait until well past the first token's.
    let mut n = 0;
    while start.elapsed() < Duration::from_secs(7) {
        calls_rx
            .recv_timeout(Duration::from_secs(5))
            .expect("the provider is asked before the token expires");
        n += 1;
    }
    assert!(n >= 3, "{n} provider calls");
    ch.send_broadcast_blocking("alive", json!({"seq": 1}).into(), DEADLINE)
        .expect("still joined after the first token expired");
    assert!(
        !t.events().iter().any(|e| matches!(e, Event::ChannelStatus { status, .. } if *status != SubscribeStatus::Subscribed)),
        "{:?}",
        lifecycle_from(&t.events(), 0)
    );

    // The same short token without a provider: the server closes the channel at expiry, and
    // the app gets the distinct terminal status, then CLOSED.
    let lone = RealtimeClient::new(support::options(&server).access_token(user_token(
        &server,
        "authenticated",
        2,
    )))
    .unwrap();
    let lt = Timeline::new();
    lone.on_event(lt.sink());
    let lch = lone.channel("fresh", ChannelOptions::default());
    lch.subscribe_blocking(DEADLINE).unwrap();
    let (i, _) = lt.wait_from(0, DEADLINE, "token rejected", Event::is_token_rejected);
    lt.wait_from(i, DEADLINE, "closed", |e| {
        is_status(e, "realtime:fresh", SubscribeStatus::Closed)
    });
    assert_eq!(
        lifecycle_from(&lt.events(), 0),
        [
            "conn:Connecting",
            "conn:Connected",
            "realtime:fresh:SUBSCRIBED",
            "realtime:fresh:CHANNEL_ERROR(terminal)",
            "realtime:fresh:CLOSED"
        ]
    );
}

#[test]
fn a_refused_token_is_a_terminal_status_not_an_endless_rejoin_loop() {
    let server = support::server();
    let calls = Arc::new(AtomicUsize::new(0));
    let c2 = calls.clone();
    let client = RealtimeClient::new(support::options(&server).token_provider(move || {
        c2.fetch_add(1, Ordering::SeqCst);
        Ok(Some("not-a-jwt".to_owned()))
    }))
    .unwrap();
    let t = Timeline::new();
    client.on_event(t.sink());
    let ch = client.channel("badtoken", ChannelOptions::default());
    ch.subscribe().unwrap();
    t.wait_from(0, DEADLINE, "final CLOSED", |e| {
        is_status(e, "realtime:badtoken", SubscribeStatus::Closed)
    });
    // auth_retries (3) recoverable refusals, each after a provider call, then the terminal one.
    let topic = "realtime:badtoken";
    let mut expected = vec!["conn:Connecting".to_owned(), "conn:Connected".to_owned()];
    expected.extend(std::iter::repeat_n(format!("{topic}:CHANNEL_ERROR"), 3));
    expected.push(format!("{topic}:CHANNEL_ERROR(terminal)"));
    // Then the one final CLOSED, with the server's reason.
    expected.push(format!("{topic}:CLOSED"));
    assert_eq!(lifecycle_from(&t.events(), 0), expected);
    assert_eq!(ch.state(), supa_realtime::ChannelState::Closed);
    assert!(ch.subscribe().is_err(), "a stopped channel does not rejoin");
    assert_eq!(calls.load(Ordering::SeqCst), 4); // connect + 3 rejoins
    let reason = t.events().into_iter().find_map(|e| match e {
        Event::ChannelStatus {
            reason: Some(r),
            error_kind: Some(ErrorKind::Terminal),
            ..
        } => Some(r),
        _ => None,
    });
    assert_eq!(
        reason.as_deref(),
        Some("MalformedJWT: The token provided is not a valid JWT")
    );
}

#[test]
fn permanent_join_errors_stop_and_transient_ones_retry_on_the_schedule() {
    let server = Server::start(Config {
        limits: Limits {
            max_channels_per_client: 1,
            ..Limits::default()
        },
        ..Config::default()
    })
    .unwrap();
    let client = direct(&server);
    let t = Timeline::new();
    client.on_event(t.sink());
    let first = client.channel("one", ChannelOptions::default());
    first.subscribe_blocking(DEADLINE).unwrap();
    // Transient: the per-socket channel limit. Retried until the first channel leaves.
    let second = client.channel("two", ChannelOptions::default());
    second.subscribe().unwrap();
    let mut from = 0;
    for _ in 0..2 {
        from = t
            .wait_from(from, DEADLINE, "rate-limited join", |e| {
                matches!(e, Event::ChannelStatus { topic, status: SubscribeStatus::ChannelError, error_kind: Some(ErrorKind::Recoverable), reason: Some(r) }
                    if topic == "realtime:two" && r.starts_with("ChannelRateLimitReached"))
            })
            .0
            + 1;
    }
    first.unsubscribe_blocking(DEADLINE).unwrap();
    t.wait_from(from, DEADLINE, "two joins", |e| {
        is_status(e, "realtime:two", SubscribeStatus::Subscribed)
    });
    // Permanent: an empty topic name. One terminal error, the channel stops.
    let mark = t.len();
    second.unsubscribe_blocking(DEADLINE).unwrap();
    let bad = client.channel("", ChannelOptions::default());
    assert!(bad.subscribe_blocking(DEADLINE).is_err());
    let probe = client.channel("after", ChannelOptions::default());
    probe.subscribe_blocking(DEADLINE).unwrap();
    t.wait_from(mark, DEADLINE, "after joined", |e| {
        is_status(e, "realtime:after", SubscribeStatus::Subscribed)
    });
    let bad_statuses: Vec<String> = lifecycle_from(&t.events(), mark)
        .into_iter()
        .filter(|l| l.starts_with("realtime::"))
        .collect();
    assert_eq!(
        bad_statuses,
        ["realtime::CHANNEL_ERROR(terminal)", "realtime::CLOSED"]
    );
    assert_status_grammar(&t.events());
}

#[test]
fn network_changed_and_foreground_replace_a_dead_link_without_waiting_a_heartbeat() {
    // H = 60 s: only the probe can notice the dead link within the test's deadline.
    let server = support::server();
    let proxy = FaultProxy::start(server.local_addr());
    let calls = Arc::new(AtomicUsize::new(0));
    let c2 = calls.clone();
    let anon = server.anon_key();
    let client = RealtimeClient::new(
        via(&proxy, &server, Duration::from_secs(60)).token_provider(move || {
            c2.fetch_add(1, Ordering::SeqCst);
            Ok(Some(anon.clone()))
        }),
    )
    .unwrap();
    let t = Timeline::new();
    client.on_event(t.sink());
    let ch = client.channel("probe", ChannelOptions::default());
    ch.subscribe_blocking(DEADLINE).unwrap();
    joined(&t, "realtime:probe");
    let mark = t.len();
    proxy.set_mode(Mode::BlackHole);
    client.network_changed();
    let (i, _) = t.wait_from(mark, DEADLINE, "probe timed out", |e| {
        matches!(e, Event::ConnectionStatus { reason: Some(r), .. } if r == "heartbeat timeout")
    });
    proxy.set_mode(Mode::Pass);
    t.wait_from(i, DEADLINE, "resumed", |e| {
        matches!(e, Event::Resumed { .. })
    });
    assert_eq!(
        lifecycle_from(&t.events(), mark),
        outage_then_recovery("realtime:probe")
    );
    // Foreground: a probe (answered: the link is fine) and a provider call.
    let before = calls.load(Ordering::SeqCst);
    let mark = t.len();
    client.app_backgrounded();
    client.app_foregrounded();
    t.wait_from(mark, DEADLINE, "probe answered", |e| {
        matches!(
            e,
            Event::Heartbeat {
                status: HeartbeatStatus::Ok,
                ..
            }
        )
    });
    let deadline = Instant::now() + DEADLINE;
    while calls.load(Ordering::SeqCst) == before {
        assert!(
            Instant::now() < deadline,
            "provider not asked on foreground"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(lifecycle_from(&t.events(), mark).is_empty());
}

#[test]
fn postgres_changes_resume_after_a_black_hole_with_readiness_and_no_duplicates() {
    let Ok(url) = std::env::var("DATABASE_URL") else {
        eprintln!("SKIPPED: DATABASE_URL not set (scripts/test sets it)");
        return;
    };
    let table = "fault_rows";
    let server = Server::start(Config {
        database_url: Some(url.clone()),
        ..Config::default()
    })
    .unwrap();
    sql(
        &url,
        &format!(
            "drop table if exists {table};
             create table {table} (id int primary key, note text);
             alter publication supabase_realtime add table {table};"
        ),
    );
    let proxy = FaultProxy::start(server.local_addr());
    let h = Duration::from_millis(1000);
    let client = RealtimeClient::new(via(&proxy, &server, h)).unwrap();
    let t = Timeline::new();
    client.on_event(t.sink());
    let ch = client.channel("rows", ChannelOptions::default());
    ch.on_postgres_changes(
        PostgresChangesFilter::new("INSERT", "public").table(table),
        |_| {},
    )
    .unwrap();
    ch.subscribe_blocking(DEADLINE).unwrap();
    let ids = |t: &Timeline| -> Vec<i64> {
        t.events()
            .iter()
            .filter_map(|e| match e {
                Event::PostgresChange(c) => c.new["id"].as_i64(),
                _ => None,
            })
            .collect()
    };
    let insert = |range: std::ops::RangeInclusive<i64>| {
        let values: Vec<String> = range.map(|i| format!("({i}, 'n{i}')")).collect();
        sql(
            &url,
            &format!("insert into {table} values {};", values.join(",")),
        );
    };
    insert(1..=10);
    t.wait_from(
        0,
        DEADLINE,
        "row 10",
        |e| matches!(e, Event::PostgresChange(c) if c.new["id"] == 10),
    );
    let mark = t.len();
    proxy.set_mode(Mode::BlackHole);
    let (i, _) = t.wait_from(mark, h * 2 + Duration::from_secs(1), "dead", |e| {
        matches!(e, Event::ConnectionStatus { reason: Some(r), .. } if r == "heartbeat timeout")
    });
    proxy.set_mode(Mode::Pass);
    // SUBSCRIBED again only once the server re-subscribed to PostgreSQL: rows committed
    // from then on are delivered.
    let (j, _) = t.wait_from(i, DEADLINE, "resumed", |e| {
        matches!(e, Event::Resumed { .. })
    });
    assert!(t.events()[i..j].iter().any(|e| matches!(e, Event::System { payload, .. } if payload["message"] == "Subscribed to PostgreSQL")));
    insert(11..=20);
    t.wait_from(
        j,
        DEADLINE,
        "row 20",
        |e| matches!(e, Event::PostgresChange(c) if c.new["id"] == 20),
    );
    let got = ids(&t);
    assert_eq!(got, (1..=20).collect::<Vec<_>>());
    assert_eq!(
        lifecycle_from(&t.events(), mark),
        outage_then_recovery("realtime:rows")
    );
    assert_status_grammar(&t.events());
    drop(client);
    drop(proxy);
    server.shutdown();
}

#[test]
fn network_changed_abandons_a_connect_attempt_stuck_on_the_dead_route() {
    let server = support::server();
    let proxy = FaultProxy::start(server.local_addr());
    // A handshake may hang for 30 s: longer than the test's deadline.
    let client = RealtimeClient::new(
        via(&proxy, &server, Duration::from_millis(500)).push_timeout(Duration::from_secs(30)),
    )
    .unwrap();
    let t = Timeline::new();
    client.on_event(t.sink());
    let ch = client.channel("stuck", ChannelOptions::default());
    ch.subscribe_blocking(DEADLINE).unwrap();
    joined(&t, "realtime:stuck");
    let mark = t.len();
    let before = proxy.accepted();
    proxy.set_mode(Mode::BlackHole);
    t.wait_from(mark, DEADLINE, "dead link", |e| {
        matches!(e, Event::ConnectionStatus { reason: Some(r), .. } if r == "heartbeat timeout")
    });
    // The next attempt reaches the proxy and its handshake is swallowed.
    let deadline = Instant::now() + DEADLINE;
    while proxy.accepted() == before {
        assert!(Instant::now() < deadline, "no reconnect attempt");
        std::thread::sleep(Duration::from_millis(10));
    }
    // Scenario time, not synchronisation: the attempt has been stuck for a while (younger
    // attempts are left alone so that a flapping network cannot starve them).
    std::thread::sleep(Duration::from_millis(1200));
    proxy.set_mode(Mode::Pass);
    client.network_changed();
    t.wait_from(mark, DEADLINE, "resumed", |e| {
        matches!(e, Event::Resumed { .. })
    });
    assert_eq!(
        lifecycle_from(&t.events(), mark),
        outage_then_recovery("realtime:stuck")
    );
}
