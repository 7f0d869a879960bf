//! Connection auth and token handling: HTTP refusals before the upgrade, join token errors,
//! access_token refresh and channel shutdown at expiry.

mod common;

use common::*;
use serde_json::{json, Value};
use supa_realtime_protocol::Vsn;
use supa_realtime_server::{Config, Server};

#[tokio::test]
async fn refusals_are_http_errors_with_upstream_texts() {
    let server = server();
    let expired = server.sign_token(&json!({"role": "anon", "exp": now() - 100}));
    let no_role = server.sign_token(&json!({"exp": now() + 100}));
    let foreign = Server::start(Config {
        jwt_secret: "another-secret-that-is-at-least-32-characters".into(),
        ..Config::default()
    })
    .unwrap()
    .anon_key();
    let cases = [
        ("vsn=2.0.0".to_owned(), 401, "API key is missing"),
        (
            format!("apikey={expired}&vsn=2.0.0"),
            401,
            "Token has expired",
        ),
        (
            format!("apikey={no_role}"),
            401,
            "Fields `role` and `exp` are required in JWT",
        ),
        (
            "apikey=not-a-jwt".to_owned(),
            401,
            "The token provided is not a valid JWT",
        ),
        (
            format!("apikey={foreign}"),
            401,
            "Failed to validate JWT signature",
        ),
    ];
    for (query, status, error) in cases {
        let (got, body) = upgrade(&server, &query, &[]).await;
        assert_eq!(got, status, "{query}");
        let body: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body, json!({ "error": error }), "{query}");
    }
    let key = server.anon_key();
    let (got, body) = upgrade(&server, &format!("apikey={key}&vsn=3.0.0"), &[]).await;
    assert_eq!((got, body.as_str()), (403, ""));
    // The x-api-key header is accepted (and wins over the query parameter).
    let (got, _) = upgrade(&server, "apikey=garbage&vsn=2.0.0", &[("x-api-key", &key)]).await;
    assert_eq!(got, 101);
}

#[tokio::test]
async fn join_token_errors_have_exact_reasons() {
    let server = server();
    let mut c = Client::connect(&server, Vsn::V2).await;
    let expired = server.sign_token(&json!({"role": "anon", "exp": now() - 100}));
    let no_exp = server.sign_token(&json!({"role": "anon"}));
    for (token, prefix) in [
        (expired.as_str(), "InvalidJWTToken: Token has expired "),
        (
            no_exp.as_str(),
            "InvalidJWTToken: Fields `role` and `exp` are required in JWT",
        ),
        (
            "garbage",
            "MalformedJWT: The token provided is not a valid JWT",
        ),
    ] {
        let (_, reply) = c
            .join(
                "realtime:room",
                json!({"config": {}, "access_token": token}),
            )
            .await;
        assert_eq!(reply.reply_status(), Some("error"));
        let reason = reply.reply_response().unwrap()["reason"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(reason.starts_with(prefix), "{reason}");
    }
    // An sb_ key is ignored: the connection token is used and the join succeeds.
    let (_, reply) = c
        .join(
            "realtime:room",
            json!({"config": {}, "access_token": "sb_publishable_x"}),
        )
        .await;
    assert_eq!(reply.reply_status(), Some("ok"));
}

#[tokio::test]
async fn refresh_keeps_channel_and_bad_refresh_closes_it() {
    let server = server();
    let mut c = Client::connect(&server, Vsn::V2).await;
    let jr = c.join_ok("realtime:room", json!({})).await;
    let fresh = server.sign_token(&json!({"role": "authenticated", "exp": now() + 3600}));
    c.push(
        Some(&jr),
        "realtime:room",
        "access_token",
        json!({"access_token": fresh}),
    )
    .await;
    // No reply to a good refresh; the channel still works.
    c.heartbeat().await;
    c.push(
        Some(&jr),
        "realtime:room",
        "access_token",
        json!({"access_token": "nope"}),
    )
    .await;
    let system = c.recv_text().await;
    assert_eq!(system.event, "system");
    assert_eq!(system.join_ref.as_deref(), Some(jr.as_str()));
    assert_eq!(
        system.payload,
        json!({"extension": "system", "status": "error",
               "message": "The token provided is not a valid JWT", "channel": "room"})
    );
    let close = c.recv_text().await;
    assert_eq!(close.event, "phx_close");
    assert_eq!(close.r#ref.as_deref(), Some(jr.as_str()));
    // The channel is gone.
    let r = c
        .push(Some(&jr), "realtime:room", "broadcast", json!({}))
        .await;
    let reply = c.recv_text().await;
    assert_eq!(reply.r#ref.as_deref(), Some(r.as_str()));
    assert_eq!(reply.reply_response().unwrap()["reason"], "unmatched topic");
}

#[tokio::test]
async fn channel_is_closed_when_its_token_expires() {
    let server = server();
    let mut c = Client::connect(&server, Vsn::V2).await;
    let short = server.sign_token(&json!({"role": "anon", "exp": now() + 2}));
    let (jr, reply) = c
        .join(
            "realtime:room",
            json!({"config": {}, "access_token": short}),
        )
        .await;
    assert_eq!(reply.reply_status(), Some("ok"));
    let system = c.recv_until(|f| f.event == "system").await;
    let message = system.payload["message"].as_str().unwrap();
    assert!(message.starts_with("Token has expired "), "{message}");
    assert_eq!(system.payload["extension"], "system");
    let close = c.recv_text().await;
    assert_eq!(
        (close.event.as_str(), close.join_ref.as_deref()),
        ("phx_close", Some(jr.as_str()))
    );
}
