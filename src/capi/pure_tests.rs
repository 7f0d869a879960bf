//! The C ABI's pure parts (handles, strings, event accessors) exercised without a runtime or a
//! socket, so they also run under Miri (`scripts/sanitize`), which checks every pointer they
//! hand out and take back.

use std::ffi::{c_char, CStr};
use std::ptr;

use serde_json::json;

use super::error::{supa_last_error_message, supa_result};
use super::event::{self, *};
use super::options::*;
use crate::event::{Broadcast, Event, Payload};

fn text<'a>(p: *const c_char, len: usize) -> &'a str {
    assert!(!p.is_null());
    // SAFETY: the accessors hand out NUL-terminated text that lives as long as the event.
    let s = unsafe { CStr::from_ptr(p) }.to_str().unwrap();
    assert_eq!(s.len(), len);
    s
}

#[test]
fn options_are_made_set_and_freed_and_bad_arguments_are_refused() {
    let mut o: *mut supa_options = ptr::null_mut();
    // SAFETY: the derefs read options made here and not yet freed, and the last error message
    // is a NUL-terminated string until the next call on this thread.
    unsafe {
        assert_eq!(
            supa_options_new(
                c"ws://127.0.0.1:1/realtime/v1".as_ptr(),
                c"key".as_ptr(),
                &mut o
            ),
            supa_result::SUPA_OK
        );
        assert!(!o.is_null());
        assert_eq!(
            supa_options_set_access_token(o, c"jwt".as_ptr()),
            supa_result::SUPA_OK
        );
        assert_eq!(
            supa_options_set_access_token(o, ptr::null()),
            supa_result::SUPA_OK
        );
        assert_eq!(
            supa_options_add_param(o, c"k".as_ptr(), c"v".as_ptr()),
            supa_result::SUPA_OK
        );
        assert_eq!(
            supa_options_add_header(o, c"x-a".as_ptr(), c"b".as_ptr()),
            supa_result::SUPA_OK
        );
        let bad = [0xffu8, 0];
        assert_eq!(
            supa_options_add_param(o, bad.as_ptr().cast(), c"v".as_ptr()),
            supa_result::SUPA_INVALID_UTF8
        );
        assert_eq!(
            supa_options_add_header(o, ptr::null(), c"v".as_ptr()),
            supa_result::SUPA_NULL_ARGUMENT
        );
        assert_eq!(
            supa_options_set_vsn(o, 99),
            supa_result::SUPA_INVALID_ARGUMENT
        );
        assert!(!CStr::from_ptr(supa_last_error_message())
            .to_bytes()
            .is_empty());
        assert_eq!((*o).inner.params, vec![("k".to_owned(), "v".to_owned())]);
        assert_eq!((*o).inner.access_token, None);
        supa_options_free(o);
        supa_options_free(ptr::null_mut());
        assert_eq!(
            supa_options_new(ptr::null(), c"key".as_ptr(), &mut o),
            supa_result::SUPA_NULL_ARGUMENT
        );

        let mut c: *mut supa_channel_options = ptr::null_mut();
        assert_eq!(supa_channel_options_new(&mut c), supa_result::SUPA_OK);
        assert_eq!(
            supa_channel_options_set_presence_key(c, c"me".as_ptr()),
            supa_result::SUPA_OK
        );
        assert_eq!(
            supa_channel_options_set_private(c, true),
            supa_result::SUPA_OK
        );
        assert_eq!((*c).inner.presence_key, "me");
        supa_channel_options_free(c);
        supa_channel_options_free(ptr::null_mut());
    }
}

#[test]
fn a_borrowed_event_and_its_copy_hand_out_text_that_lives_as_long_as_they_do() {
    let ev = Event::Broadcast(Broadcast {
        topic: "realtime:room1".into(),
        event: "msg\0with nul".into(),
        payload: Payload::Json(json!({"n": 1})),
        meta: Some(json!({"id": "u"})),
    });
    // SAFETY: `ev` outlives `borrowed`.
    let borrowed = unsafe { event::supa_event::new(event::Source::Event(&ev)) };
    // The copy is freed once below.
    let copy = supa_event_copy(&borrowed);
    drop(borrowed);
    let mut len = 0;
    assert_eq!(
        text(supa_event_topic(copy, &mut len), len),
        "realtime:room1"
    );
    // A name with a NUL: the length tells where it really ends.
    let name = supa_event_name(copy, &mut len);
    assert_eq!(len, 12);
    assert_eq!(
        // SAFETY: the name's `len` bytes live as long as `copy`, freed below.
        unsafe { std::slice::from_raw_parts(name.cast::<u8>(), len) },
        b"msg\0with nul"
    );
    let payload = supa_event_payload_json(copy, &mut len);
    assert_eq!(text(payload, len), r#"{"n":1}"#);
    // Cached: the same pointer again.
    assert_eq!(supa_event_payload_json(copy, ptr::null_mut()), payload);
    assert_eq!(
        text(supa_event_meta_json(copy, &mut len), len),
        r#"{"id":"u"}"#
    );
    assert!(supa_event_payload_binary(copy, &mut len).is_null());
    assert_eq!(len, 0);
    assert!(supa_event_reason(copy, &mut len).is_null());
    supa_event_free(copy);
    supa_event_free(ptr::null_mut());
    assert!(supa_event_topic(ptr::null(), ptr::null_mut()).is_null());

    let bin = Event::Broadcast(Broadcast {
        topic: "realtime:room1".into(),
        event: "b".into(),
        payload: Payload::Binary(Vec::new()),
        meta: None,
    });
    // SAFETY: `bin` outlives `e`.
    let e = unsafe { event::supa_event::new(event::Source::Event(&bin)) };
    let p = supa_event_payload_binary(&e, &mut len);
    assert!(!p.is_null(), "an empty payload is not NULL");
    assert_eq!(len, 0);
    assert!(supa_event_meta_json(&e, &mut len).is_null());
}
