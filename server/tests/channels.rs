//! Channel lifecycle: join replies, join errors, duplicate joins, leave, unmatched topics.

mod common;

use common::*;
use serde_json::json;
use supa_realtime_protocol::Vsn;
use supa_realtime_server::{Config, Limits, Server};

#[tokio::test]
async fn heartbeat_is_answered_on_phoenix() {
    let server = server();
    let mut c = Client::connect(&server, Vsn::V2).await;
    let r = c.push(None, "phoenix", "heartbeat", json!({})).await;
    let reply = c.recv_text().await;
    assert_eq!(
        reply.encode(Vsn::V2),
        format!(r#"[null,"{r}","phoenix","phx_reply",{{"status":"ok","response":{{}}}}]"#)
    );
}

#[tokio::test]
async fn join_echoes_bindings_and_reports_missing_database() {
    let server = server();
    let mut c = Client::connect(&server, Vsn::V2).await;
    let binding = json!({"event": "INSERT", "schema": "public", "table": "messages", "filter": "room_id=eq.1"});
    let (jr, reply) = c
        .join(
            "realtime:room1",
            json!({"config": {"broadcast": {"self": false}, "presence": {"key": ""},
                   "private": false, "postgres_changes": [binding, {"event": "*", "schema": "public"}]}}),
        )
        .await;
    assert_eq!(reply.join_ref.as_deref(), Some(jr.as_str()));
    assert_eq!(reply.reply_status(), Some("ok"));
    let echoed = reply.reply_response().unwrap()["postgres_changes"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(echoed.len(), 2);
    let id = echoed[0]["id"].as_u64().unwrap();
    assert!(id < 1 << 27);
    let mut without_id = echoed[0].clone();
    without_id.as_object_mut().unwrap().remove("id");
    assert_eq!(without_id, binding);
    let system = c.recv_text().await;
    assert_eq!(system.event, "system");
    assert_eq!(
        (system.join_ref.as_deref(), system.r#ref.as_deref()),
        (Some(jr.as_str()), None)
    );
    assert_eq!(system.payload["extension"], "postgres_changes");
    assert_eq!(system.payload["status"], "error");
    assert_eq!(system.payload["channel"], "room1");
    assert!(system.payload["message"]
        .as_str()
        .unwrap()
        .contains("database"));

    // Same bindings on another join: same ids.
    let (_, again) = c
        .join(
            "realtime:room2",
            json!({"config": {"postgres_changes": [binding]}}),
        )
        .await;
    assert_eq!(
        again.reply_response().unwrap()["postgres_changes"][0]["id"].as_u64(),
        Some(id)
    );
}

#[tokio::test]
async fn join_errors_and_unmatched_topics() {
    let server = Server::start(Config {
        limits: Limits {
            max_channels_per_client: 2,
            ..Limits::default()
        },
        ..Config::default()
    })
    .unwrap();
    let mut c = Client::connect(&server, Vsn::V2).await;
    let reason = |f: &supa_realtime_protocol::Frame| {
        assert_eq!(f.reply_status(), Some("error"));
        f.reply_response().unwrap()["reason"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let (_, reply) = c.join("realtime:", json!({"config": {}})).await;
    assert_eq!(
        reason(&reply),
        "TopicNameRequired: You must provide a topic name"
    );
    let (_, reply) = c.join("room", json!({"config": {}})).await;
    assert_eq!(reason(&reply), "unmatched topic");
    assert_eq!(reply.join_ref, None);
    let (_, reply) = c
        .join("realtime:p", json!({"config": {"private": true}}))
        .await;
    assert!(reason(&reply).starts_with(
        "Unauthorized: You do not have permissions to read from this Channel topic: p"
    ));
    let (_, reply) = c
        .join(
            "realtime:r",
            json!({"config": {"broadcast": {"replay": {"since": 1, "limit": 1}}}}),
        )
        .await;
    assert_eq!(
        reason(&reply),
        "UnableToReplayMessages: Replay is not allowed for public channels"
    );
    c.join_ok("realtime:a", json!({})).await;
    c.join_ok("realtime:b", json!({})).await;
    let (_, reply) = c.join("realtime:c", json!({"config": {}})).await;
    assert_eq!(reason(&reply), "ChannelRateLimitReached: Too many channels");
    // Non-join messages to topics not joined.
    let r = c
        .push(Some("9"), "realtime:zzz", "broadcast", json!({}))
        .await;
    let reply = c.recv_text().await;
    assert_eq!(reply.r#ref.as_deref(), Some(r.as_str()));
    assert_eq!(reason(&reply), "unmatched topic");
    // Leaving a topic that is not joined is still ok, without a close.
    let r = c
        .push(Some("9"), "realtime:zzz", "phx_leave", json!({}))
        .await;
    let reply = c.recv_text().await;
    assert_eq!(
        (reply.r#ref.as_deref(), reply.reply_status()),
        (Some(r.as_str()), Some("ok"))
    );
    c.expect_silence().await;
}

#[tokio::test]
async fn join_errors_can_be_delayed() {
    let server = Server::start(Config {
        join_error_delay: std::time::Duration::from_millis(300),
        ..Config::default()
    })
    .unwrap();
    let mut c = Client::connect(&server, Vsn::V2).await;
    let r = c
        .push(Some("1"), "realtime:", "phx_join", json!({"config": {}}))
        .await;
    // The socket keeps serving meanwhile: the heartbeat reply comes first.
    c.heartbeat().await;
    let reply = c
        .recv_until(|f| f.r#ref.as_deref() == Some(r.as_str()))
        .await;
    assert_eq!(reply.reply_status(), Some("error"));
}

#[tokio::test]
async fn duplicate_join_closes_the_old_channel() {
    let server = server();
    let mut c = Client::connect(&server, Vsn::V2).await;
    let old = c.join_ok("realtime:room", json!({})).await;
    let r = c.next_ref();
    c.send(&supa_realtime_protocol::Frame::new(
        Some(r.clone()),
        Some(r.clone()),
        "realtime:room",
        "phx_join",
        json!({"config": {}}),
    ))
    .await;
    let close = c.recv_text().await;
    assert_eq!(close.event, "phx_close");
    assert_eq!(close.join_ref.as_deref(), Some(old.as_str()));
    assert_eq!(close.r#ref.as_deref(), Some(old.as_str()));
    let reply = c.recv_text().await;
    assert_eq!(
        (reply.event.as_str(), reply.reply_status()),
        ("phx_reply", Some("ok"))
    );
    assert_eq!(reply.join_ref.as_deref(), Some(r.as_str()));
}

#[tokio::test]
async fn leave_replies_then_closes() {
    let server = server();
    let mut c = Client::connect(&server, Vsn::V2).await;
    let jr = c.join_ok("realtime:room", json!({})).await;
    let r = c
        .push(Some(&jr), "realtime:room", "phx_leave", json!({}))
        .await;
    let reply = c.recv_text().await;
    assert_eq!(
        reply.encode(Vsn::V2),
        format!(r#"["{jr}","{r}","realtime:room","phx_reply",{{"status":"ok","response":{{}}}}]"#)
    );
    let close = c.recv_text().await;
    assert_eq!(
        close.encode(Vsn::V2),
        format!(r#"["{jr}","{jr}","realtime:room","phx_close",{{}}]"#)
    );
}

#[tokio::test]
async fn v1_frames_are_objects_without_join_ref() {
    let server = server();
    let mut c = Client::connect(&server, Vsn::V1).await;
    let r = c.next_ref();
    c.send_raw(tokio_tungstenite::tungstenite::Message::text(format!(
        r#"{{"topic":"realtime:room","event":"phx_join","payload":{{"config":{{}}}},"ref":"{r}","join_ref":"{r}"}}"#
    )))
    .await;
    let raw = match c.ws_next_text().await {
        Some(t) => t,
        None => panic!("no reply"),
    };
    let value: serde_json::Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(value["event"], "phx_reply");
    assert_eq!(value["ref"], r.as_str());
    assert!(value.get("join_ref").is_none(), "{raw}");
}

trait RawText {
    async fn ws_next_text(&mut self) -> Option<String>;
}

impl RawText for Client {
    async fn ws_next_text(&mut self) -> Option<String> {
        use futures_util::StreamExt;
        let msg = tokio::time::timeout(DEADLINE, self.ws.next())
            .await
            .ok()??
            .ok()?;
        msg.into_text().ok().map(|t| t.as_str().to_owned())
    }
}

#[tokio::test]
async fn async_start_and_shutdown() {
    let server = Server::start_async(Config::default()).await.unwrap();
    let mut c = Client::connect(&server, Vsn::V2).await;
    c.heartbeat().await;
    server.shutdown_async().await;
    assert_eq!(c.expect_closed().await, Some(1001));
}

#[tokio::test]
async fn socket_path_and_start_errors() {
    let server = server();
    // The self-hosted path works too.
    let url = format!(
        "ws://{}/socket/websocket?apikey={}&vsn=2.0.0",
        server.local_addr(),
        server.anon_key()
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    futures_util::SinkExt::close(&mut ws).await.unwrap();
    // A taken port is a clear start error.
    let err = Server::start(Config {
        listen: server.local_addr(),
        ..Config::default()
    })
    .unwrap_err();
    assert!(err.to_string().starts_with("cannot listen on"), "{err}");
}

#[tokio::test]
async fn missing_vsn_means_v1() {
    let server = server();
    let url = format!(
        "{}/websocket?apikey={}",
        server.realtime_url(),
        server.anon_key()
    );
    let (ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let mut c = Client::from_stream(ws, Vsn::V1);
    // An array frame is not V1: dropped. The object form is answered as an object.
    c.send_raw(tokio_tungstenite::tungstenite::Message::text(
        r#"[null,"1","phoenix","heartbeat",{}]"#,
    ))
    .await;
    c.send_raw(tokio_tungstenite::tungstenite::Message::text(
        r#"{"topic":"phoenix","event":"heartbeat","payload":{},"ref":"2"}"#,
    ))
    .await;
    let raw = c.ws_next_text().await.expect("a reply");
    let value: serde_json::Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(value["ref"], "2");
    assert_eq!(value["payload"]["status"], "ok");
}
