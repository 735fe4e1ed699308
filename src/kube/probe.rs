//! `--wait cluster`: poll the API server's `/readyz`, then count Ready nodes, over TLS verified
//! against the cluster CA, authenticated with a client certificate the CA signs (kubeadm) or an
//! EKS bearer token (a presigned STS GetCallerIdentity, made afresh for every request).
//!
//! A deliberately small HTTP/1.1 client (one GET per connection): the two requests we make do
//! not justify an HTTP client crate on top of the SDK's stack.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::ProbeError;
use crate::core::events::{Event, EventSink};
use crate::core::pki::Ca;

/// The name the API server's certificate is checked against (kubeadm puts it in every one).
pub const API_SERVER_NAME: &str = crate::core::kubeconfig::API_SERVER_NAME;

/// How often the probe polls.
pub const POLL_INTERVAL: Duration = Duration::from_secs(10);

/// A TLS client for the cluster: trusts only the CA and presents an admin client certificate.
///
/// # Errors
/// When the PEM data does not parse.
pub fn tls_config(ca: &Ca) -> Result<Arc<rustls::ClientConfig>, String> {
    let mut roots = rustls::RootCertStore::empty();
    let ca_der = CertificateDer::from_pem_slice(ca.cert_pem.as_bytes())
        .map_err(|e| format!("reading the CA: {e}"))?;
    roots
        .add(ca_der)
        .map_err(|e| format!("trusting the CA: {e}"))?;
    let (cert, key) = ca
        .client_cert(
            "provision-admin",
            "kubeadm:cluster-admins",
            time::OffsetDateTime::now_utc(),
        )
        .map_err(|e| e.to_string())?;
    let cert = CertificateDer::from_pem_slice(cert.as_bytes()).map_err(|e| e.to_string())?;
    let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).map_err(|e| e.to_string())?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_client_auth_cert(vec![cert], key)
        .map_err(|e| e.to_string())?;
    Ok(Arc::new(cfg))
}

/// How to reach and authenticate to an API server.
#[derive(Clone)]
pub struct ApiClient {
    tls: Arc<rustls::ClientConfig>,
    /// The name the server certificate is checked against; `None`: the URL's host.
    server_name: Option<String>,
    /// EKS: credentials, region and cluster to sign a token with, per request.
    eks: Option<(aws_credential_types::Credentials, String, String)>,
}

impl ApiClient {
    /// A kubeadm cluster: our CA, our admin certificate, the name `kubernetes`.
    ///
    /// # Errors
    /// When the CA does not parse.
    pub fn kubeadm(ca: &Ca) -> Result<ApiClient, String> {
        Ok(ApiClient {
            tls: tls_config(ca)?,
            server_name: Some(API_SERVER_NAME.to_string()),
            eks: None,
        })
    }

    /// An EKS cluster: its CA (PEM), the name its certificate is checked against (the
    /// endpoint's host, also when `--api-server` goes through a tunnel; `None`: the URL's host),
    /// and a bearer token signed with `creds` for every request (tokens live 15 minutes; waits
    /// can be longer).
    ///
    /// # Errors
    /// When the CA does not parse.
    pub fn eks_with(
        ca_pem: &str,
        server_name: Option<&str>,
        creds: aws_credential_types::Credentials,
        region: &str,
        cluster: &str,
    ) -> Result<ApiClient, String> {
        let mut roots = rustls::RootCertStore::empty();
        let ca_der = CertificateDer::from_pem_slice(ca_pem.as_bytes())
            .map_err(|e| format!("reading the EKS CA: {e}"))?;
        roots
            .add(ca_der)
            .map_err(|e| format!("trusting the EKS CA: {e}"))?;
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let cfg = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(ApiClient {
            tls: Arc::new(cfg),
            server_name: server_name.map(str::to_string),
            eks: Some((creds, region.to_string(), cluster.to_string())),
        })
    }

    /// [`ApiClient::eks_with`] with credentials from the standard chain.
    ///
    /// # Errors
    /// When there are no credentials or the CA does not parse.
    pub async fn eks(
        ca_pem: &str,
        server_name: Option<&str>,
        cluster: &str,
        region: &str,
    ) -> Result<ApiClient, String> {
        let creds = crate::aws::token::load_credentials(cluster, region)
            .await
            .map_err(|e| e.to_string())?;
        ApiClient::eks_with(ca_pem, server_name, creds, region, cluster)
    }

