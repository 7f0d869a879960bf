//! What the client reads from an access token: only the JWT `exp` claim, to refresh the token
//! before the server closes channels at expiry. The signature is the server's business.

use std::cell::Cell;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::options::TokenProvider;

thread_local! {
    static IN_PROVIDER: Cell<bool> = const { Cell::new(false) };
}

/// Whether this thread is running a token provider. A blocking call of the library made there
/// would wait for a connect or a rejoin that waits for this very provider: it is refused with
/// `Error::WouldDeadlock` instead.
pub(crate) fn in_provider() -> bool {
    IN_PROVIDER.with(Cell::get)
}

/// Calls a token provider (user code) on the current, non-runtime thread, marked as such; a
/// panic becomes an error.
pub(crate) fn call_provider(provider: &dyn TokenProvider) -> Result<Option<String>, String> {
    IN_PROVIDER.with(|f| f.set(true));
    let answer = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| provider.token()))
        .unwrap_or_else(|_| Err("the token provider panicked".into()));
    IN_PROVIDER.with(|f| f.set(false));
    answer
}

/// The `exp` claim (seconds since the epoch) of a JWT, or `None` when the token is not a JWT
/// with a numeric `exp` (API keys, opaque tokens).
pub(crate) fn jwt_exp(token: &str) -> Option<f64> {
    let mut parts = token.split('.');
    let (_, claims, _) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let bytes = base64url_decode(claims)?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    v.get("exp")?.as_f64()
}

/// How long until `token` expires (zero if it already has); `None` without an `exp`.
pub(crate) fn time_left(token: &str) -> Option<Duration> {
    let exp = jwt_exp(token)?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .ok()?
        .as_secs_f64();
    Some(Duration::from_secs_f64((exp - now).max(0.0)))
}

/// When to ask the provider for a fresh token: `margin` before expiry, or half-way for a
/// token that lives less than twice the margin.
pub(crate) fn refresh_after(left: Duration, margin: Duration) -> Duration {
    if left > margin * 2 {
        left - margin
    } else {
        left / 2
    }
}

/// base64url without padding (RFC 7515 §2); padding is tolerated.
fn base64url_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes().filter(|c| *c != b'=') {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' | b'+' => 62,
            b'_' | b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_exp_from_a_jwt() {
        // {"alg":"HS256","typ":"JWT"} . {"role":"anon","exp":1700000000} . sig
        let t =
            "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJyb2xlIjoiYW5vbiIsImV4cCI6MTcwMDAwMDAwMH0.c2ln";
        assert_eq!(jwt_exp(t), Some(1_700_000_000.0));
        assert_eq!(time_left(t), Some(Duration::ZERO));
        assert_eq!(jwt_exp("not-a-jwt"), None);
        assert_eq!(jwt_exp("a.b.c"), None);
        assert_eq!(jwt_exp("a.!!.c"), None);
        assert_eq!(jwt_exp("sb_publishable_x"), None);
    }

    #[test]
    fn refreshes_before_expiry() {
        let s = Duration::from_secs;
        assert_eq!(refresh_after(s(3600), s(60)), s(3540));
        assert_eq!(refresh_after(s(60), s(60)), s(30));
        assert_eq!(refresh_after(s(0), s(60)), s(0));
    }

    #[test]
    fn decodes_base64url() {
        assert_eq!(base64url_decode("aGVsbG8").unwrap(), b"hello");
        assert_eq!(base64url_decode("_-8").unwrap(), vec![0xff, 0xef]);
    }
}
