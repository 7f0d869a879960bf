//! Bad input: garbage and oversize frames, unknown events, idle sockets. One client's
//! garbage never disturbs another client.

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;
use supa_realtime_protocol::Vsn;
use supa_realtime_server::{Config, Limits, Server};
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn garbage_frames_are_dropped_and_the_socket_stays_open() {
    let server = server();
    let mut good = Client::connect(&server, Vsn::V2).await;
    let jg = good
        .join_ok("realtime:room", json!({"broadcast": {"self": true}}))
        .await;
    let mut bad = Client::connect(&server, Vsn::V2).await;
    let jb = bad.join_ok("realtime:room", json!({})).await;
    let garbage = [
        "",
        "not json",
        "{}",
        "\"x\"",
        "[1,2,3]",
        "[null,null,1,\"e\",{}]",
        "[null,{},\"t\",\"e\",{}]",
        "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[",
        "[null,null,\"realtime:room\",\"broadcast\",\"not an object\"]",
        "[null,null,\"realtime:room\",\"presence\",{\"event\":7}]",
        "[null,null,\"realtime:room\",\"access_token\",{\"access_token\":null}]",
        "[null,null,\"realtime:room\",\"phx_join\",7]",
        "[null,null,\"phoenix\",\"whatever\",{}]",
    ];
    for text in garbage {
        bad.send_raw(Message::text(text)).await;
    }
    // Deep nesting must not overflow a stack.
    bad.send_raw(Message::text("[".repeat(200_000))).await;
    let deep = format!(
        r#"["1","2","realtime:room","broadcast",{{"event":"e","payload":{}1{}}}]"#,
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    bad.send_raw(Message::text(deep)).await;
    for bytes in [
        vec![],
        vec![3],
        vec![9, 9, 9],
        vec![3, 200, 200, 200, 200, 200, 1],
        vec![0, 1, 1, 1, 1],
    ] {
        bad.send_raw(Message::binary(bytes)).await;
    }
    // The bad client is still served; replies to its garbage may come first.
    bad.heartbeat().await;
    // And the good client is undisturbed.
    good.push(
        Some(&jg),
        "realtime:room",
        "broadcast",
        json!({"event": "ok", "payload": {}}),
    )
    .await;
    let got = good.recv_until(|f| f.event == "broadcast").await;
    assert_eq!(got.payload["event"], "ok");
    good.heartbeat().await;
    let _ = jb;
}

#[tokio::test]
async fn unknown_events_get_no_reply() {
    let server = server();
    let mut c = Client::connect(&server, Vsn::V2).await;
    let jr = c.join_ok("realtime:room", json!({})).await;
    c.push(Some(&jr), "realtime:room", "no_such_event", json!({}))
        .await;
    // The next frame is the heartbeat reply: nothing answered the unknown event.
    let r = c.push(None, "phoenix", "heartbeat", json!({})).await;
    let reply = c.recv_text().await;
    assert_eq!(
        (reply.topic.as_str(), reply.r#ref.as_deref()),
        ("phoenix", Some(r.as_str()))
    );
}

#[tokio::test]
async fn oversize_frame_closes_only_that_socket() {
    let server = Server::start(Config {
        limits: Limits {
            max_frame_bytes: 64 * 1024,
            ..Limits::default()
        },
        ..Config::default()
    })
    .unwrap();
    let mut good = Client::connect(&server, Vsn::V2).await;
    let mut bad = Client::connect(&server, Vsn::V2).await;
    let big = format!(
        r#"[null,"1","phoenix","heartbeat",{{"x":"{}"}}]"#,
        "y".repeat(100 * 1024)
    );
    let _ = futures_util::SinkExt::send(&mut bad.ws, Message::text(big)).await;
    bad.expect_closed().await;
    good.heartbeat().await;
}

#[tokio::test]
async fn idle_sockets_are_dropped() {
    let server = Server::start(Config {
        idle_timeout: Duration::from_millis(300),
        ..Config::default()
    })
    .unwrap();
    let mut c = Client::connect(&server, Vsn::V2).await;
    c.expect_closed().await;
}

#[tokio::test]
async fn shutdown_closes_sockets_and_returns() {
    let server = server();
    let mut c = Client::connect(&server, Vsn::V2).await;
    c.heartbeat().await;
    let started = std::time::Instant::now();
    server.shutdown();
    assert_eq!(c.expect_closed().await, Some(1001));
    // Bounded, as documented (not a timing assertion on speed, a hang check).
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_dropped_without_stalling_others() {
    let server = Server::start(Config {
        write_timeout: Duration::from_secs(2),
        ..Config::default()
    })
    .unwrap();
    let mut sender = Client::connect(&server, Vsn::V2).await;
    let js = sender.join_ok("realtime:room", json!({})).await;
    let mut fast = Client::connect(&server, Vsn::V2).await;
    fast.join_ok("realtime:room", json!({})).await;
    let mut slow = Client::connect(&server, Vsn::V2).await;
    slow.join_ok("realtime:room", json!({})).await;

    // ~10 MB of fan-out: more than loopback socket buffers hold for a reader that never reads.
    let pad = "x".repeat(64 * 1024);
    let count = 160;
    let reader = tokio::spawn(async move {
        let mut got = 0;
        while got < count {
            match fast.recv().await {
                In::Text(f) if f.event == "broadcast" => got += 1,
                In::Text(_) => {}
                other => panic!("fast client: unexpected {other:?}"),
            }
        }
        fast
    });
    for n in 0..count {
        sender
            .push(
                Some(&js),
                "realtime:room",
                "broadcast",
                json!({"event": "e", "payload": {"n": n, "pad": pad}}),
            )
            .await;
    }
    let mut fast = tokio::time::timeout(Duration::from_secs(30), reader)
        .await
        .expect("the fast client got every message in time")
        .unwrap();
    fast.heartbeat().await;
    // The slow client has not read a byte, so the server's writes to it stall; once they have
    // stalled for the write timeout it is dropped. Reading now would unblock them, so first
    // let the configured timeout pass (waiting out a timeout, not synchronising a race).
    tokio::time::sleep(Duration::from_millis(2500)).await;
    // After whatever the kernel had buffered, the connection ends.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match slow.recv_within(left).await {
            Some(In::Closed(_)) => break,
            Some(_) => {}
            None => panic!("the slow client was not dropped"),
        }
    }
}