    fn authorization(&self) -> Result<String, String> {
        match &self.eks {
            None => Ok(String::new()),
            Some((creds, region, cluster)) => {
                let url = crate::aws::token::presigned_url(
                    creds,
                    region,
                    cluster,
                    std::time::SystemTime::now(),
                )
                .map_err(|e| e.to_string())?;
                Ok(format!(
                    "Authorization: Bearer {}\r\n",
                    crate::aws::token::token(&url)
                ))
            }
        }
    }
}

/// One GET; returns the status code and body.
///
/// # Errors
/// Connection, TLS or protocol failures, as text.
pub async fn get(server: &str, path: &str, client: &ApiClient) -> Result<(u16, String), String> {
    request(server, "GET", path, None, client).await
}

/// One request with an optional JSON body; returns the status code and body.
///
/// # Errors
/// Connection, TLS or protocol failures, as text.
pub async fn request(
    server: &str,
    method: &str,
    path: &str,
    body: Option<&str>,
    client: &ApiClient,
) -> Result<(u16, String), String> {
    let hostport = server
        .strip_prefix("https://")
        .ok_or_else(|| format!("{server}: not an https URL"))?
        .trim_end_matches('/');
    let (host, port) = hostport.rsplit_once(':').unwrap_or((hostport, "443"));
    // kubeadm's API server certificate always names `kubernetes`, whatever address reaches it
    // (public IP, private IP, a tunnel's 127.0.0.1): verify that name, against our CA only.
    // EKS's names its endpoint.
    let wanted = client.server_name.clone().unwrap_or_else(|| {
        host.trim_start_matches('[')
            .trim_end_matches(']')
            .to_string()
    });
    let name = ServerName::try_from(wanted.clone()).map_err(|e| format!("{wanted}: {e}"))?;
    let auth = client.authorization()?;
    let tcp = tokio::time::timeout(
        Duration::from_secs(5),
        tokio::net::TcpStream::connect(format!("{host}:{port}")),
    )
    .await
    .map_err(|_| format!("connecting to {hostport}: timed out"))?
    .map_err(|e| format!("connecting to {hostport}: {e}"))?;
    let mut tls = tokio_rustls::TlsConnector::from(client.tls.clone())
        .connect(name, tcp)
        .await
        .map_err(|e| format!("TLS with {hostport}: {e}"))?;
    let payload = body.unwrap_or("");
    let content = if body.is_some() {
        format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            payload.len()
        )
    } else {
        String::new()
    };
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {hostport}\r\nAccept: application/json\r\nUser-Agent: provision\r\n{auth}{content}Connection: close\r\n\r\n{payload}"
    );
    tls.write_all(req.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(15), tls.read_to_end(&mut raw))
        .await
        .map_err(|_| "reading the answer: timed out".to_string())?;
    // Servers may close without a TLS close_notify after `Connection: close`.
    if let Err(e) = read
        && raw.is_empty()
    {
        return Err(e.to_string());
    }
    parse_response(&raw)
}

fn parse_response(raw: &[u8]) -> Result<(u16, String), String> {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text.split_once("\r\n\r\n").ok_or("no HTTP header end")?;
    let status: u16 = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or("no HTTP status")?;
    let chunked = head.lines().any(|l| {
        l.to_ascii_lowercase().starts_with("transfer-encoding:")
            && l.to_ascii_lowercase().contains("chunked")
    });
    let body = if chunked {
        dechunk(body)?
    } else {
        body.to_string()
    };
    Ok((status, body))
}

fn dechunk(mut s: &str) -> Result<String, String> {
    let mut out = String::new();
    loop {
        let (size, rest) = s.split_once("\r\n").ok_or("bad chunk")?;
        let n = usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| "bad chunk size")?;
        if n == 0 {
            return Ok(out);
        }
        out.push_str(rest.get(..n).ok_or("short chunk")?);
        s = rest.get(n + 2..).ok_or("short chunk")?;
    }
}

