//! wss:// and https:// with a custom CA: a TLS terminator (rustls, a certificate from a
//! throwaway CA made with the `openssl` command) in front of the in-process server.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::json;
use supa_realtime::{ChannelOptions, ClientOptions, Event, RealtimeClient};
use support::{broadcast_json, server, Recorder, DEADLINE};

fn openssl(dir: &Path, args: &[&str]) -> bool {
    Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// A CA and a server certificate for 127.0.0.1 signed by it; `None` without `openssl`.
fn make_certs() -> Option<PathBuf> {
    let dir = std::env::temp_dir().join(format!("supa-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).ok()?;
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .ok()?;
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let ok = openssl(
        &dir,
        &[
            &["req", "-x509"][..],
            &ec,
            &[
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "2",
                "-subj",
                "/CN=supa test CA",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        ]
        .concat(),
    ) && openssl(
        &dir,
        &[
            &["req"][..],
            &ec,
            &[
                "-keyout",
                "srv.key",
                "-out",
                "srv.csr",
                "-subj",
                "/CN=127.0.0.1",
            ],
        ]
        .concat(),
    ) && openssl(
        &dir,
        &[
            "x509",
            "-req",
            "-in",
            "srv.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "srv.pem",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
        ],
    );
    ok.then_some(dir)
}

/// Terminates TLS on a free port and forwards the plain bytes to `upstream`.
fn tls_terminator(dir: &Path, upstream: std::net::SocketAddr) -> u16 {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(dir.join("srv.pem"))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let key = PrivateKeyDer::from_pem_file(dir.join("srv.key")).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    break;
                };
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let Ok(mut up) = tokio::net::TcpStream::connect(upstream).await else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut up).await;
                });
            }
        });
    });
    port
}

#[test]
fn wss_and_https_with_a_custom_ca() {
    let Some(dir) = make_certs() else {
        eprintln!("SKIPPED: the openssl command is not available to make test certificates");
        return;
    };
    let server = server();
    let port = tls_terminator(&dir, server.local_addr());
    let ca = std::fs::read(dir.join("ca.pem")).unwrap();
    let url = format!("https://127.0.0.1:{port}/realtime/v1");

    let c =
        RealtimeClient::new(ClientOptions::new(url.clone(), server.anon_key()).custom_ca_pem(ca))
            .unwrap();
    let r = Recorder::new();
    let ch = c.channel("secure", ChannelOptions::default().broadcast_self(true));
    ch.on_event(r.sink());
    ch.subscribe_blocking(DEADLINE)
        .expect("subscribed over wss://");
    ch.send_broadcast_blocking("tls", json!({"ok": 1}).into(), DEADLINE)
        .unwrap();
    r.wait("broadcast over wss", |e| broadcast_json(e, "tls").is_some());
    ch.http_send_blocking("rest-tls", json!({"ok": 2}).into(), DEADLINE)
        .expect("https POST");
    r.wait("broadcast via https", |e| {
        broadcast_json(e, "rest-tls").is_some()
    });

    // Without the CA the certificate is refused: an error event, retries, no panic.
    let untrusted = RealtimeClient::new(ClientOptions::new(url, server.anon_key())).unwrap();
    let r2 = Recorder::new();
    untrusted.on_event(r2.sink());
    untrusted.connect();
    r2.wait(
        "certificate refused",
        |e| matches!(e, Event::Error { message } if message.to_lowercase().contains("certificate")),
    );
    untrusted.shutdown();
    let _ = std::fs::remove_dir_all(&dir);
}
