//! Local endpoints the binary talks to instead of AWS or a Kubernetes API server: a fixed
//! answer for every request, and a mutual-TLS (or bearer-token) stand-in API server.

use std::sync::Arc;

use provision::core::pki::Ca;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// A local endpoint answering every request with `response` (a whole HTTP/1.1 response), on a
/// thread so that the binary, a child process, can reach it. Returns its URL.
pub fn fixed_endpoint(response: String) -> String {
    use std::io::{Read as _, Write as _};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { return };
            let mut buf = [0u8; 65536];
            let _ = s.set_read_timeout(Some(std::time::Duration::from_millis(200)));
            let _ = s.read(&mut buf);
            let _ = s.write_all(response.as_bytes());
        }
    });
    url
}

/// An endpoint that accepts connections and never answers (each connection is held open).
pub fn silent_endpoint() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming() {
            let Ok(s) = stream else { return };
            held.push(s);
        }
    });
    url
}

/// A local stand-in for the Kubernetes API server: presents a certificate from `ca`, requires
/// a client certificate from it, and serves /readyz, /api/v1/nodes and token creation.
/// Serves /readyz and /api/v1/nodes (with `ready` of `total` nodes Ready) until dropped.
pub async fn api_server(ca: &Ca, readyz: &'static str, ready: usize, total: usize) -> String {
    api_server_recording(ca, readyz, ready, total).await.0
}

/// Like `api_server`, also recording every request (head and body).
pub async fn api_server_recording(
    ca: &Ca,
    readyz: &'static str,
    ready: usize,
    total: usize,
) -> (String, Arc<std::sync::Mutex<Vec<String>>>) {
    serve(ca, readyz, ready, total, true).await
}

/// A stand-in for an EKS API server: no client certificate, but every request needs an
/// `Authorization: Bearer k8s-aws-v1.…` header (401 without). Records every request.
pub async fn api_server_bearer(
    ca: &Ca,
    ready: usize,
    total: usize,
) -> (String, Arc<std::sync::Mutex<Vec<String>>>) {
    serve(ca, "ok", ready, total, false).await
}

/// A TLS acceptor with a server certificate from `ca` for 127.0.0.1 (and the name
/// `kubernetes`), requiring a client certificate from `ca` when `client_cert`.
pub fn tls_acceptor(ca: &Ca, client_cert: bool) -> tokio_rustls::TlsAcceptor {
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
    let builder = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap();
    let builder = if client_cert {
        builder.with_client_cert_verifier(verifier)
    } else {
        builder.with_no_client_auth()
    };
    let cfg = builder
        .with_single_cert(
            vec![CertificateDer::from_pem_slice(cert.as_bytes()).unwrap()],
            PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
        )
        .unwrap();
    tokio_rustls::TlsAcceptor::from(Arc::new(cfg))
}

/// Reads one HTTP/1.1 request (head and body, by its Content-Length).
pub async fn read_request<S: tokio::io::AsyncRead + Unpin>(tls: &mut S) -> String {
    let mut raw = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = tls.read(&mut chunk).await.unwrap_or(0);
        raw.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&raw).to_string();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let len = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse::<usize>().unwrap())
                })
                .unwrap_or(0);
            if body.len() >= len || n == 0 {
                return text;
            }
        } else if n == 0 {
            return text;
        }
    }
}

/// Writes a JSON answer, chunked as the API server answers lists, and closes the connection
/// (saying so: a client must not send its next request on it).
pub async fn respond<S: tokio::io::AsyncWrite + Unpin>(tls: &mut S, status: &str, body: &str) {
    let resp = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n",
        body.len()
    );
    let _ = tls.write_all(resp.as_bytes()).await;
    let _ = tls.shutdown().await;
}

async fn serve(
    ca: &Ca,
    readyz: &'static str,
    ready: usize,
    total: usize,
    client_cert: bool,
) -> (String, Arc<std::sync::Mutex<Vec<String>>>) {
    let recorded = Arc::new(std::sync::Mutex::new(Vec::new()));
    let rec = recorded.clone();
    let acceptor = tls_acceptor(ca, client_cert);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            let rec = rec.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let req = read_request(&mut tls).await;
                rec.lock().unwrap().push(req.clone());
                // Header names are case-insensitive (hyper sends them in lower case).
                let authorized = client_cert
                    || req.lines().any(|l| {
                        l.to_ascii_lowercase()
                            .starts_with("authorization: bearer k8s-aws-v1.")
                    });
                // The path, without its query string.
                let target = req.split(' ').take(2).collect::<Vec<_>>().join(" ");
                let target = target.split('?').next().unwrap_or_default();
                let (status, body) = if !authorized {
                    (
                        "401 Unauthorized",
                        r#"{"kind":"Status","code":401}"#.to_string(),
                    )
                } else if target == "POST /api/v1/namespaces/kube-system/secrets" {
                    (
                        "201 Created",
                        r#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"bootstrap-token"}}"#
                            .to_string(),
                    )
                } else {
                    ("200 OK", String::new())
                };
                let body = if !body.is_empty() {
                    body
                } else if target == "GET /readyz" {
                    readyz.to_string()
                } else if target == "GET /api/v1/nodes" {
                    let items: Vec<String> = (0..total)
                        .map(|i| format!(r#"{{"metadata":{{"name":"n{i}"}},"status":{{"conditions":[{{"type":"Ready","status":"{}"}}]}}}}"#, if i < ready { "True" } else { "False" }))
                        .collect();
                    format!(
                        r#"{{"apiVersion":"v1","kind":"NodeList","metadata":{{}},"items":[{}]}}"#,
                        items.join(",")
                    )
                } else {
                    "not found".to_string()
                };
                respond(&mut tls, status, &body).await;
            });
        }
    });
    (format!("https://{addr}"), recorded)
}

/// IMDSv2 for an instance of the emulator's account: a session token from PUT
/// /latest/api/token, required on every GET; the region, the identity document, role
/// credentials. What the node script (`provision-node.py`) asks for.
pub async fn fake_imds(instance: &str) -> String {
    let instance = instance.to_string();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        loop {
            let Ok((mut tcp, _)) = listener.accept().await else {
                return;
            };
            let instance = instance.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let n = tcp.read(&mut buf).await.unwrap_or(0);
                let req = String::from_utf8_lossy(&buf[..n]).to_lowercase();
                let path = req.split_whitespace().nth(1).unwrap_or("").to_string();
                let (status, body) = if req.starts_with("put /latest/api/token")
                    && req.contains("x-aws-ec2-metadata-token-ttl-seconds")
                {
                    ("200 OK", "imds-session".to_string())
                } else if !req.contains("x-aws-ec2-metadata-token: imds-session") {
                    ("401 Unauthorized", String::new())
                } else {
                    match path.as_str() {
                        "/latest/meta-data/placement/region" => ("200 OK", "us-east-1".into()),
                        "/latest/dynamic/instance-identity/document" => ("200 OK", format!(r#"{{"region":"us-east-1","instanceId":"{instance}","accountId":"123456789012"}}"#)),
                        "/latest/meta-data/iam/security-credentials/" => ("200 OK", "node-role".into()),
                        "/latest/meta-data/iam/security-credentials/node-role" => {
                            ("200 OK", r#"{"Code":"Success","AccessKeyId":"test","SecretAccessKey":"test","Token":"session"}"#.into())
                        }
                        _ => ("404 Not Found", String::new()),
                    }
                };
                let resp = format!(
                    "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = tcp.write_all(resp.as_bytes()).await;
            });
        }
    });
    url
}
