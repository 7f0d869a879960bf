//! Text frames: vsn 2.0.0 JSON arrays and vsn 1.0.0 JSON objects.

use std::fmt;

use serde_json::{Map, Value};

/// The serializer version negotiated by the `vsn` query parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Vsn {
    /// `vsn=1.0.0` (or no `vsn`): JSON objects; server frames carry no `join_ref`; no binary.
    V1,
    /// `vsn=2.0.0`: JSON arrays `[join_ref, ref, topic, event, payload]` plus binary frames.
    V2,
}

impl Vsn {
    /// Parses the `vsn` query value as the server does (`~> 1.0.0` / `~> 2.0.0`).
    /// A missing value means V1; anything else is `None` (the server refuses with 403).
    pub fn from_query(value: Option<&str>) -> Option<Vsn> {
        let Some(v) = value else { return Some(Vsn::V1) };
        let mut parts = v.split('.');
        let major = parts.next()?;
        let minor = parts.next()?;
        let patch = parts.next()?;
        if parts.next().is_some() || minor != "0" || patch.parse::<u32>().is_err() {
            return None;
        }
        match major {
            "1" => Some(Vsn::V1),
            "2" => Some(Vsn::V2),
            _ => None,
        }
    }

    /// The query-string value for this version.
    pub fn as_str(self) -> &'static str {
        match self {
            Vsn::V1 => "1.0.0",
            Vsn::V2 => "2.0.0",
        }
    }
}

/// One text frame. `join_ref` and `ref` are strings or absent (`null` on the wire).
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    pub join_ref: Option<String>,
    pub r#ref: Option<String>,
    pub topic: String,
    pub event: String,
    pub payload: Value,
}

/// Why a text frame could not be decoded. Servers drop such frames; clients log and skip them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// Not JSON at all.
    InvalidJson(String),
    /// JSON, but not the expected array (V2) or object (V1) shape.
    Shape(&'static str),
    /// A binary frame that is truncated or has an unknown kind.
    Binary(&'static str),
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::InvalidJson(e) => write!(f, "malformed frame: invalid JSON: {e}"),
            DecodeError::Shape(what) => write!(f, "malformed frame: {what}"),
            DecodeError::Binary(what) => write!(f, "malformed binary frame: {what}"),
        }
    }
}

impl std::error::Error for DecodeError {}

impl Frame {
    /// A frame with the given fields.
    pub fn new(
        join_ref: Option<String>,
        r#ref: Option<String>,
        topic: impl Into<String>,
        event: impl Into<String>,
        payload: Value,
    ) -> Frame {
        Frame {
            join_ref,
            r#ref,
            topic: topic.into(),
            event: event.into(),
            payload,
        }
    }

    /// A `phx_reply` to `request`, echoing its refs:
    /// `{"status": status, "response": response}`.
    pub fn reply_to(request: &Frame, status: &str, response: Value) -> Frame {
        Frame {
            join_ref: request.join_ref.clone(),
            r#ref: request.r#ref.clone(),
            topic: request.topic.clone(),
            event: crate::event::REPLY.to_owned(),
            payload: reply_payload(status, response),
        }
    }

    /// For a `phx_reply`: the `status` field.
    pub fn reply_status(&self) -> Option<&str> {
        self.payload.get("status").and_then(Value::as_str)
    }

    /// For a `phx_reply`: the `response` field.
    pub fn reply_response(&self) -> Option<&Value> {
        self.payload.get("response")
    }

    /// Decodes a text frame of the given version.
    pub fn decode(vsn: Vsn, text: &str) -> Result<Frame, DecodeError> {
        let value: Value =
            serde_json::from_str(text).map_err(|e| DecodeError::InvalidJson(e.to_string()))?;
        match vsn {
            Vsn::V2 => Frame::from_array(value),
            Vsn::V1 => Frame::from_object(value),
        }
    }

