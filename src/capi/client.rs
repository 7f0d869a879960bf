//! `supa_client`: one WebSocket, its dispatch queue, and the channels on it.

use std::ffi::{c_char, c_void};

use super::callback::{event_listener, supa_destroy_cb, supa_event_cb, supa_wakeup_cb, UserData};
use super::channel::supa_channel;
use super::error::{fail, from_error, ok};
use super::event::connection_state;
use super::options::{supa_channel_options, supa_options};
use super::{
    borrow, boundary, ms, non_null, opt_str_arg, opt_us, owned_c_string, put, result, str_arg,
    supa_result, tri, us,
};
use crate::event::{ChannelState, ConnectionState};
use crate::options::{ChannelOptions, DispatchMode};
use crate::RealtimeClient;

/// A client: one connection to a Realtime server and any number of channels.
///
/// Thread-safety: every function may be called from any thread, concurrently, and from inside
/// callbacks. Callbacks of one client run one at a time, in event order.
pub struct supa_client {
    pub(crate) inner: RealtimeClient,
    mode: DispatchMode,
}

/// Counters of a client, from `supa_client_metrics`. Durations are in microseconds.
///
/// Caller-allocated and versioned by size: set `struct_size` to `sizeof(supa_metrics)` before
/// the call (in C, `supa_metrics m = {.struct_size = sizeof(supa_metrics)};`). Fields are only
/// ever appended, and the library writes only the fields that fit in `struct_size`, so a
/// program built against an older header keeps working with a newer library; fields of a newer
/// header that this library does not know are set to 0. Per-channel join latency is read with
/// `supa_channel_join_latency_us` or `supa_client_join_latency_json`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct supa_metrics {
    /// Set by the caller to `sizeof(supa_metrics)`; never written by the library.
    pub struct_size: usize,
    /// Successful socket opens, the first included.
    pub connects: u64,
    /// Opens after the first.
    pub reconnects: u64,
    pub messages_in: u64,
    pub messages_out: u64,
    /// The last heartbeat round trip in microseconds; 0 before the first reply.
    pub heartbeat_rtt_us: u64,
    /// Events waiting on the dispatch queue.
    pub queue_depth: u64,
    /// Data events dropped because the queue was full.
    pub dropped_events: u64,
    /// Median of the last 128 heartbeat round trips in microseconds; 0 before the first reply.
    pub heartbeat_rtt_p50_us: u64,
    /// 99th percentile of the last 128 heartbeat round trips in microseconds; 0 before the
    /// first reply.
    pub heartbeat_rtt_p99_us: u64,
    /// Total time the client wanted a connection and had none, in microseconds (connect
    /// attempts and outages, the current one included; time after a disconnect does not count).
    pub time_disconnected_us: u64,
    /// `SUPA_EVENT_LAGGED` markers queued (each covers a run of dropped events).
    pub lagged_events: u64,
}

/// The client behind a live handle: `SUPA_NULL_ARGUMENT` for NULL, `SUPA_SHUTDOWN` once it was
/// shut down (every export refuses then, except the getters, `supa_client_shutdown`,
/// `supa_client_dispatch` and `supa_client_free`, which use [`any_client`]).
///
/// # Safety
///
/// As [`borrow`]: `p` is NULL or a client handle not yet freed.
pub(crate) unsafe fn client<'a>(p: *const supa_client) -> Result<&'a supa_client, supa_result> {
    // SAFETY: the caller's promise for `p`, passed on.
    let c = unsafe { any_client(p) }?;
    if c.inner.is_shut_down() {
        return Err(super::shut_down());
    }
    Ok(c)
}

/// The client behind a handle, shut down or not.
///
/// # Safety
///
/// As [`borrow`]: `p` is NULL or a client handle not yet freed.
unsafe fn any_client<'a>(p: *const supa_client) -> Result<&'a supa_client, supa_result> {
    // SAFETY: the caller's promise for `p`, passed on.
    unsafe { borrow(p) }.ok_or_else(|| fail(supa_result::SUPA_NULL_ARGUMENT, "`client` is NULL"))
}

