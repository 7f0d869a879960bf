//! Reads committed changes by polling a temporary logical replication slot with wal2json, as
//! hosted Supabase does (`--changes-source poll`; the stream is the default): immediately
//! again after a non-empty batch, backing off from 5 ms to 100 ms when idle.
//!
//! The slot's connection runs nothing but the polls (an error on it drops a temporary slot);
//! any failure opens a new connection with a new slot, and changes committed in between are
//! missed. `pg_logical_slot_get_changes` advances the slot when it returns, before fan-out.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use tokio::sync::watch;
use tokio_postgres::{Client, Config};

use super::feed::Feed;
use super::subscriptions::PUBLICATION;
use super::{db, setup, wal2json};

/// Most changes per poll (whole transactions are always returned complete).
const MAX_CHANGES: i32 = 5000;
const MIN_IDLE: Duration = Duration::from_millis(5);
const MAX_IDLE: Duration = Duration::from_millis(100);

pub struct Poller {
    config: Config,
    client: Client,
    slot: String,
}

impl Poller {
    /// Opens the slot's connection and creates the slot.
    pub async fn start(config: Config) -> Result<Poller, String> {
        let (client, slot) = open_slot(&config).await?;
        Ok(Poller {
            config,
            client,
            slot,
        })
    }

    /// Polls until `stop`.
    pub async fn run(mut self, mut feed: Feed, mut stop: watch::Receiver<bool>) {
        let mut idle = MIN_IDLE;
        while !*stop.borrow() && !feed.closed() {
            let wait = match self.poll_once(&mut feed, &mut stop).await {
                Ok(n) if n > 0 => {
                    idle = MIN_IDLE;
                    continue;
                }
                Ok(_) => {
                    let wait = idle;
                    idle = (idle * 2).min(MAX_IDLE);
                    wait
                }
                Err(e) => {
                    eprintln!("supa-realtime-server: postgres changes: {e}");
                    match open_slot(&self.config).await {
                        Ok((client, slot)) => {
                            eprintln!(
                                "supa-realtime-server: postgres changes: polling again on a new slot (changes committed meanwhile were missed)"
                            );
                            (self.client, self.slot) = (client, slot);
                        }
                        Err(e) => eprintln!("supa-realtime-server: postgres changes: {e}"),
                    }
                    Duration::from_secs(1)
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = stop.wait_for(|s| *s) => {}
            }
        }
    }

    async fn poll_once(
        &mut self,
        feed: &mut Feed,
        stop: &mut watch::Receiver<bool>,
    ) -> Result<usize, String> {
        let fail = |e: tokio_postgres::Error| db::message(&e);
        let tables = self
            .client
            .query(
                "select schemaname::text, tablename::text from pg_publication_tables where pubname = $1",
                &[&PUBLICATION],
            )
            .await
            .map_err(fail)?;
        let mut add_tables: Vec<String> = tables
            .iter()
            .map(|r| format!("{}.{}", escape_name(r.get(0)), escape_name(r.get(1))))
            .collect();
        add_tables.push("realtime.*".into());
        let rows = self
            .client
            .query(
                "select data from pg_logical_slot_get_changes($1, null, $2, \
                 'format-version', '2', 'include-type-oids', '1', \
                 'include-timestamp', '1', 'include-transaction', '0', \
                 'actions', 'insert,update,delete', 'add-tables', $3)",
                &[&self.slot, &MAX_CHANGES, &add_tables.join(",")],
            )
            .await
            .map_err(fail)?;
        let mut changes = vec![];
        for r in &rows {
            if let Some(change) = wal2json::parse(r.get(0))? {
                changes.push(change);
            }
        }
        feed.deliver(&changes, stop).await;
        Ok(rows.len())
    }
}

async fn open_slot(config: &Config) -> Result<(Client, String), String> {
    static SLOTS: AtomicU32 = AtomicU32::new(0);
    let slot = format!(
        "supa_realtime_p{}_{}",
        std::process::id(),
        SLOTS.fetch_add(1, Ordering::Relaxed)
    );
    let client = db::open(config, None)
        .await
        .map_err(|e| format!("could not connect to PostgreSQL: {}", db::message(&e)))?;
    client
        .batch_execute("set application_name = 'supa-realtime-server/replication'")
        .await
        .map_err(|e| db::message(&e))?;
    client
        .query_one(
            "select pg_create_logical_replication_slot($1, 'wal2json', true)",
            &[&slot],
        )
        .await
        .map_err(|e| setup::slot_error(&e))?;
    Ok((client, slot))
}

/// Escapes a name for wal2json's `add-tables` list.
fn escape_name(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        if matches!(c, ',' | '.' | '*' | '\\' | ' ' | '"') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}
