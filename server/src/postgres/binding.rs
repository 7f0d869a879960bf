//! Parsing one `postgres_changes` binding as the client sent it, with the exact error texts
//! hosted Realtime answers (protocol.md §5, §6.3). Pure: no database.

use serde_json::{Map, Value};

/// The supported filter operators (the newer grammar; the portable subset is the first seven).
const OPERATORS: [&str; 13] = [
    "eq",
    "neq",
    "lt",
    "lte",
    "gt",
    "gte",
    "in",
    "like",
    "ilike",
    "is",
    "match",
    "imatch",
    "isdistinct",
];

/// A binding after parsing: what to subscribe to, before it is checked against the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Params {
    /// `*`, `INSERT`, `UPDATE` or `DELETE`.
    pub event: String,
    /// A `LIKE` pattern (`*` already means "all").
    pub schema: String,
    pub table: String,
    pub filters: Vec<Condition>,
    pub select: Option<Vec<String>>,
}

/// One `column=[not.]op.value` condition.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Condition {
    pub column: String,
    pub op: String,
    /// Unquoted value; for `in`, a PostgreSQL array literal `{a,b}`.
    pub value: String,
    pub negate: bool,
}

impl Params {
    /// Parses a binding map; an `Err` is the complete `system` error message.
    pub fn parse(binding: &Map<String, Value>) -> Result<Params, String> {
        let event = match binding.get("event") {
            Some(Value::String(e)) => match e.to_ascii_uppercase().as_str() {
                "INSERT" => "INSERT",
                "UPDATE" => "UPDATE",
                "DELETE" => "DELETE",
                _ => "*",
            },
            _ => "*",
        }
        .to_string();
        let select = parse_select(binding)?;
        let str_of = |k: &str| match binding.get(k) {
            Some(Value::String(s)) => Some(s.clone()),
            _ => None,
        };
        let has = |k: &str| binding.contains_key(k);
        let (schema, table, filters) = match (str_of("schema"), str_of("table"), str_of("filter")) {
            (Some(s), Some(t), Some(f)) => {
                let filters =
                    parse_filters(&f).map_err(|e| format!("Error parsing `filter` params: {e}"))?;
                (s, t, filters)
            }
            (Some(s), Some(t), _) if !has("filter") => (s, t, vec![]),
            (Some(s), None, _) if !has("table") && !has("filter") => (s, "*".into(), vec![]),
            (None, Some(t), _) if !has("schema") && !has("filter") => ("public".into(), t, vec![]),
            _ => {
                let shown = if has("user_token") || has("auth_token") {
                    "<redacted>".to_string()
                } else {
                    inspect(&Value::Object(binding.clone()))
                };
                return Err(format!(
                    "No subscription params provided. Please provide at least a `schema` or `table` to subscribe to: {shown}"
                ));
            }
        };
        if select.is_some() && (schema == "*" || table == "*") {
            return Err("Column selection is not supported for wildcard subscriptions. Provide an explicit schema and table name.".into());
        }
        Ok(Params {
            event,
            schema,
            table,
            filters,
            select,
        })
    }

    /// The bracketed parameter list of the "Unable to subscribe…" messages, as Elixir logs it.
    pub fn to_log(&self) -> String {
        let filters = self
            .filters
            .iter()
            .map(|c| {
                format!(
                    "{{{}, {}, {}, {}}}",
                    quote(&c.column),
                    quote(&c.op),
                    quote(&c.value),
                    c.negate
                )
            })
            .collect::<Vec<_>>()
            .join(", ");
        let select = match &self.select {
            None => "nil".to_string(),
            Some(cols) => format!(
                "[{}]",
                cols.iter().map(|c| quote(c)).collect::<Vec<_>>().join(", ")
            ),
        };
        format!(
            "event: {}, schema: {}, table: {}, filters: [{}], select: {}",
            self.event, self.schema, self.table, filters, select
        )
    }
}

