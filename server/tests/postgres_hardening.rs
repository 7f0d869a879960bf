//! Postgres changes under hostile input and ordinary mistakes (issue 16, findings 1–4) and
//! across restarts and lost connections (issue 15): a real PostgreSQL, the server over real
//! sockets, and a WebSocket client. Each test shows that the bad subscription is refused or
//! dropped with a `system` error while a healthy subscriber keeps receiving every change.

mod common;

use common::pg;

use std::time::Duration;

use common::Client;
use serde_json::{json, Value};
use supa_realtime_protocol::{Frame, Vsn};
use supa_realtime_server::postgres::Options;
use supa_realtime_server::{Config, Limits, Server};

async fn start(options: Options, limits: Limits) -> Server {
    tokio::task::spawn_blocking(move || {
        Server::start(Config {
            database_url: Some(pg::database_url().to_string()),
            postgres: options,
            limits,
            ..Config::default()
        })
        .expect("server starts")
    })
    .await
    .unwrap()
}

async fn stop(server: Server) {
    tokio::task::spawn_blocking(move || server.shutdown())
        .await
        .unwrap();
}

fn token(server: &Server, claims: Value) -> String {
    let mut claims = claims;
    claims["exp"] = json!(common::now() + 3600);
    server.sign_token(&claims)
}

/// Joins `topic` with these bindings and returns the `system` message that follows
/// (`(status, message)`).
async fn join_changes(
    c: &mut Client,
    topic: &str,
    bindings: Value,
    token: &str,
) -> (String, String) {
    let (_, reply) = c
        .join(
            &format!("realtime:{topic}"),
            json!({"config": {"postgres_changes": bindings}, "access_token": token}),
        )
        .await;
    assert_eq!(reply.reply_status(), Some("ok"), "{reply:?}");
    let wire_topic = format!("realtime:{topic}");
    let system = c
        .recv_until(|f| f.event == "system" && f.topic == wire_topic)
        .await;
    (
        system.payload["status"].as_str().unwrap().to_string(),
        system.payload["message"].as_str().unwrap().to_string(),
    )
}

/// Joins and asserts that the subscription is in place.
async fn subscribed(c: &mut Client, topic: &str, bindings: Value, token: &str) {
    let (status, message) = join_changes(c, topic, bindings, token).await;
    assert_eq!(
        (status.as_str(), message.as_str()),
        ("ok", "Subscribed to PostgreSQL")
    );
}

/// Joins and asserts that the subscription is refused; returns the error message.
async fn refused(c: &mut Client, topic: &str, bindings: Value, token: &str) -> String {
    let (status, message) = join_changes(c, topic, bindings, token).await;
    assert_eq!(status, "error", "{topic}: {message}");
    message
}

/// Asserts that the next event on `topic` is the `system` error that drops its subscription,
/// ending with `exception`.
async fn expect_dropped(c: &mut Client, topic: &str, exception: &str) {
    let f = next_event(c, topic).await;
    assert_eq!(
        (f.event.as_str(), &f.payload["status"]),
        ("system", &json!("error")),
        "{f:?}"
    );
    let message = f.payload["message"].as_str().unwrap();
    assert!(
        message.ends_with(&format!("Exception: {exception}")),
        "{message}"
    );
}

/// The next `postgres_changes` frame on `topic` (other topics' frames are skipped).
async fn next_change(c: &mut Client, topic: &str) -> Frame {
    let wire_topic = format!("realtime:{topic}");
    c.recv_until(|f| f.event == "postgres_changes" && f.topic == wire_topic)
        .await
}

/// The next `postgres_changes` or `system` frame on `topic`.
async fn next_event(c: &mut Client, topic: &str) -> Frame {
    let wire_topic = format!("realtime:{topic}");
    c.recv_until(|f| {
        (f.event == "postgres_changes" || f.event == "system") && f.topic == wire_topic
    })
    .await
}

async fn table(db: &tokio_postgres::Client, name: &str, ddl: &str) {
    db.batch_execute(&format!(
        "drop table if exists {name} cascade; create table {name} {ddl}; \
         alter publication supabase_realtime add table {name};"
    ))
    .await
    .unwrap();
}

