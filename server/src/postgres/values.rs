//! Typed record values exactly as Supabase emits them: `to_jsonb(text::type)` of the value's
//! text. The common types are converted here; arrays, composites, domains and anything
//! unusual are converted by PostgreSQL itself, batched per type.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{json, Value};
use tokio_postgres::Client;

use super::change::Column;
use super::db;

/// What the catalog says about a type.
#[derive(Debug)]
pub struct TypeInfo {
    /// `format_type(oid, NULL)`: safe to splice into SQL casts.
    pub sql: String,
    category: u8,
    kind: u8,
}

/// Type information by oid, loaded on first sight and kept (type oids are not reused while a
/// type exists).
#[derive(Default)]
pub struct Types {
    by_oid: HashMap<u32, Arc<TypeInfo>>,
}

const BOOL: u32 = 16;
const BYTEA: u32 = 17;
const INT8: u32 = 20;
const INT2: u32 = 21;
const INT4: u32 = 23;
const FLOAT4: u32 = 700;
const FLOAT8: u32 = 701;
const NUMERIC: u32 = 1700;
const JSON: u32 = 114;
const JSONB: u32 = 3802;
const TIMESTAMP: u32 = 1114;
const TIMESTAMPTZ: u32 = 1184;

impl Types {
    pub async fn load(
        &mut self,
        client: &Client,
        oids: impl IntoIterator<Item = u32>,
    ) -> Result<(), String> {
        let mut missing: Vec<u32> = oids
            .into_iter()
            .filter(|o| !self.by_oid.contains_key(o))
            .collect();
        missing.sort_unstable();
        missing.dedup();
        if missing.is_empty() {
            return Ok(());
        }
        let rows = client
            .query(
                "select oid, format_type(oid, null), typcategory::text, typtype::text \
                 from pg_type where oid = any($1::oid[])",
                &[&missing],
            )
            .await
            .map_err(|e| db::message(&e))?;
        for r in rows {
            let byte = |i: usize| r.get::<_, String>(i).bytes().next().unwrap_or(b'X');
            self.by_oid.insert(
                r.get(0),
                Arc::new(TypeInfo {
                    sql: r.get(1),
                    category: byte(2),
                    kind: byte(3),
                }),
            );
        }
        Ok(())
    }

    pub fn get(&self, oid: u32) -> Option<&Arc<TypeInfo>> {
        self.by_oid.get(&oid)
    }
}

/// Converts one value locally as `to_jsonb(text::type)` would, or says (`None`) that
/// PostgreSQL must convert it.
pub fn convert_local(col: &Column, info: Option<&TypeInfo>) -> Option<Value> {
    let Some(text) = &col.value else {
        return Some(Value::Null);
    };
    match col.type_oid {
        // wal2json prints NaN and infinities as null, and Supabase passes that on.
        INT2 | INT4 | INT8 | FLOAT4 | FLOAT8 | NUMERIC => Some(
            serde_json::from_str::<serde_json::Number>(text)
                .map(Value::Number)
                .unwrap_or(Value::Null),
        ),
        BOOL => Some(Value::Bool(text == "t" || text == "true")),
        JSON | JSONB => Some(serde_json::from_str(text).unwrap_or_else(|_| json!(text))),
        BYTEA => Some(json!(text)),
        TIMESTAMPTZ => timestamptz(text).map(Value::String),
        TIMESTAMP => timestamp(text).map(Value::String),
        _ => {
            let info = info?;
            // Domains, arrays, composites and user-defined base types render differently in
            // JSON than as text; PostgreSQL converts those.
            let plain = info.kind != b'd' && !matches!(info.category, b'A' | b'C' | b'U' | b'X');
            plain.then(|| json!(text))
        }
    }
}

fn special(text: &str) -> bool {
    text.ends_with(" BC") || !text.starts_with(|c: char| c.is_ascii_digit())
}

/// `2026-08-01 10:15:30.12+00` → `2026-08-01T10:15:30.12+00:00`.
fn timestamptz(text: &str) -> Option<String> {
    if text == "infinity" || text == "-infinity" {
        return Some(text.to_string());
    }
    if special(text) {
        return None;
    }
    let iso = timestamp(text)?;
    let sign = iso.rfind(['+', '-']).filter(|&i| i > 10)?;
    let offset = &iso[sign + 1..];
    match offset.len() {
        2 => Some(format!("{iso}:00")),
        5 => Some(iso),
        _ => None,
    }
}

/// `2026-08-01 10:15:30.12` → `2026-08-01T10:15:30.12`.
fn timestamp(text: &str) -> Option<String> {
    if text == "infinity" || text == "-infinity" {
        return Some(text.to_string());
    }
    if special(text) || text.as_bytes().get(10) != Some(&b' ') {
        return None;
    }
    Some(format!("{}T{}", &text[..10], &text[11..]))
}

/// Converts the values PostgreSQL must convert: `(type sql, texts)` → JSON values in order.
pub async fn convert_remote(
    client: &Client,
    type_sql: &str,
    texts: &[Option<String>],
) -> Result<Vec<Value>, String> {
    let sql = format!(
        "select to_jsonb(v::{type_sql})::text from unnest($1::text[]) with ordinality as u(v, o) order by o"
    );
    let rows = client
        .query(&sql, &[&texts])
        .await
        .map_err(|e| db::message(&e))?;
    Ok(rows
        .iter()
        .map(|r| match r.get::<_, Option<String>>(0) {
            Some(t) => serde_json::from_str(&t).unwrap_or(Value::Null),
            None => Value::Null,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(type_oid: u32, value: Option<&str>) -> Column {
        Column {
            name: "c".into(),
            type_oid,
            value: value.map(str::to_string),
        }
    }

    #[test]
    fn local_values() {
        let conv = |oid, v| convert_local(&col(oid, v), None);
        assert_eq!(
            conv(INT8, Some("9007199254740993")),
            Some(json!(9007199254740993u64))
        );
        assert_eq!(conv(NUMERIC, Some("12.50")), Some(json!(12.5)));
        assert_eq!(conv(FLOAT8, Some("Infinity")), Some(Value::Null));
        assert_eq!(conv(NUMERIC, Some("NaN")), Some(Value::Null));
        assert_eq!(conv(BOOL, Some("t")), Some(json!(true)));
        assert_eq!(conv(BOOL, Some("false")), Some(json!(false)));
        assert_eq!(conv(JSONB, Some("{\"a\": [1]}")), Some(json!({"a": [1]})));
        assert_eq!(conv(INT4, None), Some(Value::Null));
        assert_eq!(
            conv(25, Some("x")),
            None,
            "unknown type info: PostgreSQL decides"
        );
    }

    #[test]
    fn timestamps() {
        assert_eq!(
            timestamptz("2026-08-01 10:15:30.12+00").unwrap(),
            "2026-08-01T10:15:30.12+00:00"
        );
        assert_eq!(
            timestamptz("2026-08-01 10:15:30+05:30").unwrap(),
            "2026-08-01T10:15:30+05:30"
        );
        assert_eq!(timestamptz("infinity").unwrap(), "infinity");
        assert!(timestamptz("0044-03-15 10:00:00+00 BC").is_none());
        assert_eq!(
            timestamp("2026-08-01 10:15:30").unwrap(),
            "2026-08-01T10:15:30"
        );
    }
}
