//! The one error type of the client, with a kind that says whether retrying can help.

use std::fmt;

/// Whether an error (or a channel status) may clear up by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// Transient: the client retries on its schedule (network loss, timeouts, server restarts).
    Recoverable,
    /// Retrying the same request cannot succeed (bad token, permission denied, bad filter).
    Terminal,
}

/// Everything that can go wrong in a client call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// A caller-supplied value is unusable (bad URL, header string longer than 255 bytes, ...).
    InvalidArgument(String),
    /// The operation needs a connected socket or a joined channel.
    NotConnected,
    /// No reply arrived in time (push timeout, connect timeout).
    Timeout,
    /// The server refused: its reason text, unchanged (`Unauthorized: You do not have ...`).
    ChannelError(String),
    /// A blocking call was made on the dispatcher thread, which would wait on itself.
    WouldDeadlock,
    /// The client (or channel) was shut down or dropped.
    Shutdown,
    /// An HTTP request (`http_send`, or a refused WebSocket upgrade) got a non-success status.
    Http { status: u16, body: String },
    /// A TLS configuration or handshake problem.
    Tls(String),
    /// A transport problem (DNS, TCP, WebSocket protocol).
    Io(String),
}

impl Error {
    /// Whether retrying may help.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::NotConnected | Error::Timeout | Error::Io(_) => ErrorKind::Recoverable,
            Error::ChannelError(reason) => reason_kind(reason),
            Error::Http { status, .. } if *status >= 500 || *status == 429 => {
                ErrorKind::Recoverable
            }
            _ => ErrorKind::Terminal,
        }
    }
}

/// What a server reason text means for the client: one table decides both whether a refusal
/// is terminal and whether it is a token refusal, so the two can never disagree (a token reason
/// is always terminal).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reason {
    /// Retrying the same join cannot succeed.
    Terminal,
    /// The access token itself was refused (expired, malformed, badly signed, missing claims);
    /// terminal too.
    Token,
}

/// Server reason texts (protocol reference §4.3 join errors with their code, §5/§11 shutdown
/// messages without one), by prefix. Anything else is recoverable: capacity and availability
/// problems (`ChannelRateLimitReached`, `RealtimeRestarting`, database connection trouble).
const REASONS: &[(&str, Reason)] = &[
    ("TopicNameRequired", Reason::Terminal),
    ("Unauthorized", Reason::Terminal),
    ("PrivateOnly", Reason::Terminal),
    ("InvalidJWTToken", Reason::Token),
    ("MalformedJWT", Reason::Token),
    ("JwtSignatureError", Reason::Token),
    ("JwtSignerError", Reason::Terminal),
    (
        "UnableToReplayMessages: Replay is not allowed",
        Reason::Terminal,
    ),
    ("UnableToReplayMessages: Replay params", Reason::Terminal),
    ("RealtimeDisabledForTenant", Reason::Terminal),
    ("TenantNotFound", Reason::Terminal),
    (
        "mismatch between server and client bindings",
        Reason::Terminal,
    ),
    ("Error parsing", Reason::Terminal),
    ("Unable to subscribe to changes", Reason::Terminal),
    ("Column selection is not supported", Reason::Terminal),
    ("No subscription params provided", Reason::Terminal),
    ("Token has expired", Reason::Token),
    ("Fields `role` and `exp`", Reason::Token),
    ("The token provided is not a valid JWT", Reason::Token),
    ("Token expiration time is invalid", Reason::Token),
    ("Failed to validate JWT signature", Reason::Token),
    ("Failed to generate JWT signer", Reason::Terminal),
    ("You no longer have permission", Reason::Terminal),
];

fn classify(reason: &str) -> Option<Reason> {
    REASONS
        .iter()
        .find(|(prefix, _)| reason.starts_with(prefix))
        .map(|(_, class)| *class)
}

/// Classifies a server reason text: authorization and validation failures are terminal,
/// capacity and availability problems are recoverable.
pub(crate) fn reason_kind(reason: &str) -> ErrorKind {
    match classify(reason) {
        Some(_) => ErrorKind::Terminal,
        None => ErrorKind::Recoverable,
    }
}

/// Whether a server reason text (join refusal, or shutdown `system` message) says the access
/// token itself was refused: expired, malformed, badly signed, missing claims. Together with
/// `CHANNEL_ERROR` and [`ErrorKind::Terminal`] this is the "token rejected" terminal status:
/// the channel stopped and needs a new token and a new subscribe.
///
/// ```
/// assert!(supa_realtime::is_token_rejection("InvalidJWTToken: Token has expired 3 seconds ago"));
/// assert!(supa_realtime::is_token_rejection("Token has expired 0 seconds ago"));
/// assert!(!supa_realtime::is_token_rejection("ChannelRateLimitReached: Too many channels"));
/// ```
pub fn is_token_rejection(reason: &str) -> bool {
    classify(reason) == Some(Reason::Token)
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidArgument(m) => write!(f, "invalid argument: {m}"),
            Error::NotConnected => f.write_str("not connected"),
            Error::Timeout => f.write_str("timed out"),
            Error::ChannelError(r) => write!(f, "channel error: {r}"),
            Error::WouldDeadlock => {
                f.write_str("blocking call on the dispatcher thread would deadlock")
            }
            Error::Shutdown => f.write_str("client shut down"),
            Error::Http { status, body } => write!(f, "HTTP {status}: {body}"),
            Error::Tls(m) => write!(f, "TLS error: {m}"),
            Error::Io(m) => write!(f, "I/O error: {m}"),
        }
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_classified() {
        assert_eq!(
            reason_kind(
                "Unauthorized: You do not have permissions to read from this Channel topic: x"
            ),
            ErrorKind::Terminal
        );
        assert_eq!(
            reason_kind("ChannelRateLimitReached: Too many channels"),
            ErrorKind::Recoverable
        );
        assert_eq!(Error::Timeout.kind(), ErrorKind::Recoverable);
    }

    #[test]
    fn every_token_reason_is_terminal() {
        // The drift this table removed: an auth reason that was not terminal.
        for reason in [
            "Token expiration time is invalid",
            "InvalidJWTToken: Token expiration time is invalid",
            "Failed to validate JWT signature",
            "Token has expired 0 seconds ago",
        ] {
            assert!(is_token_rejection(reason), "{reason}");
            assert_eq!(reason_kind(reason), ErrorKind::Terminal, "{reason}");
        }
        for (prefix, class) in REASONS {
            if *class == Reason::Token {
                assert_eq!(reason_kind(prefix), ErrorKind::Terminal, "{prefix}");
            }
        }
        assert!(!is_token_rejection(
            "Unauthorized: You do not have permissions"
        ));
        assert_eq!(
            reason_kind("RealtimeRestarting: Realtime is restarting, please standby"),
            ErrorKind::Recoverable
        );
    }
}
