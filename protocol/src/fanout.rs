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
//! It accepts exactly what `serde_json` would deserialize into this shape, but reads the
//! bytes with the small scanner of `scan` instead of serde visitors, which cost a quarter of
//! the network thread's time on this path. Payload and `meta` are checked as `serde_json`'s
//! `RawValue` checks them (each is one JSON value, its text handed out as is): numbers by the
//! grammar only and no nesting limit, so a payload this accepts can still fail to parse into a
//! `Value` (`1e400`, 128 levels deep).
//!
//! ```
//! use supa_realtime_protocol::FanoutBroadcast;
//! let text = r#"[null,null,"realtime:room1","broadcast",{"type":"broadcast","event":"cursor","payload":{"x":1}}]"#;
//! let b = FanoutBroadcast::decode(text).unwrap();
//! assert_eq!((&*b.topic, b.event.as_deref()), ("realtime:room1", Some("cursor")));
//! assert_eq!(b.payload, Some(r#"{"x":1}"#));
//! assert!(FanoutBroadcast::decode(r#"["1",null,"realtime:room1","broadcast",{}]"#).is_none());
//! ```

use std::borrow::Cow;

use crate::event;
use crate::scan::{self, ws};

/// A fan-out broadcast borrowed from its frame text.
#[derive(Debug, Clone)]
pub struct FanoutBroadcast<'a> {
    pub topic: Cow<'a, str>,
    /// The user event (`payload.event`), when it is present.
    pub event: Option<Cow<'a, str>>,
    /// The user payload's JSON text (`payload.payload`, one JSON value as sent); `None` when
    /// the key is absent.
    pub payload: Option<&'a str>,
    /// `payload.meta`'s JSON text, present even when it is `null` (as `Value::get` would be).
    pub meta: Option<&'a str>,
}

impl<'a> FanoutBroadcast<'a> {
    /// Decodes a fan-out broadcast, or `None` for any other frame (see the module docs).
    ///
    /// It accepts exactly what `serde_json` would deserialize into this shape (with
    /// `Deserializer::end` after it), read by the byte scanner of `scan`.
    pub fn decode(text: &'a str) -> Option<FanoutBroadcast<'a>> {
        // join_ref and ref both null, in the exact spelling servers write: anything else is
        // left to the general path.
        const HEAD: &str = "[null,null,\"";
        if !text.starts_with(HEAD) {
            return None;
        }
        let b = text.as_bytes();
        let (topic, i) = scan::string(text, HEAD.len())?;
        let i = comma(b, i)?;
        let i = match plain(b, i, b"\"broadcast\"") {
            Some(end) => end,
            None => match string_at(text, i)? {
                (e, end) if e == event::BROADCAST => end,
                _ => return None,
            },
        };
        let i = comma(b, i)?;
        if b.get(i) != Some(&b'{') {
            return None;
        }
        let (body, mut i) = Body::read(text, i + 1)?;
        // The server ignores elements after the fifth; so does Frame::decode. They must
        // still be JSON.
        loop {
            i = ws(b, i);
            match *b.get(i)? {
                b']' => break,
                b',' => {
                    let at = ws(b, i + 1);
                    if b.get(at) == Some(&b']') {
                        return None; // a trailing comma
                    }
                    i = scan::value(b, at)?;
                }
                _ => return None,
            }
        }
        if ws(b, i + 1) != b.len() {
            return None;
        }
        Some(FanoutBroadcast {
            topic,
            event: body.event,
            payload: body.payload,
            meta: body.meta,
        })
    }
}

/// A comma between two array elements; returns the position of the next one.
fn comma(b: &[u8], i: usize) -> Option<usize> {
    let i = ws(b, i);
    (b.get(i) == Some(&b',')).then(|| ws(b, i + 1))
}

/// A string value at `i` (whitespace already skipped); anything else is `None`.
fn string_at(text: &str, i: usize) -> Option<(Cow<'_, str>, usize)> {
    match text.as_bytes().get(i) {
        Some(b'"') => scan::string(text, i + 1),
        _ => None,
    }
}

/// `word` at `i` (its exact bytes): the position after it.
fn plain(b: &[u8], i: usize, word: &[u8]) -> Option<usize> {
    b.get(i..)?.starts_with(word).then_some(i + word.len())
}

/// A key of the body object, as far as the fast path cares.
#[derive(Clone, Copy)]
enum Key {
    Event,
    Payload,
    Meta,
    Other,
}

impl Key {
    /// The key at `i` and the position after it. Servers spell the keys plainly, so those
    /// spellings are compared as bytes before any string is read.
    fn read(text: &str, i: usize) -> Option<(Key, usize)> {
        let b = text.as_bytes();
        let plainly = match b.get(i + 1) {
            Some(b'e') => plain(b, i, b"\"event\"").map(|end| (Key::Event, end)),
            Some(b'p') => plain(b, i, b"\"payload\"").map(|end| (Key::Payload, end)),
            Some(b'm') => plain(b, i, b"\"meta\"").map(|end| (Key::Meta, end)),
            Some(b't') => plain(b, i, b"\"type\"").map(|end| (Key::Other, end)),
            _ => None,
        };
        if plainly.is_some() {
            return plainly;
        }
        let (key, end) = string_at(text, i)?;
        let key = match &*key {
            "event" => Key::Event,
            "payload" => Key::Payload,
            "meta" => Key::Meta,
            _ => Key::Other,
        };
        Some((key, end))
    }
}

/// The broadcast payload object `{type, event, payload, meta?}`; other keys are skipped.
struct Body<'a> {
    event: Option<Cow<'a, str>>,
    payload: Option<&'a str>,
    meta: Option<&'a str>,
}

