//! `supa_options` (client) and `supa_channel_options`: opaque builders with one setter per
//! core option.

use std::ffi::{c_char, c_void};
use std::sync::Arc;

use super::callback::{supa_destroy_cb, supa_token_cb, UserData};
use super::error::{fail, ok};
use super::{
    borrow_mut, boundary, free_box, ms, non_null, put, slice_arg, str_arg, supa_result, tri,
};
use crate::options::{
    self as checks, ChannelOptions, ClientOptions, DispatchMode, TokenProvider, Vsn,
};

/// Who runs callbacks. Values are stable.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum supa_dispatch_mode {
    /// A dispatcher thread per client calls the callbacks (the default).
    SUPA_DISPATCH_THREAD = 0,
    /// The application calls `supa_client_dispatch`; a wakeup callback says when.
    SUPA_DISPATCH_APP_PUMPED = 1,
}

/// The serializer version. Values are stable.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum supa_vsn {
    /// `2.0.0` (the default): JSON arrays plus binary broadcasts.
    SUPA_VSN_2 = 0,
    /// `1.0.0`: JSON objects; binary payloads are refused.
    SUPA_VSN_1 = 1,
}

/// Client options: create with `supa_options_new`, adjust with the setters, pass to
/// `supa_client_new` (which copies them), free with `supa_options_free`.
///
/// Thread-safety: not synchronised; use from one thread at a time.
pub struct supa_options {
    pub(crate) inner: ClientOptions,
}

/// Channel options for `supa_client_channel`: create with `supa_channel_options_new`, free
/// with `supa_channel_options_free`. Thread-safety: one thread at a time.
pub struct supa_channel_options {
    pub(crate) inner: ChannelOptions,
}

/// The options behind a `supa_options *`: `SUPA_NULL_ARGUMENT` for NULL.
///
/// # Safety
///
/// As [`borrow_mut`]: `p` is NULL or live options that only this call uses meanwhile.
unsafe fn opts<'a>(p: *mut supa_options) -> Result<&'a mut ClientOptions, supa_result> {
    // SAFETY: the caller's promise for `p`, passed on.
    match unsafe { borrow_mut(p) } {
        Some(o) => Ok(&mut o.inner),
        None => Err(fail(supa_result::SUPA_NULL_ARGUMENT, "`options` is NULL")),
    }
}

/// The options behind a `supa_channel_options *`: `SUPA_NULL_ARGUMENT` for NULL.
///
/// # Safety
///
/// As [`borrow_mut`]: `p` is NULL or live options that only this call uses meanwhile.
pub(super) unsafe fn chopts<'a>(
    p: *mut supa_channel_options,
) -> Result<&'a mut ChannelOptions, supa_result> {
    // SAFETY: the caller's promise for `p`, passed on.
    match unsafe { borrow_mut(p) } {
        Some(o) => Ok(&mut o.inner),
        None => Err(fail(supa_result::SUPA_NULL_ARGUMENT, "`options` is NULL")),
    }
}

/// Creates options with realtime-js' defaults for `url` (`http(s)://` or `ws(s)://`, e.g.
/// `https://<project>.supabase.co/realtime/v1`) and `api_key` (sent as `apikey`).
///
/// Defaults: heartbeat 25 s, push timeout 10 s, reconnect delays 1, 2, 5, 10 s (the last
/// repeats) with jitter 0.1, rejoin delays 1, 2, 5, 10 s, vsn 2.0.0, dispatcher thread,
/// queue capacity 10000, webpki roots only, token refresh margin 60 s, 3 auth retries, bounds
/// of 16 MiB per message, 8 MiB per frame, 100000 presence keys and 32 MiB of presence state
/// per channel. The URL is checked by `supa_client_new`.
///
/// Ownership: on success `*out` is a new object the caller frees with `supa_options_free`.
#[no_mangle]
pub extern "C" fn supa_options_new(
    url: *const c_char,
    api_key: *const c_char,
    out: *mut *mut supa_options,
) -> supa_result {
    boundary(|| {
        non_null!(out);
        // SAFETY: `url` is NULL or a NUL-terminated string (the header's pointer rule).
        let url = tri!(unsafe { str_arg(url, "url") });
        // SAFETY: `api_key` is NULL or a NUL-terminated string (the header's pointer rule).
        let key = tri!(unsafe { str_arg(api_key, "api_key") });
        let o = Box::new(supa_options {
            inner: ClientOptions::new(url, key),
        });
        // SAFETY: `out` is non-NULL (checked above), so writable (the header's rule for
        // out-parameters).
        unsafe { put(out, Box::into_raw(o)) };
        ok()
    })
}

