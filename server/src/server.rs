//! Starting and stopping a server on a runtime it owns.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

use crate::config::Config;
use crate::hub::{Fanout, Hub, SubId, TopicKey};
use crate::jwt::Jwt;
use crate::postgres::{DbBroadcast, PgChanges};
use supa_realtime_protocol::BroadcastPayload;

/// Why the server could not start.
#[derive(Debug, Clone)]
pub struct Error(String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

/// State shared by every connection of one server.
pub(crate) struct Shared {
    pub config: Config,
    pub jwt: Jwt,
    pub hub: Hub,
    pub pg: Option<Arc<PgChanges>>,
    pub shutdown: watch::Receiver<bool>,
    next_sub: AtomicU64,
    /// Open connections (HTTP and WebSocket), so shutdown can wait for them and the
    /// listener can enforce the cap.
    pub connections: Arc<watch::Sender<usize>>,
    /// The cap on concurrent connections in force (the configured one, lowered to fit the
    /// process's descriptor limit).
    pub max_connections: usize,
    /// Ids of broadcasts this server stored (`persist`) and already fanned out, so that the
    /// same row read back from the replication stream is not delivered twice.
    pub stored: parking_lot::Mutex<HashMap<String, std::time::Instant>>,
}

/// How long a stored id waits for its row to come back from the replication stream.
const STORED_ECHO_WINDOW: Duration = Duration::from_secs(60);

impl Shared {
    pub(crate) fn next_sub(&self) -> SubId {
        self.next_sub.fetch_add(1, Ordering::Relaxed)
    }

    /// Notes a stored broadcast's id before its row is written (see [`Shared::stored`]);
    /// ids whose row never came back (no publication, poll mode) are forgotten after a while.
    pub(crate) fn remember_stored(&self, id: &str) {
        let now = std::time::Instant::now();
        let mut stored = self.stored.lock();
        if stored.len() >= 1024 {
            stored.retain(|_, at| now.duration_since(*at) < STORED_ECHO_WINDOW);
        }
        stored.insert(id.to_owned(), now);
    }
}

/// Expiry of the local keys. With the default secret these claims give exactly the anon and
/// service_role keys that `supabase start` prints, so existing local setups keep working.
const KEY_EXP: i64 = 1_983_812_996;

/// A running server. It shuts down when dropped (or by [`Server::shutdown`]).
///
/// ```
/// use supa_realtime_server::{Config, Server};
/// let server = Server::start(Config::default()).unwrap();
/// println!("clients connect to {}/websocket", server.realtime_url());
/// # drop(server);
/// ```
pub struct Server {
    addr: SocketAddr,
    max_connections: usize,
    jwt: Jwt,
    anon_key: String,
    service_role_key: String,
    stop: watch::Sender<bool>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    /// Starts on a runtime owned by a new thread, so it works from sync code and from inside
    /// another tokio runtime alike; returns once the socket is bound (and, with a database,
    /// once the database is connected).
    pub fn start(config: Config) -> Result<Server, Error> {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop, stop_rx) = watch::channel(false);
        let jwt = Jwt::new(&config.jwt_secret);
        let thread = std::thread::Builder::new()
            .name("supa-realtime-server".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .thread_name("supa-realtime-server-worker")
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(Error(format!("cannot start a runtime: {e}"))));
                        return;
                    }
                };
                runtime.block_on(async move {
                    match bind(config, stop_rx.clone()).await {
                        Ok((addr, serve, max_connections)) => {
                            let _ = ready_tx.send(Ok((addr, max_connections)));
                            serve.await;
                        }
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                        }
                    }
                });
                runtime.shutdown_timeout(Duration::from_secs(1));
            })
            .map_err(|e| Error(format!("cannot spawn the server thread: {e}")))?;
        let (addr, max_connections) = match ready_rx.recv() {
            Ok(Ok(bound)) => bound,
            Ok(Err(e)) => {
                let _ = thread.join();
                return Err(e);
            }
            Err(_) => {
                let _ = thread.join();
                return Err(Error("the server thread ended before binding".into()));
            }
        };
        let anon_key = jwt.sign(&json!({"iss": "supabase-demo", "role": "anon", "exp": KEY_EXP}));
        let service_role_key =
            jwt.sign(&json!({"iss": "supabase-demo", "role": "service_role", "exp": KEY_EXP}));
        Ok(Server {
            addr,
            max_connections,
            jwt,
            anon_key,
            service_role_key,
            stop,
            thread: Some(thread),
        })
    }

    /// [`Server::start`] for async code: the wait for the bind runs on tokio's blocking pool,
    /// not on an async worker. Pair it with [`Server::shutdown_async`].
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use supa_realtime_server::{Config, Server};
    /// let server = Server::start_async(Config::default()).await.unwrap();
    /// let url = server.realtime_url();
    /// server.shutdown_async().await;
    /// # let _ = url; }
    /// ```
    pub async fn start_async(config: Config) -> Result<Server, Error> {
        tokio::task::spawn_blocking(move || Server::start(config))
            .await
            .map_err(|e| Error(format!("the start task failed: {e}")))?
    }

    /// [`Server::shutdown`] for async code (the bounded wait runs on the blocking pool).
    pub async fn shutdown_async(self) {
        let _ = tokio::task::spawn_blocking(move || self.shutdown()).await;
    }

    /// The bound address (the real port when port 0 was asked).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The cap on concurrent connections in force: [`Limits::max_connections`], lowered when
    /// the process's open-file limit could not hold that many (see
    /// [`raise_open_file_limit`](crate::raise_open_file_limit)).
    ///
    /// [`Limits::max_connections`]: crate::Limits::max_connections
    pub fn max_connections(&self) -> usize {
        self.max_connections
    }

    /// `http://HOST:PORT`.
    pub fn http_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `ws://HOST:PORT/realtime/v1`; clients append `/websocket`.
    pub fn realtime_url(&self) -> String {
        format!("ws://{}/realtime/v1", self.addr)
    }

    /// A long-lived token with role `anon`, signed with the server's secret.
    pub fn anon_key(&self) -> String {
        self.anon_key.clone()
    }

    /// A long-lived token with role `service_role`, signed with the server's secret.
    pub fn service_role_key(&self) -> String {
        self.service_role_key.clone()
    }

    /// Signs arbitrary claims (HS256, the server's secret), e.g. a short-lived user token.
    /// The server requires `role` and `exp` in tokens it verifies.
    pub fn sign_token(&self, claims: &Value) -> String {
        self.jwt.sign(claims)
    }

    /// Stops accepting, closes every socket (code 1001) and waits for the server thread
    /// (a few seconds at most).
    pub fn shutdown(mut self) {
        self.stop_and_join();
    }

    fn stop_and_join(&mut self) {
        let _ = self.stop.send(true);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server").field("addr", &self.addr).finish()
    }
}

