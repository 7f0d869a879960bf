//! Turns a batch of committed changes into each subscriber's `postgres_changes` payloads, in
//! commit order: filters and RLS are evaluated inside PostgreSQL once per batch and table
//! (per claims for RLS), so a burst of thousands of rows costs a few queries.
//!
//! Every query runs on the fan-out's own connection, never on the one that reads the changes,
//! with the statement timeout set; the queries of a batch are pipelined. A query that fails
//! through a subscriber's own parameters (a filter that no longer casts after a column type
//! change, a regex that times out, a policy that raises on its claims) drops that subscription
//! with a `system` error; everybody else gets the batch. A failed connection is reported to
//! the caller before anything is sent, so the whole batch can be tried again.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use serde_json::{json, Map, Value};
use tokio_postgres::{Client, Config, Statement};

use super::change::{Action, Change, Column};
use super::filter::{self, Outcome, TypedCondition};
use super::rls;
use super::subscriptions::{exception_message, Registry, Subscription};
use super::values::{self, Types};
use super::{db, PgEvent};

/// `poll_max_record_bytes`: larger records only keep values of at most 64 bytes.
const MAX_RECORD_BYTES: usize = 1024 * 1024;

/// The fan-out's connection and what it knows about types.
pub struct Fanout {
    config: Config,
    statement_timeout: Duration,
    conn: Option<Arc<Conn>>,
    types: Types,
}

/// The fan-out's connection and its prepared catalog query.
struct Conn {
    client: Client,
    meta: Statement,
}

/// Catalog facts about one table, for one batch.
struct TableMeta {
    rls: bool,
    /// `(name, typname)` in attribute order.
    columns: Vec<(String, String)>,
    /// `(name, format_type)` of the primary key columns, in key order.
    pk: Vec<(String, String)>,
    /// role → columns it may SELECT.
    selectable: HashMap<String, HashSet<String>>,
}

type TableKey = (String, String);

impl Fanout {
    pub fn new(config: Config, statement_timeout: Duration) -> Fanout {
        Fanout {
            config,
            statement_timeout,
            conn: None,
            types: Types::default(),
        }
    }

    /// The connection, opened (with the RLS helper and the catalog query) when needed.
    async fn connection(&mut self) -> Result<Arc<Conn>, String> {
        if let Some(conn) = &self.conn {
            if !conn.client.is_closed() {
                return Ok(Arc::clone(conn));
            }
        }
        self.conn = None;
        let fail = |e: tokio_postgres::Error| db::message(&e);
        let client = db::open(&self.config, Some(self.statement_timeout))
            .await
            .map_err(fail)?;
        // Named apart from the short request/response connections, for operators.
        client
            .batch_execute("set application_name = 'supa-realtime-server/changes'")
            .await
            .map_err(fail)?;
        rls::install(&client).await.map_err(fail)?;
        let meta = client.prepare(META_SQL).await.map_err(fail)?;
        let conn = Arc::new(Conn { client, meta });
        self.conn = Some(Arc::clone(&conn));
        Ok(conn)
    }

    /// Delivers `changes` to the matching subscribers. `Err`: the database connection failed
    /// and nothing was sent or dropped; call again with the same batch.
    pub async fn deliver(&mut self, registry: &Registry, changes: &[Change]) -> Result<(), String> {
        let subs = registry.snapshot();
        if changes.is_empty() || subs.is_empty() {
            return Ok(());
        }
        let result = self.deliver_to(registry, &subs, changes).await;
        if result.is_err() {
            // Whatever failed, the next try starts on a fresh connection.
            self.conn = None;
        }
        result
    }

