//! `--wait cluster` and the join token, through the ecosystem's client (`kube`): `/readyz`, the
//! nodes' Ready condition, and a bootstrap token Secret. TLS is verified against the cluster's
//! CA only; a kubeadm cluster is entered with an admin client certificate our CA signs, an EKS
//! cluster with a bearer token (a presigned STS GetCallerIdentity) made afresh for every poll.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Node, Secret};
use kube::api::{Api, ListParams, PostParams};
use kube::config::{AuthInfo, Config};

use super::ProbeError;
use crate::aws::Tuning;
use crate::aws::poll::{Seen, until_with};
use crate::core::events::{Event, EventSink};
use crate::core::pki::Ca;

/// The name the API server's certificate is checked against (kubeadm puts it in every one).
pub const API_SERVER_NAME: &str = crate::core::kubeconfig::API_SERVER_NAME;

/// How often the probe polls.
pub const POLL_INTERVAL: Duration = Duration::from_secs(10);

/// How to reach and authenticate to an API server.
#[derive(Clone)]
pub struct ApiClient {
    ca_pem: String,
    /// The name the server certificate is checked against; `None`: the URL's host.
    server_name: Option<String>,
    auth: Auth,
}

#[derive(Clone)]
enum Auth {
    /// A client certificate and its key (PEM).
    Certificate { cert_pem: String, key_pem: String },
    /// A bearer token signed with these credentials for this region and cluster, per poll.
    Eks {
        creds: aws_credential_types::Credentials,
        region: String,
        cluster: String,
    },
}

impl ApiClient {
    /// A kubeadm cluster: our CA, an admin certificate it signs now, the name `kubernetes`.
    ///
    /// # Errors
    /// When the certificate cannot be made.
    pub fn kubeadm(ca: &Ca) -> Result<ApiClient, String> {
        let (cert_pem, key_pem) = ca
            .client_cert(
                "provision-admin",
                "kubeadm:cluster-admins",
                time::OffsetDateTime::now_utc(),
            )
            .map_err(|e| e.to_string())?;
        Ok(ApiClient {
            ca_pem: ca.cert_pem.clone(),
            server_name: Some(API_SERVER_NAME.to_string()),
            auth: Auth::Certificate { cert_pem, key_pem },
        })
    }