fn binding(table: &str, filter: Option<&str>) -> Value {
    let mut b = json!({"event": "*", "schema": "public", "table": table});
    if let Some(f) = filter {
        b["filter"] = json!(f);
    }
    json!([b])
}

const UNABLE: &str = "Unable to subscribe to changes with given parameters. An exception happened so please check your connect parameters";

/// Finding 1: each trigger that used to stop postgres changes for everybody now costs only
/// its own subscription, and the healthy subscriber sees every marker row in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_bad_subscription_never_stops_the_feed() {
    let db = pg::sql().await;
    table(&db, "hard_ok", "(id int primary key, body text)").await;
    table(&db, "hard_uid", "(id int primary key, owner uuid)").await;
    table(&db, "hard_alter", "(id int primary key, n int)").await;
    db.batch_execute(
        "alter table hard_uid enable row level security;
         create policy mine on hard_uid for select to authenticated using (owner = auth.uid());",
    )
    .await
    .unwrap();
    let server = start(Options::default(), Limits::default()).await;
    let anon = server.anon_key();
    let mut healthy = Client::connect(&server, Vsn::V2).await;
    let ok = join_changes(&mut healthy, "healthy", binding("hard_ok", None), &anon).await;
    assert_eq!(ok.0, "ok");
    let mut marker = 0;
    let mut expect_marker = async |healthy: &mut Client, db: &tokio_postgres::Client| {
        marker += 1;
        db.execute("insert into hard_ok values ($1, 'marker')", &[&marker])
            .await
            .unwrap();
        let f = next_change(healthy, "healthy").await;
        assert_eq!(f.payload["data"]["record"]["id"], marker);
    };
    let mut c = Client::connect(&server, Vsn::V2).await;

    // A LIKE pattern ending with its escape character (validation used to never match it).
    let message = refused(
        &mut c,
        "like",
        binding("hard_ok", Some("body=like.%\\")),
        &anon,
    )
    .await;
    assert_eq!(
        message,
        format!("{UNABLE}: [event: *, schema: public, table: hard_ok, filters: [{{\"body\", \"like\", \"%\\\\\", false}}], select: nil]. Exception: ERROR 22025 (invalid_escape_sequence) LIKE pattern must not end with escape character")
    );
    expect_marker(&mut healthy, &db).await;

    // A role claim naming an existing role in another case is not that role.
    let other_case = token(&server, json!({"role": "Anon"}));
    let message = refused(&mut c, "case", binding("hard_ok", None), &other_case).await;
    assert!(
        message.ends_with("Exception: ERROR 42704 (undefined_object) role \"Anon\" does not exist"),
        "{message}"
    );
    expect_marker(&mut healthy, &db).await;

    // A `sub` that is not a UUID, on a table whose policy compares auth.uid(): the
    // subscription is accepted (nothing is wrong until a row is checked), then dropped.
    let third_party = token(
        &server,
        json!({"role": "authenticated", "sub": "user_2abc"}),
    );
    subscribed(&mut c, "uid", binding("hard_uid", None), &third_party).await;
    db.batch_execute("insert into hard_uid values (1, '11111111-1111-1111-1111-111111111111')")
        .await
        .unwrap();
    expect_dropped(&mut c, "uid", "ERROR 22P02 (invalid_text_representation) invalid input syntax for type uuid: \"user_2abc\"").await;
    expect_marker(&mut healthy, &db).await;

    // A routine migration changes the type of a filtered column.
    subscribed(
        &mut c,
        "alter",
        binding("hard_alter", Some("n=eq.5")),
        &anon,
    )
    .await;
    db.batch_execute("insert into hard_alter values (1, 5)")
        .await
        .unwrap();
    assert_eq!(
        next_change(&mut c, "alter").await.payload["data"]["record"]["n"],
        5
    );
    db.batch_execute(
        "alter table hard_alter alter column n type text using n::text;
         insert into hard_alter values (2, 'five'); insert into hard_alter values (3, '5');",
    )
    .await
    .unwrap();
    expect_dropped(
        &mut c,
        "alter",
        "ERROR 22P02 (invalid_text_representation) invalid input syntax for type integer: \"five\"",
    )
    .await;
    expect_marker(&mut healthy, &db).await;
    c.heartbeat().await;
    c.expect_silence().await;
    stop(server).await;
}

