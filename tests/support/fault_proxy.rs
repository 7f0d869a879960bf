//! A fault-injecting TCP proxy for tests: sits between a client and a server on loopback and
//! misbehaves on demand, the way real networks do.
//!
//! Self-contained (std only, no async runtime) so that it can be copied into any project's
//! tests. Every connection gets two pumps per direction (a reader and a paced writer), so a
//! delayed or throttled direction never stalls the other one.
//!
//! ```ignore
//! let proxy = FaultProxy::start(server_addr);
//! let url = format!("ws://{}/realtime/v1", proxy.addr());
//! proxy.set_mode(Mode::BlackHole);          // half-open: sockets stay up, nothing flows
//! proxy.set_mode(Mode::Delay(Duration::from_millis(200)));
//! proxy.set_mode(Mode::Throttle(16 * 1024)); // bytes per second, each direction
//! proxy.drop_connections();                  // FIN both sides of every live connection
//! proxy.set_refuse(true);                    // new connections are closed at once
//! proxy.set_mode(Mode::Pass);
//! ```

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// How traffic is forwarded (both directions, every connection, applied from the next chunk).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Forward as is.
    Pass,
    /// Forward each chunk after this latency (order kept).
    Delay(Duration),
    /// Read and discard: both TCP connections stay open, nothing arrives (a half-open link).
    BlackHole,
    /// At most this many bytes per second per direction.
    Throttle(u64),
}

struct Conn {
    client: TcpStream,
    upstream: TcpStream,
}

struct Shared {
    upstream: Mutex<SocketAddr>,
    mode: Mutex<Mode>,
    refuse: AtomicBool,
    stop: AtomicBool,
    conns: Mutex<Vec<Arc<Conn>>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    accepted: AtomicU64,
    forwarded: AtomicU64,
    discarded: AtomicU64,
}