/// Frees options. NULL is a no-op. Clients made from them are not affected. A token provider's
/// destructor runs once neither these options nor any client made from them use it.
#[no_mangle]
pub extern "C" fn supa_options_free(options: *mut supa_options) {
    // SAFETY: the header allows only NULL or options from `supa_options_new`, freed once.
    boundary(|| unsafe { free_box(options) })
}

/// Sets the user token (a JWT) for channel joins; NULL goes back to the API key.
#[no_mangle]
pub extern "C" fn supa_options_set_access_token(
    options: *mut supa_options,
    token: *const c_char,
) -> supa_result {
    boundary(|| {
        // SAFETY: `options` is NULL or live options used by one thread (the header's pointer rule).
        let o = tri!(unsafe { opts(options) });
        // SAFETY: `token` is NULL or a NUL-terminated string (the header's pointer rule).
        o.access_token = tri!(unsafe { super::opt_str_arg(token, "token") }).map(str::to_owned);
        ok()
    })
}

/// Adds a query parameter to the WebSocket URL (after `apikey`, before `vsn`).
#[no_mangle]
pub extern "C" fn supa_options_add_param(
    options: *mut supa_options,
    key: *const c_char,
    value: *const c_char,
) -> supa_result {
    boundary(|| {
        // SAFETY: `options` is NULL or live options used by one thread (the header's pointer rule).
        let o = tri!(unsafe { opts(options) });
        // SAFETY: `key` is NULL or a NUL-terminated string (the header's pointer rule).
        let k = tri!(unsafe { str_arg(key, "key") });
        // SAFETY: `value` is NULL or a NUL-terminated string (the header's pointer rule).
        let v = tri!(unsafe { str_arg(value, "value") });
        o.params.push((k.to_owned(), v.to_owned()));
        ok()
    })
}

/// Adds an HTTP header to the WebSocket upgrade request and to REST calls. The name must be an
/// HTTP token and the value visible ASCII, spaces and tabs (no CR or LF, which would inject
/// headers): `SUPA_INVALID_ARGUMENT` otherwise.
#[no_mangle]
pub extern "C" fn supa_options_add_header(
    options: *mut supa_options,
    name: *const c_char,
    value: *const c_char,
) -> supa_result {
    boundary(|| {
        // SAFETY: `options` is NULL or live options used by one thread (the header's pointer rule).
        let o = tri!(unsafe { opts(options) });
        // SAFETY: `name` is NULL or a NUL-terminated string (the header's pointer rule).
        let k = tri!(unsafe { str_arg(name, "name") });
        // SAFETY: `value` is NULL or a NUL-terminated string (the header's pointer rule).
        let v = tri!(unsafe { str_arg(value, "value") });
        tri!(checked(checks::check_header(k, v)));
        o.headers.push((k.to_owned(), v.to_owned()));
        ok()
    })
}

