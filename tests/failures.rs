//! The failure matrix against the real server on loopback: every way a connect or a join can
//! fail ends the caller's wait within the join timeout with a typed error that names the cause,
//! and every channel that ends reports exactly one final CLOSED that says why.

mod support;

use std::net::TcpListener;
use std::time::{Duration, Instant};

use supa_realtime::{
    ChannelOptions, ClientOptions, ConnectionState, Error, Event, RealtimeClient, SubscribeStatus,
};
use supa_realtime_server::{Config, Limits, Server};
use support::{server, user_token, Recorder, DEADLINE};

/// The join timeout the clients below use: every wait must end by it (plus scheduling slack
/// on a loaded machine).
const JOIN_TIMEOUT: Duration = Duration::from_secs(2);
const SLACK: Duration = Duration::from_secs(3);

fn options(url: &str, key: &str) -> ClientOptions {
    ClientOptions::new(url, key)
        .push_timeout(JOIN_TIMEOUT)
        .reconnect_delays(vec![Duration::from_millis(100)])
        .rejoin_delays(vec![Duration::from_millis(100)])
}

/// Subscribes one channel and returns the error, checking it came within the join timeout.
fn subscribe_fails(client: &RealtimeClient, name: &str) -> Error {
    let ch = client.channel(name, ChannelOptions::default());
    let start = Instant::now();
    let e = ch
        .subscribe_blocking(DEADLINE)
        .expect_err("the subscribe must fail");
    assert!(
        start.elapsed() <= JOIN_TIMEOUT + SLACK,
        "{name}: failed after {:?}, beyond the join timeout",
        start.elapsed()
    );
    e
}

/// The final CLOSED statuses `r` recorded for `topic`, waiting for the first.
fn closed_reasons(r: &Recorder, topic: &str) -> Vec<Option<String>> {
    r.wait_status(topic, SubscribeStatus::Closed);
    r.events()
        .into_iter()
        .filter_map(|e| match e {
            Event::ChannelStatus {
                topic: t,
                status: SubscribeStatus::Closed,
                reason,
                ..
            } if t == topic => Some(reason),
            _ => None,
        })
        .collect()
}

#[test]
fn a_wrong_key_fails_with_the_servers_401_and_its_reason() {
    let server = server();
    let client = RealtimeClient::new(options(&server.realtime_url(), "not-a-key")).unwrap();
    let e = subscribe_fails(&client, "wrongkey");
    assert!(
        matches!(&e, Error::Http { status: 401, body } if body.contains("JWT")),
        "{e}"
    );
    assert!(e.to_string().starts_with("HTTP 401: "), "{e}");
    client.shutdown();
}

#[test]
fn an_expired_key_fails_with_the_expiry_text() {
    let server = server();
    let expired = user_token(&server, "anon", -60);
    let client = RealtimeClient::new(options(&server.realtime_url(), &expired)).unwrap();
    let r = Recorder::new();
    client.on_event(r.sink());
    let e = subscribe_fails(&client, "expired");
    assert!(
        matches!(&e, Error::Http { status: 401, body } if body.contains("expired")),
        "{e}"
    );
    // The channel heard the same cause as a CHANNEL_ERROR.
    let status = r.wait_status("realtime:expired", SubscribeStatus::ChannelError);
    assert!(
        matches!(&status, Event::ChannelStatus { reason: Some(m), .. } if m.contains("expired")),
        "{status:?}"
    );
    client.shutdown();
}

#[test]
fn a_server_not_listening_fails_with_connection_refused_and_the_reconnect_loop_goes_on() {
    // A port nothing listens on: bound, then released.
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = format!("ws://127.0.0.1:{port}/realtime/v1");
    let client = RealtimeClient::new(options(&url, "k")).unwrap();
    let r = Recorder::new();
    client.on_event(r.sink());
    let e = subscribe_fails(&client, "down");
    assert!(
        matches!(&e, Error::Io(m) if m.contains(&format!("127.0.0.1:{port}")) && m.contains("refused")),
        "{e}"
    );
    // Still trying underneath: the client stays Connecting, the channel is not closed.
    assert_eq!(client.connection_state(), ConnectionState::Connecting);
    assert!(!r.events().iter().any(|e| matches!(
        e,
        Event::ChannelStatus {
            status: SubscribeStatus::Closed,
            ..
        }
    )));
    client.shutdown();
}

#[test]
fn a_wrong_path_fails_with_404_and_says_where_the_endpoint_is() {
    let server = server();
    let url = server.realtime_url().replace("/realtime/v1", "/nowhere/v1");
    let client = RealtimeClient::new(options(&url, &server.anon_key())).unwrap();
    let e = subscribe_fails(&client, "lost");
    assert!(
        matches!(&e, Error::Http { status: 404, body } if body.contains("/realtime/v1")),
        "{e}"
    );
    client.shutdown();
}

#[test]
fn a_refused_private_join_fails_with_the_reason_and_closes_once() {
    let server = server();
    let client = RealtimeClient::new(options(&server.realtime_url(), &server.anon_key())).unwrap();
    let r = Recorder::new();
    client.on_event(r.sink());
    let ch = client.channel("secret", ChannelOptions::default().private(true));
    let start = Instant::now();
    let e = ch.subscribe_blocking(DEADLINE).unwrap_err();
    assert!(start.elapsed() <= JOIN_TIMEOUT + SLACK);
    assert!(
        matches!(&e, Error::ChannelError(m) if m.starts_with("Unauthorized")),
        "{e}"
    );
    let reasons = closed_reasons(&r, "realtime:secret");
    assert_eq!(reasons.len(), 1, "{reasons:?}");
    assert!(reasons[0].as_deref().unwrap().starts_with("Unauthorized"));
    client.shutdown();
}

