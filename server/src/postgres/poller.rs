//! Reads committed changes from a temporary logical replication slot (wal2json) and fans them
//! out, batch by batch, in commit order: filters and RLS are evaluated inside PostgreSQL once
//! per batch and table (per claims for RLS), so a burst of thousands of rows costs a few queries.
//!
//! Polling `pg_logical_slot_get_changes` on a dedicated connection is what Supabase does; it
//! returns whole transactions, and the slot (temporary, so it disappears with the connection)
//! only advances past what was returned. A batch is consumed immediately and the next poll
//! follows at once; idle polls back off from 5 ms to 100 ms.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Weak};
use std::time::Duration;

use serde_json::{json, Map, Value};
use tokio::sync::mpsc;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Config};

use super::filter::{self, TypedCondition};
use super::subscriptions::{Registry, Subscription, PUBLICATION};
use super::values::{self, Types};
use super::wal::{commit_timestamp, Action, WalChange, WalColumn};
use super::{db, setup, DbBroadcast, PgEvent};

/// Most changes per poll (whole transactions are always returned complete).
const MAX_CHANGES: i32 = 5000;
const MIN_IDLE: Duration = Duration::from_millis(5);
const MAX_IDLE: Duration = Duration::from_millis(100);
/// `poll_max_record_bytes`: larger records only keep values of at most 64 bytes.
const MAX_RECORD_BYTES: usize = 1024 * 1024;

pub struct Poller {
    pub config: Config,
    pub client: Client,
    pub slot: String,
    pub registry: Weak<Registry>,
    pub broadcasts: mpsc::UnboundedSender<DbBroadcast>,
    pub types: Types,
}

/// Creates the temporary slot on `client`; it lives as long as that connection.
pub async fn create_slot(client: &Client, slot: &str) -> Result<(), String> {
    client
        .query_one(
            "select pg_create_logical_replication_slot($1, 'wal2json', true)",
            &[&slot],
        )
        .await
        .map(drop)
        .map_err(|e| setup::slot_error(&e))
}

impl Poller {
    /// Runs until the registry (owned by `PgChanges`) is dropped.
    pub async fn run(mut self) {
        let mut idle = MIN_IDLE;
        loop {
            let Some(registry) = self.registry.upgrade() else {
                return;
            };
            match self.poll_once(&registry).await {
                Ok(n) if n > 0 => idle = MIN_IDLE,
                Ok(_) => {
                    drop(registry);
                    tokio::time::sleep(idle).await;
                    idle = (idle * 2).min(MAX_IDLE);
                }
                Err(e) => {
                    drop(registry);
                    eprintln!("supa-realtime-server: postgres changes: {e}");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    if self.client.is_closed() {
                        self.reconnect().await;
                    }
                }
            }
        }
    }

    async fn reconnect(&mut self) {
        match db::open(&self.config).await {
            Ok(client) => match create_slot(&client, &self.slot).await {
                Ok(()) => {
                    eprintln!("supa-realtime-server: postgres changes: reconnected (changes committed meanwhile were missed)");
                    self.client = client;
                }
                Err(e) => eprintln!("supa-realtime-server: postgres changes: {e}"),
            },
            Err(e) => eprintln!(
                "supa-realtime-server: postgres changes: reconnect failed: {}",
                db::message(&e)
            ),
        }
    }

    async fn poll_once(&mut self, registry: &Registry) -> Result<usize, String> {
        let tables = self
            .client
            .query("select schemaname::text, tablename::text from pg_publication_tables where pubname = $1", &[&PUBLICATION])
            .await
            .map_err(|e| db::message(&e))?;
        let mut add_tables: Vec<String> = tables
            .iter()
            .map(|r| format!("{}.{}", escape_name(r.get(0)), escape_name(r.get(1))))
            .collect();
        add_tables.push("realtime.*".into());
        let rows = self
            .client
            .query(
                "select data from pg_logical_slot_get_changes($1, null, $2, \
                 'format-version', '2', 'include-pk', '1', 'include-type-oids', '1', \
                 'include-timestamp', '1', 'include-transaction', '0', \
                 'actions', 'insert,update,delete', 'add-tables', $3)",
                &[&self.slot, &MAX_CHANGES, &add_tables.join(",")],
            )
            .await
            .map_err(|e| db::message(&e))?;
        let count = rows.len();
        let mut changes = vec![];
        for r in rows {
            let data: String = r.get(0);
            if let Some(change) = WalChange::parse(&data)? {
                if change.schema == "realtime" {
                    if change.table == "messages" || change.table.starts_with("messages_") {
                        self.broadcast(&change);
                    }
                    if !tables.iter().any(|t| {
                        t.get::<_, &str>(0) == "realtime" && t.get::<_, &str>(1) == change.table
                    }) {
                        continue;
                    }
                }
                changes.push(change);
            }
        }
        let subs = registry.snapshot();
        if !changes.is_empty() && !subs.is_empty() {
            self.fan_out(&changes, &subs).await;
        }
        Ok(count)
    }