impl<'a> Body<'a> {
    /// Reads the object whose `{` is just before `i`; returns it and the position after `}`.
    fn read(text: &'a str, i: usize) -> Option<(Body<'a>, usize)> {
        let b = text.as_bytes();
        let mut body = Body {
            event: None,
            payload: None,
            meta: None,
        };
        let mut i = ws(b, i);
        if b.get(i) == Some(&b'}') {
            return Some((body, i + 1));
        }
        loop {
            let (key, at) = Key::read(text, i)?;
            let at = ws(b, at);
            if b.get(at) != Some(&b':') {
                return None;
            }
            i = ws(b, at + 1);
            // A key seen twice: the general path keeps the last value; leave it to it.
            match key {
                Key::Event if body.event.is_none() => {
                    let (e, end) = string_at(text, i)?;
                    body.event = Some(e);
                    i = end;
                }
                Key::Payload if body.payload.is_none() => {
                    let end = scan::value(b, i)?;
                    body.payload = Some(&text[i..end]);
                    i = end;
                }
                Key::Meta if body.meta.is_none() => {
                    let end = scan::value(b, i)?;
                    body.meta = Some(&text[i..end]);
                    i = end;
                }
                Key::Event | Key::Payload | Key::Meta => return None,
                Key::Other => i = scan::value(b, i)?,
            }
            i = ws(b, i);
            match *b.get(i)? {
                b'}' => return Some((body, i + 1)),
                b',' => i = ws(b, i + 1),
                _ => return None,
            }
        }
    }
}

#[cfg(test)]
mod oracle;

