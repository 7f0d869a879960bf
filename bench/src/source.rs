//! The replay frame source: a WebSocket endpoint that completes a real Phoenix join (reply
//! `ok` with `postgres_changes: []`, v1 or v2 framing as the client asked) and then writes
//! pre-encoded broadcast frames straight to the socket as fast as the kernel takes them.
//!
//! Topic `realtime:tp-<N>-<anything>` gets N broadcasts (event `e`, a 100-byte JSON payload
//! `{"i":…,"pad":"…"}`); other topics only get the join reply. Heartbeats and leaves are
//! answered, everything else is ignored. The replay starts 200 ms after the join reply. Encoded streams are cached per (topic, vsn, N).

use std::collections::HashMap;
use std::error::Error;
use std::sync::{Arc, Mutex};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::Message;

type Cache = Arc<Mutex<HashMap<(String, bool, usize), Arc<Vec<u8>>>>>;

pub async fn run(listen: &str) -> Result<(), Box<dyn Error>> {
    let listener = TcpListener::bind(listen).await?;
    println!("listening on ws://{}/realtime/v1", listener.local_addr()?);
    std::io::Write::flush(&mut std::io::stdout())?;
    let cache: Cache = Arc::default();
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let cache = cache.clone();
        tokio::spawn(async move {
            if let Err(e) = serve(stream, cache).await {
                eprintln!("source: connection ended: {e}");
            }
        });
    }
}

/// One decoded client frame: (join_ref, ref, topic, event).
fn decode(text: &str) -> Option<(Value, Value, String, String)> {
    let v: Value = serde_json::from_str(text).ok()?;
    match v {
        Value::Array(a) if a.len() >= 5 => Some((
            a[0].clone(),
            a[1].clone(),
            a[2].as_str()?.to_owned(),
            a[3].as_str()?.to_owned(),
        )),
        Value::Object(o) => Some((
            o.get("join_ref").cloned().unwrap_or(Value::Null),
            o.get("ref").cloned().unwrap_or(Value::Null),
            o.get("topic")?.as_str()?.to_owned(),
            o.get("event")?.as_str()?.to_owned(),
        )),
        _ => None,
    }
}

fn reply(v2: bool, join_ref: &Value, r: &Value, topic: &str, response: Value) -> Message {
    let payload = json!({"status": "ok", "response": response});
    let text = if v2 {
        json!([join_ref, r, topic, "phx_reply", payload]).to_string()
    } else {
        json!({"topic": topic, "event": "phx_reply", "payload": payload, "ref": r}).to_string()
    };
    Message::text(text)
}

/// N server→client text frames (unmasked WebSocket framing) of broadcasts on `topic`.
pub fn encode_stream(topic: &str, v2: bool, n: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(n * 200);
    for i in 0..n {
        let body = format!(
            "{{\"type\":\"broadcast\",\"event\":\"e\",\"payload\":{}}}",
            crate::util::payload100("i", i as u64)
        );
        let text = if v2 {
            format!("[null,null,\"{topic}\",\"broadcast\",{body}]")
        } else {
            format!(
                "{{\"topic\":\"{topic}\",\"event\":\"broadcast\",\"payload\":{body},\"ref\":null}}"
            )
        };
        out.push(0x81);
        let len = text.len();
        if len < 126 {
            out.push(len as u8);
        } else {
            out.push(126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        out.extend_from_slice(text.as_bytes());
    }
    out
}

fn replay_count(topic: &str) -> Option<usize> {
    crate::util::replay_count(topic.strip_prefix("realtime:")?)
}

async fn serve(stream: TcpStream, cache: Cache) -> Result<(), Box<dyn Error + Send + Sync>> {
    let mut v2 = false;
    // The signature is tungstenite's `Callback`; its error type is not ours to shrink.
    #[allow(clippy::result_large_err)]
    let callback = |req: &Request, resp: Response| {
        v2 = req.uri().query().is_some_and(|q| q.contains("vsn=2"));
        Ok(resp)
    };
    let mut ws = tokio_tungstenite::accept_hdr_async(stream, callback).await?;
    while let Some(msg) = ws.next().await {
        let text = match msg? {
            Message::Text(t) => t,
            Message::Close(_) => break,
            _ => continue,
        };
        let Some((join_ref, r, topic, event)) = decode(&text) else {
            continue;
        };
        match event.as_str() {
            "heartbeat" | "phx_leave" => {
                ws.send(reply(v2, &join_ref, &r, &topic, json!({}))).await?
            }
            "phx_join" => {
                let resp = json!({"postgres_changes": []});
                ws.send(reply(v2, &join_ref, &r, &topic, resp)).await?;
                if let Some(n) = replay_count(&topic) {
                    let key = (topic.clone(), v2, n);
                    let frames = cache.lock().unwrap().get(&key).cloned();
                    let frames = match frames {
                        Some(f) => f,
                        None => {
                            let f = Arc::new(encode_stream(&topic, v2, n));
                            cache.lock().unwrap().insert(key, f.clone());
                            f
                        }
                    };
                    // Clients that can only bind handlers after the join returns
                    // (phoenix_channels_client) need a moment; timing starts at the first frame.
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                    ws.get_mut().write_all(&frames).await?;
                    ws.get_mut().flush().await?;
                }
            }
            _ => {}
        }
    }
    Ok(())
}
