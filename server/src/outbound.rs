//! What a socket is sent, and how much of it may wait.
//!
//! Everything the hub and the database deliver to a socket goes through its [`Outbox`]: a
//! queue bounded in frames and, above all, in bytes — per socket and per channel. A byte stays
//! counted from the moment it is queued until the peer's TCP stack took it, so a client that
//! does not read cannot make the server buffer more than the limits, however the bytes got
//! there. When a limit is crossed the producer does not wait and does not drop silently: it
//! marks the socket (or the channel) and wakes its task, which closes it with a clear reason.
//!
//! Messages are shared bytes ([`Outgoing`]): one encoding of a broadcast serves every
//! recipient, and a presence state is one buffer for every joiner. Large messages are written
//! as WebSocket fragments of at most [`CHUNK`] bytes, so a socket that is stuck writing holds
//! one chunk of its own, not a private copy of the whole message.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::SinkExt;
use serde_json::Value;
use supa_realtime_protocol::Vsn;
use tokio::sync::{mpsc, Notify};
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame as WsFrame;
use tokio_tungstenite::tungstenite::{Bytes, Message};

use crate::hub::{Fanout, SubId};

/// What one queued delivery costs beyond its message bytes (the entry, its charge, the Arc).
const DELIVERY_OVERHEAD: usize = 64;

/// The largest WebSocket frame the server writes; bigger messages go out in fragments.
pub(crate) const CHUNK: usize = 64 * 1024;

/// One WebSocket message as shared bytes: `head` + `body` + `tail` (most messages are one
/// part; a presence state is the joiner's own envelope around the topic's shared state).
#[derive(Clone, Debug)]
pub(crate) struct Outgoing {
    binary: bool,
    head: Bytes,
    body: Bytes,
    tail: Bytes,
}

impl Outgoing {
    pub(crate) fn text(text: String) -> Outgoing {
        Outgoing::parts(false, Bytes::new(), Bytes::from(text), Bytes::new())
    }

    pub(crate) fn binary(bytes: Vec<u8>) -> Outgoing {
        Outgoing::parts(true, Bytes::new(), Bytes::from(bytes), Bytes::new())
    }

    /// A channel push from the server (`ref` null) whose payload is JSON text shared with
    /// other messages: only the envelope is this message's own. Encoded exactly as
    /// `Frame::encode_server` encodes the same frame.
    pub(crate) fn push(
        vsn: Vsn,
        join_ref: Option<&str>,
        topic: &str,
        event: &str,
        payload: Bytes,
    ) -> Outgoing {
        let string = |s: &str| Value::String(s.to_owned()).to_string();
        let (head, tail) = match vsn {
            Vsn::V2 => {
                let join_ref = join_ref.map_or_else(|| "null".to_owned(), string);
                let head = format!("[{join_ref},null,{},{},", string(topic), string(event));
                (head, "]")
            }
            // V1 server frames carry no join_ref.
            Vsn::V1 => {
                let head = format!(
                    "{{\"topic\":{},\"event\":{},\"payload\":",
                    string(topic),
                    string(event)
                );
                (head, ",\"ref\":null}")
            }
        };
        Outgoing::parts(
            false,
            Bytes::from(head),
            payload,
            Bytes::from_static(tail.as_bytes()),
        )
    }

