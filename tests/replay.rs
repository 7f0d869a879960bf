//! Stored broadcasts through the client, against the in-process server on a real PostgreSQL
//! (see `support::database_url`): `persist` on WebSocket and REST sends, replay on join with
//! ids in order, `replication_ready`, and gap fill across a network outage made by the fault
//! proxy. Without a database the tests say SKIPPED.

mod support;

use std::sync::Once;
use std::time::{Duration, SystemTime};

use serde_json::json;
use supa_realtime::{
    Broadcast, ChannelOptions, ClientOptions, Error, Event, Payload, Persist, RealtimeChannel,
    RealtimeClient, Replay, SubscribeStatus,
};
use supa_realtime_server::Server;
use support::fault_proxy::FaultProxy;
use support::resilience::sql;
use support::{server_with_database, Recorder, DEADLINE};

/// Topics of these tests start with this; the policies below let `authenticated` read and
/// write them (and nothing else).
const PREFIX: &str = "client-replay-";

fn setup() -> Option<Server> {
    let (server, url) = server_with_database()?;
    // Once per test binary: the tests run in parallel and policy names are global.
    static POLICIES: Once = Once::new();
    POLICIES.call_once(|| {
        sql(
            url,
            &format!(
                "drop policy if exists client_replay_read on realtime.messages;
                 drop policy if exists client_replay_write on realtime.messages;
                 create policy client_replay_read on realtime.messages for select to authenticated
                   using (realtime.topic() like '{PREFIX}%');
                 create policy client_replay_write on realtime.messages for insert to authenticated
                   with check (realtime.topic() like '{PREFIX}%');"
            ),
        )
    });
    Some(server)
}

fn topic_name(test: &str) -> String {
    format!("{PREFIX}{test}-{}", std::process::id())
}

fn user(server: &Server, options: ClientOptions) -> ClientOptions {
    let token = server.sign_token(&json!({"role": "authenticated",
        "sub": "aaaaaaaa-7777-4777-8777-777777777777", "exp": support::now() + 3600}));
    options.access_token(token)
}

fn n_of(b: &Broadcast) -> u64 {
    match &b.payload {
        Payload::Json(v) => v["n"].as_u64().expect("n"),
        other => panic!("{other:?}"),
    }
}

fn notes(r: &Recorder) -> Vec<Broadcast> {
    r.events()
        .into_iter()
        .filter_map(|e| match e {
            Event::Broadcast(b) if b.event == "note" => Some(b),
            _ => None,
        })
        .collect()
}

/// Waits for the `n`th note (the recorder's lock is held while a predicate runs).
fn wait_notes(r: &Recorder, n: usize) -> Vec<Broadcast> {
    let mut from = 0;
    for i in 1..=n {
        let what = format!("note {i} of {n}");
        from = 1 + r
            .wait_from(
                from,
                &what,
                |e| matches!(e, Event::Broadcast(b) if b.event == "note"),
            )
            .0;
    }
    notes(r)
}

fn sender(server: &Server, name: &str) -> (RealtimeClient, RealtimeChannel) {
    let client = RealtimeClient::new(user(server, support::options(server))).unwrap();
    let ch = client.channel(
        name,
        ChannelOptions::default().private(true).broadcast_ack(true),
    );
    ch.subscribe_blocking(DEADLINE).expect("sender joined");
    (client, ch)
}

fn note(n: u64) -> Payload {
    json!({ "n": n }).into()
}