/// Creates a client from `options` (copied; free them whenever you like). Does not connect:
/// call `supa_client_connect`, or subscribe a channel (which connects).
///
/// Errors: `SUPA_INVALID_ARGUMENT` for a malformed URL or option, `SUPA_TLS` for an unusable
/// custom CA. Ownership: on success `*out` is a new client the caller frees with
/// `supa_client_free`. With `SUPA_DISPATCH_THREAD` this starts the client's dispatcher thread.
#[no_mangle]
pub extern "C" fn supa_client_new(
    options: *const supa_options,
    out: *mut *mut supa_client,
) -> supa_result {
    boundary(|| {
        non_null!(options, out);
        // SAFETY: `options` is non-NULL (checked above), so live options (the header's pointer
        // rule).
        let opts = unsafe { &*options }.inner.clone();
        let mode = opts.dispatch;
        match RealtimeClient::new(opts) {
            Ok(c) => {
                let c = Box::into_raw(Box::new(supa_client { inner: c, mode }));
                // SAFETY: `out` is non-NULL (checked above), so writable (the header's pointer
                // rule).
                unsafe { put(out, c) };
                ok()
            }
            Err(e) => from_error(&e),
        }
    })
}

/// Frees the client: closes the socket and stops delivery for good. NULL is a no-op.
///
/// Safe inside a callback (the dispatcher thread detaches rather than joining itself). After
/// it returns, callbacks may still run briefly (the final `SUPA_CONNECTION_SHUT_DOWN` status);
/// each registration's destructor runs after its last callback. Channel handles stay valid
/// until freed; their calls then return `SUPA_SHUTDOWN`.
#[no_mangle]
pub extern "C" fn supa_client_free(client: *mut supa_client) {
    boundary(|| {
        if !client.is_null() {
            // SAFETY: the header allows only NULL or a client from `supa_client_new`, freed
            // once.
            let c = unsafe { Box::from_raw(client) };
            c.inner.shutdown();
            drop(c);
        }
    })
}

/// Starts connecting (and keeps reconnecting on the schedule until `supa_client_disconnect`).
/// Returns at once; `SUPA_EVENT_CONNECTION_STATUS` events report progress.
/// `SUPA_SHUTDOWN` after `supa_client_shutdown`.
#[no_mangle]
pub extern "C" fn supa_client_connect(client: *const supa_client) -> supa_result {
    boundary(|| {
        // SAFETY: `client` is NULL or a live client handle (the header's pointer rule).
        let c = tri!(unsafe { self::client(client) });
        c.inner.connect();
        ok()
    })
}

/// Connects and waits up to `timeout_ms` for the socket to open.
///
/// Blocking: returns `SUPA_WOULD_DEADLOCK` inside a callback. When not open in time (the client
/// keeps trying) it returns why the last attempt failed, e.g. `SUPA_IO` ("could not connect to
/// 127.0.0.1:4000: Connection refused") or `SUPA_HTTP` ("HTTP 401: ..." from the upgrade), and
/// `SUPA_TIMEOUT` when no attempt has failed yet; `SUPA_SHUTDOWN` after shutdown.
#[no_mangle]
pub extern "C" fn supa_client_connect_blocking(
    client: *const supa_client,
    timeout_ms: u64,
) -> supa_result {
    boundary(|| {
        // SAFETY: `client` is NULL or a live client handle (the header's pointer rule).
        let c = tri!(unsafe { self::client(client) });
        result(c.inner.connect_blocking(ms(timeout_ms)))
    })
}

/// Closes the socket (code 1000) and stops reconnecting. Channels stay registered and rejoin
/// on the next connect. Returns at once.
#[no_mangle]
pub extern "C" fn supa_client_disconnect(client: *const supa_client) -> supa_result {
    boundary(|| {
        // SAFETY: `client` is NULL or a live client handle (the header's pointer rule).
        let c = tri!(unsafe { self::client(client) });
        c.inner.disconnect();
        ok()
    })
}

