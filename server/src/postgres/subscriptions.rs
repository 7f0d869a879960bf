//! The registry of subscribed channels, and turning a channel's bindings into checked
//! subscriptions (tables resolved against the publication, filters validated in the database).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::RwLock;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_postgres::Client;

use super::binding::Params;
use super::filter::{self, TypedCondition};
use super::wal::Action;
use super::{db, PgEvent, Subscriber};

/// The publication whose tables can be subscribed to.
pub const PUBLICATION: &str = "supabase_realtime";

/// A binding after it was checked against the database.
#[derive(Debug)]
pub struct Binding {
    pub id: u32,
    /// `None` = every action.
    pub action: Option<Action>,
    /// `(schema, table)` → that table's typed conditions (ANDed).
    pub tables: HashMap<(String, String), Vec<TypedCondition>>,
    pub select: Option<Vec<String>>,
}

/// One subscribed channel.
#[derive(Debug)]
pub struct Subscription {
    pub role: String,
    /// `request.jwt.claims` as set for RLS.
    pub claims: String,
    pub bindings: Vec<Binding>,
    pub events: mpsc::UnboundedSender<PgEvent>,
}

/// Subscriptions by key; the poller snapshots it per batch.
#[derive(Default)]
pub struct Registry {
    next: AtomicU64,
    subs: RwLock<HashMap<u64, Arc<Subscription>>>,
}

impl Registry {
    pub fn reserve(&self) -> u64 {
        self.next.fetch_add(1, Ordering::Relaxed)
    }

    /// Inserts unless the handle was dropped meanwhile (checked under the lock, so a
    /// concurrent drop either sees the entry and removes it, or prevents it).
    pub fn insert_if(&self, key: u64, sub: Subscription, alive: &AtomicBool) -> bool {
        let mut subs = self.subs.write();
        if !alive.load(Ordering::SeqCst) {
            return false;
        }
        subs.insert(key, Arc::new(sub));
        true
    }

    pub fn remove(&self, key: u64) {
        self.subs.write().remove(&key);
    }

    pub fn snapshot(&self) -> Vec<Arc<Subscription>> {
        self.subs.read().values().cloned().collect()
    }
}

/// The role of a token's claims (`anon` when absent).
pub fn role_of(claims: &Value) -> String {
    claims
        .get("role")
        .and_then(Value::as_str)
        .unwrap_or("anon")
        .to_string()
}

/// Checks every binding; the first failure is the `system` error message.
pub async fn resolve(
    client: &Client,
    subscriber: &Subscriber,
    events: mpsc::UnboundedSender<PgEvent>,
) -> Result<Subscription, String> {
    let role = role_of(&subscriber.claims);
    let mut bindings = vec![];
    for (id, map) in &subscriber.bindings {
        let params = Params::parse(map)?;
        let fail = |e: String| {
            format!(
                "Unable to subscribe to changes with given parameters. An exception happened so please check your connect parameters: [{}]. Exception: {e}",
                params.to_log()
            )
        };
        let role_ok: bool = client
            .query_one("select to_regrole($1) is not null", &[&role])
            .await
            .map_err(|e| fail(db::message(&e)))?
            .get(0);
        if !role_ok {
            return Err(fail(
                "ERROR 23502 (not_null_violation) null value in column \"claims_role\" of relation \"subscription\" violates not-null constraint"
                    .into(),
            ));
        }
        let pattern = |p: &str| {
            if p == "*" {
                "%".to_string()
            } else {
                p.to_string()
            }
        };
        let rows = client
            .query(
                "select schemaname::text, tablename::text from pg_publication_tables \
                 where pubname = $1 and schemaname like $2 escape '' and tablename like $3 escape '' \
                 order by 1, 2",
                &[&PUBLICATION, &pattern(&params.schema), &pattern(&params.table)],
            )
            .await
            .map_err(|e| fail(db::message(&e)))?;
        if rows.is_empty() {
            return Err(format!(
                "Unable to subscribe to changes with given parameters. Please check Realtime is enabled for the given connect parameters: [{}]",
                params.to_log()
            ));
        }
        let mut tables = HashMap::new();
        for r in rows {
            let (schema, table): (String, String) = (r.get(0), r.get(1));
            let mut conditions = vec![];
            for cond in &params.filters {
                let column_type: Option<String> = client
                    .query_opt(
                        "select format_type(a.atttypid, null) from pg_attribute a \
                         where a.attrelid = format('%I.%I', $1::text, $2::text)::regclass \
                           and a.attname = $3 and a.attnum > 0 and not a.attisdropped",
                        &[&schema, &table, &cond.column],
                    )
                    .await
                    .map_err(|e| fail(db::message(&e)))?
                    .map(|r| r.get(0));
                let Some(column_type) = column_type else {
                    return Err(fail(db::raised(&format!(
                        "invalid column for filter {}",
                        cond.column
                    ))));
                };
                let typed = TypedCondition {
                    cond: cond.clone(),
                    column_type,
                };
                filter::validate(client, &typed).await.map_err(fail)?;
                conditions.push(typed);
            }
            tables.insert((schema, table), conditions);
        }
        let action = match params.event.as_str() {
            "INSERT" => Some(Action::Insert),
            "UPDATE" => Some(Action::Update),
            "DELETE" => Some(Action::Delete),
            _ => None,
        };
        bindings.push(Binding {
            id: *id,
            action,
            tables,
            select: params.select.clone(),
        });
    }
    Ok(Subscription {
        role,
        claims: subscriber.claims.to_string(),
        bindings,
        events,
    })
}
