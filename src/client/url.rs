//! Endpoint URLs built as realtime-js builds them.

use crate::error::Error;
use crate::options::ClientOptions;

/// The WebSocket URL: `ws(s)://host/.../websocket?apikey=...&<params>&vsn=2.0.0`.
///
/// Accepts `http(s)://` or `ws(s)://`, with or without the `/websocket` suffix.
pub(crate) fn websocket_url(opts: &ClientOptions) -> Result<String, Error> {
    let (base, query) = split_query(opts.url.trim());
    let base = to_ws_scheme(base)?;
    let base = base.trim_end_matches('/');
    let mut url = if base.ends_with("/websocket") {
        base.to_owned()
    } else {
        format!("{base}/websocket")
    };
    let mut pairs: Vec<String> = Vec::new();
    if let Some(q) = query.filter(|q| !q.is_empty()) {
        pairs.push(q.to_owned());
    }
    pairs.push(format!("apikey={}", encode(&opts.api_key)));
    for (k, v) in &opts.params {
        pairs.push(format!("{}={}", encode(k), encode(v)));
    }
    pairs.push(format!("vsn={}", opts.vsn.as_str()));
    url.push('?');
    url.push_str(&pairs.join("&"));
    Ok(url)
}

/// realtime-js `httpEndpointURL`: `http(s)://host/.../api` from the socket URL.
pub(crate) fn http_api_url(opts: &ClientOptions) -> Result<String, Error> {
    let (base, _) = split_query(opts.url.trim());
    let ws = to_ws_scheme(base)?;
    let http = if let Some(rest) = ws.strip_prefix("wss://") {
        format!("https://{rest}")
    } else {
        format!("http://{}", &ws["ws://".len()..])
    };
    let mut s = http.trim_end_matches('/');
    for suffix in ["/socket/websocket", "/socket", "/websocket"] {
        if let Some(stripped) = s.strip_suffix(suffix) {
            s = stripped;
            break;
        }
    }
    Ok(format!("{}/api", s.trim_end_matches('/')))
}

fn split_query(url: &str) -> (&str, Option<&str>) {
    match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    }
}

fn to_ws_scheme(url: &str) -> Result<String, Error> {
    let lower = url.to_ascii_lowercase();
    let (scheme, rest) = if lower.starts_with("https://") {
        ("wss://", &url[8..])
    } else if lower.starts_with("http://") {
        ("ws://", &url[7..])
    } else if lower.starts_with("wss://") {
        ("wss://", &url[6..])
    } else if lower.starts_with("ws://") {
        ("ws://", &url[5..])
    } else {
        return Err(Error::InvalidArgument(format!(
            "URL must start with http://, https://, ws:// or wss://: {url:?}"
        )));
    };
    if rest.is_empty() || rest.starts_with('/') {
        return Err(Error::InvalidArgument(format!("URL has no host: {url:?}")));
    }
    Ok(format!("{scheme}{rest}"))
}

/// Percent-encoding as `encodeURIComponent` does.
pub(crate) fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.!~*'()".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(url: &str) -> ClientOptions {
        ClientOptions::new(url, "k.e/y")
    }

    #[test]
    fn builds_urls_like_realtime_js() {
        assert_eq!(
            websocket_url(&opts("https://abc.supabase.co/realtime/v1")).unwrap(),
            "wss://abc.supabase.co/realtime/v1/websocket?apikey=k.e%2Fy&vsn=2.0.0"
        );
        assert_eq!(
            websocket_url(
                &opts("ws://127.0.0.1:4000/realtime/v1/websocket/").param("log_level", "info")
            )
            .unwrap(),
            "ws://127.0.0.1:4000/realtime/v1/websocket?apikey=k.e%2Fy&log_level=info&vsn=2.0.0"
        );
        assert_eq!(
            http_api_url(&opts("ws://127.0.0.1:4000/realtime/v1/websocket")).unwrap(),
            "http://127.0.0.1:4000/realtime/v1/api"
        );
        assert_eq!(
            http_api_url(&opts("wss://h/socket")).unwrap(),
            "https://h/api"
        );
        assert!(websocket_url(&opts("ftp://x")).is_err());
        assert!(websocket_url(&opts("ws://")).is_err());
    }
}
