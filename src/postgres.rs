//! Postgres-changes bindings: the join config, matching the server's ids by position, routing,
//! and realtime-js' column type conversion (`convertChangeData`). Pure.

use serde_json::{Map, Number, Value};

use crate::error::Error;
use crate::protocol::PostgresBinding;

use crate::event::PostgresChange;

/// One `postgres_changes` binding, sent in the join config in registration order.
///
/// ```
/// use supa_realtime::PostgresChangesFilter;
/// let f = PostgresChangesFilter::new("INSERT", "public").table("messages").filter("room_id=eq.1");
/// assert_eq!(
///     f.to_json().to_string(),
///     r#"{"event":"INSERT","schema":"public","table":"messages","filter":"room_id=eq.1"}"#
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostgresChangesFilter {
    /// `*`, `INSERT`, `UPDATE` or `DELETE`.
    pub event: String,
    pub schema: String,
    pub table: Option<String>,
    /// PostgREST-style filter, e.g. `room_id=eq.1` (needs `table`).
    pub filter: Option<String>,
    /// Column selection (current servers only).
    pub select: Option<Vec<String>>,
}

/// Checks a binding's event: `*`, `INSERT`, `UPDATE` or `DELETE`, as realtime-js'
/// `REALTIME_POSTGRES_CHANGES_LISTEN_EVENT` (anything else would never match a change).
pub(crate) fn check_event(event: &str) -> Result<(), Error> {
    match event {
        "*" | "INSERT" | "UPDATE" | "DELETE" => Ok(()),
        _ => Err(Error::InvalidArgument(format!(
            "postgres_changes event must be \"*\", \"INSERT\", \"UPDATE\" or \"DELETE\" (got {event:?})"
        ))),
    }
}

impl PostgresChangesFilter {
    pub fn new(event: impl Into<String>, schema: impl Into<String>) -> Self {
        PostgresChangesFilter {
            event: event.into(),
            schema: schema.into(),
            table: None,
            filter: None,
            select: None,
        }
    }
    pub fn table(mut self, table: impl Into<String>) -> Self {
        self.table = Some(table.into());
        self
    }
    pub fn filter(mut self, filter: impl Into<String>) -> Self {
        self.filter = Some(filter.into());
        self
    }
    pub fn select(mut self, columns: Vec<String>) -> Self {
        self.select = Some(columns);
        self
    }

    /// The binding as sent in `config.postgres_changes` (absent keys omitted, not null).
    pub fn to_json(&self) -> Value {
        Value::Object(self.to_binding().0)
    }

    /// The binding as the protocol's join config carries it.
    pub fn to_binding(&self) -> PostgresBinding {
        let mut b = PostgresBinding::new(self.event.clone(), self.schema.clone());
        if let Some(t) = &self.table {
            b = b.with_table(t.clone());
        }
        if let Some(f) = &self.filter {
            b = b.with_filter(f.clone());
        }
        if let Some(s) = &self.select {
            b = b.with_select(s.iter().cloned());
        }
        b
    }
}

/// realtime-js' text when the join reply's bindings do not match ours.
pub const MISMATCH: &str = "mismatch between server and client bindings for postgres changes";

/// Matches the join reply's `postgres_changes` to our bindings by position, as realtime-js:
/// entry i must have the same `event` and equal `schema`/`table`/`filter` (missing == null).
/// Returns the server id of each binding, or `Err(MISMATCH)`.
pub fn match_server_ids(
    bindings: &[PostgresChangesFilter],
    response: &Value,
) -> Result<Vec<Value>, &'static str> {
    let server = response
        .get("postgres_changes")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let mut ids = Vec::with_capacity(bindings.len());
    for (i, b) in bindings.iter().enumerate() {
        let Some(s) = server.get(i) else {
            return Err(MISMATCH);
        };
        let same = s.get("event").and_then(Value::as_str) == Some(b.event.as_str())
            && same_value(s.get("schema"), Some(&b.schema))
            && same_value(s.get("table"), b.table.as_ref())
            && same_value(s.get("filter"), b.filter.as_ref());
        if !same {
            return Err(MISMATCH);
        }
        ids.push(s.get("id").cloned().unwrap_or(Value::Null));
    }
    Ok(ids)
}

