//! Text frames: the vsn 1 object and vsn 2 array decoders, the encoder's round trip, and the
//! fan-out fast path checked against the general decoder.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use supa_realtime_protocol::{FanoutBroadcast, Frame, Vsn};

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
    // The fast path and the general decoder agree whenever both accept the frame. The fast
    // path leaves payload and meta as raw text; the client parses them, and a payload that
    // does not parse (a number out of range) sends the frame down the general path.
    let Some(fast) = FanoutBroadcast::decode(text) else {
        return;
    };
    let Ok(general) = Frame::decode(Vsn::V2, text) else {
        return;
    };
    let parse = |raw: Option<&serde_json::value::RawValue>| {
        raw.map(|r| serde_json::from_str::<Value>(r.get()))
            .transpose()
    };
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
});
