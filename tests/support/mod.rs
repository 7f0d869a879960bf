//! Helpers for the client integration tests: an in-process server and an event recorder
//! that waits on events with deadlines (never sleeps).

#![allow(dead_code)]

pub mod fault_proxy;
pub mod resilience;

use std::process::{Child, Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use serde_json::{json, Value};
use supa_realtime::{ClientOptions, Event, RealtimeClient, SubscribeStatus};
use supa_realtime_server::{Config, Server};

pub const DEADLINE: Duration = Duration::from_secs(15);

/// The PostgreSQL of the tests: `DATABASE_URL` (as scripts/test exports it), else a
/// throwaway cluster from scripts/dev-postgres kept for the test binary's life; `None` when
/// neither is available (the caller says SKIPPED).
pub fn database_url() -> Option<&'static str> {
    static URL: OnceLock<Option<(String, Option<Child>)>> = OnceLock::new();
    URL.get_or_init(|| {
        if let Ok(url) = std::env::var("DATABASE_URL") {
            return Some((url, None));
        }
        let dir = std::env::temp_dir().join(format!("supa-pg-client-{}", std::process::id()));
        let script = format!(
            "scripts/dev-postgres start '{d}' || exit 1; cat >/dev/null; scripts/dev-postgres stop '{d}'",
            d = dir.display()
        );
        let mut child = Command::new("bash")
            .args(["-c", &script])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .ok()?;
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.take()?),
            &mut line,
        )
        .ok()?;
        let url = line.trim().strip_prefix("DATABASE_URL=")?.to_string();
        Some((url, Some(child)))
    })
    .as_ref()
    .map(|(u, _)| u.as_str())
}

/// A server on the tests' PostgreSQL and its URL; `None` (after saying SKIPPED) without one.
pub fn server_with_database() -> Option<(Server, &'static str)> {
    let Some(url) = database_url() else {
        eprintln!("SKIPPED: no DATABASE_URL and scripts/dev-postgres could not start PostgreSQL");
        return None;
    };
    let server = Server::start(Config {
        database_url: Some(url.to_owned()),
        ..Config::default()
    })
    .expect("server with PostgreSQL starts");
    Some((server, url))
}

pub fn server() -> Server {
    Server::start(Config::default()).expect("server starts")
}

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

pub fn user_token(server: &Server, role: &str, exp_in: i64) -> String {
    server.sign_token(&json!({"role": role, "sub": "u1", "exp": now() + exp_in}))
}

/// Options for `server` with fast timers so failures show quickly.
pub fn options(server: &Server) -> ClientOptions {
    ClientOptions::new(server.realtime_url(), server.anon_key())
        .reconnect_delays(vec![Duration::from_millis(100), Duration::from_millis(200)])
        .rejoin_delays(vec![Duration::from_millis(100), Duration::from_millis(200)])
        .push_timeout(Duration::from_secs(5))
}

pub fn client(server: &Server) -> RealtimeClient {
    RealtimeClient::new(options(server)).expect("client")
}

/// Records every event it is given; tests wait on it with a deadline.
#[derive(Clone, Default)]
pub struct Recorder {
    inner: Arc<(Mutex<Vec<Event>>, Condvar)>,
}

impl Recorder {
    pub fn new() -> Self {
        Self::default()
    }

    /// A callback that records into this recorder.
    pub fn sink(&self) -> impl Fn(&Event) + Send + Sync + 'static {
        let r = self.clone();
        move |e: &Event| r.push(e.clone())
    }

    pub fn push(&self, e: Event) {
        self.inner.0.lock().push(e);
        self.inner.1.notify_all();
    }

    pub fn events(&self) -> Vec<Event> {
        self.inner.0.lock().clone()
    }

    /// Waits until an event recorded at or after index `from` matches; returns it and its index.
    pub fn wait_from(
        &self,
        from: usize,
        what: &str,
        pred: impl Fn(&Event) -> bool,
    ) -> (usize, Event) {
        let deadline = Instant::now() + DEADLINE;
        let mut events = self.inner.0.lock();
        loop {
            if let Some(i) = (from..events.len()).find(|i| pred(&events[*i])) {
                return (i, events[i].clone());
            }
            if self.inner.1.wait_until(&mut events, deadline).timed_out() {
                panic!(
                    "timed out waiting for {what}; events so far: {:#?}",
                    *events
                );
            }
        }
    }

    pub fn wait(&self, what: &str, pred: impl Fn(&Event) -> bool) -> Event {
        self.wait_from(0, what, pred).1
    }

    pub fn wait_status(&self, topic: &str, status: SubscribeStatus) -> Event {
        self.wait(&format!("{topic} {}", status.as_str()), |e| {
            matches!(e, Event::ChannelStatus { topic: t, status: s, .. } if t == topic && *s == status)
        })
    }

    pub fn len(&self) -> usize {
        self.inner.0.lock().len()
    }
}

pub fn broadcast_json(e: &Event, event: &str) -> Option<Value> {
    match e {
        Event::Broadcast(b) if b.event == event => match &b.payload {
            supa_realtime::Payload::Json(v) => Some(v.clone()),
            _ => None,
        },
        _ => None,
    }
}

/// A loopback TCP proxy that can black-hole traffic (keep both connections open but forward
/// nothing), to make a link look alive while it is dead.
pub struct Proxy {
    pub port: u16,
    pub blackhole: Arc<std::sync::atomic::AtomicBool>,
}

impl Proxy {
    pub fn start(upstream: std::net::SocketAddr) -> Proxy {
        use std::io::{Read, Write};
        use std::net::{TcpListener, TcpStream};
        use std::sync::atomic::{AtomicBool, Ordering};
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let blackhole = Arc::new(AtomicBool::new(false));
        let bh = blackhole.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(client) = conn else { break };
                let Ok(server) = TcpStream::connect(upstream) else {
                    continue;
                };
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    let bh = bh.clone();
                    std::thread::spawn(move || {
                        let mut buf = [0u8; 16384];
                        loop {
                            let n = match from.read(&mut buf) {
                                Ok(0) | Err(_) => break,
                                Ok(n) => n,
                            };
                            if bh.load(Ordering::SeqCst) {
                                continue; // swallowed: the link is silently dead
                            }
                            if to.write_all(&buf[..n]).is_err() {
                                break;
                            }
                        }
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                }
            }
        });
        Proxy { port, blackhole }
    }
}
