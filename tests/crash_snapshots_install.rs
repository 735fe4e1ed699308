//! Crash-resume of giving a control plane of an earlier release (no
//! `provision:etcd-backup-interval` tag) its etcd snapshots: the `up` that puts the installer
//! into the bucket, sends it through Run Command and tags the instance, killed (SIGKILL) at
//! seeded moments of that work, against the emulator's shortened latency profile. Each time the
//! next `up` finishes with the tag set, every command sent fetching the installer in the bucket
//! (the same digest), at most one command more than the killed run had sent, the instances
//! untouched; a third `up` changes nothing and `down` leaves nothing, bucket included.
//!
//! `PROVISION_CRASH_POINTS` (default 10, of which this test takes a third) and
//! `PROVISION_CRASH_SEED` (default 1) set how many moments and which.

mod common;

use common::crash::{
    Moment, PROFILE, Span, down_reference, each_moment, env_u64, kill_at, points, reference_run,
    resumes, run,
};
use common::{Cluster, OwnEmulator, tagged};

/// A cluster with one worker whose control plane carries no interval tag: (cluster, the
/// control plane, every live instance).
async fn earlier(emu: &OwnEmulator, i: usize) -> Result<(Cluster, String, Vec<String>), String> {
    let cl = Cluster::new(&format!("crash-i{i}"), 1, "");
    let up = tokio::task::block_in_place(|| {
        run(emu, &cl, &["up", "-f", cl.spec_arg(), "--wait", "running"])
    });
    if !up.ok() {
        return Err(format!("the first up failed:\n{}", up.stderr));
    }
    let c = emu.sdk().await;
    let live = live(&c, &cl.name).await;
    let master = live
        .iter()
        .find(|(_, logical)| logical == "master")
        .map(|(id, _)| id.clone())
        .ok_or("no control plane")?;
    common::delete_tag(&c, &master, "provision:etcd-backup-interval").await;
    Ok((cl, master, live.into_iter().map(|(id, _)| id).collect()))
}

/// Every live instance of the cluster: (id, logical id).
async fn live(c: &provision::aws::Clients, cluster: &str) -> Vec<(String, String)> {
    Box::pin(tagged(c, cluster))
        .await
        .instances
        .into_iter()
        .filter(|i| i.is_live())
        .map(|i| (i.id, i.logical.unwrap_or_default()))
        .collect()
}

/// The tag set, every command sent fetching the installer now in the bucket, no more than one
/// command beyond the `before` the killed run sent, the instances as they were.
async fn installed(
    emu: &OwnEmulator,
    cl: &Cluster,
    master: &str,
    instances: &[String],
    before: usize,
) -> Result<(), String> {
    let c = emu.sdk().await;
    let now = Box::pin(tagged(&c, &cl.name)).await.instances;
    let m = now
        .iter()
        .find(|i| i.id == master)
        .ok_or("the control plane is gone")?;
    if m.backup_interval.as_deref() != Some("900") {
        return Err(format!("the interval tag is {:?}", m.backup_interval));
    }
    let mut ids: Vec<String> = live(&c, &cl.name).await.into_iter().map(|i| i.0).collect();
    ids.sort();
    let mut was = instances.to_vec();
    was.sort();
    if ids != was {
        return Err(format!("the instances changed: {was:?} -> {ids:?}"));
    }
    let sent = common::sent_scripts(&c, master).await;
    if sent.is_empty() || sent.len() > before + 1 {
        return Err(format!(
            "{} command(s) sent, {before} by the killed run",
            sent.len()
        ));
    }
    let bucket =
        provision::core::tags::backup_bucket_name(&cl.name, common::REGION, "123456789012");
    let key = format!(
        "{}provision-install-snapshots.sh",
        common::snapshot_prefix(&c, &cl.name).await
    );
    let object =
        c.s3.get_object()
            .bucket(&bucket)
            .key(&key)
            .send()
            .await
            .map_err(|e| format!("the installer is not in the bucket: {e:?}"))?;
    let body = object.body.collect().await.map_err(|e| e.to_string())?;
    let digest = provision::core::cloudinit::digest(&String::from_utf8_lossy(&body.into_bytes()));
    for s in &sent {
        if !s.contains(&format!("echo \"{digest}  $f\" | sha256sum -c")) {
            return Err(format!(
                "a command checks another digest than {digest}:\n{s}"
            ));
        }
    }
    Ok(())
}

/// One kill at `at` and the resumed `up`; `resent` counts the kills made once the command had
/// been sent.
async fn point(
    emu: &OwnEmulator,
    i: usize,
    at: Moment,
    resent: &std::sync::atomic::AtomicUsize,
) -> Result<(), String> {
    let (cl, master, instances) = Box::pin(earlier(emu, i)).await?;
    let finished = tokio::task::block_in_place(|| kill_at(emu, &cl, at));
    let before = common::sent_scripts(&emu.sdk().await, &master).await.len();
    if before > 0 {
        resent.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    let args = ["up", "-f", cl.spec_arg(), "--wait", "running"];
    resumes(
        emu,
        &cl,
        &args,
        finished,
        installed(emu, &cl, &master, &instances, before),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn giving_an_earlier_control_plane_snapshots_killed_at_random_moments_resumes() {
    let emu = OwnEmulator::start(PROFILE);
    let points = points().div_ceil(3);
    let seed = env_u64("PROVISION_CRASH_SEED", 1);
    // The reference: one uninterrupted install; kills land from the moment its command was
    // sent to the row's end (right after an event: the command sent, sent again by the next
    // run; at a time of it: mostly before, as a killed run is a little slower).
    let (reference, master, instances) = Box::pin(earlier(&emu, 0)).await.unwrap();
    let (up, full) = reference_run(&emu, &reference);
    Box::pin(installed(&emu, &reference, &master, &instances, 0))
        .await
        .unwrap();
    let upgrade = |e: &serde_json::Value| e["id"] == "control-plane-upgrade";
    let span = Span::between(
        &up,
        |e| upgrade(e) && e["action"] == "waiting",
        (
            |e: &serde_json::Value| upgrade(e) && e["action"] == "updated",
            1,
        ),
    );
    assert!(span.to <= full);
    down_reference(&emu, &reference);

    let (emu, resent) = (&emu, std::sync::atomic::AtomicUsize::new(0));
    each_moment(seed, points, ("snapshots' install", span), |i, at| {
        point(emu, i, at, &resent)
    })
    .await;
    assert!(
        resent.into_inner() > 0,
        "no kill came after the command was sent"
    );
}