/// Closes everything for good without freeing the handle: later calls on the client and its
/// channels return `SUPA_SHUTDOWN` (listeners registered from now on are refused), except the
/// getters, this function (a no-op again), `supa_client_dispatch` and the `_free`s. Events
/// already queued are still delivered, then every channel's final `SUPA_STATUS_CLOSED` ("client
/// shut down") and last a `SUPA_CONNECTION_SHUT_DOWN` status; then the listeners' destructors
/// run.
#[no_mangle]
pub extern "C" fn supa_client_shutdown(client: *const supa_client) -> supa_result {
    boundary(|| {
        // SAFETY: `client` is NULL or a live client handle (the header's pointer rule).
        let c = tri!(unsafe { any_client(client) });
        c.inner.shutdown();
        ok()
    })
}

/// Sets the access token (a user JWT) sent to every joined channel and used on every (re)join;
/// NULL falls back to the API key. The token is copied.
#[no_mangle]
pub extern "C" fn supa_client_set_auth(
    client: *const supa_client,
    token: *const c_char,
) -> supa_result {
    boundary(|| {
        // SAFETY: `client` is NULL or a live client handle (the header's pointer rule).
        let c = tri!(unsafe { self::client(client) });
        // SAFETY: `token` is NULL or a NUL-terminated string (the header's pointer rule).
        let token = tri!(unsafe { opt_str_arg(token, "token") });
        c.inner.set_auth(token.map(str::to_owned));
        ok()
    })
}

/// Registers `cb` for every event of the client (all channels, connection status, heartbeats,
/// lagged, errors). `*listener_id` (may be NULL) receives an id for `supa_client_remove_listener`.
///
/// Callback context: see `supa_event_cb`. Ownership: `destroy` (may be NULL) runs exactly once
/// with `userdata` after the last callback: after removal, or when the client shuts down.
#[no_mangle]
pub extern "C" fn supa_client_on_event(
    client: *const supa_client,
    cb: supa_event_cb,
    userdata: *mut c_void,
    destroy: supa_destroy_cb,
    listener_id: *mut u64,
) -> supa_result {
    boundary(|| {
        // SAFETY: `client` is NULL or a live client handle (the header's pointer rule).
        let c = tri!(unsafe { self::client(client) });
        let Some(cb) = cb else {
            return fail(supa_result::SUPA_NULL_ARGUMENT, "`cb` is NULL");
        };
        let id = c
            .inner
            .on_event(event_listener(cb, UserData::armed(userdata, destroy)));
        // SAFETY: `listener_id` is NULL or writable (the header's pointer rule).
        unsafe { put(listener_id, id.0) };
        ok()
    })
}

/// Removes a listener registered on this client or any of its channels. Unknown ids are
/// ignored. A callback already running finishes; its destructor runs after it.
#[no_mangle]
pub extern "C" fn supa_client_remove_listener(
    client: *const supa_client,
    listener_id: u64,
) -> supa_result {
    boundary(|| {
        // SAFETY: `client` is NULL or a live client handle (the header's pointer rule).
        let c = tri!(unsafe { self::client(client) });
        c.inner.remove_listener(crate::ListenerId(listener_id));
        ok()
    })
}

/// App-pumped mode: runs up to `max` queued events' callbacks on this thread, in order;
/// `*count` (may be NULL) receives how many were delivered.
///
/// Callbacks run inside this call (blocking calls in them return `SUPA_WOULD_DEADLOCK`).
/// `SUPA_INVALID_ARGUMENT` for a client in `SUPA_DISPATCH_THREAD` mode.
#[no_mangle]
pub extern "C" fn supa_client_dispatch(
    client: *const supa_client,
    max: usize,
    count: *mut usize,
) -> supa_result {
    boundary(|| {
        // SAFETY: `client` is NULL or a live client handle (the header's pointer rule).
        let c = tri!(unsafe { any_client(client) });
        if c.mode != DispatchMode::AppPumped {
            return fail(
                supa_result::SUPA_INVALID_ARGUMENT,
                "supa_client_dispatch needs SUPA_DISPATCH_APP_PUMPED",
            );
        }
        // A callback may free this very client: keep the core handle alive for the call.
        let inner = c.inner.clone();
        let n = inner.dispatch(max);
        // SAFETY: `count` is NULL or writable (the header's pointer rule).
        unsafe { put(count, n) };
        ok()
    })
}

