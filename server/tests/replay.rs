//! Stored broadcasts end to end (a real PostgreSQL, the server, a WebSocket client speaking
//! the wire protocol): `persist` from WebSocket, REST and `realtime.send`, replay on join with
//! upstream's limits and errors, TTL expiry and the sweep, and `replication_ready`.

mod common;

use std::time::Duration;

use common::pg::{database_url, shared_ddl, sql};
use common::{http, Client, In};
use serde_json::{json, Value};
use supa_realtime_protocol::{BinaryFrame, BroadcastPayload, Frame, Vsn};
use supa_realtime_server::{Config, Server};
use tokio_tungstenite::tungstenite::Message;

const USER: &str = "cccccccc-0000-0000-0000-000000000003";
const DEADLINE: Duration = Duration::from_secs(10);

async fn start(config: Config) -> Server {
    tokio::task::spawn_blocking(move || Server::start(config).expect("starts"))
        .await
        .unwrap()
}

/// A server on the test database, with policies that let `authenticated` read and write
/// topics named `replay-…` (the prefix keeps these tests apart from other suites' rows).
async fn server_with_policies(config: Config) -> Server {
    let server = start(Config {
        database_url: Some(database_url().to_string()),
        ..config
    })
    .await;
    shared_ddl(
        "drop policy if exists replay_read on realtime.messages;
         drop policy if exists replay_write on realtime.messages;
         create policy replay_read on realtime.messages for select to authenticated
           using (realtime.topic() like 'replay-%');
         create policy replay_write on realtime.messages for insert to authenticated
           with check (realtime.topic() like 'replay-%')",
    )
    .await;
    server
}

fn topic_name(test: &str) -> String {
    format!("replay-{test}-{}", std::process::id())
}

fn user_token(server: &Server) -> String {
    server.sign_token(&json!({"role": "authenticated", "sub": USER, "exp": common::now() + 3600}))
}

async fn join_private(c: &mut Client, server: &Server, name: &str, broadcast: Value) -> Frame {
    let (_, reply) = c
        .join(
            &format!("realtime:{name}"),
            json!({"config": {"private": true, "broadcast": broadcast}, "access_token": user_token(server)}),
        )
        .await;
    reply
}

/// `POST /realtime/v1/api/broadcast/{path}` as the policy's user, expecting 202.
async fn rest_send(server: &Server, path: &str, body: &str) {
    let token = user_token(server);
    let (status, reply) = http(
        server,
        "POST",
        &format!("/realtime/v1/api/broadcast/{path}"),
        &[
            ("Authorization", &format!("Bearer {token}")),
            ("Content-Type", "application/json"),
        ],
        body.as_bytes(),
    )
    .await;
    assert_eq!(status, 202, "{reply}");
}

/// A kind-3 push with metadata, as realtime-js sends `send({..., persist})`.
fn kind3_with_meta(
    join_ref: &str,
    r: &str,
    topic: &str,
    event: &str,
    meta: Value,
    n: i64,
) -> Message {
    let frame = BinaryFrame::UserBroadcastPush {
        join_ref: Some(join_ref.into()),
        r#ref: Some(r.into()),
        topic: topic.into(),
        event: event.into(),
        metadata: meta.to_string(),
        payload: BroadcastPayload::Json(json!({ "n": n }).to_string()),
    };
    Message::binary(frame.encode().unwrap())
}

/// The next broadcast as (event, payload, meta), from a JSON or a kind-4 frame.
async fn next_broadcast(c: &mut Client) -> (String, Value, Value) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match c.recv_within(left).await.expect("a broadcast in time") {
            In::Text(f) if f.event == "broadcast" => {
                return (
                    f.payload["event"].as_str().unwrap_or_default().to_owned(),
                    f.payload["payload"].clone(),
                    f.payload["meta"].clone(),
                )
            }
            In::Binary(BinaryFrame::UserBroadcast {
                event,
                metadata,
                payload: BroadcastPayload::Json(text),
                ..
            }) => {
                let meta = serde_json::from_str(&metadata).unwrap_or(Value::Null);
                return (event, serde_json::from_str(&text).unwrap(), meta);
            }
            In::Closed(code) => panic!("closed ({code:?})"),
            _ => {}
        }
    }
}

