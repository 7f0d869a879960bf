//! libsupa_realtime: a native Supabase Realtime client.
//!
//! (Work in progress: see the issues. The wire codec lives in [`protocol`].)

pub use supa_realtime_protocol as protocol;
