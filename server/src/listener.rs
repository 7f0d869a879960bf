//! Accepting connections: the cap on concurrent connections, the header-read and request
//! timeouts, and graceful shutdown of HTTP connections.
//!
//! `axum::serve` has no timeouts, so a client that opens a connection and never finishes its
//! request head (slowloris) holds a descriptor forever; this loop serves each connection with
//! hyper directly, under a timer. A connection counts from accept until its socket closes, so
//! an upgraded WebSocket keeps its [`Ticket`] for as long as it lives.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Request, Response, StatusCode};
use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::Service as _;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::server::Shared;

/// How long an HTTP connection may take to finish its exchange once shutdown began.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);
/// Refusals being written at once beyond the cap; past this, excess connections are just
/// closed, so a flood cannot make refusals themselves the unbounded cost.
const MAX_REFUSING: usize = 64;
/// How long a refusal may take to write and to see the peer close.
const REFUSAL_TIMEOUT: Duration = Duration::from_secs(1);

/// One open connection (HTTP, or the WebSocket it became). Cloned into each request's
/// extensions; the count drops when the last clone does.
#[derive(Clone)]
pub(crate) struct Ticket {
    _open: Arc<Counted>,
}

struct Counted(Arc<watch::Sender<usize>>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n -= 1);
    }
}

impl Ticket {
    fn new(open: &Arc<watch::Sender<usize>>) -> Ticket {
        open.send_modify(|n| *n += 1);
        Ticket {
            _open: Arc::new(Counted(Arc::clone(open))),
        }
    }
}

/// Accepts until `stop`, then returns (open connections finish on their own, bounded).
pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) {
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(shared.config.header_timeout);
    let http = Arc::new(http);
    let refusing = Arc::new(AtomicUsize::new(0));
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                // Out of descriptors (or a connection reset before accept): wait a moment
                // instead of spinning; connections that close free descriptors.
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stop.wait_for(|s| *s) => return,
        };
        if *shared.connections.borrow() >= shared.max_connections {
            refuse(stream, shared.max_connections, &refusing);
            continue;
        }
        let ticket = Ticket::new(&shared.connections);
        tokio::spawn(connection(
            Arc::clone(&http),
            stream,
            app.clone(),
            ticket,
            stop.clone(),
            shared.config.request_timeout,
        ));
    }
}

/// Serves one connection's requests (and its upgrade) until it closes or shutdown begins.
async fn connection(
    http: Arc<http1::Builder>,
    stream: TcpStream,
    app: Router,
    ticket: Ticket,
    mut stop: watch::Receiver<bool>,
    request_timeout: Duration,
) {
    let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
        request.extensions_mut().insert(ticket.clone());
        let call = TowerToHyperService::new(app.clone()).call(request);
        async move {
            // A request whose body trickles in (or never comes) is answered with 408.
            match tokio::time::timeout(request_timeout, call).await {
                Ok(response) => response,
                Err(_) => Ok(json_error(
                    StatusCode::REQUEST_TIMEOUT,
                    &format!(
                        "the request was not complete within {} ms",
                        request_timeout.as_millis()
                    ),
                )),
            }
        }
    });
    let conn = http
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => return,
        _ = stop.wait_for(|s| *s) => {}
    }
    conn.as_mut().graceful_shutdown();
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, conn).await;
}

fn json_error(status: StatusCode, message: &str) -> Response<Body> {
    let body = serde_json::json!({ "error": message }).to_string();
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    response
}

/// Answers a connection over the cap with `503 {"error": ...}` and closes it.
fn refuse(mut stream: TcpStream, cap: usize, refusing: &Arc<AtomicUsize>) {
    if refusing.fetch_add(1, Ordering::Relaxed) >= MAX_REFUSING {
        refusing.fetch_sub(1, Ordering::Relaxed);
        return; // dropped: closed at once
    }
    let refusing = Arc::clone(refusing);
    tokio::spawn(async move {
        let body = serde_json::json!({
            "error": format!("Too many connections: this server accepts at most {cap} at once")
        })
        .to_string();
        let response = format!(
            "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
             content-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = tokio::time::timeout(REFUSAL_TIMEOUT, async {
            stream.write_all(response.as_bytes()).await?;
            stream.shutdown().await?;
            // Read what the client sent until it closes, so the close is orderly and the
            // client reads the response instead of a reset.
            let mut sink = [0u8; 4096];
            while stream.read(&mut sink).await? > 0 {}
            Ok::<_, std::io::Error>(())
        })
        .await;
        refusing.fetch_sub(1, Ordering::Relaxed);
    });
}
