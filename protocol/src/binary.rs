//! Binary frames of vsn 2.0.0 (kinds 0–4).
//!
//! Every header length is one unsigned byte, so each string field is at most
//! [`MAX_HEADER_FIELD`] bytes of UTF-8; the payload is the rest of the frame.

use crate::frame::DecodeError;

/// The longest string a binary header can carry (one length byte).
pub const MAX_HEADER_FIELD: usize = 255;

const KIND_PUSH: u8 = 0;
const KIND_REPLY: u8 = 1;
const KIND_BROADCAST: u8 = 2;
const KIND_USER_PUSH: u8 = 3;
const KIND_USER_BROADCAST: u8 = 4;

const ENCODING_BINARY: u8 = 0;
const ENCODING_JSON: u8 = 1;

/// The user payload of a broadcast: UTF-8 JSON text, or opaque bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BroadcastPayload {
    /// Encoding byte 1: the payload is JSON text (kept as text so relays need not parse it).
    Json(String),
    /// Encoding byte 0: opaque bytes (`ArrayBuffer` in realtime-js).
    Binary(Vec<u8>),
}

impl BroadcastPayload {
    fn encoding(&self) -> u8 {
        match self {
            BroadcastPayload::Json(_) => ENCODING_JSON,
            BroadcastPayload::Binary(_) => ENCODING_BINARY,
        }
    }

    fn bytes(&self) -> &[u8] {
        match self {
            BroadcastPayload::Json(s) => s.as_bytes(),
            BroadcastPayload::Binary(b) => b,
        }
    }
}

/// One binary frame. Empty `join_ref`/`ref` strings on the wire are `None` here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BinaryFrame {
    /// Kind 0. From a client it has a `ref`; from the server it has none.
    Push {
        join_ref: Option<String>,
        r#ref: Option<String>,
        topic: String,
        event: String,
        payload: Vec<u8>,
    },
    /// Kind 1, server → client.
    Reply {
        join_ref: Option<String>,
        r#ref: Option<String>,
        topic: String,
        status: String,
        payload: Vec<u8>,
    },
    /// Kind 2, server → client.
    Broadcast {
        topic: String,
        event: String,
        payload: Vec<u8>,
    },
    /// Kind 3, client → server: a user broadcast (`event` is the user's event name).
    UserBroadcastPush {
        join_ref: Option<String>,
        r#ref: Option<String>,
        topic: String,
        event: String,
        /// JSON text, possibly empty.
        metadata: String,
        payload: BroadcastPayload,
    },
    /// Kind 4, server → client: a user broadcast.
    UserBroadcast {
        topic: String,
        event: String,
        /// JSON text, possibly empty.
        metadata: String,
        payload: BroadcastPayload,
    },
}

/// Which side sent the frame; it decides the header of kind 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    ClientToServer,
    ServerToClient,
}

