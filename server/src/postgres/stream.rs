//! Reads committed changes by streaming logical replication: `START_REPLICATION` on a slot
//! with the built-in `pgoutput` plugin, through pgwire-replication (which speaks the
//! replication protocol and sends the standby status updates).
//!
//! A transaction is handed to the fan-out as soon as its commit arrives (together with any
//! that arrived meanwhile, so bursts go out in large batches), and its end position is
//! confirmed to PostgreSQL only after the fan-out: with a permanent slot, nothing is lost or
//! delivered twice across a reconnect or a graceful restart, and a crash between fan-out and
//! confirmation repeats at most the last batch.
//!
//! With a temporary slot the slot lives as long as the replication session; after a
//! reconnect, changes committed in between are missed (and logged as such).

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use pgwire_replication::{
    FeedbackObserver, Lsn, ReplicationClient, ReplicationConfig, ReplicationEvent,
};
use tokio::sync::watch;
use tokio_postgres::config::Host;
use tokio_postgres::{Client, Config};

use super::change::{timestamp_from_pg_micros, Change};
use super::feed::Feed;
use super::pgoutput::{Decoder, Message};
use super::{db, PUBLICATIONS};

/// The publications of [`PUBLICATIONS`] that exist (the messages one may not, when the
/// server could not create it).
async fn publications(sql: &Client) -> Result<Vec<String>, String> {
    let rows = sql
        .query(
            "select pubname::text from pg_publication where pubname = any($1) order by 1 desc",
            &[&PUBLICATIONS.as_slice()],
        )
        .await
        .map_err(|e| db::message(&e))?;
    let names: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
    if !names.iter().any(|n| n == PUBLICATIONS[0]) {
        return Err(format!("publication {} does not exist", PUBLICATIONS[0]));
    }
    Ok(names)
}

/// Changes per fan-out batch, at most (transactions are never split across a confirmation).
const MAX_BATCH: usize = 5000;
/// How soon a confirmed position reaches PostgreSQL.
const STATUS_INTERVAL: Duration = Duration::from_millis(10);
/// Reconnect back-off.
const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How long a graceful stop waits for the last confirmation to be sent.
const FINAL_ACK: Duration = Duration::from_secs(2);
/// How long a start waits for a slot that another session still holds (a previous server
/// whose connection is closing).
const SLOT_BUSY_WAIT: Duration = Duration::from_secs(5);

/// Which slot the stream reads.
#[derive(Debug, Clone)]
pub enum Slot {
    /// Kept across restarts; created when missing.
    Permanent(String),
    /// Created per replication session (dropped by PostgreSQL when it ends).
    Temporary,
}

/// The stream source.
pub struct Stream {
    config: Config,
    slot: Slot,
    publications: Vec<String>,
    /// The session started at connect time, handed to the task.
    first: Option<ReplicationClient>,
    /// Changes committed while the server was down are waiting: hold them this long.
    hold: Option<Duration>,
    decoder: Decoder,
    /// End of the last transaction delivered; older ones (re-sent after a reconnect) are
    /// skipped.
    done: Lsn,
}

/// A transaction being received.
struct Txn {
    commit_timestamp: String,
    changes: Vec<Change>,
}

impl Stream {
    /// Prepares the slot and starts the first session, so that configuration errors surface
    /// at start-up and every change committed after this returns is captured.
    pub async fn start(
        config: Config,
        setup: &Client,
        slot: Slot,
        resume_window: Duration,
    ) -> Result<Stream, String> {
        let publications = publications(setup).await?;
        let mut hold = None;
        if let Slot::Permanent(name) = &slot {
            if prepare_permanent(setup, name, &publications).await? {
                eprintln!(
                    "supa-realtime-server: postgres changes: changes committed while the server was down are waiting in slot {name}; \
                     delivering them in {} ms, once clients have had time to resubscribe",
                    resume_window.as_millis()
                );
                hold = Some(resume_window);
            }
        }
        let mut stream = Stream {
            config,
            slot,
            publications,
            first: None,
            hold,
            decoder: Decoder::default(),
            done: Lsn::from_u64(0),
        };
        let started = Instant::now();
        stream.first = Some(loop {
            match stream.session(setup).await {
                Ok(client) => break client,
                Err(e) if e.contains("55006") && started.elapsed() < SLOT_BUSY_WAIT => {
                    tokio::time::sleep(MIN_BACKOFF).await;
                }
                Err(e) => return Err(start_error(&e, &stream.slot)),
            }
        });
        Ok(stream)
    }