    fn from_array(value: Value) -> Result<Frame, DecodeError> {
        let Value::Array(items) = value else {
            return Err(DecodeError::Shape("expected a JSON array"));
        };
        if items.len() < 5 {
            return Err(DecodeError::Shape("expected 5 elements"));
        }
        // The server decodes the first five elements and ignores the rest.
        let mut it = items.into_iter();
        let join_ref = opt_ref(it.next().unwrap_or(Value::Null))?;
        let r#ref = opt_ref(it.next().unwrap_or(Value::Null))?;
        let topic = string(it.next(), "topic must be a string")?;
        let event = string(it.next(), "event must be a string")?;
        let payload = it.next().unwrap_or(Value::Null);
        Ok(Frame {
            join_ref,
            r#ref,
            topic,
            event,
            payload,
        })
    }

    fn from_object(value: Value) -> Result<Frame, DecodeError> {
        let Value::Object(mut map) = value else {
            return Err(DecodeError::Shape("expected a JSON object"));
        };
        let join_ref = opt_ref(map.remove("join_ref").unwrap_or(Value::Null))?;
        let r#ref = opt_ref(map.remove("ref").unwrap_or(Value::Null))?;
        let topic = string(map.remove("topic"), "topic must be a string")?;
        let event = string(map.remove("event"), "event must be a string")?;
        let payload = map.remove("payload").unwrap_or(Value::Null);
        Ok(Frame {
            join_ref,
            r#ref,
            topic,
            event,
            payload,
        })
    }

    /// Encodes the frame as a client sends it (V1 objects include `join_ref`).
    pub fn encode(&self, vsn: Vsn) -> String {
        match vsn {
            Vsn::V2 => self.encode_array(),
            Vsn::V1 => self.encode_object(true),
        }
    }

    /// Encodes the frame as the server sends it: V1 server frames carry no `join_ref`.
    pub fn encode_server(&self, vsn: Vsn) -> String {
        match vsn {
            Vsn::V2 => self.encode_array(),
            Vsn::V1 => self.encode_object(false),
        }
    }

    fn encode_array(&self) -> String {
        // Serialising a tuple of borrows avoids cloning the payload.
        serde_json::to_string(&(
            &self.join_ref,
            &self.r#ref,
            &self.topic,
            &self.event,
            &self.payload,
        ))
        .expect("a Value always serialises")
    }

    fn encode_object(&self, with_join_ref: bool) -> String {
        #[derive(serde::Serialize)]
        struct V1<'a> {
            topic: &'a str,
            event: &'a str,
            payload: &'a Value,
            r#ref: &'a Option<String>,
            #[serde(skip_serializing_if = "Option::is_none")]
            join_ref: Option<&'a Option<String>>,
        }
        serde_json::to_string(&V1 {
            topic: &self.topic,
            event: &self.event,
            payload: &self.payload,
            r#ref: &self.r#ref,
            join_ref: with_join_ref.then_some(&self.join_ref),
        })
        .expect("a Value always serialises")
    }
}

/// `{"status": status, "response": response}`.
pub(crate) fn reply_payload(status: &str, response: Value) -> Value {
    let mut map = Map::with_capacity(2);
    map.insert("status".into(), Value::String(status.to_owned()));
    map.insert("response".into(), response);
    Value::Object(map)
}

/// Refs are strings; a number is accepted and kept as its decimal text.
fn opt_ref(value: Value) -> Result<Option<String>, DecodeError> {
    match value {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s)),
        Value::Number(n) => Ok(Some(n.to_string())),
        _ => Err(DecodeError::Shape("refs must be strings or null")),
    }
}

