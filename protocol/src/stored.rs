//! Stored broadcasts on the wire, client side: the `persist` option of a send (kind-3
//! metadata, a JSON push's payload key, the REST query), the `meta` a stored message arrives
//! with (`{"id": …}`, plus `"replayed": true` when replayed on join), and the `system` message
//! that answers `replication_ready`.
//!
//! ```
//! use std::time::Duration;
//! use supa_realtime_protocol::{BroadcastMeta, Persist};
//! assert_eq!(Persist::Yes.metadata(), r#"{"persist":true}"#);
//! assert_eq!(Persist::Ttl(Duration::from_secs(60)).query(), Some("persist%5Bttl%5D=60".into()));
//! let meta = BroadcastMeta::from_json(r#"{"id":"3f0c","replayed":true}"#);
//! assert_eq!(meta.id.as_deref(), Some("3f0c"));
//! assert!(meta.replayed);
//! ```

use std::time::Duration;

use serde::Deserialize;
use serde_json::{json, Value};

use crate::binary::BinaryFrame;
use crate::frame::Frame;

/// Whether the server stores a broadcast in `realtime.messages` (private channels only), so
/// that a later join can replay it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Persist {
    /// Not stored (the default).
    #[default]
    No,
    /// Stored for the server's retention (72 hours upstream).
    Yes,
    /// Stored, and not replayed once this long has passed (whole seconds, at least 1; the
    /// server caps it at its retention).
    Ttl(Duration),
}

impl Persist {
    /// The `persist` value: `true` or `{"ttl": seconds}`; `None` when not stored.
    pub fn to_value(self) -> Option<Value> {
        match self {
            Persist::No => None,
            Persist::Yes => Some(Value::Bool(true)),
            Persist::Ttl(ttl) => Some(json!({ "ttl": ttl.as_secs() })),
        }
    }

    /// A kind-3 frame's metadata, as realtime-js writes it (empty when not stored).
    pub fn metadata(self) -> String {
        self.to_value()
            .map(|p| json!({ "persist": p }).to_string())
            .unwrap_or_default()
    }

    /// The REST query parameter of `POST /api/broadcast/…` (`persist=true` or
    /// `persist[ttl]=N`, percent-encoded), or `None` when not stored.
    pub fn query(self) -> Option<String> {
        match self {
            Persist::No => None,
            Persist::Yes => Some("persist=true".into()),
            Persist::Ttl(ttl) => Some(format!("persist%5Bttl%5D={}", ttl.as_secs())),
        }
    }
}

impl Frame {
    /// A broadcast push of [`Frame::broadcast`] (vsn 1.0.0) that asks to be stored: `persist`
    /// goes next to `event` and `payload`.
    pub fn with_persist(mut self, persist: Persist) -> Frame {
        if let (Some(p), Value::Object(push)) = (persist.to_value(), &mut self.payload) {
            push.insert("persist".into(), p);
        }
        self
    }
}

impl BinaryFrame {
    /// A kind-3 push of [`BinaryFrame::user_broadcast_push`] that asks to be stored: `persist`
    /// goes in its metadata. Other kinds are returned unchanged.
    pub fn with_persist(mut self, persist: Persist) -> BinaryFrame {
        if let BinaryFrame::UserBroadcastPush { metadata, .. } = &mut self {
            *metadata = persist.metadata();
        }
        self
    }
}

/// The `meta` of a received broadcast, as far as stored messages use it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct BroadcastMeta {
    /// The stored message's id (a UUID), for messages that were persisted.
    #[serde(default, deserialize_with = "opt_string")]
    pub id: Option<String>,
    /// Delivered by a replay on join rather than live.
    #[serde(default, deserialize_with = "flag")]
    pub replayed: bool,
}

impl BroadcastMeta {
    /// Reads `meta` leniently: anything that is not an object is no meta.
    pub fn from_value(meta: &Value) -> BroadcastMeta {
        match meta {
            Value::Object(_) => BroadcastMeta::deserialize(meta).unwrap_or_default(),
            _ => BroadcastMeta::default(),
        }
    }

