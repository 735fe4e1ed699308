//! Crash-resume of a restore: a kubeadm cluster whose control plane is lost, with a snapshot in
//! its bucket, and the `up` that restores it killed (SIGKILL) at seeded moments, against the
//! emulator's shortened latency profile. Each time the next `up` finishes with exactly one new
//! control plane ever launched (no double restore), restoring the newest snapshot, the workers
//! untouched; a third `up` changes nothing and `down` leaves nothing, bucket included.
//!
//! `PROVISION_CRASH_POINTS` (default 10, of which this test takes a third) and
//! `PROVISION_CRASH_SEED` (default 1) set how many moments and which.

mod common;

use common::crash::{
    Moment, PROFILE, Span, down_reference, each_moment, env_u64, kill_at, points, reference_run,
    resumes, run,
};
use common::{Cluster, OwnEmulator, tagged, terminate_the_control_plane, user_data};
use provision::core::kinds::instances::ObsInstance;

/// The snapshot's time; its key is `etcd/CLUSTER-ID/` this.
const SNAPSHOT: &str = "20261205T201500Z.tar.gz";

/// A cluster with one worker and a snapshot, its control plane lost: (cluster, the lost control
/// plane, the worker).
async fn lost(emu: &OwnEmulator, i: usize) -> Result<(Cluster, String, String), String> {
    let cl = Cluster::new(&format!("crash-e{i}"), 1, "");
    let up = tokio::task::block_in_place(|| {
        run(emu, &cl, &["up", "-f", cl.spec_arg(), "--wait", "running"])
    });
    if !up.ok() {
        return Err(format!("the first up failed:\n{}", up.stderr));
    }
    let c = emu.sdk().await;
    let bucket =
        provision::core::tags::backup_bucket_name(&cl.name, common::REGION, "123456789012");
    let key = format!("{}{SNAPSHOT}", common::snapshot_prefix(&c, &cl.name).await);
    c.s3.put_object()
        .bucket(&bucket)
        .key(key)
        .body(aws_sdk_s3::primitives::ByteStream::from_static(b"snapshot"))
        .send()
        .await
        .map_err(|e| format!("{e:?}"))?;
    let worker = Box::pin(tagged(&c, &cl.name))
        .await
        .instances
        .iter()
        .find(|i| i.is_live() && i.logical.as_deref() == Some("workers-0"))
        .map(|i| i.id.clone())
        .ok_or("no worker")?;
    let master = terminate_the_control_plane(&c, &cl.name).await;
    Ok((cl, master, worker))
}

/// One control plane launched since the loss, live, restoring the snapshot; the worker kept.
async fn restored(emu: &OwnEmulator, cl: &Cluster, lost: &str, worker: &str) -> Result<(), String> {
    let c = emu.sdk().await;
    let all = Box::pin(tagged(&c, &cl.name)).await.instances;
    let new: Vec<&ObsInstance> = all
        .iter()
        .filter(|i| i.logical.as_deref() == Some("master") && i.id != lost)
        .collect();
    if new.len() != 1 || !new[0].is_live() {
        return Err(format!("control planes launched since the loss: {new:?}"));
    }
    if new[0].private_ip.as_deref() != Some("10.40.0.10") {
        return Err(format!(
            "the new control plane is at {:?}",
            new[0].private_ip
        ));
    }
    if !user_data(&c, &new[0].id).await.contains(SNAPSHOT) {
        return Err("the new control plane does not restore the snapshot".into());
    }
    let workers: Vec<&ObsInstance> = all
        .iter()
        .filter(|i| i.logical.as_deref() == Some("workers-0"))
        .collect();
    if workers.len() != 1 || workers[0].id != worker || !workers[0].is_live() {
        return Err(format!("the worker did not stay: {workers:?}"));
    }
    Ok(())
}

async fn point(emu: &OwnEmulator, i: usize, at: Moment) -> Result<(), String> {
    let (cl, lost_id, worker) = Box::pin(lost(emu, i)).await?;
    let finished = tokio::task::block_in_place(|| kill_at(emu, &cl, at));
    let args = ["up", "-f", cl.spec_arg(), "--wait", "running"];
    resumes(
        emu,
        &cl,
        &args,
        finished,
        restored(emu, &cl, &lost_id, &worker),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_restore_killed_at_random_moments_resumes_with_one_new_control_plane() {
    let emu = OwnEmulator::start(PROFILE);
    let points = points().div_ceil(3);
    let seed = env_u64("PROVISION_CRASH_SEED", 1);
    // The reference: one uninterrupted restore, its duration and its resource events.
    let (reference, lost_id, worker) = Box::pin(lost(&emu, 0)).await.unwrap();
    let (up, full) = reference_run(&emu, &reference);
    Box::pin(restored(&emu, &reference, &lost_id, &worker))
        .await
        .unwrap();
    let span = Span::whole(&up, full);
    down_reference(&emu, &reference);

    let emu = &emu;
    each_moment(seed, points, ("restore", span), |i, at| point(emu, i, at)).await;
}
