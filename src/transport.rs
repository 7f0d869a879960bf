//! Sockets: the WebSocket upgrade (ws:// and wss:// over rustls) and one small HTTP/1.1 POST
//! for `http_send`, sharing the TLS configuration (no OpenSSL, no HTTP client crate).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

use crate::error::Error;
use crate::options::ClientOptions;

pub(crate) type WsStream = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The rustls client configuration: webpki roots, optionally the platform's, plus a custom CA.
pub(crate) fn tls_config(opts: &ClientOptions) -> Result<Arc<rustls::ClientConfig>, Error> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if opts.native_roots {
        let native = rustls_native_certs::load_native_certs();
        for cert in native.certs {
            let _ = roots.add(cert);
        }
    }
    if let Some(pem) = &opts.custom_ca_pem {
        let mut added = 0;
        for cert in CertificateDer::pem_slice_iter(pem) {
            let cert = cert.map_err(|e| Error::Tls(format!("custom CA PEM: {e}")))?;
            roots
                .add(cert)
                .map_err(|e| Error::Tls(format!("custom CA certificate: {e}")))?;
            added += 1;
        }
        if added == 0 {
            return Err(Error::Tls("custom CA PEM holds no certificate".into()));
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Opens the WebSocket. Each stage fails with its own cause, so a user reads what went wrong:
/// the name did not resolve, nothing listens at the address, the TLS handshake failed, or the
/// server refused the upgrade (`Error::Http` with its status and the server's reason text).
pub(crate) async fn connect_ws(
    url: &str,
    headers: &[(String, String)],
    tls: Arc<rustls::ClientConfig>,
    timeout: Duration,
    max_message_size: usize,
) -> Result<WsStream, Error> {
    let mut request = url
        .into_client_request()
        .map_err(|e| Error::InvalidArgument(format!("URL: {e}")))?;
    for (k, v) in headers {
        let name: tokio_tungstenite::tungstenite::http::HeaderName = k
            .parse()
            .map_err(|_| Error::InvalidArgument(format!("header name {k:?}")))?;
        let value = HeaderValue::from_str(v)
            .map_err(|_| Error::InvalidArgument(format!("header value for {k:?}")))?;
        request.headers_mut().append(name, value);
    }
    let uri = request.uri();
    let secure = uri.scheme_str() == Some("wss");
    let host = uri
        .host()
        .ok_or_else(|| Error::InvalidArgument(format!("URL {url:?} has no host")))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = uri.port_u16().unwrap_or(if secure { 443 } else { 80 });
    // What a server can make the client buffer for one message (tungstenite holds it whole).
    let mut config = WebSocketConfig::default();
    config.max_message_size = Some(max_message_size);
    config.max_frame_size = Some(max_message_size);
    let attempt = async {
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), port))
            .await
            .map_err(|e| resolve_failed(&host, &e))?
            .collect();
        let tcp = open_tcp(&host, &addrs).await?;
        let _ = tcp.set_nodelay(true);
        tokio_tungstenite::client_async_tls_with_config(
            request,
            tcp,
            Some(config),
            Some(Connector::Rustls(tls)),
        )
        .await
        .map(|(ws, _)| ws)
        .map_err(|e| handshake_failed(&host, port, e))
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(result) => result,
        Err(_) => Err(Error::Io(format!(
            "connecting to {host}:{port} timed out after {} ms",
            timeout.as_millis()
        ))),
    }
}

/// Connects to the first address that accepts, trying each in turn (IPv6 and IPv4 of one name).
async fn open_tcp(host: &str, addrs: &[SocketAddr]) -> Result<TcpStream, Error> {
    let mut last = None;
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(tcp) => return Ok(tcp),
            Err(e) => last = Some(connect_failed(*addr, &e)),
        }
    }
    Err(last.unwrap_or_else(|| Error::Io(format!("{host} resolved to no address"))))
}

/// How an `Error::Io` of a connect failed, for the bindings' typed errors. Read from the text
/// this module writes (the core's error keeps one `Io` variant for every transport problem).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IoCause {
    /// The server's name did not resolve (DNS, /etc/hosts).
    HostNotFound,
    /// Nothing listens at the address.
    ConnectionRefused,
    /// Anything else (unreachable, reset, a connect timeout, a protocol error).
    Other,
}

const RESOLVE_FAILED: &str = "could not resolve host ";
const REFUSED_HINT: &str = " (is the server running?)";

/// The cause of a transport error's text (see [`IoCause`]).
pub(crate) fn io_cause(reason: &str) -> IoCause {
    if reason.starts_with(RESOLVE_FAILED) {
        IoCause::HostNotFound
    } else if reason.ends_with(REFUSED_HINT) {
        IoCause::ConnectionRefused
    } else {
        IoCause::Other
    }
}

/// The name of the server did not resolve (DNS, /etc/hosts).
fn resolve_failed(host: &str, e: &std::io::Error) -> Error {
    Error::Io(format!("{RESOLVE_FAILED}{host:?}: {e}"))
}

