//! The REST broadcast API (protocol reference §7.4): the batch endpoint (JSON text frames to
//! subscribers) and the single-message endpoint (a user broadcast: kind 4 to V2 sockets).

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};
use supa_realtime_protocol::{event, BroadcastPayload};

use crate::http::header as header_value;
use crate::hub::{Fanout, TopicKey};
use crate::jwt::Verified;
use crate::postgres::{Extension, StoredPayload};
use crate::server::Shared;

fn message(status: StatusCode, text: &str) -> Response {
    (status, Json(json!({ "message": text }))).into_response()
}

fn unprocessable(errors: Value) -> Response {
    (
        StatusCode::UNPROCESSABLE_ENTITY,
        Json(json!({ "errors": errors })),
    )
        .into_response()
}

/// `Authorization: Bearer <jwt>`, else an `apikey` header, else the `apikey` query parameter
/// (realtime-js derives the REST URL from the socket URL, query string included).
fn authenticate(
    shared: &Shared,
    headers: &HeaderMap,
    query: &HashMap<String, String>,
) -> Option<Verified> {
    let bearer = header_value(headers, header::AUTHORIZATION.as_str()).and_then(|v| {
        v.strip_prefix("Bearer ")
            .or_else(|| v.strip_prefix("bearer "))
            .map(str::to_owned)
    });
    let token = bearer
        .or_else(|| header_value(headers, "apikey"))
        .or_else(|| query.get("apikey").cloned());
    token.and_then(|t| shared.jwt.verify(&t).ok())
}

async fn may_write(shared: &Shared, claims: &Value, topic: &str) -> bool {
    match &shared.pg {
        Some(pg) => pg
            .can_write(claims, topic, Extension::Broadcast)
            .await
            .unwrap_or(false),
        None => false,
    }
}

/// `POST /api/broadcast` with `{"messages":[{topic, event, payload, private?, id?}]}` → 202.
pub(crate) async fn batch(
    State(shared): State<Arc<Shared>>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(verified) = authenticate(&shared, &headers, &query) else {
        return message(StatusCode::UNAUTHORIZED, "Unauthorized");
    };
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return message(
            StatusCode::BAD_REQUEST,
            "The request body is not valid JSON",
        );
    };
    let Some(messages) = body.get("messages").and_then(Value::as_array) else {
        return unprocessable(json!({"messages": ["can't be blank"]}));
    };
    let max = shared.config.limits.max_payload_bytes;
    let mut errors = Vec::with_capacity(messages.len());
    let mut invalid = false;
    for msg in messages {
        let mut err = Map::new();
        for field in ["topic", "event"] {
            if msg
                .get(field)
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                err.insert(field.into(), json!(["can't be blank"]));
            }
        }
        match msg.get("payload") {
            Some(Value::Object(_)) => {
                if msg["payload"].to_string().len() > max {
                    err.insert(
                        "payload".into(),
                        json!(["Payload size exceeds tenant limit"]),
                    );
                }
            }
            _ => {
                err.insert("payload".into(), json!(["can't be blank"]));
            }
        }
        invalid |= !err.is_empty();
        errors.push(Value::Object(err));
    }
    if invalid {
        return unprocessable(json!({ "messages": errors }));
    }
    for msg in messages {
        let name = msg["topic"].as_str().unwrap_or_default();
        let private = msg.get("private").and_then(Value::as_bool).unwrap_or(false);
        // Private messages the caller may not write are skipped silently (still 202).
        if private && !may_write(&shared, &verified.claims, name).await {
            continue;
        }
        let mut payload = Map::new();
        payload.insert("type".into(), json!("broadcast"));
        payload.insert("event".into(), msg["event"].clone());
        payload.insert("payload".into(), msg["payload"].clone());
        if let Some(id) = msg.get("id").filter(|id| !id.is_null()) {
            payload.insert("meta".into(), json!({ "id": id }));
        }
        let key = TopicKey {
            private,
            name: name.to_owned(),
        };
        let fanout = Fanout::json(key.wire_topic(), event::BROADCAST, Value::Object(payload));
        shared.hub.broadcast(&key, fanout, None);
    }
    StatusCode::ACCEPTED.into_response()
}

/// `POST /api/broadcast/{topic}/events/{event}[?private=true]`; the body is the payload,
/// `application/json` or `application/octet-stream` → 202.
pub(crate) async fn single(
    State(shared): State<Arc<Shared>>,
    Path((topic, user_event)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(verified) = authenticate(&shared, &headers, &query) else {
        return message(StatusCode::UNAUTHORIZED, "Unauthorized");
    };
    let content_type = header_value(&headers, header::CONTENT_TYPE.as_str()).unwrap_or_default();
    let mime = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let payload = match mime.as_str() {
        "application/json" => match std::str::from_utf8(&body)
            .ok()
            .filter(|text| serde_json::from_str::<Value>(text).is_ok())
        {
            Some(text) => BroadcastPayload::Json(text.to_owned()),
            None => return unprocessable(json!({"payload": ["is not valid JSON"]})),
        },
        "application/octet-stream" => BroadcastPayload::Binary(body.to_vec()),
        _ => {
            let error = "Unsupported Media Type: use application/json or application/octet-stream";
            return (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                Json(json!({ "error": error })),
            )
                .into_response();
        }
    };
    if body.len() > shared.config.limits.max_payload_bytes {
        return unprocessable(json!({"payload": ["Payload size exceeds tenant limit"]}));
    }
    let private = query
        .get("private")
        .is_some_and(|p| p.eq_ignore_ascii_case("true"));
    let persist = match crate::stored::persist_query(
        query.get("persist").map(String::as_str),
        query.get("persist[ttl]").map(String::as_str),
    ) {
        Ok(p) => p,
        Err(e) => return unprocessable(json!({ "persist": [e] })),
    };
    if persist.is_some() && !private {
        return unprocessable(json!({ "persist": [crate::stored::PERSIST_PUBLIC] }));
    }
    if private && !may_write(&shared, &verified.claims, &topic).await {
        return message(StatusCode::FORBIDDEN, "Unauthorized");
    }
    let key = TopicKey {
        private,
        name: topic,
    };
    if let Some(ttl) = persist {
        let payload = StoredPayload::from(payload);
        let msg = crate::stored::ToStore {
            key: &key,
            event: &user_event,
            payload,
            ttl,
            except: None,
        };
        return match crate::stored::store_and_fan_out(&shared, msg, None).await {
            Ok(_) => StatusCode::ACCEPTED.into_response(),
            Err(e) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                Json(json!({ "error": e })),
            )
                .into_response(),
        };
    }
    let fanout = Fanout::user(key.wire_topic(), user_event, String::new(), payload);
    shared.hub.broadcast(&key, fanout, None);
    StatusCode::ACCEPTED.into_response()
}
