//! Binary frames (kinds 0-4): the server-direction decoder (what the client reads), the
//! client-direction one (what the server reads), the zero-copy kind-4 reader, and the
//! encoder's exact round trip.
#![no_main]

use libfuzzer_sys::fuzz_target;
use supa_realtime_protocol::{BinaryFrame, UserBroadcastRef};

fuzz_target!(|data: &[u8]| {
    let from_server = BinaryFrame::decode_from_server(data);
    if let Ok(frame) = &from_server {
        // Every field is read from the bytes and nothing is skipped: encoding gives them back.
        assert_eq!(frame.encode().as_deref(), Ok(data), "server round trip");
    }
    // The borrowed kind-4 reader and the owned decoder agree.
    match UserBroadcastRef::decode(data) {
        None => assert!(data.first() != Some(&4)),
        Some(Ok(b)) => assert_eq!(from_server.as_ref().ok(), Some(&BinaryFrame::from(b))),
        Some(Err(e)) => assert_eq!(from_server.as_ref().err(), Some(&e)),
    }
    if let Ok(frame) = BinaryFrame::decode_from_client(data) {
        let bytes = frame.encode().expect("decoded fields fit their length bytes");
        // A kind-0 push without a ref encodes in the server's form (3 length bytes).
        let no_ref = matches!(&frame, BinaryFrame::Push { r#ref: None, .. });
        if !no_ref {
            assert_eq!(BinaryFrame::decode_from_client(&bytes).as_ref(), Ok(&frame));
        }
    }
});
