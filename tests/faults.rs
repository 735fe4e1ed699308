//! Under injected faults (issue 5's `faults` profile of `localstack/emulator.py`): 10% of calls
//! answered with throttling or a 5xx in each protocol's error shape, and the first two uses of
//! every new instance profile (RunInstances) and cluster role (CreateCluster) failing as if IAM
//! had not propagated. `up` then `down` of both kinds of cluster must succeed, seeded.

mod common;

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Cluster, Run};

/// An emulator of our own, with faults on; stopped when dropped.
struct FaultyEmulator {
    child: Child,
    url: String,
}

impl FaultyEmulator {
    fn start(seed: u64) -> FaultyEmulator {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let python = root.join("localstack/.venv/bin/python");
        assert!(
            python.exists(),
            "needs the emulator's venv: run `make deps` (localstack/install.sh)"
        );
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(python)
            .arg(root.join("localstack/emulator.py"))
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .env("PROVISION_EMULATOR_FAULTS", "0.1")
            .env("PROVISION_EMULATOR_IAM_DELAY", "2")
            .env("PROVISION_EMULATOR_SEED", seed.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "the faulty emulator did not start"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        FaultyEmulator {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }

    fn run(&self, cl: &Cluster, args: &[&str]) -> Run {
        let mut cmd = cl.command(args);
        cmd.env("AWS_ENDPOINT_URL", &self.url);
        Run::from_output(cmd.output().unwrap())
    }
}

impl Drop for FaultyEmulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// up, then down, of one cluster on a faulty emulator: both succeed, the faults really hit
/// (more HTTP attempts than operations), and nothing tagged is left.
async fn survives(emu: &FaultyEmulator, cl: &Cluster) -> (u64, u64) {
    let up = emu.run(cl, &["up", "-f", cl.spec_arg()]);
    assert!(up.ok(), "up under faults:\n{}", up.stderr);
    let calls = up.total_calls();
    let attempts = up.summary()["api_calls"]["attempts"].as_u64().unwrap();
    let down = emu.run(cl, &["down", "-f", cl.spec_arg()]);
    assert!(down.ok(), "down under faults:\n{}", down.stderr);
    let c = provision::aws::clients_for_endpoint(common::REGION, &emu.url).await;
    let obs = provision::aws::discover::observe(
        &c,
        &provision::aws::discover::Scope {
            cluster: &cl.name,
            vpc_attributes: false,
            kind: None,
            leftovers: true,
            addons: true,
        },
    )
    .await
    .unwrap();
    assert!(obs.is_empty(), "left behind under faults: {obs:?}");
    (calls, attempts)
}

async fn both_kinds(seed: u64) {
    let emu = FaultyEmulator::start(seed);
    let kubeadm = Cluster::new("fault-k", 2, "[addons]\ntracing = true\n");
    let (calls, attempts) = survives(&emu, &kubeadm).await;
    let eks = Cluster::eks(
        "fault-e",
        "availability_zones = 2",
        "version = \"1.35\"\n[eks.nodegroup]\ninstance_types = [\"t3.large\"]\nmin = 1\nmax = 3\ndesired = 2\n",
    );
    let (eks_calls, eks_attempts) = survives(&emu, &eks).await;
    assert!(
        attempts + eks_attempts > calls + eks_calls,
        "seed {seed}: no fault was injected ({attempts}/{calls}, {eks_attempts}/{eks_calls})"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn up_and_down_survive_faults_seed_1() {
    both_kinds(1).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn up_and_down_survive_faults_seed_2() {
    both_kinds(2).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn up_and_down_survive_faults_seed_3() {
    both_kinds(3).await;
}
