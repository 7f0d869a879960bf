//! Private channels: RLS policies on `realtime.messages` decide who may read (join) and write
//! (broadcast, track) a topic, evaluated the way Supabase does — probe rows in a transaction
//! that is always rolled back, with the token's role, claims and `realtime.topic` set.

use serde_json::Value;
use tokio_postgres::Transaction;

use super::subscriptions::role_of;
use super::{db, Extension, PrivateAccess};

/// Sets role, claims and topic for the rest of the transaction.
async fn set_context(tx: &Transaction<'_>, claims: &Value, topic: &str) -> Result<(), String> {
    let role = role_of(claims);
    let sub = claims
        .get("sub")
        .and_then(Value::as_str)
        .unwrap_or_default();
    tx.execute(
        "select set_config('role', $1, true), set_config('realtime.topic', $2, true), \
                set_config('request.jwt.claims', $3, true), set_config('request.jwt.claim.sub', $4, true), \
                set_config('request.jwt.claim.role', $1, true)",
        &[&role, &topic, &claims.to_string(), &sub],
    )
    .await
    .map(drop)
    .map_err(|e| db::message(&e))
}

/// Inserts a probe row per extension (as the server's own role), then checks which ones the
/// token's role can SELECT.
pub async fn read_access(
    tx: Transaction<'_>,
    claims: &Value,
    topic: &str,
) -> Result<PrivateAccess, String> {
    let rows = tx
        .query(
            "insert into realtime.messages (topic, extension) values ($1, 'broadcast'), ($1, 'presence') \
             returning id::text",
            &[&topic],
        )
        .await
        .map_err(|e| db::message(&e))?;
    let ids: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
    set_context(&tx, claims, topic).await?;
    let seen = tx
        .query(
            "select extension from realtime.messages where id = any($1::text[]::uuid[])",
            &[&ids],
        )
        .await;
    let access = match seen {
        Ok(rows) => {
            let has = |ext: &str| rows.iter().any(|r| r.get::<_, &str>(0) == ext);
            PrivateAccess {
                broadcast_read: has("broadcast"),
                presence_read: has("presence"),
            }
        }
        // No SELECT privilege at all means no access, not a server failure.
        Err(e) if e.code().map(|c| c.code()) == Some("42501") => PrivateAccess {
            broadcast_read: false,
            presence_read: false,
        },
        Err(e) => return Err(db::message(&e)),
    };
    let _ = tx.rollback().await;
    Ok(access)
}

/// Tries the INSERT a write would need as the token's role.
pub async fn write_access(
    tx: Transaction<'_>,
    claims: &Value,
    topic: &str,
    extension: Extension,
) -> Result<bool, String> {
    set_context(&tx, claims, topic).await?;
    let ext = match extension {
        Extension::Broadcast => "broadcast",
        Extension::Presence => "presence",
    };
    let result = tx
        .execute(
            "insert into realtime.messages (topic, extension) values ($1, $2)",
            &[&topic, &ext],
        )
        .await;
    let allowed = match result {
        Ok(_) => true,
        Err(e) if e.code().map(|c| c.code()) == Some("42501") => false,
        Err(e) => return Err(db::message(&e)),
    };
    let _ = tx.rollback().await;
    Ok(allowed)
}
