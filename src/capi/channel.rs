//! `supa_channel`: listeners, subscribe, broadcast, presence and postgres changes on one topic.

use std::ffi::{c_char, c_void, CString};
use std::future::Future;
use std::sync::{Arc, Weak};
use std::task::{Context, Poll, Waker};

use super::callback::{event_listener, supa_destroy_cb, supa_event_cb, Arming, UserData};
use super::error::{fail, ok};
use super::event::{deliver, Borrowed};
use super::{
    borrow, boundary, free_box, json_arg, ms, non_null, opt_str_arg, owned_c_string, put, result,
    slice_arg, str_arg, supa_result, tri,
};
use crate::client::ClientInner;
use crate::error::Error;
use crate::event::{ChannelState, Payload};
use crate::postgres::PostgresChangesFilter;
use crate::{ListenerId, RealtimeChannel, RealtimeClient};

/// A handle to one channel (topic `realtime:<name>`).
///
/// Thread-safety: every function may be called from any thread and from inside callbacks.
/// Freeing the handle does not leave the channel (use `supa_channel_unsubscribe`).
pub struct supa_channel {
    pub(super) inner: RealtimeChannel,
    topic: CString,
    /// The client, for its per-topic metrics; weak, as the core channel's own link.
    client: Weak<ClientInner>,
}

impl supa_channel {
    pub(crate) fn new(inner: RealtimeChannel, client: &RealtimeClient) -> *mut supa_channel {
        let topic = CString::new(inner.topic().replace('\0', "")).unwrap_or_default();
        let client = Arc::downgrade(&client.inner);
        Box::into_raw(Box::new(supa_channel {
            inner,
            topic,
            client,
        }))
    }
}

impl supa_channel {
    /// The core channel behind the handle.
    pub(crate) fn core(&self) -> &RealtimeChannel {
        &self.inner
    }

    /// Whether the handle came from `client` (a handle of another client is refused rather
    /// than acted on, as the caller surely mixed them up).
    pub(crate) fn belongs_to(&self, client: &RealtimeClient) -> bool {
        std::ptr::eq(self.client.as_ptr(), Arc::as_ptr(&client.inner))
    }
}

/// A channel's state. Values are stable.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum supa_channel_state {
    SUPA_CHANNEL_CLOSED = 0,
    SUPA_CHANNEL_JOINING = 1,
    SUPA_CHANNEL_JOINED = 2,
    SUPA_CHANNEL_LEAVING = 3,
    SUPA_CHANNEL_ERRORED = 4,
}

/// The channel behind a handle: `SUPA_NULL_ARGUMENT` for NULL, `SUPA_SHUTDOWN` once its client
/// was shut down or freed (every export refuses then, except the getters and
/// `supa_channel_free`).
///
/// # Safety
///
/// As [`borrow`]: `p` is NULL or a channel handle not yet freed.
pub(crate) unsafe fn channel<'a>(p: *const supa_channel) -> Result<&'a supa_channel, supa_result> {
    // SAFETY: the caller's promise for `p`, passed on.
    let ch = unsafe { borrow(p) }
        .ok_or_else(|| fail(supa_result::SUPA_NULL_ARGUMENT, "`channel` is NULL"))?;
    match ch.client.upgrade() {
        Some(client) if client.check().is_ok() => Ok(ch),
        _ => Err(super::shut_down()),
    }
}

/// Runs an async core operation without waiting for its outcome: it is polled once here, so
/// argument and state errors (not subscribed, shut down) are returned at once, and the rest
/// (waiting for the reply) continues on the library runtime.
fn start(fut: impl Future<Output = Result<(), Error>> + Send + 'static) -> Result<(), Error> {
    let mut fut = Box::pin(fut);
    // Timers and spawns inside the operation need the runtime's context.
    let _runtime = crate::runtime::handle().enter();
    match fut.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(r) => r,
        Poll::Pending => {
            crate::runtime::handle().spawn(async move {
                let _: Result<(), Error> = fut.await;
            });
            Ok(())
        }
    }
}

/// Frees the handle (NULL is a no-op). Does not leave the channel; callbacks keep running
/// until it is unsubscribed or the client is freed. Safe inside a callback.
#[no_mangle]
pub extern "C" fn supa_channel_free(channel: *mut supa_channel) {
    // SAFETY: the header allows only NULL or a handle this library made, freed once.
    boundary(|| unsafe { free_box(channel) })
}