struct Wakeup {
    cb: unsafe extern "C" fn(*mut c_void),
    userdata: UserData,
}

/// App-pumped mode: `cb` is called (from any library thread) when the queue becomes non-empty;
/// it should only schedule a `supa_client_dispatch` call (see `supa_wakeup_cb`). Replaces an
/// earlier hook; NULL `cb` removes it.
///
/// Ownership: `destroy` (may be NULL) runs exactly once after the hook's last call: when it is
/// replaced or removed, or when the client shuts down. Set the hook before connecting so that
/// no wakeup is missed.
#[no_mangle]
pub extern "C" fn supa_client_set_wakeup(
    client: *const supa_client,
    cb: supa_wakeup_cb,
    userdata: *mut c_void,
    destroy: supa_destroy_cb,
) -> supa_result {
    boundary(|| {
        // SAFETY: `client` is NULL or a live client handle (the header's pointer rule).
        let c = tri!(unsafe { self::client(client) });
        match cb {
            Some(cb) => {
                let w = Wakeup {
                    cb,
                    userdata: UserData::armed(userdata, destroy),
                };
                c.inner.set_wakeup(move || {
                    // SAFETY: the caller's hook with its own userdata, as `supa_wakeup_cb`
                    // states; the userdata lives as long as the hook.
                    unsafe { (w.cb)(w.userdata.ptr()) }
                });
            }
            None => {
                drop(UserData::armed(userdata, destroy));
                c.inner.set_wakeup(|| {});
            }
        }
        ok()
    })
}

/// The socket's state (a `supa_connection_state`); `SUPA_CONNECTION_SHUT_DOWN` for NULL and
/// from the moment `supa_client_shutdown` returns.
#[no_mangle]
pub extern "C" fn supa_client_connection_state(client: *const supa_client) -> u32 {
    // SAFETY: `client` is NULL or a live client handle (the header's pointer rule).
    boundary(|| match unsafe { borrow(client) } {
        Some(c) if !c.inner.is_shut_down() => connection_state(c.inner.connection_state()) as u32,
        _ => connection_state(ConnectionState::ShutDown) as u32,
    })
}

/// The smallest `supa_metrics::struct_size` accepted: the struct's size when `struct_size` was
/// introduced (its first field through `lagged_events`).
const METRICS_MIN_SIZE: usize =
    std::mem::offset_of!(supa_metrics, lagged_events) + std::mem::size_of::<u64>();

/// The largest accepted: far beyond any growth of the struct, so an uninitialised
/// `struct_size` is refused rather than trusted for a write past the caller's struct.
const METRICS_MAX_SIZE: usize = 4096;

/// Writes a snapshot of the client's counters to `*out`, whose `struct_size` the caller set to
/// `sizeof(supa_metrics)` (see `supa_metrics`).
///
/// Errors: `SUPA_INVALID_ARGUMENT` when `struct_size` is 0, smaller than the first version of
/// the struct or implausibly large (over 4096: not set), and nothing is written;
/// `SUPA_SHUTDOWN` after shutdown.
#[no_mangle]
pub extern "C" fn supa_client_metrics(
    client: *const supa_client,
    out: *mut supa_metrics,
) -> supa_result {
    boundary(|| {
        // SAFETY: `client` is NULL or a live client handle (the header's pointer rule).
        let c = tri!(unsafe { self::client(client) });
        non_null!(out);
        // SAFETY: `out` is non-NULL and points to at least `struct_size`, its first field, as
        // every version of the struct starts with it.
        let size = unsafe { std::ptr::addr_of!((*out).struct_size).read() };
        if !(METRICS_MIN_SIZE..=METRICS_MAX_SIZE).contains(&size) {
            return fail(
                supa_result::SUPA_INVALID_ARGUMENT,
                &format!(
                    "supa_metrics.struct_size is {size}: set it to sizeof(supa_metrics) \
                     (at least {METRICS_MIN_SIZE})"
                ),
            );
        }
        let m = c.inner.metrics();
        let snapshot = supa_metrics {
            struct_size: size,
            connects: m.connects,
            reconnects: m.reconnects,
            messages_in: m.messages_in,
            messages_out: m.messages_out,
            heartbeat_rtt_us: opt_us(m.heartbeat_rtt),
            queue_depth: m.queue_depth as u64,
            dropped_events: m.dropped_events,
            heartbeat_rtt_p50_us: opt_us(m.heartbeat_rtt_p50),
            heartbeat_rtt_p99_us: opt_us(m.heartbeat_rtt_p99),
            time_disconnected_us: us(m.time_disconnected),
            lagged_events: m.lagged_events,
        };
        let ours = std::mem::size_of::<supa_metrics>();
        let known = size.min(ours);
        let base = out.cast::<u8>();
        // SAFETY: the caller provides `size` writable bytes at `out` (its `struct_size`); we
        // write the first `min(size, ours)` bytes of our snapshot (plain integers) and zero the
        // rest, fields of a newer header this library does not know.
        unsafe {
            std::ptr::copy_nonoverlapping(std::ptr::addr_of!(snapshot).cast::<u8>(), base, known);
            if size > ours {
                std::ptr::write_bytes(base.add(ours), 0, size - ours);
            }
        }
        ok()
    })
}