/// Finding 1: however many filters exist, no query exceeds PostgreSQL's limits (1664 result
/// columns): 3,000 filtered bindings in one join, and 1,700 channels with a filter each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_filters_stay_within_postgres_limits() {
    let db = pg::sql().await;
    table(&db, "hard_many", "(id int primary key)").await;
    let limits = Limits {
        max_channels_per_client: 2000,
        ..Limits::default()
    };
    let server = start(Options::default(), limits).await;
    let anon = server.anon_key();

    let mut one = Client::connect(&server, Vsn::V2).await;
    let bindings: Vec<Value> = (1..=3000)
        .map(|n| json!({"event": "INSERT", "schema": "public", "table": "hard_many", "filter": format!("id=eq.{n}")}))
        .collect();
    let (_, reply) = one
        .join(
            "realtime:wide",
            json!({"config": {"postgres_changes": bindings}, "access_token": anon}),
        )
        .await;
    assert_eq!(reply.reply_status(), Some("ok"));
    let ids = reply.payload["response"]["postgres_changes"].clone();
    let system = one.recv_until(|f| f.event == "system").await;
    assert_eq!(system.payload["message"], "Subscribed to PostgreSQL");

    let mut many = Client::connect(&server, Vsn::V2).await;
    for n in 1..=1700 {
        let jr = many.next_ref();
        let frame = Frame::new(
            Some(jr.clone()),
            Some(jr),
            format!("realtime:narrow-{n}"),
            "phx_join",
            json!({"config": {"postgres_changes": binding("hard_many", Some(&format!("id=eq.{n}")))}, "access_token": anon}),
        );
        many.send(&frame).await;
    }
    let mut subscribed = 0;
    while subscribed < 1700 {
        let f = many.recv_until(|f| f.event == "system").await;
        assert_eq!(f.payload["message"], "Subscribed to PostgreSQL", "{f:?}");
        subscribed += 1;
    }

    db.batch_execute("insert into hard_many values (1234); insert into hard_many values (2999)")
        .await
        .unwrap();
    let f = next_change(&mut many, "narrow-1234").await;
    assert_eq!(f.payload["data"]["record"]["id"], 1234);
    for expected in [1234, 2999] {
        let f = next_change(&mut one, "wide").await;
        assert_eq!(f.payload["data"]["record"]["id"], expected);
        assert_eq!(f.payload["ids"], json!([ids[expected as usize - 1]["id"]]));
    }
    many.expect_silence().await;
    stop(server).await;
}

/// Finding 2: a filter (or select list) on a column the role may not SELECT is refused with
/// Supabase's text instead of becoming an oracle for the hidden values.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_on_columns_the_role_cannot_read_are_refused() {
    let db = pg::sql().await;
    table(
        &db,
        "hard_hidden",
        "(id int primary key, body text, hidden text)",
    )
    .await;
    db.batch_execute(
        "revoke select on hard_hidden from anon; grant select (id, body) on hard_hidden to anon;",
    )
    .await
    .unwrap();
    let server = start(Options::default(), Limits::default()).await;
    let anon = server.anon_key();
    let mut c = Client::connect(&server, Vsn::V2).await;
    let message = refused(
        &mut c,
        "oracle",
        binding("hard_hidden", Some("hidden=eq.guess")),
        &anon,
    )
    .await;
    assert_eq!(
        message,
        format!("{UNABLE}: [event: *, schema: public, table: hard_hidden, filters: [{{\"hidden\", \"eq\", \"guess\", false}}], select: nil]. Exception: ERROR P0001 (raise_exception) invalid column for filter hidden")
    );
    let select =
        json!([{"event": "*", "schema": "public", "table": "hard_hidden", "select": ["hidden"]}]);
    let message = refused(&mut c, "peek", select, &anon).await;
    assert!(
        message
            .ends_with("Exception: ERROR P0001 (raise_exception) invalid column for select hidden"),
        "{message}"
    );
    // The role that may read it may filter on it.
    let service = server.service_role_key();
    subscribed(
        &mut c,
        "service",
        binding("hard_hidden", Some("hidden=eq.guess")),
        &service,
    )
    .await;
    db.batch_execute("insert into hard_hidden values (1, 'b', 'nope'), (2, 'b', 'guess')")
        .await
        .unwrap();
    assert_eq!(
        next_change(&mut c, "service").await.payload["data"]["record"]["id"],
        2
    );
    stop(server).await;
}

