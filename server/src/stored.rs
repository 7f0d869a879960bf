//! Stored broadcasts on the wire: the `persist` option of a send, the `replay` option of a
//! join, and the frames replay delivers (docs/server.md "Replay and persistence").

use std::time::Duration;

use serde_json::{json, Map, Value};
use supa_realtime_protocol::{event, BinaryFrame, BroadcastPayload, Frame, ReplayConfig, Vsn};

use crate::hub::{Fanout, SubId, TopicKey};
use crate::ids;
use crate::outbound::Outgoing;
use crate::postgres::{Stored, StoredPayload};
use crate::server::Shared;

/// Upstream's join error texts for replay.
pub(crate) const REPLAY_INVALID: &str = "UnableToReplayMessages: Replay params are not valid";
pub(crate) const REPLAY_FAILED: &str =
    "UnableToReplayMessages: Realtime was unable to replay messages";
pub(crate) const REPLAY_PUBLIC: &str =
    "UnableToReplayMessages: Replay is not allowed for public channels";
/// Upstream's `limit` when the join gives none.
const DEFAULT_REPLAY_LIMIT: i64 = 25;

/// `config.broadcast.replay` of a join (decoded by the protocol crate): `None` when absent,
/// else `(since_ms, limit)`. As upstream, `since` must be an integer (Unix ms) and `limit`,
/// when given, an integer.
pub(crate) fn replay_params(
    replay: Option<&ReplayConfig>,
) -> Result<Option<(i64, i64)>, &'static str> {
    let Some(replay) = replay else {
        return Ok(None);
    };
    match (replay.malformed, replay.since) {
        (false, Some(since)) => Ok(Some((since, replay.limit.unwrap_or(DEFAULT_REPLAY_LIMIT)))),
        _ => Err(REPLAY_INVALID),
    }
}

/// What a send asks to be stored: `persist: true` or `persist: {"ttl": seconds}` (realtime-js
/// puts it in a kind-3 frame's metadata or the JSON push payload, and in the REST query as
/// `persist=true` / `persist[ttl]=N`). `Ok(None)`: not stored; `Ok(Some(ttl))`: stored.
pub(crate) fn persist_option(value: Option<&Value>) -> Result<Option<Option<Duration>>, String> {
    match value {
        None | Some(Value::Null) | Some(Value::Bool(false)) => Ok(None),
        Some(Value::Bool(true)) => Ok(Some(None)),
        Some(Value::Object(o)) => ttl(o.get("ttl")).map(Some),
        Some(other) => Err(format!(
            "persist must be true or {{\"ttl\": seconds}}, not {other}"
        )),
    }
}

/// The REST form of [`persist_option`].
pub(crate) fn persist_query(
    persist: Option<&str>,
    ttl: Option<&str>,
) -> Result<Option<Option<Duration>>, String> {
    if let Some(t) = ttl {
        let secs: f64 = t
            .parse()
            .map_err(|_| format!("persist[ttl] must be a number of seconds, not {t:?}"))?;
        return persist_option(Some(&json!({ "ttl": secs })));
    }
    Ok(persist
        .is_some_and(|p| p.eq_ignore_ascii_case("true"))
        .then_some(None))
}

fn ttl(value: Option<&Value>) -> Result<Option<Duration>, String> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match v.as_f64() {
            Some(secs) if secs > 0.0 && secs.is_finite() => {
                Ok(Some(Duration::from_secs_f64(secs.min(u32::MAX as f64))))
            }
            _ => Err(format!(
                "persist ttl must be a positive number of seconds, not {v}"
            )),
        },
    }
}

impl From<BroadcastPayload> for StoredPayload {
    fn from(payload: BroadcastPayload) -> Self {
        match payload {
            BroadcastPayload::Json(text) => StoredPayload::Json(text),
            BroadcastPayload::Binary(bytes) => StoredPayload::Binary(bytes),
        }
    }
}

/// Why a send with `persist` was refused (the reply's `error`, which realtime-js hands to the
/// caller of `send`).
pub(crate) const PERSIST_PUBLIC: &str = "Messages can only be stored on private channels";

/// A broadcast about to be stored and fanned out.
pub(crate) struct ToStore<'a> {
    pub key: &'a TopicKey,
    pub event: &'a str,
    pub payload: StoredPayload,
    pub ttl: Option<Duration>,
    /// The sender's subscription when it does not want its own messages.
    pub except: Option<SubId>,
}

/// Stores the broadcast, then fans it out with `meta.id` (JSON text when `json_push` holds
/// the push payload to relay, a user broadcast otherwise). The row's echo from the
/// replication stream is skipped (see [`Shared::stored`]).
pub(crate) async fn store_and_fan_out(
    shared: &Shared,
    msg: ToStore<'_>,
    json_push: Option<Map<String, Value>>,
) -> Result<String, String> {
    if !msg.key.private {
        return Err(PERSIST_PUBLIC.into());
    }
    let Some(pg) = &shared.pg else {
        return Err(
            "storing messages needs a database (start the server with --database-url)".into(),
        );
    };
    let id = ids::uuid_v1();
    let ttl = msg.ttl.map(|t| t.min(shared.config.postgres.retention));
    shared.remember_stored(&id);
    if let Err(e) = pg
        .store(&id, &msg.key.name, true, msg.event, &msg.payload, ttl)
        .await
    {
        shared.stored.lock().remove(&id);
        return Err(format!("Realtime was unable to store the message: {e}"));
    }
    let topic = msg.key.wire_topic();
    let fanout = match json_push {
        Some(mut push) => {
            push.remove("persist");
            push.insert("meta".into(), json!({ "id": id }));
            Fanout::stored_json(topic, Value::Object(push), id.clone())
        }
        None => {
            let payload = match msg.payload {
                StoredPayload::Json(text) => BroadcastPayload::Json(text),
                StoredPayload::Binary(bytes) => BroadcastPayload::Binary(bytes),
            };
            Fanout::stored_user(topic, msg.event.to_owned(), id.clone(), payload)
        }
    };
    shared.hub.broadcast(msg.key, fanout, msg.except);
    Ok(id)
}