#[test]
fn the_101st_channel_fails_with_the_rate_limit_within_the_join_timeout() {
    let server = Server::start(Config {
        limits: Limits {
            max_channels_per_client: 100,
            ..Limits::default()
        },
        ..Config::default()
    })
    .unwrap();
    let client = RealtimeClient::new(options(&server.realtime_url(), &server.anon_key())).unwrap();
    let channels: Vec<_> = (0..100)
        .map(|i| client.channel(&format!("c{i}"), ChannelOptions::default()))
        .collect();
    for ch in &channels {
        ch.subscribe().unwrap();
    }
    for ch in &channels {
        ch.subscribe_blocking(DEADLINE).unwrap();
    }
    let e = subscribe_fails(&client, "c100");
    assert!(
        matches!(&e, Error::ChannelError(m) if m.starts_with("ChannelRateLimitReached")),
        "{e}"
    );
    assert_eq!(e.kind(), supa_realtime::ErrorKind::Recoverable);
    client.shutdown();
}

#[test]
fn shutdown_in_the_middle_of_subscribe_fails_it_and_closes_every_channel_once() {
    let server = server();
    let client = RealtimeClient::new(options(&server.realtime_url(), &server.anon_key())).unwrap();
    let r = Recorder::new();
    client.on_event(r.sink());
    let joined = client.channel("joined", ChannelOptions::default());
    joined.subscribe_blocking(DEADLINE).unwrap();
    let pending = client.channel("pending", ChannelOptions::default());
    pending.subscribe().unwrap();
    client.shutdown();
    assert_eq!(pending.subscribe_blocking(DEADLINE), Err(Error::Shutdown));
    for topic in ["realtime:joined", "realtime:pending"] {
        assert_eq!(
            closed_reasons(&r, topic),
            [Some("client shut down".to_owned())],
            "{topic}"
        );
    }
    // ShutDown comes last, behind the channels' final statuses.
    r.wait("ShutDown", |e| {
        matches!(
            e,
            Event::ConnectionStatus {
                state: ConnectionState::ShutDown,
                ..
            }
        )
    });
    let events = r.events();
    assert!(matches!(
        events.last(),
        Some(Event::ConnectionStatus {
            state: ConnectionState::ShutDown,
            ..
        })
    ));
}

#[test]
fn unsubscribe_closes_once_with_left() {
    let server = server();
    let client = RealtimeClient::new(options(&server.realtime_url(), &server.anon_key())).unwrap();
    let r = Recorder::new();
    client.on_event(r.sink());
    let ch = client.channel("bye", ChannelOptions::default());
    ch.subscribe_blocking(DEADLINE).unwrap();
    ch.unsubscribe_blocking(DEADLINE).unwrap();
    client.shutdown();
    r.wait("ShutDown", |e| {
        matches!(
            e,
            Event::ConnectionStatus {
                state: ConnectionState::ShutDown,
                ..
            }
        )
    });
    assert_eq!(
        closed_reasons(&r, "realtime:bye"),
        [Some("left".to_owned())]
    );
}

#[test]
fn remove_channel_closes_once_with_removed_and_forgets_it() {
    let server = server();
    let client = RealtimeClient::new(options(&server.realtime_url(), &server.anon_key())).unwrap();
    let r = Recorder::new();
    client.on_event(r.sink());
    let a = client.channel("a", ChannelOptions::default());
    let b = client.channel("b", ChannelOptions::default());
    a.subscribe_blocking(DEADLINE).unwrap();
    b.subscribe_blocking(DEADLINE).unwrap();
    let topics = |c: &RealtimeClient| {
        c.channels()
            .iter()
            .map(|c| c.topic().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(topics(&client), ["realtime:a", "realtime:b"]);
    client.remove_channel_blocking(&a, DEADLINE).unwrap();
    assert_eq!(topics(&client), ["realtime:b"]);
    assert_eq!(
        closed_reasons(&r, "realtime:a"),
        [Some("removed".to_owned())]
    );
    client.remove_all_channels_blocking(DEADLINE).unwrap();
    assert!(client.channels().is_empty());
    assert_eq!(
        closed_reasons(&r, "realtime:b"),
        [Some("removed".to_owned())]
    );
    client.shutdown();
}

/// A second `subscribe()` before the engine published the channel's state took the setup lock
/// twice and hung for good ("subscribe hangs").
#[test]
fn subscribing_twice_at_once_does_not_hang() {
    let server = server();
    let client = RealtimeClient::new(options(&server.realtime_url(), &server.anon_key())).unwrap();
    let ch = client.channel("twice", ChannelOptions::default());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let first = ch.subscribe();
        let second = ch.subscribe();
        let _ = tx.send((first, second, ch.subscribe_blocking(DEADLINE)));
    });
    let (first, second, joined) = rx.recv_timeout(DEADLINE * 2).expect("subscribe hung");
    assert_eq!((first, second, joined), (Ok(()), Ok(()), Ok(())));
    client.shutdown();
}

#[test]
fn calls_after_shutdown_fail_with_shutdown() {
    let server = server();
    let client = RealtimeClient::new(options(&server.realtime_url(), &server.anon_key())).unwrap();
    let ch = client.channel("late", ChannelOptions::default());
    client.shutdown();
    assert_eq!(client.connect_blocking(DEADLINE), Err(Error::Shutdown));
    assert_eq!(ch.subscribe(), Err(Error::Shutdown));
    assert_eq!(ch.subscribe_blocking(DEADLINE), Err(Error::Shutdown));
    assert_eq!(ch.unsubscribe_blocking(DEADLINE), Err(Error::Shutdown));
    let fresh = client.channel("fresh", ChannelOptions::default());
    assert_eq!(fresh.subscribe(), Err(Error::Shutdown));
}
