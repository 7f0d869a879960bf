//! Filter conditions compiled to SQL and evaluated inside PostgreSQL, so both sides are cast
//! to the column's type exactly as Supabase compares them (`realtime.check_equality_op`).
//!
//! Validation at subscribe time follows Supabase's `realtime.subscription_check_filters`
//! (same checks, same texts) and adds what it misses, so that nothing a client sends can make
//! a later query fail for reasons other than its own data: a LIKE pattern that ends with its
//! escape character is refused up front.
//!
//! Evaluation is chunked (PostgreSQL allows at most 1664 result columns per query) and every
//! pattern condition (`like`, `ilike`, `match`, `imatch`) runs in a query of its own, all
//! pipelined on one connection: a regex that hits the statement timeout costs the other
//! subscribers that timeout once, and the failing condition is known exactly.

use std::collections::{HashMap, HashSet};

use futures_util::future::join_all;
use tokio_postgres::types::ToSql;
use tokio_postgres::Client;

use super::binding::Condition;
use super::db;

/// A condition bound to a column type.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TypedCondition {
    pub cond: Condition,
    /// `format_type` of the column (`integer`, `text`, `character varying`, …).
    pub column_type: String,
}

impl TypedCondition {
    /// Pattern operators can be arbitrarily slow on hostile input: each runs alone.
    fn is_pattern(&self) -> bool {
        matches!(self.cond.op.as_str(), "like" | "ilike" | "match" | "imatch")
    }
}

/// Conditions per evaluation query: well below the 1664 result columns PostgreSQL allows
/// (and the 65535 parameters of a statement).
const CONDITIONS_PER_QUERY: usize = 500;
/// Rows per evaluation query, so that no single query's work grows with the batch.
const ROWS_PER_QUERY: usize = 1000;

/// Builds `sql` for one condition over `col` (already cast), pushing value parameters.
/// Parameters are numbered from `offset + 1`.
fn condition_sql(c: &TypedCondition, col: &str, params: &mut Vec<String>, offset: usize) -> String {
    let t = &c.column_type;
    let mut param = |v: &str| {
        params.push(v.to_string());
        format!("${}::text", offset + params.len())
    };
    let op = match c.cond.op.as_str() {
        "eq" => "=",
        "neq" => "<>",
        "lt" => "<",
        "lte" => "<=",
        "gt" => ">",
        "gte" => ">=",
        "like" => "like",
        "ilike" => "ilike",
        "match" => "~",
        "imatch" => "~*",
        "isdistinct" => "is distinct from",
        "in" => return wrap(c, format!("{col} = any({}::{t}[])", param(&c.cond.value))),
        // Validated: one of null, true, false, unknown.
        _ => return wrap(c, format!("{col} is {}", c.cond.value)),
    };
    wrap(c, format!("{col} {op} ({}::{t})", param(&c.cond.value)))
}

fn wrap(c: &TypedCondition, expr: String) -> String {
    if c.cond.negate {
        format!("not ({expr})")
    } else {
        format!("({expr})")
    }
}

/// Checks a condition once, at subscribe time, as Supabase does: the value casts to the
/// column type, `in` has at most 100 values, `is` takes a keyword (and a boolean column but
/// for `null`), pattern operators exist for the type and a regex compiles. A LIKE pattern
/// must not end with its escape character. `Err` is the exception text.
pub async fn validate(client: &Client, c: &TypedCondition) -> Result<(), String> {
    let t = &c.column_type;
    let value = &c.cond.value;
    let op = c.cond.op.as_str();
    let query = |sql: String| async move {
        client
            .query_one(&sql, &[value])
            .await
            .map_err(|e| db::message(&e))
    };
    match op {
        "in" => {
            let row = query(format!(
                "select coalesce(cardinality($1::text::{t}[]), 0) > 100"
            ))
            .await?;
            if row.get::<_, bool>(0) {
                return Err(db::raised("too many values for `in` filter. Maximum 100"));
            }
        }
        "is" => {
            if !matches!(value.as_str(), "null" | "true" | "false" | "unknown") {
                return Err(db::raised(
                    "invalid value for is filter: must be null, true, false, or unknown",
                ));
            }
            if value != "null" && t != "boolean" {
                return Err(db::raised(&format!(
                    "is {value} filter requires a boolean column, got {t}"
                )));
            }
        }
        "like" | "ilike" | "match" | "imatch" => {
            let regex = matches!(op, "match" | "imatch");
            let exists = client
                .query_one(
                    "select exists (select 1 from pg_catalog.pg_operator where oprname = $1 \
                     and oprleft = $2::text::regtype \
                     and ($3 is false or (oprright = $2::text::regtype and oprresult = 'boolean'::regtype)))",
                    &[
                        &match op {
                            "match" => "~",
                            "imatch" => "~*",
                            _ => "~~",
                        },
                        t,
                        &regex,
                    ],
                )
                .await
                .map_err(|e| db::message(&e))?
                .get::<_, bool>(0);
            if !exists {
                return Err(db::raised(&format!(
                    "operator {op} requires a text-compatible column type, got {t}"
                )));
            }
            if regex {
                if let Err(e) = client.query_one("select '' ~ $1::text", &[value]).await {
                    let text = e
                        .as_db_error()
                        .map_or_else(|| e.to_string(), |d| d.message().to_string());
                    return Err(db::raised(&format!(
                        "invalid regular expression for {op} filter: {text}"
                    )));
                }
            } else {
                if ends_with_escape(value) {
                    return Err(
                        "ERROR 22025 (invalid_escape_sequence) LIKE pattern must not end with escape character"
                            .into(),
                    );
                }
                query(format!("select $1::text::{t} {op} ($1::text::{t})")).await?;
            }
        }
        _ => {
            query(format!("select to_jsonb($1::text::{t})")).await?;
        }
    }
    Ok(())
}