fn parse_select(binding: &Map<String, Value>) -> Result<Option<Vec<String>>, String> {
    match binding.get("select") {
        Some(Value::Array(cols)) => {
            let cols: Vec<String> = cols.iter().filter_map(|c| c.as_str().map(str::to_string)).collect();
            Ok((!cols.is_empty()).then_some(cols))
        }
        Some(Value::String(_)) => Err(
            "Error parsing `select` params: expected a list of column name strings, e.g. select: [\"col1\", \"col2\"]"
                .into(),
        ),
        _ => Ok(None),
    }
}

/// Parses a whole filter string (conditions ANDed by top-level commas).
pub fn parse_filters(filter: &str) -> Result<Vec<Condition>, String> {
    let trimmed = filter.trim();
    if trimmed.is_empty() {
        return Ok(vec![]);
    }
    split_top_level(trimmed)
        .iter()
        .map(|s| parse_segment(s))
        .collect()
}

/// Splits on commas outside parentheses and outside quotes; a quote opens only right after
/// `.`, `(` or `,`, and a backslash escapes the next character inside quotes.
fn split_top_level(filter: &str) -> Vec<String> {
    let mut parts = vec![];
    let mut current = String::new();
    let (mut depth, mut quoted, mut prev) = (0usize, false, '\0');
    let mut chars = filter.chars();
    while let Some(c) = chars.next() {
        if quoted {
            current.push(c);
            if c == '\\' {
                if let Some(n) = chars.next() {
                    current.push(n);
                    prev = n;
                }
                continue;
            }
            if c == '"' {
                quoted = false;
            }
            prev = c;
            continue;
        }
        match c {
            '"' if matches!(prev, '.' | '(' | ',') => quoted = true,
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                parts.push(std::mem::take(&mut current));
                prev = '\0';
                continue;
            }
            _ => {}
        }
        current.push(c);
        prev = c;
    }
    parts.push(current);
    parts
}

fn parse_segment(segment: &str) -> Result<Condition, String> {
    let trimmed = segment.trim();
    if trimmed.is_empty() {
        return Err("filter must not contain empty segments (check for extra commas)".into());
    }
    let list = |items: &[&str]| {
        inspect(&Value::Array(
            items.iter().map(|s| Value::String(s.to_string())).collect(),
        ))
    };
    let Some((column, rest)) = trimmed.split_once('=') else {
        return Err(list(&[trimmed]));
    };
    let (negate, op_value) = match rest.strip_prefix("not.") {
        Some(r) => (true, r),
        None => (false, rest),
    };
    let Some((op, value)) = op_value.split_once('.') else {
        return Err(list(&[op_value]));
    };
    if !OPERATORS.contains(&op) {
        return Err(list(&[op, value]));
    }
    let value = if op == "in" {
        match value.strip_prefix('(').and_then(|v| v.strip_suffix(')')) {
            Some(inner) => format!("{{{inner}}}"),
            None => return Err("`in` filter value must be wrapped by parentheses".into()),
        }
    } else {
        unquote(value)
    };
    Ok(Condition {
        column: column.to_string(),
        op: op.to_string(),
        value,
        negate,
    })
}

/// `"a\"b"` → `a"b`; anything not a single well-formed quoted string is kept as is.
fn unquote(value: &str) -> String {
    let Some(rest) = value.strip_prefix('"') else {
        return value.to_string();
    };
    let mut out = String::new();
    let mut chars = rest.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(n) => out.push(n),
                None => return value.to_string(),
            },
            '"' => {
                return if chars.next().is_none() {
                    out
                } else {
                    value.to_string()
                };
            }
            c => out.push(c),
        }
    }
    value.to_string()
}