    fn parts(binary: bool, head: Bytes, body: Bytes, tail: Bytes) -> Outgoing {
        Outgoing {
            binary,
            head,
            body,
            tail,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.head.len() + self.body.len() + self.tail.len()
    }

    /// The whole message in one buffer (tests).
    #[cfg(test)]
    pub(crate) fn to_vec(&self) -> Vec<u8> {
        [&self.head[..], &self.body[..], &self.tail[..]].concat()
    }

    /// The WebSocket frames of this message: one when it fits a [`CHUNK`], otherwise
    /// fragments of at most a chunk (slices of the shared bytes, not copies).
    fn frames(&self) -> Vec<WsFrame> {
        let first = if self.binary {
            Data::Binary
        } else {
            Data::Text
        };
        if self.len() <= CHUNK {
            let payload = if self.head.is_empty() && self.tail.is_empty() {
                self.body.clone()
            } else {
                let mut joined = Vec::with_capacity(self.len());
                for part in [&self.head, &self.body, &self.tail] {
                    joined.extend_from_slice(part);
                }
                Bytes::from(joined)
            };
            return vec![WsFrame::message(payload, OpCode::Data(first), true)];
        }
        let mut slices = Vec::with_capacity(self.len() / CHUNK + 3);
        for part in [&self.head, &self.body, &self.tail] {
            let mut at = 0;
            while at < part.len() {
                let end = (at + CHUNK).min(part.len());
                slices.push(part.slice(at..end));
                at = end;
            }
        }
        let last = slices.len() - 1;
        slices
            .into_iter()
            .enumerate()
            .map(|(i, slice)| {
                let opcode = if i == 0 { first } else { Data::Continue };
                WsFrame::message(slice, OpCode::Data(opcode), i == last)
            })
            .collect()
    }
}

/// Writes `out` (each message with the charges it releases once written) and flushes. Each
/// frame must be taken by the peer within `timeout`, so a stalled reader is dropped while a
/// slow but steady one is not; false when the socket is gone or stalled.
pub(crate) async fn write_all<S>(
    ws: &mut S,
    out: &mut Vec<(Outgoing, Option<Charge>)>,
    timeout: Duration,
) -> bool
where
    S: futures_util::Sink<Message, Error = tokio_tungstenite::tungstenite::Error> + Unpin,
{
    for (msg, charge) in out.drain(..) {
        for frame in msg.frames() {
            match tokio::time::timeout(timeout, ws.feed(Message::Frame(frame))).await {
                Ok(Ok(())) => {}
                _ => return false,
            }
        }
        drop(charge);
    }
    matches!(tokio::time::timeout(timeout, ws.flush()).await, Ok(Ok(())))
}

/// Bytes a channel has queued on its socket, against the per-channel limit.
pub(crate) struct ChannelBudget {
    queued: AtomicUsize,
    max: usize,
    overflowed: AtomicBool,
}

impl ChannelBudget {
    pub(crate) fn new(max: usize) -> Arc<ChannelBudget> {
        Arc::new(ChannelBudget {
            queued: AtomicUsize::new(0),
            max,
            overflowed: AtomicBool::new(false),
        })
    }

    /// True once the channel crossed its limit; its socket then closes it.
    pub(crate) fn overflowed(&self) -> bool {
        self.overflowed.load(Ordering::Acquire)
    }
}

/// Bytes counted against a socket and one of its channels until dropped (once written, or
/// when the message turned out stale or could not be queued).
pub(crate) struct Charge {
    bytes: usize,
    outbox: Arc<Outbox>,
    channel: Arc<ChannelBudget>,
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.outbox.queued.fetch_sub(self.bytes, Ordering::AcqRel);
        self.channel.queued.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

/// What a producer queues: a fan-out message (encoded by the socket for its version), or a
/// message already encoded for this socket (postgres changes).
pub(crate) enum Item {
    Fanout(Arc<Fanout>),
    Encoded(Outgoing),
}

/// One queued delivery for one of the socket's channel subscriptions.
pub(crate) struct Delivery {
    pub sub: SubId,
    pub item: Item,
    pub charge: Charge,
}

/// The producers' side of a socket's queue.
pub(crate) struct Outbox {
    tx: mpsc::Sender<Delivery>,
    queued: AtomicUsize,
    max: usize,
    overflowed: AtomicBool,
    /// Wakes the socket task when it or one of its channels overflowed.
    pub attention: Notify,
}

impl Outbox {
    /// A queue of at most `frames` deliveries and `max_bytes` bytes.
    pub(crate) fn new(frames: usize, max_bytes: usize) -> (Arc<Outbox>, mpsc::Receiver<Delivery>) {
        let (tx, rx) = mpsc::channel(frames.max(1));
        let outbox = Arc::new(Outbox {
            tx,
            queued: AtomicUsize::new(0),
            max: max_bytes,
            overflowed: AtomicBool::new(false),
            attention: Notify::new(),
        });
        (outbox, rx)
    }

