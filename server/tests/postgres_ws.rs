//! Postgres changes and private channels end to end: a real PostgreSQL, the server, and a
//! WebSocket client speaking the wire protocol.

mod common;

use common::pg::database_url;
use common::Client;
use serde_json::{json, Value};
use supa_realtime_protocol::Vsn;
use supa_realtime_server::{Config, Server};
use tokio_postgres::NoTls;

fn token(server: &Server, role: &str, sub: &str) -> String {
    server.sign_token(&json!({"role": role, "sub": sub, "exp": common::now() + 3600}))
}

const A: &str = "aaaaaaaa-0000-0000-0000-000000000001";
const B: &str = "bbbbbbbb-0000-0000-0000-000000000002";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_users_see_only_their_rows_and_private_channels_follow_policies() {
    let (db, conn) = tokio_postgres::connect(database_url(), NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let server = tokio::task::spawn_blocking(|| {
        Server::start(Config {
            database_url: Some(database_url().to_string()),
            ..Config::default()
        })
        .expect("starts")
    })
    .await
    .unwrap();
    db.batch_execute(
        "drop table if exists ws_notes;
         create table ws_notes (id int primary key, owner uuid, body text);
         alter table ws_notes enable row level security;
         create policy own on ws_notes for select to authenticated using (owner = auth.uid());
         alter publication supabase_realtime add table ws_notes;
         drop policy if exists ws_read on realtime.messages;
         create policy ws_read on realtime.messages for select to authenticated
           using (realtime.topic() = 'ws-private-' || auth.uid()::text);",
    )
    .await
    .unwrap();

    let binding = json!([{"event": "*", "schema": "public", "table": "ws_notes"}]);
    let mut users = vec![];
    for sub in [A, B] {
        let mut c = Client::connect(&server, Vsn::V2).await;
        let (_, reply) = c
            .join(
                "realtime:notes",
                json!({"config": {"postgres_changes": binding}, "access_token": token(&server, "authenticated", sub)}),
            )
            .await;
        assert_eq!(reply.reply_status(), Some("ok"), "{reply:?}");
        let id = reply.payload["response"]["postgres_changes"][0]["id"].clone();
        let system = c.recv_until(|f| f.event == "system").await;
        assert_eq!(system.payload["message"], "Subscribed to PostgreSQL");
        assert_eq!(system.payload["channel"], "notes");
        users.push((c, id));
    }
    db.batch_execute(&format!(
        "insert into ws_notes values (1, '{A}', 'for a'), (2, '{B}', 'for b'), (3, '{A}', 'a again')"
    ))
    .await
    .unwrap();
    for ((c, id), expected) in users.iter_mut().zip([vec![1, 3], vec![2]]) {
        for row in expected {
            let f = c.recv_until(|f| f.event == "postgres_changes").await;
            assert_eq!(f.payload["ids"], json!([id.clone()]));
            assert_eq!(f.payload["data"]["record"]["id"], row);
            assert_eq!(f.payload["data"]["type"], "INSERT");
        }
    }

    // Private channel: only the owner of the topic may read it.
    let topic = format!("realtime:ws-private-{A}");
    let (c, _) = &mut users[0];
    let (_, reply) = c
        .join(&topic, json!({"config": {"private": true}, "access_token": token(&server, "authenticated", A)}))
        .await;
    assert_eq!(reply.reply_status(), Some("ok"), "{reply:?}");
    let (c, _) = &mut users[1];
    let (_, reply) = c
        .join(&topic, json!({"config": {"private": true}, "access_token": token(&server, "authenticated", B)}))
        .await;
    assert_eq!(reply.reply_status(), Some("error"));
    let reason: &Value = &reply.payload["response"]["reason"];
    assert_eq!(
        reason.as_str().unwrap(),
        format!("Unauthorized: You do not have permissions to read from this Channel topic: ws-private-{A}")
    );
    drop(users);
    tokio::task::spawn_blocking(move || server.shutdown())
        .await
        .unwrap();
}
