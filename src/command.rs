//! Commands: what handles ask of the engine. Handles build them and send them over the
//! client's command queue; the driver applies them to the engine in order, so a later command
//! sees the effect of an earlier one (`set_auth(t)` then `http_send` uses `t`).

use std::time::Instant;

use tokio::sync::oneshot;

use crate::engine::channel::{ChannelConfig, CloseReason, PushOp};
use crate::engine::outbox::Reply;
use crate::engine::Engine;
use crate::event::ChannelId;

pub(crate) enum Command {
    Connect,
    Disconnect,
    /// Stop for good (also sent when the last client handle is dropped).
    Shutdown,
    SetAuth(Option<String>),
    /// Heartbeat now; reconnect at once when waiting (network changed, app foregrounded).
    CheckLink,
    /// The app came back: check the link, and ask the token provider (the token may have
    /// expired while the device slept).
    Foregrounded,
    Subscribe(ChannelConfig),
    /// Leave; with `removed`, the final CLOSED says "removed" instead of "left".
    Unsubscribe {
        id: ChannelId,
        removed: bool,
        reply: Reply,
    },
    Push(ChannelId, PushOp, Reply),
    /// The access token in force, for REST calls.
    Token(oneshot::Sender<Option<String>>),
}

impl Command {
    /// Applies the command to the engine.
    pub(crate) fn apply(self, engine: &mut Engine, now: Instant) {
        match self {
            Command::Connect => engine.connect(now),
            Command::Disconnect => engine.disconnect(now),
            Command::Shutdown => engine.shutdown(now),
            Command::SetAuth(token) => engine.set_auth(token),
            Command::CheckLink => engine.check_link(now),
            Command::Foregrounded => engine.foregrounded(now),
            Command::Subscribe(config) => engine.subscribe(config, now),
            Command::Unsubscribe { id, removed, reply } => {
                let why = if removed {
                    CloseReason::Removed
                } else {
                    CloseReason::Left
                };
                engine.leave(id, why, reply, now)
            }
            Command::Push(id, op, reply) => engine.push(id, op, reply, now),
            Command::Token(reply) => {
                let _ = reply.send(engine.token());
            }
        }
    }
}
