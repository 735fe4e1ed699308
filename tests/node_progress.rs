//! Live node bootstrap progress: the node script (`provision-node.py`, run here as a node would
//! run it, against a stand-in IMDSv2 and the emulator's SSM) reports each boot phase;
//! `up --wait cluster` shows each change, and a failed step ends the wait at once with the
//! node, the phase, the command and its last lines. `down` deletes the reports.

mod common;

use std::io::BufRead as _;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Cluster, sdk};

/// The node script as the kubeadm nodes of `cluster` get it.
fn node_script(cluster: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let text = provision::core::cloudinit::NODE_SCRIPT
        .replace("__NODES__", &provision::core::progress::nodes_path(cluster))
        .replace("__CLUSTER__", cluster);
    std::fs::write(dir.path().join("node.py"), text).unwrap();
    dir
}

/// Runs `node.py ARGS` as instance `imds`'s node would.
fn node(dir: &tempfile::TempDir, imds: &str, args: &[&str]) -> std::process::Output {
    Command::new("python3")
        .arg(dir.path().join("node.py"))
        .args(args)
        .env("PROVISION_IMDS", imds)
        .env("PROVISION_SSM_ENDPOINT", common::emulator())
        .env("PROVISION_PHASE_FILE", dir.path().join("phase"))
        .env("PROVISION_BOOT_FILE", dir.path().join("boot"))
        .output()
        .unwrap()
}

/// The live instance of `cluster` whose logical id is `logical`, once there is one.
async fn instance_of(c: &provision::aws::Clients, cluster: &str, logical: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let obs = common::tagged(c, cluster).await;
        if let Some(i) = obs
            .instances
            .iter()
            .find(|i| i.is_live() && i.logical.as_deref() == Some(logical))
        {
            return i.id.clone();
        }
        assert!(Instant::now() < deadline, "no {logical} instance");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn up_shows_each_phase_and_a_failed_step_ends_the_wait_at_once() {
    let cl = Cluster::new("progress", 1, "");
    let api = common::silent_endpoint().replace("http://", "https://");
    let mut cmd = cl.command(&[
        "up",
        "-f",
        cl.spec_arg(),
        "--no-kubeconfig",
        "--wait",
        "cluster",
        "--api-server",
        &api,
        "--cluster-timeout",
        "600",
    ]);
    // Polls (the reports' included) at a tenth of their interval: 1 s.
    cmd.env("PROVISION_TIME_SCALE", "0.1")
        .stderr(Stdio::piped())
        .stdout(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let reader = {
        let lines = lines.clone();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for l in std::io::BufReader::new(stdout).lines() {
                lines.lock().unwrap().push(l.unwrap());
            }
        })
    };
    let c = sdk().await;
    let master = instance_of(&c, &cl.name, "master").await;
    let worker = instance_of(&c, &cl.name, "workers-0").await;
    let script = node_script(&cl.name);
    let master_imds = common::fake_imds(&master).await;
    let worker_imds = common::fake_imds(&worker).await;
    let worker_script = node_script(&cl.name);

    // A failure the worker reported before this run (an earlier boot): said, not the end.
    let old = serde_json::json!({"instance": worker, "phase": "kubeadm-join", "state": "failed", "started": 1000, "command": "join.sh", "exit_code": 1, "output": "old"});
    common::put_report(&c, &cl.name, &worker, &old).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        child.try_wait().unwrap().is_none(),
        "an old failure ended the wait"
    );

    // The worker prepares; the master prepares, then its init fails.
    let out = node(&worker_script, &worker_imds, &["step", "prepare", "true"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = node(&worker_script, &worker_imds, &["phase", "kubeadm-join"]);
    assert!(out.status.success());
    let out = node(&script, &master_imds, &["step", "prepare", "true"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Reported with no error on the console: the node's reports are written.
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    let failed_at = Instant::now();
    let out = node(
        &script,
        &master_imds,
        &[
            "step",
            "kubeadm-init",
            "sh",
            "-c",
            "echo '[init] pulling images'; echo 'error: port 6443 is in use' >&2; exit 3",
        ],
    );
    assert_eq!(out.status.code(), Some(3), "the step's own exit code");
    // The step's output still reaches the console (the node's cloud-init log).
    assert!(String::from_utf8_lossy(&out.stdout).contains("port 6443 is in use"));

    let status = child.wait().unwrap();
    let waited = failed_at.elapsed();
    reader.join().unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        waited < Duration::from_secs(30),
        "the wait went on {waited:?} after the failure"
    );
    for want in [
        "master",
        &master,
        "failed in phase kubeadm-init",
        "exited 3",
        "error: port 6443 is in use",
        "[init] pulling images",
        "the console's last lines:",
    ] {
        assert!(stderr.contains(want), "no `{want}` in:\n{stderr}");
    }
    // The old failure was said as a warning.
    assert!(
        lines
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("\"warning\"") && l.contains("reported before this run")),
        "no warning about the old failure"
    );
    // Each change was said as it happened, in order, per node.
    let events: Vec<serde_json::Value> = lines
        .lock()
        .unwrap()
        .iter()
        .filter_map(|l| serde_json::from_str(l).ok())
        .filter(|e: &serde_json::Value| e["event"] == "node")
        .collect();
    let of = |i: &str| -> Vec<(String, String)> {
        events
            .iter()
            .filter(|e| e["instance"] == i)
            .map(|e| {
                (
                    e["phase"].as_str().unwrap().into(),
                    e["state"].as_str().unwrap().into(),
                )
            })
            .collect()
    };
    let m = of(&master);
    assert_eq!(
        m.first(),
        Some(&("prepare".to_string(), "running".to_string())),
        "{events:?}"
    );
    assert_eq!(
        m.last(),
        Some(&("kubeadm-init".to_string(), "failed".to_string())),
        "{events:?}"
    );
    assert_eq!(
        of(&worker).last(),
        Some(&("kubeadm-join".to_string(), "running".to_string())),
        "{events:?}"
    );
    assert!(
        events
            .iter()
            .all(|e| e["node"] == "master" || e["node"] == "workers-0")
    );

    // `down` deletes the reports with the cluster.
    let reports = provision::aws::node_reports::read(&c, &cl.name)
        .await
        .unwrap();
    assert_eq!(reports.len(), 2);
    cl.down();
    assert!(
        provision::aws::node_reports::read(&c, &cl.name)
            .await
            .unwrap()
            .is_empty()
    );
}

#[test]
fn a_report_that_cannot_be_written_never_changes_a_steps_exit_code() {
    // A node that cannot reach IMDS (or SSM): the step still runs, keeps its exit code, and the
    // console says the report could not be written.
    let cl = common::unique("noreport");
    let script = node_script(&cl);
    let out = Command::new("python3")
        .arg(script.path().join("node.py"))
        .args(["step", "prepare", "sh", "-c", "echo ran; exit 7"])
        .env("PROVISION_IMDS", "http://127.0.0.1:9")
        .env("PROVISION_PHASE_FILE", script.path().join("phase"))
        .env("PROVISION_BOOT_FILE", script.path().join("boot"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(7));
    assert!(String::from_utf8_lossy(&out.stdout).contains("ran"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("could not report phase prepare (running)"),
        "{err}"
    );
    assert!(
        err.contains("could not report phase prepare (failed)"),
        "{err}"
    );
}