    /// Opens a replication session on the slot and starts streaming.
    async fn session(&mut self, sql: &Client) -> Result<ReplicationClient, String> {
        static SESSIONS: AtomicU32 = AtomicU32::new(0);
        let (slot, start) = match &self.slot {
            Slot::Permanent(name) => (name.clone(), confirmed_position(sql, name).await?),
            Slot::Temporary => (
                format!(
                    "supa_realtime_s{}_{}",
                    std::process::id(),
                    SESSIONS.fetch_add(1, Ordering::Relaxed)
                ),
                Lsn::from_u64(0),
            ),
        };
        let (host, port) = endpoint(&self.config)?;
        let password = self
            .config
            .get_password()
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .unwrap_or_default();
        let user = self.config.get_user().unwrap_or("postgres").to_string();
        let database = self.config.get_dbname().unwrap_or(&user).to_string();
        let cfg = ReplicationConfig::new(
            host,
            user,
            password,
            database,
            slot.clone(),
            self.publications.clone(),
        )
        .with_port(port)
        .with_start_lsn(start)
        .with_status_interval(STATUS_INTERVAL)
        .with_options(
            "-c timezone=UTC -c datestyle=ISO,YMD -c intervalstyle=postgres -c bytea_output=hex",
        )
        .with_application_name("supa-realtime-server/replication")
        // Makes `feedback_pending_since` tell when the last confirmation was sent.
        .with_feedback_observer(FeedbackObserver::new(|_| {}));
        let fail = |e: pgwire_replication::PgWireError| e.to_string();
        let mut client = ReplicationClient::connect_gated(cfg).await.map_err(fail)?;
        if matches!(self.slot, Slot::Temporary) {
            client
                .simple_query(&format!(
                    "CREATE_REPLICATION_SLOT {slot} TEMPORARY LOGICAL pgoutput NOEXPORT_SNAPSHOT"
                ))
                .await
                .map_err(fail)?;
        }
        client.start().await.map_err(fail)?;
        client.wait_started().await.map_err(fail)?;
        // The decoder's relations belong to the session: each one describes them anew.
        self.decoder = Decoder::default();
        Ok(client)
    }

    /// Streams until `stop`, reconnecting after failures.
    pub async fn run(
        mut self,
        mut feed: Feed,
        sql_config: Config,
        mut stop: watch::Receiver<bool>,
    ) {
        if let Some(hold) = self.hold.take() {
            tokio::select! {
                _ = tokio::time::sleep(hold) => {}
                _ = stop.wait_for(|s| *s) => {}
            }
        }
        let mut client = self.first.take();
        let mut backoff = MIN_BACKOFF;
        let mut sql: Option<Client> = None;
        while !*stop.borrow() {
            let Some(mut session) = client.take() else {
                match self.reconnect(&sql_config, &mut sql).await {
                    Ok(c) => {
                        backoff = MIN_BACKOFF;
                        client = Some(c);
                    }
                    Err(e) => {
                        eprintln!("supa-realtime-server: postgres changes: replication reconnect failed: {e}");
                        tokio::select! {
                            _ = tokio::time::sleep(backoff) => {}
                            _ = stop.wait_for(|s| *s) => {}
                        }
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                    }
                }
                continue;
            };
            match self.pump(&mut session, &mut feed, &mut stop).await {
                Ok(()) => {
                    finish(&mut session).await;
                    return;
                }
                Err(_) if feed.closed() => return,
                Err(e) => {
                    eprintln!(
                        "supa-realtime-server: postgres changes: replication stream failed: {e}"
                    );
                    session.abort();
                }
            }
        }
        if let Some(mut session) = client {
            finish(&mut session).await;
        }
    }

    async fn reconnect(
        &mut self,
        sql_config: &Config,
        sql: &mut Option<Client>,
    ) -> Result<ReplicationClient, String> {
        if sql.as_ref().is_none_or(Client::is_closed) {
            *sql = Some(
                db::open(sql_config, None)
                    .await
                    .map_err(|e| db::message(&e))?,
            );
        }
        let client = self.session(sql.as_ref().expect("opened")).await?;
        match &self.slot {
            Slot::Permanent(_) => eprintln!("supa-realtime-server: postgres changes: replication stream reconnected"),
            Slot::Temporary => eprintln!(
                "supa-realtime-server: postgres changes: replication stream reconnected on a new temporary slot \
                 (changes committed meanwhile were missed; a permanent slot keeps them: --replication-slot)"
            ),
        }
        Ok(client)
    }

