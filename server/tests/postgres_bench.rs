//! Benchmark (ignored by `cargo test`; run by scripts/bench-postgres): commit-to-delivery latency
//! and delivered changes per second for 1, 10 and 100 subscribers, through the module API, for
//! both change sources in the same run (the stream, and the poller it replaced).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde_json::json;
use supa_realtime_server::postgres::{Options, PgChanges, PgEvent, Source, Subscriber};
use tokio::sync::mpsc;
use tokio_postgres::NoTls;

const LATENCY_ROWS: i64 = 200;
const BURST_ROWS: i64 = 10_000;

type Seen = Arc<Mutex<HashMap<i64, Vec<Instant>>>>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run scripts/bench-postgres"]
async fn bench_postgres_changes() {
    let url = std::env::var("DATABASE_URL").expect("DATABASE_URL (scripts/bench-postgres sets it)");
    let (db, conn) = tokio_postgres::connect(&url, NoTls).await.unwrap();
    tokio::spawn(conn);
    db.batch_execute(
        "drop table if exists bench_t; create table bench_t (id bigint primary key, body text);
         alter publication supabase_realtime add table bench_t;",
    )
    .await
    .unwrap();
    let mut next_id = 0i64;
    for source in [Source::Poll, Source::Stream] {
        let (btx, _brx) = mpsc::unbounded_channel();
        let options = Options {
            source,
            ..Options::default()
        };
        let pg = PgChanges::connect(&url, &options, btx).await.unwrap();
        println!("{source:?}:");
        run(&db, &pg, &mut next_id).await;
        pg.shutdown().await;
    }
}

async fn run(db: &tokio_postgres::Client, pg: &Arc<PgChanges>, next_id: &mut i64) {
    println!("subscribers | p50 ms | p99 ms | changes/s delivered (burst of {BURST_ROWS} rows)");
    for n in [1usize, 10, 100] {
        let seen: Seen = Arc::default();
        let mut handles = vec![];
        let mut ready = vec![];
        for i in 0..n {
            let (tx, mut rx) = mpsc::unbounded_channel();
            let binding = json!({"event": "INSERT", "schema": "public", "table": "bench_t"});
            handles.push(pg.subscribe(
                Subscriber {
                    channel: format!("bench{i}"),
                    bindings: vec![(1, binding.as_object().unwrap().clone())],
                    claims: json!({"role": "anon"}),
                },
                tx,
            ));
            let (rtx, rrx) = tokio::sync::oneshot::channel();
            ready.push(rrx);
            let seen = Arc::clone(&seen);
            tokio::spawn(async move {
                let mut rtx = Some(rtx);
                while let Some(ev) = rx.recv().await {
                    match ev {
                        PgEvent::System { .. } => {
                            if let Some(r) = rtx.take() {
                                let _ = r.send(());
                            }
                        }
                        PgEvent::Change(v) => {
                            let id = v["data"]["record"]["id"].as_i64().unwrap();
                            seen.lock().entry(id).or_default().push(Instant::now());
                        }
                    }
                }
            });
        }
        for r in ready {
            r.await.unwrap();
        }

        // Latency: one-row commits, one at a time.
        let mut samples = vec![];
        for _ in 0..LATENCY_ROWS {
            *next_id += 1;
            db.execute("insert into bench_t values ($1, 'x')", &[&*next_id])
                .await
                .unwrap();
            let committed = Instant::now();
            wait_for(&seen, *next_id, n).await;
            samples.extend(
                seen.lock()[&*next_id]
                    .iter()
                    .map(|t| t.saturating_duration_since(committed)),
            );
        }
        samples.sort();
        let pct =
            |p: f64| samples[((samples.len() as f64 - 1.0) * p) as usize].as_secs_f64() * 1000.0;

        // Throughput: a burst in transactions of 1,000 rows.
        let first = *next_id + 1;
        let start = Instant::now();
        for chunk in 0..(BURST_ROWS / 1000) {
            let lo = first + chunk * 1000;
            db.execute(
                "insert into bench_t select g, 'burst' from generate_series($1::bigint, $2::bigint) g",
                &[&lo, &(lo + 999)],
            )
            .await
            .unwrap();
        }
        *next_id = first + BURST_ROWS - 1;
        wait_for(&seen, *next_id, n).await;
        let elapsed = start.elapsed().as_secs_f64();
        let delivered = (BURST_ROWS as f64) * n as f64;
        println!(
            "{n:>11} | {:>6.1} | {:>6.1} | {:>10.0}",
            pct(0.5),
            pct(0.99),
            delivered / elapsed
        );
        drop(handles);
    }
}

async fn wait_for(seen: &Seen, id: i64, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if seen.lock().get(&id).is_some_and(|v| v.len() >= n) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "row {id} not delivered to {n} subscribers in time"
        );
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
}