#[test]
fn persisted_messages_replay_on_join_with_their_ids_in_order() {
    let Some(server) = setup() else { return };
    let name = topic_name("join");
    let since = SystemTime::now() - Duration::from_secs(60);
    let (_sc, out) = sender(&server, &name);
    out.send_broadcast_persist_blocking("note", note(1), Persist::Yes, DEADLINE)
        .expect("stored over the socket");
    out.send_broadcast_persist_blocking(
        "note",
        note(2),
        Persist::Ttl(Duration::from_secs(3600)),
        DEADLINE,
    )
    .expect("stored with a ttl");
    out.http_send_persist_blocking("note", note(3), Persist::Yes, DEADLINE)
        .expect("stored over REST");

    let client = RealtimeClient::new(user(&server, support::options(&server))).unwrap();
    let r = Recorder::new();
    client.on_event(r.sink());
    let ch = client.channel(
        &name,
        ChannelOptions::default()
            .private(true)
            .replication_ready(true)
            .replay(Replay::since(since).limit(10)),
    );
    ch.subscribe_blocking(DEADLINE).expect("replaying join");
    ch.replication_ready_blocking(DEADLINE)
        .expect("replication ready");
    let got = wait_notes(&r, 3);
    assert_eq!(got.iter().map(n_of).collect::<Vec<_>>(), vec![1, 2, 3]);
    for b in &got {
        assert!(b.replayed(), "{b:?}");
        assert_eq!(b.id().map(str::len), Some(36), "{b:?}");
    }
    let ids: std::collections::HashSet<_> = got.iter().filter_map(Broadcast::id).collect();
    assert_eq!(ids.len(), 3, "distinct ids");

    // A live stored message carries its id, not the replayed mark.
    out.send_broadcast_persist_blocking("note", note(4), Persist::Yes, DEADLINE)
        .unwrap();
    let got = wait_notes(&r, 4);
    assert_eq!(n_of(&got[3]), 4);
    assert!(got[3].id().is_some() && !got[3].replayed());

    // Only private channels store; the client says so before sending.
    let public = client.channel(&format!("{name}-public"), ChannelOptions::default());
    public.subscribe_blocking(DEADLINE).unwrap();
    let refused = public.send_broadcast_persist_blocking("note", note(5), Persist::Yes, DEADLINE);
    assert!(
        matches!(&refused, Err(Error::InvalidArgument(m)) if m.contains("private channels")),
        "{refused:?}"
    );
}

#[test]
fn gap_fill_delivers_every_stored_message_exactly_once_across_an_outage() {
    let Some(server) = setup() else { return };
    let name = topic_name("gap");
    let topic = format!("realtime:{name}");
    let proxy = FaultProxy::start(server.local_addr());
    let opts = ClientOptions::new(
        format!("ws://{}/realtime/v1", proxy.addr()),
        server.anon_key(),
    )
    .push_timeout(Duration::from_secs(2))
    .reconnect_delays(vec![Duration::from_millis(100), Duration::from_millis(300)])
    .rejoin_delays(vec![Duration::from_millis(100), Duration::from_millis(300)]);
    let victim = RealtimeClient::new(user(&server, opts)).unwrap();
    let r = Recorder::new();
    victim.on_event(r.sink());
    let ch = victim.channel(
        &name,
        ChannelOptions::default().private(true).auto_replay(true),
    );
    ch.subscribe_blocking(DEADLINE).expect("victim joined");
    r.wait_status(&topic, SubscribeStatus::Subscribed);
    let (_sc, out) = sender(&server, &name);
    for n in 1..=5 {
        out.send_broadcast_persist_blocking("note", note(n), Persist::Yes, DEADLINE)
            .unwrap();
    }
    wait_notes(&r, 5);

    // The network goes away (and stays away) while more messages are stored.
    proxy.set_refuse(true);
    proxy.drop_connections();
    r.wait("the outage noticed", |e| {
        matches!(e, Event::ChannelStatus { topic: t, status: SubscribeStatus::ChannelError, .. } if *t == topic)
    });
    for n in 6..=10 {
        out.send_broadcast_persist_blocking("note", note(n), Persist::Yes, DEADLINE)
            .unwrap();
    }
    out.http_send_persist_blocking("note", note(11), Persist::Yes, DEADLINE)
        .unwrap();
    proxy.set_refuse(false);

    let resumed = r.wait("resumed", |e| matches!(e, Event::Resumed { .. }));
    assert!(
        matches!(resumed, Event::Resumed { filled: true, .. }),
        "{resumed:?}"
    );
    for n in 12..=13 {
        out.send_broadcast_persist_blocking("note", note(n), Persist::Yes, DEADLINE)
            .unwrap();
    }
    let got = wait_notes(&r, 13);
    assert_eq!(
        got.iter().map(n_of).collect::<Vec<_>>(),
        (1..=13).collect::<Vec<_>>(),
        "every message exactly once, in order"
    );
    // The gap's messages came replayed, before Resumed; the rest live.
    let replayed: Vec<u64> = got.iter().filter(|b| b.replayed()).map(n_of).collect();
    assert_eq!(replayed, (6..=11).collect::<Vec<_>>());
    let events = r.events();
    let at = |pred: &dyn Fn(&Event) -> bool| events.iter().position(pred).unwrap();
    let resumed_at = at(&|e| matches!(e, Event::Resumed { .. }));
    let last_replayed = at(&|e| matches!(e, Event::Broadcast(b) if b.replayed() && n_of(b) == 11));
    assert!(last_replayed < resumed_at);
    // Nothing else was delivered twice either (a duplicate would follow the note).
    assert_eq!(notes(&r).len(), 13);
}
