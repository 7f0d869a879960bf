//! Start-up checks (logical decoding available) and the idempotent creation of the objects a
//! Supabase project has (roles, `auth.*`, `realtime.*`, the publication).

use tokio_postgres::Client;

use super::db;

/// Lock key serialising set-up across servers sharing one database.
const SETUP_LOCK: i64 = 0x5375_7061_5254; // "SupaRT"

/// Fails with a message that says how to fix the database when logical decoding is off.
pub async fn check_wal_level(client: &Client) -> Result<(), String> {
    let row = client
        .query_one("show wal_level", &[])
        .await
        .map_err(|e| db::message(&e))?;
    let level: String = row.get(0);
    if level != "logical" {
        return Err(format!(
            "PostgreSQL has wal_level={level}, but Postgres changes need logical decoding. Fix: run \
             `ALTER SYSTEM SET wal_level = logical;` as a superuser and restart PostgreSQL \
             (scripts/dev-postgres starts a cluster that is already set up)."
        ));
    }
    Ok(())
}

/// Creates what is missing, once, under an advisory lock.
pub async fn create_objects(client: &mut Client) -> Result<(), String> {
    let tx = client.transaction().await.map_err(|e| db::message(&e))?;
    tx.execute("select pg_advisory_xact_lock($1)", &[&SETUP_LOCK])
        .await
        .map_err(|e| db::message(&e))?;
    tx.batch_execute(include_str!("setup.sql")).await.map_err(|e| {
        format!(
            "could not create the Supabase objects Realtime needs (roles anon/authenticated/service_role, \
             schemas auth and realtime, publication supabase_realtime): {}. Connect as a superuser or the \
             database owner, or create them yourself (see docs/postgres.md).",
            db::message(&e)
        )
    })?;
    tx.commit().await.map_err(|e| db::message(&e))
}

/// Explains a failure to create the logical replication slot.
pub fn slot_error(e: &tokio_postgres::Error) -> String {
    let msg = db::message(e);
    if msg.contains("wal2json") {
        format!(
            "the wal2json output plugin is not installed in this PostgreSQL ({msg}). Fix: install it, \
             e.g. `apt-get install postgresql-15-wal2json` (use your server's major version) or build it \
             from https://github.com/eulerto/wal2json, then try again."
        )
    } else if msg.contains("42501") || msg.contains("permission") || msg.contains("replication") {
        format!(
            "could not create a logical replication slot ({msg}). Fix: connect as a superuser or a role with \
             REPLICATION (`ALTER ROLE <you> WITH REPLICATION;`), and make sure max_replication_slots has a free slot."
        )
    } else {
        format!("could not create a logical replication slot: {msg}")
    }
}
