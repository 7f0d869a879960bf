//! The driver: the tokio task that does a client's I/O and nothing else. It owns the socket,
//! the writer task, the timer and the token provider calls; it feeds the [`Engine`] commands,
//! frames, connect results, token answers and ticks, and carries out what the engine asks:
//! frames to write, events to queue, [`Action`]s.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use futures_util::stream::{SplitStream, StreamExt};
use futures_util::{FutureExt, SinkExt};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use crate::command::Command;
use crate::dispatch::Dispatcher;
use crate::engine::outbox::Transmit;
use crate::engine::snapshot::Counters;
use crate::engine::{Action, Engine, TokenResult};
use crate::error::Error;
use crate::options::ClientOptions;
use crate::transport::{self, WsStream};

/// A connect attempt's socket, plus the token provider's answer when it was asked.
type ConnectOutcome = (Result<WsStream, Error>, Option<TokenResult>);

/// Frames read in one go before the driver hands their events on and looks at its other
/// inputs (commands, timers) again.
const READ_BATCH: usize = 256;

enum Link {
    Idle,
    Connecting(JoinHandle<Box<ConnectOutcome>>),
    Open {
        reader: SplitStream<WsStream>,
        writer: mpsc::UnboundedSender<Message>,
    },
}

enum LinkEvent {
    Connected(Result<Box<ConnectOutcome>, tokio::task::JoinError>),
    Message(Option<Result<Message, WsError>>),
}

async fn link_event(link: &mut Link) -> LinkEvent {
    match link {
        Link::Connecting(handle) => LinkEvent::Connected(handle.await),
        Link::Open { reader, .. } => LinkEvent::Message(reader.next().await),
        Link::Idle => std::future::pending().await,
    }
}

pub(crate) struct Driver {
    engine: Engine,
    opts: Arc<ClientOptions>,
    ws_url: String,
    tls: Arc<rustls::ClientConfig>,
    dispatcher: Arc<Dispatcher>,
    counters: Arc<Counters>,
    cmd_rx: mpsc::UnboundedReceiver<Command>,
    token_tx: mpsc::UnboundedSender<TokenResult>,
    token_rx: mpsc::UnboundedReceiver<TokenResult>,
    /// A token provider call is running (on a blocking thread): at most one at a time, so a
    /// provider that hangs holds one thread, not one per reconnect attempt.
    provider_busy: Arc<AtomicBool>,
    link: Link,
}

impl Driver {
    pub(crate) fn new(
        engine: Engine,
        opts: Arc<ClientOptions>,
        ws_url: String,
        tls: Arc<rustls::ClientConfig>,
        dispatcher: Arc<Dispatcher>,
        counters: Arc<Counters>,
        cmd_rx: mpsc::UnboundedReceiver<Command>,
    ) -> Driver {
        let (token_tx, token_rx) = mpsc::unbounded_channel();
        Driver {
            engine,
            opts,
            ws_url,
            tls,
            dispatcher,
            counters,
            cmd_rx,
            token_tx,
            token_rx,
            provider_busy: Arc::new(AtomicBool::new(false)),
            link: Link::Idle,
        }
    }

    pub(crate) async fn run(mut self) {
        // One timer for the task's lifetime, moved only when the next deadline changes: a
        // fresh `sleep_until` per turn re-registers the timer (and wakes the time driver).
        let timer = tokio::time::sleep_until(far_future());
        tokio::pin!(timer);
        let mut armed: Option<Instant> = None;
        loop {
            if self.flush() {
                // What the driver owns may hold the last reference to user objects (a C token
                // provider's userdata, listeners): their destructors are user code, which never
                // runs on the runtime thread.
                drop(tokio::task::spawn_blocking(move || drop(self)));
                return;
            }
            let deadline = self.engine.next_deadline();
            if deadline != armed {
                let at = deadline.map(tokio::time::Instant::from_std);
                timer.as_mut().reset(at.unwrap_or_else(far_future));
                armed = deadline;
            }
            tokio::select! {
                cmd = self.cmd_rx.recv() => {
                    let cmd = cmd.unwrap_or(Command::Shutdown);
                    cmd.apply(&mut self.engine, Instant::now());
                }
                ev = link_event(&mut self.link) => match ev {
                    LinkEvent::Connected(res) => self.on_connected(res),
                    LinkEvent::Message(msg) => self.on_message(msg),
                },
                Some(token) = self.token_rx.recv() => self.engine.on_token(token, Instant::now()),
                _ = &mut timer, if armed.is_some() => {
                    armed = None;
                    self.engine.on_tick(Instant::now());
                }
            }
        }
    }

