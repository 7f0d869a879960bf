//! [`RealtimeError`]: the core's [`Error`] as a uniffi error enum (an exception class per
//! language), keeping the server's reason text unchanged.

use std::fmt;

use crate::error::{Error, ErrorKind};

/// Everything a binding call can fail with. `ChannelError.reason` is the server's text
/// (`Unauthorized: You do not have permissions ...`); `recoverable` says whether the client
/// keeps retrying by itself.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Error)]
pub enum RealtimeError {
    /// A caller-supplied value is unusable (bad URL, malformed JSON, ...).
    InvalidArgument { reason: String },
    /// The operation needs a connected socket or a joined channel.
    NotConnected,
    /// No reply arrived in time.
    Timeout,
    /// The server refused, with its reason.
    ChannelError { reason: String, recoverable: bool },
    /// A blocking call was made on the dispatcher thread.
    WouldDeadlock,
    /// The client was shut down (or released).
    Shutdown,
    /// An HTTP request got a non-success status.
    Http { status: u16, body: String },
    /// TLS configuration or handshake problem.
    Tls { reason: String },
    /// Transport problem (DNS, TCP, WebSocket); `kind` says which, for typed errors.
    Io { reason: String, kind: IoCause },
    /// A foreign callback (listener, token provider) threw.
    Callback { reason: String },
}

impl From<Error> for RealtimeError {
    fn from(e: Error) -> Self {
        let recoverable = e.kind() == ErrorKind::Recoverable;
        match e {
            Error::InvalidArgument(reason) => RealtimeError::InvalidArgument { reason },
            Error::NotConnected => RealtimeError::NotConnected,
            Error::Timeout => RealtimeError::Timeout,
            Error::ChannelError(reason) => RealtimeError::ChannelError {
                reason,
                recoverable,
            },
            Error::WouldDeadlock => RealtimeError::WouldDeadlock,
            Error::Shutdown => RealtimeError::Shutdown,
            Error::Http { status, body } => RealtimeError::Http { status, body },
            Error::Tls(reason) => RealtimeError::Tls { reason },
            Error::Io(reason) => RealtimeError::Io {
                kind: crate::transport::io_cause(&reason).into(),
                reason,
            },
        }
    }
}

/// What kind of transport problem an [`RealtimeError::Io`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum IoCause {
    /// The server's name did not resolve (DNS, /etc/hosts).
    HostNotFound,
    /// Nothing listens at the address (is the server running?).
    ConnectionRefused,
    /// Anything else: unreachable, reset, a connect timeout, a WebSocket protocol error.
    Other,
}

impl From<crate::transport::IoCause> for IoCause {
    fn from(c: crate::transport::IoCause) -> Self {
        match c {
            crate::transport::IoCause::HostNotFound => IoCause::HostNotFound,
            crate::transport::IoCause::ConnectionRefused => IoCause::ConnectionRefused,
            crate::transport::IoCause::Other => IoCause::Other,
        }
    }
}

impl From<uniffi::UnexpectedUniFFICallbackError> for RealtimeError {
    fn from(e: uniffi::UnexpectedUniFFICallbackError) -> Self {
        RealtimeError::Callback { reason: e.reason }
    }
}

impl fmt::Display for RealtimeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RealtimeError::InvalidArgument { reason } => write!(f, "invalid argument: {reason}"),
            RealtimeError::NotConnected => f.write_str("not connected"),
            RealtimeError::Timeout => f.write_str("timed out"),
            RealtimeError::ChannelError { reason, .. } => write!(f, "channel error: {reason}"),
            RealtimeError::WouldDeadlock => {
                f.write_str("blocking call on the dispatcher thread would deadlock")
            }
            RealtimeError::Shutdown => f.write_str("client shut down"),
            RealtimeError::Http { status, body } => write!(f, "HTTP {status}: {body}"),
            RealtimeError::Tls { reason } => write!(f, "TLS error: {reason}"),
            RealtimeError::Io { reason, .. } => write!(f, "I/O error: {reason}"),
            RealtimeError::Callback { reason } => write!(f, "callback failed: {reason}"),
        }
    }
}

impl std::error::Error for RealtimeError {}

/// Parses a JSON argument, naming it in the error.
pub(crate) fn parse_json(what: &str, json: &str) -> Result<serde_json::Value, RealtimeError> {
    serde_json::from_str(json).map_err(|e| RealtimeError::InvalidArgument {
        reason: format!("{what} is not valid JSON: {e}"),
    })
}
