//! Postgres changes through the module API against a real PostgreSQL (DATABASE_URL, or a
//! throwaway cluster from scripts/dev-postgres started for this test binary).

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::pg::{database_url, sql};
use serde_json::{json, Value};
use supa_realtime_server::postgres::{
    DbBroadcast, Extension, Options, PgChanges, PgEvent, PgSubscription, Source, Subscriber,
};
use tokio::sync::mpsc;
use tokio_postgres::Client;

const DEADLINE: Duration = Duration::from_secs(20);

/// The change source under test: the stream, or the poller with `CHANGES_SOURCE=poll`.
fn options() -> Options {
    Options {
        source: match std::env::var("CHANGES_SOURCE").as_deref() {
            Ok("poll") => Source::Poll,
            _ => Source::Stream,
        },
        ..Options::default()
    }
}

async fn connect() -> (Arc<PgChanges>, mpsc::UnboundedReceiver<DbBroadcast>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let pg = PgChanges::connect(database_url(), &options(), tx)
        .await
        .expect("connect");
    (pg, rx)
}

struct Sub {
    _handle: PgSubscription,
    rx: mpsc::UnboundedReceiver<PgEvent>,
}

impl Sub {
    async fn next(&mut self) -> PgEvent {
        tokio::time::timeout(DEADLINE, self.rx.recv())
            .await
            .expect("event before deadline")
            .expect("open")
    }

    async fn system(&mut self) -> (String, String) {
        match self.next().await {
            PgEvent::System { status, message } => (status, message),
            other => panic!("expected system, got {other:?}"),
        }
    }

    async fn change(&mut self) -> Value {
        match self.next().await {
            PgEvent::Change(v) => (*v).clone(),
            other => panic!("expected change, got {other:?}"),
        }
    }

    /// No change arrives before a marker row that the subscriber does see.
    fn assert_empty(&mut self) {
        if let Ok(ev) = self.rx.try_recv() {
            panic!("unexpected event {ev:?}");
        }
    }
}

async fn subscribe(pg: &Arc<PgChanges>, bindings: Vec<(u32, Value)>, claims: Value) -> Sub {
    let (tx, rx) = mpsc::unbounded_channel();
    let handle = pg.subscribe(
        Subscriber {
            channel: "room".into(),
            bindings: bindings
                .into_iter()
                .map(|(id, b)| (id, b.as_object().unwrap().clone()))
                .collect(),
            claims,
        },
        tx,
    );
    Sub {
        _handle: handle,
        rx,
    }
}

async fn subscribed(pg: &Arc<PgChanges>, bindings: Vec<(u32, Value)>, claims: Value) -> Sub {
    let mut s = subscribe(pg, bindings, claims).await;
    assert_eq!(
        s.system().await,
        ("ok".into(), "Subscribed to PostgreSQL".into())
    );
    s
}

fn anon() -> Value {
    json!({"role": "anon"})
}

async fn create(db: &Client, ddl: &str, table: &str) {
    db.batch_execute(&format!(
        "drop table if exists {table} cascade; {ddl}; alter publication supabase_realtime add table {table};"
    ))
    .await
    .unwrap();
}