    fn broadcast(&self, change: &WalChange) {
        if change.action != Action::Insert {
            return;
        }
        let get = |n: &str| {
            change
                .columns
                .iter()
                .find(|c| c.name == n)
                .map(|c| &c.value)
        };
        if get("extension").and_then(Value::as_str) != Some("broadcast") {
            return;
        }
        let text = |n: &str| {
            get(n)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let payload = match get("payload") {
            Some(Value::String(s)) => serde_json::from_str(s).unwrap_or(Value::Null),
            _ => Value::Null,
        };
        let _ = self.broadcasts.send(DbBroadcast {
            topic: text("topic"),
            event: text("event"),
            payload,
            private: get("private").and_then(Value::as_bool).unwrap_or(false),
            id: text("id"),
        });
    }

    /// Decides, for every change and channel, which bindings match and what they see.
    async fn fan_out(&mut self, changes: &[WalChange], subs: &[Arc<Subscription>]) {
        // Candidates: (change, sub, binding) matching table and action.
        let mut candidates: Vec<Vec<(usize, usize)>> = vec![vec![]; changes.len()];
        for (ci, ch) in changes.iter().enumerate() {
            let key = (ch.schema.clone(), ch.table.clone());
            for (si, sub) in subs.iter().enumerate() {
                for (bi, b) in sub.bindings.iter().enumerate() {
                    if b.tables.contains_key(&key) && b.action.is_none_or(|a| a == ch.action) {
                        candidates[ci].push((si, bi));
                    }
                }
            }
        }
        if candidates.iter().all(Vec::is_empty) {
            return;
        }
        let oids: Vec<u32> = changes
            .iter()
            .flat_map(|c| c.columns.iter().chain(&c.identity))
            .map(|c| c.type_oid)
            .collect();
        if let Err(e) = self.types.load(&self.client, oids).await {
            // Values of unknown types are then sent as null rather than losing the batch.
            eprintln!("supa-realtime-server: postgres changes: loading types failed: {e}");
        }

        let mut by_table: HashMap<(String, String), Vec<usize>> = HashMap::new();
        for (ci, ch) in changes.iter().enumerate() {
            if !candidates[ci].is_empty() {
                by_table
                    .entry((ch.schema.clone(), ch.table.clone()))
                    .or_default()
                    .push(ci);
            }
        }

        // Filters: one query per table over all its changes.
        let mut passes: HashMap<(usize, TypedCondition), bool> = HashMap::new();
        for (key, idxs) in &by_table {
            let mut conds: Vec<TypedCondition> = idxs
                .iter()
                .flat_map(|&ci| candidates[ci].iter())
                .flat_map(|&(si, bi)| subs[si].bindings[bi].tables[key].iter().cloned())
                .collect::<HashSet<_>>()
                .into_iter()
                .collect();
            if conds.is_empty() {
                continue;
            }
            conds.sort_by(|a, b| format!("{a:?}").cmp(&format!("{b:?}")));
            let rows: Vec<HashMap<&str, Option<String>>> = idxs
                .iter()
                .map(|&ci| {
                    changes[ci]
                        .filter_tuple()
                        .iter()
                        .map(|c| (c.name.as_str(), c.text()))
                        .collect()
                })
                .collect();
            let results = match filter::evaluate(&self.client, &conds, &rows).await {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("supa-realtime-server: postgres changes: filter evaluation on {}.{} failed: {e}", key.0, key.1);
                    vec![vec![false; conds.len()]; rows.len()]
                }
            };
            for (row, &ci) in results.iter().zip(idxs) {
                for (c, ok) in conds.iter().zip(row) {
                    passes.insert((ci, c.clone()), *ok);
                }
            }
        }

        // Table facts and per-role column privileges.
        let mut metas: HashMap<(String, String), TableMeta> = HashMap::new();
        for key in by_table.keys() {
            let roles: HashSet<&str> = by_table[key]
                .iter()
                .flat_map(|&ci| candidates[ci].iter())
                .map(|&(si, _)| subs[si].role.as_str())
                .collect();
            match TableMeta::load(&self.client, key, roles).await {
                Ok(meta) => {
                    metas.insert(key.clone(), meta);
                }
                // E.g. the table was dropped meanwhile: its changes are skipped, others go on.
                Err(e) => eprintln!(
                    "supa-realtime-server: postgres changes: skipping changes of {}.{}: {e}",
                    key.0, key.1
                ),
            }
        }
        for (ci, ch) in changes.iter().enumerate() {
            if !metas.contains_key(&(ch.schema.clone(), ch.table.clone())) {
                candidates[ci].clear();
            }
        }

        let filtered: Vec<Vec<(usize, usize)>> = candidates
            .iter()
            .enumerate()
            .map(|(ci, cands)| {
                if cands.is_empty() {
                    return vec![];
                }
                let ch = &changes[ci];
                let key = (ch.schema.clone(), ch.table.clone());
                let pk_error =
                    ch.action != Action::Delete && pk_error(ch, &metas[&key], "").is_some();
                cands
                    .iter()
                    .copied()
                    .filter(|&(si, bi)| {
                        // Errors 400/401 go to every candidate, as upstream.
                        pk_error
                            || subs[si].bindings[bi].tables[&key]
                                .iter()
                                .all(|c| passes.get(&(ci, c.clone())).copied().unwrap_or(false))
                    })
                    .collect()
            })
            .collect();

        let access = self.rls(changes, subs, &filtered, &metas).await;
        let converted = self.convert(changes, &filtered).await;

        // Build and send, change by change, in commit order.
        for (ci, ch) in changes.iter().enumerate() {
            let key = (ch.schema.clone(), ch.table.clone());
            let meta = &metas.get(&key);
            let Some(meta) = meta else { continue };
            let mut per_sub: Vec<(usize, Vec<usize>)> = vec![];
            let mut failed: Vec<(usize, Vec<u32>)> = vec![];
            for &(si, bi) in &filtered[ci] {
                if access.get(&(ci, si)) == Some(&Access::Failed) {
                    match failed.iter_mut().find(|(s, _)| *s == si) {
                        Some((_, ids)) => ids.push(subs[si].bindings[bi].id),
                        None => failed.push((si, vec![subs[si].bindings[bi].id])),
                    }
                    continue;
                }
                if access.get(&(ci, si)) != Some(&Access::Visible) {
                    continue;
                }
                match per_sub.iter_mut().find(|(s, _)| *s == si) {
                    Some((_, bs)) => bs.push(bi),
                    None => per_sub.push((si, vec![bi])),
                }
            }
            for (si, ids) in failed {
                // The record is withheld: only what happened where.
                let error = "Error 500: Internal Server Error, RLS policy evaluation failed";
                let payload = json!({"ids": ids, "data": error_data(ch, error)});
                let _ = subs[si].events.send(PgEvent::Change(Arc::new(payload)));
            }
            let mut cache: HashMap<(String, Option<Vec<String>>), Value> = HashMap::new();
            for (si, bis) in per_sub {
                let sub = &subs[si];
                let mut groups: Vec<(Option<Vec<String>>, Vec<u32>)> = vec![];
                for bi in bis {
                    let b = &sub.bindings[bi];
                    match groups.iter_mut().find(|(s, _)| *s == b.select) {
                        Some((_, ids)) => ids.push(b.id),
                        None => groups.push((b.select.clone(), vec![b.id])),
                    }
                }
                for (select, ids) in groups {
                    let data = cache
                        .entry((sub.role.clone(), select.clone()))
                        .or_insert_with(|| {
                            build_data(ch, meta, &sub.role, select.as_deref(), &converted[ci])
                        })
                        .clone();
                    let payload = json!({"ids": ids, "data": data});
                    let _ = sub.events.send(PgEvent::Change(Arc::new(payload)));
                }
            }
        }
    }

