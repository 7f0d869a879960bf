//! The HTTP side: routes, and the WebSocket upgrade with its refusals (protocol reference
//! §1.2–1.4), answered before any upgrade with an HTTP status and `{"error": ...}`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::ws::{rejection::WebSocketUpgradeRejection, WebSocketUpgrade};
use axum::extract::{DefaultBodyLimit, Extension, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use supa_realtime_protocol::Vsn;

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
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let Some(vsn) = Vsn::from_query(query.get("vsn").map(String::as_str)) else {
        return StatusCode::FORBIDDEN.into_response();
    };
    // The x-api-key header wins over the apikey query parameter (browsers can only use the latter).
    let token = header(&headers, "x-api-key")
        .or_else(|| header(&headers, "apikey"))
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
    let upgrade = match upgrade {
        Ok(upgrade) => upgrade,
        Err(rejection) => return error(rejection.status(), rejection.body_text()),
    };
    let max = shared.config.limits.max_frame_bytes;
    upgrade
        .max_message_size(max)
        .max_frame_size(max)
        .on_upgrade(move |ws| {
            crate::socket::run(ws, vsn, token.trim().to_owned(), verified, shared, ticket)
        })
}

pub(crate) fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
}
