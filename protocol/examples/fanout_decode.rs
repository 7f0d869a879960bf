//! Times `FanoutBroadcast::decode` (the byte scanner) against the serde-visitor decoder it
//! replaced, side by side on the same frames: the benchmark's frame (the replay source's
//! 100-byte payload), a payload with nested objects, arrays, numbers and escapes, a 2 KB
//! payload, and a topic with escapes (the scanner's cold path).
//!
//! `cargo run --release -p supa-realtime-protocol --example fanout_decode [-- ROUNDS [NAME]]`
//! prints ns per decode for each frame (or those whose name contains NAME): the best of 7
//! runs of ROUNDS decodes (default 200,000).

use std::borrow::Cow;
use std::fmt;
use std::hint::black_box;
use std::time::Instant;

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use supa_realtime_protocol::FanoutBroadcast;

fn main() {
    let mut args = std::env::args().skip(1);
    let rounds: u32 = match args.next() {
        Some(n) => n.parse().expect("ROUNDS is a number"),
        None => 200_000,
    };
    let only = args.next().unwrap_or_default();
    println!(
        "{:<28} {:>6} {:>12} {:>12} {:>8}",
        "frame", "bytes", "serde ns", "scanner ns", "speedup"
    );
    for (name, text) in frames()
        .into_iter()
        .filter(|(name, _)| name.contains(&*only))
    {
        // Both decoders must agree before their speed means anything.
        let (old, new) = (
            Baseline::decode(&text).unwrap(),
            FanoutBroadcast::decode(&text).unwrap(),
        );
        assert_eq!(old.topic, new.topic);
        assert_eq!(old.event, new.event);
        assert_eq!(old.payload.map(RawValue::get), new.payload);
        assert_eq!(old.meta.map(RawValue::get), new.meta);
        let serde = best(rounds, || Baseline::decode(black_box(&text)).is_some());
        let scanner = best(rounds, || {
            FanoutBroadcast::decode(black_box(&text)).is_some()
        });
        println!(
            "{name:<28} {:>6} {serde:>12.1} {scanner:>12.1} {:>7.2}x",
            text.len(),
            serde / scanner
        );
    }
}

/// ns per call of `decode`: the best of 7 runs of `rounds` calls, the two decoders' runs
/// interleaved by the caller's order so both see the same machine.
fn best(rounds: u32, decode: impl Fn() -> bool) -> f64 {
    (0..7)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..rounds {
                assert!(black_box(decode()));
            }
            start.elapsed().as_nanos() as f64 / f64::from(rounds)
        })
        .fold(f64::INFINITY, f64::min)
}

fn frames() -> Vec<(&'static str, String)> {
    let frame = |topic: &str, body: String| format!("[null,null,\"{topic}\",\"broadcast\",{body}]");
    // bench/src/util.rs payload100: {"i":N,"pad":"xxx…"}, 100 bytes.
    let head = "{\"i\":123,\"pad\":\"";
    let payload100 = format!("{head}{}\"}}", "x".repeat(100 - head.len() - 2));
    let nested = r#"{"user":{"id":42,"name":"Zo\u00eb \"z\"","tags":["a","b",{"x":[1,2.5,-3e10,true,null]}]},"pos":[1.25,-0.5,1e-3],"text":"line\nbreak \\ path","ok":false}"#;
    let rows: Vec<String> = (0..25)
        .map(|i| format!(r#"{{"id":{i},"name":"row number {i:03}","score":{}.5,"tags":["alpha","beta"],"on":true}}"#, i * 7))
        .collect();
    let big = format!(r#"{{"rows":[{}],"next":null}}"#, rows.join(","));
    assert!((2000..2200).contains(&big.len()), "{}", big.len());
    let broadcast = |payload: &str, extra: &str| {
        format!(r#"{{"type":"broadcast","event":"e","payload":{payload}{extra}}}"#)
    };
    vec![
        (
            "benchmark (100 B payload)",
            frame("realtime:tp-1000000-a", broadcast(&payload100, "")),
        ),
        (
            "nested + escapes + meta",
            frame(
                "realtime:room-1",
                broadcast(nested, r#","meta":{"id":"5f0c1e"}"#),
            ),
        ),
        (
            "2 KB payload",
            frame("realtime:tp-1000000-a", broadcast(&big, "")),
        ),
        (
            "escaped topic (cold path)",
            frame(r"realtime:caf\u00e9", broadcast(&payload100, "")),
        ),
    ]
}

/// The previous implementation, kept here only as the baseline: the serde-visitor decoder
/// that `FanoutBroadcast::decode` replaced.
struct Baseline<'a> {
    topic: Cow<'a, str>,
    event: Option<Cow<'a, str>>,
    payload: Option<&'a RawValue>,
    meta: Option<&'a RawValue>,
}

impl<'a> Baseline<'a> {
    fn decode(text: &'a str) -> Option<Baseline<'a>> {
        if !text.starts_with("[null,null,\"") {
            return None;
        }
        let mut de = serde_json::Deserializer::from_str(text);
        let b = Baseline::deserialize(&mut de).ok()?;
        de.end().ok()?;
        Some(b)
    }
}

/// Why the visitor stopped early; never shown (the caller just takes the general path).
const NOT_FAST: &str = "not a fan-out broadcast";

impl<'de: 'a, 'a> Deserialize<'de> for Baseline<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_seq(Envelope)
    }
}

/// `[join_ref, ref, topic, event, body, ...]`, stopping as soon as the frame is not ours.
struct Envelope;

impl<'de> Visitor<'de> for Envelope {
    type Value = Baseline<'de>;

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
            Some(Text(e)) if e == supa_realtime_protocol::event::BROADCAST => {}
            _ => return Err(de::Error::custom(NOT_FAST)),
        }
        let Some(body) = seq.next_element::<Body>()? else {
            return Err(de::Error::custom(NOT_FAST));
        };
        // The server ignores elements after the fifth; so does Frame::decode.
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Baseline {
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
