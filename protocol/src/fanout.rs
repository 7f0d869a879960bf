//! The fast path for the bulk of inbound traffic: fan-out JSON broadcasts
//! `[null,null,topic,"broadcast",{"type":"broadcast","event":…,"payload":…,"meta"?:…}]`
//! (vsn 2.0.0 text frames).
//!
//! [`FanoutBroadcast::decode`] reads such a frame without building any `Value`: topic and
//! event are borrowed from the text (owned only when they contain escapes) and the user
//! payload and `meta` stay raw JSON text, so a receiver can parse them where it likes (or hand
//! the text on unparsed). It reads what [`crate::Frame::decode`] reads for the same frame;
//! anything else (refs set, another event, a body that is not an object, duplicate keys, a
//! non-string event) is `None`, and the caller takes the general path.
//!
//! ```
//! use supa_realtime_protocol::FanoutBroadcast;
//! let text = r#"[null,null,"realtime:room1","broadcast",{"type":"broadcast","event":"cursor","payload":{"x":1}}]"#;
//! let b = FanoutBroadcast::decode(text).unwrap();
//! assert_eq!((&*b.topic, b.event.as_deref()), ("realtime:room1", Some("cursor")));
//! assert_eq!(b.payload.map(|p| p.get()), Some(r#"{"x":1}"#));
//! assert!(FanoutBroadcast::decode(r#"["1",null,"realtime:room1","broadcast",{}]"#).is_none());
//! ```

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use crate::event;

/// A fan-out broadcast borrowed from its frame text.
#[derive(Debug, Clone)]
pub struct FanoutBroadcast<'a> {
    pub topic: Cow<'a, str>,
    /// The user event (`payload.event`), when it is present.
    pub event: Option<Cow<'a, str>>,
    /// The user payload's JSON text (`payload.payload`); `None` when the key is absent.
    pub payload: Option<&'a RawValue>,
    /// `payload.meta`'s JSON text, present even when it is `null` (as `Value::get` would be).
    pub meta: Option<&'a RawValue>,
}

impl<'a> FanoutBroadcast<'a> {
    /// Decodes a fan-out broadcast, or `None` for any other frame (see the module docs).
    pub fn decode(text: &'a str) -> Option<FanoutBroadcast<'a>> {
        // Cheap rejection of everything that is not a null-ref frame before serde starts.
        if !text.starts_with("[null,null,\"") {
            return None;
        }
        let mut de = serde_json::Deserializer::from_str(text);
        let b = FanoutBroadcast::deserialize(&mut de).ok()?;
        de.end().ok()?;
        Some(b)
    }
}

/// Why the visitor stopped early; never shown (the caller just takes the general path).
const NOT_FAST: &str = "not a fan-out broadcast";

impl<'de: 'a, 'a> Deserialize<'de> for FanoutBroadcast<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_seq(Envelope)
    }
}

/// `[join_ref, ref, topic, event, body, ...]`, stopping as soon as the frame is not ours.
struct Envelope;

impl<'de> Visitor<'de> for Envelope {
    type Value = FanoutBroadcast<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a fan-out broadcast frame")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        for _ in 0..2 {
            // join_ref and ref: both null.
            match seq.next_element::<Option<IgnoredAny>>()? {
                Some(None) => {}
                _ => return Err(de::Error::custom(NOT_FAST)),
            }
        }
        let Some(Text(topic)) = seq.next_element::<Text>()? else {
            return Err(de::Error::custom(NOT_FAST));
        };
        match seq.next_element::<Text>()? {
            Some(Text(e)) if e == event::BROADCAST => {}
            _ => return Err(de::Error::custom(NOT_FAST)),
        }
        let Some(body) = seq.next_element::<Body>()? else {
            return Err(de::Error::custom(NOT_FAST));
        };
        // The server ignores elements after the fifth; so does Frame::decode.
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(FanoutBroadcast {
            topic,
            event: body.event,
            payload: body.payload,
            meta: body.meta,
        })
    }
}

/// A JSON string, borrowed from the input unless it has escapes.
struct Text<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

/// The broadcast payload object `{type, event, payload, meta?}`; other keys are skipped.
struct Body<'a> {
    event: Option<Cow<'a, str>>,
    payload: Option<&'a RawValue>,
    meta: Option<&'a RawValue>,
}

