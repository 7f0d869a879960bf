//! The client against a server that breaks the limits it is configured with. The peer here is
//! a hand-written WebSocket server: the real server never sends a message larger than the
//! client accepts, so this fault cannot be produced with it.

mod support;

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use supa_realtime::{ClientOptions, ConnectionState, Event, RealtimeClient};
use support::Recorder;
use tokio_tungstenite::tungstenite::Message;

/// A message over `max_message_size` is an `Event::Error` naming the limit; the connection is
/// dropped and the client connects again, as after any protocol error. Memory stays bounded:
/// tungstenite stops reading the message at the limit.
#[test]
fn a_message_over_max_message_size_drops_the_connection_and_reconnects() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    let (accepted_tx, accepted) = std::sync::mpsc::channel();
    let peer = std::thread::spawn(move || {
        rt.block_on(async move {
            // First connection: one 256 KiB text message. Second: only accepted (the client came
            // back), then left open until the client goes away.
            for n in 0..2 {
                let (tcp, _) = listener.accept().await.unwrap();
                let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
                accepted_tx.send(n).unwrap();
                if n == 0 {
                    let big = format!(
                        r#"[null,null,"phoenix","x",{{"p":"{}"}}]"#,
                        "x".repeat(256 << 10)
                    );
                    // The client may drop the link before the whole message is written.
                    let _ = ws.send(Message::text(big)).await;
                }
                while let Some(Ok(_)) = ws.next().await {}
            }
        })
    });

    let opts = ClientOptions::new(format!("ws://127.0.0.1:{port}/realtime/v1"), "key")
        .max_message_size(64 << 10)
        .reconnect_delays(vec![Duration::from_millis(50)]);
    let client = RealtimeClient::new(opts).unwrap();
    let r = Recorder::new();
    client.on_event(r.sink());
    client.connect();
    let (i, e) = r.wait_from(0, "the size error", |e| matches!(e, Event::Error { .. }));
    let Event::Error { message } = e else {
        unreachable!()
    };
    assert!(
        message.starts_with("the server broke the protocol:")
            && message.ends_with("(max_message_size 65536)"),
        "{message}"
    );
    r.wait_from(i, "connected again", |e| {
        matches!(
            e,
            Event::ConnectionStatus {
                state: ConnectionState::Connected,
                ..
            }
        )
    });
    assert_eq!(accepted.recv_timeout(support::DEADLINE).unwrap(), 0);
    assert_eq!(accepted.recv_timeout(support::DEADLINE).unwrap(), 1);
    drop(client);
    peer.join().unwrap();
}
