//! Filter conditions compiled to SQL and evaluated inside PostgreSQL, so both sides are cast
//! to the column's type exactly as Supabase compares them. One query evaluates every distinct
//! condition of one table over a whole batch of changes.

use std::collections::HashMap;

use tokio_postgres::types::ToSql;
use tokio_postgres::Client;

use super::binding::Condition;
use super::db;

/// A condition bound to a column type.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TypedCondition {
    pub cond: Condition,
    /// `format_type` of the column.
    pub column_type: String,
}

/// Builds `sql` for one condition over `col` (already cast), pushing value parameters.
/// Parameters are numbered from `offset + 1`.
fn condition_sql(
    c: &TypedCondition,
    col: &str,
    params: &mut Vec<String>,
    offset: usize,
) -> Result<String, String> {
    let t = &c.column_type;
    let mut param = |v: &str| {
        params.push(v.to_string());
        format!("${}::text", offset + params.len())
    };
    let cmp = |op: &str, p: String| format!("{col} {op} {p}::{t}");
    let expr = match c.cond.op.as_str() {
        "eq" => cmp("=", param(&c.cond.value)),
        "neq" => cmp("<>", param(&c.cond.value)),
        "lt" => cmp("<", param(&c.cond.value)),
        "lte" => cmp("<=", param(&c.cond.value)),
        "gt" => cmp(">", param(&c.cond.value)),
        "gte" => cmp(">=", param(&c.cond.value)),
        "isdistinct" => cmp("is distinct from", param(&c.cond.value)),
        "in" => format!("{col} = any({}::{t}[])", param(&c.cond.value)),
        "like" => format!("{col} like {}", param(&c.cond.value)),
        "ilike" => format!("{col} ilike {}", param(&c.cond.value)),
        "match" => format!("{col} ~ {}", param(&c.cond.value)),
        "imatch" => format!("{col} ~* {}", param(&c.cond.value)),
        "is" => match c.cond.value.to_ascii_lowercase().as_str() {
            v @ ("null" | "true" | "false" | "unknown") => format!("{col} is {v}"),
            other => {
                return Err(db::raised(&format!(
                    "invalid value for `is` filter: {other}. Expected null, true, false or unknown"
                )))
            }
        },
        other => return Err(db::raised(&format!("unsupported filter operator {other}"))),
    };
    Ok(if c.cond.negate {
        format!("not ({expr})")
    } else {
        format!("({expr})")
    })
}

/// Checks a condition against the database once, at subscribe time: the value casts to the
/// column type, the operator exists for it, a regex compiles, an `in` list has ≤ 100 items.
pub async fn validate(client: &Client, c: &TypedCondition) -> Result<(), String> {
    let mut params = vec![];
    let expr = condition_sql(c, &format!("null::{}", c.column_type), &mut params, 0)?;
    let mut checks = vec![expr];
    if matches!(c.cond.op.as_str(), "match" | "imatch") {
        checks.push("(''::text ~ $1::text)".into());
    }
    if c.cond.op == "in" {
        checks.push(format!(
            "coalesce(cardinality($1::text::{}[]), 0) > 100",
            c.column_type
        ));
    }
    let sql = format!("select {}", checks.join(", "));
    let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p as &(dyn ToSql + Sync)).collect();
    let row = client
        .query_one(&sql, &refs)
        .await
        .map_err(|e| db::message(&e))?;
    if c.cond.op == "in" && row.get::<_, Option<bool>>(checks.len() - 1) == Some(true) {
        return Err(db::raised("too many values for `in` filter. Maximum 100"));
    }
    Ok(())
}

/// Evaluates `conditions` over rows given as text values per column name (`None` = SQL NULL);
/// `absent[row]` lists columns missing from that row's tuple, which never match.
/// Returns `result[row][condition]`.
pub async fn evaluate(
    client: &Client,
    conditions: &[TypedCondition],
    rows: &[HashMap<&str, Option<String>>],
) -> Result<Vec<Vec<bool>>, String> {
    let mut columns: Vec<&str> = conditions.iter().map(|c| c.cond.column.as_str()).collect();
    columns.sort_unstable();
    columns.dedup();
    // Row parameters come first: $1..$n are the column arrays, then condition values.
    let arrays: Vec<Vec<Option<String>>> = columns
        .iter()
        .map(|col| rows.iter().map(|r| r.get(col).cloned().flatten()).collect())
        .collect();
    let mut params: Vec<String> = vec![];
    let mut exprs = vec![];
    for c in conditions {
        let idx = columns
            .iter()
            .position(|n| *n == c.cond.column)
            .expect("collected above");
        let col = format!("r.a{idx}::{}", c.column_type);
        exprs.push(condition_sql(c, &col, &mut params, columns.len())?);
    }
    let names: Vec<String> = (0..columns.len()).map(|i| format!("a{i}")).collect();
    let sql = format!(
        "select {} from unnest({}) with ordinality as r({}, ord) order by ord",
        exprs.join(", "),
        (1..=columns.len())
            .map(|i| format!("${i}::text[]"))
            .collect::<Vec<_>>()
            .join(", "),
        names.join(", ")
    );
    let mut refs: Vec<&(dyn ToSql + Sync)> =
        arrays.iter().map(|a| a as &(dyn ToSql + Sync)).collect();
    refs.extend(params.iter().map(|p| p as &(dyn ToSql + Sync)));
    let result = client
        .query(&sql, &refs)
        .await
        .map_err(|e| db::message(&e))?;
    Ok(result
        .iter()
        .zip(rows)
        .map(|(r, row)| {
            conditions
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    row.contains_key(c.cond.column.as_str())
                        && r.get::<_, Option<bool>>(i) == Some(true)
                })
                .collect()
        })
        .collect())
}
