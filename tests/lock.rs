//! The cluster lock (`engine::lock`): two `up` runs of one spec at once end with one set of
//! resources; a lock held by a live run is waited for and its holder named; a lock left by a
//! dead run is taken over at once; `provision unlock` removes one.

mod common;

use common::{Cluster, Run, holder, now, put_lock, sdk, start_of, tagged};
use provision::core::lock::Holder;

/// A lock record of a process of this machine that has exited.
fn dead_holder() -> Holder {
    let mut gone = std::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .unwrap();
    let dead = holder(gone.id(), start_of(gone.id()));
    gone.kill().unwrap();
    gone.wait().unwrap();
    dead
}

/// (VPCs, subnets, instances) tagged with the cluster.
async fn census(c: &provision::aws::Clients, cluster: &str) -> (usize, usize, usize) {
    let o = tagged(c, cluster).await;
    (o.vpcs.len(), o.subnets.len(), o.instances.len())
}

#[tokio::test(flavor = "multi_thread")]
async fn two_ups_of_one_spec_at_once_make_one_cluster() {
    let cl = Cluster::new("twice", 2, "");
    let spawn = || {
        cl.command(&["up", "--wait", "running", "-f", cl.spec_arg()])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    let a = Run::from_output(a.wait_with_output().unwrap());
    let b = Run::from_output(b.wait_with_output().unwrap());
    assert!(a.ok(), "first up:\n{}", a.stderr);
    assert!(b.ok(), "second up:\n{}", b.stderr);
    let waited = |r: &Run| r.summary()["lock"]["waited_ms"].as_u64().unwrap();
    let (first, second) = if waited(&a) <= waited(&b) {
        (&a, &b)
    } else {
        (&b, &a)
    };
    assert!(
        waited(second) > 0,
        "one run waited for the other's lock (waited {} and {} ms)",
        waited(&a),
        waited(&b)
    );
    assert!(
        second
            .events
            .iter()
            .any(|e| e["event"] == "waiting"
                && e["what"].as_str().unwrap().contains("the cluster lock")),
        "the waiting run said what it waits for"
    );
    assert!(
        !first.mutating_calls().is_empty(),
        "the first run created the cluster"
    );
    assert_eq!(
        second.mutating_calls(),
        Vec::<String>::new(),
        "the second found it complete"
    );
    let c = sdk().await;
    assert_eq!(
        census(&c, &cl.name).await,
        (1, 2, 3),
        "one set of resources"
    );
    cl.down();
    assert!(tagged(&c, &cl.name).await.is_empty());
    let lock = provision::aws::lock::parameter_name(&cl.name);
    assert_eq!(provision::aws::lock::read(&c, &lock).await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lock_held_by_a_live_run_is_waited_for_then_named() {
    let cl = Cluster::new("held", 1, "");
    let c = sdk().await;
    // Held by this test process: alive, on this machine.
    let me = std::process::id();
    put_lock(&c, &cl.name, &holder(me, start_of(me))).await;

    let up = cl.run(&["up", "--lock-timeout", "2", "-f", cl.spec_arg()]);
    assert_eq!(up.code, Some(1), "{}", up.stderr);
    assert!(
        up.stderr.contains(&format!("pid {me}"))
            && up.stderr.contains("test-host")
            && up.stderr.contains("--lock-timeout")
            && up.stderr.contains("provision unlock"),
        "{}",
        up.stderr
    );
    assert_eq!(up.mutating_calls(), Vec::<String>::new(), "changed nothing");
    assert!(tagged(&c, &cl.name).await.is_empty());
    let down = cl.run(&["down", "--lock-timeout", "0", "-f", cl.spec_arg()]);
    assert_eq!(down.code, Some(1), "down waits for the lock too");

    let unlock = cl.run(&["unlock", "-f", cl.spec_arg()]);
    assert!(unlock.ok(), "{}", unlock.stderr);
    assert!(
        unlock.summary()["removed"]
            .as_str()
            .unwrap()
            .contains(&format!("pid {me}"))
    );
    let lock = provision::aws::lock::parameter_name(&cl.name);
    assert_eq!(provision::aws::lock::read(&c, &lock).await.unwrap(), None);
    let again = cl.run(&["unlock", "-f", cl.spec_arg()]);
    assert!(again.ok() && again.summary()["removed"].is_null());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lock_left_by_a_dead_run_is_taken_over_at_once() {
    let cl = Cluster::new("dead", 1, "");
    let c = sdk().await;
    let dead = dead_holder();
    put_lock(&c, &cl.name, &dead).await;

    let up = cl.run(&[
        "up",
        "--wait",
        "running",
        "--lock-timeout",
        "0",
        "-f",
        cl.spec_arg(),
    ]);
    assert!(up.ok(), "{}", up.stderr);
    assert!(
        up.warnings()
            .iter()
            .any(|w| w.contains(&format!("process {} is gone", dead.pid))),
        "says whose lock it took over and why"
    );
    // A lock of another machine whose lease ended is taken over too.
    let remote = Holder {
        boot_id: "another-machine".into(),
        expires: now() - 1,
        ..holder(1, "1".into())
    };
    put_lock(&c, &cl.name, &remote).await;
    let down = cl.run(&["down", "--lock-timeout", "0", "-f", cl.spec_arg()]);
    assert!(down.ok(), "{}", down.stderr);
    assert!(
        down.warnings().iter().any(|w| w.contains("lease ended")),
        "{:?}",
        down.events
    );
    assert!(tagged(&c, &cl.name).await.is_empty());
    let lock = provision::aws::lock::parameter_name(&cl.name);
    assert_eq!(provision::aws::lock::read(&c, &lock).await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_takeover_claimed_by_another_run_is_waited_for_and_a_dead_claim_cleared() {
    let cl = Cluster::new("claim", 1, "");
    let c = sdk().await;
    let dead = dead_holder();
    put_lock(&c, &cl.name, &dead).await;
    let lock = provision::aws::lock::parameter_name(&cl.name);
    let claim = format!("{lock}-takeover");
    let tags = provision::core::tags::tags_for(&cl.name, "lock", false, &Default::default());
    // Another run is taking the stale lock over right now: this one must not.
    let fresh =
        serde_json::json!({"stale": dead.id, "by": "someone-else", "at": now()}).to_string();
    assert!(
        provision::aws::lock::create(&c, &claim, &fresh, &tags)
            .await
            .unwrap()
    );
    let up = cl.run(&["up", "--lock-timeout", "2", "-f", cl.spec_arg()]);
    assert_eq!(up.code, Some(1), "{}", up.stderr);
    assert!(tagged(&c, &cl.name).await.is_empty(), "changed nothing");
    assert!(
        provision::aws::lock::read(&c, &lock)
            .await
            .unwrap()
            .unwrap()
            .contains(&dead.id),
        "the stale record is left to the run that claimed it"
    );
    // A claim older than a minute was left by a taker that died: cleared, then taken over.
    provision::aws::lock::delete(&c, &claim).await.unwrap();
    let old = serde_json::json!({"stale": dead.id, "by": "died", "at": now() - 120}).to_string();
    assert!(
        provision::aws::lock::create(&c, &claim, &old, &tags)
            .await
            .unwrap()
    );
    let up = cl.run(&[
        "up",
        "--wait",
        "running",
        "--lock-timeout",
        "5",
        "-f",
        cl.spec_arg(),
    ]);
    assert!(up.ok(), "{}", up.stderr);
    assert_eq!(provision::aws::lock::read(&c, &claim).await.unwrap(), None);
    cl.down();
    assert_eq!(provision::aws::lock::read(&c, &lock).await.unwrap(), None);
    assert!(tagged(&c, &cl.name).await.is_empty());
}

/// A parameter at the lock's name without the cluster's tag, even one that looks like a lock
/// left by a dead run, is someone else's: `up` neither waits for it nor takes it over nor
/// deletes it, and says how to remove it (not `provision unlock`, which refuses it too).
#[tokio::test(flavor = "multi_thread")]
async fn an_untagged_lock_parameter_is_neither_taken_over_nor_deleted() {
    let cl = Cluster::new("untagged-lock", 1, "");
    let c = sdk().await;
    let name = provision::aws::lock::parameter_name(&cl.name);
    c.ssm
        .put_parameter()
        .name(&name)
        .value(serde_json::to_string(&dead_holder()).unwrap())
        .r#type(aws_sdk_ssm::types::ParameterType::String)
        .send()
        .await
        .unwrap();
    let up = cl.run(&["up", "--lock-timeout", "0", "-f", cl.spec_arg()]);
    assert_eq!(up.code, Some(1), "{}", up.stderr);
    assert!(
        up.stderr.contains("not this cluster's lock")
            && up.stderr.contains("aws ssm delete-parameter"),
        "{}",
        up.stderr
    );
    assert!(!up.stderr.contains("provision unlock"), "{}", up.stderr);
    assert!(
        provision::aws::lock::read(&c, &name)
            .await
            .unwrap()
            .is_some(),
        "left alone"
    );
    assert!(tagged(&c, &cl.name).await.is_empty(), "nothing made");
    c.ssm.delete_parameter().name(&name).send().await.unwrap();
}
