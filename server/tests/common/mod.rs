//! A small WebSocket/HTTP client for driving the server over real sockets.
#![allow(dead_code)]

pub mod binary;
pub mod pg;

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use supa_realtime_protocol::{BinaryFrame, Frame, Vsn};
use supa_realtime_server::{Config, Server};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// Every wait in these tests ends by this deadline.
pub const DEADLINE: Duration = Duration::from_secs(5);
/// How long we listen to conclude that nothing (more) arrives.
pub const QUIET: Duration = Duration::from_millis(300);

pub fn server() -> Server {
    Server::start(Config::default()).expect("server starts")
}

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// What a client received.
#[derive(Debug)]
pub enum In {
    Text(Frame),
    Binary(BinaryFrame),
    Closed(Option<u16>),
}

pub struct Client {
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    pub vsn: Vsn,
    next_ref: u64,
}

impl Client {
    /// Wraps an already connected stream.
    pub fn from_stream(ws: WebSocketStream<MaybeTlsStream<TcpStream>>, vsn: Vsn) -> Client {
        Client {
            ws,
            vsn,
            next_ref: 0,
        }
    }

    pub async fn connect(server: &Server, vsn: Vsn) -> Client {
        Client::connect_url(&server.realtime_url(), &server.anon_key(), vsn).await
    }

    /// Connects to `ws://HOST:PORT/realtime/v1` with `apikey`.
    pub async fn connect_url(realtime_url: &str, apikey: &str, vsn: Vsn) -> Client {
        let url = format!(
            "{realtime_url}/websocket?apikey={apikey}&vsn={}",
            vsn.as_str()
        );
        let (ws, _) = tokio::time::timeout(DEADLINE, tokio_tungstenite::connect_async(url))
            .await
            .expect("connect in time")
            .expect("connects");
        Client {
            ws,
            vsn,
            next_ref: 0,
        }
    }

    pub fn next_ref(&mut self) -> String {
        self.next_ref += 1;
        self.next_ref.to_string()
    }

    pub async fn send_raw(&mut self, msg: Message) {
        self.ws.send(msg).await.expect("send");
    }

    pub async fn send(&mut self, frame: &Frame) {
        let text = frame.encode(self.vsn);
        self.send_raw(Message::text(text)).await;
    }

    /// Sends a frame with a fresh ref and returns the ref.
    pub async fn push(
        &mut self,
        join_ref: Option<&str>,
        topic: &str,
        event: &str,
        payload: Value,
    ) -> String {
        let r = self.next_ref();
        let frame = Frame::new(
            join_ref.map(str::to_owned),
            Some(r.clone()),
            topic,
            event,
            payload,
        );
        self.send(&frame).await;
        r
    }

    /// The next frame, or `None` when nothing arrives within `wait`.
    pub async fn recv_within(&mut self, wait: Duration) -> Option<In> {
        loop {
            let next = tokio::time::timeout(wait, self.ws.next()).await.ok()?;
            return Some(match next {
                None => In::Closed(None),
                Some(Err(_)) => In::Closed(None),
                Some(Ok(Message::Text(t))) => In::Text(decode_server(self.vsn, t.as_str())),
                Some(Ok(Message::Binary(b))) => {
                    In::Binary(BinaryFrame::decode_from_server(&b).expect("valid binary frame"))
                }
                Some(Ok(Message::Close(c))) => In::Closed(c.map(|c| u16::from(c.code))),
                Some(Ok(_)) => continue,
            });
        }
    }

    pub async fn recv(&mut self) -> In {
        self.recv_within(DEADLINE)
            .await
            .expect("a frame before the deadline")
    }

    pub async fn recv_text(&mut self) -> Frame {
        match self.recv().await {
            In::Text(f) => f,
            other => panic!("expected a text frame, got {other:?}"),
        }
    }

