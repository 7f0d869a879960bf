//! Our client through its Rust API: callbacks on the library's dispatcher thread, default
//! options (queue of 10,000 events; drops, if any, are read from `metrics().dropped_events`).

use std::error::Error;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use supa_realtime::{
    ChannelOptions, ClientOptions, Event, Payload, PostgresChangesFilter, RealtimeChannel,
    RealtimeClient, SubscribeStatus,
};

use crate::util::{self, Args};

type Res<T> = Result<T, Box<dyn Error>>;

const JOIN_TIMEOUT: Duration = Duration::from_secs(30);

fn client(args: &Args) -> Res<RealtimeClient> {
    Ok(RealtimeClient::new(ClientOptions::new(
        &args.url, &args.key,
    ))?)
}

/// Waits for `done` with a deadline; gives up (returns false) when the source stalls.
fn wait(rx: &mpsc::Receiver<()>, deadline: Duration) -> bool {
    rx.recv_timeout(deadline).is_ok()
}

/// Receives `n` broadcasts (event `e`) on channel `name` from the replay source; the figures
/// cover messages 2..=n (the clock starts at the first delivery).
fn throughput(c: &RealtimeClient, name: &str, n: usize) -> Res<serde_json::Value> {
    let ch = c.channel(name, ChannelOptions::default());
    let (tx, rx) = mpsc::sync_channel(1);
    let base = Instant::now();
    // Delivered count; the time (ns after `base`) of the first delivery; the last clock reading
    // (ns after `base`, deliveries up to it).
    let count = Arc::new(AtomicUsize::new(0));
    let first_ns = Arc::new(AtomicU64::new(0));
    let last = Arc::new(Mutex::new((0u64, 0usize)));
    let cpu0 = Arc::new(Mutex::new(0.0));
    let (cnt, f, l, c0) = (count.clone(), first_ns.clone(), last.clone(), cpu0.clone());
    ch.on_broadcast("e", move |b| {
        // The user's callback: look at the payload as an application would.
        if let Payload::Json(v) = &b.payload {
            std::hint::black_box(v.get("i"));
        }
        let k = cnt.fetch_add(1, Ordering::Relaxed) + 1;
        // The clock is read at the first delivery, every CLOCK_EVERY-th and the n-th, not per
        // event: the raw limit reads it twice per run, and a read per event is about 3 % of
        // a contestant's CPU. A run with drops ends at its last reading.
        if k == 1 {
            f.store(base.elapsed().as_nanos() as u64, Ordering::Relaxed);
            *c0.lock().unwrap() = util::cpu_secs();
        }
        if k == n || k % util::CLOCK_EVERY == 0 {
            *l.lock().unwrap() = (base.elapsed().as_nanos() as u64, k);
        }
        if k == n {
            let _ = tx.try_send(util::cpu_secs());
        }
    });
    ch.subscribe_blocking(JOIN_TIMEOUT)?;
    // Done when all arrived, or when the arrived plus the dropped account for all.
    let deadline = Instant::now() + Duration::from_secs(120);
    let cpu1 = loop {
        if let Ok(cpu) = rx.recv_timeout(Duration::from_millis(200)) {
            break cpu;
        }
        let got = count.load(Ordering::Relaxed) as u64;
        if got + c.metrics().dropped_events >= n as u64 || Instant::now() > deadline {
            break util::cpu_secs();
        }
    };
    let got = count.load(Ordering::Relaxed);
    let (last_ns, timed) = *last.lock().unwrap();
    let secs = last_ns.saturating_sub(first_ns.load(Ordering::Relaxed)) as f64 / 1e9;
    let cpu0 = *cpu0.lock().unwrap();
    Ok(json!({
        "n": timed.saturating_sub(1), "secs": secs, "cpu_s": cpu1 - cpu0,
        "received": got, "dropped": c.metrics().dropped_events,
    }))
}