fn string(value: Option<Value>, what: &'static str) -> Result<String, DecodeError> {
    match value {
        Some(Value::String(s)) => Ok(s),
        _ => Err(DecodeError::Shape(what)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn v2_join_round_trip() {
        let text = r#"["1","1","realtime:room1","phx_join",{"config":{"private":false}}]"#;
        let frame = Frame::decode(Vsn::V2, text).unwrap();
        assert_eq!(frame.join_ref.as_deref(), Some("1"));
        assert_eq!(frame.r#ref.as_deref(), Some("1"));
        assert_eq!(frame.topic, "realtime:room1");
        assert_eq!(frame.event, "phx_join");
        assert_eq!(frame.payload, json!({"config": {"private": false}}));
        assert_eq!(frame.encode(Vsn::V2), text);
    }

    #[test]
    fn v2_fanout_has_null_refs() {
        let text = r#"[null,null,"realtime:room1","broadcast",{"type":"broadcast","event":"cursor","payload":{"x":1}}]"#;
        let frame = Frame::decode(Vsn::V2, text).unwrap();
        assert_eq!(frame.join_ref, None);
        assert_eq!(frame.r#ref, None);
        assert_eq!(frame.encode(Vsn::V2), text);
    }

    /// A number with more digits than an f64 holds decodes to the nearest f64 (as JSON.parse),
    /// so re-encoding it gives the same value back. Found by fuzz/text_frame.
    #[test]
    fn long_numbers_round_trip() {
        for n in [
            "111111105555555555277",
            "0.30000000000000000000000000001",
            "1.00000000000000011102230246251565404236316680908203125",
        ] {
            let text = format!(r#"[null,null,"a","broadcast",{n}]"#);
            let frame = Frame::decode(Vsn::V2, &text).unwrap();
            let want: f64 = n.parse().unwrap();
            assert_eq!(frame.payload.as_f64(), Some(want), "{n}");
            assert_eq!(
                Frame::decode(Vsn::V2, &frame.encode(Vsn::V2)).unwrap(),
                frame
            );
        }
    }

    #[test]
    fn v2_extra_elements_ignored() {
        let frame =
            Frame::decode(Vsn::V2, r#"[null,"1","phoenix","heartbeat",{},"extra"]"#).unwrap();
        assert_eq!(frame.event, "heartbeat");
    }

    #[test]
    fn v2_rejects_malformed() {
        for bad in [
            "",
            "{}",
            "\"x\"",
            "[1,2,3]",
            "[null,null,1,\"e\",{}]",
            "not json",
            "[null,{},\"t\",\"e\",{}]",
        ] {
            assert!(
                Frame::decode(Vsn::V2, bad).is_err(),
                "{bad} should not decode"
            );
        }
    }

    #[test]
    fn v1_client_and_server_encodings() {
        let frame = Frame::new(
            Some("1".into()),
            Some("2".into()),
            "realtime:a",
            "phx_reply",
            json!({"status": "ok", "response": {}}),
        );
        let client: Value = serde_json::from_str(&frame.encode(Vsn::V1)).unwrap();
        assert_eq!(client["join_ref"], "1");
        let server: Value = serde_json::from_str(&frame.encode_server(Vsn::V1)).unwrap();
        assert!(server.get("join_ref").is_none());
        assert_eq!(server["ref"], "2");
        assert_eq!(
            Frame::decode(Vsn::V1, &frame.encode(Vsn::V1)).unwrap(),
            frame
        );
    }

    #[test]
    fn v1_rejects_arrays() {
        assert!(Frame::decode(Vsn::V1, r#"[null,"1","phoenix","heartbeat",{}]"#).is_err());
    }

    #[test]
    fn reply_echoes_refs() {
        let req = Frame::decode(Vsn::V2, r#"[null,"12","phoenix","heartbeat",{}]"#).unwrap();
        let reply = Frame::reply_to(&req, "ok", json!({}));
        assert_eq!(
            reply.encode(Vsn::V2),
            r#"[null,"12","phoenix","phx_reply",{"status":"ok","response":{}}]"#
        );
        assert_eq!(reply.reply_status(), Some("ok"));
    }

    #[test]
    fn vsn_parsing_matches_server() {
        assert_eq!(Vsn::from_query(None), Some(Vsn::V1));
        assert_eq!(Vsn::from_query(Some("1.0.0")), Some(Vsn::V1));
        assert_eq!(Vsn::from_query(Some("2.0.0")), Some(Vsn::V2));
        assert_eq!(Vsn::from_query(Some("2.0.7")), Some(Vsn::V2));
        for bad in ["3.0.0", "2.1.0", "2", "abc", "", "2.0.x"] {
            assert_eq!(Vsn::from_query(Some(bad)), None, "{bad}");
        }
    }
}
