//! Text frames: the vsn 1 object and vsn 2 array decoders, the encoder's round trip, and the
//! fan-out fast path checked against serde_json and the general decoder.
#![no_main]

use std::borrow::Cow;

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use supa_realtime_protocol::{FanoutBroadcast, Frame, Vsn};

#[path = "../../protocol/src/fanout/oracle.rs"]
mod oracle;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for vsn in [Vsn::V1, Vsn::V2] {
        if let Ok(frame) = Frame::decode(vsn, text) {
            // What the client writes, the server reads back unchanged (refs that were numbers
            // come back as their text, which the first decode already made them).
            let again = Frame::decode(vsn, &frame.encode(vsn)).expect("re-decode");
            assert_eq!(again, frame, "round trip ({vsn:?})");
            if vsn == Vsn::V2 {
                let server = Frame::decode(vsn, &frame.encode_server(vsn)).expect("server form");
                assert_eq!(server, frame);
            }
        }
    }
    fast_path(text);
});

/// The fan-out fast path against serde_json: it decodes exactly what serde_json's own readers
/// make of the frame under the shape rules (and nothing else), whatever it accepts is a JSON
/// document, and it agrees with the general decoder whenever both accept the frame.
fn fast_path(text: &str) {
    let fast = FanoutBroadcast::decode(text);
    let string = |c: &Cow<str>| (c.to_string(), matches!(c, Cow::Borrowed(_)));
    let got = fast.as_ref().map(|b| {
        (
            string(&b.topic),
            b.event.as_ref().map(string),
            b.payload.map(str::to_owned),
            b.meta.map(str::to_owned),
        )
    });
    assert_eq!(got, oracle::oracle(text), "fast path vs serde_json");
    let Some(fast) = fast else {
        return;
    };
    // What the fast path accepts parses as a JSON document, except where serde_json's
    // value skipper (behind RawValue and IgnoredAny, which define the fast path) is looser
    // than its Value parser: numbers out of f64 range (1e400), nesting past the recursion
    // limit of 128, and lone \u surrogates in strings inside payload, meta, unknown keys or
    // extra elements. Topic, event and keys never contain them (those are read as `&str`).
    if let Err(e) = serde_json::from_str::<Value>(text) {
        let e = e.to_string();
        assert!(
            ["number out of range", "recursion limit exceeded", "surrogate", "end of hex escape"]
                .iter()
                .any(|allowed| e.contains(allowed)),
            "the fast path accepted a frame serde_json cannot parse: {e}"
        );
        return;
    }
    // The fast path leaves payload and meta as raw text; the client parses them, and a
    // payload that does not parse (see above) sends the frame down the general path.
    let Ok(general) = Frame::decode(Vsn::V2, text) else {
        return;
    };
    let parse = |raw: Option<&str>| raw.map(serde_json::from_str::<Value>).transpose();
    let (Ok(payload), Ok(meta)) = (parse(fast.payload), parse(fast.meta)) else {
        return;
    };
    assert_eq!(general.join_ref, None);
    assert_eq!(general.r#ref, None);
    assert_eq!(general.event, "broadcast");
    assert_eq!(&*fast.topic, general.topic);
    assert!(general.payload.is_object(), "the fast path took a non-object body");
    assert_eq!(
        fast.event.as_deref(),
        general.payload.get("event").and_then(Value::as_str),
        "event"
    );
    assert_eq!(payload.as_ref(), general.payload.get("payload"), "payload");
    assert_eq!(meta.as_ref(), general.payload.get("meta"), "meta");
}