    /// An EKS cluster: its CA (PEM), the name its certificate is checked against (the
    /// endpoint's host, also when `--api-server` goes through a tunnel; `None`: the URL's host),
    /// and a bearer token signed with `creds` for every poll (tokens live 15 minutes; waits can
    /// be longer).
    ///
    /// # Errors
    /// When the CA is not a PEM certificate.
    pub fn eks_with(
        ca_pem: &str,
        server_name: Option<&str>,
        creds: aws_credential_types::Credentials,
        region: &str,
        cluster: &str,
    ) -> Result<ApiClient, String> {
        der(ca_pem)?;
        Ok(ApiClient {
            ca_pem: ca_pem.to_string(),
            server_name: server_name.map(str::to_string),
            auth: Auth::Eks {
                creds,
                region: region.to_string(),
                cluster: cluster.to_string(),
            },
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

    /// A `kube` client for `server` (with a fresh token for EKS).
    pub(crate) fn connect(&self, server: &str) -> Result<kube::Client, String> {
        let url = server
            .parse()
            .map_err(|e| format!("{server}: not a URL ({e})"))?;
        let mut cfg = Config::new(url);
        cfg.root_cert = Some(vec![der(&self.ca_pem)?]);
        cfg.tls_server_name.clone_from(&self.server_name);
        cfg.connect_timeout = Some(Duration::from_secs(5));
        cfg.read_timeout = Some(Duration::from_secs(15));
        cfg.default_retry = false;
        let mut auth = AuthInfo::default();
        match &self.auth {
            Auth::Certificate { cert_pem, key_pem } => {
                use base64::Engine as _;
                let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
                auth.client_certificate_data = Some(b64(cert_pem));
                auth.client_key_data = Some(secrecy::SecretString::from(b64(key_pem)));
            }
            Auth::Eks {
                creds,
                region,
                cluster,
            } => {
                let url = crate::aws::token::presigned_url(
                    creds,
                    region,
                    cluster,
                    std::time::SystemTime::now(),
                )
                .map_err(|e| e.to_string())?;
                auth.token = Some(secrecy::SecretString::from(crate::aws::token::token(&url)));
            }
        }
        cfg.auth_info = auth;
        kube::Client::try_from(cfg).map_err(|e| explain(server, &e))
    }
}

/// The DER of the first certificate of a PEM document.
fn der(pem: &str) -> Result<Vec<u8>, String> {
    use rustls_pki_types::pem::PemObject as _;
    rustls_pki_types::CertificateDer::from_pem_slice(pem.as_bytes())
        .map(|c| c.to_vec())
        .map_err(|e| format!("reading the cluster's CA: {e}"))
}

/// One line for a failed request: a TLS failure says so, an HTTP error gives its code.
fn explain(server: &str, e: &kube::Error) -> String {
    if let kube::Error::Api(s) = e {
        return format!("HTTP {}: {}", s.code, s.message);
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    let mut last = e.to_string();
    while let Some(err) = source {
        if let Some(tls) = err.downcast_ref::<rustls::Error>() {
            return format!("TLS with {server}: {tls}");
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && let Some(tls) = io.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>())
        {
            return format!("TLS with {server}: {tls}");
        }
        last = err.to_string();
        source = err.source();
    }
    // The TLS stack's error is not always reachable through `source()`: say what it is by its
    // message.
    if last.contains("certificate") || last.contains("handshake") {
        return format!("TLS with {server}: {last}");
    }
    format!("{server}: {last}")
}

/// The cluster's nodes now: (name, Ready), for `status`.
///
/// # Errors
/// One line saying why the API server could not be asked.
pub async fn nodes(server: &str, client: &ApiClient) -> Result<Vec<(String, bool)>, String> {
    let kube = client.connect(server)?;
    let list = Api::<Node>::all(kube)
        .list(&ListParams::default())
        .await
        .map_err(|e| format!("listing nodes: {}", explain(server, &e)))?;
    Ok(list
        .items
        .iter()
        .map(|n| {
            let name = n.metadata.name.clone().unwrap_or_default();
            (name, ready_nodes(std::slice::from_ref(n)).0 == 1)
        })
        .collect())
}

/// Counts the nodes whose Ready condition is True: (ready, registered).
pub fn ready_nodes(nodes: &[Node]) -> (usize, usize) {
    let ready = nodes.iter().filter(|n| is_ready(n)).count();
    (ready, nodes.len())
}

/// Whether a Node's Ready condition is True.
pub(crate) fn is_ready(n: &Node) -> bool {
    n.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// One look at the cluster: ready when `/readyz` says `ok` and `want` nodes are Ready; else
/// what it is now.
///
/// # Errors
/// Never: every failure is a state to wait through (the API server is still starting).
pub async fn look(server: &str, client: &ApiClient, want: usize) -> Seen<()> {
    let kube = match client.connect(server) {
        Ok(k) => k,
        Err(e) => return Seen::Pending(e),
    };
    let readyz = http::Request::get("/readyz").body(Vec::new());
    let readyz = match readyz {
        Ok(r) => kube.request_text(r).await,
        Err(e) => return Seen::Pending(e.to_string()),
    };
    match readyz {
        Ok(body) if body.trim() == "ok" => {}
        Ok(body) => return Seen::Pending(format!("/readyz: {}", body.trim())),
        Err(e) => return Seen::Pending(format!("/readyz: {}", explain(server, &e))),
    }
    match Api::<Node>::all(kube).list(&ListParams::default()).await {
        Ok(list) => match ready_nodes(&list.items) {
            (ready, _) if ready >= want => Seen::Ready(()),
            (ready, total) => Seen::Pending(format!(
                "{ready} of {want} nodes Ready ({total} registered)"
            )),
        },
        Err(e) => Seen::Pending(format!("listing nodes: {}", explain(server, &e))),
    }
}

/// Waits until `/readyz` answers `ok` and `want` nodes are Ready, polling every `every` (at a
/// fixed rate) and reporting each look.
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
    let report = |now: &str| {
        events(Event::Waiting {
            what: format!("the cluster at {server}: {now}"),
            elapsed_ms: u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX),
        })
    };
    let what = format!("the cluster at {server}");
    until_with(
        &Tuning::default(),
        every,
        timeout,
        &what,
        "Ready",
        &report,
        || async { Ok(look(server, client, want).await) },
    )
    .await
    .map_err(|e| ProbeError(e.to_string()))
}

/// [`wait_cluster_with`] for a kubeadm cluster.
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

/// [`wait_cluster_every`] at [`POLL_INTERVAL`].
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

/// Whether the API server at `server` answers an admin of `ca` (one GET of /readyz).
///
/// # Errors
/// Why not, in one line.
pub async fn reachable(server: &str, ca: &Ca) -> Result<(), String> {
    let client = ApiClient::kubeadm(ca)?.connect(server)?;
    let req = http::Request::get("/readyz")
        .body(Vec::new())
        .map_err(|e| e.to_string())?;
    client
        .request_text(req)
        .await
        .map(|_| ())
        .map_err(|e| explain(server, &e))
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
    let client = ApiClient::kubeadm(ca)?.connect(server)?;
    let secret: Secret =
        serde_json::from_value(crate::core::pki::bootstrap_token_secret(token, expiration))
            .map_err(|e| format!("the bootstrap token's Secret: {e}"))?;
    Api::<Secret>::namespaced(client, "kube-system")
        .create(&PostParams::default(), &secret)
        .await
        .map(|_| ())
        .map_err(|e| format!("creating a bootstrap token: {}", explain(server, &e)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn counts_ready_nodes() {
        let nodes: Vec<Node> = serde_json::from_str(
            r#"[
            {"metadata":{"name":"a"},"status":{"conditions":[{"type":"Ready","status":"True"}]}},
            {"metadata":{"name":"b"},"status":{"conditions":[{"type":"MemoryPressure","status":"False"},{"type":"Ready","status":"False"}]}},
            {"metadata":{"name":"c"},"status":{}}]"#,
        )
        .unwrap();
        assert_eq!(ready_nodes(&nodes), (1, 3));
    }

    #[tokio::test(start_paused = true)]
    async fn the_wait_polls_at_its_interval_and_gives_up_at_its_deadline() {
        // No server at all: every look is pending (connection refused), and the wait ends at its
        // deadline, having reported each look.
        let ca = crate::core::pki::generate_ca(time::OffsetDateTime::now_utc()).unwrap();
        let seen = Arc::new(std::sync::Mutex::new(0));
        let s = seen.clone();
        let events: EventSink = Arc::new(move |_| *s.lock().unwrap() += 1);
        let start = tokio::time::Instant::now();
        let err = wait_cluster_every(
            "https://127.0.0.1:9",
            &ca,
            1,
            Duration::from_secs(60),
            Duration::from_secs(10),
            &events,
            Instant::now(),
        )
        .await
        .unwrap_err();
        assert!(err.to_string().contains("after 60 s"), "{err}");
        assert_eq!(
            start.elapsed(),
            Duration::from_secs(60),
            "polls at 0, 10, ... 60 s"
        );
        assert_eq!(*seen.lock().unwrap(), 6, "each look reported but the last");
    }
}
