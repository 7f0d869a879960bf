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
use tokio_tungstenite::tungstenite::Bytes;

use crate::event::{Broadcast, ChannelId, Event, Payload};

/// A received broadcast's user payload, borrowed from its frame.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum RawPayload<'a> {
    /// JSON text (syntax checked on the network thread).
    Json(&'a str),
    Binary(&'a [u8]),
    /// The broadcast had no `payload` key (`null` for the application).
    Absent,
}

/// Where the payload lies in [`RawBroadcast`]'s buffer.
#[derive(Debug, Clone)]
enum PayloadSpan {
    Json(Range<usize>),
    Binary(Range<usize>),
    Absent,
}

/// A broadcast as it came off the wire; [`RawBroadcast::parse`] makes the [`Broadcast`].
///
/// The event name, payload and `meta` are ranges of one shared buffer, normally the frame they
/// were read from (no copy, one reference count): this value crosses to the dispatcher thread
/// per message, and its size and reference counts are paid there and back.
#[derive(Debug, Clone)]
pub(crate) struct RawBroadcast {
    pub topic: Arc<str>,
    /// The frame, or a buffer of copied parts (see [`RawBroadcast::new`]). Never written.
    buf: Bytes,
    /// UTF-8 (cut from a `&str` by `new`), as are a JSON payload's and `meta`'s ranges.
    event: Range<usize>,
    payload: PayloadSpan,
    meta: Option<Range<usize>>,
}

/// Where `part` lies in `buf`, when it does (an empty part lies anywhere).
fn span_in(buf: &[u8], part: &[u8]) -> Option<Range<usize>> {
    if part.is_empty() {
        return Some(0..0);
    }
    let start = (part.as_ptr() as usize).checked_sub(buf.as_ptr() as usize)?;
    let end = start.checked_add(part.len())?;
    (end <= buf.len()).then_some(start..end)
}

impl RawBroadcast {
    /// The broadcast with these parts. When all of them lie in `frame` they stay there (shared,
    /// not copied); otherwise (an event name with escapes, decoded) they are copied into a
    /// buffer of their own.
    pub(crate) fn new(
        topic: Arc<str>,
        frame: &Bytes,
        event: &str,
        payload: RawPayload<'_>,
        meta: Option<&str>,
    ) -> RawBroadcast {
        let spans = (|| {
            let payload = match payload {
                RawPayload::Json(p) => PayloadSpan::Json(span_in(frame, p.as_bytes())?),
                RawPayload::Binary(p) => PayloadSpan::Binary(span_in(frame, p)?),
                RawPayload::Absent => PayloadSpan::Absent,
            };
            let meta = match meta {
                Some(m) => Some(span_in(frame, m.as_bytes())?),
                None => None,
            };
            Some((span_in(frame, event.as_bytes())?, payload, meta))
        })();
        if let Some((event, payload, meta)) = spans {
            return RawBroadcast {
                topic,
                buf: frame.clone(),
                event,
                payload,
                meta,
            };
        }
        let mut buf = Vec::new();
        let mut put = |part: &[u8]| {
            buf.extend_from_slice(part);
            buf.len() - part.len()..buf.len()
        };
        let event = put(event.as_bytes());
        let payload = match payload {
            RawPayload::Json(p) => PayloadSpan::Json(put(p.as_bytes())),
            RawPayload::Binary(p) => PayloadSpan::Binary(put(p)),
            RawPayload::Absent => PayloadSpan::Absent,
        };
        let meta = meta.map(|m| put(m.as_bytes()));
        RawBroadcast {
            topic,
            buf: buf.into(),
            event,
            payload,
            meta,
        }
    }

    /// A text part.
    fn text(&self, span: &Range<usize>) -> &str {
        let bytes = self.buf.get(span.clone()).unwrap_or_default();
        // SAFETY: text spans are only made by `new`, from `&str` parts found in (or copied
        // into) `buf`, whose bytes never change: they are UTF-8 and cut at char boundaries.
        unsafe { std::str::from_utf8_unchecked(bytes) }
    }

    /// The user event name.
    pub(crate) fn event(&self) -> &str {
        self.text(&self.event)
    }

    pub(crate) fn payload(&self) -> RawPayload<'_> {
        match &self.payload {
            PayloadSpan::Json(s) => RawPayload::Json(self.text(s)),
            PayloadSpan::Binary(s) => {
                RawPayload::Binary(self.buf.get(s.clone()).unwrap_or_default())
            }
            PayloadSpan::Absent => RawPayload::Absent,
        }
    }

    /// `meta` as JSON text, when present.
    pub(crate) fn meta(&self) -> Option<&str> {
        self.meta.as_ref().map(|s| self.text(s))
    }

    /// The payload's JSON text, for JSON payloads.
    pub(crate) fn payload_json(&self) -> Option<&str> {
        match self.payload() {
            RawPayload::Json(s) => Some(s),
            RawPayload::Absent => Some("null"),
            RawPayload::Binary(_) => None,
        }
    }

    /// The broadcast the Rust API hands out, or why its payload is not JSON it can hold (an
    /// `Event::Error` message, as the client reported unparsable broadcasts before).
    pub(crate) fn parse(&self) -> Result<Broadcast, String> {
        let payload = match self.payload() {
            RawPayload::Json(text) => match serde_json::from_str(text) {
                Ok(v) => Payload::Json(v),
                Err(e) => {
                    return Err(format!(
                        "broadcast {:?} on {}: invalid JSON payload: {e}",
                        self.event(),
                        self.topic
                    ))
                }
            },
            RawPayload::Binary(b) => Payload::Binary(b.to_vec()),
            RawPayload::Absent => Payload::Json(Value::Null),
        };
        // Metadata that is not JSON is left out, as it always was.
        let meta = self.meta().and_then(|m| serde_json::from_str(m).ok());
        Ok(Broadcast {
            topic: String::from(&*self.topic),
            event: self.event().to_owned(),
            payload,
            meta,
        })
    }
}

