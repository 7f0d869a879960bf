//! Load drivers: the broadcast sender of the latency scenario and the row inserter of the
//! postgres scenario. Both pace on an absolute schedule (no drift, no coordinated omission).

use std::error::Error;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use crate::raw;
use crate::util::{self, Args};

type Res<T> = Result<T, Box<dyn Error>>;

/// `send <url> <key> <name> <count> <rate>`: joins `realtime:<name>` as a plain v2 socket and
/// sends `count` JSON broadcasts (event `e`, 100-byte payload `{"t": <send time µs>, "pad"}`)
/// at `rate` per second.
pub async fn send(args: Args, rate: f64) -> Res<()> {
    let topic = format!("realtime:{}", args.name);
    let mut ws = raw::connect(&args).await?;
    ws.send(raw::join_frame(&topic, 1, &args.key, json!([])))
        .await?;
    // The join reply (and nothing else is expected: self is off).
    loop {
        let msg = ws.next().await.ok_or("closed during join")??;
        if let Message::Text(t) = msg {
            if t.contains("phx_reply") {
                break;
            }
        }
    }
    let (mut sink, mut stream) = ws.split();
    // Drain whatever the server sends (nothing, normally) so the socket never backs up.
    tokio::spawn(async move { while let Some(Ok(_)) = stream.next().await {} });
    let period = Duration::from_secs_f64(1.0 / rate);
    let start = Instant::now();
    for i in 0..args.n {
        tokio::time::sleep_until(start + period * i as u32).await;
        let payload = util::payload100("t", util::now_us());
        let body = format!("{{\"type\":\"broadcast\",\"event\":\"e\",\"payload\":{payload}}}");
        let frame = format!("[\"1\",\"{}\",\"{topic}\",\"broadcast\",{body}]", i + 2);
        sink.send(Message::text(frame)).await?;
    }
    util::result(json!({"sent": args.n, "secs": start.elapsed().as_secs_f64()}));
    Ok(())
}

async fn pg_connect(url: &str) -> Res<tokio_postgres::Client> {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            eprintln!("postgres connection: {e}");
        }
    });
    Ok(client)
}

/// `pg-setup <database url>`: the benchmark table, published to the server.
pub async fn pg_setup(db: &str) -> Res<()> {
    let c = pg_connect(db).await?;
    c.batch_execute(
        "CREATE TABLE IF NOT EXISTS public.bench_rows (id bigserial PRIMARY KEY, t_us bigint NOT NULL, pad text NOT NULL);
         GRANT SELECT ON public.bench_rows TO anon, authenticated;
         DO $$ BEGIN
           IF NOT EXISTS (SELECT 1 FROM pg_publication_tables WHERE pubname = 'supabase_realtime' AND tablename = 'bench_rows') THEN
             ALTER PUBLICATION supabase_realtime ADD TABLE public.bench_rows;
           END IF;
         END $$;",
    )
    .await?;
    Ok(())
}

/// `pg-insert <database url> <count> <rate>`: autocommit single-row INSERTs whose `t_us` is the
/// database's `clock_timestamp()` in µs (the commit follows within the same statement).
pub async fn pg_insert(db: &str, n: usize, rate: f64) -> Res<()> {
    let c = pg_connect(db).await?;
    let stmt = c
        .prepare("INSERT INTO public.bench_rows (t_us, pad) VALUES ((extract(epoch FROM clock_timestamp()) * 1000000)::bigint, $1)")
        .await?;
    let pad = "x".repeat(60);
    let period = Duration::from_secs_f64(1.0 / rate);
    let start = Instant::now();
    for i in 0..n {
        tokio::time::sleep_until(start + period * i as u32).await;
        c.execute(&stmt, &[&pad]).await?;
    }
    util::result(json!({"inserted": n, "secs": start.elapsed().as_secs_f64()}));
    Ok(())
}
