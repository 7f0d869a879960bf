//! The client against the in-process server over real sockets: broadcast, presence, auth,
//! join errors, unsubscribe, server-side closes, reconnects and re-entrant callbacks.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde_json::json;
use supa_realtime::{
    ChannelOptions, ChannelState, ConnectionState, DispatchMode, Error, ErrorKind, Event,
    HeartbeatStatus, Payload, PresenceEvent, RealtimeClient, SubscribeStatus, Vsn,
};
use supa_realtime_server::{Config, Limits, Server};
use support::{broadcast_json, client, options, server, user_token, Recorder, DEADLINE};

#[test]
fn broadcast_self_ack_json_and_binary() {
    let server = server();
    let a = client(&server);
    let b = client(&server);
    let (ra, rb) = (Recorder::new(), Recorder::new());
    let cha = a.channel(
        "room1",
        ChannelOptions::default()
            .broadcast_self(true)
            .broadcast_ack(true),
    );
    cha.on_event(ra.sink());
    let chb = b.channel("room1", ChannelOptions::default());
    chb.on_event(rb.sink());
    cha.subscribe_blocking(DEADLINE).expect("a subscribed");
    chb.subscribe_blocking(DEADLINE).expect("b subscribed");
    assert_eq!(cha.state(), ChannelState::Joined);
    assert_eq!(a.connection_state(), ConnectionState::Connected);

    // With ack on, the send resolves on the server's reply; with self on, A hears itself.
    cha.send_broadcast_blocking("cursor", json!({"x": 1}).into(), DEADLINE)
        .expect("acked");
    assert_eq!(
        broadcast_json(
            &ra.wait("own broadcast", |e| broadcast_json(e, "cursor").is_some()),
            "cursor"
        ),
        Some(json!({"x": 1}))
    );
    assert_eq!(
        broadcast_json(
            &rb.wait("b gets it", |e| broadcast_json(e, "cursor").is_some()),
            "cursor"
        ),
        Some(json!({"x": 1}))
    );

    // Binary payloads travel as kind 3 → kind 4 frames.
    cha.send_broadcast_blocking("blob", Payload::Binary(vec![0, 1, 2, 255]), DEADLINE)
        .expect("binary acked");
    let got = rb.wait(
        "binary",
        |e| matches!(e, Event::Broadcast(b) if b.event == "blob"),
    );
    match got {
        Event::Broadcast(b) => assert_eq!(b.payload, Payload::Binary(vec![0, 1, 2, 255])),
        _ => unreachable!(),
    }

    // B has self off: its own broadcast does not come back, but A receives it.
    chb.send_broadcast_blocking("from-b", json!({"n": 2}).into(), DEADLINE)
        .expect("sent");
    ra.wait("a gets b's", |e| broadcast_json(e, "from-b").is_some());
    // A later message from A proves B's own one was not delivered in between.
    cha.send_broadcast_blocking("marker", json!({}).into(), DEADLINE)
        .unwrap();
    rb.wait("marker", |e| broadcast_json(e, "marker").is_some());
    assert!(!rb
        .events()
        .iter()
        .any(|e| broadcast_json(e, "from-b").is_some()));
}

#[test]
fn v1_and_v2_clients_share_a_channel() {
    let server = server();
    let v1 = RealtimeClient::new(options(&server).vsn(Vsn::V1)).unwrap();
    let v2 = client(&server);
    let (r1, r2) = (Recorder::new(), Recorder::new());
    let c1 = v1.channel("mixed", ChannelOptions::default());
    c1.on_event(r1.sink());
    let c2 = v2.channel("mixed", ChannelOptions::default());
    c2.on_event(r2.sink());
    c1.subscribe_blocking(DEADLINE).unwrap();
    c2.subscribe_blocking(DEADLINE).unwrap();
    c1.send_broadcast_blocking("hi", json!({"from": 1}).into(), DEADLINE)
        .unwrap();
    r2.wait("v2 hears v1", |e| {
        broadcast_json(e, "hi") == Some(json!({"from": 1}))
    });
    c2.send_broadcast_blocking("hi", json!({"from": 2}).into(), DEADLINE)
        .unwrap();
    r1.wait("v1 hears v2", |e| {
        broadcast_json(e, "hi") == Some(json!({"from": 2}))
    });
    assert!(matches!(
        c1.send_broadcast_blocking("bin", Payload::Binary(vec![1]), DEADLINE),
        Err(Error::InvalidArgument(_))
    ));
}