    async fn deliver_to(
        &mut self,
        registry: &Registry,
        subs: &[(u64, Arc<Subscription>)],
        changes: &[Change],
    ) -> Result<(), String> {
        // Candidates: (sub, binding) per change, matching table and action.
        let mut candidates: Vec<Vec<(usize, usize)>> = vec![vec![]; changes.len()];
        let mut by_table: HashMap<TableKey, Vec<usize>> = HashMap::new();
        for (ci, ch) in changes.iter().enumerate() {
            let key = (ch.schema.clone(), ch.table.clone());
            for (si, (_, sub)) in subs.iter().enumerate() {
                for (bi, b) in sub.bindings.iter().enumerate() {
                    if b.tables.contains_key(&key) && b.action.is_none_or(|a| a == ch.action) {
                        candidates[ci].push((si, bi));
                    }
                }
            }
            if !candidates[ci].is_empty() {
                by_table.entry(key).or_default().push(ci);
            }
        }
        if by_table.is_empty() {
            return Ok(());
        }
        let conn = self.connection().await?;
        let (client, meta_stmt) = (&conn.client, &conn.meta);
        let oids: Vec<u32> = changes
            .iter()
            .flat_map(|c| c.columns.iter().chain(&c.identity))
            .map(|c| c.type_oid)
            .collect();
        if let Err(e) = self.types.load(client, oids).await {
            if client.is_closed() {
                return Err(e);
            }
            // Values of unknown types are then sent as null rather than losing the batch.
            eprintln!("supa-realtime-server: postgres changes: loading types failed: {e}");
        }

        let tables: Vec<&TableKey> = by_table.keys().collect();
        let metas = load_metas(client, meta_stmt, &tables, &by_table, &candidates, subs).await?;
        let evaluated =
            evaluate_filters(client, &tables, &by_table, &candidates, subs, changes).await?;

        // Subscriptions whose own parameters made a query fail: key → message.
        let mut failed: HashMap<usize, String> = HashMap::new();
        for (key, (conds, outcomes)) in &evaluated {
            for (cond, outcome) in conds.iter().zip(outcomes) {
                let Outcome::Failed(error) = outcome else {
                    continue;
                };
                for (si, (_, sub)) in subs.iter().enumerate() {
                    if let Some(b) = sub
                        .bindings
                        .iter()
                        .find(|b| b.tables.get(key).is_some_and(|cs| cs.contains(cond)))
                    {
                        failed
                            .entry(si)
                            .or_insert_with(|| exception_message(&b.log, error));
                    }
                }
            }
        }

        // Where each change is in its table's rows, and each condition in its table's list.
        let mut row_of = vec![0; changes.len()];
        for idxs in by_table.values() {
            for (pos, &ci) in idxs.iter().enumerate() {
                row_of[ci] = pos;
            }
        }
        let cond_index: HashMap<&TableKey, HashMap<&TypedCondition, usize>> = evaluated
            .iter()
            .map(|(key, (conds, _))| (key, conds.iter().enumerate().map(|(i, c)| (c, i)).collect()))
            .collect();
        let filtered: Vec<Vec<(usize, usize)>> = candidates
            .iter()
            .enumerate()
            .map(|(ci, cands)| {
                let ch = &changes[ci];
                let key = (ch.schema.clone(), ch.table.clone());
                let Some(meta) = metas.get(&key) else {
                    return vec![];
                };
                // Errors 400 go to every candidate, as upstream.
                let no_pk = ch.action != Action::Delete && meta.pk.is_empty();
                let outcomes = &evaluated[&key].1;
                let index = &cond_index[&key];
                let passes = |c: &TypedCondition| match index.get(c).map(|&i| &outcomes[i]) {
                    Some(Outcome::Rows(rows)) => rows[row_of[ci]],
                    _ => false,
                };
                cands
                    .iter()
                    .copied()
                    .filter(|(si, bi)| {
                        !failed.contains_key(si)
                            && (no_pk || subs[*si].1.bindings[*bi].tables[&key].iter().all(passes))
                    })
                    .collect()
            })
            .collect();

        let access = rls_access(client, changes, subs, &filtered, &metas, &mut failed).await?;
        let converted = self.convert(client, changes, &filtered).await?;

        for (&si, message) in &failed {
            registry.fail(subs[si].0, message.clone());
        }

        // Build and send, change by change, in commit order.
        for (ci, ch) in changes.iter().enumerate() {
            let key = (ch.schema.clone(), ch.table.clone());
            let Some(meta) = metas.get(&key) else {
                continue;
            };
            let mut per_sub: Vec<(usize, Vec<usize>)> = vec![];
            for &(si, bi) in &filtered[ci] {
                if failed.contains_key(&si) || !access.contains(&(ci, si)) {
                    continue;
                }
                match per_sub.iter_mut().find(|(s, _)| *s == si) {
                    Some((_, bs)) => bs.push(bi),
                    None => per_sub.push((si, vec![bi])),
                }
            }
            let mut cache: HashMap<(String, Option<Vec<String>>), Value> = HashMap::new();
            for (si, bis) in per_sub {
                let sub = &subs[si].1;
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
        Ok(())
    }

    /// Typed values of every change that will be delivered: `[new tuple, old identity]`.
    async fn convert(
        &mut self,
        client: &Client,
        changes: &[Change],
        filtered: &[Vec<(usize, usize)>],
    ) -> Result<Vec<[Vec<Value>; 2]>, String> {
        let mut out: Vec<[Vec<Value>; 2]> = Vec::with_capacity(changes.len());
        // type oid → (slots to fill, texts)
        let mut remote: HashMap<u32, RemoteValues> = HashMap::new();
        for (ci, ch) in changes.iter().enumerate() {
            let mut tuples: [Vec<Value>; 2] = [vec![], vec![]];
            if !filtered[ci].is_empty() {
                for (ti, cols) in [&ch.columns, &ch.identity].into_iter().enumerate() {
                    for (k, c) in cols.iter().enumerate() {
                        let info = self.types.get(c.type_oid).map(|t| t.as_ref());
                        match values::convert_local(c, info) {
                            Some(v) => tuples[ti].push(v),
                            None => {
                                tuples[ti].push(Value::Null);
                                let e = remote.entry(c.type_oid).or_default();
                                e.0.push((ci, ti, k));
                                e.1.push(c.value.clone());
                            }
                        }
                    }
                }
            }
            out.push(tuples);
        }
        let jobs: Vec<(u32, RemoteValues, Arc<values::TypeInfo>)> = remote
            .into_iter()
            .filter_map(|(oid, v)| self.types.get(oid).cloned().map(|info| (oid, v, info)))
            .collect();
        let results = join_all(
            jobs.iter()
                .map(|(_, (_, texts), info)| values::convert_remote(client, &info.sql, texts)),
        )
        .await;
        for ((_, (slots, _), info), result) in jobs.into_iter().zip(results) {
            match result {
                Ok(vals) => {
                    for ((ci, ti, k), v) in slots.into_iter().zip(vals) {
                        out[ci][ti][k] = v;
                    }
                }
                Err(e) if client.is_closed() => return Err(e),
                Err(e) => eprintln!(
                    "supa-realtime-server: postgres changes: converting {} values failed: {e}",
                    info.sql
                ),
            }
        }
        Ok(out)
    }
}

/// Values PostgreSQL converts for one type: `(change, tuple, column)` slots and their texts.
type RemoteValues = (Vec<(usize, usize, usize)>, Vec<Option<String>>);

/// One query per table: RLS on or off, columns and their types, the primary key, and which
/// columns each of the given roles may SELECT (`"<role index>:<column>"`).
const META_SQL: &str = "select c.relrowsecurity, \
   array(select a.attname::text from pg_attribute a \
         where a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped order by a.attnum), \
   array(select t.typname::text from pg_attribute a join pg_type t on t.oid = a.atttypid \
         where a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped order by a.attnum), \
   array(select a.attname::text from pg_index i join pg_attribute a \
           on a.attrelid = i.indrelid and a.attnum = any(i.indkey) \
         where i.indrelid = c.oid and i.indisprimary \
         order by array_position(i.indkey::int2[], a.attnum)), \
   array(select format_type(a.atttypid, null) from pg_index i join pg_attribute a \
           on a.attrelid = i.indrelid and a.attnum = any(i.indkey) \
         where i.indrelid = c.oid and i.indisprimary \
         order by array_position(i.indkey::int2[], a.attnum)), \
   array(select x.i::text || ':' || a.attname \
         from unnest($2::text[]) with ordinality x(role, i) \
         join pg_roles r on r.rolname = x.role \
         join pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped \
         where has_column_privilege(r.oid, c.oid, a.attnum, 'SELECT')) \
 from pg_class c where c.oid = $1::text::regclass";

async fn load_metas(
    client: &Client,
    stmt: &Statement,
    tables: &[&TableKey],
    by_table: &HashMap<TableKey, Vec<usize>>,
    candidates: &[Vec<(usize, usize)>],
    subs: &[(u64, Arc<Subscription>)],
) -> Result<HashMap<TableKey, TableMeta>, String> {
    let loads = tables.iter().map(|key| {
        let mut roles: Vec<&str> = by_table[*key]
            .iter()
            .flat_map(|&ci| candidates[ci].iter())
            .map(|&(si, _)| subs[si].1.role.as_str())
            .collect();
        roles.sort_unstable();
        roles.dedup();
        let rel = format!(
            "{}.{}",
            super::quote_ident(&key.0),
            super::quote_ident(&key.1)
        );
        async move {
            let row = client.query_one(stmt, &[&rel, &roles]).await?;
            let names: Vec<String> = row.get(1);
            let types: Vec<String> = row.get(2);
            let pk_names: Vec<String> = row.get(3);
            let pk_types: Vec<String> = row.get(4);
            let mut selectable: HashMap<String, HashSet<String>> = roles
                .iter()
                .map(|r| (r.to_string(), HashSet::new()))
                .collect();
            for entry in row.get::<_, Vec<String>>(5) {
                if let Some((i, col)) = entry.split_once(':') {
                    if let Some(role) = i.parse::<usize>().ok().and_then(|i| roles.get(i - 1)) {
                        selectable
                            .entry(role.to_string())
                            .or_default()
                            .insert(col.to_string());
                    }
                }
            }
            Ok::<_, tokio_postgres::Error>(TableMeta {
                rls: row.get(0),
                columns: names.into_iter().zip(types).collect(),
                pk: pk_names.into_iter().zip(pk_types).collect(),
                selectable,
            })
        }
    });
    let mut metas = HashMap::new();
    for (key, result) in tables.iter().zip(join_all(loads).await) {
        match result {
            Ok(meta) => {
                metas.insert((*key).clone(), meta);
            }
            Err(e) if db::is_transient(&e) => return Err(db::message(&e)),
            // E.g. the table was dropped meanwhile: its changes are skipped, others go on.
            Err(e) => eprintln!(
                "supa-realtime-server: postgres changes: skipping changes of {}.{}: {}",
                key.0,
                key.1,
                db::message(&e)
            ),
        }
    }
    Ok(metas)
}

/// Per table: its distinct conditions and their outcomes over the table's changes (in
/// `by_table` order).
type Evaluated = HashMap<TableKey, (Vec<TypedCondition>, Vec<Outcome>)>;

async fn evaluate_filters(
    client: &Client,
    tables: &[&TableKey],
    by_table: &HashMap<TableKey, Vec<usize>>,
    candidates: &[Vec<(usize, usize)>],
    subs: &[(u64, Arc<Subscription>)],
    changes: &[Change],
) -> Result<Evaluated, String> {
    let mut work = vec![];
    for key in tables {
        let idxs = &by_table[*key];
        let conds: Vec<TypedCondition> = idxs
            .iter()
            .flat_map(|&ci| candidates[ci].iter())
            .flat_map(|&(si, bi)| subs[si].1.bindings[bi].tables[*key].iter().cloned())
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let rows: Vec<HashMap<&str, Option<String>>> = idxs
            .iter()
            .map(|&ci| {
                changes[ci]
                    .filter_tuple()
                    .iter()
                    .map(|c: &Column| (c.name.as_str(), c.value.clone()))
                    .collect()
            })
            .collect();
        work.push(((*key).clone(), conds, rows));
    }
    let results = join_all(work.iter().map(|(_, conds, rows)| async move {
        if conds.is_empty() {
            Ok(vec![])
        } else {
            filter::evaluate(client, conds, rows).await
        }
    }))
    .await;
    let mut out = HashMap::new();
    for ((key, conds, _), result) in work.into_iter().zip(results) {
        out.insert(key, (conds, result?));
    }
    Ok(out)
}

/// The `(change, sub)` pairs RLS lets through; tables without RLS, deletes and 400/401 errors
/// are not checked. A check that fails marks its subscriptions in `failed`.
async fn rls_access(
    client: &Client,
    changes: &[Change],
    subs: &[(u64, Arc<Subscription>)],
    filtered: &[Vec<(usize, usize)>],
    metas: &HashMap<TableKey, TableMeta>,
    failed: &mut HashMap<usize, String>,
) -> Result<HashSet<(usize, usize)>, String> {
    let mut access = HashSet::new();
    // (table, role, claims) → (changes to check, pairs waiting for the answer).
    type Group = (Vec<usize>, Vec<(usize, usize)>);
    let mut groups: HashMap<(TableKey, &str, &str), Group> = HashMap::new();
    for (ci, pairs) in filtered.iter().enumerate() {
        let ch = &changes[ci];
        let key = (ch.schema.clone(), ch.table.clone());
        for &(si, _) in pairs {
            let Some(meta) = metas.get(&key) else {
                continue;
            };
            let sub = &subs[si].1;
            if !meta.rls || ch.action == Action::Delete || pk_error(meta, &sub.role).is_some() {
                access.insert((ci, si));
                continue;
            }
            let (cis, waiting) = groups
                .entry((key.clone(), sub.role.as_str(), sub.claims.as_str()))
                .or_default();
            if cis.last() != Some(&ci) {
                cis.push(ci);
            }
            waiting.push((ci, si));
        }
    }
    let groups: Vec<_> = groups.into_iter().collect();
    let checks: Vec<rls::Check> = groups
        .iter()
        .map(|((key, role, claims), (cis, _))| {
            let meta = &metas[key];
            rls::Check {
                schema: &key.0,
                table: &key.1,
                role,
                claims,
                pk: &meta.pk,
                keys: cis
                    .iter()
                    .map(|&ci| {
                        meta.pk
                            .iter()
                            .map(|(name, _)| {
                                changes[ci]
                                    .columns
                                    .iter()
                                    .find(|c| &c.name == name)
                                    .and_then(|c| c.value.clone())
                            })
                            .collect()
                    })
                    .collect(),
            }
        })
        .collect();
    let results = rls::visible(client, &checks).await?;
    for (((key, _, _), (cis, waiting)), result) in groups.iter().zip(results) {
        match result {
            Ok(visible) => {
                let visible: HashSet<usize> = visible.into_iter().map(|i| cis[i]).collect();
                access.extend(waiting.iter().filter(|(ci, _)| visible.contains(ci)));
            }
            Err(error) => {
                for &(_, si) in waiting {
                    failed.entry(si).or_insert_with(|| {
                        let log = subs[si]
                            .1
                            .bindings
                            .iter()
                            .find(|b| b.tables.contains_key(key))
                            .map_or("", |b| b.log.as_str());
                        exception_message(log, &error)
                    });
                }
            }
        }
    }
    Ok(access)
}

/// The 400/401 error of an INSERT/UPDATE for `role` (`""`: only the role-independent 400).
fn pk_error(meta: &TableMeta, role: &str) -> Option<&'static str> {
    if meta.pk.is_empty() {
        return Some("Error 400: Bad Request, no primary key");
    }
    if !role.is_empty() && !meta.pk.iter().all(|(p, _)| meta.can_select(role, p)) {
        return Some("Error 401: Unauthorized");
    }
    None
}

impl TableMeta {
    fn can_select(&self, role: &str, column: &str) -> bool {
        self.selectable
            .get(role)
            .is_some_and(|s| s.contains(column))
    }

