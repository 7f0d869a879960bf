//! supa-realtime-server: a local, single-binary Supabase Realtime server.
//!
//! It speaks the Realtime wire protocol (Phoenix Channels vsn 1.0.0 and 2.0.0, binary
//! broadcasts) on one port: the WebSocket at `/realtime/v1/websocket` (and
//! `/socket/websocket`) and the REST broadcast API at `/realtime/v1/api/broadcast`. Broadcast
//! and presence work in memory; postgres_changes, private channels and database broadcasts
//! need a PostgreSQL ([`Config::database_url`]).
//!
//! ```
//! use supa_realtime_server::{Config, Server};
//! let server = Server::start(Config::default()).unwrap();
//! assert!(server.realtime_url().starts_with("ws://127.0.0.1:"));
//! let key = server.anon_key(); // an HS256 JWT with role "anon"
//! assert_eq!(key.split('.').count(), 3);
//! server.shutdown();
//! ```

// Every unsafe block says why it is sound.
#![deny(unsafe_op_in_unsafe_fn, clippy::undocumented_unsafe_blocks)]

mod config;
mod fdlimit;
mod http;
mod hub;
mod ids;
mod jwt;
mod listener;
mod outbound;
pub mod postgres;
mod ratelimit;
mod rest;
mod server;
mod socket;
mod stored;

pub use config::{Config, Limits, DEFAULT_JWT_SECRET};
pub use fdlimit::{raise_open_file_limit, OpenFileLimit};
pub use server::{Error, Server};
