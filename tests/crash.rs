//! Crash-resume: `provision up` killed (SIGKILL) at seeded random moments, for both kinds of
//! cluster, on an emulator whose resources take time (the latency profile, shortened): each time
//! a second `up` converges on exactly the specified set (counted by tag, so a duplicate shows),
//! a third changes nothing, and `down` leaves nothing, the lock included.
//!
//! `PROVISION_CRASH_POINTS` (default 10) and `PROVISION_CRASH_SEED` (default 1) set how many
//! moments and which; a failure names the seed and the moment.

mod common;

use std::collections::BTreeMap;
use std::time::Instant;

use common::crash::{
    Moment, PROFILE, Span, census, env_u64, kill_at, killed, moments, nothing_left, points, run,
};
use common::{Cluster, OwnEmulator};

/// Returns how many of the wanted resources the killed run had made.
async fn kill_and_resume(
    emu: &OwnEmulator,
    cl: &Cluster,
    at: Moment,
    want: &BTreeMap<String, usize>,
) -> Result<usize, String> {
    let finished = kill_at(emu, cl, at);
    let made: usize = census(emu, &cl.name).await.values().sum();
    let again = run(emu, cl, &["up", "-f", cl.spec_arg()]);
    if !again.ok() {
        return Err(format!("resumed up failed:\n{}", again.stderr));
    }
    let have = census(emu, &cl.name).await;
    if &have != want {
        return Err(format!(
            "not the specified set (the killed run {}):\nwant {want:?}\nhave {have:?}",
            killed(finished)
        ));
    }
    let third = run(emu, cl, &["up", "-f", cl.spec_arg()]);
    if !third.ok() || !third.mutating_calls().is_empty() {
        return Err(format!(
            "a third up changed something: {:?}\n{}",
            third.mutating_calls(),
            third.stderr
        ));
    }
    let down = run(emu, cl, &["down", "-f", cl.spec_arg()]);
    if !down.ok() {
        return Err(format!("down failed:\n{}", down.stderr));
    }
    nothing_left(emu, &cl.name).await?;
    Ok(made)
}

