//! wal2json (format-version 2) rows, as the poller reads them with
//! `pg_logical_slot_get_changes`: one row per INSERT, UPDATE or DELETE.

use serde_json::Value;

use super::change::{timestamp_from_text, Action, Change, Column};

/// Parses one row; `None` for B/C/T/M rows.
pub fn parse(data: &str) -> Result<Option<Change>, String> {
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
    let cols = |k: &str| -> Vec<Column> {
        v.get(k)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .map(|c| Column {
                        name: c
                            .get("name")
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_string(),
                        type_oid: c.get("typeoid").and_then(Value::as_u64).unwrap_or(0) as u32,
                        value: match c.get("value") {
                            None | Some(Value::Null) => None,
                            Some(Value::String(s)) => Some(s.clone()),
                            Some(other) => Some(other.to_string()),
                        },
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    Ok(Some(Change {
        action,
        schema: text("schema"),
        table: text("table"),
        commit_timestamp: timestamp_from_text(&text("timestamp")),
        columns: cols("columns"),
        identity: cols("identity"),
        size: data.len(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rows() {
        assert!(parse(r#"{"action":"B"}"#).unwrap().is_none());
        let c = parse(
            r#"{"action":"D","timestamp":"2026-08-01 10:15:30.5+00","schema":"public","table":"x","identity":[{"name":"id","type":"bigint","typeoid":20,"value":6},{"name":"b","type":"boolean","typeoid":16,"value":true}],"pk":[{"name":"id","type":"bigint","typeoid":20}]}"#,
        )
        .unwrap()
        .unwrap();
        assert_eq!(c.action, Action::Delete);
        assert_eq!(c.filter_tuple()[0].value.as_deref(), Some("6"));
        assert_eq!(c.filter_tuple()[1].value.as_deref(), Some("true"));
        assert_eq!(c.commit_timestamp, "2026-08-01T10:15:30.500Z");
    }
}