/// The wire topic, `realtime:<name>`. Lifetime: as long as the handle. NULL for NULL.
#[no_mangle]
pub extern "C" fn supa_channel_topic(channel: *const supa_channel) -> *const c_char {
    // SAFETY: `channel` is NULL or a live channel handle (the header's pointer rule).
    boundary(|| match unsafe { borrow(channel) } {
        Some(c) => c.topic.as_ptr(),
        None => std::ptr::null(),
    })
}

/// The channel's state (a `supa_channel_state`); `SUPA_CHANNEL_CLOSED` for NULL.
#[no_mangle]
pub extern "C" fn supa_channel_get_state(channel: *const supa_channel) -> u32 {
    // SAFETY: `channel` is NULL or a live channel handle (the header's pointer rule).
    boundary(|| match unsafe { borrow(channel) } {
        None => supa_channel_state::SUPA_CHANNEL_CLOSED as u32,
        Some(c) => {
            (match c.inner.state() {
                ChannelState::Closed => supa_channel_state::SUPA_CHANNEL_CLOSED,
                ChannelState::Joining => supa_channel_state::SUPA_CHANNEL_JOINING,
                ChannelState::Joined => supa_channel_state::SUPA_CHANNEL_JOINED,
                ChannelState::Leaving => supa_channel_state::SUPA_CHANNEL_LEAVING,
                ChannelState::Errored => supa_channel_state::SUPA_CHANNEL_ERRORED,
            }) as u32
        }
    })
}

/// Writes to `*out` how long the channel's last join took, in microseconds: from its (re)join
/// attempt to `SUBSCRIBED` (the value behind `supa_client_join_latency_json`).
///
/// Errors: `SUPA_NOT_CONNECTED` before the channel's first `SUBSCRIBED` and after it was
/// removed (unsubscribed or closed for good), `SUPA_SHUTDOWN` when the client was freed.
/// Callable from any thread and inside callbacks (it does not block).
#[no_mangle]
pub extern "C" fn supa_channel_join_latency_us(
    channel: *const supa_channel,
    out: *mut u64,
) -> supa_result {
    boundary(|| {
        // SAFETY: `channel` is NULL or a live channel handle (the header's pointer rule).
        let ch = tri!(unsafe { self::channel(channel) });
        non_null!(out);
        let Some(inner) = ch.client.upgrade() else {
            return super::shut_down();
        };
        let metrics = RealtimeClient { inner }.metrics();
        match metrics
            .join_latency
            .iter()
            .find(|(topic, _)| topic == ch.inner.topic())
        {
            Some((_, d)) => {
                // SAFETY: `out` is non-NULL (checked above), so writable (the header's pointer
                // rule).
                unsafe { put(out, super::us(*d)) };
                ok()
            }
            None => fail(
                supa_result::SUPA_NOT_CONNECTED,
                "the channel has no join latency: not subscribed yet, or removed",
            ),
        }
    })
}

/// Finishes a registration: a listener id of 0 means the client is gone.
///
/// # Safety
///
/// As [`put`]: `out` is NULL or writable.
unsafe fn registered(
    id: Result<ListenerId, Error>,
    arming: Arming,
    userdata: *mut c_void,
    destroy: supa_destroy_cb,
    out: *mut u64,
) -> supa_result {
    let id = match id {
        Ok(ListenerId(0)) => Err(Error::Shutdown),
        other => other,
    };
    match id {
        Ok(id) => {
            arming.armed(userdata, destroy);
            // SAFETY: the caller's promise for `out`, passed on.
            unsafe { put(out, id.0) };
            ok()
        }
        Err(e) => {
            arming.cancelled();
            result(Err(e))
        }
    }
}

macro_rules! callback_arg {
    ($cb:ident) => {
        match $cb {
            Some(cb) => cb,
            None => return fail(supa_result::SUPA_NULL_ARGUMENT, "`cb` is NULL"),
        }
    };
}