    /// Bytes queued and not yet written.
    pub(crate) fn queued(&self) -> usize {
        self.queued.load(Ordering::Acquire)
    }

    /// The byte limit.
    pub(crate) fn max(&self) -> usize {
        self.max
    }

    /// True once the socket crossed a limit; its task then closes it.
    pub(crate) fn overflowed(&self) -> bool {
        self.overflowed.load(Ordering::Acquire)
    }

    /// Queues `item` (about `bytes` on the wire) for subscription `sub` without waiting.
    /// Past a limit nothing is queued: the socket or channel is marked and its task woken.
    pub(crate) fn offer(
        self: &Arc<Self>,
        channel: &Arc<ChannelBudget>,
        sub: SubId,
        item: Item,
        bytes: usize,
    ) {
        if self.overflowed() || channel.overflowed() {
            return;
        }
        // The queue entry itself costs memory too, so a flood of tiny messages is bounded.
        let bytes = bytes + DELIVERY_OVERHEAD;
        let socket_total = self.queued.fetch_add(bytes, Ordering::AcqRel) + bytes;
        let channel_total = channel.queued.fetch_add(bytes, Ordering::AcqRel) + bytes;
        let charge = Charge {
            bytes,
            outbox: Arc::clone(self),
            channel: Arc::clone(channel),
        };
        if socket_total > self.max {
            return self.mark(&self.overflowed);
        }
        if channel_total > channel.max {
            return self.mark(&channel.overflowed);
        }
        match self.tx.try_send(Delivery { sub, item, charge }) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => self.mark(&self.overflowed),
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }

    fn mark(&self, flag: &AtomicBool) {
        flag.store(true, Ordering::Release);
        self.attention.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use supa_realtime_protocol::Frame;

    fn joined(msg: &Outgoing) -> Vec<u8> {
        msg.frames()
            .into_iter()
            .flat_map(|f| f.into_payload().to_vec())
            .collect()
    }

    #[test]
    fn a_push_around_shared_bytes_encodes_as_the_protocol_does() {
        let payload = json!({"u\"1": {"metas": [{"phx_ref": "F", "é": 1}]}});
        for vsn in [Vsn::V1, Vsn::V2] {
            for join_ref in [None, Some("4\"2")] {
                let expected = Frame::new(
                    join_ref.map(str::to_owned),
                    None,
                    "realtime:r\"oom",
                    "presence_state",
                    payload.clone(),
                )
                .encode_server(vsn);
                let shared = Bytes::from(payload.to_string());
                let msg =
                    Outgoing::push(vsn, join_ref, "realtime:r\"oom", "presence_state", shared);
                assert_eq!(String::from_utf8(joined(&msg)).unwrap(), expected);
                assert_eq!(msg.len(), expected.len());
            }
        }
    }

    #[test]
    fn large_messages_are_fragments_of_at_most_a_chunk() {
        let body = Bytes::from(vec![b'x'; CHUNK * 2 + 10]);
        let msg = Outgoing::push(Vsn::V2, Some("1"), "t", "e", body);
        let frames = msg.frames();
        assert!(frames.len() >= 3);
        assert!(frames.iter().all(|f| f.len() <= CHUNK + 14));
        let (first, rest) = frames.split_first().unwrap();
        assert_eq!(first.header().opcode, OpCode::Data(Data::Text));
        assert!(rest
            .iter()
            .all(|f| f.header().opcode == OpCode::Data(Data::Continue)));
        assert!(frames[..frames.len() - 1]
            .iter()
            .all(|f| !f.header().is_final));
        assert!(frames.last().unwrap().header().is_final);
        assert_eq!(joined(&msg).len(), msg.len());
        // Small messages are one frame, even when made of parts.
        let small = Outgoing::push(Vsn::V2, None, "t", "e", Bytes::from_static(b"{}"));
        assert_eq!(small.frames().len(), 1);
    }
}
