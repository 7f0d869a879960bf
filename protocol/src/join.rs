//! The `phx_join` payload: `{config: {broadcast, presence, private, postgres_changes},
//! access_token}` (protocol reference §4.1).
//!
//! Decoding is as lenient as the server: unknown keys are ignored, booleans may be the strings
//! `"true"`/`"false"` in any letter case, and a field of the wrong shape falls back to its
//! default instead of failing the whole payload (the server logs `InvalidJoinPayload` and
//! proceeds with whatever it could cast). Encoding writes what realtime-js writes, in its order.
//!
//! ```
//! use supa_realtime_protocol::{JoinConfig, JoinPayload, PostgresBinding};
//! let payload = JoinPayload {
//!     config: Some(JoinConfig {
//!         postgres_changes: vec![PostgresBinding::new("INSERT", "public").with_table("todos")],
//!         ..JoinConfig::default()
//!     }),
//!     access_token: Some("jwt".into()),
//!     ..JoinPayload::default()
//! };
//! assert_eq!(
//!     payload.to_value().to_string(),
//!     r#"{"config":{"broadcast":{"ack":false,"self":false},"presence":{"key":"","enabled":false},"private":false,"postgres_changes":[{"event":"INSERT","schema":"public","table":"todos"}]},"access_token":"jwt"}"#
//! );
//! let back = JoinPayload::from_value(&payload.to_value());
//! assert_eq!(back, payload);
//! ```

use serde::de::{DeserializeOwned, Deserializer};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The whole join payload. `config` is `None` only when the key is absent: the server then
/// takes the topic itself as a legacy postgres-changes subscription.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct JoinPayload {
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present_config"
    )]
    pub config: Option<JoinConfig>,
    /// The channel's token; without it (or with an `sb_…` key) the connection's is used.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "opt_string"
    )]
    pub access_token: Option<String>,
    /// Legacy alias of `access_token`; the server prefers it when both are present.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "opt_string"
    )]
    pub user_token: Option<String>,
    /// `realtime-js/<semver>`; the server ignores it.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "opt_string"
    )]
    pub version: Option<String>,
}

/// `config` of a join.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct JoinConfig {
    #[serde(default, deserialize_with = "lenient")]
    pub broadcast: BroadcastConfig,
    #[serde(default, deserialize_with = "lenient")]
    pub presence: PresenceConfig,
    #[serde(default, deserialize_with = "flag")]
    pub private: bool,
    /// One entry per binding, in registration order; always sent, possibly empty.
    #[serde(default, deserialize_with = "bindings")]
    pub postgres_changes: Vec<PostgresBinding>,
}

/// `config.broadcast`: `{ack, self}` plus the optional `replay` and `replication_ready`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BroadcastConfig {
    /// The server replies to each broadcast push (otherwise it sends no reply at all).
    #[serde(default, deserialize_with = "flag")]
    pub ack: bool,
    /// The sender's own channel receives its broadcasts.
    #[serde(rename = "self", default, deserialize_with = "flag")]
    pub self_: bool,
    /// Replay stored messages on join (private channels only).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "replay",
        serialize_with = "replay_out"
    )]
    pub replay: Option<ReplayConfig>,
    /// Ask for a `Replication connection established` system message.
    #[serde(
        default,
        skip_serializing_if = "std::ops::Not::not",
        deserialize_with = "flag"
    )]
    pub replication_ready: bool,
}

/// `config.broadcast.replay`. Fields that are absent, `null` or not integers are `None`; a
/// field given as something other than an integer also sets `malformed`. The server answers
/// `UnableToReplayMessages: Replay params are not valid` for a missing `since` or a malformed
/// replay and uses its default (25) for a missing `limit`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplayConfig {
    /// Unix milliseconds.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient"
    )]
    pub since: Option<i64>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient"
    )]
    pub limit: Option<i64>,
    /// Set when decoding a replay that is not an object, or whose `since` or `limit` is present
    /// but not an integer. Encoded as a non-integer in the first field that is `None` (one is),
    /// so that a decoded join encodes to what decodes the same.
    #[serde(skip)]
    pub malformed: bool,
}