/// Sets the serializer version (a `supa_vsn`); other values give `SUPA_INVALID_ARGUMENT`.
#[no_mangle]
pub extern "C" fn supa_options_set_vsn(options: *mut supa_options, vsn: u32) -> supa_result {
    boundary(|| {
        // SAFETY: `options` is NULL or live options used by one thread (the header's pointer rule).
        let o = tri!(unsafe { opts(options) });
        o.vsn = match vsn {
            v if v == supa_vsn::SUPA_VSN_2 as u32 => Vsn::V2,
            v if v == supa_vsn::SUPA_VSN_1 as u32 => Vsn::V1,
            _ => return fail(supa_result::SUPA_INVALID_ARGUMENT, "unknown supa_vsn value"),
        };
        ok()
    })
}

/// Sets the heartbeat interval in milliseconds (1 ms to 24 h). An unanswered heartbeat at the
/// next tick closes the socket and reconnects.
#[no_mangle]
pub extern "C" fn supa_options_set_heartbeat_interval_ms(
    options: *mut supa_options,
    interval_ms: u64,
) -> supa_result {
    boundary(|| {
        // SAFETY: `options` is NULL or live options used by one thread (the header's pointer rule).
        let o = tri!(unsafe { opts(options) });
        let d = ms(interval_ms);
        tri!(checked(checks::check_duration(
            "heartbeat_interval",
            d,
            checks::ONE_MS
        )));
        o.heartbeat_interval = d;
        ok()
    })
}

/// Sets how long a push (join, acked broadcast, track) waits for its reply, in milliseconds
/// (1 ms to 24 h).
#[no_mangle]
pub extern "C" fn supa_options_set_push_timeout_ms(
    options: *mut supa_options,
    timeout_ms: u64,
) -> supa_result {
    boundary(|| {
        // SAFETY: `options` is NULL or live options used by one thread (the header's pointer rule).
        let o = tri!(unsafe { opts(options) });
        let d = ms(timeout_ms);
        tri!(checked(checks::check_duration(
            "push_timeout",
            d,
            checks::ONE_MS
        )));
        o.push_timeout = d;
        ok()
    })
}

/// A delay schedule from C, checked as the core checks it (`name` in the message).
///
/// # Safety
///
/// As [`slice_arg`]: `p` is NULL or points to `n` delays when `n` is not 0.
unsafe fn delays(
    name: &str,
    p: *const u64,
    n: usize,
) -> Result<Vec<std::time::Duration>, supa_result> {
    // SAFETY: the caller's promise for `p`, passed on.
    let list: Vec<_> = unsafe { slice_arg(p, n, "delays_ms") }?
        .iter()
        .map(|d| ms(*d))
        .collect();
    checked(checks::check_delays(name, &list))?;
    Ok(list)
}

/// Sets the reconnect schedule: delay before attempt n, in milliseconds (each at most 24 h);
/// the last repeats.
/// `delays_ms` is copied; `count` must be at least 1.
#[no_mangle]
pub extern "C" fn supa_options_set_reconnect_delays_ms(
    options: *mut supa_options,
    delays_ms: *const u64,
    count: usize,
) -> supa_result {
    boundary(|| {
        // SAFETY: `options` is NULL or live options used by one thread (the header's pointer rule).
        let o = tri!(unsafe { opts(options) });
        // SAFETY: `delays_ms` points to `count` delays (the header's pointer rule).
        o.reconnect_delays = tri!(unsafe { delays("reconnect_delays", delays_ms, count) });
        ok()
    })
}

/// Scales each reconnect delay by a random factor in `[1 - jitter, 1 + jitter]`; 0 turns it
/// off. `jitter` must be within 0..1.
#[no_mangle]
pub extern "C" fn supa_options_set_reconnect_jitter(
    options: *mut supa_options,
    jitter: f64,
) -> supa_result {
    boundary(|| {
        // SAFETY: `options` is NULL or live options used by one thread (the header's pointer rule).
        let o = tri!(unsafe { opts(options) });
        tri!(checked(checks::check_jitter(jitter)));
        o.reconnect_jitter = jitter;
        ok()
    })
}

