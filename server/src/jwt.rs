//! HS256/384/512 JSON Web Tokens: signing the local keys and verifying every token the way
//! Realtime does (signature, then the mandatory `role` and `exp` claims, then expiry), with
//! the exact error texts clients see (protocol reference §1.4 and §4.3).

use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::{Sha256, Sha384, Sha512};

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum JwtError {
    /// No token at all (connect only).
    Missing,
    /// Not three base64url JSON parts.
    Malformed,
    /// The signature does not match the secret.
    Signature,
    /// An algorithm we have no key for (RS256 and friends need a JWKS).
    Signer,
    /// `role` or `exp` missing.
    MissingClaims,
    /// `exp` is in the past by this many whole seconds.
    Expired(i64),
}

impl JwtError {
    /// The text without a code, as in HTTP refusals (§1.4) and channel shutdowns (§5).
    /// Expiry reads `Token has expired` at connect and `... N seconds ago` elsewhere.
    pub(crate) fn message(&self, connect: bool) -> String {
        match self {
            JwtError::Missing => "API key is missing".into(),
            JwtError::Malformed => "The token provided is not a valid JWT".into(),
            JwtError::Signature => "Failed to validate JWT signature".into(),
            JwtError::Signer => {
                "Failed to generate JWT signer, check your JWT secret or JWKS configuration".into()
            }
            JwtError::MissingClaims => "Fields `role` and `exp` are required in JWT".into(),
            JwtError::Expired(_) if connect => "Token has expired".into(),
            JwtError::Expired(n) => format!("Token has expired {n} seconds ago"),
        }
    }

    /// The `Code: message` join error reason (§4.3).
    pub(crate) fn join_reason(&self) -> String {
        let code = match self {
            JwtError::Malformed | JwtError::Missing => "MalformedJWT",
            JwtError::Signature => "JwtSignatureError",
            JwtError::Signer => "JwtSignerError",
            JwtError::MissingClaims | JwtError::Expired(_) => "InvalidJWTToken",
        };
        format!("{code}: {}", self.message(false))
    }
}

/// Signs and verifies tokens with one shared secret.
#[derive(Clone)]
pub(crate) struct Jwt {
    secret: Vec<u8>,
}

/// A verified token: its claims and its expiry (seconds since the epoch).
#[derive(Debug, Clone)]
pub(crate) struct Verified {
    pub claims: Value,
    pub exp: f64,
}

impl Jwt {
    pub(crate) fn new(secret: &str) -> Jwt {
        Jwt {
            secret: secret.as_bytes().to_vec(),
        }
    }

    /// An HS256 token over `claims`.
    pub(crate) fn sign(&self, claims: &Value) -> String {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
        let body = URL_SAFE_NO_PAD.encode(claims.to_string());
        let input = format!("{header}.{body}");
        let sig = self
            .mac("HS256", input.as_bytes())
            .expect("HS256 is supported");
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
    }

    fn mac(&self, alg: &str, input: &[u8]) -> Option<Vec<u8>> {
        fn run<M: Mac + hmac::digest::KeyInit>(key: &[u8], input: &[u8]) -> Vec<u8> {
            let mut mac = <M as Mac>::new_from_slice(key).expect("HMAC takes any key length");
            mac.update(input);
            mac.finalize().into_bytes().to_vec()
        }
        match alg {
            "HS256" => Some(run::<Hmac<Sha256>>(&self.secret, input)),
            "HS384" => Some(run::<Hmac<Sha384>>(&self.secret, input)),
            "HS512" => Some(run::<Hmac<Sha512>>(&self.secret, input)),
            _ => None,
        }
    }

    /// Verifies a token (whitespace around it is ignored, as upstream does).
    pub(crate) fn verify(&self, token: &str) -> Result<Verified, JwtError> {
        let token = token.trim();
        if token.is_empty() {
            return Err(JwtError::Malformed);
        }
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(JwtError::Malformed);
        };
        let header = decode_json(h).ok_or(JwtError::Malformed)?;
        let claims = decode_json(p).ok_or(JwtError::Malformed)?;
        let sig = URL_SAFE_NO_PAD
            .decode(s.trim_end_matches('='))
            .map_err(|_| JwtError::Malformed)?;
        if !claims.is_object() {
            return Err(JwtError::Malformed);
        }
        let alg = header
            .get("alg")
            .and_then(Value::as_str)
            .ok_or(JwtError::Malformed)?;
        let expected = self
            .mac(alg, format!("{h}.{p}").as_bytes())
            .ok_or(JwtError::Signer)?;
        if !constant_time_eq(&expected, &sig) {
            return Err(JwtError::Signature);
        }
        let exp = claims.get("exp").and_then(Value::as_f64);
        let (Some(exp), Some(_)) = (exp, claims.get("role")) else {
            return Err(JwtError::MissingClaims);
        };
        let now = now_secs();
        if exp <= now {
            return Err(JwtError::Expired((now - exp).floor() as i64));
        }
        Ok(Verified { claims, exp })
    }
}

fn decode_json(part: &str) -> Option<Value> {
    let bytes = URL_SAFE_NO_PAD.decode(part.trim_end_matches('=')).ok()?;
    serde_json::from_slice(&bytes).ok()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Seconds since the Unix epoch, fractional.
pub(crate) fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn local_dev_anon_key_matches_supabase() {
        // The well-known `supabase start` anon key is this exact token.
        let jwt = Jwt::new(crate::config::DEFAULT_JWT_SECRET);
        let key = jwt.sign(&json!({"iss":"supabase-demo","role":"anon","exp":1983812996}));
        assert_eq!(
            key,
            "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJzdXBhYmFzZS1kZW1vIiwicm9sZSI6ImFub24iLCJleHAiOjE5ODM4MTI5OTZ9.CRXP1A7WOeoJeXxjNni43kdQwgnWNReilDMblYTn_I0"
        );
        assert!(jwt.verify(&key).is_ok());
    }

    #[test]
    fn refusals_have_upstream_texts() {
        let jwt = Jwt::new("secret");
        let other = Jwt::new("other");
        let exp = now_secs() as i64 + 60;
        assert_eq!(jwt.verify("nope").unwrap_err(), JwtError::Malformed);
        let foreign = other.sign(&json!({"role":"anon","exp":exp}));
        assert_eq!(jwt.verify(&foreign).unwrap_err(), JwtError::Signature);
        let no_role = jwt.sign(&json!({"exp":exp}));
        assert_eq!(
            jwt.verify(&no_role).unwrap_err().join_reason(),
            "InvalidJWTToken: Fields `role` and `exp` are required in JWT"
        );
        let expired = jwt.sign(&json!({"role":"anon","exp":now_secs() as i64 - 10}));
        let err = jwt.verify(&expired).unwrap_err();
        assert!(matches!(err, JwtError::Expired(n) if (10..=11).contains(&n)));
        assert_eq!(err.message(true), "Token has expired");
    }
}