    /// Receives, delivers and confirms until `stop` (`Ok`) or a failure (`Err`).
    async fn pump(
        &mut self,
        client: &mut ReplicationClient,
        feed: &mut Feed,
        stop: &mut watch::Receiver<bool>,
    ) -> Result<(), String> {
        let mut txn: Option<Txn> = None;
        let mut batch: Vec<Change> = vec![];
        let mut batch_end = self.done;
        loop {
            let event = tokio::select! {
                biased;
                _ = stop.wait_for(|s| *s) => return Ok(()),
                event = client.recv() => event,
            };
            let mut next = Some(event);
            // Take every event already received, so a burst goes out in few batches.
            while let Some(event) = next.take() {
                let event = event
                    .map_err(|e| e.to_string())?
                    .ok_or("the replication stream ended")?;
                if let Some(end) = self.handle(event, &mut txn, &mut batch)? {
                    batch_end = batch_end.max(end);
                }
                if batch.len() < MAX_BATCH {
                    next = client.recv().now_or_never();
                }
            }
            if batch_end > self.done {
                if !batch.is_empty() && !feed.deliver(&batch, stop).await {
                    return Ok(());
                }
                batch.clear();
                self.done = batch_end;
                client.update_applied_lsn(batch_end);
            }
        }
    }

    /// Applies one event; returns the end position of a transaction it completed.
    fn handle(
        &mut self,
        event: ReplicationEvent,
        txn: &mut Option<Txn>,
        batch: &mut Vec<Change>,
    ) -> Result<Option<Lsn>, String> {
        match event {
            ReplicationEvent::Begin {
                commit_time_micros, ..
            } => {
                *txn = Some(Txn {
                    commit_timestamp: timestamp_from_pg_micros(commit_time_micros),
                    changes: vec![],
                });
            }
            ReplicationEvent::XLogData { data, .. } => {
                let ts = txn.as_ref().map_or("", |t| t.commit_timestamp.as_str());
                if let Message::Change(change) = self.decoder.decode(&data, ts)? {
                    match txn {
                        Some(t) => t.changes.push(*change),
                        None => return Err("pgoutput: a change outside a transaction".into()),
                    }
                }
            }
            ReplicationEvent::Commit { end_lsn, .. } => {
                let t = txn
                    .take()
                    .ok_or("pgoutput: a commit without a transaction")?;
                // Delivered before a reconnect: PostgreSQL sends what was not confirmed yet.
                if end_lsn > self.done {
                    batch.extend(t.changes);
                    return Ok(Some(end_lsn));
                }
            }
            // Nothing in flight: everything before this position was seen, and what was not
            // sent touched no published table. Confirming it lets PostgreSQL recycle WAL.
            ReplicationEvent::KeepAlive { wal_end, .. }
                if txn.is_none() && batch.is_empty() && wal_end > self.done =>
            {
                return Ok(Some(wal_end));
            }
            _ => {}
        }
        Ok(None)
    }
}

/// Ends a session cleanly: waits (bounded) until the last confirmation reached PostgreSQL,
/// then stops the stream.
async fn finish(client: &mut ReplicationClient) {
    let deadline = Instant::now() + FINAL_ACK;
    while client.feedback_pending_since().is_some() && Instant::now() < deadline {
        tokio::time::sleep(STATUS_INTERVAL / 2).await;
    }
    let _ = tokio::time::timeout(FINAL_ACK, client.shutdown()).await;
}

