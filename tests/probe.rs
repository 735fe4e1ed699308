//! `--wait cluster`'s probe against a local TLS server that plays the API server: it presents
//! a certificate signed by the cluster CA and requires a client certificate signed by it too.

use std::sync::Arc;
use std::time::{Duration, Instant};

use provision::core::pki::{Ca, generate_ca};
use provision::engine::probe::wait_cluster_every;
use provision::engine::{Event, EventSink};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// Serves /readyz and /api/v1/nodes (with `ready` of `total` nodes Ready) until dropped.
async fn api_server(ca: &Ca, readyz: &'static str, ready: usize, total: usize) -> String {
    let now = time::OffsetDateTime::now_utc();
    let (cert, key) = ca
        .server_cert(&["127.0.0.1".parse().unwrap()], now)
        .unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca.cert_pem.as_bytes()).unwrap())
        .unwrap();
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .unwrap();
    let cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            vec![CertificateDer::from_pem_slice(cert.as_bytes()).unwrap()],
            PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
        )
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut buf = vec![0u8; 4096];
                let n = tls.read(&mut buf).await.unwrap_or(0);
                let req = String::from_utf8_lossy(&buf[..n]).to_string();
                let body = if req.starts_with("GET /readyz ") {
                    readyz.to_string()
                } else if req.starts_with("GET /api/v1/nodes ") {
                    let items: Vec<String> = (0..total)
                        .map(|i| format!(r#"{{"metadata":{{"name":"n{i}"}},"status":{{"conditions":[{{"type":"Ready","status":"{}"}}]}}}}"#, if i < ready { "True" } else { "False" }))
                        .collect();
                    format!(r#"{{"kind":"NodeList","items":[{}]}}"#, items.join(","))
                } else {
                    "not found".to_string()
                };
                // Chunked, as the API server answers lists.
                let resp = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n",
                    body.len()
                );
                let _ = tls.write_all(resp.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    format!("https://{addr}")
}

fn sink() -> (EventSink, Arc<std::sync::Mutex<Vec<Event>>>) {
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let s = seen.clone();
    (Arc::new(move |e| s.lock().unwrap().push(e)), seen)
}

#[tokio::test]
async fn ready_cluster_is_noticed() {
    let ca = generate_ca(time::OffsetDateTime::now_utc()).unwrap();
    let server = api_server(&ca, "ok", 3, 3).await;
    let (events, _) = sink();
    wait_cluster_every(
        &server,
        &ca,
        3,
        Duration::from_secs(5),
        Duration::from_millis(50),
        &events,
        Instant::now(),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn waits_until_every_node_is_ready_and_reports_progress() {
    let ca = generate_ca(time::OffsetDateTime::now_utc()).unwrap();
    let server = api_server(&ca, "ok", 2, 3).await;
    let (events, seen) = sink();
    let err = wait_cluster_every(
        &server,
        &ca,
        3,
        Duration::from_millis(300),
        Duration::from_millis(50),
        &events,
        Instant::now(),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("2 of 3 nodes Ready"), "{err}");
    assert!(
        seen.lock()
            .unwrap()
            .iter()
            .any(|e| matches!(e, Event::Waiting { what, .. } if what.contains("2 of 3")))
    );
}

#[tokio::test]
async fn readyz_not_ok_keeps_waiting() {
    let ca = generate_ca(time::OffsetDateTime::now_utc()).unwrap();
    let server = api_server(&ca, "[-]etcd failed", 3, 3).await;
    let (events, _) = sink();
    let err = wait_cluster_every(
        &server,
        &ca,
        3,
        Duration::from_millis(200),
        Duration::from_millis(50),
        &events,
        Instant::now(),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("/readyz"), "{err}");
}

#[tokio::test]
async fn a_server_from_another_ca_is_not_trusted() {
    let ours = generate_ca(time::OffsetDateTime::now_utc()).unwrap();
    let theirs = generate_ca(time::OffsetDateTime::now_utc()).unwrap();
    let server = api_server(&theirs, "ok", 3, 3).await;
    let (events, _) = sink();
    let err = wait_cluster_every(
        &server,
        &ours,
        3,
        Duration::from_millis(200),
        Duration::from_millis(50),
        &events,
        Instant::now(),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("TLS"), "{err}");
}