/// The proxy; dropping it closes every connection and joins its threads.
pub struct FaultProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl FaultProxy {
    /// Listens on an ephemeral loopback port and forwards to `upstream`.
    pub fn start(upstream: SocketAddr) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        let shared = Arc::new(Shared {
            upstream: Mutex::new(upstream),
            mode: Mutex::new(Mode::Pass),
            refuse: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            conns: Mutex::new(Vec::new()),
            threads: Mutex::new(Vec::new()),
            accepted: AtomicU64::new(0),
            forwarded: AtomicU64::new(0),
            discarded: AtomicU64::new(0),
        });
        let s = shared.clone();
        let acceptor = std::thread::Builder::new()
            .name("fault-proxy".into())
            .spawn(move || accept_loop(listener, s))
            .expect("spawn");
        FaultProxy {
            addr,
            shared,
            acceptor: Some(acceptor),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn set_mode(&self, mode: Mode) {
        *self.shared.mode.lock() = mode;
    }

    pub fn mode(&self) -> Mode {
        *self.shared.mode.lock()
    }

    /// Points new connections at another upstream (e.g. a restarted server on a new port).
    pub fn set_upstream(&self, upstream: SocketAddr) {
        *self.shared.upstream.lock() = upstream;
    }

    /// While on, new connections are accepted and closed at once (the server looks down).
    pub fn set_refuse(&self, on: bool) {
        self.shared.refuse.store(on, Ordering::SeqCst);
    }

    /// Closes both sides of every live connection (as a NAT reset or a server crash would).
    pub fn drop_connections(&self) {
        for c in self.shared.conns.lock().drain(..) {
            let _ = c.client.shutdown(Shutdown::Both);
            let _ = c.upstream.shutdown(Shutdown::Both);
        }
    }

    /// Connections accepted so far (refused ones included).
    pub fn accepted(&self) -> u64 {
        self.shared.accepted.load(Ordering::SeqCst)
    }

    /// Live connections.
    pub fn live(&self) -> usize {
        self.shared.conns.lock().len()
    }

    /// Bytes forwarded and bytes swallowed by black-holing, over both directions.
    pub fn bytes(&self) -> (u64, u64) {
        (
            self.shared.forwarded.load(Ordering::SeqCst),
            self.shared.discarded.load(Ordering::SeqCst),
        )
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the acceptor, then close everything and wait for every pump.
        let _ = TcpStream::connect(self.addr);
        if let Some(a) = self.acceptor.take() {
            let _ = a.join();
        }
        self.drop_connections();
        let threads = std::mem::take(&mut *self.shared.threads.lock());
        for t in threads {
            let _ = t.join();
        }
    }
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    for conn in listener.incoming() {
        if shared.stop.load(Ordering::SeqCst) {
            break;
        }
        let Ok(client) = conn else { continue };
        shared.accepted.fetch_add(1, Ordering::SeqCst);
        if shared.refuse.load(Ordering::SeqCst) {
            let _ = client.shutdown(Shutdown::Both);
            continue;
        }
        let upstream_addr = *shared.upstream.lock();
        let Ok(upstream) = TcpStream::connect_timeout(&upstream_addr, Duration::from_secs(2))
        else {
            let _ = client.shutdown(Shutdown::Both);
            continue;
        };
        let _ = client.set_nodelay(true);
        let _ = upstream.set_nodelay(true);
        let (Ok(c2), Ok(u2)) = (client.try_clone(), upstream.try_clone()) else {
            continue;
        };
        let conn = Arc::new(Conn { client, upstream });
        {
            let mut conns = shared.conns.lock();
            // A connection whose writers have all ended holds only this reference.
            conns.retain(|c| Arc::strong_count(c) > 1);
            conns.push(conn.clone());
        }
        let mut threads = shared.threads.lock();
        threads.retain(|t| !t.is_finished());
        for (from, to) in [
            (c2, conn.upstream.try_clone()),
            (u2, conn.client.try_clone()),
        ] {
            let Ok(to) = to else { continue };
            let (tx, rx) = mpsc::channel::<(Instant, Vec<u8>)>();
            let s = shared.clone();
            threads.push(std::thread::spawn(move || read_pump(from, tx, s)));
            let (s, keep) = (shared.clone(), conn.clone());
            threads.push(std::thread::spawn(move || {
                write_pump(to, rx, s);
                drop(keep);
            }));
        }
    }
}

/// Reads chunks and hands them to the writer with their due time (or swallows them).
fn read_pump(mut from: TcpStream, tx: mpsc::Sender<(Instant, Vec<u8>)>, shared: Arc<Shared>) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => {
                // A black hole swallows the close too: the other side keeps a half-open
                // socket until the link heals (or the proxy is dropped).
                while *shared.mode.lock() == Mode::BlackHole && !shared.stop.load(Ordering::SeqCst)
                {
                    std::thread::sleep(Duration::from_millis(50));
                }
                break;
            }
            Ok(n) => n,
        };
        let due = match *shared.mode.lock() {
            Mode::BlackHole => {
                shared.discarded.fetch_add(n as u64, Ordering::Relaxed);
                continue;
            }
            Mode::Delay(d) => Instant::now() + d,
            Mode::Pass | Mode::Throttle(_) => Instant::now(),
        };
        if tx.send((due, buf[..n].to_vec())).is_err() {
            break;
        }
    }
    // Dropping `tx` ends the writer after it drained what was due.
}

fn write_pump(mut to: TcpStream, rx: mpsc::Receiver<(Instant, Vec<u8>)>, shared: Arc<Shared>) {
    'chunks: while let Ok((due, bytes)) = rx.recv() {
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        let mut rest = &bytes[..];
        while !rest.is_empty() {
            let (n, pause) = match *shared.mode.lock() {
                Mode::Throttle(rate) => {
                    // Slices of 1/20 s worth of bytes, one every 50 ms.
                    let slice = (rate / 20).max(1) as usize;
                    (slice.min(rest.len()), Some(Duration::from_millis(50)))
                }
                _ => (rest.len(), None),
            };
            if to.write_all(&rest[..n]).is_err() {
                break 'chunks;
            }
            shared.forwarded.fetch_add(n as u64, Ordering::Relaxed);
            rest = &rest[n..];
            if let Some(p) = pause {
                std::thread::sleep(p);
            }
        }
    }
    let _ = to.shutdown(Shutdown::Both);
}
