//! Helpers for the integration tests: run the real binary against the emulator (the one
//! `make test` started, or one of the test process's own), inspect what it did with the SDK
//! (`aws`), and stand in for the endpoints it talks to (`endpoints`).

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use serde_json::Value;

mod aws;
pub mod crash;
mod endpoints;
mod kube_api;
mod kube_watch;
mod lock;
mod mocks;
mod own_emulator;

// Each test file uses some of them.
#[allow(unused_imports)]
pub use aws::*;
#[allow(unused_imports)]
pub use endpoints::*;
#[allow(unused_imports)]
pub use kube_api::*;
#[allow(unused_imports)]
pub use lock::*;
#[allow(unused_imports)]
pub use mocks::*;
#[allow(unused_imports)]
pub use own_emulator::OwnEmulator;

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

    /// A kubeadm cluster whose workers are `pools` (`[[kubeadm.pools]]` tables) instead of
    /// `workers`.
    pub fn with_pools(prefix: &str, pools: &str) -> Cluster {
        let cl = Cluster::new(prefix, 1, "");
        cl.edit("workers = 1\n", "");
        let spec = std::fs::read_to_string(&cl.spec).unwrap();
        std::fs::write(&cl.spec, format!("{spec}{pools}")).unwrap();
        cl
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

    /// `up` without a kubeconfig, waiting only for the instances to run; must succeed.
    pub fn up_running(&self) -> Run {
        let r = self.run(&[
            "up",
            "-f",
            self.spec_arg(),
            "--no-kubeconfig",
            "--wait",
            "running",
        ]);
        assert!(r.ok(), "up failed:\n{}", r.stderr);
        r
    }

    /// Gives the kubeadm spec a `ttl`.
    pub fn with_ttl(&self, ttl: &str) {
        self.edit(
            "kind = \"kubeadm\"\n",
            &format!("kind = \"kubeadm\"\nttl = \"{ttl}\"\n"),
        );
    }

    /// Replaces `from` (which must be there) by `to` in the spec.
    pub fn edit(&self, from: &str, to: &str) {
        let spec = std::fs::read_to_string(&self.spec).unwrap();
        assert!(spec.contains(from), "{from} not in the spec");
        std::fs::write(&self.spec, spec.replace(from, to)).unwrap();
    }
}

/// The node group and access entry of the EKS tests' clusters (the `[eks]` table's body after
/// its `version`).
pub const EKS_NODEGROUP: &str = r#"
[eks.nodegroup]
instance_types = ["t3.large"]
min = 1
max = 3
desired = 2
labels = { "example.com/pool" = "default" }

[[eks.access]]
principal_arn = "arn:aws:iam::123456789012:role/platform-admins"
policy = "edit"
namespaces = ["team-a"]
"#;

/// An EKS cluster of version 1.35 with `EKS_NODEGROUP`; `network` is the `[network]` table's body.
pub fn eks_cluster(prefix: &str, network: &str) -> Cluster {
    Cluster::eks(
        prefix,
        network,
        &format!("version = \"1.35\"\n{EKS_NODEGROUP}"),
    )
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

    /// The ids of the rows of the summary's plan whose action is `action`, in the plan's order.
    pub fn plan_ids(&self, action: &str) -> Vec<String> {
        self.actions_of("plan")
            .into_iter()
            .filter(|(_, a)| a == action)
            .map(|(id, _)| id)
            .collect()
    }

    /// The `aws_id` of every row of the summary's plan (empty where a row has none).
    pub fn plan_aws_ids(&self) -> Vec<String> {
        self.summary()["plan"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["aws_id"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    /// The operations a `--trace-api-calls` run called, in order.
    pub fn api_call_order(&self) -> Vec<String> {
        self.events
            .iter()
            .filter(|e| e["event"] == "api_call")
            .map(|e| e["operation"].as_str().unwrap().to_string())
            .collect()
    }

    /// The messages of the run's warnings.
    pub fn warnings(&self) -> Vec<&str> {
        self.events
            .iter()
            .filter(|e| e["event"] == "warning")
            .filter_map(|e| e["message"].as_str())
            .collect()
    }
}

/// Where `op` is first in `calls` (of `Run::api_call_order`); panics naming the calls if absent.
pub fn first_call(calls: &[String], op: &str) -> usize {
    calls
        .iter()
        .position(|c| c == op)
        .unwrap_or_else(|| panic!("no {op} in {calls:?}"))
}

/// Where `op` is last in `calls` (of `Run::api_call_order`); panics naming the calls if absent.
pub fn last_call(calls: &[String], op: &str) -> usize {
    calls
        .iter()
        .rposition(|c| c == op)
        .unwrap_or_else(|| panic!("no {op} in {calls:?}"))
}

/// Starts `cmd` with its stdout piped and reads its JSON lines until one holds every one of
/// `marks`: the run is then mid-flight (the child still runs). Fails if the run ends first.
pub fn spawn_until(cmd: &mut Command, marks: &[&str]) -> std::process::Child {
    use std::io::BufRead as _;
    let mut child = cmd.stdout(Stdio::piped()).spawn().unwrap();
    let stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    for line in stdout.lines() {
        let line = line.unwrap();
        if marks.iter().all(|m| line.contains(m)) {
            return child;
        }
    }
    let _ = child.wait();
    panic!("the run ended before a line with {marks:?}");
}

/// Sends `signal` (`-TERM`, `-INT`) to `child`.
pub fn send_signal(child: &std::process::Child, signal: &str) {
    let sent = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
}
