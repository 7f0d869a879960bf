//! Row Level Security: which of a batch's rows a subscriber's role and claims may SELECT.
//!
//! The check runs inside a session-local helper function (`pg_temp`, created when the feed's
//! query connection opens, gone with it) that switches role and claims and then runs the
//! query, as Supabase's `realtime.apply_rls` does. One statement per check, so checks for many
//! subscribers are pipelined on one connection, each bounded by the statement timeout, and an
//! error (a policy that fails on these claims) belongs to that check alone.

use std::collections::HashSet;

use futures_util::future::join_all;
use serde_json::{json, Value};
use tokio_postgres::{Client, Statement};

use super::db;

/// Keys per statement.
const KEYS_PER_QUERY: usize = 1000;

/// Creates the helper on a fresh connection.
pub async fn install(client: &Client) -> Result<(), tokio_postgres::Error> {
    client
        .batch_execute(
            "create function pg_temp.supa_realtime_visible(p_role text, p_claims text, p_query text, p_keys jsonb)
             returns setof bigint language plpgsql as $f$
             begin
               perform set_config('role', p_role, true), set_config('request.jwt.claims', p_claims, true);
               return query execute p_query using p_keys;
             end
             $f$",
        )
        .await
}

/// One check: the rows of one table, as one role with one set of claims.
pub struct Check<'a> {
    pub schema: &'a str,
    pub table: &'a str,
    pub role: &'a str,
    pub claims: &'a str,
    /// `(name, type)` of the primary key columns.
    pub pk: &'a [(String, String)],
    /// Each row's primary key values as text, in `pk` order.
    pub keys: Vec<Vec<Option<String>>>,
}

/// Runs every check; each gives the indexes (into its `keys`) of the visible rows, or the
/// error that check failed with. `Err` only when the connection failed (retry the batch).
pub async fn visible(
    client: &Client,
    checks: &[Check<'_>],
) -> Result<Vec<Result<HashSet<usize>, String>>, String> {
    let statement = match client
        .prepare("select pg_temp.supa_realtime_visible($1, $2, $3, $4::text::jsonb)")
        .await
    {
        Ok(s) => s,
        Err(e) => return Err(db::message(&e)),
    };
    let results = join_all(checks.iter().map(|c| visible_one(client, &statement, c))).await;
    results
        .into_iter()
        .map(|r| match r {
            Ok(rows) => Ok(Ok(rows)),
            Err(e) if db::is_transient(&e) => Err(db::message(&e)),
            Err(e) => Ok(Err(db::message(&e))),
        })
        .collect()
}

async fn visible_one(
    client: &Client,
    statement: &Statement,
    check: &Check<'_>,
) -> Result<HashSet<usize>, tokio_postgres::Error> {
    let conds: Vec<String> = check
        .pk
        .iter()
        .enumerate()
        .map(|(i, (name, ty))| format!("t.{} = (x.v ->> {i})::{ty}", super::quote_ident(name)))
        .collect();
    let query = format!(
        "select x.ord from jsonb_array_elements($1) with ordinality as x(v, ord) \
         where exists (select 1 from {}.{} t where {})",
        super::quote_ident(check.schema),
        super::quote_ident(check.table),
        conds.join(" and ")
    );
    let mut visible = HashSet::new();
    for (chunk_no, chunk) in check.keys.chunks(KEYS_PER_QUERY).enumerate() {
        let keys: Value = json!(chunk);
        let rows = client
            .query(
                statement,
                &[&check.role, &check.claims, &query, &keys.to_string()],
            )
            .await?;
        visible.extend(
            rows.iter()
                .map(|r| chunk_no * KEYS_PER_QUERY + (r.get::<_, i64>(0) - 1) as usize),
        );
    }
    Ok(visible)
}