/// Every live channel's last join latency as a JSON object, topic → microseconds from its
/// (re)join attempt to `SUBSCRIBED` (e.g. `{"realtime:room1":1834}`). A channel appears once
/// it has been subscribed and disappears when it is removed.
///
/// Ownership: on success `*json` is a NUL-terminated string the caller frees with
/// `supa_string_free`.
#[no_mangle]
pub extern "C" fn supa_client_join_latency_json(
    client: *const supa_client,
    json: *mut *mut c_char,
) -> supa_result {
    boundary(|| {
        // SAFETY: `client` is NULL or a live client handle (the header's pointer rule).
        let c = tri!(unsafe { self::client(client) });
        non_null!(json);
        let map: serde_json::Map<String, serde_json::Value> = c
            .inner
            .metrics()
            .join_latency
            .into_iter()
            .map(|(t, d)| (t, us(d).into()))
            .collect();
        let text = owned_c_string(serde_json::Value::Object(map).to_string());
        // SAFETY: `json` is non-NULL (checked above), so writable (the header's pointer rule).
        unsafe { put(json, text) };
        ok()
    })
}

fn channel_state_name(s: ChannelState) -> &'static str {
    match s {
        ChannelState::Closed => "closed",
        ChannelState::Joining => "joining",
        ChannelState::Joined => "joined",
        ChannelState::Leaving => "leaving",
        ChannelState::Errored => "errored",
    }
}

/// Every live channel's state as a JSON object, topic → `"closed"|"joining"|"joined"|
/// "leaving"|"errored"` (diagnostics).
///
/// Ownership: on success `*json` is a NUL-terminated string the caller frees with
/// `supa_string_free`.
#[no_mangle]
pub extern "C" fn supa_client_channel_states_json(
    client: *const supa_client,
    json: *mut *mut c_char,
) -> supa_result {
    boundary(|| {
        // SAFETY: `client` is NULL or a live client handle (the header's pointer rule).
        let c = tri!(unsafe { self::client(client) });
        non_null!(json);
        let map: serde_json::Map<String, serde_json::Value> = c
            .inner
            .channel_states()
            .into_iter()
            .map(|(t, s)| (t, channel_state_name(s).into()))
            .collect();
        let text = owned_c_string(serde_json::Value::Object(map).to_string());
        // SAFETY: `json` is non-NULL (checked above), so writable (the header's pointer rule).
        unsafe { put(json, text) };
        ok()
    })
}

/// The network changed (e.g. Wi-Fi to cellular): check the link now (a heartbeat at once; no
/// reply within 5 s closes the socket and reconnects) and reconnect at once if waiting.
/// Returns at once.
#[no_mangle]
pub extern "C" fn supa_client_network_changed(client: *const supa_client) -> supa_result {
    boundary(|| {
        // SAFETY: `client` is NULL or a live client handle (the header's pointer rule).
        tri!(unsafe { self::client(client) })
            .inner
            .network_changed();
        ok()
    })
}

