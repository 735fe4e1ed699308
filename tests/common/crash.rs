//! What the crash-resume tests share: the emulator's shortened latency profile, seeded kill
//! moments, killing a run at one, and counting what a cluster has by tag.

use std::collections::BTreeMap;
use std::time::Duration;

use super::{Cluster, OwnEmulator, Run};

/// Durations of the emulator for these tests: long enough that a kill lands while instances are
/// pending, the EKS cluster and node group CREATING, the NAT gateway pending; short enough for
/// 20 runs. provision polls at the same scale (PROVISION_TIME_SCALE).
pub const PROFILE: &[(&str, &str)] = &[
    ("PROVISION_EMULATOR_CALL_MS", "10"),
    ("PROVISION_EMULATOR_EC2_BOOT", "0.3"),
    ("PROVISION_EMULATOR_EC2_STATUS", "0.3"),
    ("PROVISION_EMULATOR_EC2_TERMINATE", "0.2"),
    ("PROVISION_EMULATOR_EKS_CLUSTER", "1.0"),
    ("PROVISION_EMULATOR_EKS_NODEGROUP", "0.6"),
    ("PROVISION_EMULATOR_EKS_ADDON", "0.2"),
    ("PROVISION_EMULATOR_EKS_DELETE", "0.3"),
    ("PROVISION_EMULATOR_NAT", "0.3"),
    ("PROVISION_EMULATOR_EKS_CLUSTER_UPDATE", "1.0"),
    ("PROVISION_EMULATOR_EKS_NODEGROUP_UPDATE", "0.2"),
    ("PROVISION_EMULATOR_EKS_NODEGROUP_UPDATE_BATCH", "0.3"),
];
pub const TIME_SCALE: &str = "0.02";

/// xorshift64*: enough for spreading kill moments, and the same on every machine.
pub struct Rng(pub u64);

impl Rng {
    pub fn unit(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let x = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D);
        #[allow(clippy::cast_precision_loss)]
        let u = (x >> 11) as f64 / (1u64 << 53) as f64;
        u
    }
}

/// How many kill moments a crash test takes (of which some tests take a part):
/// `PROVISION_CRASH_POINTS`, 10 by default (`make test`); `make bench` takes 50.
/// How a killed run ended, for a failure's message.
pub fn killed(finished: bool) -> &'static str {
    if finished {
        "had finished"
    } else {
        "was killed"
    }
}

pub fn points() -> u64 {
    env_u64("PROVISION_CRASH_POINTS", 10)
}

pub fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

pub fn command(emu: &OwnEmulator, cl: &Cluster, args: &[&str]) -> std::process::Command {
    let mut cmd = emu.command(cl, args);
    cmd.env("PROVISION_TIME_SCALE", TIME_SCALE);
    cmd
}

pub fn run(emu: &OwnEmulator, cl: &Cluster, args: &[&str]) -> Run {
    Run::from_output(command(emu, cl, args).output().unwrap())
}

/// What is tagged with the cluster, counted by kind (and live instances by logical id), so that
/// a duplicate of anything shows.
pub async fn census(emu: &OwnEmulator, cluster: &str) -> BTreeMap<String, usize> {
    let c = emu.sdk().await;
    let o = Box::pin(super::tagged(&c, cluster)).await;
    let mut m = BTreeMap::new();
    let mut put = |k: &str, n: usize| {
        m.insert(k.to_string(), n);
    };
    put("vpcs", o.vpcs.len());
    put("subnets", o.subnets.len());
    put("internet gateways", o.igws.len());
    put("route tables", o.route_tables.len());
    put("security groups", o.security_groups.len());
    put("roles", o.roles.len());
    put("instance profiles", o.profiles.len());
    put("secrets", usize::from(o.secret.is_some()));
    put(
        "add-on secrets",
        usize::from(o.addon_secrets.passwords.is_some()),
    );
    put(
        "log writer secrets",
        usize::from(o.addon_secrets.writer.is_some()),
    );
    put("addresses", o.addresses.len());
    put(
        "nat gateways",
        o.nat_gateways
            .iter()
            .filter(|n| n.state != "deleted" && n.state != "deleting")
            .count(),
    );
    put("eks clusters", usize::from(o.eks.is_some()));
    put(
        "node groups",
        o.eks.as_ref().map_or(0, |e| e.nodegroups.len()),
    );
    put("launch templates", o.launch_templates.len());
    for i in o.instances.iter().filter(|i| i.is_live()) {
        let key = format!(
            "instance {}",
            i.logical.as_deref().unwrap_or("(untagged logical id)")
        );
        *m.entry(key).or_insert(0) += 1;
    }
    m
}