/// Nothing accepted a TCP connection at `addr` (refused, unreachable, timed out).
fn connect_failed(addr: SocketAddr, e: &std::io::Error) -> Error {
    let hint = match e.kind() {
        std::io::ErrorKind::ConnectionRefused => REFUSED_HINT,
        _ => "",
    };
    Error::Io(format!("could not connect to {addr}: {e}{hint}"))
}

/// The TLS handshake or the WebSocket upgrade failed. A refused upgrade keeps the server's
/// status and reason text: its JSON body's `error` (Realtime answers `{"error": "..."}`), the
/// raw body, or the status's own name when the body is empty.
fn handshake_failed(host: &str, port: u16, e: tokio_tungstenite::tungstenite::Error) -> Error {
    use tokio_tungstenite::tungstenite::error::ProtocolError;
    use tokio_tungstenite::tungstenite::Error as WsError;
    match e {
        WsError::Http(resp) => {
            let status = resp.status();
            let raw = resp
                .body()
                .as_ref()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default();
            let mut body = error_text(&raw);
            if body.is_empty() {
                body = status
                    .canonical_reason()
                    .unwrap_or("no reason given")
                    .to_owned();
            }
            if status.as_u16() == 404 {
                body.push_str(&format!(
                    " (no Realtime endpoint at this path on {host}:{port}: the URL should end in /realtime/v1)"
                ));
            }
            Error::Http {
                status: status.as_u16(),
                body,
            }
        }
        WsError::Tls(e) => Error::Tls(format!("TLS handshake with {host}:{port} failed: {e}")),
        WsError::Io(e) => Error::Io(format!("connection to {host}:{port} failed: {e}")),
        WsError::Url(e) => Error::InvalidArgument(format!("URL: {e}")),
        WsError::Protocol(ProtocolError::HandshakeIncomplete) | WsError::ConnectionClosed => {
            Error::Io(format!(
                "{host}:{port} closed the connection during the WebSocket upgrade"
            ))
        }
        other => Error::Io(format!(
            "WebSocket handshake with {host}:{port} failed: {other}"
        )),
    }
}

/// The reason text of an HTTP error body: `error` or `message` of a JSON object (what Realtime
/// and realtime-js use), else the body itself, trimmed.
pub(crate) fn error_text(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            v.get("error")
                .or_else(|| v.get("message"))
                .and_then(serde_json::Value::as_str)
                .map(str::to_owned)
        })
        .unwrap_or_else(|| body.trim().to_owned())
}

/// A parsed `http(s)://host[:port]/path?query`.
struct HttpUrl {
    tls: bool,
    host: String,
    port: u16,
    path: String,
}

fn parse_http_url(url: &str) -> Result<HttpUrl, Error> {
    let bad = || Error::InvalidArgument(format!("bad HTTP URL {url:?}"));
    let (tls, rest) = if let Some(r) = url.strip_prefix("https://") {
        (true, r)
    } else if let Some(r) = url.strip_prefix("http://") {
        (false, r)
    } else {
        return Err(bad());
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (host, port) = if let Some(h) = authority.strip_prefix('[') {
        let (h, after) = h.split_once(']').ok_or_else(bad)?;
        let port = after.strip_prefix(':').map(str::parse).transpose();
        (h.to_owned(), port.map_err(|_| bad())?)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_owned(), Some(p.parse().map_err(|_| bad())?)),
            None => (authority.to_owned(), None),
        }
    };
    if host.is_empty() {
        return Err(bad());
    }
    Ok(HttpUrl {
        tls,
        port: port.unwrap_or(if tls { 443 } else { 80 }),
        host,
        path: path.to_owned(),
    })
}

/// One HTTP/1.1 POST with `Connection: close`; returns the status and body text.
pub(crate) async fn http_post(
    url: &str,
    headers: &[(String, String)],
    body: &[u8],
    tls: Arc<rustls::ClientConfig>,
) -> Result<(u16, String), Error> {
    let u = parse_http_url(url)?;
    let tcp = TcpStream::connect((u.host.as_str(), u.port))
        .await
        .map_err(|e| Error::Io(format!("connect {}:{}: {e}", u.host, u.port)))?;
    let _ = tcp.set_nodelay(true);
    let host_header = if (u.tls && u.port == 443) || (!u.tls && u.port == 80) {
        u.host.clone()
    } else if u.host.contains(':') {
        format!("[{}]:{}", u.host, u.port)
    } else {
        format!("{}:{}", u.host, u.port)
    };
    let mut head = format!(
        "POST {} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: {}\r\n",
        u.path,
        host_header,
        body.len()
    );
    for (k, v) in headers {
        if k.contains(['\r', '\n']) || v.contains(['\r', '\n']) {
            return Err(Error::InvalidArgument(format!(
                "header {k:?} has a line break"
            )));
        }
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    if u.tls {
        let name = ServerName::try_from(u.host.clone())
            .map_err(|e| Error::InvalidArgument(format!("TLS server name: {e}")))?;
        let stream = tokio_rustls::TlsConnector::from(tls)
            .connect(name, tcp)
            .await
            .map_err(|e| Error::Tls(e.to_string()))?;
        exchange(stream, head.as_bytes(), body).await
    } else {
        exchange(tcp, head.as_bytes(), body).await
    }
}

async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    head: &[u8],
    body: &[u8],
) -> Result<(u16, String), Error> {
    let io = |e: std::io::Error| Error::Io(e.to_string());
    s.write_all(head).await.map_err(io)?;
    s.write_all(body).await.map_err(io)?;
    s.flush().await.map_err(io)?;
    let mut buf = Vec::new();
    // Bounded: a REST reply is small; refuse anything huge rather than buffering it.
    let mut limited = (&mut s).take(1 << 20);
    match limited.read_to_end(&mut buf).await {
        Ok(_) => {}
        // Servers often close TLS without close_notify after `Connection: close`.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !buf.is_empty() => {}
        Err(e) => return Err(io(e)),
    }
    parse_response(&buf)
}