/// One entry for the dispatch queue.
#[derive(Debug, Clone)]
pub(crate) enum Incoming {
    /// Boxed: an `Event` is several times the size of a `RawBroadcast`, and every entry is
    /// moved across to the dispatcher thread and back.
    Event(Box<Event>),
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
            Incoming::Event(e) => (**e).clone(),
            Incoming::Broadcast(raw) => match raw.parse() {
                Ok(b) => Event::Broadcast(b),
                Err(message) => Event::Error { message },
            },
        }
    }
}

impl From<Event> for Incoming {
    fn from(e: Event) -> Self {
        Incoming::Event(Box::new(e))
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
    fn parts_stay_in_the_frame_or_are_copied_together() {
        let frame = Bytes::from_static(
            br#"[null,null,"t","broadcast",{"event":"e","payload":{"a":1},"meta":{"id":"x"}}]"#,
        );
        let text = std::str::from_utf8(&frame).unwrap();
        let find = |s: &str| {
            let at = text.find(s).unwrap();
            &text[at..at + s.len()]
        };
        let (event, payload, meta) = (
            &find(r#""e""#)[1..2],
            find(r#"{"a":1}"#),
            find(r#"{"id":"x"}"#),
        );
        let b = RawBroadcast::new(
            "t".into(),
            &frame,
            event,
            RawPayload::Json(payload),
            Some(meta),
        );
        assert_eq!(b.buf.as_ptr(), frame.as_ptr(), "shared, not copied");
        assert_eq!(
            (b.event(), b.payload_json(), b.meta()),
            ("e", Some(r#"{"a":1}"#), Some(r#"{"id":"x"}"#))
        );
        // An event decoded from escapes lies elsewhere: every part is copied.
        let decoded = String::from("é");
        let c = RawBroadcast::new(
            "t".into(),
            &frame,
            &decoded,
            RawPayload::Json(payload),
            Some(meta),
        );
        assert_ne!(c.buf.as_ptr(), frame.as_ptr());
        assert_eq!(
            (c.event(), c.payload_json(), c.meta()),
            ("é", Some(r#"{"a":1}"#), Some(r#"{"id":"x"}"#))
        );
        let bin = RawBroadcast::new(
            "t".into(),
            &Bytes::new(),
            "",
            RawPayload::Binary(b"\xff\x00"),
            None,
        );
        assert_eq!(
            (bin.event(), bin.payload(), bin.meta()),
            ("", RawPayload::Binary(b"\xff\x00"), None)
        );
        assert_eq!(bin.payload_json(), None);
        let absent = RawBroadcast::new("t".into(), &Bytes::new(), "e", RawPayload::Absent, None);
        assert_eq!(absent.payload_json(), Some("null"));
    }

    #[test]
    fn parses_for_the_rust_api() {
        let none = Bytes::new();
        let raw = |payload: &str| {
            RawBroadcast::new(
                "realtime:a".into(),
                &none,
                "e",
                RawPayload::Json(payload),
                Some("not json"),
            )
        };
        let b = raw(r#"{"x":[1,2]}"#).parse().unwrap();
        assert_eq!(b.payload, Payload::Json(json!({"x": [1, 2]})));
        assert_eq!(b.meta, None);
        assert_eq!(raw(r#"{"x":[1,2]}"#).payload_json(), Some(r#"{"x":[1,2]}"#));
        let deep = raw(r#""\ud800""#);
        let err = deep.parse().unwrap_err();
        assert!(err.contains("invalid JSON payload"), "{err}");
        assert!(matches!(
            Incoming::Broadcast(deep).to_event(),
            Event::Error { .. }
        ));
    }
}