/// Registers `cb` for every event of this channel (statuses, broadcasts, presence, changes,
/// system messages, resumed) and for lagged events.
///
/// `*listener_id` (may be NULL) receives an id for `supa_client_remove_listener`.
/// Callback context: see `supa_event_cb`. Ownership: `destroy` (may be NULL) runs exactly once
/// after the last callback: after removal, once the channel is closed (its final CLOSED status
/// delivered), or when the client shuts down. On failure neither is ever called.
#[no_mangle]
pub extern "C" fn supa_channel_on_event(
    channel: *const supa_channel,
    cb: supa_event_cb,
    userdata: *mut c_void,
    destroy: supa_destroy_cb,
    listener_id: *mut u64,
) -> supa_result {
    boundary(|| {
        // SAFETY: `channel` is NULL or a live channel handle (the header's pointer rule).
        let ch = tri!(unsafe { self::channel(channel) });
        let cb = callback_arg!(cb);
        let (ud, arming) = UserData::pending(userdata, destroy);
        let id = ch.inner.on_event(event_listener(cb, ud));
        // SAFETY: `listener_id` is NULL or writable (the header's pointer rule).
        unsafe { registered(Ok(id), arming, userdata, destroy, listener_id) }
    })
}

/// Registers `cb` for broadcasts whose event equals `event` (ASCII case-insensitive), or all
/// broadcasts with `"*"`. Kind `SUPA_EVENT_BROADCAST`. Rules as `supa_channel_on_event`.
#[no_mangle]
pub extern "C" fn supa_channel_on_broadcast(
    channel: *const supa_channel,
    event: *const c_char,
    cb: supa_event_cb,
    userdata: *mut c_void,
    destroy: supa_destroy_cb,
    listener_id: *mut u64,
) -> supa_result {
    boundary(|| {
        // SAFETY: `channel` is NULL or a live channel handle (the header's pointer rule).
        let ch = tri!(unsafe { self::channel(channel) });
        // SAFETY: `event` is NULL or a NUL-terminated string (the header's pointer rule).
        let event = tri!(unsafe { str_arg(event, "event") });
        let cb = callback_arg!(cb);
        let (ud, arming) = UserData::pending(userdata, destroy);
        // Raw: the callback reads the payload's JSON text as the frame carried it.
        let id = ch
            .inner
            .on_broadcast_raw(event, move |b| deliver(cb, ud.ptr(), Borrowed::from(b)));
        // SAFETY: `listener_id` is NULL or writable (the header's pointer rule).
        unsafe { registered(Ok(id), arming, userdata, destroy, listener_id) }
    })
}

/// Registers `cb` for presence sync, join and leave events (kinds `SUPA_EVENT_PRESENCE_*`) and
/// turns presence on in the join. Register before `supa_channel_subscribe`. Rules as
/// `supa_channel_on_event`.
#[no_mangle]
pub extern "C" fn supa_channel_on_presence(
    channel: *const supa_channel,
    cb: supa_event_cb,
    userdata: *mut c_void,
    destroy: supa_destroy_cb,
    listener_id: *mut u64,
) -> supa_result {
    boundary(|| {
        // SAFETY: `channel` is NULL or a live channel handle (the header's pointer rule).
        let ch = tri!(unsafe { self::channel(channel) });
        let cb = callback_arg!(cb);
        let (ud, arming) = UserData::pending(userdata, destroy);
        let id = ch
            .inner
            .on_presence(move |p| deliver(cb, ud.ptr(), Borrowed::Presence(p)));
        // SAFETY: `listener_id` is NULL or writable (the header's pointer rule).
        unsafe { registered(Ok(id), arming, userdata, destroy, listener_id) }
    })
}

/// Registers `cb` for the channel's `system` messages (kind `SUPA_EVENT_SYSTEM`, e.g.
/// `Subscribed to PostgreSQL`). Rules as `supa_channel_on_event`.
#[no_mangle]
pub extern "C" fn supa_channel_on_system(
    channel: *const supa_channel,
    cb: supa_event_cb,
    userdata: *mut c_void,
    destroy: supa_destroy_cb,
    listener_id: *mut u64,
) -> supa_result {
    boundary(|| {
        // SAFETY: `channel` is NULL or a live channel handle (the header's pointer rule).
        let ch = tri!(unsafe { self::channel(channel) });
        let cb = callback_arg!(cb);
        let (ud, arming) = UserData::pending(userdata, destroy);
        let topic = ch.inner.topic().to_owned();
        let id = ch
            .inner
            .on_system(move |v| deliver(cb, ud.ptr(), Borrowed::System(topic.as_str(), v)));
        // SAFETY: `listener_id` is NULL or writable (the header's pointer rule).
        unsafe { registered(Ok(id), arming, userdata, destroy, listener_id) }
    })
}