/// Sets the channel rejoin schedule in milliseconds (each at most 24 h; the last repeats);
/// `count` at least 1.
#[no_mangle]
pub extern "C" fn supa_options_set_rejoin_delays_ms(
    options: *mut supa_options,
    delays_ms: *const u64,
    count: usize,
) -> supa_result {
    boundary(|| {
        // SAFETY: `options` is NULL or live options used by one thread (the header's pointer rule).
        let o = tri!(unsafe { opts(options) });
        // SAFETY: `delays_ms` points to `count` delays (the header's pointer rule).
        o.rejoin_delays = tri!(unsafe { delays("rejoin_delays", delays_ms, count) });
        ok()
    })
}

/// Adds trusted root certificates (PEM text, `len` bytes, copied) for `wss://` and `https://`.
/// Checked by `supa_client_new` (`SUPA_TLS` when unusable).
#[no_mangle]
pub extern "C" fn supa_options_set_custom_ca_pem(
    options: *mut supa_options,
    pem: *const u8,
    len: usize,
) -> supa_result {
    boundary(|| {
        // SAFETY: `options` is NULL or live options used by one thread (the header's pointer rule).
        let o = tri!(unsafe { opts(options) });
        // SAFETY: `pem` points to `len` bytes when `len` is not 0 (the header's pointer rule).
        let bytes = tri!(unsafe { slice_arg(pem, len, "pem") });
        o.custom_ca_pem = Some(bytes.to_vec());
        ok()
    })
}

/// Also trusts the platform's root store (in addition to the bundled webpki roots).
#[no_mangle]
pub extern "C" fn supa_options_set_native_roots(
    options: *mut supa_options,
    on: bool,
) -> supa_result {
    boundary(|| {
        // SAFETY: `options` is NULL or live options used by one thread (the header's pointer rule).
        let o = tri!(unsafe { opts(options) });
        o.native_roots = on;
        ok()
    })
}

/// Chooses who runs callbacks (a `supa_dispatch_mode`); other values give
/// `SUPA_INVALID_ARGUMENT`.
#[no_mangle]
pub extern "C" fn supa_options_set_dispatch_mode(
    options: *mut supa_options,
    mode: u32,
) -> supa_result {
    boundary(|| {
        // SAFETY: `options` is NULL or live options used by one thread (the header's pointer rule).
        let o = tri!(unsafe { opts(options) });
        o.dispatch = match mode {
            m if m == supa_dispatch_mode::SUPA_DISPATCH_THREAD as u32 => DispatchMode::Thread,
            m if m == supa_dispatch_mode::SUPA_DISPATCH_APP_PUMPED as u32 => {
                DispatchMode::AppPumped
            }
            _ => {
                return fail(
                    supa_result::SUPA_INVALID_ARGUMENT,
                    "unknown supa_dispatch_mode value",
                )
            }
        };
        ok()
    })
}

/// Bounds the event queue: data events beyond `capacity` (at least 1) are dropped and reported
/// by one `SUPA_EVENT_LAGGED`; status and error events are never dropped.
#[no_mangle]
pub extern "C" fn supa_options_set_queue_capacity(
    options: *mut supa_options,
    capacity: usize,
) -> supa_result {
    boundary(|| {
        // SAFETY: `options` is NULL or live options used by one thread (the header's pointer rule).
        let o = tri!(unsafe { opts(options) });
        tri!(checked(checks::check_queue_capacity(capacity)));
        o.queue_capacity = capacity;
        ok()
    })
}

/// With a token provider: ask it for a fresh token this long (milliseconds) before the current
/// JWT's `exp`, or half-way through the token's remaining life when that is shorter than twice
/// the margin, so channels never reach the server's expiry close. Default 60000 (0 would ask
/// only at the moment of expiry). Tokens without an `exp` claim are never refreshed early.
/// Without a provider this has no effect: call `supa_client_set_auth` before expiry yourself.
#[no_mangle]
pub extern "C" fn supa_options_set_token_refresh_margin_ms(
    options: *mut supa_options,
    margin_ms: u64,
) -> supa_result {
    boundary(|| {
        // SAFETY: `options` is NULL or live options used by one thread (the header's pointer rule).
        let o = tri!(unsafe { opts(options) });
        let d = ms(margin_ms);
        tri!(checked(checks::check_duration(
            "token_refresh_margin",
            d,
            std::time::Duration::ZERO
        )));
        o.token_refresh_margin = d;
        ok()
    })
}