    fn is_pk(&self, column: &str) -> bool {
        self.pk.iter().any(|(p, _)| p == column)
    }
}

/// The fields every `data` object starts with, in the wire order of §6.1.
fn data_header(ch: &Change) -> Map<String, Value> {
    let mut data = Map::new();
    data.insert("schema".into(), json!(ch.schema));
    data.insert("table".into(), json!(ch.table));
    data.insert("type".into(), json!(ch.action.name()));
    data.insert("commit_timestamp".into(), json!(ch.commit_timestamp));
    data
}

/// A `data` object that reports an error instead of the record.
fn error_data(ch: &Change, error: &str) -> Value {
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
    ch: &Change,
    meta: &TableMeta,
    role: &str,
    select: Option<&[String]>,
    typed: &[Vec<Value>; 2],
) -> Value {
    if ch.action != Action::Delete {
        if let Some(err) = pk_error(meta, role) {
            return error_data(ch, err);
        }
    }
    let mut data = data_header(ch);
    let wanted = |n: &str| {
        meta.can_select(role, n)
            && (select.is_none_or(|s| s.iter().any(|c| c == n)) || meta.is_pk(n))
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
    let object = |cols: &[Column], vals: &[Value], extra: &dyn Fn(&str) -> bool| -> Value {
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
        let pk_only = |n: &str| !meta.rls || meta.is_pk(n);
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