impl BinaryFrame {
    /// Encodes the frame. Fails when a header string exceeds 255 bytes, naming the field.
    pub fn encode(&self) -> Result<Vec<u8>, &'static str> {
        let mut out = Vec::with_capacity(self.encoded_len_hint());
        match self {
            BinaryFrame::Push {
                join_ref,
                r#ref,
                topic,
                event,
                payload,
            } => {
                out.push(KIND_PUSH);
                let jr = join_ref.as_deref().unwrap_or("");
                // A push with a ref is client → server (4 length bytes); without, server → client.
                match r#ref {
                    Some(r) => {
                        lens(
                            &mut out,
                            &[
                                ("join_ref", jr),
                                ("ref", r),
                                ("topic", topic),
                                ("event", event),
                            ],
                        )?;
                        out.extend_from_slice(jr.as_bytes());
                        out.extend_from_slice(r.as_bytes());
                    }
                    None => {
                        lens(
                            &mut out,
                            &[("join_ref", jr), ("topic", topic), ("event", event)],
                        )?;
                        out.extend_from_slice(jr.as_bytes());
                    }
                }
                out.extend_from_slice(topic.as_bytes());
                out.extend_from_slice(event.as_bytes());
                out.extend_from_slice(payload);
            }
            BinaryFrame::Reply {
                join_ref,
                r#ref,
                topic,
                status,
                payload,
            } => {
                out.push(KIND_REPLY);
                let jr = join_ref.as_deref().unwrap_or("");
                let r = r#ref.as_deref().unwrap_or("");
                lens(
                    &mut out,
                    &[
                        ("join_ref", jr),
                        ("ref", r),
                        ("topic", topic),
                        ("status", status),
                    ],
                )?;
                for s in [jr, r, topic, status] {
                    out.extend_from_slice(s.as_bytes());
                }
                out.extend_from_slice(payload);
            }
            BinaryFrame::Broadcast {
                topic,
                event,
                payload,
            } => {
                out.push(KIND_BROADCAST);
                lens(&mut out, &[("topic", topic), ("event", event)])?;
                out.extend_from_slice(topic.as_bytes());
                out.extend_from_slice(event.as_bytes());
                out.extend_from_slice(payload);
            }
            BinaryFrame::UserBroadcastPush {
                join_ref,
                r#ref,
                topic,
                event,
                metadata,
                payload,
            } => {
                out.push(KIND_USER_PUSH);
                let jr = join_ref.as_deref().unwrap_or("");
                let r = r#ref.as_deref().unwrap_or("");
                lens(
                    &mut out,
                    &[
                        ("join_ref", jr),
                        ("ref", r),
                        ("topic", topic),
                        ("event", event),
                        ("metadata", metadata),
                    ],
                )?;
                out.push(payload.encoding());
                for s in [jr, r, topic, event, metadata] {
                    out.extend_from_slice(s.as_bytes());
                }
                out.extend_from_slice(payload.bytes());
            }
            BinaryFrame::UserBroadcast {
                topic,
                event,
                metadata,
                payload,
            } => {
                out.push(KIND_USER_BROADCAST);
                lens(
                    &mut out,
                    &[("topic", topic), ("event", event), ("metadata", metadata)],
                )?;
                out.push(payload.encoding());
                for s in [topic, event, metadata] {
                    out.extend_from_slice(s.as_bytes());
                }
                out.extend_from_slice(payload.bytes());
            }
        }
        Ok(out)
    }

    fn encoded_len_hint(&self) -> usize {
        match self {
            BinaryFrame::Push {
                topic,
                event,
                payload,
                ..
            } => 16 + topic.len() + event.len() + payload.len(),
            BinaryFrame::Reply {
                topic,
                status,
                payload,
                ..
            } => 16 + topic.len() + status.len() + payload.len(),
            BinaryFrame::Broadcast {
                topic,
                event,
                payload,
            } => 3 + topic.len() + event.len() + payload.len(),
            BinaryFrame::UserBroadcastPush {
                topic,
                event,
                metadata,
                payload,
                ..
            }
            | BinaryFrame::UserBroadcast {
                topic,
                event,
                metadata,
                payload,
            } => 16 + topic.len() + event.len() + metadata.len() + payload.bytes().len(),
        }
    }

    /// Decodes a frame sent by a client (kind 0 with a ref, kind 3).
    pub fn decode_from_client(bytes: &[u8]) -> Result<BinaryFrame, DecodeError> {
        Self::decode(bytes, Direction::ClientToServer)
    }

    /// Decodes a frame sent by the server (kinds 0 without a ref, 1, 2, 4).
    pub fn decode_from_server(bytes: &[u8]) -> Result<BinaryFrame, DecodeError> {
        Self::decode(bytes, Direction::ServerToClient)
    }

    /// Decodes a frame, given who sent it.
    pub fn decode(bytes: &[u8], direction: Direction) -> Result<BinaryFrame, DecodeError> {
        let (&kind, rest) = bytes
            .split_first()
            .ok_or(DecodeError::Binary("empty frame"))?;
        let mut r = Reader { buf: rest };
        match (kind, direction) {
            (KIND_PUSH, Direction::ClientToServer) => {
                let l = r.lens::<4>()?;
                Ok(BinaryFrame::Push {
                    join_ref: non_empty(r.string(l[0])?),
                    r#ref: non_empty(r.string(l[1])?),
                    topic: r.string(l[2])?,
                    event: r.string(l[3])?,
                    payload: r.rest().to_vec(),
                })
            }
            (KIND_PUSH, Direction::ServerToClient) => {
                let l = r.lens::<3>()?;
                Ok(BinaryFrame::Push {
                    join_ref: non_empty(r.string(l[0])?),
                    r#ref: None,
                    topic: r.string(l[1])?,
                    event: r.string(l[2])?,
                    payload: r.rest().to_vec(),
                })
            }
            (KIND_REPLY, _) => {
                let l = r.lens::<4>()?;
                Ok(BinaryFrame::Reply {
                    join_ref: non_empty(r.string(l[0])?),
                    r#ref: non_empty(r.string(l[1])?),
                    topic: r.string(l[2])?,
                    status: r.string(l[3])?,
                    payload: r.rest().to_vec(),
                })
            }
            (KIND_BROADCAST, _) => {
                let l = r.lens::<2>()?;
                Ok(BinaryFrame::Broadcast {
                    topic: r.string(l[0])?,
                    event: r.string(l[1])?,
                    payload: r.rest().to_vec(),
                })
            }
            (KIND_USER_PUSH, _) => {
                let l = r.lens::<5>()?;
                let encoding = r.byte()?;
                Ok(BinaryFrame::UserBroadcastPush {
                    join_ref: non_empty(r.string(l[0])?),
                    r#ref: non_empty(r.string(l[1])?),
                    topic: r.string(l[2])?,
                    event: r.string(l[3])?,
                    metadata: r.string(l[4])?,
                    payload: user_payload(encoding, r.rest())?.into(),
                })
            }
            (KIND_USER_BROADCAST, _) => Ok(UserBroadcastRef::decode_body(r)?.into()),
            _ => Err(DecodeError::Binary("unknown kind")),
        }
    }
}