/// Binds the listener, connects the database, and returns the serving future.
async fn bind(
    config: Config,
    stop: watch::Receiver<bool>,
) -> Result<(SocketAddr, impl std::future::Future<Output = ()>, usize), Error> {
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|e| Error(format!("cannot listen on {}: {e}", config.listen)))?;
    let addr = listener
        .local_addr()
        .map_err(|e| Error(format!("cannot read the bound address: {e}")))?;
    let (db_tx, db_rx) = mpsc::unbounded_channel();
    let pg = match &config.database_url {
        Some(url) => Some(
            PgChanges::connect(url, &config.postgres, db_tx)
                .await
                .map_err(Error)?,
        ),
        None => None,
    };
    // On stop, the database feed stops first (delivering and confirming its batch in flight),
    // and only then do sockets close: a change is confirmed only once it went to them.
    let stop = {
        let (closing, closing_rx) = watch::channel(false);
        let mut stop = stop;
        let pg = pg.clone();
        tokio::spawn(async move {
            let _ = stop.wait_for(|s| *s).await;
            if let Some(pg) = pg {
                pg.shutdown().await;
            }
            closing.send_replace(true);
        });
        closing_rx
    };
    let max_connections = crate::fdlimit::connection_cap(config.limits.max_connections);
    let shared = Arc::new(Shared {
        jwt: Jwt::new(&config.jwt_secret),
        config,
        hub: Hub::default(),
        pg,
        shutdown: stop.clone(),
        next_sub: AtomicU64::new(1),
        connections: Arc::new(watch::Sender::new(0)),
        max_connections,
        stored: Default::default(),
    });
    tokio::spawn(relay_db_broadcasts(Arc::clone(&shared), db_rx));
    let app = crate::http::router(Arc::clone(&shared));
    let serve = async move {
        crate::listener::serve(listener, app, Arc::clone(&shared), stop).await;
        // Sockets close themselves (code 1001) on the same signal and HTTP connections finish
        // their exchange; wait for them, but never longer than the bound.
        let mut open = shared.connections.subscribe();
        let _ = tokio::time::timeout(Duration::from_secs(2), open.wait_for(|n| *n == 0)).await;
    };
    Ok((addr, serve, max_connections))
}

/// Relays messages created in the database to the topic's subscribers (kind 4 with
/// `{"id":…}` metadata to V2, JSON with `meta` to V1).
async fn relay_db_broadcasts(shared: Arc<Shared>, mut rx: mpsc::UnboundedReceiver<DbBroadcast>) {
    while let Some(msg) = rx.recv().await {
        let key = TopicKey {
            private: msg.private,
            name: msg.topic,
        };
        // A broadcast this server stored itself (`persist`) went out when it was sent.
        if shared.stored.lock().remove(&msg.id).is_some() {
            continue;
        }
        let fanout = Fanout::stored_user(
            key.wire_topic(),
            msg.event,
            msg.id,
            BroadcastPayload::Json(msg.payload.to_string()),
        );
        shared.hub.broadcast(&key, fanout, None);
    }
}

// A `Server` is handed across threads and shared by tests and bindings.
const _: () = {
    fn assert_send_sync<T: Send + Sync>() {}
    #[allow(dead_code)]
    fn check() {
        assert_send_sync::<Server>();
    }
};