    fn on_connected(&mut self, res: Result<Box<ConnectOutcome>, tokio::task::JoinError>) {
        let (ws, token) = match res {
            Ok(r) => *r,
            Err(e) => (Err(Error::Io(format!("connect task failed: {e}"))), None),
        };
        let result = ws.map(|ws| {
            let (mut sink, reader) = ws.split();
            let (tx, mut rx) = mpsc::unbounded_channel::<Message>();
            // Writes go through their own task so that a stalled socket never blocks the
            // engine's timing.
            tokio::spawn(async move {
                while let Some(msg) = rx.recv().await {
                    let closing = matches!(msg, Message::Close(_));
                    if sink.send(msg).await.is_err() || closing {
                        break;
                    }
                }
                let _ = sink.close().await;
            });
            self.link = Link::Open { reader, writer: tx };
        });
        if result.is_err() {
            self.link = Link::Idle;
        }
        self.engine.on_connected(result, token, Instant::now());
    }

    /// Hands a frame to the engine, then any frames already read behind it (up to
    /// [`READ_BATCH`]), so their events reach the dispatch queue in one go.
    fn on_message(&mut self, msg: Option<Result<Message, WsError>>) {
        // One reading for the batch: its frames were in hand together, and a clock read per
        // frame was a visible share of the network thread's time in a burst.
        let now = Instant::now();
        let mut next = msg;
        for taken in 1.. {
            let reason = match next {
                Some(Ok(Message::Text(text))) => {
                    self.engine.on_text(text, now);
                    None
                }
                Some(Ok(Message::Binary(bytes))) => {
                    self.engine.on_binary(bytes, now);
                    None
                }
                Some(Ok(Message::Close(frame))) => Some(match frame {
                    Some(f) => format!("closed by server ({}): {}", u16::from(f.code), f.reason),
                    None => "closed by server".to_owned(),
                }),
                Some(Ok(_)) => None, // ping/pong are handled by tungstenite
                Some(Err(e)) if is_protocol_error(&e) => {
                    let message = match e {
                        WsError::Capacity(e) => format!(
                            "the server broke the protocol: {e} (max_message_size {})",
                            self.opts.max_message_size
                        ),
                        e => format!("the server broke the protocol: {e}"),
                    };
                    self.engine.on_protocol_error(&message, now);
                    return;
                }
                Some(Err(e)) => Some(format!("connection lost: {e}")),
                None => Some("connection lost".to_owned()),
            };
            if let Some(reason) = reason {
                self.engine.on_closed(&reason, now);
                return;
            }
            let Link::Open { reader, .. } = &mut self.link else {
                return;
            };
            if taken == READ_BATCH {
                return;
            }
            match reader.next().now_or_never() {
                Some(msg) => next = msg,
                None => return,
            }
        }
    }

