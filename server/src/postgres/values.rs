//! Typed record values exactly as Supabase emits them: `to_jsonb(text::type)` of wal2json's
//! text. The common types are converted here; arrays, composites, domains and anything
//! unusual are converted by PostgreSQL itself, batched per type.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;
use tokio_postgres::Client;

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

const BYTEA: u32 = 17;
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

/// Converts one value locally, or says it must go to PostgreSQL.
pub fn convert_local(type_oid: u32, info: Option<&TypeInfo>, value: &Value) -> Option<Value> {
    let Value::String(text) = value else {
        // wal2json prints numbers, booleans and NULL as JSON already.
        return Some(value.clone());
    };
    match type_oid {
        JSON | JSONB => Some(serde_json::from_str(text).unwrap_or_else(|_| value.clone())),
        BYTEA => Some(value.clone()),
        TIMESTAMPTZ => timestamptz(text).map(Value::String),
        TIMESTAMP => timestamp(text).map(Value::String),
        _ => {
            let info = info?;
            // Domains, arrays, composites and user-defined base types render differently in
            // JSON than as text; PostgreSQL converts those.
            let plain = info.kind != b'd' && !matches!(info.category, b'A' | b'C' | b'U' | b'X');
            plain.then(|| value.clone())
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
