//! What a channel's handles share: its identity, its setup (written by the handles) and what
//! the engine publishes about it (written by the engine).

use std::sync::Arc;

use parking_lot::Mutex;

use crate::engine::snapshot::ChannelSnapshot;
use crate::event::{ChannelId, ChannelState};
use crate::options::ChannelOptions;
use crate::postgres::PostgresChangesFilter;

/// Registered before `subscribe()`, frozen by it.
#[derive(Default)]
pub(crate) struct Setup {
    pub bindings: Vec<PostgresChangesFilter>,
    pub presence_listener: bool,
    pub subscribed: bool,
}

pub(crate) struct ChannelShared {
    pub(crate) id: ChannelId,
    pub(crate) topic: Arc<str>,
    pub(crate) options: ChannelOptions,
    pub(crate) setup: Mutex<Setup>,
    pub(crate) snapshot: Arc<ChannelSnapshot>,
}

impl ChannelShared {
    pub(crate) fn new(id: ChannelId, topic: String, options: ChannelOptions) -> Self {
        ChannelShared {
            id,
            topic: topic.into(),
            options,
            setup: Mutex::new(Setup::default()),
            snapshot: Arc::default(),
        }
    }

    /// The engine's word once it took the subscription; before that, `Joining` when
    /// `subscribe()` was called (the command is on its way) and `Closed` when not.
    pub(crate) fn state(&self) -> ChannelState {
        match self.snapshot.state() {
            Some(state) => state,
            None if self.setup.lock().subscribed => ChannelState::Joining,
            None => ChannelState::Closed,
        }
    }

    /// Subscribed once and closed since: `client.channel()` then makes a fresh channel.
    pub(crate) fn is_finished(&self) -> bool {
        self.setup.lock().subscribed && self.state() == ChannelState::Closed
    }
}