/// Everything up to a heartbeat's reply: proves what the server did (not) send before it.
async fn broadcasts_before_heartbeat(c: &mut Client) -> usize {
    let r = c.push(None, "phoenix", "heartbeat", json!({})).await;
    let mut n = 0;
    loop {
        match c.recv_within(DEADLINE).await.expect("the heartbeat reply") {
            In::Text(f) if f.topic == "phoenix" && f.r#ref.as_deref() == Some(r.as_str()) => {
                return n
            }
            In::Text(f) if f.event == "broadcast" => n += 1,
            In::Binary(BinaryFrame::UserBroadcast { .. }) => n += 1,
            In::Closed(code) => panic!("closed ({code:?})"),
            _ => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_broadcasts_are_replayed_in_order_before_live_ones() {
    let server = server_with_policies(Config::default()).await;
    let name = topic_name("order");
    let topic = format!("realtime:{name}");

    // A live subscriber sees each stored message once, with its id.
    let mut live = Client::connect(&server, Vsn::V2).await;
    assert_eq!(
        join_private(&mut live, &server, &name, json!({}))
            .await
            .reply_status(),
        Some("ok")
    );
    let mut sender = Client::connect(&server, Vsn::V2).await;
    let reply = join_private(&mut sender, &server, &name, json!({"ack": true})).await;
    assert_eq!(reply.reply_status(), Some("ok"), "{reply:?}");
    let jr = reply.join_ref.clone().unwrap();

    let mut ids = Vec::new();
    // 1, 2: kind 3 with `persist` and `persist: {ttl}` in the metadata (realtime-js).
    for (n, meta) in [
        (1, json!({"persist": true})),
        (2, json!({"persist": {"ttl": 3600}})),
    ] {
        let r = sender.next_ref();
        sender
            .send_raw(kind3_with_meta(&jr, &r, &topic, "note", meta, n))
            .await;
        let ack = sender
            .recv_until(|f| f.event == "phx_reply" && f.r#ref.as_deref() == Some(r.as_str()))
            .await;
        assert_eq!(ack.reply_status(), Some("ok"), "{ack:?}");
        let (event, payload, meta) = next_broadcast(&mut live).await;
        assert_eq!((event.as_str(), payload["n"].as_i64()), ("note", Some(n)));
        ids.push(
            meta["id"]
                .as_str()
                .expect("meta.id on a stored broadcast")
                .to_owned(),
        );
    }
    // 3: a JSON push with `persist` (other clients, vsn 1).
    let r = sender
        .push(
            Some(&jr),
            &topic,
            "broadcast",
            json!({"type": "broadcast", "event": "note", "payload": {"n": 3}, "persist": true}),
        )
        .await;
    let ack = sender
        .recv_until(|f| f.event == "phx_reply" && f.r#ref.as_deref() == Some(r.as_str()))
        .await;
    assert_eq!(ack.reply_status(), Some("ok"), "{ack:?}");
    let (_, payload, meta) = next_broadcast(&mut live).await;
    assert_eq!(payload["n"], 3);
    ids.push(meta["id"].as_str().expect("meta.id").to_owned());
    // 4: REST with ?persist=true (httpSend).
    rest_send(
        &server,
        &format!("{name}/events/note?private=true&persist=true"),
        r#"{"n":4}"#,
    )
    .await;
    let (_, payload, meta) = next_broadcast(&mut live).await;
    assert_eq!(payload["n"], 4);
    ids.push(meta["id"].as_str().expect("meta.id").to_owned());
    // 5: realtime.send from SQL (private by default), delivered live by the database feed.
    sql()
        .await
        .execute(
            "select realtime.send('{\"n\":5}'::jsonb, 'note', $1)",
            &[&name],
        )
        .await
        .unwrap();
    let (_, payload, meta) = next_broadcast(&mut live).await;
    assert_eq!(payload["n"], 5);
    ids.push(meta["id"].as_str().expect("meta.id").to_owned());
    // Each went out exactly once (the row's echo from the replication stream is not resent).
    assert_eq!(broadcasts_before_heartbeat(&mut live).await, 0);

    // A join with replay gets them, oldest first, each marked replayed, then nothing else.
    let mut late = Client::connect(&server, Vsn::V2).await;
    let reply = join_private(
        &mut late,
        &server,
        &name,
        json!({"replay": {"since": 0, "limit": 10}}),
    )
    .await;
    assert_eq!(reply.reply_status(), Some("ok"), "{reply:?}");
    for (i, id) in ids.iter().enumerate() {
        let (event, payload, meta) = next_broadcast(&mut late).await;
        assert_eq!(event, "note");
        assert_eq!(payload["n"], i as i64 + 1);
        assert_eq!(meta, json!({"id": id, "replayed": true}));
    }
    assert_eq!(broadcasts_before_heartbeat(&mut late).await, 0);

    // `since` in the future replays nothing; `limit` 2 replays the newest two, in order.
    let mut c = Client::connect(&server, Vsn::V2).await;
    let future = common::now() * 1000 + 3_600_000;
    join_private(&mut c, &server, &name, json!({"replay": {"since": future}})).await;
    assert_eq!(broadcasts_before_heartbeat(&mut c).await, 0);
    let mut c = Client::connect(&server, Vsn::V1).await;
    join_private(
        &mut c,
        &server,
        &name,
        json!({"replay": {"since": 0, "limit": 2}}),
    )
    .await;
    for n in [4, 5] {
        let (_, payload, meta) = next_broadcast(&mut c).await;
        assert_eq!(payload["n"], n);
        assert_eq!(meta["replayed"], true);
    }
    assert_eq!(broadcasts_before_heartbeat(&mut c).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_limit_is_capped_at_25() {
    let server = server_with_policies(Config::default()).await;
    let name = topic_name("cap");
    let db = sql().await;
    for n in 1..=30 {
        db.execute(
            "select realtime.send(jsonb_build_object('n', $2::int), 'e', $1)",
            &[&name, &n],
        )
        .await
        .unwrap();
    }
    let mut c = Client::connect(&server, Vsn::V2).await;
    let reply = join_private(
        &mut c,
        &server,
        &name,
        json!({"replay": {"since": 0, "limit": 1000}}),
    )
    .await;
    assert_eq!(reply.reply_status(), Some("ok"));
    for n in 6..=30 {
        let (_, payload, _) = next_broadcast(&mut c).await;
        assert_eq!(payload["n"], n);
    }
    assert_eq!(broadcasts_before_heartbeat(&mut c).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_replay_and_persist_requests_get_upstream_errors() {
    let server = server_with_policies(Config::default()).await;
    let name = topic_name("errors");
    let mut c = Client::connect(&server, Vsn::V2).await;
    // Replay on a public channel.
    let (_, reply) = c
        .join(
            &format!("realtime:{name}"),
            json!({"config": {"broadcast": {"replay": {"since": 0}}}}),
        )
        .await;
    assert_eq!(
        reply.payload["response"]["reason"],
        "UnableToReplayMessages: Replay is not allowed for public channels"
    );
    // `since` missing or not an integer.
    for replay in [
        json!({"limit": 5}),
        json!({"since": "yesterday"}),
        json!(true),
    ] {
        let reply = join_private(&mut c, &server, &name, json!({ "replay": replay })).await;
        assert_eq!(
            reply.payload["response"]["reason"],
            "UnableToReplayMessages: Replay params are not valid",
            "{replay}"
        );
    }
    // Storing on a public channel: the reply's `error` (what realtime-js's send() returns).
    let jr = c.join_ok(&format!("realtime:{name}"), json!({})).await;
    let r = c
        .push(
            Some(&jr),
            &format!("realtime:{name}"),
            "broadcast",
            json!({"type": "broadcast", "event": "e", "payload": {}, "persist": true}),
        )
        .await;
    let reply = c
        .recv_until(|f| f.event == "phx_reply" && f.r#ref.as_deref() == Some(r.as_str()))
        .await;
    assert_eq!(reply.reply_status(), Some("error"));
    assert_eq!(
        reply.payload["response"]["error"],
        "Messages can only be stored on private channels"
    );
    let (status, body) = http(
        &server,
        "POST",
        &format!("/realtime/v1/api/broadcast/{name}/events/e?persist=true"),
        &[
            ("apikey", &server.anon_key()),
            ("Content-Type", "application/json"),
        ],
        b"{}",
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert!(body.contains("private channels"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_with_a_ttl_expire_and_the_sweep_deletes_them() {
    let mut config = Config::default();
    config.postgres.sweep_interval = Duration::from_millis(200);
    let server = server_with_policies(config).await;
    let name = topic_name("ttl");
    rest_send(
        &server,
        &format!("{name}/events/e?private=true&persist%5Bttl%5D=1"),
        r#"{"n":1}"#,
    )
    .await;
    let db = sql().await;
    let count = || async {
        db.query_one(
            "select count(*) from realtime.messages where topic = $1",
            &[&name],
        )
        .await
        .unwrap()
        .get::<_, i64>(0)
    };
    assert_eq!(count().await, 1, "stored");
    // Gone from the table once its second has passed and the sweep ran.
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while count().await > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "swept within {DEADLINE:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut c = Client::connect(&server, Vsn::V2).await;
    join_private(&mut c, &server, &name, json!({"replay": {"since": 0}})).await;
    assert_eq!(broadcasts_before_heartbeat(&mut c).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replication_ready_is_announced_or_the_channel_shuts_down() {
    let server = server_with_policies(Config::default()).await;
    let mut c = Client::connect(&server, Vsn::V2).await;
    c.join_ok(
        "realtime:ready",
        json!({"broadcast": {"replication_ready": true}}),
    )
    .await;
    let system = c.recv_until(|f| f.event == "system").await;
    assert_eq!(
        system.payload,
        json!({"extension": "system", "status": "ok", "message": "Replication connection established", "channel": "ready"})
    );

    // Without a database there is no replication: upstream's error, then phx_close.
    let server = start(Config::default()).await;
    let mut c = Client::connect(&server, Vsn::V2).await;
    c.join_ok(
        "realtime:ready",
        json!({"broadcast": {"replication_ready": true}}),
    )
    .await;
    let system = c.recv_until(|f| f.event == "system").await;
    assert_eq!(system.payload["status"], "error");
    assert_eq!(
        system.payload["message"],
        "Replication connection was not established in time"
    );
    c.recv_until(|f| f.event == "phx_close").await;
}