/// `config.presence`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PresenceConfig {
    /// The presence key; empty means the server generates one per join. Any JSON value is
    /// accepted: `null` reads as empty, other non-strings as their JSON text (as the server).
    #[serde(default, deserialize_with = "presence_key")]
    pub key: String,
    /// Presence on at join (realtime-js forces it on when the channel has presence listeners).
    #[serde(default, deserialize_with = "flag")]
    pub enabled: bool,
}

/// One `config.postgres_changes` entry, kept as the object the client sent: the server echoes
/// it verbatim (whatever keys it has) in the join reply and derives the binding id from it.
///
/// ```
/// use supa_realtime_protocol::PostgresBinding;
/// let b = PostgresBinding::new("*", "public").with_table("todos").with_filter("id=eq.1");
/// assert_eq!(b.event(), Some("*"));
/// assert_eq!(b.filter(), Some("id=eq.1"));
/// assert_eq!(serde_json::to_string(&b).unwrap(),
///            r#"{"event":"*","schema":"public","table":"todos","filter":"id=eq.1"}"#);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PostgresBinding(pub Map<String, Value>);

impl PostgresBinding {
    /// `{"event": event, "schema": schema}`; add the rest with the `with_*` builders.
    pub fn new(event: impl Into<String>, schema: impl Into<String>) -> PostgresBinding {
        let mut m = Map::new();
        m.insert("event".into(), Value::String(event.into()));
        m.insert("schema".into(), Value::String(schema.into()));
        PostgresBinding(m)
    }

    pub fn with_table(mut self, table: impl Into<String>) -> Self {
        self.0.insert("table".into(), Value::String(table.into()));
        self
    }

    pub fn with_filter(mut self, filter: impl Into<String>) -> Self {
        self.0.insert("filter".into(), Value::String(filter.into()));
        self
    }

    pub fn with_select<S: Into<String>>(mut self, columns: impl IntoIterator<Item = S>) -> Self {
        let cols = columns
            .into_iter()
            .map(|c| Value::String(c.into()))
            .collect();
        self.0.insert("select".into(), Value::Array(cols));
        self
    }

    fn str_field(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(Value::as_str)
    }

    /// `*`, `INSERT`, `UPDATE` or `DELETE` (any other value behaves as `*` on the server).
    pub fn event(&self) -> Option<&str> {
        self.str_field("event")
    }

    pub fn schema(&self) -> Option<&str> {
        self.str_field("schema")
    }

    pub fn table(&self) -> Option<&str> {
        self.str_field("table")
    }

    pub fn filter(&self) -> Option<&str> {
        self.str_field("filter")
    }

    /// The `select` column list, when it is an array of strings.
    pub fn select(&self) -> Option<Vec<&str>> {
        self.0
            .get("select")?
            .as_array()?
            .iter()
            .map(Value::as_str)
            .collect()
    }
}

impl JoinPayload {
    /// Reads a join payload as leniently as the server; never fails (a non-object payload is
    /// one without `config`).
    pub fn from_value(payload: &Value) -> JoinPayload {
        match payload {
            Value::Object(_) => JoinPayload::deserialize(payload).unwrap_or_default(),
            _ => JoinPayload::default(),
        }
    }

    /// The payload as JSON, keys in realtime-js' order.
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// The token the channel should be verified with, as the server picks it: `user_token`
    /// wins over `access_token`; `None` (use the connection's token) when neither is given
    /// or the given one is an opaque `sb_…` key.
    pub fn channel_token(&self) -> Option<&str> {
        let given = self
            .user_token
            .as_deref()
            .or(self.access_token.as_deref())?;
        let opaque = self
            .access_token
            .as_deref()
            .or(self.user_token.as_deref())
            .is_some_and(|t| t.starts_with("sb_"));
        (!opaque).then_some(given)
    }
}