/// Finding 3: a catastrophic regex hits the statement timeout; its subscription is dropped and
/// a subscriber of another table gets its change (before the deadline; it used to wait
/// 7–8 s per batch, for ever).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_catastrophic_regex_costs_only_its_own_subscription() {
    let db = pg::sql().await;
    table(&db, "hard_regex", "(id int primary key, body text)").await;
    table(&db, "hard_other", "(id int primary key)").await;
    let options = Options {
        statement_timeout: Duration::from_millis(300),
        ..Options::default()
    };
    let server = start(options, Limits::default()).await;
    let anon = server.anon_key();
    let mut c = Client::connect(&server, Vsn::V2).await;
    subscribed(
        &mut c,
        "regex",
        binding(
            "hard_regex",
            Some("body=match.^(.*)(.*)(.*)(.*)\\4\\3\\2\\1$"),
        ),
        &anon,
    )
    .await;
    let mut other = Client::connect(&server, Vsn::V2).await;
    subscribed(&mut other, "other", binding("hard_other", None), &anon).await;
    db.batch_execute(
        "insert into hard_regex select g, repeat('ab', 60) || 'c' from generate_series(1, 3) g;
         insert into hard_other values (1);",
    )
    .await
    .unwrap();
    let f = next_change(&mut other, "other").await;
    assert_eq!(f.payload["data"]["record"]["id"], 1);
    expect_dropped(
        &mut c,
        "regex",
        "ERROR 57014 (query_canceled) canceling statement due to statement timeout",
    )
    .await;
    db.batch_execute("insert into hard_regex values (4, 'x'); insert into hard_other values (2)")
        .await
        .unwrap();
    assert_eq!(
        next_change(&mut other, "other").await.payload["data"]["record"]["id"],
        2
    );
    c.expect_silence().await;
    stop(server).await;
}

/// Finding 3, the other side: a migration that holds a lock the RLS check needs makes the
/// check wait (and retry) instead of timing out and dropping its subscriber.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_held_by_a_migration_delays_but_drops_nobody() {
    let db = pg::sql().await;
    table(&db, "hard_locked", "(id int primary key)").await;
    db.batch_execute(
        "drop table if exists hard_gate; create table hard_gate (ok bool); insert into hard_gate values (true);
         grant select on hard_gate to anon;
         alter table hard_locked enable row level security;
         create policy gated on hard_locked for select to anon using (exists (select 1 from hard_gate where ok));",
    )
    .await
    .unwrap();
    let options = Options {
        statement_timeout: Duration::from_millis(200),
        ..Options::default()
    };
    let server = start(options, Limits::default()).await;
    let mut c = Client::connect(&server, Vsn::V2).await;
    subscribed(
        &mut c,
        "locked",
        binding("hard_locked", None),
        &server.anon_key(),
    )
    .await;
    let mut migration = pg::sql().await;
    let tx = migration.transaction().await.unwrap();
    tx.batch_execute("lock table hard_gate in access exclusive mode")
        .await
        .unwrap();
    db.execute("insert into hard_locked values (1)", &[])
        .await
        .unwrap();
    // The fan-out's check waits on the lock, gives up, and waits again: two distinct waits
    // prove at least one retry (a timeout used to drop the subscription instead).
    let waiting =
        "select a.query_start::text from pg_locks l join pg_stat_activity a on a.pid = l.pid \
                   where l.relation = 'hard_gate'::regclass and not l.granted \
                   and a.application_name = 'supa-realtime-server/changes'";
    let deadline = tokio::time::Instant::now() + common::DEADLINE;
    let mut starts = std::collections::HashSet::new();
    while starts.len() < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no retried lock wait"
        );
        for row in db.query(waiting, &[]).await.unwrap() {
            starts.insert(row.get::<_, String>(0));
        }
        tokio::task::yield_now().await;
    }
    tx.commit().await.unwrap();
    let f = next_event(&mut c, "locked").await;
    assert_eq!(f.event, "postgres_changes", "{f:?}");
    assert_eq!(f.payload["data"]["record"]["id"], 1);
    stop(server).await;
}