/// Subscribes every channel and waits until all are joined.
fn join_all(c: &RealtimeClient, channels: &[RealtimeChannel]) -> Res<()> {
    let (tx, rx) = mpsc::channel();
    let listener = c.on_event(move |e| {
        if let Event::ChannelStatus { status, .. } = e {
            let _ = tx.send(*status == SubscribeStatus::Subscribed);
        }
    });
    for ch in channels {
        ch.subscribe()?;
    }
    for _ in channels {
        if !rx.recv_timeout(JOIN_TIMEOUT)? {
            return Err("a channel failed to join".into());
        }
    }
    c.remove_listener(listener);
    Ok(())
}

pub fn run(args: Args) -> Res<()> {
    match args.scenario.as_str() {
        "throughput" => {
            let c = client(&args)?;
            let r = throughput(&c, &args.name, args.n)?;
            util::result(r);
            c.shutdown();
        }
        "channels" => {
            // n joined channels: n - 1 idle ones, then the busy one, whose join starts the
            // source's replay. Memory is read with all but the busy one joined.
            let c = client(&args)?;
            let idle: Vec<_> = (1..args.n)
                .map(|i| c.channel(&format!("idle-{i}"), ChannelOptions::default()))
                .collect();
            join_all(&c, &idle)?;
            let rss = util::rss_bytes();
            let msgs =
                util::replay_count(&args.name).ok_or("channels: name must be tp-<msgs>-…")?;
            let mut r = throughput(&c, &args.name, msgs)?;
            r["rss"] = json!(rss);
            r["channels"] = json!(args.n);
            util::result(r);
            drop(idle);
            c.shutdown();
        }
        "latency" | "pg" => {
            let pg = args.scenario == "pg";
            let c = client(&args)?;
            let ch = c.channel(
                if pg { "pg" } else { &args.name },
                ChannelOptions::default(),
            );
            let n = args.n;
            let (tx, rx) = mpsc::sync_channel(1);
            let lat = Arc::new(Mutex::new(Vec::with_capacity(n)));
            let l = lat.clone();
            let record = move |sent: u64| {
                let now = util::now_us();
                let mut l = l.lock().unwrap();
                l.push(now.saturating_sub(sent));
                if l.len() == n {
                    let _ = tx.try_send(());
                }
            };
            if pg {
                let filter = PostgresChangesFilter::new("INSERT", "public").table("bench_rows");
                ch.on_postgres_changes(filter, move |c| {
                    record(c.new.get("t_us").and_then(|v| v.as_u64()).unwrap_or(0))
                })?;
            } else {
                ch.on_broadcast("e", move |b| {
                    if let Payload::Json(v) = &b.payload {
                        record(v.get("t").and_then(|t| t.as_u64()).unwrap_or(0));
                    }
                });
            }
            // With postgres bindings SUBSCRIBED means the database subscription is in place.
            ch.subscribe_blocking(JOIN_TIMEOUT)?;
            util::ready();
            wait(&rx, Duration::from_secs(120));
            let lat = std::mem::take(&mut *lat.lock().unwrap());
            util::result(json!({"lat_us": lat}));
            c.shutdown();
        }
        "memory" => {
            let c = client(&args)?;
            let channels: Vec<_> = (0..args.n)
                .map(|i| c.channel(&format!("{}-{i}", args.name), ChannelOptions::default()))
                .collect();
            join_all(&c, &channels)?;
            util::ready();
            util::wait_stdin_closed();
            drop(channels);
            c.shutdown();
        }
        "connect" => {
            let mut ms = Vec::new();
            for i in 0..args.n {
                let t0 = Instant::now();
                let c = client(&args)?;
                let ch = c.channel(&format!("{}-{i}", args.name), ChannelOptions::default());
                ch.subscribe_blocking(JOIN_TIMEOUT)?;
                ms.push(t0.elapsed().as_secs_f64() * 1e3);
                c.shutdown();
            }
            util::result(json!({"ms": ms}));
        }
        other => return Err(format!("ours: unknown scenario {other}").into()),
    }
    Ok(())
}