/// Adds a postgres-changes binding and its callback (kind `SUPA_EVENT_POSTGRES_CHANGE`).
///
/// `event` is `"*"`, `"INSERT"`, `"UPDATE"` or `"DELETE"` (else `SUPA_INVALID_ARGUMENT`);
/// `schema` e.g. `"public"`; `table` and `filter` (PostgREST style, `"room_id=eq.1"`, needs a
/// table) may be NULL; `select` lists `select_count` column names (NULL with 0 for all
/// columns).
/// Must come before `supa_channel_subscribe` (`SUPA_INVALID_ARGUMENT` after). Rules as
/// `supa_channel_on_event`.
#[no_mangle]
pub extern "C" fn supa_channel_on_postgres_changes(
    channel: *const supa_channel,
    event: *const c_char,
    schema: *const c_char,
    table: *const c_char,
    filter: *const c_char,
    select: *const *const c_char,
    select_count: usize,
    cb: supa_event_cb,
    userdata: *mut c_void,
    destroy: supa_destroy_cb,
    listener_id: *mut u64,
) -> supa_result {
    boundary(|| {
        // SAFETY: `channel` is NULL or a live channel handle (the header's pointer rule).
        let ch = tri!(unsafe { self::channel(channel) });
        // SAFETY: `event` is NULL or a NUL-terminated string (the header's pointer rule).
        let event = tri!(unsafe { str_arg(event, "event") });
        // SAFETY: `schema` is NULL or a NUL-terminated string (the header's pointer rule).
        let schema = tri!(unsafe { str_arg(schema, "schema") });
        let mut f = PostgresChangesFilter::new(event, schema);
        // SAFETY: `table` is NULL or a NUL-terminated string (the header's pointer rule).
        if let Some(t) = tri!(unsafe { opt_str_arg(table, "table") }) {
            f = f.table(t);
        }
        // SAFETY: `filter` is NULL or a NUL-terminated string (the header's pointer rule).
        if let Some(x) = tri!(unsafe { opt_str_arg(filter, "filter") }) {
            f = f.filter(x);
        }
        if select_count > 0 {
            // SAFETY: `select` is NULL or points to `select_count` string pointers (the header's
            // pointer rule).
            let select = tri!(unsafe { slice_arg(select, select_count, "select") });
            let mut cols = Vec::with_capacity(select_count);
            for p in select {
                // SAFETY: each element is NULL or a NUL-terminated string (the header's pointer
                // rule).
                cols.push(tri!(unsafe { str_arg(*p, "select[i]") }).to_owned());
            }
            f = f.select(cols);
        }
        let cb = callback_arg!(cb);
        let (ud, arming) = UserData::pending(userdata, destroy);
        let id = ch
            .inner
            .on_postgres_changes(f, move |c| deliver(cb, ud.ptr(), Borrowed::Change(c)));
        // SAFETY: `listener_id` is NULL or writable (the header's pointer rule).
        unsafe { registered(id, arming, userdata, destroy, listener_id) }
    })
}

/// Joins the channel (connecting the client if needed) and returns at once. Statuses arrive as
/// `SUPA_EVENT_CHANNEL_STATUS` events. A channel is single-use: once closed, subscribing again
/// gives `SUPA_INVALID_ARGUMENT`; get a fresh handle with `supa_client_channel`.
#[no_mangle]
pub extern "C" fn supa_channel_subscribe(channel: *const supa_channel) -> supa_result {
    boundary(|| {
        // SAFETY: `channel` is NULL or a live channel handle (the header's pointer rule).
        let ch = tri!(unsafe { self::channel(channel) });
        result(ch.inner.subscribe())
    })
}