/// With a token provider: how many consecutive join refusals for the token (the server's
/// `InvalidJWTToken`, `MalformedJWT`, `JwtSignatureError`) are retried (each reported as a
/// recoverable `SUPA_STATUS_CHANNEL_ERROR`, the provider asked again) before the channel stops
/// with the terminal "token rejected" status (`supa_event_is_token_rejected`). Default 3;
/// 0 stops at the first refusal. Without a provider the first refusal is terminal.
#[no_mangle]
pub extern "C" fn supa_options_set_auth_retries(
    options: *mut supa_options,
    retries: u32,
) -> supa_result {
    boundary(|| {
        // SAFETY: `options` is NULL or live options used by one thread (the header's pointer rule).
        tri!(unsafe { opts(options) }).auth_retries = retries;
        ok()
    })
}

/// A core check's verdict as a code (the same text in every language).
fn checked(r: Result<(), crate::error::Error>) -> Result<(), supa_result> {
    r.map_err(|e| super::error::from_error(&e))
}

/// Stores a `max_*` bound after the core's check.
fn set_bound(field: &mut usize, name: &str, value: usize, min: usize) -> supa_result {
    tri!(checked(checks::check_bound(name, value, min)));
    *field = value;
    ok()
}

/// The largest WebSocket message read from the server, in bytes: default 16 MiB (16777216),
/// at least 1024. A larger message is reported as a `SUPA_EVENT_ERROR` ("... (max_message_size
/// N)") and the connection is dropped and made again, as the socket cannot skip it.
#[no_mangle]
pub extern "C" fn supa_options_set_max_message_size(
    options: *mut supa_options,
    bytes: usize,
) -> supa_result {
    boundary(|| {
        // SAFETY: `options` is NULL or live options used by one thread (the header's pointer rule).
        let o = tri!(unsafe { opts(options) });
        set_bound(
            &mut o.max_message_size,
            "max_message_size",
            bytes,
            checks::MIN_SIZE_BOUND,
        )
    })
}

/// The largest frame decoded into events, in bytes (a broadcast's frame is nearly all
/// payload): default 8 MiB (8388608), at least 1024. A larger frame is skipped and reported as
/// a `SUPA_EVENT_ERROR` ("skipped a binary frame of N bytes: over max_payload_size (M)"); the
/// connection stays up and later events arrive as usual.
#[no_mangle]
pub extern "C" fn supa_options_set_max_payload_size(
    options: *mut supa_options,
    bytes: usize,
) -> supa_result {
    boundary(|| {
        // SAFETY: `options` is NULL or live options used by one thread (the header's pointer rule).
        let o = tri!(unsafe { opts(options) });
        set_bound(
            &mut o.max_payload_size,
            "max_payload_size",
            bytes,
            checks::MIN_SIZE_BOUND,
        )
    })
}

/// Per channel, the presence keys kept: default 100000, at least 1. A presence state or diff
/// that would go over is not applied (the state stays as it was) and is reported as a
/// `SUPA_EVENT_ERROR` ("... over max_presence_keys (N)").
#[no_mangle]
pub extern "C" fn supa_options_set_max_presence_keys(
    options: *mut supa_options,
    keys: usize,
) -> supa_result {
    boundary(|| {
        // SAFETY: `options` is NULL or live options used by one thread (the header's pointer rule).
        let o = tri!(unsafe { opts(options) });
        set_bound(&mut o.max_presence_keys, "max_presence_keys", keys, 1)
    })
}