    /// What RLS decided for each `(change, sub)` pair that passed the filters; pairs not in
    /// the map were denied. Tables without RLS, deletes and 400/401 errors are not checked.
    async fn rls(
        &mut self,
        changes: &[WalChange],
        subs: &[Arc<Subscription>],
        filtered: &[Vec<(usize, usize)>],
        metas: &HashMap<(String, String), TableMeta>,
    ) -> HashMap<(usize, usize), Access> {
        let mut access = HashMap::new();
        // (table, role, claims) → (changes to check, pairs waiting for the answer).
        type Group = (Vec<usize>, Vec<(usize, usize)>);
        let mut checks: HashMap<(String, String, String, String), Group> = HashMap::new();
        for (ci, cands) in filtered.iter().enumerate().filter(|(_, c)| !c.is_empty()) {
            let ch = &changes[ci];
            let meta = &metas[&(ch.schema.clone(), ch.table.clone())];
            for &(si, _) in cands {
                let sub = &subs[si];
                let checked = meta.rls
                    && ch.action != Action::Delete
                    && pk_error(ch, meta, &sub.role).is_none();
                if !checked {
                    access.insert((ci, si), Access::Visible);
                    continue;
                }
                let k = (
                    ch.schema.clone(),
                    ch.table.clone(),
                    sub.role.clone(),
                    sub.claims.clone(),
                );
                let (cis, pairs) = checks.entry(k).or_default();
                if cis.last() != Some(&ci) {
                    cis.push(ci);
                }
                pairs.push((ci, si));
            }
        }
        for ((schema, table, role, claims), (cis, pairs)) in checks {
            match self
                .visible_rows(&schema, &table, &role, &claims, changes, &cis)
                .await
            {
                Ok(ok) => {
                    for pair in pairs.into_iter().filter(|(ci, _)| ok.contains(ci)) {
                        access.insert(pair, Access::Visible);
                    }
                }
                Err(e) => {
                    eprintln!(
                        "supa-realtime-server: postgres changes: RLS check on {schema}.{table} for role {role} failed: {e}"
                    );
                    for pair in pairs {
                        access.insert(pair, Access::Failed);
                    }
                }
            }
        }
        access
    }