impl<'de: 'a, 'a> Deserialize<'de> for Body<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Body<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a broadcast payload object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Body<'de>, A::Error> {
                let mut body = Body {
                    event: None,
                    payload: None,
                    meta: None,
                };
                // A key seen twice: the general path keeps the last value; leave it to it.
                let once = |seen: bool| match seen {
                    true => Err(de::Error::custom(NOT_FAST)),
                    false => Ok(()),
                };
                while let Some(Text(key)) = map.next_key::<Text>()? {
                    match &*key {
                        "event" => {
                            once(body.event.is_some())?;
                            body.event = Some(map.next_value::<Text>()?.0);
                        }
                        "payload" => {
                            once(body.payload.is_some())?;
                            body.payload = Some(map.next_value::<&RawValue>()?);
                        }
                        "meta" => {
                            once(body.meta.is_some())?;
                            body.meta = Some(map.next_value::<&RawValue>()?);
                        }
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(body)
            }
        }
        d.deserialize_map(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Frame, Vsn};
    use serde_json::Value;

    /// What the general path makes of the same frame: (topic, event, payload, meta).
    fn general(text: &str) -> (String, Option<String>, Value, Option<Value>) {
        let f = Frame::decode(Vsn::V2, text).unwrap();
        (
            f.topic,
            f.payload
                .get("event")
                .and_then(Value::as_str)
                .map(str::to_owned),
            f.payload.get("payload").cloned().unwrap_or(Value::Null),
            f.payload.get("meta").cloned(),
        )
    }

    fn fast(text: &str) -> Option<(String, Option<String>, Value, Option<Value>)> {
        let b = FanoutBroadcast::decode(text)?;
        let parse = |r: &RawValue| serde_json::from_str::<Value>(r.get()).unwrap();
        Some((
            b.topic.into_owned(),
            b.event.map(Cow::into_owned),
            b.payload.map(parse).unwrap_or(Value::Null),
            b.meta.map(parse),
        ))
    }

    #[test]
    fn reads_what_the_general_path_reads() {
        for text in [
            r#"[null,null,"realtime:a","broadcast",{"type":"broadcast","event":"e","payload":{"x":1},"meta":null,"extra":[1]}]"#,
            r#"[null,null,"realtime:a","broadcast",{"type":"broadcast","event":"cursor","payload":{"x":1}}]"#,
            // Escapes are decoded; missing keys default as `get` does.
            r#"[null,null,"realtime:a\"b","broadcast",{"event":"\u00e9"}]"#,
            r#"[null,null,"realtime:a","broadcast",{"meta":{"id":"u"},"payload":[1,"two",null]}]"#,
            r#"[null,null,"realtime:a","broadcast",{}]"#,
            // Extra elements are ignored, as the server and Frame::decode ignore them.
            r#"[null,null,"realtime:a","broadcast",{"event":"e"},"sixth"]"#,
            " [null,null,\"realtime:a\",\"broadcast\",{\"event\":\"e\"}] ",
        ] {
            let trimmed = text.trim_start();
            assert_eq!(fast(trimmed), Some(general(trimmed)), "{text}");
        }
        let b = FanoutBroadcast::decode(r#"[null,null,"realtime:a","broadcast",{"event":"e"}]"#)
            .unwrap();
        assert!(matches!(b.topic, Cow::Borrowed(_)) && matches!(b.event, Some(Cow::Borrowed(_))));
    }

    #[test]
    fn raw_payload_is_the_original_text() {
        let text = r#"[null,null,"realtime:a","broadcast",{"event":"e","payload":{"b" : [1, 2.50]},"meta":null}]"#;
        let b = FanoutBroadcast::decode(text).unwrap();
        assert_eq!(b.payload.unwrap().get(), r#"{"b" : [1, 2.50]}"#);
        assert_eq!(b.meta.unwrap().get(), "null");
    }

    #[test]
    fn other_frames_take_the_general_path() {
        for text in [
            r#"["1",null,"realtime:a","broadcast",{"event":"e"}]"#,
            r#"[null,"1","realtime:a","broadcast",{"event":"e"}]"#,
            r#"[null,null,"realtime:a","broadcast",{"event":"e","event":"f"}]"#,
            r#"[null,null,"realtime:a","broadcast",{"payload":1,"payload":2}]"#,
            r#"[null,null,"realtime:a","broadcast",{"event":7}]"#,
            r#"[null,null,"realtime:a","broadcast",["e",1]]"#,
            r#"[null,null,"realtime:a","broadcast"]"#,
            r#"[null,null,"realtime:a","presence_diff",{"joins":{}}]"#,
            r#"[null,null,"realtime:a","broadcast",{"event":"e"}] x"#,
            r#"[null,null,"realtime:a","broadcast",{"event":"e","payload":{]"#,
            r#"{"topic":"realtime:a","event":"broadcast","payload":{},"ref":null}"#,
            "",
        ] {
            assert!(FanoutBroadcast::decode(text).is_none(), "{text}");
        }
    }
}
