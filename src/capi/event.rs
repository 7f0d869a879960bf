//! `supa_event`: the opaque event handed to callbacks, read through accessors.
//!
//! A callback's event borrows the core's data (no copy per callback); text views (JSON, names)
//! are rendered on first access and cached in the handle. `supa_event_copy` makes an owned
//! event that outlives the callback.

use std::ffi::{c_char, c_void};
use std::time::Duration;

use once_cell::unsync::OnceCell;
use serde_json::{json, Value};

use super::{borrow, boundary, free_box, put};
use crate::error::ErrorKind;
use crate::event::{
    Broadcast, ConnectionState, Event, HeartbeatStatus, Payload, PostgresChange, PresenceEvent,
    SubscribeStatus,
};
use crate::incoming::{BroadcastRef, Incoming, RawBroadcast, RawPayload};
use crate::protocol::BroadcastMeta;

/// What an event is. Values are stable.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum supa_event_kind {
    /// The socket's state changed: `supa_event_connection_state`, `supa_event_reason`.
    SUPA_EVENT_CONNECTION_STATUS = 1,
    /// A heartbeat was sent or answered: `supa_event_heartbeat_status`, `supa_event_heartbeat_rtt_us`.
    SUPA_EVENT_HEARTBEAT = 2,
    /// A channel's subscribe status: `supa_event_subscribe_status`, `supa_event_status_name`,
    /// `supa_event_reason` (the server's text, unchanged), `supa_event_error_kind`.
    SUPA_EVENT_CHANNEL_STATUS = 3,
    /// A broadcast: `supa_event_name`, `supa_event_payload_json` or `supa_event_payload_binary`,
    /// `supa_event_meta_json`, `supa_event_broadcast_id`, `supa_event_broadcast_replayed`.
    SUPA_EVENT_BROADCAST = 4,
    /// The presence state changed; read it with `supa_channel_presence_state_json`.
    SUPA_EVENT_PRESENCE_SYNC = 5,
    /// A key gained metas: `supa_event_presence_key`, `supa_event_presence_current_json`,
    /// `supa_event_presence_changed_json` (the new metas).
    SUPA_EVENT_PRESENCE_JOIN = 6,
    /// A key lost metas: as JOIN, `supa_event_presence_changed_json` gives the metas that left.
    SUPA_EVENT_PRESENCE_LEAVE = 7,
    /// A database change: `supa_event_name` (INSERT/UPDATE/DELETE), `supa_event_change_*`,
    /// and `supa_event_payload_json` (the whole change as realtime-js hands it).
    SUPA_EVENT_POSTGRES_CHANGE = 8,
    /// A `system` message; `supa_event_payload_json` is its payload as sent.
    SUPA_EVENT_SYSTEM = 9,
    /// The channel joined again after a gap: `supa_event_resumed_gap_ms`,
    /// `supa_event_resumed_filled`.
    SUPA_EVENT_RESUMED = 10,
    /// The queue was full and data events were dropped: `supa_event_lagged_dropped`.
    SUPA_EVENT_LAGGED = 11,
    /// A problem not tied to a request: `supa_event_reason` has the message.
    SUPA_EVENT_ERROR = 12,
}

/// A socket state. Values are stable.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum supa_connection_state {
    SUPA_CONNECTION_DISCONNECTED = 0,
    SUPA_CONNECTION_CONNECTING = 1,
    SUPA_CONNECTION_CONNECTED = 2,
    /// Shut down or freed: the client cannot connect again.
    SUPA_CONNECTION_SHUT_DOWN = 3,
}

/// A channel's subscribe status, as realtime-js names them. Values are stable.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum supa_subscribe_status {
    /// Not a channel status event.
    SUPA_STATUS_NONE = 0,
    SUPA_STATUS_SUBSCRIBED = 1,
    /// No join reply in time; the client keeps retrying.
    SUPA_STATUS_TIMED_OUT = 2,
    /// The channel ended (unsubscribe or server close); no retry.
    SUPA_STATUS_CLOSED = 3,
    /// The server refused or the link broke: see the reason and the error kind.
    SUPA_STATUS_CHANNEL_ERROR = 4,
}

/// Whether an error may clear up by itself. Values are stable.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum supa_error_kind {
    SUPA_ERROR_KIND_NONE = 0,
    /// Transient: the client retries on its schedule.
    SUPA_ERROR_KIND_RECOVERABLE = 1,
    /// Retrying the same request cannot succeed (bad token, permission, bad filter).
    SUPA_ERROR_KIND_TERMINAL = 2,
}

/// A heartbeat outcome. Values are stable.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum supa_heartbeat_status {
    SUPA_HEARTBEAT_NONE = 0,
    SUPA_HEARTBEAT_SENT = 1,
    SUPA_HEARTBEAT_OK = 2,
    SUPA_HEARTBEAT_ERROR = 3,
    SUPA_HEARTBEAT_TIMEOUT = 4,
}