    /// Runs the subscriber's SELECT on the rows' primary keys as its role and claims.
    async fn visible_rows(
        &mut self,
        schema: &str,
        table: &str,
        role: &str,
        claims: &str,
        changes: &[WalChange],
        cis: &[usize],
    ) -> Result<HashSet<usize>, String> {
        let pk = &changes[cis[0]].pk;
        let mut arrays: Vec<Vec<Option<String>>> = vec![vec![]; pk.len()];
        let mut conds = vec![];
        for (i, name) in pk.iter().enumerate() {
            let oid = changes[cis[0]]
                .columns
                .iter()
                .find(|c| &c.name == name)
                .map(|c| c.type_oid)
                .unwrap_or(25);
            let ty = self
                .types
                .get(oid)
                .map(|t| t.sql.clone())
                .unwrap_or_else(|| "text".into());
            conds.push(format!("t.{} = x.p{i}::{ty}", quote_ident(name)));
            for &ci in cis {
                let v = changes[ci]
                    .columns
                    .iter()
                    .find(|c| &c.name == name)
                    .and_then(WalColumn::text);
                arrays[i].push(v);
            }
        }
        let sql = format!(
            "select x.ord from unnest({}) with ordinality as x({}, ord) where exists (select 1 from {}.{} t where {})",
            (1..=pk.len()).map(|i| format!("${i}::text[]")).collect::<Vec<_>>().join(", "),
            (0..pk.len()).map(|i| format!("p{i}")).collect::<Vec<_>>().join(", "),
            quote_ident(schema),
            quote_ident(table),
            conds.join(" and ")
        );
        let tx = self
            .client
            .transaction()
            .await
            .map_err(|e| db::message(&e))?;
        tx.execute(
            "select set_config('role', $1, true), set_config('request.jwt.claims', $2, true)",
            &[&role, &claims],
        )
        .await
        .map_err(|e| db::message(&e))?;
        let refs: Vec<&(dyn ToSql + Sync)> =
            arrays.iter().map(|a| a as &(dyn ToSql + Sync)).collect();
        let rows = tx.query(&sql, &refs).await.map_err(|e| db::message(&e))?;
        tx.rollback().await.map_err(|e| db::message(&e))?;
        Ok(rows
            .iter()
            .map(|r| cis[(r.get::<_, i64>(0) - 1) as usize])
            .collect())
    }

