//! Helpers for the emulator tests: run the real binary against the emulator that
//! `localstack/start.sh` started, and inspect the emulator with the SDK.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use std::sync::Arc;

use provision::core::pki::Ca;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::Value;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

pub const REGION: &str = "us-east-1";

/// The emulator's URL: the one `make test` started (PROVISION_EMULATOR_URL), else one this test
/// process starts for itself (installing its venv when missing), which ends with the process.
/// The tests never fall back to real AWS.
pub fn emulator() -> String {
    if let Ok(url) = std::env::var("PROVISION_EMULATOR_URL") {
        return url;
    }
    static OWN: std::sync::OnceLock<OwnEmulator> = std::sync::OnceLock::new();
    OWN.get_or_init(|| OwnEmulator::start(&[])).url.clone()
}

/// A cluster name no other test uses.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "t-{prefix}-{:x}{:x}{}",
        std::process::id() % 4096,
        nanos % 65536,
        N.fetch_add(1, Ordering::SeqCst)
    )
}

/// A test workspace: a spec file and a kubeconfig path in a temporary directory.
pub struct Cluster {
    pub name: String,
    pub dir: tempfile::TempDir,
    pub spec: PathBuf,
}

impl Cluster {
    pub fn new(prefix: &str, workers: u32, extra_kubeadm: &str) -> Cluster {
        let name = unique(prefix);
        let dir = tempfile::tempdir().unwrap();
        let spec = dir.path().join("cluster.toml");
        std::fs::write(
            &spec,
            format!(
                r#"name = "{name}"
region = "{REGION}"
kind = "kubeadm"

[network]
vpc_cidr = "10.40.0.0/16"
availability_zones = 2
admin_cidrs = ["198.51.100.0/24"]

[kubeadm]
cni = "calico"
instance_type = "t3.medium"
workers = {workers}
{extra_kubeadm}
"#
            ),
        )
        .unwrap();
        Cluster { name, dir, spec }
    }

    /// An EKS cluster spec: `network` and `eks` are the tables' bodies (after their headers).
    pub fn eks(prefix: &str, network: &str, eks: &str) -> Cluster {
        let name = unique(prefix);
        let dir = tempfile::tempdir().unwrap();
        let spec = dir.path().join("cluster.toml");
        std::fs::write(
            &spec,
            format!(
                r#"name = "{name}"
region = "{REGION}"
kind = "eks"

[network]
vpc_cidr = "10.50.0.0/16"
admin_cidrs = ["198.51.100.0/24"]
{network}

[eks]
{eks}
"#
            ),
        )
        .unwrap();
        Cluster { name, dir, spec }
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("kubeconfig")
    }

    pub fn spec_arg(&self) -> &str {
        self.spec.to_str().unwrap()
    }

    /// Runs `provision --output json ARGS` against the emulator.
    pub fn run(&self, args: &[&str]) -> Run {
        let out = self.command(args).output().unwrap();
        Run::from_output(out)
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_provision"));
        cmd.arg("--output").arg("json").args(args);
        env(&mut cmd, &self.kubeconfig());
        cmd
    }

    pub fn up(&self) -> Run {
        let r = self.run(&["up", "-f", self.spec_arg()]);
        assert!(r.ok(), "up failed:\n{}", r.stderr);
        r
    }

    pub fn down(&self) -> Run {
        let r = self.run(&["down", "-f", self.spec_arg()]);
        assert!(r.ok(), "down failed:\n{}", r.stderr);
        r
    }
}

pub fn env(cmd: &mut Command, kubeconfig: &Path) {
    cmd.env("AWS_ENDPOINT_URL", emulator())
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", REGION)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("KUBECONFIG", kubeconfig)
        .env("PROVISION_DEPENDENCY_TIMEOUT", "3")
        .env_remove("AWS_PROFILE")
        .stdin(Stdio::null());
}

/// The outcome of one run: exit status, JSON events and the final summary.
pub struct Run {
    pub code: Option<i32>,
    pub events: Vec<Value>,
    pub stderr: String,
}

