//! The engine's outputs and the context a channel machine works in.
//!
//! Nothing here does I/O: frames to send and events to emit are queued in an [`Outbox`], which
//! the driver drains after each input (writing frames to the socket, events to the dispatch
//! queue); unit tests read it instead.

use std::time::Duration;

use tokio::sync::oneshot;

use super::snapshot::Counters;
use crate::error::Error;
use crate::event::ChannelId;
use crate::incoming::{Emit, Incoming};
use crate::options::ClientOptions;
use crate::protocol::{Frame, Vsn};

/// How a push (or a leave) ends: `Ok`, or why not. Sent once, to whoever waits.
pub(crate) type Reply = oneshot::Sender<Result<(), Error>>;

/// One frame to write, already encoded.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Transmit {
    Text(String),
    Binary(Vec<u8>),
}

/// What the engine produced since the last drain.
#[derive(Debug, Default)]
pub(crate) struct Outbox {
    pub transmits: Vec<Transmit>,
    pub emits: Vec<Emit>,
}

impl Outbox {
    pub(crate) fn emit(&mut self, channel: Option<ChannelId>, event: impl Into<Incoming>) {
        self.emits.push(Emit::Event(channel, event.into()));
    }
}

/// The socket-wide ref counter ("1", "2", …), as phoenix.js keeps one per socket.
#[derive(Debug, Default)]
pub(crate) struct Refs(u64);

impl Refs {
    pub(crate) fn next(&mut self) -> String {
        self.0 += 1;
        self.0.to_string()
    }
}

/// What a channel machine reads from its connection and where its output goes.
pub(crate) struct Ctx<'a> {
    pub opts: &'a ClientOptions,
    /// The access token joins carry (`None`: the server uses the API key).
    pub token: Option<&'a str>,
    /// Whether the socket is open: frames queued while it is not would be lost.
    pub open: bool,
    /// Why the last connect attempt failed, while no socket is open.
    pub cause: Option<&'a Error>,
    /// The token provider's failure while no token is in force: joins wait for a token.
    pub token_error: Option<&'a str>,
    pub refs: &'a mut Refs,
    pub out: &'a mut Outbox,
    pub counters: &'a Counters,
}

impl Ctx<'_> {
    pub(crate) fn vsn(&self) -> Vsn {
        self.opts.vsn
    }

    pub(crate) fn push_timeout(&self) -> Duration {
        self.opts.push_timeout
    }

    /// Queues a text frame; `false` (nothing queued) when the socket is not open.
    pub(crate) fn send(&mut self, frame: &Frame) -> bool {
        if self.open {
            let text = frame.encode(self.opts.vsn);
            self.out.transmits.push(Transmit::Text(text));
        }
        self.open
    }

    /// Queues a binary frame; `false` when the socket is not open.
    pub(crate) fn send_binary(&mut self, bytes: Vec<u8>) -> bool {
        if self.open {
            self.out.transmits.push(Transmit::Binary(bytes));
        }
        self.open
    }

    pub(crate) fn emit(&mut self, channel: Option<ChannelId>, event: impl Into<Incoming>) {
        self.out.emit(channel, event);
    }
}
