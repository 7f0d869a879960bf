//! What the engine hands the dispatch queue: finished [`Event`]s, and broadcasts whose user
//! payload is still the JSON text of the frame ([`RawBroadcast`]).
//!
//! Why: parsing the payload is the largest piece of work per message. The network thread only
//! finds where the payload is (the frame stays in the buffer it was read into, shared, not
//! copied); the dispatcher thread parses it just before the Rust callbacks run, so decoding
//! and delivery run on two cores. Listeners that want the text itself (the C ABI hands it to
//! its callback as is) never parse it.

use std::ops::Range;
use std::sync::Arc;

use serde_json::Value;
use tokio_tungstenite::tungstenite::{Bytes, Utf8Bytes};

use crate::event::{Broadcast, ChannelId, Event, Payload};

/// A piece of a received frame's text, shared with the frame (no copy).
#[derive(Debug, Clone)]
pub(crate) struct SharedStr {
    buf: Utf8Bytes,
    range: Range<usize>,
}

impl SharedStr {
    /// `part`, which must lie inside `buf`; `None` when it does not.
    pub(crate) fn within(buf: &Utf8Bytes, part: &str) -> Option<SharedStr> {
        let base = buf.as_str().as_ptr() as usize;
        let start = (part.as_ptr() as usize).checked_sub(base)?;
        let range = start..start + part.len();
        buf.as_str().get(range.clone())?;
        Some(SharedStr {
            buf: buf.clone(),
            range,
        })
    }

    /// `bytes[range]` when it is UTF-8.
    pub(crate) fn from_bytes(bytes: &Bytes, range: Range<usize>) -> Option<SharedStr> {
        let buf = Utf8Bytes::try_from(bytes.slice(range)).ok()?;
        let range = 0..buf.len();
        Some(SharedStr { buf, range })
    }

    pub(crate) fn as_str(&self) -> &str {
        // `within` and `from_bytes` checked that the range is a valid slice.
        self.buf
            .as_str()
            .get(self.range.clone())
            .unwrap_or_default()
    }
}

impl From<String> for SharedStr {
    fn from(s: String) -> Self {
        let range = 0..s.len();
        SharedStr {
            buf: s.into(),
            range,
        }
    }
}

/// A received broadcast's user payload, not parsed yet.
#[derive(Debug, Clone)]
pub(crate) enum RawPayload {
    /// JSON text (syntax checked on the network thread).
    Json(SharedStr),
    Binary(Bytes),
    /// The broadcast had no `payload` key (`null` for the application).
    Absent,
}

/// A broadcast as it came off the wire; [`RawBroadcast::parse`] makes the [`Broadcast`].
#[derive(Debug, Clone)]
pub(crate) struct RawBroadcast {
    pub topic: Arc<str>,
    pub event: SharedStr,
    pub payload: RawPayload,
    /// `meta` as JSON text, when present.
    pub meta: Option<SharedStr>,
}

impl RawBroadcast {
    /// The payload's JSON text, for JSON payloads.
    pub(crate) fn payload_json(&self) -> Option<&str> {
        match &self.payload {
            RawPayload::Json(s) => Some(s.as_str()),
            RawPayload::Absent => Some("null"),
            RawPayload::Binary(_) => None,
        }
    }

    /// The broadcast the Rust API hands out, or why its payload is not JSON it can hold (an
    /// `Event::Error` message, as the client reported unparsable broadcasts before).
    pub(crate) fn parse(&self) -> Result<Broadcast, String> {
        let payload = match &self.payload {
            RawPayload::Json(text) => match serde_json::from_str(text.as_str()) {
                Ok(v) => Payload::Json(v),
                Err(e) => {
                    return Err(format!(
                        "broadcast {:?} on {}: invalid JSON payload: {e}",
                        self.event.as_str(),
                        self.topic
                    ))
                }
            },
            RawPayload::Binary(b) => Payload::Binary(b.to_vec()),
            RawPayload::Absent => Payload::Json(Value::Null),
        };
        // Metadata that is not JSON is left out, as it always was.
        let meta = self
            .meta
            .as_ref()
            .and_then(|m| serde_json::from_str(m.as_str()).ok());
        Ok(Broadcast {
            topic: String::from(&*self.topic),
            event: self.event.as_str().to_owned(),
            payload,
            meta,
        })
    }
}

/// One entry for the dispatch queue.
#[derive(Debug, Clone)]
pub(crate) enum Incoming {
    Event(Event),
    Broadcast(RawBroadcast),
}

impl Incoming {
    /// Data events may be dropped when the queue is full; lifecycle events never are.
    pub(crate) fn is_lifecycle(&self) -> bool {
        match self {
            Incoming::Event(e) => e.is_lifecycle(),
            Incoming::Broadcast(_) => false,
        }
    }

    /// The event as the Rust API sees it (broadcasts parsed; an unparsable one becomes the
    /// `Event::Error` that reports it).
    pub(crate) fn to_event(&self) -> Event {
        match self {
            Incoming::Event(e) => e.clone(),
            Incoming::Broadcast(raw) => match raw.parse() {
                Ok(b) => Event::Broadcast(b),
                Err(message) => Event::Error { message },
            },
        }
    }
}

impl From<Event> for Incoming {
    fn from(e: Event) -> Self {
        Incoming::Event(e)
    }
}

impl From<RawBroadcast> for Incoming {
    fn from(b: RawBroadcast) -> Self {
        Incoming::Broadcast(b)
    }
}

/// One entry for the dispatch queue, in order.
#[derive(Debug)]
pub(crate) enum Emit {
    Event(Option<ChannelId>, Incoming),
    /// Drop a finished channel's listeners (after its final events).
    RemoveChannel(ChannelId),
}

/// A broadcast as a raw listener sees it: parsed already (it came through the general path),
/// or still text.
#[derive(Debug, Clone, Copy)]
pub(crate) enum BroadcastRef<'a> {
    Parsed(&'a Broadcast),
    Raw(&'a RawBroadcast),
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn shared_slices_point_into_the_frame() {
        let frame: Utf8Bytes = r#"[null,null,"t","broadcast",{"payload":{"a":1}}]"#.into();
        let at = frame.as_str().find("{\"a\"").unwrap();
        let part = &frame.as_str()[at..at + 7];
        let s = SharedStr::within(&frame, part).unwrap();
        assert_eq!(s.as_str(), r#"{"a":1}"#);
        assert!(SharedStr::within(&frame, "elsewhere").is_none());
        let bytes = Bytes::from_static(b"ab\xffcd");
        assert!(SharedStr::from_bytes(&bytes, 0..2).is_some());
        assert!(SharedStr::from_bytes(&bytes, 1..4).is_none());
    }

    #[test]
    fn parses_for_the_rust_api() {
        let raw = RawBroadcast {
            topic: "realtime:a".into(),
            event: String::from("e").into(),
            payload: RawPayload::Json(String::from(r#"{"x":[1,2]}"#).into()),
            meta: Some(String::from("not json").into()),
        };
        let b = raw.parse().unwrap();
        assert_eq!(b.payload, Payload::Json(json!({"x": [1, 2]})));
        assert_eq!(b.meta, None);
        assert_eq!(raw.payload_json(), Some(r#"{"x":[1,2]}"#));
        let deep = RawBroadcast {
            payload: RawPayload::Json(String::from(r#""\ud800""#).into()),
            ..raw
        };
        let err = deep.parse().unwrap_err();
        assert!(err.contains("invalid JSON payload"), "{err}");
        assert!(matches!(
            Incoming::Broadcast(deep).to_event(),
            Event::Error { .. }
        ));
    }
}