/// Finding 4: RLS is evaluated only as the API roles; any other role claim is refused, on
/// postgres_changes and on private channels alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn role_claims_outside_the_api_roles_are_refused() {
    let db = pg::sql().await;
    table(&db, "hard_roles", "(id int primary key)").await;
    db.batch_execute(
        "do $$ begin
           if not exists (select from pg_roles where rolname = 'hard_bypass') then
             create role hard_bypass nologin bypassrls; end if;
           if not exists (select from pg_roles where rolname = 'hard_premium') then
             create role hard_premium nologin; end if;
         end $$;
         grant hard_bypass, hard_premium to current_user;
         grant select on hard_roles to hard_bypass, hard_premium;
         drop policy if exists hard_roles_read on realtime.messages;
         create policy hard_roles_read on realtime.messages for select
           using (realtime.topic() like 'hard-private-%');",
    )
    .await
    .unwrap();
    let server = start(Options::default(), Limits::default()).await;
    let mut c = Client::connect(&server, Vsn::V2).await;
    let denied = |role: &str| {
        format!("ERROR 42501 (insufficient_privilege) permission denied to set role \"{role}\"")
    };
    let missing =
        |role: &str| format!("ERROR 42704 (undefined_object) role \"{role}\" does not exist");
    for (i, (role, expected)) in [
        ("postgres", denied("postgres")),
        ("none", missing("none")),
        ("SERVICE_ROLE", missing("SERVICE_ROLE")),
        ("hard_bypass", denied("hard_bypass")),
        ("pg_read_all_data", denied("pg_read_all_data")),
    ]
    .into_iter()
    .enumerate()
    {
        let t = token(&server, json!({"role": role}));
        let message = refused(
            &mut c,
            &format!("role-{i}"),
            binding("hard_roles", None),
            &t,
        )
        .await;
        assert!(
            message.ends_with(&format!("Exception: {expected}")),
            "{role}: {message}"
        );
        // A private channel any role may read by policy: still refused.
        let (_, reply) = c
            .join(
                &format!("realtime:hard-private-{i}"),
                json!({"config": {"private": true}, "access_token": t}),
            )
            .await;
        assert_eq!(reply.reply_status(), Some("error"), "{role}");
        assert_eq!(
            reply.payload["response"]["reason"],
            format!("Unauthorized: You do not have permissions to read from this Channel topic: hard-private-{i}")
        );
    }
    // A NOLOGIN role granted to the server's login role is an API role too.
    let t = token(&server, json!({"role": "hard_premium"}));
    let (status, message) = join_changes(&mut c, "premium", binding("hard_roles", None), &t).await;
    assert_eq!(
        (status.as_str(), message.as_str()),
        ("ok", "Subscribed to PostgreSQL")
    );
    db.batch_execute("insert into hard_roles values (1)")
        .await
        .unwrap();
    assert_eq!(
        next_change(&mut c, "premium").await.payload["data"]["record"]["id"],
        1
    );
    stop(server).await;
}

/// A slot name of this test run (slots are per cluster, tests may share one).
fn slot_name(test: &str) -> String {
    format!("supa_test_{test}_{}", std::process::id())
}

