//! Fan-out benchmark: N subscribers on one topic, M senders, payload P bytes.
//! Prints delivered messages per second and p50/p99 send-to-receive latency.
//!
//! Run through `scripts/bench-fanout` (release build). Options:
//! `--subscribers N` (100), `--senders M` (4), `--payload P` (256), `--messages K` per
//! sender (1000), `--rate R` messages/s per sender (0 = as fast as possible),
//! `--url ws://HOST:PORT/realtime/v1 --apikey KEY` to measure a server that is already running
//! (default: an in-process server).

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use supa_realtime_protocol::{Frame, Vsn};
use supa_realtime_server::{Config, Server};
use tokio_tungstenite::tungstenite::Message;

struct Options {
    subscribers: usize,
    senders: usize,
    payload: usize,
    messages: usize,
    rate: u64,
    url: Option<String>,
    apikey: Option<String>,
}

fn parse() -> Result<Options, String> {
    let mut o = Options {
        subscribers: 100,
        senders: 4,
        payload: 256,
        messages: 1000,
        rate: 0,
        url: None,
        apikey: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        let mut num = || -> Result<u64, String> {
            let v = value()?;
            v.parse().map_err(|_| format!("{flag}: not a number: {v}"))
        };
        match flag.as_str() {
            "--subscribers" => o.subscribers = num()? as usize,
            "--senders" => o.senders = num()? as usize,
            "--payload" => o.payload = num()? as usize,
            "--messages" => o.messages = num()? as usize,
            "--rate" => o.rate = num()?,
            "--url" => o.url = Some(value()?),
            "--apikey" => o.apikey = Some(value()?),
            "-h" | "--help" => {
                println!("usage: bench-fanout [--subscribers N] [--senders M] [--payload P] [--messages K] [--rate R] [--url URL --apikey KEY]");
                std::process::exit(0);
            }
            other => return Err(format!("unknown option {other}")),
        }
    }
    if o.senders == 0 || o.subscribers == 0 {
        return Err("need at least one sender and one subscriber".into());
    }
    Ok(o)
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

const TOPIC: &str = "realtime:bench";

async fn join(url: &str, key: &str) -> Ws {
    let (mut ws, _) =
        tokio_tungstenite::connect_async(format!("{url}/websocket?apikey={key}&vsn=2.0.0"))
            .await
            .expect("connect");
    let join = Frame::new(
        Some("1".into()),
        Some("1".into()),
        TOPIC,
        "phx_join",
        json!({"config": {}}),
    );
    ws.send(Message::text(join.encode(Vsn::V2)))
        .await
        .expect("send join");
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("join reply in time")
            .expect("open")
            .expect("frame");
        if let Message::Text(t) = msg {
            let f = Frame::decode(Vsn::V2, t.as_str()).expect("frame");
            if f.event == "phx_reply" {
                assert_eq!(f.reply_status(), Some("ok"), "join failed: {f:?}");
                return ws;
            }
        }
    }
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

#[tokio::main]
async fn main() {
    let o = match parse() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("bench-fanout: {e}");
            std::process::exit(2);
        }
    };
    let mut _server = None;
    let (url, key) = match (&o.url, &o.apikey) {
        (Some(u), Some(k)) => (u.clone(), k.clone()),
        (Some(_), None) => {
            eprintln!("bench-fanout: --url needs --apikey");
            std::process::exit(2);
        }
        _ => {
            let server = Server::start(Config::default()).expect("server starts");
            let pair = (server.realtime_url(), server.anon_key());
            _server = Some(server);
            pair
        }
    };
    let base = Instant::now();
    let expected = o.senders * o.messages;

    let mut subs = Vec::new();
    for _ in 0..o.subscribers {
        subs.push(join(&url, &key).await);
    }
    let mut senders = Vec::new();
    for _ in 0..o.senders {
        senders.push(join(&url, &key).await);
    }
    println!(
        "bench-fanout: {} subscribers, {} senders x {} messages, payload {} bytes{}",
        o.subscribers,
        o.senders,
        o.messages,
        o.payload,
        if o.rate > 0 {
            format!(", {} msg/s per sender", o.rate)
        } else {
            String::new()
        }
    );

    let receivers: Vec<_> = subs
        .into_iter()
        .map(|mut ws| {
            tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(expected);
                let mut last = base.elapsed();
                while latencies.len() < expected {
                    let Ok(Some(Ok(msg))) =
                        tokio::time::timeout(Duration::from_secs(5), ws.next()).await
                    else {
                        break; // quiet for 5 s, closed or errored: count what arrived
                    };
                    let Message::Text(t) = msg else { continue };
                    let Ok(f) = Frame::decode(Vsn::V2, t.as_str()) else {
                        continue;
                    };
                    if f.event != "broadcast" {
                        continue;
                    }
                    last = base.elapsed();
                    if let Some(sent) = f.payload["payload"]["t"].as_u64() {
                        latencies.push(last.as_micros() as u64 - sent);
                    }
                }
                (latencies, last)
            })
        })
        .collect();

    let pad = "x".repeat(o.payload);
    let started = base.elapsed();
    let sending: Vec<_> = senders
        .into_iter()
        .map(|mut ws| {
            let pad = pad.clone();
            let (messages, rate) = (o.messages, o.rate);
            tokio::spawn(async move {
                let interval = (rate > 0).then(|| Duration::from_secs_f64(1.0 / rate as f64));
                let mut next = tokio::time::Instant::now();
                for n in 0..messages {
                    if let Some(interval) = interval {
                        tokio::time::sleep_until(next).await;
                        next += interval;
                    }
                    let t = base.elapsed().as_micros() as u64;
                    let payload = json!({"type": "broadcast", "event": "b", "payload": {"t": t, "n": n, "pad": pad}});
                    let f = Frame::new(Some("1".into()), None, TOPIC, "broadcast", payload);
                    if ws.send(Message::text(f.encode(Vsn::V2))).await.is_err() {
                        break;
                    }
                }
                // Keep the sender open until the receivers are done.
                ws
            })
        })
        .collect();
    let mut open = Vec::new();
    for s in sending {
        open.push(s.await.expect("sender"));
    }
    let mut all: Vec<u64> = Vec::with_capacity(expected * o.subscribers);
    let mut end = started;
    let mut short = 0;
    for r in receivers {
        let (lat, last) = r.await.expect("receiver");
        if lat.len() < expected {
            short += 1;
        }
        end = end.max(last);
        all.extend(lat);
    }
    drop(open);
    all.sort_unstable();
    let secs = (end - started).as_secs_f64().max(1e-9);
    let total = expected * o.subscribers;
    println!(
        "delivered: {} of {} ({} subscribers short)",
        all.len(),
        total,
        short
    );
    println!(
        "throughput: {:.0} delivered msgs/s over {:.3} s",
        all.len() as f64 / secs,
        secs
    );
    println!(
        "latency: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        percentile(&all, 0.50),
        percentile(&all, 0.99),
        percentile(&all, 1.0)
    );
}