pub async fn nothing_left(emu: &OwnEmulator, cluster: &str) -> Result<(), String> {
    let c = emu.sdk().await;
    let o = Box::pin(super::tagged(&c, cluster)).await;
    if !o.is_empty() {
        return Err(format!("left behind: {o:?}"));
    }
    let lock = provision::aws::lock::parameter_name(cluster);
    if provision::aws::lock::read(&c, &lock)
        .await
        .unwrap()
        .is_some()
    {
        return Err("the lock is left behind".into());
    }
    Ok(())
}

/// When to kill: a moment after the start, or right after the k-th resource event (which
/// spreads kills over the creates, a fraction of the run when instances take time to boot).
#[derive(Debug, Clone, Copy)]
pub enum Moment {
    After(Duration),
    Event(usize),
}

/// Starts `up` and kills it (SIGKILL: no clean-up of any kind) at `at`; whether it had
/// finished by then. Blocking, like the reads of the event branch: the upgrade test runs it on
/// plain threads, and the tests of `up` have nothing else running meanwhile.
#[allow(clippy::disallowed_methods)]
pub fn kill_at(emu: &OwnEmulator, cl: &Cluster, at: Moment) -> bool {
    kill_run_at(emu, cl, &["up", "-f", cl.spec_arg()], at)
}