/// Joins and waits up to `timeout_ms` for SUBSCRIBED.
///
/// Blocking: `SUPA_WOULD_DEADLOCK` inside a callback. Fails within the join timeout
/// (`supa_options_set_push_timeout_ms`, 10 s) with the cause, the client retrying underneath:
/// `SUPA_CHANNEL_ERROR` with the server's reason (a refusal such as `Unauthorized: ...` or
/// `ChannelRateLimitReached: ...`, or CLOSED), `SUPA_HTTP` when the upgrade was refused
/// ("HTTP 401: ..." for a wrong or expired key, 404 for a wrong path), `SUPA_IO` when nothing
/// listens or the name does not resolve, `SUPA_TLS`, or `SUPA_TIMEOUT` when the server did not
/// answer the join; `supa_last_error_message()` says which.
#[no_mangle]
pub extern "C" fn supa_channel_subscribe_blocking(
    channel: *const supa_channel,
    timeout_ms: u64,
) -> supa_result {
    boundary(|| {
        // SAFETY: `channel` is NULL or a live channel handle (the header's pointer rule).
        let ch = tri!(unsafe { self::channel(channel) });
        result(ch.inner.subscribe_blocking(ms(timeout_ms)))
    })
}

/// A JSON payload argument.
///
/// # Safety
///
/// As [`str_arg`].
pub(super) unsafe fn json_payload(json: *const c_char) -> Result<Payload, supa_result> {
    // SAFETY: the caller's promise for `json`, passed on.
    unsafe { json_arg(json, "json") }.map(Payload::Json)
}

/// A binary payload argument (copied).
///
/// # Safety
///
/// As [`slice_arg`].
unsafe fn binary_payload(data: *const u8, len: usize) -> Result<Payload, supa_result> {
    // SAFETY: the caller's promise for `data`, passed on.
    unsafe { slice_arg(data, len, "data") }.map(|b| Payload::Binary(b.to_vec()))
}

/// Sends a broadcast with a JSON payload (`json`: NUL-terminated JSON text) without waiting.
/// Before the join completes it waits in the channel's buffer. Errors known at once (invalid
/// JSON, not subscribed, shut down) are returned; later ones are dropped.
#[no_mangle]
pub extern "C" fn supa_channel_send_broadcast_json(
    channel: *const supa_channel,
    event: *const c_char,
    json: *const c_char,
) -> supa_result {
    boundary(|| {
        // SAFETY: `channel` is NULL or a live channel handle (the header's pointer rule).
        let ch = tri!(unsafe { self::channel(channel) });
        // SAFETY: `event` is NULL or a NUL-terminated string (the header's pointer rule).
        let event = tri!(unsafe { str_arg(event, "event") });
        // SAFETY: `json` is NULL or a NUL-terminated string (the header's pointer rule).
        let payload = tri!(unsafe { json_payload(json) });
        result(ch.inner.send_broadcast_nowait(event, payload))
    })
}

/// Sends a broadcast with a binary payload (`len` bytes, copied; vsn 2.0.0 only) without
/// waiting. As `supa_channel_send_broadcast_json`.
#[no_mangle]
pub extern "C" fn supa_channel_send_broadcast_binary(
    channel: *const supa_channel,
    event: *const c_char,
    data: *const u8,
    len: usize,
) -> supa_result {
    boundary(|| {
        // SAFETY: `channel` is NULL or a live channel handle (the header's pointer rule).
        let ch = tri!(unsafe { self::channel(channel) });
        // SAFETY: `event` is NULL or a NUL-terminated string (the header's pointer rule).
        let event = tri!(unsafe { str_arg(event, "event") });
        // SAFETY: `data` points to `len` bytes when `len` is not 0 (the header's pointer rule).
        let payload = tri!(unsafe { binary_payload(data, len) });
        result(ch.inner.send_broadcast_nowait(event, payload))
    })
}

/// Sends a JSON broadcast and waits up to `timeout_ms`: for the server's ack with
/// `broadcast_ack`, else until written. Blocking: `SUPA_WOULD_DEADLOCK` inside a callback.
#[no_mangle]
pub extern "C" fn supa_channel_send_broadcast_json_blocking(
    channel: *const supa_channel,
    event: *const c_char,
    json: *const c_char,
    timeout_ms: u64,
) -> supa_result {
    boundary(|| {
        // SAFETY: `channel` is NULL or a live channel handle (the header's pointer rule).
        let ch = tri!(unsafe { self::channel(channel) });
        // SAFETY: `event` is NULL or a NUL-terminated string (the header's pointer rule).
        let event = tri!(unsafe { str_arg(event, "event") });
        // SAFETY: `json` is NULL or a NUL-terminated string (the header's pointer rule).
        let payload = tri!(unsafe { json_payload(json) });
        result(
            ch.inner
                .send_broadcast_blocking(event, payload, ms(timeout_ms)),
        )
    })
}

