//! The registry of subscribed channels, and turning a channel's bindings into checked
//! subscriptions (tables resolved against the publication, the role claim, filters and column
//! lists validated in the database).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::RwLock;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_postgres::Client;

use super::binding::Params;
use super::change::Action;
use super::filter::{self, TypedCondition};
use super::{db, roles, PgEvent, Subscriber};

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
    /// The parameters as the error texts show them.
    pub log: String,
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

/// Subscriptions by key; the fan-out snapshots it per batch.
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

    /// Drops a subscription that cannot be served any more, telling its channel why with a
    /// `system` error; its channel stays joined.
    pub fn fail(&self, key: u64, message: String) {
        if let Some(sub) = self.subs.write().remove(&key) {
            eprintln!("supa-realtime-server: postgres changes: subscription dropped: {message}");
            let _ = sub.events.send(PgEvent::System {
                status: "error".into(),
                message,
            });
        }
    }

    pub fn snapshot(&self) -> Vec<(u64, Arc<Subscription>)> {
        self.subs
            .read()
            .iter()
            .map(|(k, s)| (*k, Arc::clone(s)))
            .collect()
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

/// The `system` error text for parameters whose check raised `exception`.
pub fn exception_message(log: &str, exception: &str) -> String {
    format!(
        "Unable to subscribe to changes with given parameters. An exception happened so please check your connect parameters: [{log}]. Exception: {exception}"
    )
}

/// A table's columns as one role sees them: `name → (type, selectable)`.
type Columns = HashMap<String, (String, bool)>;

/// A binding checked up to its filter values: its tables and conditions, or its error.
type Checked = Result<
    (
        Params,
        String,
        HashMap<(String, String), Vec<TypedCondition>>,
    ),
    String,
>;

/// Checks every binding as Supabase checks a `realtime.subscription` row; the first failure
/// (in binding order) is the `system` error message.
pub async fn resolve(
    client: &Client,
    allowed_roles: &[String],
    subscriber: &Subscriber,
    events: mpsc::UnboundedSender<PgEvent>,
) -> Result<Subscription, String> {
    let role = role_of(&subscriber.claims);
    let mut checked: Vec<(u32, Checked)> = vec![];
    let mut role_checked = false;
    let mut published: HashMap<(String, String), Vec<(String, String)>> = HashMap::new();
    let mut columns_of: HashMap<(String, String), Columns> = HashMap::new();
    for (id, map) in &subscriber.bindings {
        let result = async {
            let params = Params::parse(map)?;
            let log = params.to_log();
            let fail = |e: String| exception_message(&log, &e);
            let patterns = (pattern(&params.schema), pattern(&params.table));
            if !published.contains_key(&patterns) {
                let tables = publication_tables(client, &patterns).await.map_err(fail)?;
                published.insert(patterns.clone(), tables);
            }
            let keys = &published[&patterns];
            if keys.is_empty() {
                return Err(format!(
                    "Unable to subscribe to changes with given parameters. Please check Realtime is enabled for the given connect parameters: [{log}]"
                ));
            }
            if !role_checked {
                roles::check(client, allowed_roles, &role).await.map_err(fail)?;
                role_checked = true;
            }
            let mut tables = HashMap::new();
            for key in keys {
                if !columns_of.contains_key(key) {
                    let cols = table_columns(client, key, &role).await.map_err(fail)?;
                    columns_of.insert(key.clone(), cols);
                }
                let cols = &columns_of[key];
                let mut conditions = vec![];
                for cond in &params.filters {
                    let Some((column_type, true)) = cols.get(&cond.column) else {
                        return Err(fail(db::raised(&format!(
                            "invalid column for filter {}",
                            cond.column
                        ))));
                    };
                    conditions.push(TypedCondition {
                        cond: cond.clone(),
                        column_type: column_type.clone(),
                    });
                }
                for column in params.select.iter().flatten() {
                    if !matches!(cols.get(column), Some((_, true))) {
                        return Err(fail(db::raised(&format!(
                            "invalid column for select {column}"
                        ))));
                    }
                }
                tables.insert(key.clone(), conditions);
            }
            Ok((params, log, tables))
        }
        .await;
        let failed = result.is_err();
        checked.push((*id, result));
        if failed {
            break;
        }
    }
    // Filter values: checked in bulk first (thousands of bindings cost a few queries), and
    // one by one only where that found a problem, to name the first failing binding.
    let all: HashSet<&TypedCondition> = checked
        .iter()
        .filter_map(|(_, c)| c.as_ref().ok())
        .flat_map(|(_, _, tables)| tables.values().flatten())
        .collect();
    let mut validated = filter::validate_casts(client, all.into_iter().collect()).await;
    let mut bindings = vec![];
    for (id, result) in checked {
        let (params, log, tables) = result?;
        for cond in tables.values().flatten() {
            if validated.insert(cond.clone()) {
                filter::validate(client, cond)
                    .await
                    .map_err(|e| exception_message(&log, &e))?;
            }
        }
        let action = match params.event.as_str() {
            "INSERT" => Some(Action::Insert),
            "UPDATE" => Some(Action::Update),
            "DELETE" => Some(Action::Delete),
            _ => None,
        };
        bindings.push(Binding {
            id,
            action,
            tables,
            select: params.select,
            log,
        });
    }
    Ok(Subscription {
        role,
        claims: subscriber.claims.to_string(),
        bindings,
        events,
    })
}

/// `*` means every schema or table.
fn pattern(p: &str) -> String {
    if p == "*" {
        "%".to_string()
    } else {
        p.to_string()
    }
}

async fn publication_tables(
    client: &Client,
    (schema, table): &(String, String),
) -> Result<Vec<(String, String)>, String> {
    let rows = client
        .query(
            "select schemaname::text, tablename::text from pg_publication_tables \
             where pubname = $1 and schemaname like $2 escape '' and tablename like $3 escape '' \
             order by 1, 2",
            &[&PUBLICATION, schema, table],
        )
        .await
        .map_err(|e| db::message(&e))?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

async fn table_columns(
    client: &Client,
    (schema, table): &(String, String),
    role: &str,
) -> Result<Columns, String> {
    let rows = client
        .query(
            "select a.attname::text, format_type(a.atttypid, null), \
               has_column_privilege($3::text, a.attrelid, a.attnum, 'SELECT') \
             from pg_attribute a \
             where a.attrelid = format('%I.%I', $1::text, $2::text)::regclass \
               and a.attnum > 0 and not a.attisdropped",
            &[schema, table, &role],
        )
        .await
        .map_err(|e| db::message(&e))?;
    Ok(rows
        .iter()
        .map(|r| (r.get(0), (r.get(1), r.get(2))))
        .collect())
}
