//! What every handle of one client shares: the command queue to its engine, the dispatch
//! queue, the options and what the engine publishes (connection state, counters), plus the
//! registry of live channel handles.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use parking_lot::Mutex;
use tokio::sync::{mpsc, watch};

use crate::channel::shared::ChannelShared;
use crate::command::Command;
use crate::dispatch::Dispatcher;
use crate::engine::snapshot::Counters;
use crate::error::Error;
use crate::event::ConnectionState;
use crate::options::ClientOptions;

pub(crate) struct ClientInner {
    pub(crate) cmd: mpsc::UnboundedSender<Command>,
    pub(crate) dispatcher: Arc<Dispatcher>,
    pub(crate) options: Arc<ClientOptions>,
    pub(crate) tls: Arc<rustls::ClientConfig>,
    pub(crate) api_url: String,
    /// Published by the engine.
    pub(crate) state: watch::Receiver<ConnectionState>,
    pub(crate) counters: Arc<Counters>,
    /// Live channel handles by topic (written by `RealtimeClient::channel` only).
    pub(crate) channels: Mutex<HashMap<String, Weak<ChannelShared>>>,
    pub(crate) next_channel: AtomicU64,
    /// Set by `shutdown()`: from then on every call fails with `Error::Shutdown` at once.
    pub(crate) shut_down: AtomicBool,
}

impl ClientInner {
    pub(crate) fn send(&self, cmd: Command) -> Result<(), Error> {
        self.check()?;
        self.cmd.send(cmd).map_err(|_| Error::Shutdown)
    }

    pub(crate) fn check(&self) -> Result<(), Error> {
        if self.shut_down.load(Ordering::SeqCst) {
            Err(Error::Shutdown)
        } else {
            Ok(())
        }
    }
}

impl Drop for ClientInner {
    fn drop(&mut self) {
        // May run on the dispatcher thread (a callback dropped the last handle): only signal,
        // never join.
        let _ = self.cmd.send(Command::Shutdown);
    }
}
