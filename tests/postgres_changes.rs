//! Postgres changes through the client: a real PostgreSQL (DATABASE_URL, as scripts/test
//! exports it, or a throwaway cluster from scripts/dev-postgres), the in-process server, and
//! several filtered bindings on one channel. With DATABASE_URL set, missing changes fail the
//! test; without it and without a usable scripts/dev-postgres, the tests say so and skip.

mod support;

use serde_json::json;
use supa_realtime::{
    ChannelOptions, ClientOptions, ErrorKind, Event, PostgresChange, PostgresChangesFilter,
    RealtimeClient, SubscribeStatus,
};
use supa_realtime_server::Server;
use support::resilience::sql;
use support::{server_with_database, Recorder, DEADLINE};

fn setup(table: &str) -> Option<(Server, &'static str)> {
    let (server, url) = server_with_database()?;
    sql(
        url,
        &format!(
            "drop table if exists {table};
             create table {table} (id int primary key, room int, title text, done bool,
                                   tags text[], meta jsonb, at timestamp);
             alter publication supabase_realtime add table {table};"
        ),
    );
    Some((server, url))
}

fn change(e: &Event) -> Option<&PostgresChange> {
    match e {
        Event::PostgresChange(c) => Some(c),
        _ => None,
    }
}

#[test]
fn several_filtered_bindings_route_inserts_updates_and_deletes() {
    let table = "client_todos";
    let Some((server, url)) = setup(table) else {
        return;
    };
    let client =
        RealtimeClient::new(ClientOptions::new(server.realtime_url(), server.anon_key())).unwrap();
    let ch = client.channel("todos", ChannelOptions::default());
    let r = Recorder::new();
    ch.on_event(r.sink());
    let inserts = Recorder::new();
    let i2 = inserts.clone();
    ch.on_postgres_changes(
        PostgresChangesFilter::new("INSERT", "public")
            .table(table)
            .filter("room=eq.1"),
        move |c| i2.push(Event::PostgresChange(Box::new(c.clone()))),
    )
    .unwrap();
    let all = Recorder::new();
    let a2 = all.clone();
    ch.on_postgres_changes(
        PostgresChangesFilter::new("*", "public").table(table),
        move |c| a2.push(Event::PostgresChange(Box::new(c.clone()))),
    )
    .unwrap();
    // Truthful readiness: SUBSCRIBED only after `Subscribed to PostgreSQL`.
    ch.subscribe_blocking(DEADLINE).expect("subscribed");
    // Events reach listeners on the dispatcher thread: wait for the status there too.
    r.wait_status("realtime:todos", SubscribeStatus::Subscribed);
    let events = r.events();
    let sys = events
        .iter()
        .position(|e| matches!(e, Event::System { payload, .. } if payload["message"] == "Subscribed to PostgreSQL"))
        .expect("system ok before SUBSCRIBED");
    let sub = events
        .iter()
        .position(|e| {
            matches!(
                e,
                Event::ChannelStatus {
                    status: SubscribeStatus::Subscribed,
                    ..
                }
            )
        })
        .unwrap();
    assert!(sys < sub);
    assert!(ch
        .on_postgres_changes(PostgresChangesFilter::new("*", "public"), |_| {})
        .is_err());

    sql(
        url,
        &format!(
            "insert into {table} values (1, 1, 'one', false, '{{a,b}}', '{{\"k\": 1}}', '2026-01-02 03:04:05');
             insert into {table} values (2, 2, 'two', true, null, null, null);
             update {table} set done = true where id = 1;
             delete from {table} where id = 2;"
        ),
    );
    // Binding 0 (INSERT, room=1) sees only row 1's insert.
    let ev = inserts.wait("insert room 1", |e| change(e).is_some());
    let c = change(&ev).unwrap();
    assert_eq!(
        (c.event_type.as_str(), c.schema.as_str(), c.table.as_str()),
        ("INSERT", "public", table)
    );
    assert_eq!(c.new["id"], 1);
    assert_eq!(c.new["tags"], json!(["a", "b"]));
    assert_eq!(c.new["meta"], json!({"k": 1}));
    assert_eq!(c.new["done"], json!(false));
    assert_eq!(c.old, json!({}));
    assert!(!c.commit_timestamp.is_empty());
    // Binding 1 (*) sees all four, in commit order.
    let mut from = 0;
    let mut kinds = Vec::new();
    for _ in 0..4 {
        let (i, ev) = all.wait_from(from, "all changes", |e| change(e).is_some());
        from = i + 1;
        let c = change(&ev).unwrap();
        kinds.push((
            c.event_type.clone(),
            c.new.get("id").or(c.old.get("id")).cloned(),
        ));
        if c.event_type == "UPDATE" {
            assert_eq!(c.new["done"], json!(true));
            assert_eq!(c.old["id"], 1);
        }
        if c.event_type == "DELETE" {
            assert_eq!(c.new, json!({}));
        }
    }
    assert_eq!(
        kinds,
        vec![
            ("INSERT".into(), Some(json!(1))),
            ("INSERT".into(), Some(json!(2))),
            ("UPDATE".into(), Some(json!(1))),
            ("DELETE".into(), Some(json!(2))),
        ]
    );
    // One frame per change per channel: the room-1 insert matched both bindings.
    let on_channel: Vec<_> = r
        .events()
        .into_iter()
        .filter_map(|e| change(&e).map(|c| c.bindings.clone()))
        .collect();
    assert_eq!(on_channel[0], vec![0, 1]);
    assert_eq!(
        inserts
            .events()
            .iter()
            .filter(|e| change(e).is_some())
            .count(),
        1
    );
    server.shutdown();
}