/// The app went to the background. Deliberately a no-op: the socket and heartbeat keep running
/// for as long as the OS lets the process run (as realtime-js does). Returns at once.
#[no_mangle]
pub extern "C" fn supa_client_app_backgrounded(client: *const supa_client) -> supa_result {
    boundary(|| {
        // SAFETY: `client` is NULL or a live client handle (the header's pointer rule).
        tri!(unsafe { self::client(client) })
            .inner
            .app_backgrounded();
        ok()
    })
}

/// The app came back to the foreground: check the link as `supa_client_network_changed` does
/// (a heartbeat now, reconnect when dead within 5 s), and ask the token provider (if any) for a
/// fresh token, which may have expired while the app was suspended. Returns at once.
#[no_mangle]
pub extern "C" fn supa_client_app_foregrounded(client: *const supa_client) -> supa_result {
    boundary(|| {
        // SAFETY: `client` is NULL or a live client handle (the header's pointer rule).
        tri!(unsafe { self::client(client) })
            .inner
            .app_foregrounded();
        ok()
    })
}

/// The channel for topic `realtime:<name>`; `options` may be NULL for the defaults (copied).
/// As realtime-js, a live channel with the same topic is shared (its options win).
///
/// Register callbacks, then `supa_channel_subscribe`. Ownership: on success `*out` is a new
/// handle the caller frees with `supa_channel_free` (which does not leave the channel; the
/// handle does not keep the client alive).
#[no_mangle]
pub extern "C" fn supa_client_channel(
    client: *const supa_client,
    name: *const c_char,
    options: *const supa_channel_options,
    out: *mut *mut supa_channel,
) -> supa_result {
    boundary(|| {
        // SAFETY: `client` is NULL or a live client handle (the header's pointer rule).
        let c = tri!(unsafe { self::client(client) });
        non_null!(out);
        // SAFETY: `name` is NULL or a NUL-terminated string (the header's pointer rule).
        let name = tri!(unsafe { str_arg(name, "name") });
        // SAFETY: `options` is NULL or live channel options (the header's pointer rule).
        let opts =
            unsafe { borrow(options) }.map_or_else(ChannelOptions::default, |o| o.inner.clone());
        let ch = supa_channel::new(c.inner.channel(name, opts), &c.inner);
        // SAFETY: `out` is non-NULL (checked above), so writable (the header's pointer rule).
        unsafe { put(out, ch) };
        ok()
    })
}

/// The handle `channel` must belong to `c`.
///
/// # Safety
///
/// As [`borrow`]: `channel` is NULL or a channel handle not yet freed.
unsafe fn own_channel<'a>(
    c: &supa_client,
    channel: *const supa_channel,
) -> Result<&'a supa_channel, supa_result> {
    // SAFETY: the caller's promise for `channel`, passed on.
    let ch = unsafe { super::channel::channel(channel) }?;
    if !ch.belongs_to(&c.inner) {
        return Err(fail(
            supa_result::SUPA_INVALID_ARGUMENT,
            "`channel` belongs to another client",
        ));
    }
    Ok(ch)
}

