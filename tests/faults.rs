//! Under injected faults (issue 5's `faults` profile of `localstack/emulator.py`): 10% of calls
//! answered with throttling or a 5xx in each protocol's error shape, and the first two uses of
//! every new instance profile (RunInstances) and cluster role (CreateCluster) failing as if IAM
//! had not propagated. `up` then `down` of both kinds of cluster must succeed, seeded.

mod common;

use common::{Cluster, OwnEmulator};

/// up, then down, of one cluster on a faulty emulator: both succeed, the faults really hit
/// (more HTTP attempts than operations), and nothing tagged is left.
async fn survives(emu: &OwnEmulator, cl: &Cluster) -> (u64, u64) {
    let up = emu.run(cl, &["up", "-f", cl.spec_arg()]);
    assert!(up.ok(), "up under faults:\n{}", up.stderr);
    let calls = up.total_calls();
    let attempts = up.summary()["api_calls"]["attempts"].as_u64().unwrap();
    let down = emu.run(cl, &["down", "-f", cl.spec_arg()]);
    assert!(down.ok(), "down under faults:\n{}", down.stderr);
    let c = emu.sdk().await;
    let obs = common::tagged(&c, &cl.name).await;
    assert!(obs.is_empty(), "left behind under faults: {obs:?}");
    let lock = provision::aws::lock::parameter_name(&cl.name);
    assert_eq!(
        provision::aws::lock::read(&c, &lock).await.unwrap(),
        None,
        "the cluster lock is released"
    );
    (calls, attempts)
}

async fn both_kinds(seed: u64) {
    let seed_s = seed.to_string();
    let emu = OwnEmulator::start(&[
        ("PROVISION_EMULATOR_FAULTS", "0.1"),
        ("PROVISION_EMULATOR_IAM_DELAY", "2"),
        ("PROVISION_EMULATOR_SEED", &seed_s),
    ]);
    let kubeadm = Cluster::new("fault-k", 2, "[addons]\ntracing = true\n");
    let (calls, attempts) = survives(&emu, &kubeadm).await;
    let eks = Cluster::eks(
        "fault-e",
        "availability_zones = 2",
        "version = \"1.35\"\n[eks.nodegroup]\ninstance_types = [\"t3.large\"]\nmin = 1\nmax = 3\ndesired = 2\n",
    );
    let (eks_calls, eks_attempts) = survives(&emu, &eks).await;
    eprintln!(
        "seed {seed}: kubeadm up {calls} operations in {attempts} attempts, EKS up {eks_calls} in {eks_attempts}"
    );
    assert!(
        attempts + eks_attempts > calls + eks_calls,
        "seed {seed}: no fault was injected ({attempts}/{calls}, {eks_attempts}/{eks_calls})"
    );
}

/// One test per seed, so that the harness runs them side by side.
macro_rules! seeds {
    ($($name:ident = $seed:expr),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread")]
        async fn $name() {
            both_kinds($seed).await;
        }
    )*};
}

seeds!(
    up_and_down_survive_faults_seed_1 = 1,
    up_and_down_survive_faults_seed_2 = 2,
    up_and_down_survive_faults_seed_3 = 3,
    up_and_down_survive_faults_seed_4 = 4,
    up_and_down_survive_faults_seed_5 = 5,
);
