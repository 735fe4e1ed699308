//! SIGINT and SIGTERM in the middle of `up`: exit 130 and 143, the cluster lock released at
//! once (a cancelled CI job blocks nobody), and the next `up` continues from what was made.

mod common;

use std::process::Stdio;

use common::{Cluster, OwnEmulator};

/// Starts `up`, waits for its first instance launch (so that steps are in flight), sends
/// `signal`, and returns the exit code and stderr.
fn interrupted_up(emu: &OwnEmulator, cl: &Cluster, signal: &str) -> (Option<i32>, String) {
    let child = common::spawn_until(
        emu.command(cl, &["up", "-f", cl.spec_arg(), "--wait", "running"])
            .stderr(Stdio::piped()),
        &["\"kind\":\"instance\"", "\"creating\""],
    );
    common::send_signal(&child, signal);
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_signal_stops_up_releases_the_lock_and_the_next_up_continues() {
    // Instances stay pending for 3 s: the run is mid-flight when the signal comes.
    let emu = OwnEmulator::start(&[("PROVISION_EMULATOR_EC2_BOOT", "3")]);
    let c = emu.sdk().await;
    for (signal, code) in [("-TERM", 143), ("-INT", 130)] {
        let cl = Cluster::new("sig", 1, "");
        let (got, stderr) = interrupted_up(&emu, &cl, signal);
        assert_eq!(got, Some(code), "{signal}: {stderr}");
        assert!(
            stderr.contains("lock released") && stderr.contains("run the same command again"),
            "{signal}: {stderr}"
        );
        let lock = c
            .ssm
            .get_parameter()
            .name(format!("/provision/{}/lock", cl.name))
            .send()
            .await;
        let gone = lock
            .as_ref()
            .err()
            .and_then(|e| e.as_service_error())
            .is_some_and(|e| e.is_parameter_not_found());
        assert!(gone, "{signal}: the lock is gone: {lock:?}");
        // The next run neither waits for a lock nor makes anything twice.
        let again = emu.run(
            &cl,
            &[
                "up",
                "-f",
                cl.spec_arg(),
                "--wait",
                "running",
                "--lock-timeout",
                "0",
            ],
        );
        assert!(again.ok(), "{signal}: {}", again.stderr);
        assert!(again.summary()["lock"]["waited_ms"].as_u64().unwrap_or(0) < 1000);
        let down = emu.run(&cl, &["down", "-f", cl.spec_arg()]);
        assert!(down.ok(), "{}", down.stderr);
    }
}

/// A signal while `up` waits for another run's lock: it stops at once with 143, and the other
/// run's lock is left exactly as it was.
#[tokio::test(flavor = "multi_thread")]
async fn a_signal_while_waiting_for_the_lock_leaves_the_others_lock_alone() {
    let cl = Cluster::new("sig-wait", 1, "");
    let c = common::sdk().await;
    // This test process holds the lock: a live local holder, waited for.
    let me = std::process::id();
    let h = common::holder(me, common::start_of(me));
    common::put_lock(&c, &cl.name, &h).await;
    let child = common::spawn_until(
        cl.command(&["up", "-f", cl.spec_arg(), "--lock-timeout", "600"])
            .stderr(Stdio::piped()),
        &["the cluster lock, held by"],
    );
    common::send_signal(&child, "-TERM");
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(143),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let name = provision::aws::lock::parameter_name(&cl.name);
    let still = provision::aws::lock::read(&c, &name).await.unwrap();
    assert_eq!(still, Some(serde_json::to_string(&h).unwrap()), "untouched");
    c.ssm.delete_parameter().name(&name).send().await.unwrap();
}