/// Every live channel of the client (subscribed or not yet, and not ended), oldest first, as
/// realtime-js' `getChannels()`.
///
/// `*count` receives how many there are; the first `min(*count, capacity)` of them are written
/// to `out[0..]` as new handles (`out` may be NULL when `capacity` is 0, to ask the count
/// first). Channels may come and go between two calls: read `*count` again.
///
/// Ownership: each handle written is new and freed by the caller with `supa_channel_free`
/// (freeing it does not leave the channel). `SUPA_SHUTDOWN` after shutdown.
///
/// ```c
/// size_t n = 0;
/// supa_client_channels(client, NULL, 0, &n);
/// supa_channel **chs = calloc(n, sizeof *chs);
/// supa_client_channels(client, chs, n, &n);   // n may have changed: min(n, capacity) written
/// ```
#[no_mangle]
pub extern "C" fn supa_client_channels(
    client: *const supa_client,
    out: *mut *mut supa_channel,
    capacity: usize,
    count: *mut usize,
) -> supa_result {
    boundary(|| {
        // SAFETY: `client` is NULL or a live client handle (the header's pointer rule).
        let c = tri!(unsafe { self::client(client) });
        non_null!(count);
        if capacity > 0 {
            non_null!(out);
        }
        let live = c.inner.channels();
        for (i, ch) in live.iter().take(capacity).enumerate() {
            // SAFETY: `out` is non-NULL (checked above) with room for `capacity` handles, and
            // `i < capacity` (the header's pointer rule).
            unsafe { put(out.add(i), supa_channel::new(ch.clone(), &c.inner)) };
        }
        // SAFETY: `count` is non-NULL (checked above), so writable (the header's pointer rule).
        unsafe { put(count, live.len()) };
        ok()
    })
}

/// Leaves `channel` and forgets it, as realtime-js' `removeChannel`, without waiting. The
/// channel's final `SUPA_STATUS_CLOSED` status says "removed"; then its registrations are
/// removed (their destructors run after it). The handle stays valid until freed.
///
/// Errors: `SUPA_INVALID_ARGUMENT` for a channel of another client, `SUPA_SHUTDOWN` after
/// shutdown. Safe inside a callback.
#[no_mangle]
pub extern "C" fn supa_client_remove_channel(
    client: *const supa_client,
    channel: *const supa_channel,
) -> supa_result {
    boundary(|| {
        // SAFETY: `client` is NULL or a live client handle (the header's pointer rule).
        let c = tri!(unsafe { self::client(client) });
        // SAFETY: `channel` is NULL or a live channel handle (the header's pointer rule).
        let ch = tri!(unsafe { own_channel(c, channel) });
        result(ch.core().leave(true).map(drop))
    })
}

/// `supa_client_remove_channel`, then waits up to `timeout_ms` for the server's confirmation.
/// Blocking: `SUPA_WOULD_DEADLOCK` inside a callback or a token provider (the channel is then
/// not removed).
#[no_mangle]
pub extern "C" fn supa_client_remove_channel_blocking(
    client: *const supa_client,
    channel: *const supa_channel,
    timeout_ms: u64,
) -> supa_result {
    boundary(|| {
        // SAFETY: `client` is NULL or a live client handle (the header's pointer rule).
        let c = tri!(unsafe { self::client(client) });
        // SAFETY: `channel` is NULL or a live channel handle (the header's pointer rule).
        let ch = tri!(unsafe { own_channel(c, channel) });
        result(c.inner.remove_channel_blocking(ch.core(), ms(timeout_ms)))
    })
}

/// Removes every live channel as `supa_client_remove_channel` does, without waiting; each ends
/// with one final `SUPA_STATUS_CLOSED` ("removed"). `SUPA_SHUTDOWN` after shutdown. Safe
/// inside a callback.
#[no_mangle]
pub extern "C" fn supa_client_remove_all_channels(client: *const supa_client) -> supa_result {
    boundary(|| {
        // SAFETY: `client` is NULL or a live client handle (the header's pointer rule).
        let c = tri!(unsafe { self::client(client) });
        let mut first = Ok(());
        for ch in c.inner.channels() {
            let r = ch.leave(true).map(drop);
            if first.is_ok() {
                first = r;
            }
        }
        result(first)
    })
}

/// `supa_client_remove_all_channels`, then waits up to `timeout_ms` for every confirmation;
/// returns the first failure. Blocking: `SUPA_WOULD_DEADLOCK` inside a callback or a token
/// provider (nothing is then removed).
#[no_mangle]
pub extern "C" fn supa_client_remove_all_channels_blocking(
    client: *const supa_client,
    timeout_ms: u64,
) -> supa_result {
    boundary(|| {
        // SAFETY: `client` is NULL or a live client handle (the header's pointer rule).
        let c = tri!(unsafe { self::client(client) });
        result(c.inner.remove_all_channels_blocking(ms(timeout_ms)))
    })
}
