//! Stored broadcasts in the C ABI: the replay, replication-ready and gap-fill channel
//! options, sends that persist, and waiting for replication (docs/c.md "Replay and gap
//! fill"). A broadcast's id and replayed mark are read with `supa_event_broadcast_id` and
//! `supa_event_broadcast_replayed`.

use std::ffi::c_char;

use super::channel::{channel, json_payload, supa_channel};
use super::error::{fail, ok, supa_result};
use super::options::{chopts, supa_channel_options};
use super::{boundary, ms, result, str_arg, tri};
use crate::options::{persist_for_ttl, Replay};

/// Replay stored broadcasts on join (private channels only): the newest `limit` (1..25; 0
/// for the server's default, 25) stored since `since_ms` (Unix milliseconds), oldest first,
/// before any live message; each is marked replayed (`supa_event_broadcast_replayed`).
#[no_mangle]
pub extern "C" fn supa_channel_options_set_replay(
    options: *mut supa_channel_options,
    since_ms: i64,
    limit: u32,
) -> supa_result {
    boundary(|| {
        // SAFETY: `options` is NULL or live options used by one thread (the header's pointer rule).
        let o = tri!(unsafe { chopts(options) });
        if since_ms < 0 {
            return fail(
                supa_result::SUPA_INVALID_ARGUMENT,
                "since_ms must be Unix milliseconds (not negative)",
            );
        }
        let replay = Replay::since_ms(since_ms);
        o.replay = Some(if limit == 0 {
            replay
        } else {
            replay.limit(limit)
        });
        ok()
    })
}

/// Ask the server for the `system` message that says the channel's replication is ready;
/// wait for it with `supa_channel_replication_ready_blocking`.
#[no_mangle]
pub extern "C" fn supa_channel_options_set_replication_ready(
    options: *mut supa_channel_options,
    on: bool,
) -> supa_result {
    boundary(|| {
        // SAFETY: `options` is NULL or live options used by one thread (the header's pointer rule).
        tri!(unsafe { chopts(options) }).replication_ready = on;
        ok()
    })
}

/// Gap fill (private channels only; `supa_channel_subscribe` refuses it on a public one):
/// after a rejoin, the stored broadcasts since the last one delivered are replayed, those
/// already delivered dropped, and `SUPA_EVENT_RESUMED` comes after them with
/// `supa_event_resumed_filled` saying whether the whole gap was replayed.
#[no_mangle]
pub extern "C" fn supa_channel_options_set_auto_replay(
    options: *mut supa_channel_options,
    on: bool,
) -> supa_result {
    boundary(|| {
        // SAFETY: `options` is NULL or live options used by one thread (the header's pointer rule).
        tri!(unsafe { chopts(options) }).auto_replay = on;
        ok()
    })
}

/// As `supa_channel_send_broadcast_json_blocking`, and the server stores the message (private
/// channels only: `SUPA_INVALID_ARGUMENT` on a public one) for `ttl_s` seconds (0: the
/// server's retention, 72 hours upstream), so a join with replay can replay it.
#[no_mangle]
pub extern "C" fn supa_channel_send_broadcast_persist_json_blocking(
    channel: *const supa_channel,
    event: *const c_char,
    json: *const c_char,
    ttl_s: u32,
    timeout_ms: u64,
) -> supa_result {
    boundary(|| {
        // SAFETY: `channel` is NULL or a live channel handle (the header's pointer rule).
        let ch = tri!(unsafe { self::channel(channel) });
        // SAFETY: `event` is NULL or a NUL-terminated string (the header's pointer rule).
        let event = tri!(unsafe { str_arg(event, "event") });
        // SAFETY: `json` is NULL or a NUL-terminated string (the header's pointer rule).
        let payload = tri!(unsafe { json_payload(json) });
        result(ch.inner.send_broadcast_persist_blocking(
            event,
            payload,
            persist_for_ttl(ttl_s),
            ms(timeout_ms),
        ))
    })
}

/// As `supa_channel_http_send_json_blocking`, storing the message as
/// `supa_channel_send_broadcast_persist_json_blocking` does.
#[no_mangle]
pub extern "C" fn supa_channel_http_send_persist_json_blocking(
    channel: *const supa_channel,
    event: *const c_char,
    json: *const c_char,
    ttl_s: u32,
    timeout_ms: u64,
) -> supa_result {
    boundary(|| {
        // SAFETY: `channel` is NULL or a live channel handle (the header's pointer rule).
        let ch = tri!(unsafe { self::channel(channel) });
        // SAFETY: `event` is NULL or a NUL-terminated string (the header's pointer rule).
        let event = tri!(unsafe { str_arg(event, "event") });
        // SAFETY: `json` is NULL or a NUL-terminated string (the header's pointer rule).
        let payload = tri!(unsafe { json_payload(json) });
        result(ch.inner.http_send_persist_blocking(
            event,
            payload,
            persist_for_ttl(ttl_s),
            ms(timeout_ms),
        ))
    })
}

/// Waits up to `timeout_ms` for the server's word that the channel's replication is ready
/// (with `supa_channel_options_set_replication_ready`). `SUPA_CHANNEL_ERROR` with the
/// server's message when it is not ready, `SUPA_TIMEOUT` without an answer. Blocking:
/// `SUPA_WOULD_DEADLOCK` inside a callback.
#[no_mangle]
pub extern "C" fn supa_channel_replication_ready_blocking(
    channel: *const supa_channel,
    timeout_ms: u64,
) -> supa_result {
    boundary(|| {
        // SAFETY: `channel` is NULL or a live channel handle (the header's pointer rule).
        let ch = tri!(unsafe { self::channel(channel) });
        result(ch.inner.replication_ready_blocking(ms(timeout_ms)))
    })
}