/// The binary form of `supa_channel_send_broadcast_json_blocking`.
#[no_mangle]
pub extern "C" fn supa_channel_send_broadcast_binary_blocking(
    channel: *const supa_channel,
    event: *const c_char,
    data: *const u8,
    len: usize,
    timeout_ms: u64,
) -> supa_result {
    boundary(|| {
        // SAFETY: `channel` is NULL or a live channel handle (the header's pointer rule).
        let ch = tri!(unsafe { self::channel(channel) });
        // SAFETY: `event` is NULL or a NUL-terminated string (the header's pointer rule).
        let event = tri!(unsafe { str_arg(event, "event") });
        // SAFETY: `data` points to `len` bytes when `len` is not 0 (the header's pointer rule).
        let payload = tri!(unsafe { binary_payload(data, len) });
        result(
            ch.inner
                .send_broadcast_blocking(event, payload, ms(timeout_ms)),
        )
    })
}

/// Broadcasts over REST (`POST .../api/broadcast`), without joining, with a JSON payload;
/// waits up to `timeout_ms` for the HTTP status. `SUPA_HTTP` (status and body in the message)
/// for a refusal. Blocking: `SUPA_WOULD_DEADLOCK` inside a callback (use the non-blocking
/// `supa_channel_http_send_json` there).
#[no_mangle]
pub extern "C" fn supa_channel_http_send_json_blocking(
    channel: *const supa_channel,
    event: *const c_char,
    json: *const c_char,
    timeout_ms: u64,
) -> supa_result {
    boundary(|| {
        // SAFETY: `channel` is NULL or a live channel handle (the header's pointer rule).
        let ch = tri!(unsafe { self::channel(channel) });
        // SAFETY: `event` is NULL or a NUL-terminated string (the header's pointer rule).
        let event = tri!(unsafe { str_arg(event, "event") });
        // SAFETY: `json` is NULL or a NUL-terminated string (the header's pointer rule).
        let payload = tri!(unsafe { json_payload(json) });
        result(ch.inner.http_send_blocking(event, payload, ms(timeout_ms)))
    })
}

/// The binary form of `supa_channel_http_send_json_blocking`.
#[no_mangle]
pub extern "C" fn supa_channel_http_send_binary_blocking(
    channel: *const supa_channel,
    event: *const c_char,
    data: *const u8,
    len: usize,
    timeout_ms: u64,
) -> supa_result {
    boundary(|| {
        // SAFETY: `channel` is NULL or a live channel handle (the header's pointer rule).
        let ch = tri!(unsafe { self::channel(channel) });
        // SAFETY: `event` is NULL or a NUL-terminated string (the header's pointer rule).
        let event = tri!(unsafe { str_arg(event, "event") });
        // SAFETY: `data` points to `len` bytes when `len` is not 0 (the header's pointer rule).
        let payload = tri!(unsafe { binary_payload(data, len) });
        result(ch.inner.http_send_blocking(event, payload, ms(timeout_ms)))
    })
}

/// REST broadcast without waiting for the HTTP status (its outcome is not reported).
#[no_mangle]
pub extern "C" fn supa_channel_http_send_json(
    channel: *const supa_channel,
    event: *const c_char,
    json: *const c_char,
) -> supa_result {
    boundary(|| {
        // SAFETY: `channel` is NULL or a live channel handle (the header's pointer rule).
        let ch = tri!(unsafe { self::channel(channel) });
        // SAFETY: `event` is NULL or a NUL-terminated string (the header's pointer rule).
        let event = tri!(unsafe { str_arg(event, "event") }).to_owned();
        // SAFETY: `json` is NULL or a NUL-terminated string (the header's pointer rule).
        let payload = tri!(unsafe { json_payload(json) });
        let c = ch.inner.clone();
        result(start(async move { c.http_send(&event, payload).await }))
    })
}

/// Tracks this client's presence with `meta_json` (a JSON object) without waiting for the
/// reply. Errors known at once (not an object, not subscribed) are returned.
#[no_mangle]
pub extern "C" fn supa_channel_track(
    channel: *const supa_channel,
    meta_json: *const c_char,
) -> supa_result {
    boundary(|| {
        // SAFETY: `channel` is NULL or a live channel handle (the header's pointer rule).
        let ch = tri!(unsafe { self::channel(channel) });
        // SAFETY: `meta_json` is NULL or a NUL-terminated string (the header's pointer rule).
        let meta = tri!(unsafe { json_arg(meta_json, "meta_json") });
        let c = ch.inner.clone();
        result(start(async move { c.track(meta).await }))
    })
}

