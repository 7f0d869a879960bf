//! Presence: state after join, diffs, re-track, untrack, leaves, generated keys, rate limit.

mod common;

use common::*;
use serde_json::{json, Value};
use supa_realtime_protocol::{Frame, Vsn};

async fn track(c: &mut Client, jr: &str, topic: &str, payload: Value) {
    let r = c
        .push(
            Some(jr),
            topic,
            "presence",
            json!({"type": "presence", "event": "track", "payload": payload}),
        )
        .await;
    let reply = c
        .recv_until(|f| f.r#ref.as_deref() == Some(r.as_str()))
        .await;
    assert_eq!(reply.reply_status(), Some("ok"), "{reply:?}");
}

fn metas<'a>(diff: &'a Value, side: &str, key: &str) -> &'a Vec<Value> {
    diff[side][key]["metas"]
        .as_array()
        .unwrap_or_else(|| panic!("no {side}.{key} in {diff}"))
}

async fn diff(c: &mut Client) -> Frame {
    c.recv_until(|f| f.event == "presence_diff").await
}

#[tokio::test]
async fn track_update_untrack_and_leave() {
    let server = server();
    let mut a = Client::connect(&server, Vsn::V2).await;
    let mut b = Client::connect(&server, Vsn::V2).await;
    let ja = a
        .join_ok(
            "realtime:room",
            json!({"presence": {"key": "alice", "enabled": true}}),
        )
        .await;
    let state = a.recv_text().await;
    assert_eq!(
        (state.event.as_str(), &state.payload),
        ("presence_state", &json!({}))
    );
    assert_eq!(
        (state.join_ref.as_deref(), state.r#ref.as_deref()),
        (Some(ja.as_str()), None)
    );

    track(&mut a, &ja, "realtime:room", json!({"status": "online"})).await;
    let d = diff(&mut a).await;
    assert_eq!((d.join_ref.as_deref(), d.r#ref.as_deref()), (None, None));
    let joined = metas(&d.payload, "joins", "alice")[0].clone();
    assert_eq!(joined["status"], "online");
    let first_ref = joined["phx_ref"].as_str().unwrap().to_owned();

    // A second member gets the full state, then diffs.
    let jb = b
        .join_ok(
            "realtime:room",
            json!({"presence": {"key": "", "enabled": true}}),
        )
        .await;
    let state = b.recv_text().await;
    assert_eq!(state.event, "presence_state");
    assert_eq!(
        state.payload["alice"]["metas"][0]["phx_ref"],
        first_ref.as_str()
    );
    track(&mut b, &jb, "realtime:room", json!({"n": 1})).await;
    let d = diff(&mut a).await;
    let key = d.payload["joins"]
        .as_object()
        .unwrap()
        .keys()
        .next()
        .unwrap()
        .clone();
    assert_eq!(key.len(), 36, "a generated UUID key: {key}");

    // Identical re-track: ok, no diff. Different: join + leave with phx_ref_prev.
    track(&mut a, &ja, "realtime:room", json!({"status": "online"})).await;
    track(&mut a, &ja, "realtime:room", json!({"status": "away"})).await;
    let d = diff(&mut b).await;
    let d = if d.payload["joins"].get("alice").is_some() {
        d
    } else {
        diff(&mut b).await
    };
    let joined = &metas(&d.payload, "joins", "alice")[0];
    assert_eq!(joined["status"], "away");
    assert_eq!(joined["phx_ref_prev"], first_ref.as_str());
    assert_eq!(
        metas(&d.payload, "leaves", "alice")[0]["phx_ref"],
        first_ref.as_str()
    );

    // Untrack → leave diff.
    let r = a
        .push(
            Some(&ja),
            "realtime:room",
            "presence",
            json!({"type": "presence", "event": "UNTRACK"}),
        )
        .await;
    a.recv_until(|f| f.r#ref.as_deref() == Some(r.as_str()))
        .await;
    let d = diff(&mut b).await;
    assert_eq!(metas(&d.payload, "leaves", "alice")[0]["status"], "away");

    // Disconnect → leave diff for b's entry seen by a.
    drop(b);
    let d = a
        .recv_until(|f| f.event == "presence_diff" && f.payload["leaves"].get(&key).is_some())
        .await;
    assert_eq!(metas(&d.payload, "leaves", &key)[0]["n"], 1);
}

#[tokio::test]
async fn several_metas_per_key_and_track_enables_presence() {
    let server = server();
    let mut a = Client::connect(&server, Vsn::V2).await;
    let mut b = Client::connect(&server, Vsn::V1).await;
    let mut watcher = Client::connect(&server, Vsn::V2).await;
    // Joined without presence: no presence_state, no diffs...
    let jw = watcher.join_ok("realtime:room", json!({})).await;
    let ja = a
        .join_ok("realtime:room", json!({"presence": {"key": "u"}}))
        .await;
    let jb = b
        .join_ok("realtime:room", json!({"presence": {"key": "u"}}))
        .await;
    track(&mut a, &ja, "realtime:room", json!({"tab": 1})).await;
    track(&mut b, &jb, "realtime:room", json!({"tab": 2})).await;
    watcher.expect_silence().await;
    // ...until it tracks itself.
    track(&mut watcher, &jw, "realtime:room", json!({"w": true})).await;
    diff(&mut watcher).await;
    let mut c = Client::connect(&server, Vsn::V2).await;
    c.join_ok("realtime:room", json!({"presence": {"enabled": true}}))
        .await;
    let state = c.recv_text().await;
    assert_eq!(state.payload["u"]["metas"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn invalid_track_and_rate_limit() {
    let server = server();
    let mut a = Client::connect(&server, Vsn::V2).await;
    let ja = a
        .join_ok("realtime:room", json!({"presence": {"key": "k"}}))
        .await;
    let r = a
        .push(
            Some(&ja),
            "realtime:room",
            "presence",
            json!({"type": "presence", "event": "track", "payload": 5}),
        )
        .await;
    let reply = a.recv_text().await;
    assert_eq!(reply.r#ref.as_deref(), Some(r.as_str()));
    assert_eq!(
        reply.payload,
        json!({"status": "error", "response": {"reason": "Presence track payload must be a map"}})
    );
    // 5 calls per window are allowed (the invalid one counted); the 6th shuts the channel.
    for n in 0..4 {
        track(&mut a, &ja, "realtime:room", json!({ "n": n })).await;
    }
    a.push(
        Some(&ja),
        "realtime:room",
        "presence",
        json!({"type": "presence", "event": "track", "payload": {}}),
    )
    .await;
    let system = a.recv_until(|f| f.event == "system").await;
    assert_eq!(
        system.payload["message"],
        "Client presence rate limit exceeded"
    );
    let close = a.recv_until(|f| f.event == "phx_close").await;
    assert_eq!(close.join_ref.as_deref(), Some(ja.as_str()));
}

#[tokio::test]
async fn odd_presence_messages_get_upstream_replies() {
    let server = server();
    let mut a = Client::connect(&server, Vsn::V2).await;
    let ja = a.join_ok("realtime:room", json!({})).await;
    // No inner event: acknowledged, nothing happens.
    let r = a
        .push(
            Some(&ja),
            "realtime:room",
            "presence",
            json!({"type": "presence"}),
        )
        .await;
    let reply = a.recv_text().await;
    assert_eq!(
        (reply.r#ref.as_deref(), reply.reply_status()),
        (Some(r.as_str()), Some("ok"))
    );
    // An unknown inner event: a bare error reply.
    let r = a
        .push(
            Some(&ja),
            "realtime:room",
            "presence",
            json!({"type": "presence", "event": "dance"}),
        )
        .await;
    let reply = a.recv_text().await;
    assert_eq!(reply.r#ref.as_deref(), Some(r.as_str()));
    assert_eq!(reply.payload, json!({"status": "error", "response": {}}));
    a.expect_silence().await;
}
