//! Hostile and broken clients (issue 16, findings 5–8): frames that would break subscribers,
//! connections that never finish their handshake, readers that never read, presence floods.
//! Every test runs a real server on loopback and is bounded in count and time.

mod common;

use common::*;
use serde_json::json;
use supa_realtime_protocol::{BroadcastPayload, Vsn};

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