/// The conditions whose only check is that their value casts to the column type (`eq`,
/// `neq`, `lt`, `lte`, `gt`, `gte`, `isdistinct`), checked with one query per type. Returns
/// those that passed; the others are left for [`validate`], which names the error.
pub async fn validate_casts(
    client: &Client,
    conditions: Vec<&TypedCondition>,
) -> HashSet<TypedCondition> {
    let mut by_type: HashMap<&str, Vec<&TypedCondition>> = HashMap::new();
    for c in conditions {
        if matches!(
            c.cond.op.as_str(),
            "eq" | "neq" | "lt" | "lte" | "gt" | "gte" | "isdistinct"
        ) {
            by_type.entry(&c.column_type).or_default().push(c);
        }
    }
    let mut ok = HashSet::new();
    for (t, conds) in by_type {
        let values: Vec<&str> = conds.iter().map(|c| c.cond.value.as_str()).collect();
        let sql = format!("select count(to_jsonb(v::{t})) from unnest($1::text[]) v");
        if client.query_one(&sql, &[&values]).await.is_ok() {
            ok.extend(conds.into_iter().cloned());
        }
    }
    ok
}

/// Whether a LIKE pattern ends with an unescaped backslash (PostgreSQL errors on it only when
/// matching reaches the end of the pattern, so trying it on one value proves nothing).
fn ends_with_escape(pattern: &str) -> bool {
    let mut escaped = false;
    for ch in pattern.chars() {
        escaped = !escaped && ch == '\\';
    }
    escaped
}

/// The result of one condition over a batch of rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Whether each row passes.
    Rows(Vec<bool>),
    /// The condition's query failed (its own fault: a cast, a timeout); the message says why.
    Failed(String),
}

/// Evaluates `conditions` over rows given as text values per column name (`None` = SQL NULL);
/// a column missing from a row never matches. `Err` only when the connection failed (retry).
pub async fn evaluate(
    client: &Client,
    conditions: &[TypedCondition],
    rows: &[HashMap<&str, Option<String>>],
) -> Result<Vec<Outcome>, String> {
    let mut groups: Vec<Vec<usize>> = vec![];
    let (patterns, plain): (Vec<usize>, Vec<usize>) =
        (0..conditions.len()).partition(|&i| conditions[i].is_pattern());
    groups.extend(patterns.into_iter().map(|i| vec![i]));
    groups.extend(plain.chunks(CONDITIONS_PER_QUERY).map(<[usize]>::to_vec));
    let mut outcomes: Vec<Option<Outcome>> = vec![None; conditions.len()];
    let mut retry_alone = vec![];
    let results = join_all(
        groups
            .iter()
            .map(|g| evaluate_group(client, conditions, g, rows)),
    )
    .await;
    for (group, result) in groups.iter().zip(results) {
        match result {
            Ok(per_condition) => {
                for (&i, rows) in group.iter().zip(per_condition) {
                    outcomes[i] = Some(Outcome::Rows(rows));
                }
            }
            Err(e) if e.transient => return Err(e.message),
            Err(e) if group.len() == 1 => outcomes[group[0]] = Some(Outcome::Failed(e.message)),
            // Some condition of the chunk failed: find which, each on its own.
            Err(_) => retry_alone.extend(group.iter().copied()),
        }
    }
    let results = join_all(
        retry_alone
            .iter()
            .map(|i| evaluate_group(client, conditions, std::slice::from_ref(i), rows)),
    )
    .await;
    for (&i, result) in retry_alone.iter().zip(results) {
        outcomes[i] = Some(match result {
            Ok(mut rows) => Outcome::Rows(rows.remove(0)),
            Err(e) if e.transient => return Err(e.message),
            Err(e) => Outcome::Failed(e.message),
        });
    }
    Ok(outcomes
        .into_iter()
        .map(|o| o.expect("every condition evaluated"))
        .collect())
}