/// Per channel, the presence state's size as JSON text (keys and metas), in bytes: default
/// 32 MiB (33554432), at least 1024; separately the same for diffs held until a new join's state
/// arrives. Over it, as `supa_options_set_max_presence_keys`.
#[no_mangle]
pub extern "C" fn supa_options_set_max_presence_size(
    options: *mut supa_options,
    bytes: usize,
) -> supa_result {
    boundary(|| {
        // SAFETY: `options` is NULL or live options used by one thread (the header's pointer rule).
        let o = tri!(unsafe { opts(options) });
        set_bound(
            &mut o.max_presence_size,
            "max_presence_size",
            bytes,
            checks::MIN_SIZE_BOUND,
        )
    })
}

struct CTokenProvider {
    cb: unsafe extern "C" fn(*mut c_void, *mut *const c_char) -> i32,
    userdata: UserData,
}

impl TokenProvider for CTokenProvider {
    fn token(&self) -> Result<Option<String>, String> {
        let mut token: *const c_char = std::ptr::null();
        // SAFETY: the caller's provider with its own userdata and a place for the token, as
        // `supa_token_cb` states.
        let rc = unsafe { (self.cb)(self.userdata.ptr(), &mut token) };
        if rc != 0 {
            return Err(format!("the token callback failed ({rc})"));
        }
        if token.is_null() {
            return Ok(None);
        }
        // SAFETY: a non-NULL token is a NUL-terminated string valid until the callback returns
        // (`supa_token_cb`); it is copied before anything else runs.
        unsafe { std::ffi::CStr::from_ptr(token) }
            .to_str()
            .map(|s| Some(s.to_owned()))
            .map_err(|_| "the token callback returned invalid UTF-8".to_owned())
    }
}

/// Sets a token provider, called before each connect (the first and every reconnect), ahead of
/// the current token's expiry (`supa_options_set_token_refresh_margin_ms`), before a rejoin
/// after the server refused the token, and when the app comes to the foreground (see
/// `supa_token_cb`); never on heartbeats. One call runs at a time, on a library thread; one
/// that takes longer than 10 s counts as failed. Invalid UTF-8 is an error (reported as a
/// `SUPA_EVENT_ERROR` event), never a silent fall-back to the API key; a blocking call of the
/// library made inside it returns `SUPA_WOULD_DEADLOCK`.
/// It replaces an earlier one (whose destructor then runs once no client uses it).
///
/// Ownership: `destroy` (may be NULL) runs exactly once with `userdata`, after the last call,
/// when neither these options nor any client made from them hold the provider any more.
/// On failure neither `cb` nor `destroy` is ever called.
#[no_mangle]
pub extern "C" fn supa_options_set_token_provider(
    options: *mut supa_options,
    cb: supa_token_cb,
    userdata: *mut c_void,
    destroy: supa_destroy_cb,
) -> supa_result {
    boundary(|| {
        // SAFETY: `options` is NULL or live options used by one thread (the header's pointer rule).
        let o = tri!(unsafe { opts(options) });
        let Some(cb) = cb else {
            return fail(supa_result::SUPA_NULL_ARGUMENT, "`cb` is NULL");
        };
        o.token_provider = Some(Arc::new(CTokenProvider {
            cb,
            userdata: UserData::armed(userdata, destroy),
        }));
        ok()
    })
}

/// Creates channel options with the defaults: no self broadcasts, no acks, server-chosen
/// presence key, presence off (a presence callback turns it on), public, and with postgres
/// bindings SUBSCRIBED only once changes flow (20 s bound).
///
/// Ownership: on success `*out` is freed by the caller with `supa_channel_options_free`.
#[no_mangle]
pub extern "C" fn supa_channel_options_new(out: *mut *mut supa_channel_options) -> supa_result {
    boundary(|| {
        non_null!(out);
        let o = Box::new(supa_channel_options {
            inner: ChannelOptions::default(),
        });
        // SAFETY: `out` is non-NULL (checked above), so writable (the header's rule for
        // out-parameters).
        unsafe { put(out, Box::into_raw(o)) };
        ok()
    })
}

