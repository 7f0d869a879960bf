//! The Supabase Realtime wire protocol: Phoenix Channels frames as Supabase speaks them.
//!
//! This crate is pure: no sockets, no clocks, no allocation beyond the frames themselves.
//! Both the client (`supa_realtime`) and the local server (`supa-realtime-server`) use it,
//! so one codec is pinned by the golden frames of the protocol reference; the server's
//! compatibility with the official clients (realtime-js, realtime-py) then proves the codec
//! against implementations we did not write.
//!
//! * [`Frame`] is a text frame: `[join_ref, ref, topic, event, payload]` in vsn 2.0.0
//!   ([`Vsn::V2`]), or a JSON object in vsn 1.0.0 ([`Vsn::V1`]).
//! * [`BinaryFrame`] is one of the binary kinds 0–4 of vsn 2.0.0; Realtime itself uses
//!   kind 3 (client → server user broadcast) and kind 4 (server → client user broadcast).
//!   [`UserBroadcastRef`] reads kind 4 without copying.
//! * [`JoinPayload`] / [`JoinConfig`] type the `phx_join` payload; `Frame::join`, `leave`,
//!   `heartbeat`, `access_token`, `broadcast`, `presence_track`/`untrack` and
//!   [`BinaryFrame::user_broadcast_push`] build every frame a client sends.
//! * [`FanoutBroadcast`] decodes the bulk of inbound traffic (fan-out JSON broadcasts) without
//!   building a JSON tree, leaving the user payload as raw text.
//!
//! ```
//! use supa_realtime_protocol::{Frame, Vsn};
//! let frame = Frame::decode(Vsn::V2, r#"[null,"12","phoenix","heartbeat",{}]"#).unwrap();
//! assert_eq!(frame.topic, "phoenix");
//! assert_eq!(frame.encode(Vsn::V2), r#"[null,"12","phoenix","heartbeat",{}]"#);
//! ```

mod binary;
pub mod event;
mod fanout;
mod frame;
mod join;
mod push;
mod scan;
mod stored;
#[cfg(test)]
mod testgen;

pub use binary::{
    BinaryFrame, BroadcastPayload, Direction, UserBroadcastRef, UserPayloadRef, MAX_HEADER_FIELD,
};
pub use fanout::FanoutBroadcast;
pub use frame::{DecodeError, Frame, Vsn};
pub use join::{
    BroadcastConfig, JoinConfig, JoinPayload, PostgresBinding, PresenceConfig, ReplayConfig,
};
pub use stored::{replication_status, BroadcastMeta, Persist, SYSTEM_EXTENSION};

/// The prefix every channel topic carries on the wire (`realtime:room1`).
pub const TOPIC_PREFIX: &str = "realtime:";

/// The reserved topic that carries heartbeats.
pub const PHOENIX_TOPIC: &str = "phoenix";
