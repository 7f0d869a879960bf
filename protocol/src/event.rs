//! Event names used on the wire.

pub const JOIN: &str = "phx_join";
pub const LEAVE: &str = "phx_leave";
pub const REPLY: &str = "phx_reply";
pub const CLOSE: &str = "phx_close";
pub const ERROR: &str = "phx_error";
pub const HEARTBEAT: &str = "heartbeat";
pub const BROADCAST: &str = "broadcast";
pub const PRESENCE: &str = "presence";
pub const PRESENCE_STATE: &str = "presence_state";
pub const PRESENCE_DIFF: &str = "presence_diff";
pub const POSTGRES_CHANGES: &str = "postgres_changes";
pub const SYSTEM: &str = "system";
pub const ACCESS_TOKEN: &str = "access_token";
