//! Helpers for the emulator tests: run the real binary against the emulator that
//! `localstack/start.sh` started, and inspect the emulator with the SDK.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use serde_json::Value;

pub const REGION: &str = "us-east-1";

/// The emulator's URL. The tests never fall back to real AWS: without the variable they fail
/// and say how to start the emulator.
pub fn emulator() -> String {
    std::env::var("PROVISION_EMULATOR_URL").expect(
        "needs the AWS emulator: run `make test` (or `localstack/start.sh` and `source localstack/env.sh`), which sets PROVISION_EMULATOR_URL",
    )
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

    /// Operations whose name says they change something.
    pub fn mutating_calls(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(services) = self.summary()["api_calls"]["by_operation"].as_object() {
            for (svc, ops) in services {
                for op in ops.as_object().unwrap().keys() {
                    if !["Describe", "Get", "List"]
                        .iter()
                        .any(|p| op.starts_with(p))
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
        self.summary()["resources"]
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

/// Everything tagged with the cluster.
pub async fn tagged(c: &provision::aws::Clients, cluster: &str) -> provision::core::plan::Observed {
    provision::aws::discover::observe(
        c,
        &provision::aws::discover::Scope {
            cluster,
            vpc_attributes: true,
        },
    )
    .await
    .unwrap()
}