fn parse_response(buf: &[u8]) -> Result<(u16, String), Error> {
    let bad = |m: &str| Error::Io(format!("malformed HTTP response: {m}"));
    let split = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| bad("no header end"))?;
    let head = std::str::from_utf8(&buf[..split]).map_err(|_| bad("header not UTF-8"))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("status line"))?;
    let chunked = lines.any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    let raw = &buf[split + 4..];
    let body = if chunked { dechunk(raw) } else { raw.to_vec() };
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = raw.windows(2).position(|w| w == b"\r\n") {
        let size_text = String::from_utf8_lossy(&raw[..eol]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .unwrap_or(0);
        raw = &raw[eol + 2..];
        if size == 0 || raw.len() < size {
            out.extend_from_slice(&raw[..size.min(raw.len())]);
            break;
        }
        out.extend_from_slice(&raw[..size]);
        raw = raw.get(size + 2..).unwrap_or_default();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls_and_responses() {
        let u = parse_http_url("http://127.0.0.1:4000/realtime/v1/api/x?y=1").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.path.as_str()),
            ("127.0.0.1", 4000, "/realtime/v1/api/x?y=1")
        );
        let u = parse_http_url("https://[::1]/a").unwrap();
        assert_eq!((u.host.as_str(), u.port, u.tls), ("::1", 443, true));
        assert!(parse_http_url("ftp://x").is_err());
        assert_eq!(
            parse_response(b"HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\n\r\n").unwrap(),
            (202, String::new())
        );
        assert_eq!(
            parse_response(b"HTTP/1.1 403 Forbidden\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n").unwrap(),
            (403, "hello".into())
        );
        assert!(parse_response(b"garbage").is_err());
    }

    #[test]
    fn connect_failures_name_their_cause() {
        use std::io::{Error as IoError, ErrorKind as IoKind};
        use tokio_tungstenite::tungstenite::http::Response;
        use tokio_tungstenite::tungstenite::Error as WsError;
        // Name resolution, without a lookup: the error getaddrinfo gives for an unknown name.
        let e = resolve_failed(
            "no-such-host.invalid",
            &IoError::other("failed to lookup address information: Name or service not known"),
        );
        assert!(
            matches!(&e, Error::Io(m) if m.contains("could not resolve host \"no-such-host.invalid\"")
            && m.contains("Name or service not known")),
            "{e}"
        );
        assert!(matches!(&e, Error::Io(m) if io_cause(m) == IoCause::HostNotFound));
        let e = connect_failed(
            "127.0.0.1:9".parse().unwrap(),
            &IoError::from(IoKind::ConnectionRefused),
        );
        assert!(
            matches!(&e, Error::Io(m) if m.contains("127.0.0.1:9") && m.contains("is the server running?")),
            "{e}"
        );
        assert!(matches!(&e, Error::Io(m) if io_cause(m) == IoCause::ConnectionRefused));
        let e = connect_failed(
            "127.0.0.1:9".parse().unwrap(),
            &IoError::from(IoKind::ConnectionReset),
        );
        assert!(matches!(&e, Error::Io(m) if io_cause(m) == IoCause::Other));
        let refused = |status: u16, body: &str| {
            let resp = Response::builder()
                .status(status)
                .body(Some(body.as_bytes().to_vec()))
                .unwrap();
            handshake_failed("h", 4000, WsError::Http(Box::new(resp)))
        };
        assert_eq!(
            refused(401, r#"{"error":"Token has expired"}"#),
            Error::Http {
                status: 401,
                body: "Token has expired".into()
            }
        );
        let e = refused(404, "");
        assert!(
            matches!(&e, Error::Http { status: 404, body } if body.starts_with("Not Found (no Realtime endpoint")),
            "{e}"
        );
        assert_eq!(error_text("plain text\n"), "plain text");
    }

    #[test]
    fn custom_ca_errors_are_clear() {
        let opts = ClientOptions::new("wss://x", "k").custom_ca_pem(b"not a pem".to_vec());
        assert!(matches!(tls_config(&opts), Err(Error::Tls(_))));
        assert!(tls_config(&ClientOptions::new("wss://x", "k")).is_ok());
    }
}
