//! The raw limit: a minimal tokio-tungstenite reader that joins with one hand-written frame and
//! then only parses each incoming frame as JSON (`serde_json::Value`). No channel state, no
//! dispatch queue, no callbacks: what any client built on the same stack cannot beat.

use std::error::Error;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::util::{self, Args, Window};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;
type Res<T> = Result<T, Box<dyn Error>>;

pub async fn connect(args: &Args) -> Res<Ws> {
    let url = format!("{}/websocket?apikey={}&vsn=2.0.0", args.url, args.key);
    let (ws, _) = tokio_tungstenite::connect_async(url).await?;
    if let MaybeTlsStream::Plain(s) = ws.get_ref() {
        s.set_nodelay(true)?;
    }
    Ok(ws)
}

pub fn join_frame(topic: &str, r: usize, key: &str, pg: Value) -> Message {
    let config = json!({
        "broadcast": {"ack": false, "self": false},
        "presence": {"key": "", "enabled": false},
        "private": false,
        "postgres_changes": pg,
    });
    let r = r.to_string();
    Message::text(
        json!([r, r, topic, "phx_join", {"config": config, "access_token": key}]).to_string(),
    )
}

/// Reads until `count` join replies with status ok have arrived.
async fn await_joins(ws: &mut Ws, count: usize) -> Res<()> {
    let mut ok = 0;
    while ok < count {
        let msg = ws.next().await.ok_or("socket closed during join")??;
        if let Message::Text(t) = msg {
            let v: Value = serde_json::from_str(&t)?;
            if v[3] == "phx_reply" && v[0] == v[1] {
                if v[4]["status"] != "ok" {
                    return Err(format!("join refused: {}", v[4]).into());
                }
                ok += 1;
            }
        }
    }
    Ok(())
}

pub async fn run(args: Args) -> Res<()> {
    let topic = format!("realtime:{}", args.name);
    match args.scenario.as_str() {
        "throughput" => {
            let mut ws = connect(&args).await?;
            ws.send(join_frame(&topic, 1, &args.key, json!([]))).await?;
            await_joins(&mut ws, 1).await?;
            let mut win = Window::new();
            let mut count = 0usize;
            while count < args.n {
                let Some(msg) = ws.next().await else { break };
                let bytes = match msg? {
                    Message::Text(t) => t,
                    _ => continue,
                };
                let v: Value = serde_json::from_str(&bytes)?;
                if v[3] == "broadcast" {
                    win.start();
                    count += 1;
                }
            }
            util::result(win.finish(count, json!({"received": count})));
        }
        "latency" => {
            let mut ws = connect(&args).await?;
            ws.send(join_frame(&topic, 1, &args.key, json!([]))).await?;
            await_joins(&mut ws, 1).await?;
            util::ready();
            let mut lat = Vec::with_capacity(args.n);
            while lat.len() < args.n {
                let Some(msg) = ws.next().await else { break };
                let Message::Text(t) = msg? else { continue };
                let v: Value = serde_json::from_str(&t)?;
                if v[3] == "broadcast" {
                    let sent = v[4]["payload"]["t"].as_u64().unwrap_or(0);
                    lat.push(util::now_us().saturating_sub(sent));
                }
            }
            util::result(json!({"lat_us": lat}));
        }
        "memory" => {
            let mut ws = connect(&args).await?;
            for i in 0..args.n {
                let t = format!("{topic}-{i}");
                ws.send(join_frame(&t, i + 1, &args.key, json!([]))).await?;
            }
            await_joins(&mut ws, args.n).await?;
            util::ready();
            // Keep reading (heartbeat-less: the orchestrator measures within seconds).
            tokio::task::spawn_blocking(util::wait_stdin_closed).await?;
            drop(ws);
        }
        "connect" => {
            let mut ms = Vec::new();
            for i in 0..args.n {
                let t0 = Instant::now();
                let mut ws = connect(&args).await?;
                ws.send(join_frame(&format!("{topic}-{i}"), 1, &args.key, json!([])))
                    .await?;
                await_joins(&mut ws, 1).await?;
                ms.push(t0.elapsed().as_secs_f64() * 1e3);
                let _ = ws.close(None).await;
            }
            util::result(json!({"ms": ms}));
        }
        "pg" => {
            let mut ws = connect(&args).await?;
            let pg = json!([{"event": "INSERT", "schema": "public", "table": "bench_rows"}]);
            ws.send(join_frame("realtime:pg", 1, &args.key, pg)).await?;
            await_joins(&mut ws, 1).await?;
            // Ready once the server says the database subscription is in place.
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                let msg = tokio::time::timeout_at(deadline.into(), ws.next())
                    .await?
                    .ok_or("closed")??;
                if let Message::Text(t) = msg {
                    let v: Value = serde_json::from_str(&t)?;
                    if v[3] == "system" && v[4]["status"] == "ok" {
                        break;
                    }
                    if v[3] == "system" {
                        return Err(format!("postgres subscription failed: {}", v[4]).into());
                    }
                }
            }
            util::ready();
            let mut lat = Vec::with_capacity(args.n);
            while lat.len() < args.n {
                let Some(msg) = ws.next().await else { break };
                let Message::Text(t) = msg? else { continue };
                let v: Value = serde_json::from_str(&t)?;
                if v[3] == "postgres_changes" {
                    let sent = v[4]["data"]["record"]["t_us"].as_u64().unwrap_or(0);
                    lat.push(util::now_us().saturating_sub(sent));
                }
            }
            util::result(json!({"lat_us": lat}));
        }
        other => return Err(format!("raw: unknown scenario {other}").into()),
    }
    Ok(())
}