/// A replayed message for one socket: a `broadcast` push with `meta: {id, replayed: true}`
/// (JSON text, or kind 4 for a binary payload on V2; V1 cannot carry binary and skips it, as
/// upstream does).
pub(crate) fn replayed_frame(
    vsn: Vsn,
    join_ref: Option<&str>,
    topic: &str,
    msg: &Stored,
) -> Option<Outgoing> {
    let meta = json!({ "id": msg.id, "replayed": true });
    match &msg.payload {
        StoredPayload::Json(text) => {
            let payload: Value = serde_json::from_str(text).unwrap_or(Value::Null);
            let frame = Frame::new(
                join_ref.map(str::to_owned),
                None,
                topic.to_owned(),
                event::BROADCAST,
                json!({"type": "broadcast", "event": msg.event, "payload": payload, "meta": meta}),
            );
            Some(Outgoing::text(frame.encode_server(vsn)))
        }
        StoredPayload::Binary(bytes) => match vsn {
            Vsn::V1 => None,
            Vsn::V2 => BinaryFrame::UserBroadcast {
                topic: topic.to_owned(),
                event: msg.event.clone(),
                metadata: meta.to_string(),
                payload: BroadcastPayload::Binary(bytes.clone()),
            }
            .encode()
            .ok()
            .map(Outgoing::binary),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replay_params_follow_upstream() {
        let config = |v: Value| {
            serde_json::from_value::<supa_realtime_protocol::BroadcastConfig>(v)
                .unwrap()
                .replay
        };
        let b = |v: Value| replay_params(config(json!({ "replay": v })).as_ref());
        assert_eq!(replay_params(None), Ok(None));
        assert_eq!(
            replay_params(config(json!({"ack": true})).as_ref()),
            Ok(None)
        );
        assert_eq!(b(Value::Null), Ok(None));
        assert_eq!(b(json!({"since": 5, "limit": null})), Ok(Some((5, 25))));
        assert_eq!(b(json!({"since": 5})), Ok(Some((5, 25))));
        assert_eq!(b(json!({"since": 5, "limit": 3})), Ok(Some((5, 3))));
        assert_eq!(b(json!({"limit": 3})), Err(REPLAY_INVALID));
        assert_eq!(b(json!({"since": "5"})), Err(REPLAY_INVALID));
        assert_eq!(b(json!({"since": 1.5})), Err(REPLAY_INVALID));
        assert_eq!(b(json!({"since": 1, "limit": "x"})), Err(REPLAY_INVALID));
        assert_eq!(b(json!(true)), Err(REPLAY_INVALID));
    }

    #[test]
    fn persist_options() {
        assert_eq!(persist_option(None), Ok(None));
        assert_eq!(persist_option(Some(&json!(false))), Ok(None));
        assert_eq!(persist_option(Some(&json!(true))), Ok(Some(None)));
        assert_eq!(
            persist_option(Some(&json!({"ttl": 30}))),
            Ok(Some(Some(Duration::from_secs(30))))
        );
        assert!(persist_option(Some(&json!({"ttl": -1}))).is_err());
        assert!(persist_option(Some(&json!("yes"))).is_err());
        assert_eq!(persist_query(Some("true"), None), Ok(Some(None)));
        assert_eq!(persist_query(None, None), Ok(None));
        assert_eq!(
            persist_query(None, Some("2")),
            Ok(Some(Some(Duration::from_secs(2))))
        );
        assert!(persist_query(None, Some("soon")).is_err());
    }

    #[test]
    fn replayed_frames_carry_meta() {
        let msg = Stored {
            id: "abc".into(),
            event: "e".into(),
            payload: StoredPayload::Json("{\"n\":1}".into()),
        };
        let Some(out) = replayed_frame(Vsn::V2, Some("1"), "realtime:t", &msg) else {
            panic!("a frame")
        };
        let text = String::from_utf8(out.to_vec()).unwrap();
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            v,
            json!(["1", null, "realtime:t", "broadcast",
                {"type": "broadcast", "event": "e", "payload": {"n": 1}, "meta": {"id": "abc", "replayed": true}}])
        );
        let bin = Stored {
            payload: StoredPayload::Binary(vec![1, 2]),
            ..msg
        };
        assert!(replayed_frame(Vsn::V1, Some("1"), "realtime:t", &bin).is_none());
        assert!(replayed_frame(Vsn::V2, Some("1"), "realtime:t", &bin).is_some());
    }
}