/// Makes `token` a bootstrap token on the cluster at `server` (what `kubeadm token create`
/// does), authenticated with an admin certificate from the cluster CA.
///
/// # Errors
/// When the API server cannot be reached or refuses.
pub async fn create_bootstrap_token(
    server: &str,
    ca: &Ca,
    token: &str,
    expiration: &str,
) -> Result<(), String> {
    let client = ApiClient::kubeadm(ca)?;
    let body = crate::core::pki::bootstrap_token_secret(token, expiration).to_string();
    match request(
        server,
        "POST",
        "/api/v1/namespaces/kube-system/secrets",
        Some(&body),
        &client,
    )
    .await?
    {
        (201 | 200, _) => Ok(()),
        (code, answer) => Err(format!(
            "creating a bootstrap token: HTTP {code}: {}",
            answer.chars().take(300).collect::<String>()
        )),
    }
}

/// Counts nodes whose Ready condition is True in a NodeList.
pub fn ready_nodes(body: &str) -> Result<(usize, usize), String> {
    let v: serde_json::Value =
        serde_json::from_str(body).map_err(|e| format!("not a NodeList: {e}"))?;
    let items = v["items"].as_array().ok_or("not a NodeList: no items")?;
    let ready = items
        .iter()
        .filter(|n| {
            n["status"]["conditions"].as_array().is_some_and(|c| {
                c.iter()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True")
            })
        })
        .count();
    Ok((ready, items.len()))
}

/// Waits until `/readyz` answers `ok` and `want` nodes are Ready.
///
/// # Errors
/// When the deadline passes; the message says what was last seen.
pub async fn wait_cluster(
    server: &str,
    ca: &Ca,
    want: usize,
    timeout: Duration,
    events: &EventSink,
    start: Instant,
) -> Result<(), ProbeError> {
    wait_cluster_every(server, ca, want, timeout, POLL_INTERVAL, events, start).await
}

/// [`wait_cluster`] with a chosen poll interval.
///
/// # Errors
/// When the deadline passes; the message says what was last seen.
pub async fn wait_cluster_every(
    server: &str,
    ca: &Ca,
    want: usize,
    timeout: Duration,
    every: Duration,
    events: &EventSink,
    start: Instant,
) -> Result<(), ProbeError> {
    let client = ApiClient::kubeadm(ca).map_err(ProbeError)?;
    wait_cluster_with(server, &client, want, timeout, every, events, start).await
}

/// [`wait_cluster_every`] for any cluster.
///
/// # Errors
/// When the deadline passes; the message says what was last seen.
pub async fn wait_cluster_with(
    server: &str,
    client: &ApiClient,
    want: usize,
    timeout: Duration,
    every: Duration,
    events: &EventSink,
    start: Instant,
) -> Result<(), ProbeError> {
    let deadline = Instant::now() + timeout;
    loop {
        let last = match get(server, "/readyz", client).await {
            Ok((200, body)) if body.trim() == "ok" => {
                match get(server, "/api/v1/nodes", client).await {
                    Ok((200, body)) => match ready_nodes(&body) {
                        Ok((ready, _)) if ready >= want => return Ok(()),
                        Ok((ready, total)) => {
                            format!("{ready} of {want} nodes Ready ({total} registered)")
                        }
                        Err(e) => e,
                    },
                    Ok((code, _)) => format!("listing nodes: HTTP {code}"),
                    Err(e) => e,
                }
            }
            Ok((code, body)) => format!("/readyz: HTTP {code} {}", body.trim()),
            Err(e) => e,
        };
        events(Event::Waiting {
            what: format!("the cluster at {server}: {last}"),
            elapsed_ms: u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX),
        });
        if Instant::now() + every > deadline {
            return Err(ProbeError(format!(
                "gave up after {} s: {last}",
                timeout.as_secs()
            )));
        }
        tokio::time::sleep(every).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_ready_nodes() {
        let body = r#"{"items":[
            {"status":{"conditions":[{"type":"Ready","status":"True"}]}},
            {"status":{"conditions":[{"type":"MemoryPressure","status":"False"},{"type":"Ready","status":"False"}]}},
            {"status":{}}]}"#;
        assert_eq!(ready_nodes(body).unwrap(), (1, 3));
        assert!(ready_nodes("{}").is_err());
    }

    #[test]
    fn parses_chunked_and_plain_answers() {
        let plain = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
        assert_eq!(parse_response(plain).unwrap(), (200, "ok".into()));
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n{\"a\r\n2\r\n\"}\r\n0\r\n\r\n";
        assert_eq!(parse_response(chunked).unwrap(), (200, "{\"a\"}".into()));
    }
}