fn same_value(server: Option<&Value>, ours: Option<&String>) -> bool {
    match (server, ours) {
        (None | Some(Value::Null), None) => true,
        (Some(Value::String(s)), Some(o)) => s == o,
        _ => false,
    }
}

/// Builds the callback shape from a wire `postgres_changes` payload, or `None` when no binding
/// matches (routing by `ids` and event, as realtime-js).
pub fn route_change(
    topic: &str,
    bindings: &[PostgresChangesFilter],
    server_ids: &[Value],
    payload: &Value,
) -> Option<PostgresChange> {
    let ids = payload.get("ids").and_then(Value::as_array)?;
    let data = payload.get("data")?;
    let kind = data.get("type").and_then(Value::as_str).unwrap_or("");
    let matched: Vec<usize> = bindings
        .iter()
        .zip(server_ids)
        .enumerate()
        .filter(|(_, (b, id))| {
            !id.is_null()
                && ids.iter().any(|x| ids_equal(x, id))
                && (b.event == "*" || b.event.eq_ignore_ascii_case(kind))
        })
        .map(|(i, _)| i)
        .collect();
    if matched.is_empty() {
        return None;
    }
    let columns = data.get("columns").cloned().unwrap_or(Value::Array(vec![]));
    let empty = || Value::Object(Map::new());
    let new = if kind == "INSERT" || kind == "UPDATE" {
        convert_change_data(&columns, data.get("record").unwrap_or(&Value::Null))
    } else {
        empty()
    };
    let old = if kind == "UPDATE" || kind == "DELETE" {
        convert_change_data(&columns, data.get("old_record").unwrap_or(&Value::Null))
    } else {
        empty()
    };
    let s = |k: &str| {
        data.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    Some(PostgresChange {
        topic: topic.to_owned(),
        schema: s("schema"),
        table: s("table"),
        commit_timestamp: s("commit_timestamp"),
        event_type: kind.to_owned(),
        new,
        old,
        errors: data.get("errors").cloned().unwrap_or(Value::Null),
        columns,
        bindings: matched,
    })
}

/// Ids are integers on the wire; compare numerically so `1` and `1.0` agree.
fn ids_equal(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

/// realtime-js `convertChangeData`: converts each value of `record` by its column's type.
/// Non-object records become `{}`.
pub fn convert_change_data(columns: &Value, record: &Value) -> Value {
    let Some(rec) = record.as_object() else {
        return Value::Object(Map::new());
    };
    let cols = columns.as_array().map(Vec::as_slice).unwrap_or(&[]);
    let mut out = Map::new();
    for (name, value) in rec {
        let ty = cols
            .iter()
            .find(|c| c.get("name").and_then(Value::as_str) == Some(name))
            .and_then(|c| c.get("type"))
            .and_then(Value::as_str);
        let converted = match ty {
            Some(t) => convert_cell(t, value),
            None => value.clone(),
        };
        out.insert(name.clone(), converted);
    }
    Value::Object(out)
}

/// realtime-js `convertCell`.
pub fn convert_cell(ty: &str, value: &Value) -> Value {
    if let Some(elem) = ty.strip_prefix('_') {
        return to_array(value, elem);
    }
    match ty {
        "bool" => match value.as_str() {
            Some("t") => Value::Bool(true),
            Some("f") => Value::Bool(false),
            _ => value.clone(),
        },
        "float4" | "float8" | "int2" | "int4" | "int8" | "numeric" | "oid" => match value {
            Value::String(s) => parse_float(s).map_or_else(|| value.clone(), Value::Number),
            _ => value.clone(),
        },
        "json" | "jsonb" => match value {
            Value::String(s) => serde_json::from_str(s).unwrap_or_else(|_| value.clone()),
            _ => value.clone(),
        },
        "timestamp" => match value {
            Value::String(s) => Value::String(s.replacen(' ', "T", 1)),
            _ => value.clone(),
        },
        _ => value.clone(),
    }
}

/// realtime-js `toArray`: `{a,b}` strings are parsed (JSON first, else comma split).
fn to_array(value: &Value, elem: &str) -> Value {
    let Value::String(s) = value else {
        return value.clone();
    };
    let Some(inner) = s.strip_prefix('{').and_then(|r| r.strip_suffix('}')) else {
        return value.clone();
    };
    let items: Vec<Value> = match serde_json::from_str::<Value>(&format!("[{inner}]")) {
        Ok(Value::Array(a)) => a,
        _ if inner.is_empty() => Vec::new(),
        _ => inner
            .split(',')
            .map(|p| Value::String(p.to_owned()))
            .collect(),
    };
    Value::Array(items.iter().map(|v| convert_cell(elem, v)).collect())
}

/// JavaScript `parseFloat`: the longest numeric prefix after leading whitespace; `None` for NaN
/// (and for infinities, which JSON cannot carry). Integral values become JSON integers, as a JS
/// number would serialise.
fn parse_float(s: &str) -> Option<Number> {
    let t = s.trim_start();
    let b = t.as_bytes();
    let mut i = 0;
    if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
        i += 1;
    }
    let int_start = i;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    let mut digits = i - int_start;
    if i < b.len() && b[i] == b'.' {
        let f = i + 1;
        let mut j = f;
        while j < b.len() && b[j].is_ascii_digit() {
            j += 1;
        }
        if digits > 0 || j > f {
            digits += j - f;
            i = j;
        }
    }
    if digits == 0 {
        return None;
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        let mut j = i + 1;
        if j < b.len() && (b[j] == b'+' || b[j] == b'-') {
            j += 1;
        }
        let e = j;
        while j < b.len() && b[j].is_ascii_digit() {
            j += 1;
        }
        if j > e {
            i = j;
        }
    }
    let f: f64 = t[..i].parse().ok()?;
    if !f.is_finite() {
        return None;
    }
    if f.fract() == 0.0 && f.abs() < 9_007_199_254_740_992.0 {
        Some(Number::from(f as i64))
    } else {
        Number::from_f64(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_the_four_listen_events_are_accepted() {
        for ok in ["*", "INSERT", "UPDATE", "DELETE"] {
            assert!(check_event(ok).is_ok());
        }
        for bad in ["insert", "TRUNCATE", "", "INSERT "] {
            let e = check_event(bad).unwrap_err().to_string();
            assert!(e.contains("postgres_changes event must be"), "{e}");
        }
    }

    #[test]
    fn conversion_follows_realtime_js() {
        assert_eq!(convert_cell("bool", &json!("t")), json!(true));
        assert_eq!(convert_cell("bool", &json!("f")), json!(false));
        assert_eq!(convert_cell("bool", &json!(true)), json!(true));
        assert_eq!(convert_cell("int4", &json!("42")), json!(42));
        assert_eq!(convert_cell("float8", &json!("1.5")), json!(1.5));
        assert_eq!(convert_cell("numeric", &json!("12abc")), json!(12));
        assert_eq!(convert_cell("int8", &json!("abc")), json!("abc"));
        assert_eq!(convert_cell("int8", &json!(7)), json!(7));
        assert_eq!(convert_cell("jsonb", &json!("{\"a\":1}")), json!({"a": 1}));
        assert_eq!(convert_cell("jsonb", &json!("{bad")), json!("{bad"));
        assert_eq!(convert_cell("jsonb", &json!({"a": 1})), json!({"a": 1}));
        assert_eq!(
            convert_cell("timestamp", &json!("2026-01-01 10:00:00 x")),
            json!("2026-01-01T10:00:00 x")
        );
        assert_eq!(
            convert_cell("timestamptz", &json!("2026-01-01 10:00:00+00")),
            json!("2026-01-01 10:00:00+00")
        );
        assert_eq!(convert_cell("_int4", &json!("{1,2,3}")), json!([1, 2, 3]));
        assert_eq!(convert_cell("_text", &json!("{a,b}")), json!(["a", "b"]));
        assert_eq!(convert_cell("_text", &json!("{}")), json!([]));
        assert_eq!(convert_cell("_bool", &json!("{t,f}")), json!([true, false]));
        assert_eq!(convert_cell("_int4", &json!([1, 2])), json!([1, 2]));
        assert_eq!(convert_cell("text", &json!("t")), json!("t"));
    }

    #[test]
    fn convert_change_data_uses_columns() {
        let cols = json!([{"name": "id", "type": "int8"}, {"name": "done", "type": "bool"}]);
        assert_eq!(
            convert_change_data(&cols, &json!({"id": "7", "done": "t", "x": "1"})),
            json!({"id": 7, "done": true, "x": "1"})
        );
        assert_eq!(convert_change_data(&cols, &Value::Null), json!({}));
    }

    fn bindings() -> Vec<PostgresChangesFilter> {
        vec![
            PostgresChangesFilter::new("INSERT", "public").table("todos"),
            PostgresChangesFilter::new("*", "public")
                .table("todos")
                .filter("id=eq.1"),
        ]
    }

    #[test]
    fn server_ids_match_by_position() {
        let reply = json!({"postgres_changes": [
            {"id": 11, "event": "INSERT", "schema": "public", "table": "todos"},
            {"id": 22, "event": "*", "schema": "public", "table": "todos", "filter": "id=eq.1"}]});
        assert_eq!(
            match_server_ids(&bindings(), &reply),
            Ok(vec![json!(11), json!(22)])
        );
        let swapped = json!({"postgres_changes": [
            {"id": 22, "event": "*", "schema": "public", "table": "todos", "filter": "id=eq.1"},
            {"id": 11, "event": "INSERT", "schema": "public", "table": "todos"}]});
        assert_eq!(match_server_ids(&bindings(), &swapped), Err(MISMATCH));
        assert_eq!(
            match_server_ids(&bindings(), &json!({"postgres_changes": []})),
            Err(MISMATCH)
        );
        let null_filter = json!({"postgres_changes": [
            {"id": 1, "event": "INSERT", "schema": "public", "table": "todos", "filter": null}]});
        assert!(match_server_ids(&bindings()[..1], &null_filter).is_ok());
    }

    #[test]
    fn changes_route_by_id_and_event() {
        let ids = vec![json!(11), json!(22)];
        let payload = json!({"ids": [22, 11], "data": {
            "schema": "public", "table": "todos", "type": "UPDATE",
            "commit_timestamp": "2026-08-01T10:00:05.120Z",
            "columns": [{"name": "id", "type": "int8"}],
            "record": {"id": 1}, "old_record": {"id": 1}, "errors": null}});
        let c = route_change("realtime:t", &bindings(), &ids, &payload).unwrap();
        assert_eq!(c.bindings, vec![1]);
        assert_eq!(c.event_type, "UPDATE");
        assert_eq!(c.new, json!({"id": 1}));
        assert_eq!(c.old, json!({"id": 1}));
        let insert = json!({"ids": [11], "data": {"type": "INSERT", "record": {"id": 2}}});
        let c = route_change("realtime:t", &bindings(), &ids, &insert).unwrap();
        assert_eq!((c.bindings, c.old), (vec![0], json!({})));
        let other = json!({"ids": [99], "data": {"type": "INSERT"}});
        assert!(route_change("realtime:t", &bindings(), &ids, &other).is_none());
    }
}