#[test]
fn presence_between_two_clients() {
    let server = server();
    let a = client(&server);
    let b = client(&server);
    let rb = Recorder::new();
    let cha = a.channel("lobby", ChannelOptions::default().presence_key("alice"));
    cha.on_presence(|_| {});
    let chb = b.channel("lobby", ChannelOptions::default().presence_key("bob"));
    let seen = rb.clone();
    chb.on_presence(move |p| seen.push(Event::Presence(p.clone())));
    cha.subscribe_blocking(DEADLINE).unwrap();
    chb.subscribe_blocking(DEADLINE).unwrap();

    cha.track_blocking(json!({"status": "online"}), DEADLINE)
        .expect("track ok");
    let join = rb.wait(
        "alice joins",
        |e| matches!(e, Event::Presence(PresenceEvent::Join { key, .. }) if key == "alice"),
    );
    if let Event::Presence(PresenceEvent::Join { new, .. }) = &join {
        assert_eq!(new[0]["status"], "online");
        assert!(new[0].get("presence_ref").is_some());
        assert!(new[0].get("phx_ref").is_none());
    }
    rb.wait("sync", |e| {
        matches!(e, Event::Presence(PresenceEvent::Sync { .. }))
    });
    let state = chb.presence_state();
    let alice = state
        .iter()
        .find(|(k, _)| k == "alice")
        .expect("alice in state");
    assert_eq!(alice.1[0]["status"], "online");

    cha.untrack_blocking(DEADLINE).expect("untrack ok");
    rb.wait("alice leaves", |e| {
        matches!(e, Event::Presence(PresenceEvent::Leave { key, current, .. }) if key == "alice" && current.is_empty())
    });
    assert!(chb.presence_state().iter().all(|(k, _)| k != "alice"));
    assert!(matches!(
        cha.track_blocking(json!("not an object"), DEADLINE),
        Err(Error::InvalidArgument(_))
    ));
}