    /// [`from_value`](Self::from_value) on JSON text (kind-4 metadata, a fast-path `meta`).
    pub fn from_json(text: &str) -> BroadcastMeta {
        serde_json::from_str::<Value>(text)
            .map(|v| BroadcastMeta::from_value(&v))
            .unwrap_or_default()
    }
}

fn opt_string<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::String(s) => Some(s),
        _ => None,
    })
}

fn flag<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(matches!(Value::deserialize(d)?, Value::Bool(true)))
}

/// The `extension` of the `system` message that answers `replication_ready`.
pub const SYSTEM_EXTENSION: &str = "system";

/// What a `system` payload says about `replication_ready`: `Some(Ok)` for upstream's
/// `{"extension": "system", "status": "ok", ...}`, `Some(Err(message))` for its error (the
/// server closes the channel next), `None` for any other system message.
pub fn replication_status(payload: &Value) -> Option<Result<(), String>> {
    if payload.get("extension").and_then(Value::as_str) != Some(SYSTEM_EXTENSION) {
        return None;
    }
    let message = || match payload.get("message") {
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => "replication is not ready".to_owned(),
    };
    match payload.get("status").and_then(Value::as_str) {
        Some("ok") => Some(Ok(())),
        Some(_) => Some(Err(message())),
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn persist_forms() {
        assert_eq!(Persist::No.metadata(), "");
        assert_eq!(Persist::No.query(), None);
        assert_eq!(Persist::Yes.query().as_deref(), Some("persist=true"));
        let ttl = Persist::Ttl(Duration::from_secs(3600));
        assert_eq!(ttl.metadata(), r#"{"persist":{"ttl":3600}}"#);
        assert_eq!(ttl.to_value(), Some(json!({"ttl": 3600})));
    }

    #[test]
    fn sends_carry_persist() {
        let f = Frame::broadcast(None, "3".into(), "realtime:t", "e", json!({"n": 1}))
            .with_persist(Persist::Yes);
        assert_eq!(
            f.payload,
            json!({"type": "broadcast", "event": "e", "payload": {"n": 1}, "persist": true})
        );
        let b = BinaryFrame::user_broadcast_push(
            None,
            "3".into(),
            "realtime:t",
            "e",
            crate::BroadcastPayload::Json("{}".into()),
        )
        .with_persist(Persist::Ttl(Duration::from_secs(5)));
        let BinaryFrame::UserBroadcastPush { metadata, .. } = b else {
            panic!("kind 3")
        };
        assert_eq!(metadata, r#"{"persist":{"ttl":5}}"#);
    }

    #[test]
    fn meta_is_read_leniently() {
        let m = BroadcastMeta::from_value(&json!({"id": "a", "replayed": true, "x": 1}));
        assert_eq!(m.id.as_deref(), Some("a"));
        assert!(m.replayed);
        let live = BroadcastMeta::from_json(r#"{"id":"b"}"#);
        assert_eq!(live.id.as_deref(), Some("b"));
        assert!(!live.replayed);
        assert_eq!(BroadcastMeta::from_json("nope"), BroadcastMeta::default());
        assert_eq!(
            BroadcastMeta::from_value(&json!({"id": 5, "replayed": "yes"})),
            BroadcastMeta::default()
        );
    }

    #[test]
    fn replication_messages() {
        let ok = json!({"extension": "system", "status": "ok",
                        "message": "Replication connection established", "channel": "c"});
        assert_eq!(replication_status(&ok), Some(Ok(())));
        let err = json!({"extension": "system", "status": "error",
                         "message": "Replication connection was not established in time"});
        assert_eq!(
            replication_status(&err),
            Some(Err(
                "Replication connection was not established in time".into()
            ))
        );
        let pg = json!({"extension": "postgres_changes", "status": "ok"});
        assert_eq!(replication_status(&pg), None);
    }
}