/// [`kill_at`] of a run with these arguments.
#[allow(clippy::disallowed_methods)]
pub fn kill_run_at(emu: &OwnEmulator, cl: &Cluster, args: &[&str], at: Moment) -> bool {
    use std::io::BufRead as _;
    let mut child = command(emu, cl, args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    match at {
        Moment::After(t) => {
            // Keep the pipe drained so the run never blocks on it.
            std::thread::spawn(move || std::io::copy(&mut { stdout }, &mut std::io::sink()));
            std::thread::sleep(t);
        }
        Moment::Event(k) => {
            let mut seen = 0;
            for line in std::io::BufReader::new(stdout).lines() {
                if line.unwrap().contains("\"event\":\"resource\"") {
                    seen += 1;
                    if seen == k {
                        break;
                    }
                }
            }
        }
    }
    let finished = child.try_wait().unwrap().is_some();
    child.kill().ok();
    child.wait().unwrap();
    finished
}

/// The part of a reference run that kills aim at: from `from` to `to` after its start, and its
/// resource events `first..=last` (counted from 1, as [`Moment::Event`] counts them).
#[derive(Debug, Clone, Copy)]
pub struct Span {
    pub from: Duration,
    pub to: Duration,
    pub first: usize,
    pub last: usize,
}

impl Span {
    /// All of `run`, which took `full`.
    pub fn whole(run: &Run, full: Duration) -> Span {
        Span {
            from: Duration::ZERO,
            to: full,
            first: 1,
            last: resources(run).len().max(1),
        }
    }

    /// The part of `run` from its first resource event that `starts` to its `nth_last` event
    /// (counted back from 1) that `ends`.
    pub fn between(
        run: &Run,
        starts: impl Fn(&serde_json::Value) -> bool,
        (ends, nth_last): (impl Fn(&serde_json::Value) -> bool, usize),
    ) -> Span {
        let events = resources(run);
        let first = events
            .iter()
            .position(|e| starts(e))
            .expect("the span starts");
        let last = events
            .iter()
            .enumerate()
            .filter(|(_, e)| ends(e))
            .map(|(i, _)| i)
            .rev()
            .nth(nth_last - 1)
            .expect("the span ends");
        assert!(
            first <= last,
            "the span ends (event {last}) before it starts ({first})"
        );
        let at = |i: usize| Duration::from_millis(events[i]["elapsed_ms"].as_u64().unwrap_or(0));
        Span {
            from: at(first),
            to: at(last),
            first: first + 1,
            last: last + 1,
        }
    }
}

/// `points` kill moments in `span` from `seed`: odd ones a moment of its time, even ones right
/// after one of its resource events (which spreads kills over the creates).
pub fn moments(seed: u64, points: u64, span: Span) -> Vec<Moment> {
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    (1..=points)
        .map(|i| {
            let u = rng.unit();
            if i % 2 == 1 {
                Moment::After(span.from + (span.to.saturating_sub(span.from)).mul_f64(u))
            } else {
                Moment::Event(span.first + (u * (span.last + 1 - span.first) as f64) as usize)
            }
        })
        .collect()
}

/// The resource events of a run (what `Moment::Event` counts).
fn resources(run: &Run) -> Vec<&serde_json::Value> {
    run.events
        .iter()
        .filter(|e| e["event"] == "resource")
        .collect()
}

/// Runs `point` at each of `points` moments from `seed` in `span` of a reference run of `what`,
/// one after the other. Fails naming every point that failed.
pub async fn each_moment<F, Fut>(seed: u64, points: u64, (what, span): (&str, Span), mut point: F)
where
    F: FnMut(usize, Moment) -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let mut failures = Vec::new();
    for (i, at) in (1usize..).zip(moments(seed, points, span)) {
        if let Err(e) = Box::pin(point(i, at)).await {
            failures.push(format!(
                "seed {seed}, point {i}: killed {at:?} (a {what} from {} ms to {} ms, resource events {} to {}): {e}",
                span.from.as_millis(),
                span.to.as_millis(),
                span.first,
                span.last
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// The run after a kill (`finished`: whether the killed run had ended) with `args`: it must
/// succeed and leave what `check` wants; then [`settles_then_goes`].
pub async fn resumes<F>(
    emu: &OwnEmulator,
    cl: &Cluster,
    args: &[&str],
    finished: bool,
    check: F,
) -> Result<(), String>
where
    F: std::future::Future<Output = Result<(), String>>,
{
    let again = tokio::task::block_in_place(|| run(emu, cl, args));
    if !again.ok() {
        return Err(format!("resumed up failed:\n{}", again.stderr));
    }
    Box::pin(check).await.map_err(|e| {
        format!(
            "after the resumed up (the killed run {}): {e}",
            killed(finished)
        )
    })?;
    Box::pin(settles_then_goes(emu, cl, args)).await
}

/// `down` of the reference cluster once its run has given the kill moments (it must succeed).
pub fn down_reference(emu: &OwnEmulator, cl: &Cluster) {
    let down = tokio::task::block_in_place(|| run(emu, cl, &["down", "-f", cl.spec_arg()]));
    assert!(down.ok(), "the reference's down failed:\n{}", down.stderr);
}

/// One uninterrupted `up` of `cl` (the reference a test's kill moments come from), and how
/// long it took.
pub fn reference_run(emu: &OwnEmulator, cl: &Cluster) -> (Run, Duration) {
    let t0 = std::time::Instant::now();
    let up = tokio::task::block_in_place(|| run(emu, cl, &["up", "-f", cl.spec_arg()]));
    let full = t0.elapsed();
    assert!(up.ok(), "the reference run failed:\n{}", up.stderr);
    (up, full)
}

/// After a resumed run: one more `args` run changes nothing, then `down` leaves nothing.
pub async fn settles_then_goes(
    emu: &OwnEmulator,
    cl: &Cluster,
    args: &[&str],
) -> Result<(), String> {
    let third = tokio::task::block_in_place(|| run(emu, cl, args));
    if !third.ok() || !third.mutating_calls().is_empty() {
        return Err(format!(
            "a third up changed something: {:?}\n{}",
            third.mutating_calls(),
            third.stderr
        ));
    }
    let down = tokio::task::block_in_place(|| run(emu, cl, &["down", "-f", cl.spec_arg()]));
    if !down.ok() {
        return Err(format!("down failed:\n{}", down.stderr));
    }
    Box::pin(nothing_left(emu, &cl.name)).await
}