#[test]
fn join_errors_carry_the_servers_reason() {
    let server = server();
    let expired = user_token(&server, "authenticated", -60);
    let c = RealtimeClient::new(options(&server).access_token(expired)).unwrap();
    let r = Recorder::new();
    c.on_event(r.sink());
    let ch = c.channel("secret", ChannelOptions::default());
    let err = ch
        .subscribe_blocking(DEADLINE)
        .expect_err("expired token refused");
    match &err {
        Error::ChannelError(reason) => {
            assert!(
                reason.starts_with("InvalidJWTToken: Token has expired"),
                "{reason}"
            )
        }
        other => panic!("unexpected {other:?}"),
    }
    let status = r.wait_status("realtime:secret", SubscribeStatus::ChannelError);
    assert!(matches!(
        status,
        Event::ChannelStatus {
            error_kind: Some(ErrorKind::Terminal),
            ..
        }
    ));
    assert_eq!(ch.state(), ChannelState::Closed);

    // `realtime:` with an empty name.
    let c2 = client(&server);
    let empty = c2.channel("", ChannelOptions::default());
    match empty.subscribe_blocking(DEADLINE) {
        Err(Error::ChannelError(reason)) => {
            assert_eq!(reason, "TopicNameRequired: You must provide a topic name")
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn set_auth_refreshes_and_a_bad_token_closes_the_channel() {
    let server = server();
    let c = client(&server);
    let r = Recorder::new();
    let ch = c.channel("auth", ChannelOptions::default().broadcast_self(true));
    ch.on_event(r.sink());
    ch.subscribe_blocking(DEADLINE).unwrap();

    // A valid refreshed token keeps the channel working.
    c.set_auth(Some(user_token(&server, "authenticated", 3600)));
    ch.send_broadcast_blocking("still", json!({}).into(), DEADLINE)
        .unwrap();
    r.wait("still works", |e| broadcast_json(e, "still").is_some());
    assert_eq!(ch.state(), ChannelState::Joined);

    // A token the server rejects: `system` error, then phx_close → CLOSED, no rejoin.
    c.set_auth(Some("not-a-jwt".into()));
    let sys = r.wait(
        "system error",
        |e| matches!(e, Event::System { payload, .. } if payload["status"] == "error"),
    );
    if let Event::System { payload, .. } = sys {
        assert_eq!(payload["message"], "The token provided is not a valid JWT");
    }
    r.wait_status("realtime:auth", SubscribeStatus::Closed);
    assert_eq!(ch.state(), ChannelState::Closed);
}

#[test]
fn unsubscribe_stops_delivery() {
    let server = server();
    let a = client(&server);
    let b = client(&server);
    let ra = Recorder::new();
    let cha = a.channel("u", ChannelOptions::default());
    cha.on_event(ra.sink());
    let chb = b.channel("u", ChannelOptions::default().broadcast_self(true));
    let rb = Recorder::new();
    chb.on_event(rb.sink());
    cha.subscribe_blocking(DEADLINE).unwrap();
    chb.subscribe_blocking(DEADLINE).unwrap();
    chb.send_broadcast_blocking("one", json!({}).into(), DEADLINE)
        .unwrap();
    ra.wait("one", |e| broadcast_json(e, "one").is_some());

    cha.unsubscribe_blocking(DEADLINE).expect("left");
    assert_eq!(cha.state(), ChannelState::Closed);
    chb.send_broadcast_blocking("two", json!({}).into(), DEADLINE)
        .unwrap();
    rb.wait("b sees two", |e| broadcast_json(e, "two").is_some());
    // The closed status is delivered; nothing after it (listeners are removed too).
    ra.wait_status("realtime:u", SubscribeStatus::Closed);
    let events = ra.events();
    let closed = events.iter().position(|e| {
        matches!(
            e,
            Event::ChannelStatus {
                status: SubscribeStatus::Closed,
                ..
            }
        )
    });
    assert!(closed.is_some(), "{events:#?}");
    assert!(!events.iter().any(|e| broadcast_json(e, "two").is_some()));
    // Channels are single-use; a fresh channel with the same name works again.
    assert!(matches!(cha.subscribe(), Err(Error::InvalidArgument(_))));
    let again = a.channel("u", ChannelOptions::default());
    again.subscribe_blocking(DEADLINE).expect("rejoined");
}

#[test]
fn the_server_closing_a_channel_is_reported_as_closed() {
    let server = Server::start(Config {
        limits: Limits {
            presence_max_calls: 1,
            ..Limits::default()
        },
        ..Config::default()
    })
    .unwrap();
    let c = client(&server);
    let r = Recorder::new();
    let ch = c.channel("limited", ChannelOptions::default());
    ch.on_event(r.sink());
    ch.subscribe_blocking(DEADLINE).unwrap();
    let _ = ch.track_blocking(json!({"n": 1}), DEADLINE);
    let _ = ch.track_blocking(json!({"n": 2}), DEADLINE);
    let sys = r.wait("shutdown message", |e| matches!(e, Event::System { .. }));
    if let Event::System { payload, .. } = sys {
        assert_eq!(payload["message"], "Client presence rate limit exceeded");
    }
    r.wait_status("realtime:limited", SubscribeStatus::Closed);
    assert_eq!(ch.state(), ChannelState::Closed);
    // Closed means no rejoin: the channel stays closed while the socket lives on.
    assert_eq!(c.connection_state(), ConnectionState::Connected);
}

#[test]
fn reconnects_and_rejoins_after_the_server_restarts() {
    let first = server();
    let addr = first.local_addr();
    let c = client(&first);
    let r = Recorder::new();
    c.on_event(r.sink());
    let ch = c.channel(
        "phoenix-rises",
        ChannelOptions::default()
            .broadcast_self(true)
            .presence_key("me"),
    );
    ch.subscribe_blocking(DEADLINE).unwrap();
    ch.track_blocking(json!({"here": true}), DEADLINE).unwrap();
    let mark = r.len();
    first.shutdown();
    r.wait_from(mark, "channel error on loss", |e| {
        matches!(
            e,
            Event::ChannelStatus {
                status: SubscribeStatus::ChannelError,
                error_kind: Some(ErrorKind::Recoverable),
                ..
            }
        )
    });
    let second = Server::start(Config {
        listen: addr,
        ..Config::default()
    })
    .expect("restart on the same port");
    let (i, _) = r.wait_from(mark, "subscribed again", |e| {
        matches!(
            e,
            Event::ChannelStatus {
                status: SubscribeStatus::Subscribed,
                ..
            }
        )
    });
    r.wait_from(i, "resumed", |e| matches!(e, Event::Resumed { .. }));
    ch.send_broadcast_blocking("back", json!({}).into(), DEADLINE)
        .unwrap();
    r.wait("broadcast after rejoin", |e| {
        broadcast_json(e, "back").is_some()
    });
    assert!(c.metrics().reconnects >= 1);
    // Presence is tracked again on the new server: a newcomer sees it.
    let other = client(&second);
    let ro = Recorder::new();
    let och = other.channel("phoenix-rises", ChannelOptions::default());
    let sink = ro.clone();
    och.on_presence(move |p| sink.push(Event::Presence(p.clone())));
    och.subscribe_blocking(DEADLINE).unwrap();
    ro.wait("re-tracked presence", |e| {
        matches!(e, Event::Presence(PresenceEvent::Join { key, new, .. }) if key == "me" && new[0]["here"] == true)
    });
    second.shutdown();
}

#[test]
fn callbacks_may_send_unsubscribe_and_drop_the_client() {
    let server = server();
    let peer = client(&server);
    let rp = Recorder::new();
    let pch = peer.channel("reentry", ChannelOptions::default());
    pch.on_event(rp.sink());
    pch.subscribe_blocking(DEADLINE).unwrap();

    let c = client(&server);
    let ch = c.channel("reentry", ChannelOptions::default());
    let blocking_result = Arc::new(Mutex::new(None));
    // Send from a callback: answer each ping with a pong.
    let ch2 = ch.clone();
    let br = blocking_result.clone();
    ch.on_broadcast("ping", move |b| {
        // A blocking call here would wait on this very thread: refused, not hung. Recorded
        // before the pong goes out, so the test reads it once the pong arrived.
        *br.lock() = Some(ch2.send_broadcast_blocking("x", json!({}).into(), DEADLINE));
        ch2.send_broadcast_nowait("pong", b.payload.clone())
            .unwrap();
    });
    // Unsubscribe from a callback.
    let ch3 = ch.clone();
    ch.on_broadcast("leave", move |_| {
        ch3.unsubscribe_nowait().unwrap();
    });
    // Drop the client from a callback.
    let holder = Arc::new(Mutex::new(Some(c)));
    let h = holder.clone();
    let dropped = Recorder::new();
    let d = dropped.clone();
    let c_ref = holder.lock().as_ref().unwrap().clone();
    c_ref.on_event(move |e| {
        if broadcast_json(e, "die").is_some() {
            drop(h.lock().take());
            d.push(e.clone());
        }
    });
    drop(c_ref);
    ch.subscribe_blocking(DEADLINE).unwrap();

    pch.send_broadcast_blocking("ping", json!({"n": 7}).into(), DEADLINE)
        .unwrap();
    rp.wait("pong", |e| {
        broadcast_json(e, "pong") == Some(json!({"n": 7}))
    });
    assert_eq!(*blocking_result.lock(), Some(Err(Error::WouldDeadlock)));

    pch.send_broadcast_blocking("leave", json!({}).into(), DEADLINE)
        .unwrap();
    let deadline = std::time::Instant::now() + DEADLINE;
    while ch.state() != ChannelState::Closed {
        assert!(
            std::time::Instant::now() < deadline,
            "unsubscribe from callback did not finish"
        );
        std::thread::yield_now();
    }

    // Rejoin (same handle) so the "die" broadcast reaches the client-level listener.
    let ch4 = holder
        .lock()
        .as_ref()
        .unwrap()
        .channel("reentry", ChannelOptions::default());
    ch4.subscribe_blocking(DEADLINE).unwrap();
    pch.send_broadcast_blocking("die", json!({}).into(), DEADLINE)
        .unwrap();
    dropped.wait("client dropped in callback", |_| true);
    assert!(holder.lock().is_none());
    // The client is gone: its channels refuse work instead of hanging.
    let deadline = std::time::Instant::now() + DEADLINE;
    loop {
        match ch4.subscribe() {
            Err(Error::Shutdown) => break,
            _ if std::time::Instant::now() < deadline => std::thread::yield_now(),
            other => panic!("client still alive after drop: {other:?}"),
        }
    }
}

#[test]
fn app_pumped_dispatch_runs_callbacks_on_the_callers_thread() {
    let server = server();
    let c = RealtimeClient::new(options(&server).dispatch(DispatchMode::AppPumped)).unwrap();
    let wakeups = Arc::new(AtomicUsize::new(0));
    let w = wakeups.clone();
    c.set_wakeup(move || {
        w.fetch_add(1, Ordering::SeqCst);
    });
    let me = std::thread::current().id();
    let on_my_thread = Arc::new(AtomicUsize::new(0));
    let o = on_my_thread.clone();
    let r = Recorder::new();
    let sink = r.sink();
    c.on_event(move |e| {
        assert_eq!(std::thread::current().id(), me);
        o.fetch_add(1, Ordering::SeqCst);
        sink(e);
    });
    let ch = c.channel("pumped", ChannelOptions::default().broadcast_self(true));
    ch.subscribe().unwrap();
    // Nothing is delivered until we pump.
    let deadline = std::time::Instant::now() + DEADLINE;
    while !r.events().iter().any(|e| {
        matches!(
            e,
            Event::ChannelStatus {
                status: SubscribeStatus::Subscribed,
                ..
            }
        )
    }) {
        assert!(
            std::time::Instant::now() < deadline,
            "never subscribed: {:#?}",
            r.events()
        );
        if c.dispatch(100) == 0 {
            std::thread::yield_now();
        }
    }
    assert!(wakeups.load(Ordering::SeqCst) > 0);
    ch.send_broadcast_nowait("n", json!({"i": 1}).into())
        .unwrap();
    ch.send_broadcast_nowait("n", json!({"i": 2}).into())
        .unwrap();
    let deadline = std::time::Instant::now() + DEADLINE;
    while r
        .events()
        .iter()
        .filter(|e| broadcast_json(e, "n").is_some())
        .count()
        < 2
    {
        assert!(std::time::Instant::now() < deadline);
        if c.dispatch(10) == 0 {
            std::thread::yield_now();
        }
    }
    let order: Vec<_> = r
        .events()
        .iter()
        .filter_map(|e| broadcast_json(e, "n"))
        .collect();
    assert_eq!(order, vec![json!({"i": 1}), json!({"i": 2})]);
    assert_eq!(on_my_thread.load(Ordering::SeqCst), r.len());
}

#[test]
fn a_slow_consumer_gets_lagged_and_keeps_lifecycle_events() {
    let server = server();
    let slow = RealtimeClient::new(
        options(&server)
            .dispatch(DispatchMode::AppPumped)
            .queue_capacity(5),
    )
    .unwrap();
    let r = Recorder::new();
    slow.on_event(r.sink());
    let ch = slow.channel("flood", ChannelOptions::default());
    ch.subscribe().unwrap();
    let fast = client(&server);
    let fch = fast.channel("flood", ChannelOptions::default().broadcast_ack(true));
    fch.subscribe_blocking(DEADLINE).unwrap();
    // Wait until the slow client is joined (its SUBSCRIBED is queued: lifecycle, never dropped).
    let deadline = std::time::Instant::now() + DEADLINE;
    while ch.state() != ChannelState::Joined {
        assert!(std::time::Instant::now() < deadline);
        std::thread::yield_now();
    }
    const N: u64 = 40;
    for i in 0..N {
        fch.send_broadcast_blocking("m", json!({"i": i}).into(), DEADLINE)
            .unwrap();
    }
    let deadline = std::time::Instant::now() + DEADLINE;
    // Everything beyond the 5 queued data events is dropped (and counted) once it arrives.
    while slow.metrics().dropped_events < N - 5 {
        assert!(std::time::Instant::now() < deadline, "{:?}", slow.metrics());
        std::thread::yield_now();
    }
    while slow.dispatch(1000) > 0 {}
    let events = r.events();
    let received: Vec<u64> = events
        .iter()
        .filter_map(|e| broadcast_json(e, "m"))
        .map(|v| v["i"].as_u64().unwrap())
        .collect();
    let lagged: u64 = events
        .iter()
        .filter_map(|e| match e {
            Event::Lagged { dropped } => Some(*dropped),
            _ => None,
        })
        .sum();
    assert_eq!(
        received,
        (0..5).collect::<Vec<_>>(),
        "oldest kept, in order"
    );
    assert_eq!(lagged, N - 5);
    assert!(events.iter().any(|e| matches!(
        e,
        Event::ChannelStatus {
            status: SubscribeStatus::Subscribed,
            ..
        }
    )));
}

#[test]
fn http_send_reaches_subscribers() {
    let server = server();
    let c = client(&server);
    let r = Recorder::new();
    let ch = c.channel("rest", ChannelOptions::default());
    ch.on_event(r.sink());
    ch.subscribe_blocking(DEADLINE).unwrap();
    let sender = client(&server);
    let sch = sender.channel("rest", ChannelOptions::default());
    sch.http_send_blocking("via-rest", json!({"ok": true}).into(), DEADLINE)
        .expect("202");
    r.wait("rest broadcast", |e| {
        broadcast_json(e, "via-rest") == Some(json!({"ok": true}))
    });
    sch.http_send_blocking("bytes", Payload::Binary(vec![9, 8]), DEADLINE)
        .expect("binary 202");
    r.wait(
        "rest binary",
        |e| matches!(e, Event::Broadcast(b) if b.payload == Payload::Binary(vec![9, 8])),
    );
    // A bad key is refused with the server's message.
    let bad = RealtimeClient::new(support::options(&server).access_token("nope")).unwrap();
    match bad
        .channel("rest", ChannelOptions::default())
        .http_send_blocking("x", json!({}).into(), DEADLINE)
    {
        Err(Error::Http { status, .. }) => assert_eq!(status, 401),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn heartbeats_report_round_trips() {
    let server = server();
    let c = RealtimeClient::new(options(&server).heartbeat_interval(Duration::from_millis(100)))
        .unwrap();
    let r = Recorder::new();
    c.on_event(r.sink());
    c.connect_blocking(DEADLINE).unwrap();
    r.wait("heartbeat ok", |e| {
        matches!(
            e,
            Event::Heartbeat {
                status: HeartbeatStatus::Ok,
                rtt: Some(_)
            }
        )
    });
    assert!(c.metrics().heartbeat_rtt.is_some());
}

#[test]
fn bad_input_is_an_error_not_a_panic() {
    assert!(matches!(
        RealtimeClient::new(supa_realtime::ClientOptions::new("ftp://x", "k")),
        Err(Error::InvalidArgument(_))
    ));
    let server = server();
    let c = client(&server);
    let ch = c.channel("x", ChannelOptions::default());
    // Pushing before subscribe is refused (as realtime-js throws).
    assert!(matches!(
        ch.send_broadcast_nowait("e", json!({}).into()),
        Err(Error::InvalidArgument(_))
    ));
    ch.subscribe_blocking(DEADLINE).unwrap();
    let long = "e".repeat(300);
    assert!(matches!(
        ch.send_broadcast_nowait(&long, json!({}).into()),
        Err(Error::InvalidArgument(_))
    ));
    // A refused connection (nothing listens) reports errors and keeps retrying, no panic.
    let dead = RealtimeClient::new(
        supa_realtime::ClientOptions::new("ws://127.0.0.1:1/realtime/v1", "k")
            .reconnect_delays(vec![Duration::from_millis(50)]),
    )
    .unwrap();
    let r = Recorder::new();
    dead.on_event(r.sink());
    dead.connect();
    r.wait(
        "connect error",
        |e| matches!(e, Event::Error { message } if message.starts_with("could not connect")),
    );
    let e = dead
        .connect_blocking(Duration::from_millis(300))
        .unwrap_err();
    assert!(
        matches!(&e, Error::Io(m) if m.contains("127.0.0.1:1") && m.contains("refused")),
        "{e}"
    );
    dead.shutdown();
    r.wait("shut down", |e| {
        matches!(
            e,
            Event::ConnectionStatus {
                state: ConnectionState::ShutDown,
                ..
            }
        )
    });
}

#[test]
fn token_provider_is_asked_before_connect_and_rejoin() {
    let server = server();
    let calls = Arc::new(AtomicUsize::new(0));
    let expired = user_token(&server, "authenticated", -60);
    let valid = user_token(&server, "authenticated", 3600);
    let c2 = calls.clone();
    // First answer: an expired token (join refused); later answers: a valid one.
    let c = RealtimeClient::new(options(&server).token_provider(move || {
        let n = c2.fetch_add(1, Ordering::SeqCst);
        Ok(Some(if n == 0 {
            expired.clone()
        } else {
            valid.clone()
        }))
    }))
    .unwrap();
    let r = Recorder::new();
    let ch = c.channel("provided", ChannelOptions::default());
    ch.on_event(r.sink());
    ch.subscribe().unwrap();
    let (i, err) = r.wait_from(0, "refused first", |e| {
        matches!(
            e,
            Event::ChannelStatus {
                status: SubscribeStatus::ChannelError,
                ..
            }
        )
    });
    // With a provider, an auth refusal is worth retrying with a fresh token.
    assert!(
        matches!(
            err,
            Event::ChannelStatus {
                error_kind: Some(ErrorKind::Recoverable),
                ..
            }
        ),
        "{err:?}"
    );
    r.wait_from(i, "subscribed with the fresh token", |e| {
        matches!(
            e,
            Event::ChannelStatus {
                status: SubscribeStatus::Subscribed,
                ..
            }
        )
    });
    assert!(calls.load(Ordering::SeqCst) >= 2);
}

#[test]
fn disconnect_then_connect_rejoins_channels() {
    let server = server();
    let c = client(&server);
    let r = Recorder::new();
    c.on_event(r.sink());
    let ch = c.channel("again", ChannelOptions::default());
    ch.subscribe_blocking(DEADLINE).unwrap();
    let mark = r.len();
    c.disconnect();
    r.wait_from(mark, "disconnected", |e| {
        matches!(
            e,
            Event::ConnectionStatus {
                state: ConnectionState::Disconnected,
                ..
            }
        )
    });
    assert_eq!(ch.state(), ChannelState::Errored);
    c.connect_blocking(DEADLINE).unwrap();
    let (i, _) = r.wait_from(mark, "rejoined", |e| {
        matches!(
            e,
            Event::ChannelStatus {
                status: SubscribeStatus::Subscribed,
                ..
            }
        )
    });
    r.wait_from(
        i,
        "resumed",
        |e| matches!(e, Event::Resumed { topic, .. } if topic == "realtime:again"),
    );
    assert_eq!(ch.state(), ChannelState::Joined);
}

#[test]
fn an_unanswered_heartbeat_closes_and_reconnects() {
    let server = server();
    let proxy = support::Proxy::start(server.local_addr());
    let url = format!("ws://127.0.0.1:{}/realtime/v1", proxy.port);
    let c = RealtimeClient::new(
        supa_realtime::ClientOptions::new(url, server.anon_key())
            .heartbeat_interval(Duration::from_millis(200))
            // A connect attempt made while the link is still black-holed gives up quickly.
            .push_timeout(Duration::from_secs(2))
            .reconnect_delays(vec![Duration::from_millis(100)])
            .rejoin_delays(vec![Duration::from_millis(100)]),
    )
    .unwrap();
    let r = Recorder::new();
    c.on_event(r.sink());
    let ch = c.channel("hb", ChannelOptions::default());
    ch.subscribe_blocking(DEADLINE).unwrap();
    let mark = r.len();
    proxy.blackhole.store(true, Ordering::SeqCst);
    r.wait_from(mark, "heartbeat timeout", |e| {
        matches!(
            e,
            Event::Heartbeat {
                status: HeartbeatStatus::Timeout,
                ..
            }
        )
    });
    let (i, _) = r.wait_from(mark, "reconnecting", |e| {
        matches!(e, Event::ConnectionStatus { reason: Some(reason), .. } if reason == "heartbeat timeout")
    });
    proxy.blackhole.store(false, Ordering::SeqCst);
    let (j, _) = r.wait_from(i, "subscribed again", |e| {
        matches!(
            e,
            Event::ChannelStatus {
                status: SubscribeStatus::Subscribed,
                ..
            }
        )
    });
    r.wait_from(j, "resumed", |e| matches!(e, Event::Resumed { .. }));
}

#[test]
fn the_token_provider_is_asked_before_expiry_and_changes_are_pushed() {
    let server = server();
    let calls = Arc::new(AtomicUsize::new(0));
    // Valid for 4 s: the provider is asked again half-way (the margin exceeds half its life).
    let short = user_token(&server, "authenticated", 4);
    let c2 = calls.clone();
    let c = RealtimeClient::new(
        options(&server)
            .heartbeat_interval(Duration::from_millis(100))
            .token_refresh_margin(Duration::from_secs(60))
            .token_provider(move || {
                // Valid at connect; later a token the server rejects, so the push is visible.
                let n = c2.fetch_add(1, Ordering::SeqCst);
                Ok(Some(if n == 0 {
                    short.clone()
                } else {
                    format!("garbage-{n}")
                }))
            }),
    )
    .unwrap();
    let r = Recorder::new();
    let ch = c.channel("refresh", ChannelOptions::default());
    ch.on_event(r.sink());
    ch.subscribe_blocking(DEADLINE).unwrap();
    let sys = r.wait(
        "refreshed token refused",
        |e| matches!(e, Event::System { payload, .. } if payload["status"] == "error"),
    );
    if let Event::System { payload, .. } = sys {
        assert_eq!(payload["message"], "The token provided is not a valid JWT");
    }
    r.wait_status("realtime:refresh", SubscribeStatus::Closed);
    // Once at connect, once before expiry: not on each of the ~20 heartbeats in between.
    let n = calls.load(Ordering::SeqCst);
    assert!((2..=3).contains(&n), "{n} calls");
}

#[test]
fn an_unanswered_join_times_out_then_rejoins() {
    let server = server();
    let proxy = support::Proxy::start(server.local_addr());
    let url = format!("ws://127.0.0.1:{}/realtime/v1", proxy.port);
    let c = RealtimeClient::new(
        supa_realtime::ClientOptions::new(url, server.anon_key())
            .push_timeout(Duration::from_millis(300))
            .rejoin_delays(vec![Duration::from_millis(100)]),
    )
    .unwrap();
    c.connect_blocking(DEADLINE).unwrap();
    let r = Recorder::new();
    let ch = c.channel("slow", ChannelOptions::default());
    ch.on_event(r.sink());
    proxy.blackhole.store(true, Ordering::SeqCst);
    ch.subscribe().unwrap();
    let (i, _) = r.wait_from(0, "TIMED_OUT", |e| {
        matches!(
            e,
            Event::ChannelStatus {
                status: SubscribeStatus::TimedOut,
                ..
            }
        )
    });
    proxy.blackhole.store(false, Ordering::SeqCst);
    r.wait_from(i, "SUBSCRIBED after the timeout", |e| {
        matches!(
            e,
            Event::ChannelStatus {
                status: SubscribeStatus::Subscribed,
                ..
            }
        )
    });
    assert_eq!(ch.state(), ChannelState::Joined);
}

#[test]
fn network_changed_probes_the_link_at_once() {
    let server = server();
    let c = client(&server); // default 25 s heartbeat: a heartbeat now can only be the probe
    let r = Recorder::new();
    c.on_event(r.sink());
    c.connect_blocking(DEADLINE).unwrap();
    c.network_changed();
    r.wait("probe answered", |e| {
        matches!(
            e,
            Event::Heartbeat {
                status: HeartbeatStatus::Ok,
                ..
            }
        )
    });
    c.app_foregrounded();
    assert_eq!(c.connection_state(), ConnectionState::Connected);
}

#[tokio::test]
async fn async_api_resolves_and_reports_shutdown() {
    let server = tokio::task::spawn_blocking(server).await.unwrap();
    let c = client(&server);
    c.connected().await.unwrap();
    let ch = c.channel("async", ChannelOptions::default().broadcast_ack(true));
    ch.subscribe().unwrap();
    ch.subscribed().await.unwrap();
    ch.send_broadcast("e", json!({"a": 1}).into())
        .await
        .unwrap();
    ch.track(json!({"a": 1})).await.unwrap();
    ch.untrack().await.unwrap();
    let pending = ch.clone();
    c.shutdown();
    // After shutdown every call fails fast instead of hanging.
    assert_eq!(pending.subscribed().await, Err(Error::Shutdown));
    assert!(pending.send_broadcast("e", json!({}).into()).await.is_err());
    assert_eq!(c.connected().await, Err(Error::Shutdown));
    tokio::task::spawn_blocking(move || server.shutdown())
        .await
        .unwrap();
}