    /// Carries out what the engine produced; `true` once the client is shut down.
    fn flush(&mut self) -> bool {
        let out = self.engine.outbox();
        if !out.transmits.is_empty() {
            let transmits = std::mem::take(&mut out.transmits);
            if let Link::Open { writer, .. } = &self.link {
                for t in transmits {
                    let msg = match t {
                        Transmit::Text(s) => Message::text(s),
                        Transmit::Binary(b) => Message::binary(b),
                    };
                    if writer.send(msg).is_ok() {
                        self.counters.messages_out.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }
        self.dispatcher.push_all(&mut self.engine.outbox().emits);
        let mut done = false;
        for action in self.engine.take_actions() {
            match action {
                Action::Connect { fetch_token } => self.connect(fetch_token),
                Action::Close { reason, send_frame } => self.close(reason, send_frame),
                Action::FetchToken => self.fetch_token(),
                Action::Shutdown => {
                    // Behind the final statuses the engine just queued.
                    self.dispatcher.close();
                    done = true;
                }
            }
        }
        done
    }

    fn connect(&mut self, fetch_token: bool) {
        if let Link::Connecting(h) = &self.link {
            h.abort();
        }
        let url = self.ws_url.clone();
        let headers = self.opts.headers.clone();
        let tls = self.tls.clone();
        let timeout = self.opts.push_timeout;
        let max_message = self.opts.max_message_size;
        let token = fetch_token.then(|| self.ask_provider()).flatten();
        self.link = Link::Connecting(tokio::spawn(async move {
            let token = match token {
                Some(answer) => Some(answer.await),
                None => None,
            };
            Box::new((
                transport::connect_ws(&url, &headers, tls, timeout, max_message).await,
                token,
            ))
        }));
    }

    /// Starts a token provider call: user code, so it runs on a blocking-pool thread (which
    /// owns the provider's reference while it runs), bounded by `token_timeout`. `None`
    /// without a provider.
    fn ask_provider(&self) -> Option<impl std::future::Future<Output = TokenResult>> {
        let provider = self.opts.token_provider.clone()?;
        let limit = self.opts.token_timeout;
        let busy = self.provider_busy.clone();
        let call = if busy.swap(true, Ordering::AcqRel) {
            None
        } else {
            Some(tokio::task::spawn_blocking(move || {
                let answer = crate::token::call_provider(provider.as_ref());
                busy.store(false, Ordering::Release);
                answer
            }))
        };
        Some(async move {
            let Some(call) = call else {
                return Err("the token provider has not returned from its previous call".into());
            };
            match tokio::time::timeout(limit, call).await {
                Ok(Ok(answer)) => answer,
                Ok(Err(_)) => Err("the token provider panicked".into()),
                Err(_) => Err(format!(
                    "the token provider did not answer within {} ms",
                    limit.as_millis()
                )),
            }
        })
    }

    fn close(&mut self, reason: String, send_frame: bool) {
        match std::mem::replace(&mut self.link, Link::Idle) {
            Link::Connecting(h) => h.abort(),
            Link::Open { writer, .. } if send_frame => {
                let _ = writer.send(Message::Close(Some(CloseFrame {
                    code: CloseCode::Normal,
                    reason: reason.into(),
                })));
            }
            _ => {}
        }
    }

    fn fetch_token(&mut self) {
        let Some(answer) = self.ask_provider() else {
            return;
        };
        let tx = self.token_tx.clone();
        tokio::spawn(async move {
            let _ = tx.send(answer.await);
        });
    }
}

/// A read error that is the server's fault (a message over `max_message_size`, a malformed
/// frame), as opposed to the network's.
fn is_protocol_error(e: &WsError) -> bool {
    use tokio_tungstenite::tungstenite::error::ProtocolError as P;
    match e {
        WsError::Capacity(_) | WsError::Utf8(_) | WsError::AttackAttempt => true,
        // A reset without a close frame is how a dead peer or network looks.
        WsError::Protocol(P::ResetWithoutClosingHandshake) => false,
        WsError::Protocol(_) => true,
        _ => false,
    }
}

/// A deadline that never comes (the timer is disabled while nothing is due).
fn far_future() -> tokio::time::Instant {
    tokio::time::Instant::now() + std::time::Duration::from_secs(86_400 * 365)
}