/// A failed evaluation query.
struct QueryError {
    message: String,
    transient: bool,
}

impl From<tokio_postgres::Error> for QueryError {
    fn from(e: tokio_postgres::Error) -> QueryError {
        QueryError {
            message: db::message(&e),
            transient: db::is_transient(&e),
        }
    }
}

/// `result[condition][row]` for the conditions `group` of `conditions`, in row chunks.
async fn evaluate_group(
    client: &Client,
    conditions: &[TypedCondition],
    group: &[usize],
    rows: &[HashMap<&str, Option<String>>],
) -> Result<Vec<Vec<bool>>, QueryError> {
    let conds: Vec<&TypedCondition> = group.iter().map(|&i| &conditions[i]).collect();
    let mut columns: Vec<&str> = conds.iter().map(|c| c.cond.column.as_str()).collect();
    columns.sort_unstable();
    columns.dedup();
    // Row parameters come first: $1..$n are the column arrays, then condition values.
    let mut params: Vec<String> = vec![];
    let exprs: Vec<String> = conds
        .iter()
        .map(|c| {
            let idx = columns
                .iter()
                .position(|n| *n == c.cond.column)
                .expect("collected above");
            let col = format!("r.a{idx}::{}", c.column_type);
            condition_sql(c, &col, &mut params, columns.len())
        })
        .collect();
    let sql = format!(
        "select {} from unnest({}) with ordinality as r({}, ord) order by ord",
        exprs.join(", "),
        (1..=columns.len())
            .map(|i| format!("${i}::text[]"))
            .collect::<Vec<_>>()
            .join(", "),
        (0..columns.len())
            .map(|i| format!("a{i}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let statement = client.prepare(&sql).await?;
    let mut out = vec![Vec::with_capacity(rows.len()); conds.len()];
    for chunk in rows.chunks(ROWS_PER_QUERY) {
        let arrays: Vec<Vec<Option<&str>>> = columns
            .iter()
            .map(|col| {
                chunk
                    .iter()
                    .map(|r| r.get(col).and_then(|v| v.as_deref()))
                    .collect()
            })
            .collect();
        let mut refs: Vec<&(dyn ToSql + Sync)> =
            arrays.iter().map(|a| a as &(dyn ToSql + Sync)).collect();
        refs.extend(params.iter().map(|p| p as &(dyn ToSql + Sync)));
        let result = client.query(&statement, &refs).await?;
        for (r, row) in result.iter().zip(chunk) {
            for (i, c) in conds.iter().enumerate() {
                out[i].push(
                    row.contains_key(c.cond.column.as_str())
                        && r.get::<_, Option<bool>>(i) == Some(true),
                );
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_at_the_end() {
        assert!(ends_with_escape("%\\"));
        assert!(ends_with_escape("a\\\\\\"));
        assert!(!ends_with_escape("a\\\\"));
        assert!(!ends_with_escape("50\\%"));
        assert!(!ends_with_escape(""));
    }

    #[test]
    fn sql_casts_both_sides() {
        let c = |op: &str, value: &str, negate| TypedCondition {
            cond: Condition {
                column: "c".into(),
                op: op.into(),
                value: value.into(),
                negate,
            },
            column_type: "integer".into(),
        };
        let mut params = vec![];
        assert_eq!(
            condition_sql(&c("eq", "1", false), "x", &mut params, 2),
            "(x = ($3::text::integer))"
        );
        assert_eq!(
            condition_sql(&c("in", "{1,2}", true), "x", &mut params, 2),
            "not (x = any($4::text::integer[]))"
        );
        assert_eq!(
            condition_sql(&c("is", "null", false), "x", &mut params, 2),
            "(x is null)"
        );
        assert_eq!(params, ["1", "{1,2}"]);
    }
}
