//! Crash-resume of a rolling replacement: a kubeadm pool of 4 workers whose instance type
//! changes, `up` killed (SIGKILL) at seeded moments of the replacement (from the first new
//! instance to the wait for the last wave's), against the emulator's shortened latency profile
//! and a stand-in API server. A kill right after an event of the replacement must leave old and
//! new nodes side by side (the moments do not miss it). Each time the next `up` finishes it
//! with no double replacement (exactly 4 new instances were ever launched), no node lost (every
//! old instance was drained through the API before it was terminated), a third `up` changes
//! nothing and `down` leaves nothing.
//!
//! `PROVISION_CRASH_POINTS` (default 10, of which this test takes half) and
//! `PROVISION_CRASH_SEED` (default 1) set how many moments and which.

mod common;

use common::crash::{
    Moment, PROFILE, Span, down_reference, each_moment, env_u64, kill_run_at, killed, points, run,
    settles_then_goes,
};
use common::{Cluster, OwnEmulator, kube_stand_in_for, node_name, tagged};
use provision::core::kinds::instances::ObsInstance;

const POOL: &str = "\n[[kubeadm.pools]]\nname = \"general\"\ncount = 4\nmax_surge = 2\n";

/// How long a new Node takes to be Ready after its instance runs (the reference's as the points').
const READY_AFTER: std::time::Duration = std::time::Duration::from_millis(300);

fn roll_cluster(i: usize) -> Cluster {
    Cluster::with_pools(&format!("crash-r{i}"), POOL)
}

fn pool(all: &[ObsInstance]) -> Vec<&ObsInstance> {
    all.iter()
        .filter(|i| {
            i.logical
                .as_deref()
                .is_some_and(|l| l.starts_with("workers-general-"))
        })
        .collect()
}

/// A cluster made, its instance type changed; the instance ids of its pool.
async fn made(emu: &OwnEmulator, i: usize) -> Result<(Cluster, Vec<String>), String> {
    let cl = roll_cluster(i);
    let up = tokio::task::block_in_place(|| {
        run(emu, &cl, &["up", "-f", cl.spec_arg(), "--wait", "running"])
    });
    if !up.ok() {
        return Err(format!("the first up failed:\n{}", up.stderr));
    }
    let c = emu.sdk().await;
    let old = pool(&Box::pin(tagged(&c, &cl.name)).await.instances)
        .iter()
        .map(|i| i.id.clone())
        .collect();
    cl.edit("count = 4\n", "count = 4\ninstance_type = \"t3.large\"\n");
    Ok((cl, old))
}

/// 4 live t3.large workers; 8 instances ever in the pool; every old one drained.
async fn rolled(
    emu: &OwnEmulator,
    cl: &Cluster,
    old: &[String],
    drained: &std::collections::BTreeSet<String>,
) -> Result<(), String> {
    let c = emu.sdk().await;
    let all = Box::pin(tagged(&c, &cl.name)).await.instances;
    let pool = pool(&all);
    let live: Vec<&&ObsInstance> = pool.iter().filter(|i| i.is_live()).collect();
    let mut wrong = Vec::new();
    if live.len() != 4
        || live
            .iter()
            .any(|i| i.instance_type.as_deref() != Some("t3.large") || old.contains(&i.id))
    {
        wrong.push(format!("live: {live:?}"));
    }
    if pool.len() != 8 {
        wrong.push(format!(
            "{} instances were launched in the pool, not 4 + 4",
            pool.len()
        ));
    }
    for i in pool.iter().filter(|i| old.contains(&i.id)) {
        let node = node_name(i.private_ip.as_deref().unwrap_or_default());
        if !drained.contains(&node) {
            wrong.push(format!("{} ({node}) went without a drain", i.id));
        }
    }
    if wrong.is_empty() {
        Ok(())
    } else {
        Err(wrong.join("; "))
    }
}

/// One point; a kill right after an event of the replacement must leave it half done (old and
/// new nodes both live).
async fn point(emu: &OwnEmulator, i: usize, at: Moment) -> Result<(), String> {
    let (cl, old) = Box::pin(made(emu, i)).await?;
    let c = emu.sdk().await;
    let k = kube_stand_in_for(&c, &cl, 1).await;
    k.state.lock().unwrap().ready_after = READY_AFTER;
    let args = [
        "up",
        "-f",
        cl.spec_arg(),
        "--wait",
        "running",
        "--api-server",
        &k.url,
    ];
    let finished = tokio::task::block_in_place(|| kill_run_at(emu, &cl, &args, at));
    let after_kill = Box::pin(tagged(&c, &cl.name)).await.instances;
    let live = pool(&after_kill);
    let (old_live, new_live) = live
        .iter()
        .filter(|i| i.is_live())
        .fold((0, 0), |(o, n), i| {
            if old.contains(&i.id) {
                (o + 1, n)
            } else {
                (o, n + 1)
            }
        });
    if matches!(at, Moment::Event(_)) && !(old_live > 0 && new_live > 0) {
        return Err(format!(
            "the kill left {old_live} old and {new_live} new nodes live: the moments miss the replacement"
        ));
    }
    let again = tokio::task::block_in_place(|| run(emu, &cl, &args));
    if !again.ok() {
        return Err(format!("resumed up failed:\n{}", again.stderr));
    }
    let (drained, in_service) = {
        let st = k.state.lock().unwrap();
        (st.deleted.clone(), st.in_service_at_cordon.clone())
    };
    // The control plane and 4 workers in service through every drain, killed run or not.
    if let Some(low) = in_service.iter().min().filter(|n| **n < 5) {
        return Err(format!(
            "a drain left {low} nodes in service (the control plane and 4 workers wanted): {in_service:?}"
        ));
    }
    Box::pin(rolled(emu, &cl, &old, &drained))
        .await
        .map_err(|e| {
            format!(
                "after the resumed up (the killed run {}): {e}",
                killed(finished)
            )
        })?;
    Box::pin(settles_then_goes(emu, &cl, &args)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rolling_replacement_killed_at_random_moments_resumes_without_doubles_or_losses() {
    let emu = OwnEmulator::start(PROFILE);
    let points = points().div_ceil(2);
    let seed = env_u64("PROVISION_CRASH_SEED", 1);
    // The reference: one uninterrupted replacement and its resource events.
    let (reference, old) = Box::pin(made(&emu, 0)).await.unwrap();
    let c = emu.sdk().await;
    let k = kube_stand_in_for(&c, &reference, 1).await;
    k.state.lock().unwrap().ready_after = READY_AFTER;
    let up = tokio::task::block_in_place(|| {
        run(
            &emu,
            &reference,
            &[
                "up",
                "-f",
                reference.spec_arg(),
                "--api-server",
                &k.url,
                "--wait",
                "running",
            ],
        )
    });
    assert!(up.ok(), "reference replacement failed:\n{}", up.stderr);
    let drained = k.state.lock().unwrap().deleted.clone();
    drop(k);
    Box::pin(rolled(&emu, &reference, &old, &drained))
        .await
        .unwrap();
    let pool_event =
        |e: &serde_json::Value, action: &str| e["kind"] == "worker-pool" && e["action"] == action;
    // From the first new instance to the wait for the last wave's (its old ones are drained only
    // once those are Ready, `ready_after` later).
    let span = Span::between(
        &up,
        |e| pool_event(e, "created"),
        (|e: &serde_json::Value| pool_event(e, "waiting"), 1),
    );
    down_reference(&emu, &reference);

    each_moment(seed, points, ("replacement", span), |i, at| {
        point(&emu, i, at)
    })
    .await;
}
