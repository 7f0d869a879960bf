//! The HTTP side: routes, and the WebSocket upgrade with its refusals (protocol reference
//! §1.2–1.4), answered before any upgrade with an HTTP status and `{"error": ...}`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Extension, Query, Request, State};
use axum::http::{header as names, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use serde_json::json;
use supa_realtime_protocol::Vsn;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::WebSocketStream;

use crate::jwt::JwtError;
use crate::listener::Ticket;
use crate::server::Shared;

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/realtime/v1/websocket", get(websocket))
        .route("/socket/websocket", get(websocket))
        .route("/realtime/v1/api/broadcast", post(crate::rest::batch))
        .route("/api/broadcast", post(crate::rest::batch))
        .route(
            "/realtime/v1/api/broadcast/{topic}/events/{event}",
            post(crate::rest::single),
        )
        .route(
            "/api/broadcast/{topic}/events/{event}",
            post(crate::rest::single),
        )
        .route("/", get(|| async { "supa-realtime-server\n" }))
        // Bodies up to a frame's size; the payload limit is then checked with a clear 422.
        .layer(DefaultBodyLimit::max(shared.config.limits.max_frame_bytes))
        .with_state(shared)
}

fn error(status: StatusCode, message: String) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

async fn websocket(
    State(shared): State<Arc<Shared>>,
    Query(query): Query<HashMap<String, String>>,
    Extension(ticket): Extension<Ticket>,
    mut request: Request,
) -> Response {
    let headers = request.headers();
    let Some(vsn) = Vsn::from_query(query.get("vsn").map(String::as_str)) else {
        return StatusCode::FORBIDDEN.into_response();
    };
    // The x-api-key header wins over the apikey query parameter (browsers can only use the latter).
    let token = header(headers, "x-api-key")
        .or_else(|| header(headers, "apikey"))
        .or_else(|| query.get("apikey").cloned());
    let verified = match token {
        None => Err(JwtError::Missing),
        Some(token) => shared.jwt.verify(&token).map(|v| (token, v)),
    };
    let (token, verified) = match verified {
        Ok(ok) => ok,
        Err(e) => {
            // Upstream slows down clients that retry with a bad key.
            tokio::time::sleep(shared.config.connect_error_delay).await;
            return error(StatusCode::UNAUTHORIZED, e.message(true));
        }
    };
    let accept = match accept_key(headers) {
        Ok(accept) => accept,
        Err(refusal) => return error(StatusCode::BAD_REQUEST, refusal.into()),
    };
    let Some(on_upgrade) = request.extensions_mut().remove::<OnUpgrade>() else {
        return error(
            StatusCode::UPGRADE_REQUIRED,
            "this connection cannot be upgraded to a WebSocket".into(),
        );
    };
    let max = shared.config.limits.max_frame_bytes;
    let upgrade_timeout = shared.config.request_timeout;
    tokio::spawn(async move {
        // The upgrade completes once the 101 went out; a peer that never takes it is dropped.
        let Ok(Ok(upgraded)) = tokio::time::timeout(upgrade_timeout, on_upgrade).await else {
            return;
        };
        let config = WebSocketConfig::default()
            .max_message_size(Some(max))
            .max_frame_size(Some(max));
        let ws =
            WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(config))
                .await;
        crate::socket::run(ws, vsn, token.trim().to_owned(), verified, shared, ticket).await;
    });
    let mut response = StatusCode::SWITCHING_PROTOCOLS.into_response();
    let out = response.headers_mut();
    out.insert(names::CONNECTION, HeaderValue::from_static("upgrade"));
    out.insert(names::UPGRADE, HeaderValue::from_static("websocket"));
    out.insert(names::SEC_WEBSOCKET_ACCEPT, accept);
    response
}

/// Checks the WebSocket handshake headers (RFC 6455 §4.2.1) and derives the accept key, or
/// says what is wrong (a 400).
fn accept_key(headers: &HeaderMap) -> Result<HeaderValue, &'static str> {
    let has_token = |name: names::HeaderName, token: &str| {
        headers.get_all(name).iter().any(|v| {
            v.to_str().is_ok_and(|v| {
                v.split(',')
                    .any(|part| part.trim().eq_ignore_ascii_case(token))
            })
        })
    };
    if !has_token(names::CONNECTION, "upgrade") {
        return Err("Connection header did not include 'upgrade'");
    }
    if !has_token(names::UPGRADE, "websocket") {
        return Err("`Upgrade` header did not include 'websocket'");
    }
    if headers
        .get(names::SEC_WEBSOCKET_VERSION)
        .map(HeaderValue::as_bytes)
        != Some(b"13")
    {
        return Err("`Sec-WebSocket-Version` header did not include '13'");
    }
    let Some(key) = headers.get(names::SEC_WEBSOCKET_KEY) else {
        return Err("`Sec-WebSocket-Key` header missing");
    };
    HeaderValue::from_str(&derive_accept_key(key.as_bytes()))
        .map_err(|_| "`Sec-WebSocket-Key` header is not valid")
}

pub(crate) fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
}
