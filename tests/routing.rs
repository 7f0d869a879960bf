//! Routing with many channels on one connection, against the in-process server: 1,000 joined
//! channels, and every message reaches exactly the channel it was sent to — JSON text frames
//! (relayed from a vsn-1 sender) and binary kind-4 frames (from the REST endpoint) alike.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use serde_json::json;
use supa_realtime::{ChannelOptions, Payload, RealtimeClient, Vsn};
use supa_realtime_server::{Config, Limits, Server};
use support::options;

const N: usize = 1000;
/// Every this many channels also get a REST broadcast (binary kind-4 frames to us).
const REST_EVERY: usize = 50;

/// What each channel received: (event, the `ch` field of the payload).
type Inbox = Arc<(Mutex<Vec<Vec<(String, i64)>>>, Condvar)>;

fn wait_total(inbox: &Inbox, total: usize, deadline: Duration) {
    let end = Instant::now() + deadline;
    let mut got = inbox.0.lock();
    while got.iter().map(Vec::len).sum::<usize>() < total {
        if inbox.1.wait_until(&mut got, end).timed_out() {
            let n: usize = got.iter().map(Vec::len).sum();
            panic!("timed out: {n} of {total} messages arrived");
        }
    }
}

#[test]
fn a_thousand_channels_each_get_exactly_their_messages() {
    let server = Server::start(Config {
        limits: Limits {
            max_channels_per_client: N + 10,
            ..Limits::default()
        },
        ..Config::default()
    })
    .expect("server starts");
    // A thousand joins in a burst take the (debug-built) server a while to answer.
    let patient = || options(&server).push_timeout(Duration::from_secs(60));
    let receiver = RealtimeClient::new(patient()).expect("client");
    let inbox: Inbox = Arc::new((Mutex::new(vec![Vec::new(); N]), Condvar::new()));
    let channels: Vec<_> = (0..N)
        .map(|i| {
            let ch = receiver.channel(&format!("room-{i}"), ChannelOptions::default());
            let inbox = inbox.clone();
            ch.on_broadcast("*", move |b| {
                let n = match &b.payload {
                    Payload::Json(v) => v["ch"].as_i64().unwrap_or(-1),
                    Payload::Binary(_) => -2,
                };
                inbox.0.lock()[i].push((b.event.clone(), n));
                inbox.1.notify_all();
            });
            ch.subscribe().expect("subscribe");
            ch
        })
        .collect();
    for ch in &channels {
        ch.subscribe_blocking(Duration::from_secs(60))
            .expect("subscribed");
    }

    // A vsn-1 sender: its JSON broadcasts reach us as text frames.
    let sender = RealtimeClient::new(patient().vsn(Vsn::V1)).expect("sender");
    let out: Vec<_> = (0..N)
        .map(|i| {
            let ch = sender.channel(&format!("room-{i}"), ChannelOptions::default());
            ch.subscribe().expect("subscribe");
            ch
        })
        .collect();
    for ch in &out {
        ch.subscribe_blocking(Duration::from_secs(60))
            .expect("sender subscribed");
    }
    // Last channel first, so arrival order cannot stand in for routing.
    for (i, ch) in out.iter().enumerate().rev() {
        ch.send_broadcast_nowait("ws", json!({ "ch": i }).into())
            .expect("sent");
    }
    for (i, ch) in out.iter().enumerate().step_by(REST_EVERY) {
        ch.http_send_blocking("rest", json!({ "ch": i }).into(), Duration::from_secs(10))
            .expect("REST broadcast");
    }

    let total = N + N.div_ceil(REST_EVERY);
    wait_total(&inbox, total, Duration::from_secs(60));
    let got = inbox.0.lock();
    for (i, msgs) in got.iter().enumerate() {
        let mut expected = vec![("ws".to_owned(), i as i64)];
        if i % REST_EVERY == 0 {
            expected.push(("rest".to_owned(), i as i64));
        }
        let mut msgs = msgs.clone();
        msgs.sort();
        expected.sort();
        assert_eq!(msgs, expected, "channel room-{i}");
    }
    drop(got);
    sender.shutdown();
    receiver.shutdown();
}