#[cfg(test)]
mod tests {
    use super::oracle::{oracle, Expected};
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
        let parse = |r: &str| serde_json::from_str::<Value>(r).unwrap();
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
        assert_eq!(b.payload, Some(r#"{"b" : [1, 2.50]}"#));
        assert_eq!(b.meta, Some("null"));
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

    /// The decode as comparable values.
    fn scanned(text: &str) -> Option<Expected> {
        let b = FanoutBroadcast::decode(text)?;
        let string = |c: Cow<str>| match c {
            Cow::Borrowed(s) => {
                let range = text.as_bytes().as_ptr_range();
                assert!(range.contains(&s.as_ptr()) || s.is_empty(), "{text}");
                (s.to_owned(), true)
            }
            Cow::Owned(s) => (s, false),
        };
        Some((
            string(b.topic),
            b.event.map(string),
            b.payload.map(str::to_owned),
            b.meta.map(str::to_owned),
        ))
    }

    fn check(text: &str) -> Option<Expected> {
        let got = scanned(text);
        assert_eq!(got, oracle(text), "{text:?}");
        got
    }

    #[test]
    fn whitespace_between_tokens_is_skipped() {
        let text = "[null,null,\"realtime:a\" \n,\t\"broadcast\"\r, { \"event\" : \"e\" ,\n \"payload\"\t:\r{ \"x\" : [ 1 , 2 ] } , \"meta\" :null } , 3 ] \n\t\r";
        let ((topic, _), event, payload, meta) = check(text).unwrap();
        assert_eq!((&*topic, event.unwrap().0), ("realtime:a", "e".to_owned()));
        assert_eq!(payload.as_deref(), Some("{ \"x\" : [ 1 , 2 ] }"));
        assert_eq!(meta.as_deref(), Some("null"));
        for text in [
            "[null,null,\"t\",\"broadcast\",{ }]",
            "[null,null,\"t\",\"broadcast\",{}\n]",
            "[null,null,\"t\",\"broadcast\",{\"payload\": [ ] ,\"event\":\"e\"}]",
        ] {
            assert!(check(text).is_some(), "{text}");
        }
        // The head is matched as servers write it; other spellings take the general path.
        for text in [
            " [null,null,\"t\",\"broadcast\",{}]",
            "[ null,null,\"t\",\"broadcast\",{}]",
            "[null,null, \"t\",\"broadcast\",{}]",
        ] {
            assert!(FanoutBroadcast::decode(text).is_none(), "{text}");
        }
    }

    #[test]
    fn escapes_decode_as_serde_json_decodes_them() {
        let text = r#"[null,null,"realtime:\u00e9\ud83d\ude00\n\"\\\/","broadc\u0061st",{"\u0065vent":"\uD83D\uDE00"}]"#;
        let FanoutBroadcast { topic, event, .. } = FanoutBroadcast::decode(text).unwrap();
        assert!(matches!(topic, Cow::Owned(_)));
        assert_eq!(topic, "realtime:é😀\n\"\\/");
        assert_eq!(event.as_deref(), Some("😀"));
        // A lone surrogate is not a string to serde_json's `&str` reader (topic, event,
        // keys), but is skipped inside payloads as `IgnoredAny` and `RawValue` skip it.
        for lone in [
            r"\ud800",
            r"\udc00",
            r"\ud800\u0041",
            r"\ud800x",
            r"\ud800\n",
            r"\ud800\ud800",
        ] {
            let topic = format!(r#"[null,null,"a{lone}","broadcast",{{}}]"#);
            let event = format!(r#"[null,null,"a","broadcast",{{"event":"{lone}"}}]"#);
            let key = format!(r#"[null,null,"a","broadcast",{{"{lone}":1}}]"#);
            let payload = format!(r#"[null,null,"a","broadcast",{{"payload":"{lone}"}}]"#);
            for text in [&topic, &event, &key] {
                assert_eq!(check(text), None, "{text}");
            }
            let (_, _, p, _) = check(&payload).unwrap();
            assert_eq!(p.unwrap(), format!("\"{lone}\""));
        }
        for bad in [r"\x", r"\u12G4", r"\u12", "\u{1}", "\n", r"\U0041", "\\"] {
            for text in [
                format!(r#"[null,null,"a{bad}","broadcast",{{}}]"#),
                format!(r#"[null,null,"a","broadcast",{{"payload":["{bad}"]}}]"#),
                format!(r#"[null,null,"a","broadcast",{{"meta":{{"{bad}":1}}}}]"#),
            ] {
                assert_eq!(check(&text), None, "{text}");
            }
        }
        // DEL and multi-byte characters are plain string content.
        assert!(
            check("[null,null,\"a\u{7f}é\",\"broadcast\",{\"payload\":\"\u{7f}😀\"}]").is_some()
        );
    }

    #[test]
    fn numbers_follow_the_json_grammar_without_a_range_check() {
        for good in [
            "0",
            "-0",
            "1.5e+10",
            "-12.5E-3",
            "1e400",
            "-1e-400",
            "0.000",
            "2e-0",
            "123456789012345678901234567890",
        ] {
            let text = format!(r#"[null,null,"a","broadcast",{{"payload":{good},"x":[{good}]}}]"#);
            assert_eq!(check(&text).unwrap().2.as_deref(), Some(good), "{good}");
        }
        for bad in [
            "01", "1.", ".5", "-", "1e", "1e+", "-01", "+1", "0x1", "NaN", "Infinity", "1.e5",
            "--1", "00", "1 2",
        ] {
            for text in [
                format!(r#"[null,null,"a","broadcast",{{"payload":{bad}}}]"#),
                format!(r#"[null,null,"a","broadcast",{{"other":[{bad}]}}]"#),
                format!(r#"[null,null,"a","broadcast",{{}},{bad}]"#),
            ] {
                assert_eq!(check(&text), None, "{text}");
            }
        }
    }

    #[test]
    fn nesting_has_no_depth_limit_as_in_ignore_value() {
        // serde_json's ignore_value (behind RawValue and IgnoredAny) keeps its own stack
        // rather than spending the recursion budget, so deep payloads pass; the scanner
        // must neither reject them nor overflow its stack.
        // Miri runs these tests too, far slower: the deepest case is for native runs.
        let deepest = if cfg!(miri) { 300 } else { 100_000 };
        for depth in [1, 63, 64, 65, 127, 128, 129, 200, deepest] {
            let open = "[{\"k\":".repeat(depth);
            let close = "}]".repeat(depth);
            let text = format!(r#"[null,null,"a","broadcast",{{"payload":{open}1{close}}}]"#);
            assert_eq!(
                check(&text).unwrap().2.map(|p| p.len()),
                Some(8 * depth + 1)
            );
            let bad = format!(r#"[null,null,"a","broadcast",{{"payload":{open}1{close}]}}]"#);
            assert_eq!(check(&bad), None);
            let swapped = format!(
                r#"[null,null,"a","broadcast",{{"payload":{open}1{}]]}}]"#,
                &close[..close.len() - 2]
            );
            assert_eq!(check(&swapped), None);
        }
    }

    #[test]
    fn malformed_frames_are_none() {
        for text in [
            r#"[null,null,"a","broadcast",{"payload":[1,]}]"#,
            r#"[null,null,"a","broadcast",{"payload":{"a":1,}}]"#,
            r#"[null,null,"a","broadcast",{"payload":[1}]}]"#,
            r#"[null,null,"a","broadcast",{"payload":{"a" 1}}]"#,
            r#"[null,null,"a","broadcast",{"payload":{1:1}}]"#,
            r#"[null,null,"a","broadcast",{"payload":{,}}]"#,
            r#"[null,null,"a","broadcast",{"payload":[,1]}]"#,
            r#"[null,null,"a","broadcast",{"payload":nul}]"#,
            r#"[null,null,"a","broadcast",{"payload":nulll}]"#,
            r#"[null,null,"a","broadcast",{"payload":tru}]"#,
            r#"[null,null,"a","broadcast",{"payload":}]"#,
            r#"[null,null,"a","broadcast",{"event":"e",}]"#,
            r#"[null,null,"a","broadcast",{,"event":"e"}]"#,
            r#"[null,null,"a","broadcast",{event:"e"}]"#,
            r#"[null,null,"a","broadcast",{"event" "e"}]"#,
            r#"[null,null,"a","broadcast",{"event":"e" "x":1}]"#,
            r#"[null,null,"a","broadcast",{"event":null}]"#,
            r#"[null,null,"a","broadcast",{"event":{}}]"#,
            r#"[null,null,"a","broadcast",{"meta":1,"meta":1}]"#,
            r#"[null,null,"a","broadcast",{"event":"e","\u0065vent":"e"}]"#,
            r#"[null,null,"a","broadcast",null]"#,
            r#"[null,null,"a","broadcast","{}"]"#,
            r#"[null,null,"a","broadcast",{},]"#,
            r#"[null,null,"a","broadcast",{},1,]"#,
            r#"[null,null,"a","broadcast",{} 1]"#,
            r#"[null,null,"a","broadcast",{}]]"#,
            r#"[null,null,"a","broadcast",{}],"#,
            r#"[null,null,"a","broadcast",{}"#,
            r#"[null,null,"a","broadcast",{"#,
            r#"[null,null,"a","broadcast","#,
            r#"[null,null,"a","broadcast""#,
            r#"[null,null,"a","#,
            r#"[null,null,"a"#,
            r#"[null,null,""#,
            r#"[null,null,"a",,"broadcast",{}]"#,
            r#"[null,null,"a" "broadcast",{}]"#,
            r#"[null,null,"a",broadcast,{}]"#,
            r#"[null,null,"a","broadcast"{}]"#,
            r#"[null,null,"a","Broadcast",{}]"#,
            r#"[null,null,"a",null,{}]"#,
        ] {
            assert_eq!(check(text), None, "{text}");
        }
        // Unknown keys may repeat; their values and extra elements must still be JSON.
        assert!(check(
            r#"[null,null,"a","broadcast",{"type":1,"type":[2],"event":"e"},{"x":[]},"s"]"#
        )
        .is_some());
        assert_eq!(check(r#"[null,null,"a","broadcast",{"type":[1}}]"#), None);
    }

    #[test]
    fn agrees_with_serde_json_on_generated_frames() {
        // Miri runs this too, much slower: a few hundred frames are enough there.
        let rounds = if cfg!(miri) { 200 } else { 30_000 };
        let mut gen = crate::testgen::Gen::new(0x5eed_f00d, 40);
        let (mut some, mut mutants_some, mut mutants) = (0, 0, 0);
        for _ in 0..rounds {
            let text = gen.frame();
            let decoded = check(&text).is_some();
            some += usize::from(decoded);
            // Mutants of accepted frames probe the edges of what is accepted.
            for _ in 0..if decoded { 8 } else { 1 } {
                if let Some(m) = gen.mutate(&text) {
                    mutants += 1;
                    mutants_some += usize::from(check(&m).is_some());
                }
            }
        }
        // The corpus exercises both answers, or this test would prove little.
        assert!(
            some > rounds / 20 && some < rounds * 4 / 5,
            "{some} of {rounds}"
        );
        assert!(
            mutants_some > mutants / 100,
            "{mutants_some} of {mutants} mutants"
        );
        eprintln!("{some} of {rounds} frames and {mutants_some} of {mutants} mutants decoded");
    }
}
