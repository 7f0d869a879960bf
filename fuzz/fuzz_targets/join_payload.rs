//! The typed `phx_join` payload: any JSON decodes (leniently, as the server does), and what
//! it encodes decodes back to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use supa_realtime_protocol::JoinPayload;

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let payload = JoinPayload::from_value(&value);
    let encoded = payload.to_value();
    assert_eq!(JoinPayload::from_value(&encoded), payload, "round trip");
    // The config alone, as the server reads it from a join frame.
    if let Some(config) = value.get("config") {
        let _ = serde_json::from_value::<supa_realtime_protocol::JoinConfig>(config.clone());
    }
    // Through the text form too (what goes on the wire).
    let text = encoded.to_string();
    let back: Value = serde_json::from_str(&text).expect("encoded payload is JSON");
    assert_eq!(JoinPayload::from_value(&back), payload, "text round trip");
});