fn lens(out: &mut Vec<u8>, fields: &[(&'static str, &str)]) -> Result<(), &'static str> {
    for (name, value) in fields {
        let len = u8::try_from(value.len()).map_err(|_| *name)?;
        out.push(len);
    }
    Ok(())
}

fn non_empty(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

fn user_payload(encoding: u8, bytes: &[u8]) -> Result<UserPayloadRef<'_>, DecodeError> {
    match encoding {
        ENCODING_JSON => std::str::from_utf8(bytes)
            .map(UserPayloadRef::Json)
            .map_err(|_| DecodeError::Binary("JSON payload is not UTF-8")),
        ENCODING_BINARY => Ok(UserPayloadRef::Binary(bytes)),
        _ => Err(DecodeError::Binary("unknown payload encoding")),
    }
}

/// A kind-4 frame (server → client user broadcast) borrowed from its bytes: what a client
/// receives most, read without copying a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UserBroadcastRef<'a> {
    pub topic: &'a str,
    pub event: &'a str,
    /// JSON text, possibly empty.
    pub metadata: &'a str,
    pub payload: UserPayloadRef<'a>,
}

/// A borrowed [`BroadcastPayload`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserPayloadRef<'a> {
    Json(&'a str),
    Binary(&'a [u8]),
}

impl<'a> UserBroadcastRef<'a> {
    /// `None` when the frame is not kind 4; an error when it is but does not decode.
    ///
    /// ```
    /// use supa_realtime_protocol::{UserBroadcastRef, UserPayloadRef};
    /// let bytes = b"\x04\x0e\x06\x00\x01realtime:room1cursor{\"x\":1}";
    /// let b = UserBroadcastRef::decode(bytes).unwrap().unwrap();
    /// assert_eq!((b.topic, b.event), ("realtime:room1", "cursor"));
    /// assert_eq!(b.payload, UserPayloadRef::Json(r#"{"x":1}"#));
    /// ```
    pub fn decode(bytes: &'a [u8]) -> Option<Result<UserBroadcastRef<'a>, DecodeError>> {
        match bytes.split_first() {
            Some((&KIND_USER_BROADCAST, rest)) => Some(Self::decode_body(Reader { buf: rest })),
            _ => None,
        }
    }

    fn decode_body(mut r: Reader<'a>) -> Result<UserBroadcastRef<'a>, DecodeError> {
        let l = r.lens::<3>()?;
        let encoding = r.byte()?;
        Ok(UserBroadcastRef {
            topic: r.str(l[0])?,
            event: r.str(l[1])?,
            metadata: r.str(l[2])?,
            payload: user_payload(encoding, r.rest())?,
        })
    }
}

impl From<UserPayloadRef<'_>> for BroadcastPayload {
    fn from(p: UserPayloadRef<'_>) -> Self {
        match p {
            UserPayloadRef::Json(s) => BroadcastPayload::Json(s.to_owned()),
            UserPayloadRef::Binary(b) => BroadcastPayload::Binary(b.to_vec()),
        }
    }
}

impl From<UserBroadcastRef<'_>> for BinaryFrame {
    fn from(b: UserBroadcastRef<'_>) -> Self {
        BinaryFrame::UserBroadcast {
            topic: b.topic.to_owned(),
            event: b.event.to_owned(),
            metadata: b.metadata.to_owned(),
            payload: b.payload.into(),
        }
    }
}

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn byte(&mut self) -> Result<u8, DecodeError> {
        let (&b, rest) = self
            .buf
            .split_first()
            .ok_or(DecodeError::Binary("truncated header"))?;
        self.buf = rest;
        Ok(b)
    }

    fn lens<const N: usize>(&mut self) -> Result<[usize; N], DecodeError> {
        let mut out = [0usize; N];
        for slot in &mut out {
            *slot = self.byte()? as usize;
        }
        Ok(out)
    }

    fn str(&mut self, len: usize) -> Result<&'a str, DecodeError> {
        if self.buf.len() < len {
            return Err(DecodeError::Binary("truncated field"));
        }
        let (head, rest) = self.buf.split_at(len);
        self.buf = rest;
        std::str::from_utf8(head).map_err(|_| DecodeError::Binary("header field is not UTF-8"))
    }

    fn string(&mut self, len: usize) -> Result<String, DecodeError> {
        self.str(len).map(str::to_owned)
    }

    fn rest(&self) -> &'a [u8] {
        self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        s.split_whitespace()
            .map(|b| u8::from_str_radix(b, 16).unwrap())
            .collect()
    }

    /// The worked example of protocol.md §2.3: realtime-js sending `cursor` {x:1}.
    #[test]
    fn kind3_golden_vector() {
        let mut expected = hex("03 01 01 0e 06 00 01");
        expected.extend_from_slice(b"3");
        expected.extend_from_slice(b"7");
        expected.extend_from_slice(b"realtime:room1");
        expected.extend_from_slice(b"cursor");
        expected.extend_from_slice(br#"{"x":1}"#);
        assert_eq!(expected.len(), 36);
        let frame = BinaryFrame::UserBroadcastPush {
            join_ref: Some("3".into()),
            r#ref: Some("7".into()),
            topic: "realtime:room1".into(),
            event: "cursor".into(),
            metadata: String::new(),
            payload: BroadcastPayload::Json(r#"{"x":1}"#.into()),
        };
        assert_eq!(frame.encode().unwrap(), expected);
        assert_eq!(BinaryFrame::decode_from_client(&expected).unwrap(), frame);
    }

    /// The same message as another subscriber receives it (kind 4), 32 bytes.
    #[test]
    fn kind4_golden_vector() {
        let mut expected = hex("04 0e 06 00 01");
        expected.extend_from_slice(b"realtime:room1cursor{\"x\":1}");
        assert_eq!(expected.len(), 32);
        let frame = BinaryFrame::UserBroadcast {
            topic: "realtime:room1".into(),
            event: "cursor".into(),
            metadata: String::new(),
            payload: BroadcastPayload::Json(r#"{"x":1}"#.into()),
        };
        assert_eq!(frame.encode().unwrap(), expected);
        assert_eq!(BinaryFrame::decode_from_server(&expected).unwrap(), frame);
    }

    #[test]
    fn kind4_binary_with_metadata() {
        let frame = BinaryFrame::UserBroadcast {
            topic: "realtime:t".into(),
            event: "e".into(),
            metadata: r#"{"id":"abc"}"#.into(),
            payload: BroadcastPayload::Binary(vec![0, 1, 2, 255]),
        };
        let bytes = frame.encode().unwrap();
        assert_eq!(bytes[4], ENCODING_BINARY);
        assert_eq!(BinaryFrame::decode_from_server(&bytes).unwrap(), frame);
    }

    #[test]
    fn kinds_0_1_2_round_trip() {
        let frames = [
            (
                BinaryFrame::Push {
                    join_ref: Some("1".into()),
                    r#ref: Some("2".into()),
                    topic: "realtime:t".into(),
                    event: "broadcast".into(),
                    payload: vec![1, 2, 3],
                },
                Direction::ClientToServer,
            ),
            (
                BinaryFrame::Push {
                    join_ref: Some("1".into()),
                    r#ref: None,
                    topic: "realtime:t".into(),
                    event: "e".into(),
                    payload: vec![9],
                },
                Direction::ServerToClient,
            ),
            (
                BinaryFrame::Reply {
                    join_ref: Some("1".into()),
                    r#ref: Some("5".into()),
                    topic: "realtime:t".into(),
                    status: "ok".into(),
                    payload: b"{}".to_vec(),
                },
                Direction::ServerToClient,
            ),
            (
                BinaryFrame::Broadcast {
                    topic: "realtime:t".into(),
                    event: "e".into(),
                    payload: vec![],
                },
                Direction::ServerToClient,
            ),
        ];
        for (frame, dir) in frames {
            let bytes = frame.encode().unwrap();
            assert_eq!(BinaryFrame::decode(&bytes, dir).unwrap(), frame);
        }
    }

    #[test]
    fn header_fields_limited_to_255_bytes() {
        let frame = BinaryFrame::UserBroadcast {
            topic: "t".repeat(256),
            event: "e".into(),
            metadata: String::new(),
            payload: BroadcastPayload::Json("{}".into()),
        };
        assert_eq!(frame.encode(), Err("topic"));
        let ok = BinaryFrame::UserBroadcast {
            topic: "é".repeat(127),
            event: "e".into(),
            metadata: String::new(),
            payload: BroadcastPayload::Json("{}".into()),
        };
        assert!(ok.encode().is_ok());
    }

    #[test]
    fn truncated_and_garbage_frames_are_errors() {
        let good = BinaryFrame::UserBroadcast {
            topic: "realtime:room1".into(),
            event: "cursor".into(),
            metadata: String::new(),
            payload: BroadcastPayload::Json("{}".into()),
        }
        .encode()
        .unwrap();
        for cut in 0..20 {
            assert!(
                BinaryFrame::decode_from_server(&good[..cut]).is_err(),
                "cut {cut}"
            );
        }
        assert!(BinaryFrame::decode_from_server(&[9, 0, 0]).is_err());
        assert!(BinaryFrame::decode_from_server(&[4, 1, 1, 0, 7, b'a', b'b']).is_err());
        assert!(BinaryFrame::decode_from_server(&[4, 1, 1, 0, 1, 0xff, b'b', 0xff]).is_err());
    }
}