#[tokio::test]
async fn operations_and_types() {
    let (pg, _b) = connect().await;
    let db = sql().await;
    create(
        &db,
        "create table types_t (id int8 primary key, n numeric, b bool, j jsonb, a int4[], tags text[], \
         ts timestamptz, u uuid, by bytea, tx text, tsn timestamp, nothing text)",
        "types_t",
    )
    .await;
    let mut s = subscribed(
        &pg,
        vec![(7, json!({"event":"*","schema":"public","table":"types_t"}))],
        anon(),
    )
    .await;
    db.batch_execute(
        "insert into types_t values (9007199254740993, 12.50, true, '{\"k\":[1,{\"x\":null}]}', '{1,2}', '{a,\"b c\"}', \
         '2026-08-01 10:15:30.12+00', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '\\x0102030405', 'hi \"q\"', \
         '2026-08-01 10:15:30', null)",
    )
    .await
    .unwrap();
    let c = s.change().await;
    assert_eq!(c["ids"], json!([7]));
    let d = &c["data"];
    assert_eq!(
        (
            d["schema"].as_str(),
            d["table"].as_str(),
            d["type"].as_str()
        ),
        (Some("public"), Some("types_t"), Some("INSERT"))
    );
    let ts = d["commit_timestamp"].as_str().unwrap();
    assert!(
        ts.len() == 24 && ts.ends_with('Z') && &ts[10..11] == "T",
        "{ts}"
    );
    assert_eq!(d["errors"], Value::Null);
    assert!(d.get("old_record").is_none());
    let types: Vec<&str> = d["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        [
            "int8",
            "numeric",
            "bool",
            "jsonb",
            "_int4",
            "_text",
            "timestamptz",
            "uuid",
            "bytea",
            "text",
            "timestamp",
            "text"
        ]
    );
    assert_eq!(
        d["record"],
        json!({"id": 9007199254740993u64, "n": 12.5, "b": true, "j": {"k":[1,{"x":null}]}, "a": [1,2], "tags": ["a","b c"],
               "ts": "2026-08-01T10:15:30.12+00:00", "u": "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "by": "0102030405",
               "tx": "hi \"q\"", "tsn": "2026-08-01T10:15:30", "nothing": null})
    );

    db.batch_execute("update types_t set tx = 'changed' where id = 9007199254740993")
        .await
        .unwrap();
    let c = s.change().await;
    assert_eq!(c["data"]["type"], "UPDATE");
    assert_eq!(c["data"]["record"]["tx"], "changed");
    assert_eq!(c["data"]["old_record"], json!({"id": 9007199254740993u64}));

    db.batch_execute("alter table types_t replica identity full; update types_t set b = false")
        .await
        .unwrap();
    let c = s.change().await;
    assert_eq!(c["data"]["old_record"]["b"], true);
    assert_eq!(c["data"]["old_record"]["tx"], "changed");
    assert_eq!(c["data"]["record"]["b"], false);

    db.batch_execute("delete from types_t").await.unwrap();
    let c = s.change().await;
    assert_eq!(c["data"]["type"], "DELETE");
    assert!(c["data"].get("record").is_none());
    assert_eq!(
        c["data"]["old_record"]["tx"], "changed",
        "full identity, no RLS: whole old row"
    );
}

#[tokio::test]
async fn event_filters_and_routing_by_id() {
    let (pg, _b) = connect().await;
    let db = sql().await;
    create(
        &db,
        "create table ev_t (id int primary key, v text)",
        "ev_t",
    )
    .await;
    let mut s = subscribed(
        &pg,
        vec![
            (
                1,
                json!({"event":"insert","schema":"public","table":"ev_t"}),
            ),
            (
                2,
                json!({"event":"UPDATE","schema":"public","table":"ev_t"}),
            ),
            (
                3,
                json!({"event":"Delete","schema":"public","table":"ev_t"}),
            ),
            (4, json!({"event":"*","schema":"public"})),
            (5, json!({"event":"*","schema":"*","table":"ev%"})),
        ],
        anon(),
    )
    .await;
    db.batch_execute("insert into ev_t values (1, 'a'); update ev_t set v = 'b'; delete from ev_t")
        .await
        .unwrap();
    for (ty, id) in [("INSERT", 1), ("UPDATE", 2), ("DELETE", 3)] {
        let c = s.change().await;
        assert_eq!(c["data"]["type"], ty);
        assert_eq!(c["ids"], json!([id, 4, 5]));
    }
}