    /// Typed values of every change that will be delivered: `[new tuple, old identity]`.
    async fn convert(
        &mut self,
        changes: &[WalChange],
        filtered: &[Vec<(usize, usize)>],
    ) -> Vec<[Vec<Value>; 2]> {
        let mut out: Vec<[Vec<Value>; 2]> = Vec::with_capacity(changes.len());
        // type oid → (slots to fill, texts)
        let mut remote: HashMap<u32, RemoteValues> = HashMap::new();
        for (ci, ch) in changes.iter().enumerate() {
            let mut tuples: [Vec<Value>; 2] = [vec![], vec![]];
            if !filtered[ci].is_empty() {
                for (ti, cols) in [&ch.columns, &ch.identity].into_iter().enumerate() {
                    for (k, c) in cols.iter().enumerate() {
                        let info = self.types.get(c.type_oid).map(|t| t.as_ref());
                        match values::convert_local(c.type_oid, info, &c.value) {
                            Some(v) => tuples[ti].push(v),
                            None => {
                                tuples[ti].push(Value::Null);
                                let e = remote.entry(c.type_oid).or_default();
                                e.0.push((ci, ti, k));
                                e.1.push(c.text());
                            }
                        }
                    }
                }
            }
            out.push(tuples);
        }
        for (oid, (slots, texts)) in remote {
            let Some(info) = self.types.get(oid).cloned() else {
                continue;
            };
            let vals = match values::convert_remote(&self.client, &info.sql, &texts).await {
                Ok(vals) => vals,
                Err(e) => {
                    eprintln!(
                        "supa-realtime-server: postgres changes: converting {} values failed: {e}",
                        info.sql
                    );
                    continue;
                }
            };
            for ((ci, ti, k), v) in slots.into_iter().zip(vals) {
                out[ci][ti][k] = v;
            }
        }
        out
    }
}

/// Values PostgreSQL converts for one type: `(change, tuple, column)` slots and their texts.
type RemoteValues = (Vec<(usize, usize, usize)>, Vec<Option<String>>);

/// Catalog facts about one table, for one batch.
struct TableMeta {
    rls: bool,
    /// `(name, typname)` in attribute order.
    columns: Vec<(String, String)>,
    /// role → columns it may SELECT.
    selectable: HashMap<String, HashSet<String>>,
}

impl TableMeta {
    async fn load(
        client: &Client,
        (schema, table): &(String, String),
        roles: HashSet<&str>,
    ) -> Result<TableMeta, String> {
        let rel = format!("{}.{}", quote_ident(schema), quote_ident(table));
        let row = client
            .query_one(
                "select c.relrowsecurity, \
                   coalesce(array_agg(a.attname::text order by a.attnum) filter (where a.attnum > 0), '{}'), \
                   coalesce(array_agg(t.typname::text order by a.attnum) filter (where a.attnum > 0), '{}') \
                 from pg_class c \
                 left join pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped \
                 left join pg_type t on t.oid = a.atttypid \
                 where c.oid = $1::text::regclass group by c.relrowsecurity",
                &[&rel],
            )
            .await
            .map_err(|e| db::message(&e))?;
        let names: Vec<String> = row.get(1);
        let types: Vec<String> = row.get(2);
        let mut selectable = HashMap::new();
        for role in roles {
            let rows = client
                .query(
                    "select a.attname::text from pg_attribute a where a.attrelid = $1::text::regclass \
                     and a.attnum > 0 and not a.attisdropped \
                     and has_column_privilege($2::text, a.attrelid, a.attname, 'SELECT')",
                    &[&rel, &role],
                )
                .await;
            let set = match rows {
                Ok(rows) => rows.iter().map(|r| r.get(0)).collect(),
                Err(_) => HashSet::new(), // e.g. the role was dropped: sees nothing
            };
            selectable.insert(role.to_string(), set);
        }
        Ok(TableMeta {
            rls: row.get(0),
            columns: names.into_iter().zip(types).collect(),
            selectable,
        })
    }

    fn can_select(&self, role: &str, column: &str) -> bool {
        self.selectable
            .get(role)
            .is_some_and(|s| s.contains(column))
    }
}

