//! TLS connections: each is served in the protocol ALPN chose (HTTP/2 for `h2`, HTTP/1.1
//! otherwise), and one that goes quiet after its handshake is closed instead of being held
//! for ever: by the 10 s header read timeout (HTTP/1.1), or when it does not answer the
//! server's ping (HTTP/2).
#![allow(clippy::unwrap_used)]

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use writ_testkit::{TestCertificates, TestGateway};

const CONFIG: &str = "[upstreams.demo]\nkind = \"openai\"\nbase_url = \"https://api.openai.com\"\napi_key = \"sk-x\"\n";

/// The HTTP version curl spoke for `GET /healthz` with `flag`, and the status.
fn curl_version(gw: &TestGateway, certs: &TestCertificates, flag: &str) -> String {
    let out = Command::new("curl")
        .args([
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{http_version} %{http_code}",
            flag,
        ])
        .arg("--cacert")
        .arg(&certs.ca)
        .arg(gw.url("/healthz"))
        .output()
        .expect("curl must be installed");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_connection_speaks_what_alpn_chose() {
    let certs = TestCertificates::generate();
    let gw = TestGateway::start_tls(CONFIG, &certs).await;
    assert_eq!(curl_version(&gw, &certs, "--http2"), "2 200");
    assert_eq!(curl_version(&gw, &certs, "--http1.1"), "1.1 200");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_quiet_after_its_handshake_is_closed() {
    let certs = TestCertificates::generate();
    let gw = TestGateway::start_tls(CONFIG, &certs).await;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(&certs.ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    // Without ALPN (HTTP/1.1), with `h2`, and with `h2` and the client's preface, at once:
    // the server must not wait without a deadline in any. The first two are closed by the
    // 10 s first-byte wait; the third, once it has started HTTP/2, when it does not answer
    // the ping the server sends after 10 s of silence, 10 s later.
    let preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0".to_vec();
    let mut quiet = Vec::new();
    for (alpn, first) in [
        (None, Vec::new()),
        (Some(b"h2".to_vec()), Vec::new()),
        (Some(b"h2".to_vec()), preface),
    ] {
        let mut config = config.clone();
        config.alpn_protocols = alpn.clone().into_iter().collect();
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let tcp = TcpStream::connect(gw.addr()).await.unwrap();
        let name = ServerName::try_from("localhost").unwrap();
        let mut tls = connector.connect(name, tcp).await.unwrap();
        tls.write_all(&first).await.unwrap();
        let started = !first.is_empty();
        quiet.push(tokio::spawn(async move {
            let since = Instant::now();
            let mut buf = vec![0u8; 4096];
            // HTTP/2: the server's SETTINGS and pings come first; read until it ends.
            let ended = tokio::time::timeout(Duration::from_secs(45), async {
                loop {
                    match tls.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(_) => continue,
                    }
                }
            })
            .await;
            (alpn, started, ended.is_ok(), since.elapsed())
        }));
    }
    for q in quiet {
        let (alpn, started, ended, after) = q.await.unwrap();
        let alpn = alpn.map(|a| String::from_utf8(a).unwrap());
        assert!(
            ended,
            "ALPN {alpn:?}: still open after {after:?} of silence"
        );
        // Closed by a timeout, not at once.
        let least = Duration::from_secs(if started { 19 } else { 9 });
        assert!(
            after >= least,
            "ALPN {alpn:?}, started {started}: {after:?}"
        );
    }
}
