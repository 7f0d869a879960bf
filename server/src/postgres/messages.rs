//! Stored broadcasts in `realtime.messages`: what a `persist`ed send stores, what a private
//! channel's join replays, and the sweep that keeps the table bounded.
//!
//! Upstream's rules (supabase/realtime `Realtime.Messages`, docs/server.md "Replay"): replay
//! reads `extension = 'broadcast'` rows of private topics inserted at or after `since` (Unix
//! ms), newest first up to `limit` (clamped to 1..=25), delivered oldest first. Upstream
//! drops the table's daily partitions after 72 hours; this server deletes rows older than the
//! retention in bounded batches instead (its table is not partitioned), and a per-message TTL
//! (`persist[ttl]`, seconds) is kept in `realtime.messages_expiry`, a table of its own, so
//! `realtime.messages` keeps upstream's shape.

use std::time::Duration;

use tokio_postgres::Client;

use super::db;

/// Upstream's hard cap on `replay.limit`.
pub const MAX_REPLAY: i64 = 25;
/// Rows deleted per statement by the sweep, so it never holds long locks.
const SWEEP_BATCH: i64 = 1_000;
/// Batches per sweep at most; the rest waits for the next round.
const SWEEP_ROUNDS: usize = 20;

/// A stored broadcast as replay delivers it.
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    pub id: String,
    pub event: String,
    pub payload: StoredPayload,
}

/// JSON text, or the bytes of a binary broadcast.
#[derive(Debug, Clone, PartialEq)]
pub enum StoredPayload {
    Json(String),
    Binary(Vec<u8>),
}

/// Clamps `limit` as upstream does: at least 1, at most [`MAX_REPLAY`].
pub fn clamp_limit(limit: i64) -> i64 {
    limit.clamp(1, MAX_REPLAY)
}

/// The last `limit` broadcasts of private `topic` inserted at or after `since_ms`, oldest
/// first, without expired ones.
pub async fn replay(
    client: &Client,
    topic: &str,
    since_ms: i64,
    limit: i64,
) -> Result<Vec<Stored>, String> {
    let rows = client
        .query(
            "select m.id::text, coalesce(m.event, ''), m.payload::text, m.binary_payload \
             from realtime.messages m \
             where m.topic = $1 and m.private and m.extension = 'broadcast' \
               and m.inserted_at >= (to_timestamp($2::float8 / 1000) at time zone 'UTC') \
               and m.inserted_at < (now() at time zone 'UTC') + interval '1 minute' \
               and not exists (select from realtime.messages_expiry e \
                               where e.id = m.id and e.expires_at <= now()) \
             order by m.inserted_at desc limit $3",
            &[&topic, &(since_ms as f64), &clamp_limit(limit)],
        )
        .await
        .map_err(|e| db::message(&e))?;
    let mut out: Vec<Stored> = rows
        .iter()
        .map(|row| {
            let payload = match row.get::<_, Option<Vec<u8>>>(3) {
                Some(bytes) => StoredPayload::Binary(bytes),
                None => StoredPayload::Json(
                    row.get::<_, Option<String>>(2)
                        .unwrap_or_else(|| "null".into()),
                ),
            };
            Stored {
                id: row.get(0),
                event: row.get(1),
                payload,
            }
        })
        .collect();
    out.reverse();
    Ok(out)
}

/// Stores one broadcast under `id` (chosen by the caller, so the live fan-out and the row
/// agree), with an expiry when `ttl` is given.
pub async fn store(
    client: &mut Client,
    id: &str,
    topic: &str,
    private: bool,
    event: &str,
    payload: &StoredPayload,
    ttl: Option<Duration>,
) -> Result<(), String> {
    let tx = client.transaction().await.map_err(|e| db::message(&e))?;
    let (json, binary) = match payload {
        StoredPayload::Json(text) => (Some(text.as_str()), None),
        StoredPayload::Binary(bytes) => (None, Some(bytes.as_slice())),
    };
    tx.execute(
        "insert into realtime.messages (id, topic, extension, event, private, payload, binary_payload, inserted_at, updated_at) \
         values ($1::text::uuid, $2, 'broadcast', $3, $4, $5::text::jsonb, $6, now() at time zone 'UTC', now() at time zone 'UTC')",
        &[&id, &topic, &event, &private, &json, &binary],
    )
    .await
    .map_err(|e| db::message(&e))?;
    if let Some(ttl) = ttl {
        tx.execute(
            "insert into realtime.messages_expiry (id, expires_at) \
             values ($1::text::uuid, now() + make_interval(secs => $2::float8))",
            &[&id, &ttl.as_secs_f64()],
        )
        .await
        .map_err(|e| db::message(&e))?;
    }
    tx.commit().await.map_err(|e| db::message(&e))
}

/// Deletes expired messages and messages older than `retention`, at most
/// `SWEEP_ROUNDS * SWEEP_BATCH` rows of each kind per call. Returns how many went.
pub async fn sweep(client: &Client, retention: Duration) -> Result<u64, String> {
    let mut deleted = 0;
    for _ in 0..SWEEP_ROUNDS {
        let row = client
            .query_one(
                "with gone as (delete from realtime.messages_expiry where id in \
                   (select id from realtime.messages_expiry where expires_at <= now() limit $1) \
                   returning id), \
                 rows as (delete from realtime.messages where id in (select id from gone) returning 1) \
                 select (select count(*) from gone), (select count(*) from rows)",
                &[&SWEEP_BATCH],
            )
            .await
            .map_err(|e| db::message(&e))?;
        let (expired, rows): (i64, i64) = (row.get(0), row.get(1));
        deleted += rows as u64;
        if expired < SWEEP_BATCH {
            break;
        }
    }
    for _ in 0..SWEEP_ROUNDS {
        let n = client
            .execute(
                "delete from realtime.messages where ctid in \
                   (select ctid from realtime.messages \
                    where inserted_at < (now() at time zone 'UTC') - make_interval(secs => $1::float8) \
                    limit $2)",
                &[&retention.as_secs_f64(), &SWEEP_BATCH],
            )
            .await
            .map_err(|e| db::message(&e))?;
        deleted += n;
        if n < SWEEP_BATCH as u64 {
            break;
        }
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_is_clamped_like_upstream() {
        assert_eq!(clamp_limit(0), 1);
        assert_eq!(clamp_limit(-5), 1);
        assert_eq!(clamp_limit(10), 10);
        assert_eq!(clamp_limit(25), 25);
        assert_eq!(clamp_limit(1_000), 25);
    }
}