#[tokio::test]
async fn every_filter_operator() {
    let (pg, _b) = connect().await;
    let db = sql().await;
    create(
        &db,
        "create table flt_t (id int primary key, name text, flag bool, score numeric)",
        "flt_t",
    )
    .await;
    let cases: Vec<(&str, Vec<i32>)> = vec![
        ("id=eq.1", vec![1]),
        ("id=neq.1", vec![2, 3, 4]),
        ("id=lt.2", vec![1]),
        ("id=lte.2", vec![1, 2]),
        ("id=gt.3", vec![4]),
        ("id=gte.3", vec![3, 4]),
        ("id=in.(1,3)", vec![1, 3]),
        ("name=like.al%", vec![1]),
        ("name=ilike.AL%", vec![1, 2]),
        ("name=match.^b", vec![3]),
        ("name=imatch.^B", vec![3]),
        ("flag=is.true", vec![1]),
        ("flag=is.null", vec![3, 4]),
        ("name=not.is.null", vec![1, 2, 3]),
        ("name=isdistinct.alice", vec![2, 3, 4]),
        ("id=gt.1,id=lt.4", vec![2, 3]),
        ("id=not.in.(1,2)", vec![3, 4]),
        ("name=eq.\"b, c\"", vec![3]),
        ("score=eq.1.50", vec![1]),
        ("score=gt.2", vec![2]),
    ];
    let bindings: Vec<(u32, Value)> = cases
        .iter()
        .enumerate()
        .map(|(i, (f, _))| {
            (
                i as u32 + 100,
                json!({"event":"INSERT","schema":"public","table":"flt_t","filter":f}),
            )
        })
        .collect();
    let mut s = subscribed(&pg, bindings, anon()).await;
    db.batch_execute(
        "insert into flt_t values (1, 'alice', true, 1.5), (2, 'ALbert', false, 3), (3, 'b, c', null, null), (4, null, null, 0)",
    )
    .await
    .unwrap();
    for row in 1..=4 {
        let c = s.change().await;
        assert_eq!(c["data"]["record"]["id"], row);
        let expected: Vec<u32> = cases
            .iter()
            .enumerate()
            .filter(|(_, (_, rows))| rows.contains(&row))
            .map(|(i, _)| i as u32 + 100)
            .collect();
        let got: Vec<u32> = c["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        assert_eq!(got, expected, "row {row}");
    }
}

#[tokio::test]
async fn delete_filter_on_absent_column_does_not_match() {
    let (pg, _b) = connect().await;
    let db = sql().await;
    create(
        &db,
        "create table del_t (id int primary key, v text)",
        "del_t",
    )
    .await;
    let mut s = subscribed(
        &pg,
        vec![
            (
                1,
                json!({"event":"DELETE","schema":"public","table":"del_t","filter":"v=eq.x"}),
            ),
            (
                2,
                json!({"event":"DELETE","schema":"public","table":"del_t","filter":"id=eq.1"}),
            ),
        ],
        anon(),
    )
    .await;
    db.batch_execute("insert into del_t values (1, 'x'); delete from del_t")
        .await
        .unwrap();
    let c = s.change().await;
    assert_eq!(c["ids"], json!([2]));
}

#[tokio::test]
async fn bad_bindings_get_exact_errors() {
    let (pg, _b) = connect().await;
    let db = sql().await;
    create(
        &db,
        "create table bad_t (id int primary key, v text)",
        "bad_t",
    )
    .await;
    db.batch_execute("create table if not exists unpublished_t (id int primary key)")
        .await
        .unwrap();
    let cases = [
        (json!({"event":"*","schema":"public","table":"bad_t","filter":"v=foo.hey"}), "Error parsing `filter` params: [\"foo\", \"hey\"]".to_string()),
        (json!({"event":"*","schema":"public","table":"bad_t","filter":"undefined"}), "Error parsing `filter` params: [\"undefined\"]".into()),
        (json!({"event":"*","schema":"public","table":"bad_t","filter":"id=in.1"}), "Error parsing `filter` params: `in` filter value must be wrapped by parentheses".into()),
        (
            json!({"event":"*","schema":"public","table":"unpublished_t"}),
            "Unable to subscribe to changes with given parameters. Please check Realtime is enabled for the given connect parameters: [event: *, schema: public, table: unpublished_t, filters: [], select: nil]".into(),
        ),
        (
            json!({"event":"*","schema":"public","table":"bad_t","filter":"nope=eq.1"}),
            "Unable to subscribe to changes with given parameters. An exception happened so please check your connect parameters: [event: *, schema: public, table: bad_t, filters: [{\"nope\", \"eq\", \"1\", false}], select: nil]. Exception: ERROR P0001 (raise_exception) invalid column for filter nope".into(),
        ),
    ];
    for (binding, expected) in cases {
        let mut s = subscribe(&pg, vec![(1, binding)], anon()).await;
        assert_eq!(s.system().await, ("error".into(), expected));
    }
    let too_many: Vec<String> = (0..101).map(|i| i.to_string()).collect();
    let mut s = subscribe(
        &pg,
        vec![(1, json!({"schema":"public","table":"bad_t","filter": format!("id=in.({})", too_many.join(","))}))],
        anon(),
    )
    .await;
    let (status, msg) = s.system().await;
    assert_eq!(status, "error");
    assert!(
        msg.ends_with("too many values for `in` filter. Maximum 100"),
        "{msg}"
    );
    for filter in ["id=eq.abc", "id=like.1%", "v=match.(", "v=is.maybe"] {
        let mut s = subscribe(
            &pg,
            vec![(
                1,
                json!({"schema":"public","table":"bad_t","filter":filter}),
            )],
            anon(),
        )
        .await;
        let (status, msg) = s.system().await;
        assert_eq!(status, "error", "{filter}");
        assert!(
            msg.starts_with(
                "Unable to subscribe to changes with given parameters. An exception happened"
            ),
            "{msg}"
        );
    }
}

#[tokio::test]
async fn burst_of_10000_rows_in_order_for_several_subscribers() {
    let (pg, _b) = connect().await;
    let db = sql().await;
    create(
        &db,
        "create table burst_t (id int primary key, v text)",
        "burst_t",
    )
    .await;
    let mut subs = vec![];
    for i in 0..3 {
        subs.push(
            subscribed(
                &pg,
                vec![(
                    i,
                    json!({"event":"INSERT","schema":"public","table":"burst_t"}),
                )],
                anon(),
            )
            .await,
        );
    }
    db.batch_execute("insert into burst_t select g, 'row ' || g from generate_series(1, 5000) g")
        .await
        .unwrap();
    for g in (5001..=10000).step_by(500) {
        db.batch_execute(&format!(
            "insert into burst_t select g, 'row ' || g from generate_series({g}, {}) g",
            g + 499
        ))
        .await
        .unwrap();
    }
    for s in &mut subs {
        for expected in 1..=10000 {
            let c = s.change().await;
            assert_eq!(c["data"]["record"]["id"], expected);
        }
    }
}

#[tokio::test]
async fn rls_two_users_and_column_privileges() {
    let (pg, _b) = connect().await;
    let db = sql().await;
    create(
        &db,
        "create table rls_t (id int primary key, owner uuid, body text, secret text);
         alter table rls_t enable row level security;
         create policy own on rls_t for select to authenticated using (owner = auth.uid());
         revoke select on rls_t from authenticated;
         grant select (id, owner, body) on rls_t to authenticated",
        "rls_t",
    )
    .await;
    let a = "11111111-1111-1111-1111-111111111111";
    let b = "22222222-2222-2222-2222-222222222222";
    let binding = || vec![(1, json!({"event":"*","schema":"public","table":"rls_t"}))];
    let mut sa = subscribed(&pg, binding(), json!({"role":"authenticated","sub":a})).await;
    let mut sb = subscribed(&pg, binding(), json!({"role":"authenticated","sub":b})).await;
    let mut service = subscribed(&pg, binding(), json!({"role":"service_role"})).await;
    db.batch_execute(&format!(
        "insert into rls_t values (1, '{a}', 'for a', 's1'), (2, '{b}', 'for b', 's2'), (3, '{a}', 'a again', 's3')"
    ))
    .await
    .unwrap();
    for (s, ids) in [(&mut sa, [1, 3]), (&mut sb, [2, 2])] {
        let c = s.change().await;
        assert_eq!(c["data"]["record"]["id"], ids[0]);
        assert!(
            c["data"]["record"].get("secret").is_none(),
            "column privilege trims"
        );
        let names: Vec<&str> = c["data"]["columns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["id", "owner", "body"]);
        if ids[0] != ids[1] {
            assert_eq!(s.change().await["data"]["record"]["id"], ids[1]);
        }
    }
    for id in 1..=3 {
        let c = service.change().await;
        assert_eq!(c["data"]["record"]["id"], id);
        assert_eq!(c["data"]["record"]["secret"], format!("s{id}"));
    }
    // Deletes are not RLS-checked: everyone gets the primary key only.
    db.batch_execute("alter table rls_t replica identity full; delete from rls_t where id = 2")
        .await
        .unwrap();
    for s in [&mut sa, &mut sb, &mut service] {
        let c = s.change().await;
        assert_eq!(c["data"]["type"], "DELETE");
        assert_eq!(c["data"]["old_record"], json!({"id": 2}));
    }
    sa.assert_empty();
}

#[tokio::test]
async fn error_payloads_400_and_413() {
    let (pg, _b) = connect().await;
    let db = sql().await;
    create(&db, "create table nopk_t (v text); create table big_t (id int primary key, small text, big text)", "nopk_t, big_t").await;
    let mut s = subscribed(
        &pg,
        vec![
            (1, json!({"schema":"public","table":"nopk_t"})),
            (2, json!({"schema":"public","table":"big_t"})),
        ],
        anon(),
    )
    .await;
    db.batch_execute("insert into nopk_t values ('x'); insert into big_t values (1, 'tiny', repeat('x', 1100000))").await.unwrap();
    let c = s.change().await;
    assert_eq!(
        c["data"]["errors"],
        json!(["Error 400: Bad Request, no primary key"])
    );
    let c = s.change().await;
    assert_eq!(c["data"]["errors"], json!(["Error 413: Payload Too Large"]));
    assert_eq!(c["data"]["record"], json!({"id": 1, "small": "tiny"}));
}

#[tokio::test]
async fn private_channel_policies_and_database_broadcasts() {
    let (pg, mut broadcasts) = connect().await;
    let db = sql().await;
    db.batch_execute(
        "drop policy if exists test_read on realtime.messages;
         drop policy if exists test_write on realtime.messages;
         create policy test_read on realtime.messages for select to authenticated
           using (realtime.topic() = 'private-' || auth.uid()::text);
         create policy test_write on realtime.messages for insert to authenticated
           with check (realtime.topic() = 'private-' || auth.uid()::text and extension = 'broadcast')",
    )
    .await
    .unwrap();
    let a = json!({"role":"authenticated","sub":"11111111-1111-1111-1111-111111111111"});
    let b = json!({"role":"authenticated","sub":"22222222-2222-2222-2222-222222222222"});
    let topic = "private-11111111-1111-1111-1111-111111111111";
    let ra = pg.private_access(&a, topic).await.unwrap();
    assert!(ra.broadcast_read && ra.presence_read);
    let rb = pg.private_access(&b, topic).await.unwrap();
    assert!(!rb.broadcast_read && !rb.presence_read);
    assert!(
        !pg.private_access(&anon(), topic)
            .await
            .unwrap()
            .broadcast_read
    );
    assert!(pg.can_write(&a, topic, Extension::Broadcast).await.unwrap());
    assert!(!pg.can_write(&a, topic, Extension::Presence).await.unwrap());
    assert!(!pg.can_write(&b, topic, Extension::Broadcast).await.unwrap());

    db.batch_execute(
        "select realtime.send('{\"x\": 1}'::jsonb, 'ev', 'dbtopic', false);
         drop table if exists bc_t;
         create table bc_t (id int primary key, v text);
         create or replace function bc_t_trigger() returns trigger language plpgsql as $$
         begin perform realtime.broadcast_changes('bc:' || new.id, tg_op, tg_op, tg_table_name, tg_table_schema, new, old); return null; end $$;
         create trigger bc_t_changes after insert on bc_t for each row execute function bc_t_trigger();
         insert into bc_t values (5, 'five');",
    )
    .await
    .unwrap();
    // Other tests' servers share the database: skip their messages.
    let mut got = vec![];
    while got.len() < 2 {
        let m = tokio::time::timeout(DEADLINE, broadcasts.recv())
            .await
            .unwrap()
            .unwrap();
        if m.topic == "dbtopic" || m.topic == "bc:5" {
            got.push(m);
        }
    }
    assert_eq!((got[0].event.as_str(), got[0].private), ("ev", false));
    assert_eq!(got[0].payload["x"], 1);
    assert_eq!(got[0].payload["id"].as_str(), Some(got[0].id.as_str()));
    assert_eq!((got[1].event.as_str(), got[1].private), ("INSERT", true));
    assert_eq!(got[1].payload["operation"], "INSERT");
    assert_eq!(got[1].payload["record"], json!({"id": 5, "v": "five"}));
    assert_eq!(got[1].payload["old_record"], Value::Null);
}

#[tokio::test]
async fn select_lists_401_and_failing_policies() {
    let (pg, _b) = connect().await;
    let db = sql().await;
    create(
        &db,
        "create table sel_t (id int primary key, a text, b text, c text);
         create table nokey_priv_t (id int primary key, v text);
         revoke select on nokey_priv_t from anon;
         grant select (v) on nokey_priv_t to anon;
         create table boom_t (id int primary key, v text);
         alter table boom_t enable row level security;
         create policy boom on boom_t for select to anon using (1 / (id - id) = 1)",
        "sel_t, nokey_priv_t, boom_t",
    )
    .await;
    let mut s = subscribed(
        &pg,
        vec![
            (
                1,
                json!({"event":"INSERT","schema":"public","table":"sel_t","select":["b"]}),
            ),
            (
                2,
                json!({"event":"INSERT","schema":"public","table":"nokey_priv_t"}),
            ),
        ],
        anon(),
    )
    .await;
    let mut boom = subscribed(
        &pg,
        vec![(
            3,
            json!({"event":"INSERT","schema":"public","table":"boom_t"}),
        )],
        anon(),
    )
    .await;
    db.batch_execute(
        "insert into boom_t values (1, 'secret'); insert into sel_t values (1, 'a', 'b', 'c');
         insert into nokey_priv_t values (1, 'v')",
    )
    .await
    .unwrap();
    let c = s.change().await;
    assert_eq!(c["data"]["record"], json!({"id": 1, "b": "b"}));
    let names: Vec<&str> = c["data"]["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["id", "b"]);
    let c = s.change().await;
    assert_eq!(c["ids"], json!([2]));
    assert_eq!(c["data"]["errors"], json!(["Error 401: Unauthorized"]));
    assert_eq!(c["data"]["record"], json!({}));
    // A policy that raises: that subscription (only) gets a system error and is dropped.
    let (status, message) = boom.system().await;
    assert_eq!(status, "error");
    assert!(
        message.ends_with("Exception: ERROR 22012 (division_by_zero) division by zero"),
        "{message}"
    );
    assert!(!message.contains("secret"));
    db.batch_execute(
        "insert into boom_t values (2, 'more'); insert into sel_t values (2, 'a', 'b', 'c')",
    )
    .await
    .unwrap();
    assert_eq!(s.change().await["data"]["record"]["id"], 2);
    boom.assert_empty();
}

#[tokio::test]
async fn dropping_the_handle_unsubscribes_and_new_claims_apply() {
    let (pg, _b) = connect().await;
    let db = sql().await;
    create(
        &db,
        "create table refresh_t (id int primary key, owner text);
         alter table refresh_t enable row level security;
         create policy mine on refresh_t for select to authenticated using (owner = auth.jwt() ->> 'sub')",
        "refresh_t",
    )
    .await;
    let binding = || {
        vec![(
            9,
            json!({"event":"INSERT","schema":"public","table":"refresh_t"}),
        )]
    };
    let mut first = subscribed(&pg, binding(), json!({"role":"authenticated","sub":"u1"})).await;
    db.batch_execute("insert into refresh_t values (1, 'u1'), (2, 'u2')")
        .await
        .unwrap();
    assert_eq!(first.change().await["data"]["record"]["id"], 1);
    // A token refresh: the channel drops its subscription and subscribes with the new claims.
    drop(first);
    let mut second = subscribed(&pg, binding(), json!({"role":"authenticated","sub":"u2"})).await;
    db.batch_execute("insert into refresh_t values (3, 'u1'), (4, 'u2')")
        .await
        .unwrap();
    assert_eq!(second.change().await["data"]["record"]["id"], 4);
}

#[tokio::test]
async fn odd_names_and_types_converted_by_postgres() {
    let (pg, _b) = connect().await;
    let db = sql().await;
    db.batch_execute(
        "drop schema if exists \"Odd.Schema\" cascade; create schema \"Odd.Schema\";
         drop type if exists mood cascade; create type mood as enum ('happy', 'sad');
         drop domain if exists positive cascade; create domain positive as int check (value > 0);
         drop type if exists pair cascade; create type pair as (x int, label text);
         create table \"Odd.Schema\".\"Odd, Table\" (id int primary key, m mood, p positive, c pair, big int8[], r int4range, f float8);
         grant usage on schema \"Odd.Schema\" to anon; grant select on all tables in schema \"Odd.Schema\" to anon;
         alter publication supabase_realtime add table \"Odd.Schema\".\"Odd, Table\";",
    )
    .await
    .unwrap();
    let mut s = subscribed(
        &pg,
        vec![(1, json!({"schema":"Odd.Schema","table":"Odd, Table"}))],
        anon(),
    )
    .await;
    db.batch_execute(
        "insert into \"Odd.Schema\".\"Odd, Table\" values (1, 'sad', 5, row(1, 'one'), '{9007199254740993,null}', '[1,5)', 'Infinity')",
    )
    .await
    .unwrap();
    let c = s.change().await;
    assert_eq!(c["data"]["schema"], "Odd.Schema");
    assert_eq!(
        c["data"]["record"],
        json!({"id": 1, "m": "sad", "p": 5, "c": {"x": 1, "label": "one"}, "big": [9007199254740993u64, null],
               "r": "[1,5)", "f": null})
    );
    // wal2json prints non-finite floats as null, so Supabase sends null too.
}

#[tokio::test]
async fn a_subscriber_that_never_reads_does_not_hold_back_others() {
    let (pg, _b) = connect().await;
    let db = sql().await;
    create(&db, "create table slow_t (id int primary key)", "slow_t").await;
    let binding = || {
        vec![(
            1,
            json!({"event":"INSERT","schema":"public","table":"slow_t"}),
        )]
    };
    let _stalled = subscribed(&pg, binding(), anon()).await;
    let mut reader = subscribed(&pg, binding(), anon()).await;
    db.batch_execute("insert into slow_t select generate_series(1, 2000)")
        .await
        .unwrap();
    for id in 1..=2000 {
        assert_eq!(reader.change().await["data"]["record"]["id"], id);
    }
}