#[test]
fn a_binding_the_server_cannot_serve_is_a_terminal_channel_error() {
    let table = "client_unpublished";
    let Some((server, url)) = setup("client_published_dummy") else {
        return;
    };
    sql(
        url,
        &format!("drop table if exists {table}; create table {table} (id int primary key);"),
    );
    let client =
        RealtimeClient::new(ClientOptions::new(server.realtime_url(), server.anon_key())).unwrap();
    let ch = client.channel("nope", ChannelOptions::default());
    let r = Recorder::new();
    ch.on_event(r.sink());
    ch.on_postgres_changes(
        PostgresChangesFilter::new("*", "public").table(table),
        |_| {},
    )
    .unwrap();
    let err = ch
        .subscribe_blocking(DEADLINE)
        .expect_err("not in the publication");
    let ev = r.wait_status("realtime:nope", SubscribeStatus::ChannelError);
    match ev {
        Event::ChannelStatus {
            reason: Some(reason),
            error_kind,
            ..
        } => {
            assert!(
                reason.starts_with("Unable to subscribe to changes"),
                "{reason}"
            );
            assert_eq!(error_kind, Some(ErrorKind::Terminal));
        }
        other => panic!("{other:?} / {err:?}"),
    }
    server.shutdown();
}

#[test]
fn plain_readiness_reports_subscribed_on_the_join_reply() {
    let table = "client_plain";
    let Some((server, url)) = setup(table) else {
        return;
    };
    let client =
        RealtimeClient::new(ClientOptions::new(server.realtime_url(), server.anon_key())).unwrap();
    let ch = client.channel(
        "plain",
        ChannelOptions::default().wait_for_postgres_ready(false),
    );
    let r = Recorder::new();
    ch.on_event(r.sink());
    ch.on_postgres_changes(
        PostgresChangesFilter::new("INSERT", "public").table(table),
        |_| {},
    )
    .unwrap();
    ch.subscribe_blocking(DEADLINE).unwrap();
    // The system message still arrives; once it has, changes flow.
    r.wait(
        "system ok",
        |e| matches!(e, Event::System { payload, .. } if payload["status"] == "ok"),
    );
    sql(url, &format!("insert into {table} (id) values (5);"));
    let ev = r.wait("insert", |e| change(e).is_some());
    assert_eq!(change(&ev).unwrap().new["id"], 5);
    server.shutdown();
}
