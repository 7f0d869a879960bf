//! Builders for the frames a client sends (protocol reference §4, §7–§11): the one place that
//! knows their exact shape. Refs are the caller's (phoenix.js takes them from one socket-wide
//! counter); a join's ref is its join_ref.
//!
//! ```
//! use supa_realtime_protocol::{Frame, Vsn};
//! let hb = Frame::heartbeat("12".into());
//! assert_eq!(hb.encode(Vsn::V2), r#"[null,"12","phoenix","heartbeat",{}]"#);
//! ```

use serde_json::{json, Map, Value};

use crate::binary::{BinaryFrame, BroadcastPayload};
use crate::event;
use crate::frame::Frame;
use crate::join::JoinPayload;
use crate::PHOENIX_TOPIC;

fn empty() -> Value {
    Value::Object(Map::new())
}

impl Frame {
    /// `phx_join`: a fresh ref that is also the join_ref of everything the channel sends until
    /// its next join.
    pub fn join(join_ref: String, topic: impl Into<String>, payload: &JoinPayload) -> Frame {
        Frame::new(
            Some(join_ref.clone()),
            Some(join_ref),
            topic,
            event::JOIN,
            payload.to_value(),
        )
    }

    /// `phx_leave` with an empty payload; the server replies and then sends `phx_close`.
    pub fn leave(join_ref: Option<String>, r#ref: String, topic: impl Into<String>) -> Frame {
        Frame::new(join_ref, Some(r#ref), topic, event::LEAVE, empty())
    }

    /// A heartbeat on the reserved `phoenix` topic (no join_ref).
    pub fn heartbeat(r#ref: String) -> Frame {
        Frame::new(None, Some(r#ref), PHOENIX_TOPIC, event::HEARTBEAT, empty())
    }

    /// `access_token` for a joined channel (the server never replies to it).
    pub fn access_token(
        join_ref: Option<String>,
        r#ref: String,
        topic: impl Into<String>,
        token: &str,
    ) -> Frame {
        Frame::new(
            join_ref,
            Some(r#ref),
            topic,
            event::ACCESS_TOKEN,
            json!({ "access_token": token }),
        )
    }

    /// A broadcast in its JSON form: `{"type":"broadcast","event":…,"payload":…}` (vsn 1.0.0,
    /// or any client that chooses text frames).
    pub fn broadcast(
        join_ref: Option<String>,
        r#ref: String,
        topic: impl Into<String>,
        user_event: &str,
        payload: Value,
    ) -> Frame {
        Frame::new(
            join_ref,
            Some(r#ref),
            topic,
            event::BROADCAST,
            json!({"type": "broadcast", "event": user_event, "payload": payload}),
        )
    }

    /// Presence `track` with `meta` (the server wants a JSON object).
    pub fn presence_track(
        join_ref: Option<String>,
        r#ref: String,
        topic: impl Into<String>,
        meta: Value,
    ) -> Frame {
        Frame::new(
            join_ref,
            Some(r#ref),
            topic,
            event::PRESENCE,
            json!({"type": "presence", "event": "track", "payload": meta}),
        )
    }

    /// Presence `untrack`.
    pub fn presence_untrack(
        join_ref: Option<String>,
        r#ref: String,
        topic: impl Into<String>,
    ) -> Frame {
        Frame::new(
            join_ref,
            Some(r#ref),
            topic,
            event::PRESENCE,
            json!({"type": "presence", "event": "untrack"}),
        )
    }
}

impl BinaryFrame {
    /// A broadcast as realtime-js sends it on vsn 2.0.0: kind 3, no metadata. Encoding it
    /// fails when the topic or event is longer than 255 bytes.
    pub fn user_broadcast_push(
        join_ref: Option<String>,
        r#ref: String,
        topic: impl Into<String>,
        user_event: impl Into<String>,
        payload: BroadcastPayload,
    ) -> BinaryFrame {
        BinaryFrame::UserBroadcastPush {
            join_ref,
            r#ref: Some(r#ref),
            topic: topic.into(),
            event: user_event.into(),
            metadata: String::new(),
            payload,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::join::JoinConfig;
    use crate::Vsn;

    fn v2(frame: Frame) -> String {
        frame.encode(Vsn::V2)
    }

    /// The frames of protocol.md's appendix A transcript and §4, §8, §10, §11.
    #[test]
    fn golden_frames() {
        let join = JoinPayload {
            config: Some(JoinConfig::default()),
            access_token: Some("jwt".into()),
            ..JoinPayload::default()
        };
        assert_eq!(
            v2(Frame::join("1".into(), "realtime:room1", &join)),
            r#"["1","1","realtime:room1","phx_join",{"config":{"broadcast":{"ack":false,"self":false},"presence":{"key":"","enabled":false},"private":false,"postgres_changes":[]},"access_token":"jwt"}]"#
        );
        assert_eq!(
            v2(Frame::leave(Some("1".into()), "6".into(), "realtime:room1")),
            r#"["1","6","realtime:room1","phx_leave",{}]"#
        );
        assert_eq!(
            v2(Frame::heartbeat("4".into())),
            r#"[null,"4","phoenix","heartbeat",{}]"#
        );
        assert_eq!(
            v2(Frame::access_token(
                Some("1".into()),
                "5".into(),
                "realtime:room1",
                "<refreshed JWT>"
            )),
            r#"["1","5","realtime:room1","access_token",{"access_token":"<refreshed JWT>"}]"#
        );
        assert_eq!(
            v2(Frame::broadcast(
                Some("1".into()),
                "3".into(),
                "realtime:room1",
                "ping",
                json!({"n": 1})
            )),
            r#"["1","3","realtime:room1","broadcast",{"type":"broadcast","event":"ping","payload":{"n":1}}]"#
        );
        assert_eq!(
            v2(Frame::presence_track(
                Some("1".into()),
                "6".into(),
                "realtime:room1",
                json!({"user": "alice"})
            )),
            r#"["1","6","realtime:room1","presence",{"type":"presence","event":"track","payload":{"user":"alice"}}]"#
        );
        assert_eq!(
            v2(Frame::presence_untrack(
                Some("1".into()),
                "7".into(),
                "realtime:room1"
            )),
            r#"["1","7","realtime:room1","presence",{"type":"presence","event":"untrack"}]"#
        );
    }

    /// protocol.md §2.3's worked example, built rather than spelled out.
    #[test]
    fn kind3_broadcast_push() {
        let frame = BinaryFrame::user_broadcast_push(
            Some("3".into()),
            "7".into(),
            "realtime:room1",
            "cursor",
            BroadcastPayload::Json(r#"{"x":1}"#.into()),
        );
        let bytes = frame.encode().unwrap();
        assert_eq!(&bytes[..7], &[3, 1, 1, 14, 6, 0, 1]);
        assert_eq!(&bytes[7..], br#"37realtime:room1cursor{"x":1}"#);
        let long = BinaryFrame::user_broadcast_push(
            None,
            "1".into(),
            "realtime:x",
            "e".repeat(256),
            BroadcastPayload::Binary(vec![]),
        );
        assert_eq!(long.encode(), Err("event"));
    }
}