pub(crate) fn connection_state(s: ConnectionState) -> supa_connection_state {
    match s {
        ConnectionState::Disconnected => supa_connection_state::SUPA_CONNECTION_DISCONNECTED,
        ConnectionState::Connecting => supa_connection_state::SUPA_CONNECTION_CONNECTING,
        ConnectionState::Connected => supa_connection_state::SUPA_CONNECTION_CONNECTED,
        ConnectionState::ShutDown => supa_connection_state::SUPA_CONNECTION_SHUT_DOWN,
    }
}

/// The core data an event handle reads: borrowed during a callback, owned after a copy.
pub(crate) enum Source {
    Event(*const Event),
    Broadcast(*const Broadcast),
    /// A broadcast whose payload is still the frame's JSON text: handed out as is.
    Raw(*const RawBroadcast),
    Presence(*const PresenceEvent),
    Change(*const PostgresChange),
    System(*const str, *const Value),
    Owned(Box<Event>),
    OwnedRaw(Box<RawBroadcast>),
}

/// What a registration hands to [`deliver`]: the core's data, borrowed for the callback.
pub(crate) enum Borrowed<'a> {
    Event(&'a Event),
    Broadcast(&'a Broadcast),
    Raw(&'a RawBroadcast),
    Presence(&'a PresenceEvent),
    Change(&'a PostgresChange),
    System(&'a str, &'a Value),
}

impl<'a> From<BroadcastRef<'a>> for Borrowed<'a> {
    fn from(b: BroadcastRef<'a>) -> Self {
        match b {
            BroadcastRef::Parsed(b) => Borrowed::Broadcast(b),
            BroadcastRef::Raw(r) => Borrowed::Raw(r),
        }
    }
}

impl From<Borrowed<'_>> for Source {
    fn from(b: Borrowed<'_>) -> Self {
        match b {
            Borrowed::Event(e) => Source::Event(e),
            Borrowed::Broadcast(b) => Source::Broadcast(b),
            Borrowed::Raw(r) => Source::Raw(r),
            Borrowed::Presence(p) => Source::Presence(p),
            Borrowed::Change(c) => Source::Change(c),
            Borrowed::System(t, v) => Source::System(t, v),
        }
    }
}

/// Borrowed views of the same data, whatever the source.
enum View<'a> {
    Broadcast(&'a Broadcast),
    Raw(&'a RawBroadcast),
    Presence(&'a PresenceEvent),
    Change(&'a PostgresChange),
    System(&'a str, &'a Value),
    Other(&'a Event),
}

/// An event. Opaque: read it with the `supa_event_*` accessors.
///
/// Lifetime: the event a callback receives is valid only until the callback returns, and so is
/// every pointer its accessors return; `supa_event_copy` makes one that lives until
/// `supa_event_free`. Accessors' strings live as long as the event.
/// Thread-safety: use one event from one thread at a time.
pub struct supa_event {
    source: Source,
    topic: OnceCell<Option<Vec<u8>>>,
    name: OnceCell<Option<Vec<u8>>>,
    payload: OnceCell<Option<Vec<u8>>>,
    meta: OnceCell<Option<Vec<u8>>>,
    id: OnceCell<Option<Vec<u8>>>,
    reason: OnceCell<Option<Vec<u8>>>,
    key: OnceCell<Option<Vec<u8>>>,
    current: OnceCell<Option<Vec<u8>>>,
    changed: OnceCell<Option<Vec<u8>>>,
    schema: OnceCell<Option<Vec<u8>>>,
    table: OnceCell<Option<Vec<u8>>>,
    commit_timestamp: OnceCell<Option<Vec<u8>>>,
    new: OnceCell<Option<Vec<u8>>>,
    old: OnceCell<Option<Vec<u8>>>,
    errors: OnceCell<Option<Vec<u8>>>,
    columns: OnceCell<Option<Vec<u8>>>,
}

/// NUL-terminated bytes of `s` (which may contain NUL itself; the length says where it ends).
fn text(s: &str) -> Vec<u8> {
    let mut v = Vec::with_capacity(s.len() + 1);
    v.extend_from_slice(s.as_bytes());
    v.push(0);
    v
}

fn json_text(v: &Value) -> Vec<u8> {
    // Straight into the NUL-terminated buffer: `Value`'s `Display` went through `fmt::Write`
    // with a `String` growth per token and then a copy (16 % of a C receiver's profile).
    let mut out = Vec::with_capacity(128);
    // Writing JSON into a Vec cannot fail; the text never contains a NUL (JSON escapes it).
    let _ = serde_json::to_writer(&mut out, v);
    out.push(0);
    out
}

fn presence_json(p: &PresenceEvent) -> Value {
    match p {
        PresenceEvent::Sync { .. } => json!({}),
        PresenceEvent::Join {
            key, current, new, ..
        } => json!({"key": key, "currentPresences": current, "newPresences": new}),
        PresenceEvent::Leave {
            key, current, left, ..
        } => json!({"key": key, "currentPresences": current, "leftPresences": left}),
    }
}

fn change_json(c: &PostgresChange) -> Value {
    json!({
        "schema": c.schema,
        "table": c.table,
        "commit_timestamp": c.commit_timestamp,
        "eventType": c.event_type,
        "new": c.new,
        "old": c.old,
        "errors": c.errors,
    })
}

impl supa_event {
    /// An event over `source`, its texts not rendered yet.
    ///
    /// # Safety
    ///
    /// The data a borrowed `source` points to stays valid and unchanged while the event is
    /// used (an owned source points to nothing outside itself).
    pub(crate) unsafe fn new(source: Source) -> supa_event {
        supa_event {
            source,
            topic: OnceCell::new(),
            name: OnceCell::new(),
            payload: OnceCell::new(),
            meta: OnceCell::new(),
            id: OnceCell::new(),
            reason: OnceCell::new(),
            key: OnceCell::new(),
            current: OnceCell::new(),
            changed: OnceCell::new(),
            schema: OnceCell::new(),
            table: OnceCell::new(),
            commit_timestamp: OnceCell::new(),
            new: OnceCell::new(),
            old: OnceCell::new(),
            errors: OnceCell::new(),
            columns: OnceCell::new(),
        }
    }

    fn view(&self) -> View<'_> {
        // SAFETY: a borrowed source's data outlives the event (`supa_event::new`'s contract):
        // `deliver` drops its event before the borrow ends, and C may use it only meanwhile.
        let event: &Event = unsafe {
            match &self.source {
                Source::Broadcast(b) => return View::Broadcast(&**b),
                Source::Raw(r) => return View::Raw(&**r),
                Source::OwnedRaw(r) => return View::Raw(r),
                Source::Presence(p) => return View::Presence(&**p),
                Source::Change(c) => return View::Change(&**c),
                Source::System(t, v) => return View::System(&**t, &**v),
                Source::Event(e) => &**e,
                Source::Owned(e) => e,
            }
        };
        match event {
            Event::Broadcast(b) => View::Broadcast(b),
            Event::Presence(p) => View::Presence(p),
            Event::PostgresChange(c) => View::Change(c),
            Event::System { topic, payload } => View::System(topic, payload),
            other => View::Other(other),
        }
    }

    /// An owned copy of the data (`supa_event_copy`); a raw broadcast stays raw.
    fn to_owned_source(&self) -> Source {
        match self.view() {
            View::Raw(r) => Source::OwnedRaw(Box::new(r.clone())),
            _ => Source::Owned(Box::new(self.to_owned_event())),
        }
    }

    fn to_owned_event(&self) -> Event {
        match self.view() {
            View::Broadcast(b) => Event::Broadcast(b.clone()),
            View::Raw(r) => Incoming::Broadcast(r.clone()).to_event(),
            View::Presence(p) => Event::Presence(p.clone()),
            View::Change(c) => Event::PostgresChange(Box::new(c.clone())),
            View::System(t, v) => Event::System {
                topic: t.to_owned(),
                payload: v.clone(),
            },
            View::Other(e) => e.clone(),
        }
    }

    fn kind(&self) -> supa_event_kind {
        use supa_event_kind::*;
        match self.view() {
            View::Broadcast(_) | View::Raw(_) => SUPA_EVENT_BROADCAST,
            View::Presence(PresenceEvent::Sync { .. }) => SUPA_EVENT_PRESENCE_SYNC,
            View::Presence(PresenceEvent::Join { .. }) => SUPA_EVENT_PRESENCE_JOIN,
            View::Presence(PresenceEvent::Leave { .. }) => SUPA_EVENT_PRESENCE_LEAVE,
            View::Change(_) => SUPA_EVENT_POSTGRES_CHANGE,
            View::System(..) => SUPA_EVENT_SYSTEM,
            View::Other(e) => match e {
                Event::ConnectionStatus { .. } => SUPA_EVENT_CONNECTION_STATUS,
                Event::Heartbeat { .. } => SUPA_EVENT_HEARTBEAT,
                Event::ChannelStatus { .. } => SUPA_EVENT_CHANNEL_STATUS,
                Event::Resumed { .. } => SUPA_EVENT_RESUMED,
                Event::Lagged { .. } => SUPA_EVENT_LAGGED,
                Event::Error { .. } => SUPA_EVENT_ERROR,
                // Normally seen through the views above; classified here too so that the match
                // stays exhaustive and a new variant cannot be mislabelled silently.
                Event::Broadcast(_) => SUPA_EVENT_BROADCAST,
                Event::Presence(PresenceEvent::Sync { .. }) => SUPA_EVENT_PRESENCE_SYNC,
                Event::Presence(PresenceEvent::Join { .. }) => SUPA_EVENT_PRESENCE_JOIN,
                Event::Presence(PresenceEvent::Leave { .. }) => SUPA_EVENT_PRESENCE_LEAVE,
                Event::PostgresChange(_) => SUPA_EVENT_POSTGRES_CHANGE,
                Event::System { .. } => SUPA_EVENT_SYSTEM,
            },
        }
    }
}

/// A text the event renders on first access and keeps: NUL-terminated bytes, or `None` when
/// the event has no such text.
fn cached(
    cell: &OnceCell<Option<Vec<u8>>>,
    make: impl FnOnce() -> Option<Vec<u8>>,
) -> Option<&[u8]> {
    cell.get_or_init(make).as_deref()
}

/// Runs an accessor on an event, or returns the neutral value for NULL.
fn with<R: super::OnPanic>(
    ev: Option<&supa_event>,
    neutral: R,
    f: impl FnOnce(&supa_event) -> R,
) -> R {
    boundary(|| match ev {
        Some(ev) => f(ev),
        None => neutral,
    })
}

/// A text accessor: the pointer to the NUL-terminated text `get` picks and, in `*len`, its
/// length without the terminator; NULL and length 0 when absent. A NULL event gives NULL and
/// leaves `*len` alone.
///
/// # Safety
///
/// `event` as [`borrow`] (NULL, or an event valid for the call) and `len` as [`put`].
unsafe fn text_out(
    event: *const supa_event,
    len: *mut usize,
    get: impl FnOnce(&supa_event) -> Option<&[u8]>,
) -> *const c_char {
    // SAFETY: the caller's promise for `event`, passed on.
    let ev = unsafe { borrow(event) };
    with(ev, std::ptr::null(), |e| {
        let (text, n) = match get(e) {
            Some(bytes) => (bytes.as_ptr().cast(), bytes.len() - 1),
            None => (std::ptr::null(), 0),
        };
        // SAFETY: the caller's promise for `len`, passed on.
        unsafe { put(len, n) };
        text
    })
}

/// The event's kind. 0 for a NULL event.
#[no_mangle]
pub extern "C" fn supa_event_get_kind(event: *const supa_event) -> u32 {
    // SAFETY: `event` is NULL or an event valid for the call (the header's pointer rule).
    with(unsafe { borrow(event) }, 0, |e| e.kind() as u32)
}

fn topic_text(e: &supa_event) -> Option<&[u8]> {
    cached(&e.topic, || match e.view() {
        View::Broadcast(b) => Some(text(&b.topic)),
        View::Raw(r) => Some(text(&r.topic)),
        View::Presence(p) => Some(text(p.topic())),
        View::Change(c) => Some(text(&c.topic)),
        View::System(t, _) => Some(text(t)),
        View::Other(ev) => ev.topic().map(text),
    })
}

/// The channel topic (`realtime:room1`), or NULL when the event has none (connection status,
/// heartbeat, lagged, error). `len` (may be NULL) receives the length in bytes.
#[no_mangle]
pub extern "C" fn supa_event_topic(event: *const supa_event, len: *mut usize) -> *const c_char {
    // SAFETY: `event` and `len` are NULL or valid for the call (the header's pointer rule).
    unsafe { text_out(event, len, topic_text) }
}

fn name_text(e: &supa_event) -> Option<&[u8]> {
    cached(&e.name, || match e.view() {
        View::Broadcast(b) => Some(text(&b.event)),
        View::Raw(r) => Some(text(r.event())),
        View::Change(c) => Some(text(&c.event_type)),
        _ => None,
    })
}

/// The event name: a broadcast's user event, or a change's type (`INSERT`, `UPDATE`, `DELETE`);
/// NULL for other kinds.
#[no_mangle]
pub extern "C" fn supa_event_name(event: *const supa_event, len: *mut usize) -> *const c_char {
    // SAFETY: `event` and `len` are NULL or valid for the call (the header's pointer rule).
    unsafe { text_out(event, len, name_text) }
}

fn payload_json_text(e: &supa_event) -> Option<&[u8]> {
    cached(&e.payload, || match e.view() {
        View::Broadcast(b) => match &b.payload {
            Payload::Json(v) => Some(json_text(v)),
            Payload::Binary(_) => None,
        },
        // The frame's own text: copied (for the NUL), never re-serialized.
        View::Raw(r) => r.payload_json().map(text),
        View::System(_, v) => Some(json_text(v)),
        View::Change(c) => Some(json_text(&change_json(c))),
        View::Presence(p @ (PresenceEvent::Join { .. } | PresenceEvent::Leave { .. })) => {
            Some(json_text(&presence_json(p)))
        }
        _ => None,
    })
}

/// The payload as UTF-8 JSON text with its length: a broadcast's JSON payload (NULL when it is
/// binary), a system message's payload, a change as realtime-js hands it
/// (`{schema, table, commit_timestamp, eventType, new, old, errors}`), a presence join/leave
/// (`{key, currentPresences, newPresences|leftPresences}`); NULL for other kinds.
#[no_mangle]
pub extern "C" fn supa_event_payload_json(
    event: *const supa_event,
    len: *mut usize,
) -> *const c_char {
    // SAFETY: `event` and `len` are NULL or valid for the call (the header's pointer rule).
    unsafe { text_out(event, len, payload_json_text) }
}

/// A binary broadcast's bytes and length; NULL (and length 0) for JSON payloads and other
/// kinds. An empty binary payload gives a non-NULL pointer and length 0.
#[no_mangle]
pub extern "C" fn supa_event_payload_binary(
    event: *const supa_event,
    len: *mut usize,
) -> *const u8 {
    // SAFETY: `event` is NULL or an event valid for the call (the header's pointer rule).
    with(unsafe { borrow(event) }, std::ptr::null(), |e| {
        let bytes: Option<&[u8]> = match e.view() {
            View::Broadcast(Broadcast {
                payload: Payload::Binary(bytes),
                ..
            }) => Some(bytes),
            View::Raw(r) => match r.payload() {
                RawPayload::Binary(bytes) => Some(bytes),
                _ => None,
            },
            _ => None,
        };
        let (data, n) = match bytes {
            Some([]) => (std::ptr::NonNull::<u8>::dangling().as_ptr().cast_const(), 0),
            Some(bytes) => (bytes.as_ptr(), bytes.len()),
            None => (std::ptr::null(), 0),
        };
        // SAFETY: `len` is NULL or writable (the header's pointer rule).
        unsafe { put(len, n) };
        data
    })
}

fn meta_json_text(e: &supa_event) -> Option<&[u8]> {
    cached(&e.meta, || match e.view() {
        View::Broadcast(b) => b.meta.as_ref().map(json_text),
        // As the Rust API: metadata that is not JSON is left out.
        View::Raw(r) => r
            .meta()
            .filter(|m| serde_json::from_str::<serde::de::IgnoredAny>(m).is_ok())
            .map(text),
        _ => None,
    })
}

/// A broadcast's `meta` as JSON text (e.g. `{"id": ...}` for database broadcasts); NULL when
/// absent.
#[no_mangle]
pub extern "C" fn supa_event_meta_json(event: *const supa_event, len: *mut usize) -> *const c_char {
    // SAFETY: `event` and `len` are NULL or valid for the call (the header's pointer rule).
    unsafe { text_out(event, len, meta_json_text) }
}

/// A stored broadcast's meta, however the broadcast arrived.
fn stored_meta(e: &supa_event) -> BroadcastMeta {
    match e.view() {
        View::Broadcast(b) => b.meta.as_ref().map(BroadcastMeta::from_value),
        View::Raw(r) => r.meta().map(BroadcastMeta::from_json),
        _ => None,
    }
    .unwrap_or_default()
}

fn broadcast_id_text(e: &supa_event) -> Option<&[u8]> {
    cached(&e.id, || stored_meta(e).id.as_deref().map(text))
}

/// A stored broadcast's id (`meta.id`, the same live and replayed); NULL for a broadcast that
/// was not stored and for other kinds.
#[no_mangle]
pub extern "C" fn supa_event_broadcast_id(
    event: *const supa_event,
    len: *mut usize,
) -> *const c_char {
    // SAFETY: `event` and `len` are NULL or valid for the call (the header's pointer rule).
    unsafe { text_out(event, len, broadcast_id_text) }
}

/// Whether a broadcast was delivered by a replay on join (`meta.replayed`) rather than live.
#[no_mangle]
pub extern "C" fn supa_event_broadcast_replayed(event: *const supa_event) -> bool {
    // SAFETY: `event` is NULL or an event valid for the call (the header's pointer rule).
    with(unsafe { borrow(event) }, false, |e| stored_meta(e).replayed)
}

/// Whether a `SUPA_EVENT_RESUMED` channel got every broadcast stored during its gap (gap fill,
/// `supa_channel_options_set_auto_replay`); false otherwise.
#[no_mangle]
pub extern "C" fn supa_event_resumed_filled(event: *const supa_event) -> bool {
    // SAFETY: `event` is NULL or an event valid for the call (the header's pointer rule).
    with(unsafe { borrow(event) }, false, |e| {
        matches!(e.view(), View::Other(Event::Resumed { filled: true, .. }))
    })
}

/// The connection state a `SUPA_EVENT_CONNECTION_STATUS` reports (a `supa_connection_state`);
/// `SUPA_CONNECTION_DISCONNECTED` for other kinds.
#[no_mangle]
pub extern "C" fn supa_event_connection_state(event: *const supa_event) -> u32 {
    // SAFETY: `event` is NULL or an event valid for the call (the header's pointer rule).
    with(unsafe { borrow(event) }, 0, |e| match e.view() {
        View::Other(Event::ConnectionStatus { state, .. }) => connection_state(*state) as u32,
        _ => 0,
    })
}

/// The status a `SUPA_EVENT_CHANNEL_STATUS` reports (a `supa_subscribe_status`);
/// `SUPA_STATUS_NONE` for other kinds.
#[no_mangle]
pub extern "C" fn supa_event_subscribe_status(event: *const supa_event) -> u32 {
    const NONE: u32 = supa_subscribe_status::SUPA_STATUS_NONE as u32;
    // SAFETY: `event` is NULL or an event valid for the call (the header's pointer rule).
    with(unsafe { borrow(event) }, NONE, |e| match e.view() {
        View::Other(Event::ChannelStatus { status, .. }) => {
            (match status {
                SubscribeStatus::Subscribed => supa_subscribe_status::SUPA_STATUS_SUBSCRIBED,
                SubscribeStatus::TimedOut => supa_subscribe_status::SUPA_STATUS_TIMED_OUT,
                SubscribeStatus::Closed => supa_subscribe_status::SUPA_STATUS_CLOSED,
                SubscribeStatus::ChannelError => supa_subscribe_status::SUPA_STATUS_CHANNEL_ERROR,
            }) as u32
        }
        _ => NONE,
    })
}

/// The realtime-js name of a channel status (`"SUBSCRIBED"`, `"TIMED_OUT"`, `"CLOSED"`,
/// `"CHANNEL_ERROR"`), a static string; NULL for other kinds.
#[no_mangle]
pub extern "C" fn supa_event_status_name(event: *const supa_event) -> *const c_char {
    // SAFETY: `event` is NULL or an event valid for the call (the header's pointer rule).
    with(unsafe { borrow(event) }, std::ptr::null(), |e| {
        match e.view() {
            View::Other(Event::ChannelStatus { status, .. }) => match status {
                SubscribeStatus::Subscribed => "SUBSCRIBED\0",
                SubscribeStatus::TimedOut => "TIMED_OUT\0",
                SubscribeStatus::Closed => "CLOSED\0",
                SubscribeStatus::ChannelError => "CHANNEL_ERROR\0",
            }
            .as_ptr()
            .cast(),
            _ => std::ptr::null(),
        }
    })
}

fn reason_text(e: &supa_event) -> Option<&[u8]> {
    cached(&e.reason, || match e.view() {
        View::Other(Event::ConnectionStatus { reason, .. })
        | View::Other(Event::ChannelStatus { reason, .. }) => reason.as_deref().map(text),
        View::Other(Event::Error { message }) => Some(text(message)),
        _ => None,
    })
}

/// Why: a connection or channel status's reason (the server's text, unchanged), or an error
/// event's message; NULL when there is none.
#[no_mangle]
pub extern "C" fn supa_event_reason(event: *const supa_event, len: *mut usize) -> *const c_char {
    // SAFETY: `event` and `len` are NULL or valid for the call (the header's pointer rule).
    unsafe { text_out(event, len, reason_text) }
}

/// Whether the event is the distinct terminal "token rejected" channel status: a
/// `SUPA_STATUS_CHANNEL_ERROR` with `SUPA_ERROR_KIND_TERMINAL` whose reason says the server
/// refused the access token (expired, malformed, badly signed, missing claims), at join or
/// while joined. The channel will not rejoin: get a new token, `supa_client_set_auth`, and
/// subscribe a new channel handle. `false` for every other event and for NULL.
///
/// With a token provider a refused join is first retried (`supa_options_set_auth_retries`);
/// those retried refusals are `SUPA_ERROR_KIND_RECOVERABLE` and give `false`.
#[no_mangle]
pub extern "C" fn supa_event_is_token_rejected(event: *const supa_event) -> bool {
    // SAFETY: `event` is NULL or an event valid for the call (the header's pointer rule).
    with(unsafe { borrow(event) }, false, |e| match e.view() {
        View::Other(ev) => ev.is_token_rejected(),
        _ => false,
    })
}

/// Whether a channel status's error may clear up by itself (a `supa_error_kind`);
/// `SUPA_ERROR_KIND_NONE` when the event carries no error.
#[no_mangle]
pub extern "C" fn supa_event_error_kind(event: *const supa_event) -> u32 {
    const NONE: u32 = supa_error_kind::SUPA_ERROR_KIND_NONE as u32;
    // SAFETY: `event` is NULL or an event valid for the call (the header's pointer rule).
    with(unsafe { borrow(event) }, NONE, |e| match e.view() {
        View::Other(Event::ChannelStatus {
            error_kind: Some(k),
            ..
        }) => {
            (match k {
                ErrorKind::Recoverable => supa_error_kind::SUPA_ERROR_KIND_RECOVERABLE,
                ErrorKind::Terminal => supa_error_kind::SUPA_ERROR_KIND_TERMINAL,
            }) as u32
        }
        _ => NONE,
    })
}

/// A heartbeat event's status (a `supa_heartbeat_status`); `SUPA_HEARTBEAT_NONE` otherwise.
#[no_mangle]
pub extern "C" fn supa_event_heartbeat_status(event: *const supa_event) -> u32 {
    const NONE: u32 = supa_heartbeat_status::SUPA_HEARTBEAT_NONE as u32;
    // SAFETY: `event` is NULL or an event valid for the call (the header's pointer rule).
    with(unsafe { borrow(event) }, NONE, |e| match e.view() {
        View::Other(Event::Heartbeat { status, .. }) => {
            (match status {
                HeartbeatStatus::Sent => supa_heartbeat_status::SUPA_HEARTBEAT_SENT,
                HeartbeatStatus::Ok => supa_heartbeat_status::SUPA_HEARTBEAT_OK,
                HeartbeatStatus::Error => supa_heartbeat_status::SUPA_HEARTBEAT_ERROR,
                HeartbeatStatus::Timeout => supa_heartbeat_status::SUPA_HEARTBEAT_TIMEOUT,
            }) as u32
        }
        _ => NONE,
    })
}

/// A heartbeat reply's round trip in microseconds; 0 when unknown or not a heartbeat.
#[no_mangle]
pub extern "C" fn supa_event_heartbeat_rtt_us(event: *const supa_event) -> u64 {
    // SAFETY: `event` is NULL or an event valid for the call (the header's pointer rule).
    with(unsafe { borrow(event) }, 0, |e| match e.view() {
        View::Other(Event::Heartbeat { rtt: Some(d), .. }) => d.as_micros() as u64,
        _ => 0,
    })
}

/// How many data events a `SUPA_EVENT_LAGGED` says were dropped; 0 otherwise.
#[no_mangle]
pub extern "C" fn supa_event_lagged_dropped(event: *const supa_event) -> u64 {
    // SAFETY: `event` is NULL or an event valid for the call (the header's pointer rule).
    with(unsafe { borrow(event) }, 0, |e| match e.view() {
        View::Other(Event::Lagged { dropped }) => *dropped,
        _ => 0,
    })
}

/// How long a `SUPA_EVENT_RESUMED` channel was away, in milliseconds; 0 otherwise.
#[no_mangle]
pub extern "C" fn supa_event_resumed_gap_ms(event: *const supa_event) -> u64 {
    // SAFETY: `event` is NULL or an event valid for the call (the header's pointer rule).
    with(unsafe { borrow(event) }, 0, |e| match e.view() {
        View::Other(Event::Resumed { gap, .. }) => Duration::as_millis(gap) as u64,
        _ => 0,
    })
}

fn presence_key_text(e: &supa_event) -> Option<&[u8]> {
    cached(&e.key, || match e.view() {
        View::Presence(PresenceEvent::Join { key, .. })
        | View::Presence(PresenceEvent::Leave { key, .. }) => Some(text(key)),
        _ => None,
    })
}

/// A presence join/leave's key; NULL for other kinds.
#[no_mangle]
pub extern "C" fn supa_event_presence_key(
    event: *const supa_event,
    len: *mut usize,
) -> *const c_char {
    // SAFETY: `event` and `len` are NULL or valid for the call (the header's pointer rule).
    unsafe { text_out(event, len, presence_key_text) }
}

fn presence_current_json_text(e: &supa_event) -> Option<&[u8]> {
    cached(&e.current, || match e.view() {
        View::Presence(PresenceEvent::Join { current, .. })
        | View::Presence(PresenceEvent::Leave { current, .. }) => {
            Some(json_text(&Value::Array(current.clone())))
        }
        _ => None,
    })
}

/// A presence join/leave's metas of the key that remain/were known (JSON array); NULL otherwise.
#[no_mangle]
pub extern "C" fn supa_event_presence_current_json(
    event: *const supa_event,
    len: *mut usize,
) -> *const c_char {
    // SAFETY: `event` and `len` are NULL or valid for the call (the header's pointer rule).
    unsafe { text_out(event, len, presence_current_json_text) }
}

fn presence_changed_json_text(e: &supa_event) -> Option<&[u8]> {
    cached(&e.changed, || match e.view() {
        View::Presence(PresenceEvent::Join { new: metas, .. })
        | View::Presence(PresenceEvent::Leave { left: metas, .. }) => {
            Some(json_text(&Value::Array(metas.clone())))
        }
        _ => None,
    })
}

/// A presence join's new metas, or a leave's metas that left (JSON array); NULL otherwise.
#[no_mangle]
pub extern "C" fn supa_event_presence_changed_json(
    event: *const supa_event,
    len: *mut usize,
) -> *const c_char {
    // SAFETY: `event` and `len` are NULL or valid for the call (the header's pointer rule).
    unsafe { text_out(event, len, presence_changed_json_text) }
}

/// The change an event carries, if it is one.
fn change(e: &supa_event) -> Option<&PostgresChange> {
    match e.view() {
        View::Change(c) => Some(c),
        _ => None,
    }
}

fn change_schema_text(e: &supa_event) -> Option<&[u8]> {
    cached(&e.schema, || change(e).map(|c| text(&c.schema)))
}

/// A change's schema; NULL for other kinds.
#[no_mangle]
pub extern "C" fn supa_event_change_schema(
    event: *const supa_event,
    len: *mut usize,
) -> *const c_char {
    // SAFETY: `event` and `len` are NULL or valid for the call (the header's pointer rule).
    unsafe { text_out(event, len, change_schema_text) }
}

fn change_table_text(e: &supa_event) -> Option<&[u8]> {
    cached(&e.table, || change(e).map(|c| text(&c.table)))
}

/// A change's table; NULL for other kinds.
#[no_mangle]
pub extern "C" fn supa_event_change_table(
    event: *const supa_event,
    len: *mut usize,
) -> *const c_char {
    // SAFETY: `event` and `len` are NULL or valid for the call (the header's pointer rule).
    unsafe { text_out(event, len, change_table_text) }
}

fn change_commit_timestamp_text(e: &supa_event) -> Option<&[u8]> {
    cached(&e.commit_timestamp, || {
        change(e).map(|c| text(&c.commit_timestamp))
    })
}

/// A change's commit timestamp (ISO 8601 text); NULL for other kinds.
#[no_mangle]
pub extern "C" fn supa_event_change_commit_timestamp(
    event: *const supa_event,
    len: *mut usize,
) -> *const c_char {
    // SAFETY: `event` and `len` are NULL or valid for the call (the header's pointer rule).
    unsafe { text_out(event, len, change_commit_timestamp_text) }
}

fn change_new_json_text(e: &supa_event) -> Option<&[u8]> {
    cached(&e.new, || change(e).map(|c| json_text(&c.new)))
}

/// A change's new row as a JSON object (`{}` for DELETE), values converted by column type;
/// NULL for other kinds.
#[no_mangle]
pub extern "C" fn supa_event_change_new_json(
    event: *const supa_event,
    len: *mut usize,
) -> *const c_char {
    // SAFETY: `event` and `len` are NULL or valid for the call (the header's pointer rule).
    unsafe { text_out(event, len, change_new_json_text) }
}

fn change_old_json_text(e: &supa_event) -> Option<&[u8]> {
    cached(&e.old, || change(e).map(|c| json_text(&c.old)))
}

/// A change's old row as a JSON object (replica-identity columns; `{}` for INSERT);
/// NULL for other kinds.
#[no_mangle]
pub extern "C" fn supa_event_change_old_json(
    event: *const supa_event,
    len: *mut usize,
) -> *const c_char {
    // SAFETY: `event` and `len` are NULL or valid for the call (the header's pointer rule).
    unsafe { text_out(event, len, change_old_json_text) }
}

fn change_errors_json_text(e: &supa_event) -> Option<&[u8]> {
    cached(&e.errors, || change(e).map(|c| json_text(&c.errors)))
}

/// A change's `errors` (JSON `null` or an array of strings); NULL for other kinds.
#[no_mangle]
pub extern "C" fn supa_event_change_errors_json(
    event: *const supa_event,
    len: *mut usize,
) -> *const c_char {
    // SAFETY: `event` and `len` are NULL or valid for the call (the header's pointer rule).
    unsafe { text_out(event, len, change_errors_json_text) }
}

fn change_columns_json_text(e: &supa_event) -> Option<&[u8]> {
    cached(&e.columns, || change(e).map(|c| json_text(&c.columns)))
}

/// A change's `columns` (`[{name, type}]`) as sent by the server; NULL for other kinds.
#[no_mangle]
pub extern "C" fn supa_event_change_columns_json(
    event: *const supa_event,
    len: *mut usize,
) -> *const c_char {
    // SAFETY: `event` and `len` are NULL or valid for the call (the header's pointer rule).
    unsafe { text_out(event, len, change_columns_json_text) }
}

/// Copies an event so it outlives the callback.
///
/// Ownership: the caller owns the copy and frees it with `supa_event_free`. NULL for a NULL
/// event. Thread-safety: the copy may be moved to and read on another thread.
#[no_mangle]
pub extern "C" fn supa_event_copy(event: *const supa_event) -> *mut supa_event {
    // SAFETY: `event` is NULL or an event valid for the call (the header's pointer rule).
    with(unsafe { borrow(event) }, std::ptr::null_mut(), |e| {
        // SAFETY: an owned source points to nothing outside itself.
        let copy = unsafe { supa_event::new(e.to_owned_source()) };
        Box::into_raw(Box::new(copy))
    })
}

/// Frees an event made by `supa_event_copy`. NULL is a no-op. Never free the event a callback
/// received.
#[no_mangle]
pub extern "C" fn supa_event_free(event: *mut supa_event) {
    // SAFETY: the header allows only NULL or a copy from `supa_event_copy`, freed once.
    boundary(|| unsafe { free_box(event) })
}

/// Calls a C event callback with a borrowed event (used by the registrations).
pub(crate) fn deliver(
    cb: unsafe extern "C" fn(*mut c_void, *const supa_event),
    userdata: *mut c_void,
    source: Borrowed<'_>,
) {
    // SAFETY: `ev` is dropped at the end of this call, while `source`'s borrows still last.
    let ev = unsafe { supa_event::new(source.into()) };
    // SAFETY: the caller's callback with its own userdata and an event that outlives the call,
    // as `supa_event_cb` states.
    unsafe { cb(userdata, &ev) };
}
