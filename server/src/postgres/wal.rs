//! One wal2json (format-version 2) row: a single INSERT, UPDATE or DELETE.

use serde_json::Value;

/// The action of a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Insert,
    Update,
    Delete,
}

impl Action {
    pub fn name(self) -> &'static str {
        match self {
            Action::Insert => "INSERT",
            Action::Update => "UPDATE",
            Action::Delete => "DELETE",
        }
    }
}

/// A column value as wal2json printed it.
#[derive(Debug, Clone)]
pub struct WalColumn {
    pub name: String,
    pub type_oid: u32,
    /// JSON number / bool / null, or the type's text output as a string.
    pub value: Value,
}

impl WalColumn {
    /// The value as text, for casting in SQL (`(x->'value') #>> '{}'`).
    pub fn text(&self) -> Option<String> {
        match &self.value {
            Value::Null => None,
            Value::String(s) => Some(s.clone()),
            other => Some(other.to_string()),
        }
    }
}

#[derive(Debug, Clone)]
pub struct WalChange {
    pub action: Action,
    pub schema: String,
    pub table: String,
    /// wal2json's transaction timestamp (`2026-08-01 10:15:30.123456+00`).
    pub timestamp: String,
    /// New tuple (INSERT/UPDATE).
    pub columns: Vec<WalColumn>,
    /// Old tuple's replica identity (UPDATE/DELETE).
    pub identity: Vec<WalColumn>,
    pub pk: Vec<String>,
    /// Size of the raw record, for the 413 limit.
    pub size: usize,
}

impl WalChange {
    /// Parses one row of `pg_logical_slot_get_changes`; `None` for B/C/T/M rows.
    pub fn parse(data: &str) -> Result<Option<WalChange>, String> {
        let v: Value = serde_json::from_str(data).map_err(|e| format!("bad wal2json row: {e}"))?;
        let action = match v.get("action").and_then(Value::as_str) {
            Some("I") => Action::Insert,
            Some("U") => Action::Update,
            Some("D") => Action::Delete,
            _ => return Ok(None),
        };
        let text = |k: &str| {
            v.get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let cols = |k: &str| -> Vec<WalColumn> {
            v.get(k)
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .map(|c| WalColumn {
                            name: c
                                .get("name")
                                .and_then(Value::as_str)
                                .unwrap_or_default()
                                .to_string(),
                            type_oid: c.get("typeoid").and_then(Value::as_u64).unwrap_or(0) as u32,
                            value: c.get("value").cloned().unwrap_or(Value::Null),
                        })
                        .collect()
                })
                .unwrap_or_default()
        };
        let pk = cols("pk").into_iter().map(|c| c.name).collect();
        Ok(Some(WalChange {
            action,
            schema: text("schema"),
            table: text("table"),
            timestamp: text("timestamp"),
            columns: cols("columns"),
            identity: cols("identity"),
            pk,
            size: data.len(),
        }))
    }

    /// The tuple filters are evaluated against: new values, or the old identity for DELETE.
    pub fn filter_tuple(&self) -> &[WalColumn] {
        if self.action == Action::Delete {
            &self.identity
        } else {
            &self.columns
        }
    }
}

/// `2026-08-01 10:15:30.123456+00` → `2026-08-01T10:15:30.123Z` (the session runs in UTC).
pub fn commit_timestamp(ts: &str) -> String {
    let (date, rest) = ts.split_once(' ').unwrap_or((ts, "00:00:00+00"));
    let time_end = rest.find(['+', '-']).unwrap_or(rest.len());
    let time = &rest[..time_end];
    let (hms, frac) = time.split_once('.').unwrap_or((time, ""));
    let mut ms: String = frac.chars().take(3).collect();
    while ms.len() < 3 {
        ms.push('0');
    }
    format!("{date}T{hms}.{ms}Z")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps() {
        assert_eq!(
            commit_timestamp("2026-08-01 10:15:30.123456+00"),
            "2026-08-01T10:15:30.123Z"
        );
        assert_eq!(
            commit_timestamp("2026-08-01 10:15:30+00"),
            "2026-08-01T10:15:30.000Z"
        );
        assert_eq!(
            commit_timestamp("2026-08-01 10:15:30.1+00"),
            "2026-08-01T10:15:30.100Z"
        );
    }

    #[test]
    fn parses_rows() {
        assert!(WalChange::parse(r#"{"action":"B"}"#).unwrap().is_none());
        let c = WalChange::parse(
            r#"{"action":"D","timestamp":"t","schema":"public","table":"x","identity":[{"name":"id","type":"bigint","typeoid":20,"value":6}],"pk":[{"name":"id","type":"bigint","typeoid":20}]}"#,
        )
        .unwrap()
        .unwrap();
        assert_eq!(c.action, Action::Delete);
        assert_eq!(c.filter_tuple()[0].text().as_deref(), Some("6"));
        assert_eq!(c.pk, vec!["id"]);
    }
}