/// Checks or creates the permanent slot. `true`: it has changes committed while no server
/// read it.
async fn prepare_permanent(
    sql: &Client,
    name: &str,
    publications: &[String],
) -> Result<bool, String> {
    let fail = |e: tokio_postgres::Error| db::message(&e);
    let row = sql
        .query_opt(
            "select plugin::text, database::text = current_database(), \
               coalesce(to_jsonb(s) ->> 'wal_status' = 'lost', false) \
             from pg_replication_slots s where slot_name = $1",
            &[&name],
        )
        .await
        .map_err(fail)?;
    match row {
        None => {
            sql.execute(
                "select pg_create_logical_replication_slot($1, 'pgoutput')",
                &[&name],
            )
            .await
            .map_err(|e| super::setup::slot_error(&e))?;
            Ok(false)
        }
        Some(row) => {
            let (plugin, same_db, lost): (String, bool, bool) =
                (row.get(0), row.get(1), row.get(2));
            if plugin != "pgoutput" || !same_db {
                return Err(format!(
                    "replication slot {name} exists but belongs to {} (plugin {plugin}). Fix: drop it \
                     (select pg_drop_replication_slot('{name}')) or choose another name with --replication-slot",
                    if same_db { "another program" } else { "another database" }
                ));
            }
            if lost {
                eprintln!(
                    "supa-realtime-server: postgres changes: replication slot {name} was invalidated by PostgreSQL \
                     (max_slot_wal_keep_size); recreating it: changes committed since it fell behind are lost"
                );
                sql.execute("select pg_drop_replication_slot($1)", &[&name])
                    .await
                    .map_err(fail)?;
                return Box::pin(prepare_permanent(sql, name, publications)).await;
            }
            // Whether decoding from the confirmed position yields anything for our
            // publications (bounded: a long backlog of unrelated WAL counts as waiting).
            // Bounded by the server's own statement timeout, so that a cut-off peek does not
            // keep the slot busy.
            sql.batch_execute("set statement_timeout = 5000")
                .await
                .map_err(fail)?;
            let peek = sql
                .query_one(
                    "select count(*) from pg_logical_slot_peek_binary_changes($1, null, 1, \
                     'proto_version', '1', 'publication_names', $2)",
                    &[&name, &publications.join(",")],
                )
                .await;
            sql.batch_execute("reset statement_timeout")
                .await
                .map_err(fail)?;
            match peek {
                Ok(row) => Ok(row.get::<_, i64>(0) > 0),
                Err(e) if e.code().map(|c| c.code()) == Some("55006") => Err(format!(
                    "replication slot {name} is in use by another process ({}). Fix: stop the other server, or \
                     start this one with --replication-slot OTHER_NAME or --temporary-slot",
                    db::message(&e)
                )),
                // A long backlog of WAL unrelated to us counts as waiting changes.
                Err(e) if e.code().map(|c| c.code()) == Some("57014") => Ok(true),
                Err(e) => Err(db::message(&e)),
            }
        }
    }
}

/// Where to resume: the slot's confirmed position.
async fn confirmed_position(sql: &Client, name: &str) -> Result<Lsn, String> {
    let row = sql
        .query_opt(
            "select confirmed_flush_lsn::text from pg_replication_slots where slot_name = $1",
            &[&name],
        )
        .await
        .map_err(|e| db::message(&e))?
        .ok_or_else(|| format!("replication slot {name} does not exist (it was dropped)"))?;
    let text: Option<String> = row.get(0);
    Ok(text
        .and_then(|t| Lsn::parse(&t).ok())
        .unwrap_or(Lsn::from_u64(0)))
}

/// The first host and port of the URL (a Unix socket directory is a host starting with `/`).
fn endpoint(config: &Config) -> Result<(String, u16), String> {
    let port = config.get_ports().first().copied().unwrap_or(5432);
    match config.get_hosts().first() {
        Some(Host::Tcp(h)) => Ok((h.clone(), port)),
        #[cfg(unix)]
        Some(Host::Unix(path)) => Ok((path.display().to_string(), port)),
        None => Ok(("localhost".into(), port)),
    }
}

/// A start-up failure, with how to fix the usual causes.
fn start_error(e: &str, slot: &Slot) -> String {
    if e.contains("55006") {
        let name = match slot {
            Slot::Permanent(n) => n.as_str(),
            Slot::Temporary => "",
        };
        format!(
            "replication slot {name} is in use by another process: {e}. Fix: stop the other server, or start this one \
             with --replication-slot OTHER_NAME or --temporary-slot"
        )
    } else if e.contains("53300") || e.contains("53400") || e.contains("wal_senders") {
        format!("could not start logical replication: {e}. Fix: raise max_wal_senders (one per running server)")
    } else if e.contains("42501") || e.contains("permission") || e.contains("replication") {
        format!(
            "could not start logical replication: {e}. Fix: connect as a superuser or a role with REPLICATION \
             (`ALTER ROLE <you> WITH REPLICATION;`), and make sure max_replication_slots and max_wal_senders have room"
        )
    } else {
        format!("could not start logical replication: {e}")
    }
}
