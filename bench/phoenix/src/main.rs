//! Benchmark contestant: `phoenix_channels_client` 0.1.2, a generic Phoenix Channels (v2)
//! client. Usage: `supa-bench-phoenix <scenario> <url> <key> <name> <n>` (see bench/src/main.rs).
//! Its join sends an empty payload (no Realtime `config`), which the server accepts.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use phoenix_channels_client::{Client, Config, Payload};
use serde_json::json;
use tokio::sync::oneshot;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

const JOIN_TIMEOUT: Duration = Duration::from_secs(30);

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

fn cpu_secs() -> f64 {
    // SAFETY: getrusage only writes into the zeroed struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

fn result(v: serde_json::Value) {
    println!("RESULT {v}");
}

async fn client(url: &str, key: &str) -> Res<Client> {
    let mut config = Config::new(format!("{url}/websocket").as_str())?;
    config.set("apikey", key);
    let mut c = Client::new(config)?;
    c.connect().await?;
    Ok(c)
}

fn field(p: &Payload, name: &str) -> Option<u64> {
    match p {
        Payload::Value(v) => v["payload"][name].as_u64(),
        _ => None,
    }
}

/// Receives `n` broadcasts on `topic` from the replay source. This client relays broadcasts
/// through a tokio broadcast channel of 50 and skips what lags behind, silently: the run ends
/// at N, or 1 s after the last delivery.
async fn throughput(c: &Client, topic: &str, n: usize) -> Res<serde_json::Value> {
    let ch = c.join(topic, Some(JOIN_TIMEOUT)).await?;
    type Stamp = Option<(Instant, f64, Instant, usize)>;
    let state: Arc<Mutex<Stamp>> = Arc::new(Mutex::new(None));
    let s = state.clone();
    ch.on("broadcast", move |_, p| {
        std::hint::black_box(field(p, "i"));
        let mut s = s.lock().unwrap();
        let now = Instant::now();
        match &mut *s {
            None => *s = Some((now, cpu_secs(), now, 1)),
            Some((_, _, last, k)) => {
                *last = now;
                *k += 1;
            }
        }
    })
    .await?;
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let done = match &*state.lock().unwrap() {
            Some((_, _, last, k)) => *k >= n || last.elapsed() > Duration::from_secs(1),
            None => false,
        };
        if done || Instant::now() > deadline {
            break;
        }
    }
    let (t0, c0, last, k) = state.lock().unwrap().ok_or("no broadcast arrived")?;
    Ok(
        json!({"n": k - 1, "secs": (last - t0).as_secs_f64(), "cpu_s": cpu_secs() - c0,
              "received": k, "dropped": n - k}),
    )
}

/// The resident memory of this process in bytes (`VmRSS`).
fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Res<()> {
    let a: Vec<String> = std::env::args().skip(1).collect();
    if a.len() < 5 {
        return Err("usage: <scenario> <url> <key> <name> <n>".into());
    }
    let (scenario, url, key, name) = (a[0].as_str(), &a[1], &a[2], &a[3]);
    let n: usize = a[4].parse()?;
    let topic = format!("realtime:{name}");
    match scenario {
        "throughput" => {
            let c = client(url, key).await?;
            result(throughput(&c, &topic, n).await?);
        }
        "channels" => {
            // n joined channels: n - 1 idle ones, then the busy one (its join starts the replay).
            let c = client(url, key).await?;
            let mut idle = Vec::new();
            for i in 1..n {
                idle.push(
                    c.join(&format!("realtime:idle-{i}"), Some(JOIN_TIMEOUT))
                        .await?,
                );
            }
            let rss = rss_bytes();
            let msgs: usize = name.split('-').nth(1).ok_or("name: tp-<msgs>-…")?.parse()?;
            let mut r = throughput(&c, &topic, msgs).await?;
            r["rss"] = json!(rss);
            r["channels"] = json!(n);
            result(r);
            drop(idle);
        }
        "latency" => {
            let c = client(url, key).await?;
            let ch = c.join(&topic, Some(JOIN_TIMEOUT)).await?;
            let (tx, rx) = oneshot::channel();
            let tx = Mutex::new(Some(tx));
            let lat = Arc::new(Mutex::new(Vec::with_capacity(n)));
            let l = lat.clone();
            ch.on("broadcast", move |_, p| {
                let mut l = l.lock().unwrap();
                l.push(now_us().saturating_sub(field(p, "t").unwrap_or(0)));
                if l.len() == n {
                    if let Some(tx) = tx.lock().unwrap().take() {
                        let _ = tx.send(());
                    }
                }
            })
            .await?;
            println!("READY");
            let _ = tokio::time::timeout(Duration::from_secs(120), rx).await;
            let lat = std::mem::take(&mut *lat.lock().unwrap());
            result(json!({"lat_us": lat}));
        }
        "memory" => {
            let c = client(url, key).await?;
            let mut chans = Vec::new();
            let joins: Vec<_> = (0..n).map(|i| format!("{topic}-{i}")).collect();
            for t in &joins {
                chans.push(c.join(t, Some(JOIN_TIMEOUT)).await?);
            }
            println!("READY");
            let mut sink = Vec::new();
            tokio::io::AsyncReadExt::read_to_end(&mut tokio::io::stdin(), &mut sink).await?;
            drop(chans);
        }
        "connect" => {
            let mut ms = Vec::new();
            for i in 0..n {
                let t0 = Instant::now();
                let mut c = client(url, key).await?;
                let _ch = c.join(&format!("{topic}-{i}"), Some(JOIN_TIMEOUT)).await?;
                ms.push(t0.elapsed().as_secs_f64() * 1e3);
                c.disconnect().await?;
            }
            result(json!({"ms": ms}));
        }
        other => return Err(format!("unknown scenario {other}").into()),
    }
    Ok(())
}