    /// Skips frames until one matches `pred` (bounded by the deadline).
    pub async fn recv_until(&mut self, mut pred: impl FnMut(&Frame) -> bool) -> Frame {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.recv_within(left).await {
                Some(In::Text(f)) if pred(&f) => return f,
                Some(In::Closed(c)) => panic!("closed ({c:?}) while waiting"),
                Some(_) => {}
                None => panic!("no matching frame before the deadline"),
            }
        }
    }

    /// Asserts that nothing arrives for a short while.
    pub async fn expect_silence(&mut self) {
        if let Some(got) = self.recv_within(QUIET).await {
            panic!("expected nothing, got {got:?}");
        }
    }

    /// Waits until the server closes the connection.
    pub async fn expect_closed(&mut self) -> Option<u16> {
        self.expect_closed_within(DEADLINE).await
    }

    /// Reads (and drops) frames until the server closes the connection; its close code, if a
    /// close frame made it.
    pub async fn expect_closed_within(&mut self, wait: Duration) -> Option<u16> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.recv_within(left).await {
                Some(In::Closed(code)) => return code,
                Some(_) => {}
                None => panic!("not closed before the deadline"),
            }
        }
    }

    /// A heartbeat round trip: proves the socket is alive and everything before it was read.
    pub async fn heartbeat(&mut self) {
        let r = self.push(None, "phoenix", "heartbeat", json!({})).await;
        let reply = self
            .recv_until(|f| f.topic == "phoenix" && f.r#ref.as_deref() == Some(r.as_str()))
            .await;
        assert_eq!(reply.reply_status(), Some("ok"));
    }

    /// Joins and returns (join_ref, reply).
    pub async fn join(&mut self, topic: &str, payload: Value) -> (String, Frame) {
        let r = self.next_ref();
        let frame = Frame::new(Some(r.clone()), Some(r.clone()), topic, "phx_join", payload);
        self.send(&frame).await;
        let reply = self
            .recv_until(|f| f.event == "phx_reply" && f.r#ref.as_deref() == Some(r.as_str()))
            .await;
        (r, reply)
    }

    /// Joins and asserts success.
    pub async fn join_ok(&mut self, topic: &str, config: Value) -> String {
        let (jr, reply) = self.join(topic, json!({ "config": config })).await;
        assert_eq!(reply.reply_status(), Some("ok"), "join reply {reply:?}");
        jr
    }
}

/// A kind-3 user broadcast push, as realtime-js sends it.
pub fn kind3(
    join_ref: &str,
    r: &str,
    topic: &str,
    event: &str,
    payload: supa_realtime_protocol::BroadcastPayload,
) -> Message {
    let frame = BinaryFrame::UserBroadcastPush {
        join_ref: Some(join_ref.into()),
        r#ref: Some(r.into()),
        topic: topic.into(),
        event: event.into(),
        metadata: String::new(),
        payload,
    };
    Message::binary(frame.encode().unwrap())
}

fn decode_server(vsn: Vsn, text: &str) -> Frame {
    Frame::decode(vsn, text)
        .unwrap_or_else(|e| panic!("server sent an undecodable frame {text}: {e}"))
}

/// A raw HTTP/1.1 request; returns (status, body).
pub async fn http(
    server: &Server,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String) {
    let mut stream = TcpStream::connect(server.local_addr())
        .await
        .expect("tcp connect");
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: {}\r\n",
        server.local_addr(),
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    stream.write_all(req.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(DEADLINE, stream.read_to_end(&mut buf))
        .await
        .expect("response in time")
        .expect("read response");
    let text = String::from_utf8_lossy(&buf).to_string();
    let status: u16 = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// An upgrade request; returns (status, body) of a refusal, or 101.
pub async fn upgrade(server: &Server, query: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let mut all = vec![
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Version", "13"),
        ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ];
    all.extend_from_slice(headers);
    let mut stream = TcpStream::connect(server.local_addr())
        .await
        .expect("tcp connect");
    let mut req = format!(
        "GET /realtime/v1/websocket?{query} HTTP/1.1\r\nHost: {}\r\n",
        server.local_addr()
    );
    for (k, v) in all {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    stream.write_all(req.as_bytes()).await.unwrap();
    // Read the head, then the body by Content-Length (a 101 has none).
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let n = tokio::time::timeout_at(deadline, stream.read(&mut chunk))
            .await
            .expect("response in time")
            .expect("read");
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf).to_string();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let status: u16 = head
                .split_whitespace()
                .nth(1)
                .and_then(|s| s.parse().ok())
                .unwrap();
            let len = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            if status == 101 || body.len() >= len || n == 0 {
                return (status, body.to_owned());
            }
        }
        if n == 0 {
            panic!("connection closed before a response");
        }
    }
}
