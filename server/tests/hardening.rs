//! Hostile and broken clients (issue 16, findings 5–8): frames that would break subscribers,
//! connections that never finish their handshake, readers that never read, presence floods.
//! Every test runs a real server on loopback and is bounded in count and time.

mod common;

use std::time::Duration;

use common::*;
use futures_util::SinkExt;
use serde_json::json;
use supa_realtime_protocol::{BroadcastPayload, Frame, Vsn};
use supa_realtime_server::{Config, Limits, Server};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

/// Finding 5: a broadcast whose `event` is not a string, and a kind-3 frame flagged JSON whose
/// payload is not JSON, crash realtime-js subscribers. The server refuses both with an error
/// reply (ack or not) and relays neither.
#[tokio::test]
async fn broadcasts_that_break_subscribers_are_refused_not_relayed() {
    let server = server();
    let mut sender = Client::connect(&server, Vsn::V2).await;
    let js = sender
        .join_ok("realtime:room", json!({"broadcast": {"self": true}}))
        .await;
    let mut sub = Client::connect(&server, Vsn::V2).await;
    sub.join_ok("realtime:room", json!({})).await;

    let refused = [
        (
            json!({"type": "broadcast", "event": 7, "payload": {}}),
            "broadcast event must be a string",
        ),
        (
            json!({"type": "broadcast", "payload": {}}),
            "broadcast event must be a string",
        ),
        (
            json!("not an object"),
            "broadcast payload must be an object",
        ),
    ];
    for (payload, reason) in refused {
        let r = sender
            .push(Some(&js), "realtime:room", "broadcast", payload)
            .await;
        let reply = sender.recv_text().await;
        assert_eq!(reply.r#ref.as_deref(), Some(r.as_str()));
        assert_eq!(reply.reply_status(), Some("error"));
        assert_eq!(reply.reply_response().unwrap()["reason"], reason);
    }
    for text in ["{not json", "", "[1,"] {
        sender
            .send_raw(kind3(
                &js,
                "77",
                "realtime:room",
                "e",
                BroadcastPayload::Json(text.into()),
            ))
            .await;
        let reply = sender.recv_text().await;
        assert_eq!(reply.r#ref.as_deref(), Some("77"));
        assert_eq!(reply.reply_status(), Some("error"));
        assert_eq!(
            reply.reply_response().unwrap()["reason"],
            "broadcast payload is flagged JSON but is not valid JSON"
        );
    }
    // The first thing the subscriber (and, with self, the sender) gets is the valid message.
    sender
        .push(
            Some(&js),
            "realtime:room",
            "broadcast",
            json!({"type": "broadcast", "event": "fine", "payload": {}}),
        )
        .await;
    for client in [&mut sub, &mut sender] {
        match client.recv_text().await {
            f if f.event == "broadcast" => assert_eq!(f.payload["event"], "fine"),
            other => panic!("expected the valid broadcast first, got {other:?}"),
        }
    }
}

/// Finding 6: 300 connections that never finish their request head and 100 that send
/// nothing are closed after the header timeout; a real client is served meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_that_never_finish_their_request_head_are_closed() {
    let server = Server::start(Config {
        header_timeout: Duration::from_millis(500),
        ..Config::default()
    })
    .unwrap();
    let mut slow = Vec::new();
    for i in 0..400 {
        let mut stream = TcpStream::connect(server.local_addr()).await.unwrap();
        if i < 300 {
            let head = "GET /realtime/v1/websocket?vsn=2.0.0 HTTP/1.1\r\nHost: x\r\nX-Slow: ";
            stream.write_all(head.as_bytes()).await.unwrap();
        }
        slow.push(stream);
    }
    let mut client = Client::connect(&server, Vsn::V2).await;
    client.join_ok("realtime:room", json!({})).await;
    let deadline = tokio::time::Instant::now() + DEADLINE;
    for (i, mut stream) in slow.into_iter().enumerate() {
        let mut buf = [0u8; 1024];
        let closed = async {
            loop {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
        };
        tokio::time::timeout_at(deadline, closed)
            .await
            .unwrap_or_else(|_| panic!("connection {i} is still open after the header timeout"));
    }
    client.heartbeat().await;
}

/// Finding 6: the cap on concurrent connections answers one more with a clear 503, and a
/// slot freed by a closed socket is usable again.
#[tokio::test]
async fn connections_over_the_cap_are_refused_clearly() {
    let server = Server::start(Config {
        limits: Limits {
            max_connections: 20,
            ..Limits::default()
        },
        ..Config::default()
    })
    .unwrap();
    assert_eq!(server.max_connections(), 20);
    let mut held = Vec::new();
    for _ in 0..20 {
        held.push(Client::connect(&server, Vsn::V2).await);
    }
    let query = format!("apikey={}&vsn=2.0.0", server.anon_key());
    let (status, body) = upgrade(&server, &query, &[]).await;
    assert_eq!(status, 503);
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        body["error"],
        "Too many connections: this server accepts at most 20 at once"
    );
    let (status, _) = http(&server, "GET", "/", &[], b"").await;
    assert_eq!(status, 503);
    // Held sockets still work; closing one frees its slot once the server has seen the close.
    held[0].heartbeat().await;
    held.pop().unwrap().ws.close(None).await.unwrap();
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while upgrade(&server, &query, &[]).await.0 != 101 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the slot was not freed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Finding 6: a socket that heartbeats but never joins a channel is closed after the
/// no-channel timeout; a socket with a channel is not.
#[tokio::test]
async fn sockets_that_never_join_are_closed() {
    let server = Server::start(Config {
        no_channel_timeout: Duration::from_millis(400),
        ..Config::default()
    })
    .unwrap();
    let mut joined = Client::connect(&server, Vsn::V2).await;
    joined.join_ok("realtime:room", json!({})).await;
    let mut idle = Client::connect(&server, Vsn::V2).await;
    let deadline = tokio::time::Instant::now() + DEADLINE;
    let code = loop {
        assert!(tokio::time::Instant::now() < deadline, "not closed");
        let beat = Frame::new(None, Some("1".into()), "phoenix", "heartbeat", json!({}));
        let _ = idle.ws.send(Message::text(beat.encode(Vsn::V2))).await;
        if let Some(In::Closed(code)) = idle.recv_within(Duration::from_millis(100)).await {
            break code;
        }
    };
    assert_eq!(code, Some(1000));
    joined.heartbeat().await;
}

/// Finding 6: a REST request whose body never completes is answered with 408 after the
/// request timeout instead of holding its connection.
#[tokio::test]
async fn a_request_body_that_never_completes_times_out() {
    let server = Server::start(Config {
        request_timeout: Duration::from_millis(300),
        ..Config::default()
    })
    .unwrap();
    let mut stream = TcpStream::connect(server.local_addr()).await.unwrap();
    let head = format!(
        "POST /api/broadcast HTTP/1.1\r\nHost: x\r\napikey: {}\r\ncontent-type: application/json\r\n\
         content-length: 100\r\n\r\n{{\"messages\"",
        server.anon_key()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    let mut buf = [0u8; 1024];
    tokio::time::timeout(DEADLINE, async {
        while !String::from_utf8_lossy(&response).contains("\r\n\r\n") {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => response.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .expect("an answer before the deadline");
    let text = String::from_utf8_lossy(&response);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
}
