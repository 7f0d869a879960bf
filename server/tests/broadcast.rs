//! Broadcast over WebSocket (JSON and binary, V1 and V2, self/ack) and over REST.

mod common;

use common::*;
use serde_json::{json, Value};
use supa_realtime_protocol::{BinaryFrame, BroadcastPayload, Vsn};

#[tokio::test]
async fn json_broadcast_reaches_others_and_respects_self_and_ack() {
    let server = server();
    let mut a = Client::connect(&server, Vsn::V2).await;
    let mut b = Client::connect(&server, Vsn::V2).await;
    let mut v1 = Client::connect(&server, Vsn::V1).await;
    let ja = a
        .join_ok(
            "realtime:room",
            json!({"broadcast": {"self": false, "ack": false}}),
        )
        .await;
    b.join_ok("realtime:room", json!({})).await;
    v1.join_ok("realtime:room", json!({})).await;
    let mut other_room = Client::connect(&server, Vsn::V2).await;
    other_room.join_ok("realtime:elsewhere", json!({})).await;

    let payload =
        json!({"type": "broadcast", "event": "cursor", "payload": {"x": 1}, "extra": true});
    a.push(Some(&ja), "realtime:room", "broadcast", payload.clone())
        .await;
    for c in [&mut b, &mut v1] {
        let got = c.recv_text().await;
        assert_eq!(
            (got.join_ref.as_deref(), got.r#ref.as_deref()),
            (None, None)
        );
        assert_eq!((got.event.as_str(), &got.payload), ("broadcast", &payload));
    }
    // self:false and ack:false: the sender gets nothing at all.
    a.expect_silence().await;
    other_room.expect_silence().await;

    // self:true, ack:true.
    let ja = a
        .join_ok(
            "realtime:room",
            json!({"broadcast": {"self": true, "ack": true}}),
        )
        .await;
    let r = a
        .push(Some(&ja), "realtime:room", "broadcast", payload.clone())
        .await;
    let mut saw_ack = false;
    let mut saw_self = false;
    while !(saw_ack && saw_self) {
        let f = a.recv_text().await;
        match f.event.as_str() {
            "phx_reply" => {
                assert_eq!(f.r#ref.as_deref(), Some(r.as_str()));
                assert_eq!(f.reply_status(), Some("ok"));
                saw_ack = true;
            }
            "broadcast" => {
                assert_eq!(f.payload, payload);
                saw_self = true;
            }
            other => panic!("unexpected {other}"),
        }
    }
}

#[tokio::test]
async fn binary_broadcast_converts_per_version() {
    let server = server();
    let mut a = Client::connect(&server, Vsn::V2).await;
    let mut b = Client::connect(&server, Vsn::V2).await;
    let mut v1 = Client::connect(&server, Vsn::V1).await;
    let ja = a
        .join_ok("realtime:room1", json!({"broadcast": {"ack": true}}))
        .await;
    b.join_ok("realtime:room1", json!({})).await;
    v1.join_ok("realtime:room1", json!({})).await;

    // The worked example of the protocol reference: kind 3 in, kind 4 out (32 bytes).
    a.send_raw(kind3(
        &ja,
        "7",
        "realtime:room1",
        "cursor",
        BroadcastPayload::Json(r#"{"x":1}"#.into()),
    ))
    .await;
    let ack = a.recv_text().await;
    assert_eq!(
        (ack.r#ref.as_deref(), ack.reply_status()),
        (Some("7"), Some("ok"))
    );
    match b.recv().await {
        In::Binary(frame) => {
            assert_eq!(frame.encode().unwrap().len(), 32);
            assert_eq!(
                frame,
                BinaryFrame::UserBroadcast {
                    topic: "realtime:room1".into(),
                    event: "cursor".into(),
                    metadata: String::new(),
                    payload: BroadcastPayload::Json(r#"{"x":1}"#.into()),
                }
            );
        }
        other => panic!("expected kind 4, got {other:?}"),
    }
    let got = v1.recv_text().await;
    assert_eq!(
        got.payload,
        json!({"type": "broadcast", "event": "cursor", "payload": {"x": 1}})
    );

    // Raw bytes: kind 4 with encoding 0 for V2, dropped for V1.
    a.send_raw(kind3(
        &ja,
        "8",
        "realtime:room1",
        "blob",
        BroadcastPayload::Binary(vec![0, 1, 2, 255]),
    ))
    .await;
    a.recv_text().await; // ack
    match b.recv().await {
        In::Binary(BinaryFrame::UserBroadcast { payload, event, .. }) => {
            assert_eq!(event, "blob");
            assert_eq!(payload, BroadcastPayload::Binary(vec![0, 1, 2, 255]));
        }
        other => panic!("expected kind 4, got {other:?}"),
    }
    v1.expect_silence().await;
}

#[tokio::test]
async fn oversize_broadcast_is_dropped_with_error_ack() {
    let server = supa_realtime_server::Server::start(supa_realtime_server::Config {
        limits: supa_realtime_server::Limits {
            max_payload_bytes: 100,
            ..Default::default()
        },
        ..Default::default()
    })
    .unwrap();
    let mut a = Client::connect(&server, Vsn::V2).await;
    let mut b = Client::connect(&server, Vsn::V2).await;
    let ja = a
        .join_ok("realtime:room", json!({"broadcast": {"ack": true}}))
        .await;
    b.join_ok("realtime:room", json!({})).await;
    let big = "x".repeat(200);
    let r = a
        .push(
            Some(&ja),
            "realtime:room",
            "broadcast",
            json!({"type": "broadcast", "event": "e", "payload": {"big": big}}),
        )
        .await;
    let reply = a.recv_text().await;
    assert_eq!(reply.r#ref.as_deref(), Some(r.as_str()));
    assert_eq!(
        reply.payload,
        json!({"status": "error", "response": "payload_size_exceeded"})
    );
    b.expect_silence().await;
}

#[tokio::test]
async fn public_and_private_rooms_are_apart() {
    // Private joins need a database; without one they are refused, so nothing leaks either way.
    let server = server();
    let mut a = Client::connect(&server, Vsn::V2).await;
    let (_, reply) = a
        .join("realtime:room", json!({"config": {"private": true}}))
        .await;
    assert_eq!(reply.reply_status(), Some("error"));
}

#[tokio::test]
async fn rest_batch_and_single() {
    let server = server();
    let mut v2 = Client::connect(&server, Vsn::V2).await;
    let mut v1 = Client::connect(&server, Vsn::V1).await;
    v2.join_ok("realtime:room", json!({})).await;
    v1.join_ok("realtime:room", json!({})).await;
    let key = server.anon_key();
    let bearer = format!("Bearer {key}");
    let json_ct = ("Content-Type", "application/json");

    let body = json!({"messages": [{"topic": "room", "event": "e", "payload": {"n": 1}, "id": "m1"},
                                   {"topic": "room", "event": "p", "payload": {"n": 2}, "private": true}]});
    let (status, text) = http(
        &server,
        "POST",
        "/realtime/v1/api/broadcast",
        &[("Authorization", &bearer), json_ct],
        body.to_string().as_bytes(),
    )
    .await;
    assert_eq!((status, text.as_str()), (202, ""));
    for c in [&mut v2, &mut v1] {
        let got = c.recv_text().await;
        assert_eq!(
            got.payload,
            json!({"type": "broadcast", "event": "e", "payload": {"n": 1}, "meta": {"id": "m1"}})
        );
        // The private message was skipped (no permission without a database).
        c.expect_silence().await;
    }

    let (status, _) = http(
        &server,
        "POST",
        "/api/broadcast",
        &[json_ct],
        body.to_string().as_bytes(),
    )
    .await;
    assert_eq!(status, 401);
    let (status, text) = http(
        &server,
        "POST",
        "/api/broadcast",
        &[("apikey", &key), json_ct],
        br#"{"messages":[{"topic":"room"}]}"#,
    )
    .await;
    assert_eq!(status, 422);
    assert!(serde_json::from_str::<Value>(&text).unwrap()["errors"].is_object());

    // Single: JSON body → kind 4 encoding 1 (V2) / JSON (V1).
    let (status, _) = http(
        &server,
        "POST",
        "/realtime/v1/api/broadcast/room/events/hello",
        &[("Authorization", &bearer), json_ct],
        br#"{"a":1}"#,
    )
    .await;
    assert_eq!(status, 202);
    match v2.recv().await {
        In::Binary(BinaryFrame::UserBroadcast { event, payload, .. }) => {
            assert_eq!(event, "hello");
            assert_eq!(payload, BroadcastPayload::Json(r#"{"a":1}"#.into()));
        }
        other => panic!("expected kind 4, got {other:?}"),
    }
    assert_eq!(
        v1.recv_text().await.payload,
        json!({"type": "broadcast", "event": "hello", "payload": {"a": 1}})
    );
    // Octet-stream → binary for V2 only.
    let (status, _) = http(
        &server,
        "POST",
        "/realtime/v1/api/broadcast/room/events/bin",
        &[
            ("Authorization", &bearer),
            ("Content-Type", "application/octet-stream"),
        ],
        &[9, 8, 7],
    )
    .await;
    assert_eq!(status, 202);
    match v2.recv().await {
        In::Binary(BinaryFrame::UserBroadcast { payload, .. }) => {
            assert_eq!(payload, BroadcastPayload::Binary(vec![9, 8, 7]))
        }
        other => panic!("expected kind 4, got {other:?}"),
    }
    v1.expect_silence().await;
    let (status, text) = http(
        &server,
        "POST",
        "/realtime/v1/api/broadcast/room/events/x",
        &[("Authorization", &bearer), ("Content-Type", "text/plain")],
        b"hi",
    )
    .await;
    assert_eq!(status, 415);
    assert!(serde_json::from_str::<Value>(&text).unwrap()["error"]
        .as_str()
        .unwrap()
        .contains("Unsupported Media Type"));
    let (status, _) = http(
        &server,
        "POST",
        "/realtime/v1/api/broadcast/room/events/x?private=true",
        &[("Authorization", &bearer), json_ct],
        b"{}",
    )
    .await;
    assert_eq!(status, 403);
}