/// The 400/401 error of an INSERT/UPDATE for `role` (`""`: only the role-independent 400).
fn pk_error(ch: &WalChange, meta: &TableMeta, role: &str) -> Option<&'static str> {
    if ch.action == Action::Delete {
        return None;
    }
    if ch.pk.is_empty() {
        return Some("Error 400: Bad Request, no primary key");
    }
    if !role.is_empty() && !ch.pk.iter().all(|p| meta.can_select(role, p)) {
        return Some("Error 401: Unauthorized");
    }
    None
}

/// Whether a subscriber may see a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    Visible,
    /// The policy raised an error: the subscriber gets an error 500 without the record.
    Failed,
}

/// The fields every `data` object starts with, in the wire order of §6.1.
fn data_header(ch: &WalChange) -> Map<String, Value> {
    let mut data = Map::new();
    data.insert("schema".into(), json!(ch.schema));
    data.insert("table".into(), json!(ch.table));
    data.insert("type".into(), json!(ch.action.name()));
    data.insert(
        "commit_timestamp".into(),
        json!(commit_timestamp(&ch.timestamp)),
    );
    data
}

/// A `data` object that reports an error instead of the record.
fn error_data(ch: &WalChange, error: &str) -> Value {
    let mut data = data_header(ch);
    data.insert("columns".into(), json!([]));
    if ch.action != Action::Delete {
        data.insert("record".into(), json!({}));
    }
    if ch.action != Action::Insert {
        data.insert("old_record".into(), json!({}));
    }
    data.insert("errors".into(), json!([error]));
    Value::Object(data)
}

/// The `data` object of a change as one role (and column selection) sees it.
fn build_data(
    ch: &WalChange,
    meta: &TableMeta,
    role: &str,
    select: Option<&[String]>,
    typed: &[Vec<Value>; 2],
) -> Value {
    if let Some(err) = pk_error(ch, meta, role) {
        return error_data(ch, err);
    }
    let mut data = data_header(ch);
    let is_pk = |n: &str| ch.pk.iter().any(|p| p == n);
    let wanted = |n: &str| {
        meta.can_select(role, n) && (select.is_none_or(|s| s.iter().any(|c| c == n)) || is_pk(n))
    };
    let too_large = ch.size > MAX_RECORD_BYTES;
    let small = |v: &Value| !too_large || v.to_string().len() <= 64;
    let columns: Vec<Value> = meta
        .columns
        .iter()
        .filter(|(n, _)| wanted(n))
        .map(|(n, t)| json!({"name": n, "type": t}))
        .collect();
    data.insert("columns".into(), Value::Array(columns));
    let object = |cols: &[WalColumn], vals: &[Value], extra: &dyn Fn(&str) -> bool| -> Value {
        let map: Map<String, Value> = cols
            .iter()
            .zip(vals)
            .filter(|(c, v)| wanted(&c.name) && extra(&c.name) && small(v))
            .map(|(c, v)| (c.name.clone(), v.clone()))
            .collect();
        if map.is_empty() {
            Value::Null
        } else {
            Value::Object(map)
        }
    };
    let any = |_: &str| true;
    if ch.action != Action::Delete {
        let mut record = match object(&ch.columns, &typed[0], &any) {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        // Unchanged TOASTed columns are not in the new tuple: take them from the old one.
        for (c, v) in ch.identity.iter().zip(&typed[1]) {
            if !ch.columns.iter().any(|n| n.name == c.name) && wanted(&c.name) && small(v) {
                record.insert(c.name.clone(), v.clone());
            }
        }
        data.insert("record".into(), Value::Object(record));
    }
    if ch.action == Action::Update {
        data.insert("old_record".into(), object(&ch.identity, &typed[1], &any));
    }
    if ch.action == Action::Delete {
        // Deletes cannot be RLS-checked: on RLS tables only the primary key is sent.
        let pk_only = |n: &str| !meta.rls || is_pk(n);
        data.insert(
            "old_record".into(),
            object(&ch.identity, &typed[1], &pk_only),
        );
    }
    data.insert(
        "errors".into(),
        if too_large {
            json!(["Error 413: Payload Too Large"])
        } else {
            Value::Null
        },
    );
    Value::Object(data)
}

/// Quotes an identifier for SQL.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
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