/// `T` if the value has its shape, else `T::default()`. Arrays never do: serde would read a
/// struct positionally from one, and none of these fields is a list.
fn lenient<'de, D: Deserializer<'de>, T: DeserializeOwned + Default>(d: D) -> Result<T, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Array(_) => T::default(),
        v => T::deserialize(v).unwrap_or_default(),
    })
}

/// A present `config` key is `Some`, whatever its shape (`null` and non-objects read as all
/// defaults, as the server's field lookups on them find nothing).
fn present_config<'de, D: Deserializer<'de>>(d: D) -> Result<Option<JoinConfig>, D::Error> {
    lenient::<D, JoinConfig>(d).map(Some)
}

fn opt_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::String(s) => Some(s),
        _ => None,
    })
}

/// A boolean, or `"true"`/`"false"` in any letter case; anything else is `false`.
fn flag<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Bool(b) => b,
        Value::String(s) => s.eq_ignore_ascii_case("true"),
        _ => false,
    })
}

fn presence_key<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Null => String::new(),
        Value::String(s) => s,
        other => other.to_string(),
    })
}

/// A replay as `{since, limit}`; a malformed one keeps a non-integer where it had one.
fn replay_out<S: serde::Serializer>(
    replay: &Option<ReplayConfig>,
    s: S,
) -> Result<S::Ok, S::Error> {
    let Some(r) = replay else {
        return s.serialize_none();
    };
    let mut m = Map::new();
    let mut field = |k: &str, v: Option<i64>, mark: bool| match v {
        Some(n) => {
            m.insert(k.into(), n.into());
            false
        }
        None if mark => {
            m.insert(k.into(), Value::from("invalid"));
            true
        }
        None => mark,
    };
    let marked = field("since", r.since, r.malformed);
    field("limit", r.limit, r.malformed && !marked);
    Value::Object(m).serialize(s)
}

/// `null` is no replay; any other value is a replay request, its fields read leniently and
/// `malformed` set when it is not an object or a present field is not an integer.
fn replay<'de, D: Deserializer<'de>>(d: D) -> Result<Option<ReplayConfig>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Null => None,
        Value::Object(m) => {
            let not_integer = |k: &str| {
                m.get(k)
                    .is_some_and(|v| !v.is_null() && v.as_i64().is_none())
            };
            let malformed = not_integer("since") || not_integer("limit");
            let mut config = ReplayConfig::deserialize(Value::Object(m)).unwrap_or_default();
            config.malformed = malformed;
            Some(config)
        }
        _ => Some(ReplayConfig {
            malformed: true,
            ..ReplayConfig::default()
        }),
    })
}