/// Tracks and waits up to `timeout_ms` for the reply. Blocking: `SUPA_WOULD_DEADLOCK` inside a
/// callback.
#[no_mangle]
pub extern "C" fn supa_channel_track_blocking(
    channel: *const supa_channel,
    meta_json: *const c_char,
    timeout_ms: u64,
) -> supa_result {
    boundary(|| {
        // SAFETY: `channel` is NULL or a live channel handle (the header's pointer rule).
        let ch = tri!(unsafe { self::channel(channel) });
        // SAFETY: `meta_json` is NULL or a NUL-terminated string (the header's pointer rule).
        let meta = tri!(unsafe { json_arg(meta_json, "meta_json") });
        result(ch.inner.track_blocking(meta, ms(timeout_ms)))
    })
}

/// Stops tracking without waiting for the reply.
#[no_mangle]
pub extern "C" fn supa_channel_untrack(channel: *const supa_channel) -> supa_result {
    boundary(|| {
        // SAFETY: `channel` is NULL or a live channel handle (the header's pointer rule).
        let ch = tri!(unsafe { self::channel(channel) });
        let c = ch.inner.clone();
        result(start(async move { c.untrack().await }))
    })
}

/// Stops tracking and waits up to `timeout_ms` for the reply. Blocking: `SUPA_WOULD_DEADLOCK`
/// inside a callback.
#[no_mangle]
pub extern "C" fn supa_channel_untrack_blocking(
    channel: *const supa_channel,
    timeout_ms: u64,
) -> supa_result {
    boundary(|| {
        // SAFETY: `channel` is NULL or a live channel handle (the header's pointer rule).
        let ch = tri!(unsafe { self::channel(channel) });
        result(ch.inner.untrack_blocking(ms(timeout_ms)))
    })
}

/// The presence state as a JSON object, key → array of metas (each with `presence_ref`), as
/// realtime-js' `presenceState()`.
///
/// Ownership: on success `*json` is a NUL-terminated string the caller frees with
/// `supa_string_free`.
#[no_mangle]
pub extern "C" fn supa_channel_presence_state_json(
    channel: *const supa_channel,
    json: *mut *mut c_char,
) -> supa_result {
    boundary(|| {
        // SAFETY: `channel` is NULL or a live channel handle (the header's pointer rule).
        let ch = tri!(unsafe { self::channel(channel) });
        non_null!(json);
        let map: serde_json::Map<String, serde_json::Value> = ch
            .inner
            .presence_state()
            .into_iter()
            .map(|(k, metas)| (k, serde_json::Value::Array(metas)))
            .collect();
        let text = owned_c_string(serde_json::Value::Object(map).to_string());
        // SAFETY: `json` is non-NULL (checked above), so writable (the header's pointer rule).
        unsafe { put(json, text) };
        ok()
    })
}

/// Leaves the channel without waiting. The final `SUPA_STATUS_CLOSED` status is delivered, then
/// the channel's registrations are removed (their destructors run). Safe inside a callback.
#[no_mangle]
pub extern "C" fn supa_channel_unsubscribe(channel: *const supa_channel) -> supa_result {
    boundary(|| {
        // SAFETY: `channel` is NULL or a live channel handle (the header's pointer rule).
        let ch = tri!(unsafe { self::channel(channel) });
        result(ch.inner.unsubscribe_nowait())
    })
}

/// Leaves and waits up to `timeout_ms` for the server's confirmation. Blocking:
/// `SUPA_WOULD_DEADLOCK` inside a callback.
#[no_mangle]
pub extern "C" fn supa_channel_unsubscribe_blocking(
    channel: *const supa_channel,
    timeout_ms: u64,
) -> supa_result {
    boundary(|| {
        // SAFETY: `channel` is NULL or a live channel handle (the header's pointer rule).
        let ch = tri!(unsafe { self::channel(channel) });
        result(ch.inner.unsubscribe_blocking(ms(timeout_ms)))
    })
}