async fn drop_slot(db: &tokio_postgres::Client, name: &str) {
    db.execute(
        "select pg_drop_replication_slot(slot_name) from pg_replication_slots where slot_name = $1",
        &[&name],
    )
    .await
    .unwrap();
}

async fn expect_rows(c: &mut Client, topic: &str, rows: std::ops::RangeInclusive<i32>) {
    for id in rows {
        let f = next_change(c, topic).await;
        assert_eq!(f.payload["data"]["record"]["id"], id);
    }
}

/// Issue 15: with a permanent slot, a graceful restart neither loses the changes committed
/// while the server was down nor repeats the ones delivered before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_on_a_permanent_slot_loses_and_repeats_nothing() {
    let db = pg::sql().await;
    table(&db, "hard_restart", "(id int primary key)").await;
    let slot = slot_name("restart");
    let options = Options {
        slot: Some(slot.clone()),
        resume_window: Duration::from_secs(2),
        ..Options::default()
    };
    let server = start(options.clone(), Limits::default()).await;
    let mut c = Client::connect(&server, Vsn::V2).await;
    let key = server.anon_key();
    subscribed(&mut c, "restart", binding("hard_restart", None), &key).await;
    for id in 1..=5 {
        db.execute("insert into hard_restart values ($1)", &[&id])
            .await
            .unwrap();
    }
    expect_rows(&mut c, "restart", 1..=5).await;
    stop(server).await;
    assert!(matches!(c.expect_closed().await, Some(1001) | None));

    db.batch_execute(
        "insert into hard_restart values (6); insert into hard_restart values (7);
         insert into hard_restart select generate_series(8, 10);",
    )
    .await
    .unwrap();
    let server = start(options, Limits::default()).await;
    let mut c = Client::connect(&server, Vsn::V2).await;
    subscribed(&mut c, "restart", binding("hard_restart", None), &key).await;
    db.execute("insert into hard_restart values (11)", &[])
        .await
        .unwrap();
    expect_rows(&mut c, "restart", 6..=11).await;
    c.expect_silence().await;
    stop(server).await;
    drop_slot(&db, &slot).await;
}

/// Finding 1 (supervision): the replication connection and the fan-out's query connection
/// are cut from the database side; the stream reconnects on its permanent slot, the batch in
/// flight is retried on a new query connection, and every change arrives exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_reconnects_without_losing_a_change() {
    let db = pg::sql().await;
    table(&db, "hard_reconnect", "(id int primary key)").await;
    let slot = slot_name("reconnect");
    let options = Options {
        slot: Some(slot.clone()),
        ..Options::default()
    };
    let server = start(options, Limits::default()).await;
    let mut c = Client::connect(&server, Vsn::V2).await;
    subscribed(
        &mut c,
        "reconnect",
        binding("hard_reconnect", None),
        &server.anon_key(),
    )
    .await;
    db.execute("insert into hard_reconnect values (1)", &[])
        .await
        .unwrap();
    expect_rows(&mut c, "reconnect", 1..=1).await;
    let killed: bool = db
        .query_one(
            "select pg_terminate_backend(active_pid) from pg_replication_slots where slot_name = $1",
            &[&slot],
        )
        .await
        .unwrap()
        .get(0);
    assert!(killed);
    for id in 2..=4 {
        db.execute("insert into hard_reconnect values ($1)", &[&id])
            .await
            .unwrap();
    }
    expect_rows(&mut c, "reconnect", 2..=4).await;
    // Every server's fan-out connection (other tests' servers retry their batch too).
    let killed = db
        .query(
            "select pg_terminate_backend(pid) from pg_stat_activity \
             where application_name = 'supa-realtime-server/changes'",
            &[],
        )
        .await
        .unwrap();
    assert!(!killed.is_empty());
    for id in 5..=7 {
        db.execute("insert into hard_reconnect values ($1)", &[&id])
            .await
            .unwrap();
    }
    expect_rows(&mut c, "reconnect", 5..=7).await;
    c.expect_silence().await;
    stop(server).await;
    drop_slot(&db, &slot).await;
}