/// An array of binding objects; other entries are skipped, a non-array is no bindings.
fn bindings<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<PostgresBinding>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Array(items) => items
            .into_iter()
            .filter_map(|item| match item {
                Value::Object(m) => Some(PostgresBinding(m)),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Frame, Vsn};
    use serde_json::json;

    /// protocol.md §4.1: what realtime-js sends today.
    const REALTIME_JS_JOIN: &str = r#"["1","1","realtime:room1","phx_join",{
      "config": {
        "broadcast": {"ack": false, "self": false},
        "presence":  {"key": "", "enabled": false},
        "private":   false,
        "postgres_changes": [
          {"event": "INSERT", "schema": "public", "table": "messages", "filter": "room_id=eq.1"}
        ]
      },
      "access_token": "eyJhbGciOi...",
      "version": "realtime-js/2.x.y"
    }]"#;

    #[test]
    fn reads_what_realtime_js_sends() {
        let frame = Frame::decode(Vsn::V2, REALTIME_JS_JOIN).unwrap();
        let p = JoinPayload::from_value(&frame.payload);
        let config = p.config.as_ref().expect("config present");
        assert!(!config.broadcast.ack && !config.broadcast.self_);
        assert_eq!(config.broadcast.replay, None);
        assert_eq!(config.presence, PresenceConfig::default());
        assert!(!config.private);
        assert_eq!(
            config.postgres_changes,
            vec![PostgresBinding::new("INSERT", "public")
                .with_table("messages")
                .with_filter("room_id=eq.1")]
        );
        assert_eq!(p.access_token.as_deref(), Some("eyJhbGciOi..."));
        assert_eq!(p.version.as_deref(), Some("realtime-js/2.x.y"));
        assert_eq!(p.channel_token(), Some("eyJhbGciOi..."));
    }

    /// The exact text our client has always sent for a default channel with a token.
    #[test]
    fn encodes_as_the_client_always_has() {
        let p = JoinPayload {
            config: Some(JoinConfig::default()),
            access_token: Some("t".into()),
            ..JoinPayload::default()
        };
        assert_eq!(
            p.to_value().to_string(),
            r#"{"config":{"broadcast":{"ack":false,"self":false},"presence":{"key":"","enabled":false},"private":false,"postgres_changes":[]},"access_token":"t"}"#
        );
        let no_token = JoinPayload {
            config: Some(JoinConfig::default()),
            ..JoinPayload::default()
        };
        assert!(no_token.to_value().get("access_token").is_none());
    }

    #[test]
    fn booleans_accept_strings_in_any_case() {
        let p = JoinPayload::from_value(&json!({"config": {
            "broadcast": {"ack": "TRUE", "self": "true", "replication_ready": "True"},
            "presence": {"enabled": "tRuE"},
            "private": "false"}}));
        let c = p.config.unwrap();
        assert!(c.broadcast.ack && c.broadcast.self_ && c.broadcast.replication_ready);
        assert!(c.presence.enabled);
        assert!(!c.private);
        let odd = JoinPayload::from_value(&json!({"config": {"private": "yes"}}));
        assert!(!odd.config.unwrap().private);
    }

    #[test]
    fn unknown_keys_are_tolerated_and_bindings_kept_verbatim() {
        let binding = json!({"event": "*", "schema": "public", "table": "t",
                             "select": ["id", "body"], "future_key": {"x": 1}});
        let p = JoinPayload::from_value(&json!({
            "config": {"broadcast": {"self": true, "extra": 1}, "new_feature": true,
                       "postgres_changes": [binding]},
            "something": "else"}));
        let c = p.config.unwrap();
        assert!(c.broadcast.self_ && !c.broadcast.ack);
        assert_eq!(c.postgres_changes.len(), 1);
        let b = &c.postgres_changes[0];
        assert_eq!(b.select(), Some(vec!["id", "body"]));
        // Echoed as sent: same keys, same order.
        assert_eq!(serde_json::to_value(b).unwrap(), binding);
    }

    #[test]
    fn presence_key_any_json_value() {
        let key = |v: Value| {
            JoinPayload::from_value(&json!({"config": {"presence": {"key": v}}}))
                .config
                .unwrap()
                .presence
                .key
        };
        assert_eq!(key(json!("alice")), "alice");
        assert_eq!(key(Value::Null), "");
        assert_eq!(key(json!(42)), "42");
        assert_eq!(key(json!({"a": 1})), r#"{"a":1}"#);
    }

    #[test]
    fn replay_since_and_limit() {
        let replay = |v: Value| {
            JoinPayload::from_value(
                &json!({"config": {"private": true, "broadcast": {"replay": v}}}),
            )
            .config
            .unwrap()
            .broadcast
            .replay
        };
        assert_eq!(
            replay(json!({"since": 1_700_000_000_000_i64, "limit": 10})),
            Some(ReplayConfig {
                since: Some(1_700_000_000_000),
                limit: Some(10),
                malformed: false,
            })
        );
        assert_eq!(replay(Value::Null), None);
        // `null` fields are absent ones.
        assert_eq!(
            replay(json!({"since": 5, "limit": null})),
            Some(ReplayConfig {
                since: Some(5),
                ..ReplayConfig::default()
            })
        );
        // Present but unusable: a replay request the server refuses.
        let malformed = |since, limit| {
            Some(ReplayConfig {
                since,
                limit,
                malformed: true,
            })
        };
        assert_eq!(replay(json!("soon")), malformed(None, None));
        assert_eq!(
            replay(json!({"since": "x", "limit": 5})),
            malformed(None, Some(5))
        );
        assert_eq!(
            replay(json!({"since": 5, "limit": "x"})),
            malformed(Some(5), None)
        );
        assert_eq!(replay(json!({"since": 1.5})), malformed(None, None));
        // A malformed replay encodes to one that decodes the same.
        for v in [
            json!("soon"),
            json!({"since": "x", "limit": 5}),
            json!({"since": 5, "limit": "x"}),
        ] {
            let decoded = replay(v);
            let config = BroadcastConfig {
                replay: decoded.clone(),
                ..BroadcastConfig::default()
            };
            let again: BroadcastConfig =
                serde_json::from_value(serde_json::to_value(&config).unwrap()).unwrap();
            assert_eq!(again.replay, decoded);
        }
        let with = JoinConfig {
            private: true,
            broadcast: BroadcastConfig {
                replay: Some(ReplayConfig {
                    since: Some(5),
                    ..ReplayConfig::default()
                }),
                ..BroadcastConfig::default()
            },
            ..JoinConfig::default()
        };
        assert_eq!(
            serde_json::to_value(&with.broadcast).unwrap(),
            json!({"ack": false, "self": false, "replay": {"since": 5}})
        );
    }

    #[test]
    fn legacy_and_malformed_shapes_fall_back_to_defaults() {
        // No `config` at all: the legacy form.
        let legacy = JoinPayload::from_value(&json!({"access_token": "t"}));
        assert_eq!(legacy.config, None);
        assert_eq!(legacy.access_token.as_deref(), Some("t"));
        // Present but useless shapes read as defaults, field by field.
        for config in [Value::Null, json!(5), json!([1, 2])] {
            let p = JoinPayload::from_value(&json!({ "config": config }));
            assert_eq!(p.config, Some(JoinConfig::default()), "{config}");
        }
        let p = JoinPayload::from_value(&json!({"config": {
            "broadcast": [], "presence": "x", "private": 1,
            "postgres_changes": [{"event": "INSERT", "schema": "public"}, 7, "x", null]},
            "access_token": 12}));
        let c = p.config.unwrap();
        assert_eq!(c.broadcast, BroadcastConfig::default());
        assert_eq!(c.presence, PresenceConfig::default());
        assert_eq!(
            c.postgres_changes,
            vec![PostgresBinding::new("INSERT", "public")]
        );
        assert_eq!(p.access_token, None);
        let bad = JoinPayload::from_value(&json!({"config": {"postgres_changes": {"a": 1}}}));
        assert!(bad.config.unwrap().postgres_changes.is_empty());
        assert_eq!(JoinPayload::from_value(&json!("x")), JoinPayload::default());
    }

    #[test]
    fn channel_token_follows_the_server() {
        let p = |v: Value| JoinPayload::from_value(&v);
        assert_eq!(p(json!({})).channel_token(), None);
        assert_eq!(
            p(json!({"access_token": "a", "user_token": "u"})).channel_token(),
            Some("u")
        );
        assert_eq!(
            p(json!({"access_token": "sb_publishable_x"})).channel_token(),
            None
        );
    }

    #[test]
    fn round_trips() {
        let p = JoinPayload {
            config: Some(JoinConfig {
                broadcast: BroadcastConfig {
                    ack: true,
                    self_: true,
                    replay: Some(ReplayConfig {
                        since: Some(1),
                        limit: Some(2),
                        malformed: false,
                    }),
                    replication_ready: true,
                },
                presence: PresenceConfig {
                    key: "k".into(),
                    enabled: true,
                },
                private: true,
                postgres_changes: vec![PostgresBinding::new("*", "public").with_select(["a"])],
            }),
            access_token: Some("t".into()),
            user_token: Some("u".into()),
            version: Some("v".into()),
        };
        assert_eq!(JoinPayload::from_value(&p.to_value()), p);
    }
}