impl Run {
    pub fn from_output(out: Output) -> Run {
        let stdout = String::from_utf8_lossy(&out.stdout);
        let events = stdout
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
            .collect();
        Run {
            code: out.status.code(),
            events,
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    pub fn ok(&self) -> bool {
        self.code == Some(0)
    }

    pub fn summary(&self) -> &Value {
        self.events
            .iter()
            .rev()
            .find(|e| e["event"] == "summary")
            .unwrap_or_else(|| panic!("no summary; stderr:\n{}", self.stderr))
    }

    /// Count of one operation in the summary's `api_calls`.
    pub fn calls(&self, service: &str, op: &str) -> u64 {
        self.summary()["api_calls"]["by_operation"][service][op]
            .as_u64()
            .unwrap_or(0)
    }

    pub fn total_calls(&self) -> u64 {
        self.summary()["api_calls"]["total"].as_u64().unwrap()
    }

    /// Operations whose name says they change something, leaving out the cluster lock's
    /// PutParameter and DeleteParameter: every `up` and `down` takes the lock (a run that
    /// waited for it reports how many creates it tried).
    pub fn mutating_calls(&self) -> Vec<String> {
        let locked = ["up", "down"].contains(&self.summary()["command"].as_str().unwrap_or(""));
        let creates = self.summary()["lock"]["creates"].as_u64().unwrap_or(1);
        let mut out = Vec::new();
        if let Some(services) = self.summary()["api_calls"]["by_operation"].as_object() {
            for (svc, ops) in services {
                for (op, n) in ops.as_object().unwrap() {
                    let lock_ops = match (locked && svc == "SSM", op.as_str()) {
                        (true, "PutParameter") => creates,
                        (true, "DeleteParameter") => 1,
                        _ => 0,
                    };
                    if !["Describe", "Get", "List"]
                        .iter()
                        .any(|p| op.starts_with(p))
                        && n.as_u64().unwrap() > lock_ops
                    {
                        out.push(format!("{svc}:{op}"));
                    }
                }
            }
        }
        out
    }

    /// (resource id, action) of the summary's resources.
    pub fn actions(&self) -> Vec<(String, String)> {
        self.actions_of("resources")
    }

    /// (id, action) of the summary's list `field` (`resources`, or `plan`'s rows).
    pub fn actions_of(&self, field: &str) -> Vec<(String, String)> {
        self.summary()[field]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["id"].as_str().unwrap().to_string(),
                    r["action"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }
}

/// SDK clients on the emulator, for inspecting what the binary did.
pub async fn sdk() -> provision::aws::Clients {
    provision::aws::clients_for_endpoint(REGION, &emulator()).await
}

/// An instance's user data, as launched.
pub async fn user_data(c: &provision::aws::Clients, instance: &str) -> String {
    use base64::Engine as _;
    let out = c
        .ec2
        .describe_instance_attribute()
        .instance_id(instance)
        .attribute(aws_sdk_ec2::types::InstanceAttributeName::UserData)
        .send()
        .await
        .unwrap();
    let b64 = out.user_data().and_then(|v| v.value()).unwrap_or_default();
    String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap(),
    )
    .unwrap()
}

/// Everything tagged with the cluster.
pub async fn tagged(
    c: &provision::aws::Clients,
    cluster: &str,
) -> provision::core::kinds::Observed {
    let mut scope = provision::aws::kind::Scope::down(cluster, REGION);
    scope.vpc_attributes = true;
    provision::aws::discover::observe(c, &scope).await.unwrap()
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

async fn serve(
    ca: &Ca,
    readyz: &'static str,
    ready: usize,
    total: usize,
    client_cert: bool,
) -> (String, Arc<std::sync::Mutex<Vec<String>>>) {
    let recorded = Arc::new(std::sync::Mutex::new(Vec::new()));
    let rec = recorded.clone();
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
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
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
                let mut raw = Vec::new();
                let mut chunk = [0u8; 4096];
                let req = loop {
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
                            break text;
                        }
                    } else if n == 0 {
                        break text;
                    }
                };
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
                // Chunked, as the API server answers lists.
                let resp = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n",
                    body.len()
                );
                let _ = tls.write_all(resp.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    (format!("https://{addr}"), recorded)
}

/// An emulator of a test's own (`localstack/emulator.py` on a free port) with a profile set by
/// environment variables (faults, latency); stopped when dropped.
pub struct OwnEmulator {
    child: std::process::Child,
    pub url: String,
}

impl OwnEmulator {
    // Blocks while the emulator starts (once per test process): before any test runs.
    #[allow(clippy::disallowed_methods)]
    pub fn start(env: &[(&str, &str)]) -> OwnEmulator {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let python = root.join("localstack/.venv/bin/python");
        if !python.exists() {
            let need = root.join("localstack/need.sh");
            let out = Command::new(&need).output().unwrap();
            assert!(
                out.status.success(),
                "the emulator's venv is missing and {} could not install it:\n{}",
                need.display(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut cmd = Command::new(python);
        cmd.arg(root.join("localstack/emulator.py"))
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            // It ends with this test process, however that ends.
            .args(["--parent", &std::process::id().to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "the emulator did not start"
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        OwnEmulator {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }

    /// `provision --output json ARGS` for `cl`, against this emulator.
    pub fn command(&self, cl: &Cluster, args: &[&str]) -> Command {
        let mut cmd = cl.command(args);
        cmd.env("AWS_ENDPOINT_URL", &self.url);
        cmd
    }

    pub fn run(&self, cl: &Cluster, args: &[&str]) -> Run {
        Run::from_output(self.command(cl, args).output().unwrap())
    }

    pub async fn sdk(&self) -> provision::aws::Clients {
        provision::aws::clients_for_endpoint(REGION, &self.url).await
    }
}

impl Drop for OwnEmulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