/// An Elixir string literal, as `inspect/1` prints it.
fn quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '#' => out.push('#'),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A JSON value as Elixir's `inspect/1` prints the decoded term (maps with sorted keys).
fn inspect(v: &Value) -> String {
    match v {
        Value::Null => "nil".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => quote(s),
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(inspect).collect::<Vec<_>>().join(", ")
        ),
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let body = keys
                .iter()
                .map(|k| format!("{} => {}", quote(k), inspect(&map[*k])))
                .collect::<Vec<_>>()
                .join(", ");
            format!("%{{{body}}}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Result<Params, String> {
        Params::parse(v.as_object().unwrap())
    }

    fn cond(column: &str, op: &str, value: &str, negate: bool) -> Condition {
        Condition {
            column: column.into(),
            op: op.into(),
            value: value.into(),
            negate,
        }
    }

    #[test]
    fn shapes_and_defaults() {
        let p = parse(json!({"event":"insert","schema":"public","table":"t","filter":"id=eq.1"}))
            .unwrap();
        assert_eq!(
            (p.event.as_str(), p.schema.as_str(), p.table.as_str()),
            ("INSERT", "public", "t")
        );
        assert_eq!(p.filters, vec![cond("id", "eq", "1", false)]);
        let p = parse(json!({"event":"whatever","schema":"s"})).unwrap();
        assert_eq!((p.event.as_str(), p.table.as_str()), ("*", "*"));
        let p = parse(json!({"table":"t"})).unwrap();
        assert_eq!(p.schema, "public");
        assert!(parse(json!({"schema":"public","table":"t","filter":"  "}))
            .unwrap()
            .filters
            .is_empty());
    }

    #[test]
    fn missing_params() {
        assert_eq!(
            parse(json!({})).unwrap_err(),
            "No subscription params provided. Please provide at least a `schema` or `table` to subscribe to: %{}"
        );
        assert_eq!(
            parse(json!({"event":"*","schema":"public","filter":null})).unwrap_err(),
            "No subscription params provided. Please provide at least a `schema` or `table` to subscribe to: %{\"event\" => \"*\", \"filter\" => nil, \"schema\" => \"public\"}"
        );
    }

    #[test]
    fn grammar() {
        let f = parse_filters("a=not.like.he%,b=in.(1,2,3),c=eq.\"x,y\\\"z\",d=is.null").unwrap();
        assert_eq!(
            f,
            vec![
                cond("a", "like", "he%", true),
                cond("b", "in", "{1,2,3}", false),
                cond("c", "eq", "x,y\"z", false),
                cond("d", "is", "null", false)
            ]
        );
    }

    #[test]
    fn filter_errors() {
        let err = |f: &str| parse(json!({"schema":"public","table":"t","filter":f})).unwrap_err();
        assert_eq!(
            err("subject=foo.hey"),
            "Error parsing `filter` params: [\"foo\", \"hey\"]"
        );
        assert_eq!(
            err("undefined"),
            "Error parsing `filter` params: [\"undefined\"]"
        );
        assert_eq!(
            err("id=in.1,2"),
            "Error parsing `filter` params: `in` filter value must be wrapped by parentheses"
        );
        assert_eq!(
            err("id=eq.1,,id=eq.2"),
            "Error parsing `filter` params: filter must not contain empty segments (check for extra commas)"
        );
        assert_eq!(
            parse(json!({"schema":"public","table":"t","select":"a,b"})).unwrap_err(),
            "Error parsing `select` params: expected a list of column name strings, e.g. select: [\"col1\", \"col2\"]"
        );
        assert_eq!(
            parse(json!({"schema":"*","table":"t","select":["a"]})).unwrap_err(),
            "Column selection is not supported for wildcard subscriptions. Provide an explicit schema and table name."
        );
    }

    #[test]
    fn log_form() {
        let p = parse(
            json!({"event":"*","schema":"public","table":"t","filter":"id=eq.1","select":["a"]}),
        )
        .unwrap();
        assert_eq!(
            p.to_log(),
            "event: *, schema: public, table: t, filters: [{\"id\", \"eq\", \"1\", false}], select: [\"a\"]"
        );
    }
}
