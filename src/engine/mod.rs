//! The sans-IO core: channel state machines and what they publish. No sockets, no clock, no
//! dispatcher: inputs carry `now`, outputs go to an [`outbox::Outbox`].

pub(crate) mod channel;
pub(crate) mod outbox;
pub(crate) mod snapshot;

#[cfg(test)]
mod channel_tests;