async fn crash_resume(kind: &str, make: impl Fn(usize) -> Cluster) {
    let emu = OwnEmulator::start(PROFILE);
    let points = points();
    let seed = env_u64("PROVISION_CRASH_SEED", 1);
    // The reference: one uninterrupted up, its duration and what it makes.
    let reference = make(0);
    let t0 = Instant::now();
    let up = run(&emu, &reference, &["up", "-f", reference.spec_arg()]);
    let full = t0.elapsed();
    let span = Span::whole(&up, full);
    assert!(up.ok(), "{kind}: reference up failed:\n{}", up.stderr);
    let want = census(&emu, &reference.name).await;
    assert!(run(&emu, &reference, &["down", "-f", reference.spec_arg()]).ok());
    nothing_left(&emu, &reference.name).await.unwrap();

    let total: usize = want.values().sum();
    let mut failures = Vec::new();
    let mut partial = 0;
    for (i, at) in (1u64..).zip(moments(seed, points, span)) {
        #[allow(clippy::cast_possible_truncation)]
        let cl = make(i as usize);
        let outcome = Box::pin(kill_and_resume(&emu, &cl, at, &want)).await;
        if let Ok(made) = &outcome {
            eprintln!("{kind} point {i}: killed {at:?} with {made} of {total} resources made");
            partial += usize::from(*made > 0 && *made < total);
        }
        if let Err(e) = outcome {
            failures.push(format!(
                "{kind}, seed {seed}, point {i}: killed {at:?} (a full up: {} ms, {} resource events): {e}",
                full.as_millis(),
                span.last
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    assert!(
        points < 10 || partial * 4 >= usize::try_from(points).unwrap(),
        "{kind}: only {partial} of {points} kills left a half-made cluster: the moments miss the creates"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn kubeadm_up_killed_at_random_moments_converges_and_tears_down() {
    crash_resume("kubeadm", |i| {
        Cluster::new(&format!("crash-k{i}"), 2, "[addons]\nmonitoring = true\n")
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn eks_up_killed_at_random_moments_converges_and_tears_down() {
    crash_resume("eks", |i| {
        Cluster::eks(
            &format!("crash-e{i}"),
            "availability_zones = 2\nprivate_subnets = true",
            "version = \"1.35\"\n[eks.nodegroup]\ninstance_types = [\"t3.large\"]\nmin = 1\nmax = 3\ndesired = 2\n",
        )
    })
    .await;
}

/// The upgrade's cluster: EKS 1.33 with two node groups (and the default add-ons).
fn upgrade_cluster(i: usize) -> Cluster {
    Cluster::eks(
        &format!("crash-u{i}"),
        "availability_zones = 2",
        "version = \"1.33\"\n[[eks.nodegroups]]\nname = \"web\"\ninstance_types = [\"t3.large\"]\nmin = 1\nmax = 3\ndesired = 2\nmax_unavailable = 1\n[[eks.nodegroups]]\nname = \"batch\"\ninstance_types = [\"m7g.large\"]\nmin = 0\nmax = 2\ndesired = 1\n",
    )
}

/// The upgrade: 1.35, and two web nodes replaced at a time (an UpdateNodegroupConfig before
/// its first version update).
fn to_1_35(cl: &Cluster) {
    cl.edit("version = \"1.33\"", "version = \"1.35\"");
    cl.edit("max_unavailable = 1", "max_unavailable = 2");
}

/// 1.35 everywhere (control plane, both node groups, each add-on at 1.35's default), with
/// exactly one update per step as EKS lists them: two of the control plane, two version updates
/// per node group (and web's one updateConfig change), two per add-on.
async fn upgraded(emu: &OwnEmulator, cluster: &str) -> Result<(), String> {
    let c = emu.sdk().await;
    let mut wrong = Vec::new();
    let k = common::eks_cluster_of(&c, cluster).await;
    if k.version() != Some("1.35") {
        wrong.push(format!("the control plane runs {:?}", k.version()));
    }
    let updates = |nodegroup: Option<String>, addon: Option<String>| {
        let c = &c;
        async move {
            c.eks
                .list_updates()
                .name(cluster)
                .set_nodegroup_name(nodegroup)
                .set_addon_name(addon)
                .send()
                .await
                .unwrap()
                .update_ids()
                .len()
        }
    };
    let n = updates(None, None).await;
    if n != 2 {
        wrong.push(format!("{n} control plane updates"));
    }
    for (g, configs) in [("web", 1), ("batch", 0)] {
        let name = format!("{cluster}-{g}");
        let group = c
            .eks
            .describe_nodegroup()
            .cluster_name(cluster)
            .nodegroup_name(&name)
            .send()
            .await
            .map_err(|e| format!("{name}: {e:?}"))?;
        let v = group
            .nodegroup()
            .and_then(|n| n.version())
            .unwrap_or_default();
        if v != "1.35" {
            wrong.push(format!("{name} runs {v}"));
        }
        let ids = c
            .eks
            .list_updates()
            .name(cluster)
            .nodegroup_name(&name)
            .send()
            .await
            .unwrap()
            .update_ids
            .unwrap_or_default();
        let mut kinds = Vec::new();
        for id in &ids {
            let u = c
                .eks
                .describe_update()
                .name(cluster)
                .nodegroup_name(&name)
                .update_id(id)
                .send()
                .await
                .unwrap();
            kinds.push(
                u.update
                    .and_then(|u| u.r#type)
                    .map(|t| t.as_str().to_string())
                    .unwrap_or_default(),
            );
        }
        let count = |k: &str| kinds.iter().filter(|x| *x == k).count();
        // Two version updates, and the one updateConfig change the spec made with the upgrade.
        if count("VersionUpdate") != 2 || count("ConfigUpdate") != configs {
            wrong.push(format!("updates of {name}: {kinds:?}"));
        }
    }
    let addons = c
        .eks
        .list_addons()
        .cluster_name(cluster)
        .send()
        .await
        .unwrap()
        .addons
        .unwrap_or_default();
    for a in &addons {
        let have = c
            .eks
            .describe_addon()
            .cluster_name(cluster)
            .addon_name(a)
            .send()
            .await
            .unwrap()
            .addon
            .and_then(|x| x.addon_version)
            .unwrap_or_default();
        let catalog = c
            .eks
            .describe_addon_versions()
            .kubernetes_version("1.35")
            .addon_name(a)
            .send()
            .await
            .unwrap();
        let default = catalog
            .addons()
            .iter()
            .flat_map(|x| x.addon_versions())
            .find(|v| v.compatibilities().iter().any(|c| c.default_version()))
            .and_then(|v| v.addon_version())
            .unwrap_or_default()
            .to_string();
        if have != default {
            wrong.push(format!("{a} runs {have}, not 1.35's {default}"));
        }
        let n = updates(None, Some(a.clone())).await;
        if n != 2 {
            wrong.push(format!("{n} updates of {a}"));
        }
    }
    if addons.len() != provision::core::spec::DEFAULT_EKS_ADDONS.len() {
        wrong.push(format!("add-ons {addons:?}"));
    }
    if wrong.is_empty() {
        Ok(())
    } else {
        Err(wrong.join("; "))
    }
}

/// One point: a cluster at 1.33, its upgrade to 1.35 killed at `at`, resumed, checked, torn
/// down.
fn upgrade_point(
    emu: &OwnEmulator,
    rt: &tokio::runtime::Runtime,
    i: usize,
    at: Moment,
) -> Result<(), String> {
    let cl = upgrade_cluster(i);
    let up = run(emu, &cl, &["up", "-f", cl.spec_arg()]);
    if !up.ok() {
        return Err(format!("up at 1.33 failed:\n{}", up.stderr));
    }
    to_1_35(&cl);
    let finished = kill_at(emu, &cl, at);
    let again = run(emu, &cl, &["up", "-f", cl.spec_arg()]);
    if !again.ok() {
        return Err(format!("resumed up failed:\n{}", again.stderr));
    }
    rt.block_on(upgraded(emu, &cl.name)).map_err(|e| {
        format!(
            "after the resumed up (the killed run {}): {e}",
            killed(finished)
        )
    })?;
    let third = run(emu, &cl, &["up", "-f", cl.spec_arg()]);
    if !third.ok() || !third.mutating_calls().is_empty() {
        return Err(format!(
            "a third up changed something: {:?}\n{}",
            third.mutating_calls(),
            third.stderr
        ));
    }
    let down = run(emu, &cl, &["down", "-f", cl.spec_arg()]);
    if !down.ok() {
        return Err(format!("down failed:\n{}", down.stderr));
    }
    rt.block_on(nothing_left(emu, &cl.name))
}

#[test]
fn eks_upgrade_killed_at_random_moments_resumes_with_one_update_per_step() {
    let emu = OwnEmulator::start(PROFILE);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let points = points();
    let seed = env_u64("PROVISION_CRASH_SEED", 1);
    // The reference: one uninterrupted upgrade, its duration and its resource events.
    let reference = upgrade_cluster(0);
    assert!(run(&emu, &reference, &["up", "-f", reference.spec_arg()]).ok());
    to_1_35(&reference);
    let t0 = Instant::now();
    let up = run(&emu, &reference, &["up", "-f", reference.spec_arg()]);
    let full = t0.elapsed();
    assert!(up.ok(), "reference upgrade failed:\n{}", up.stderr);
    rt.block_on(upgraded(&emu, &reference.name)).unwrap();
    let span = Span::whole(&up, full);
    assert!(run(&emu, &reference, &["down", "-f", reference.spec_arg()]).ok());

    let moments = moments(seed, points, span);
    // Four points at a time: each mostly waits for the emulator's clock.
    let failures = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for lane in 0..4 {
            let (emu, moments, failures) = (&emu, &moments, &failures);
            s.spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                for (i, at) in moments.iter().enumerate().skip(lane).step_by(4) {
                    if let Err(e) = upgrade_point(emu, &rt, i + 1, *at) {
                        failures.lock().unwrap().push(format!(
                            "seed {seed}, point {}: killed {at:?} (a full upgrade: {} ms, {} resource events): {e}",
                            i + 1,
                            full.as_millis(),
                            span.last
                        ));
                    }
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