/// Frees channel options. NULL is a no-op.
#[no_mangle]
pub extern "C" fn supa_channel_options_free(options: *mut supa_channel_options) {
    // SAFETY: the header allows only NULL or options from `supa_channel_options_new`, freed
    // once.
    boundary(|| unsafe { free_box(options) })
}

/// Receive your own broadcasts.
#[no_mangle]
pub extern "C" fn supa_channel_options_set_broadcast_self(
    options: *mut supa_channel_options,
    on: bool,
) -> supa_result {
    boundary(|| {
        // SAFETY: `options` is NULL or live options used by one thread (the header's pointer rule).
        tri!(unsafe { chopts(options) }).broadcast_self = on;
        ok()
    })
}

/// Ask the server to ack each broadcast: blocking sends then return on the ack.
#[no_mangle]
pub extern "C" fn supa_channel_options_set_broadcast_ack(
    options: *mut supa_channel_options,
    on: bool,
) -> supa_result {
    boundary(|| {
        // SAFETY: `options` is NULL or live options used by one thread (the header's pointer rule).
        tri!(unsafe { chopts(options) }).broadcast_ack = on;
        ok()
    })
}

/// The presence key for this client; empty lets the server pick one per join.
#[no_mangle]
pub extern "C" fn supa_channel_options_set_presence_key(
    options: *mut supa_channel_options,
    key: *const c_char,
) -> supa_result {
    boundary(|| {
        // SAFETY: `options` is NULL or live options used by one thread (the header's pointer rule).
        let o = tri!(unsafe { chopts(options) });
        // SAFETY: `key` is NULL or a NUL-terminated string (the header's pointer rule).
        o.presence_key = tri!(unsafe { str_arg(key, "key") }).to_owned();
        ok()
    })
}

/// Turn presence on at join even without a presence callback (to track only).
#[no_mangle]
pub extern "C" fn supa_channel_options_set_presence_enabled(
    options: *mut supa_channel_options,
    on: bool,
) -> supa_result {
    boundary(|| {
        // SAFETY: `options` is NULL or live options used by one thread (the header's pointer rule).
        tri!(unsafe { chopts(options) }).presence_enabled = on;
        ok()
    })
}

/// A private channel (authorised by RLS policies on `realtime.messages`).
#[no_mangle]
pub extern "C" fn supa_channel_options_set_private(
    options: *mut supa_channel_options,
    on: bool,
) -> supa_result {
    boundary(|| {
        // SAFETY: `options` is NULL or live options used by one thread (the header's pointer rule).
        tri!(unsafe { chopts(options) }).private = on;
        ok()
    })
}

/// With postgres bindings, report SUBSCRIBED only after the server says changes flow (on by
/// default); off gives realtime-js' plain behaviour.
#[no_mangle]
pub extern "C" fn supa_channel_options_set_wait_for_postgres_ready(
    options: *mut supa_channel_options,
    on: bool,
) -> supa_result {
    boundary(|| {
        // SAFETY: `options` is NULL or live options used by one thread (the header's pointer rule).
        tri!(unsafe { chopts(options) }).wait_for_postgres_ready = on;
        ok()
    })
}

/// How long to wait for postgres readiness before reporting TIMED_OUT, in milliseconds.
#[no_mangle]
pub extern "C" fn supa_channel_options_set_postgres_ready_timeout_ms(
    options: *mut supa_channel_options,
    timeout_ms: u64,
) -> supa_result {
    boundary(|| {
        // SAFETY: `options` is NULL or live options used by one thread (the header's pointer rule).
        let o = tri!(unsafe { chopts(options) });
        let d = ms(timeout_ms);
        tri!(checked(checks::check_duration(
            "postgres_ready_timeout",
            d,
            checks::ONE_MS
        )));
        o.postgres_ready_timeout = d;
        ok()
    })
}
