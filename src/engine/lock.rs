//! The cluster lock: `up` and `down` of one cluster run one at a time, wherever they run.
//!
//! Taken before discovery and released after the last change, so that two runs never decide
//! from the same observation. A run that finds the lock held waits (polling, with backoff) up to
//! its `--lock-timeout`, then converges on what the other run made. A lock left by a killed run
//! is taken over at once when its process is known to be gone (same machine and pid namespace),
//! else when its lease ends (`core::lock::LEASE_SECS`, renewed while the holder runs).
//!
//! An overwrite is unconditional in SSM, so taking over a stale record goes through a claim
//! (`NAME-takeover`, created without overwrite: one taker gets it) and a check that the record is
//! still the stale one ([`take_over`]). Renewal reads the record before it writes, and a run that
//! finds its lock gone stops before its next step.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use super::EngineError;
use super::events::{Event, EventSink, ms_since};
use crate::aws::{self, Clients};
use crate::core::lock::{Holder, LEASE_SECS, Local, RENEW_SECS, stale};

/// A held lock; renewed in the background until [`Lock::release`] (or drop, which stops the
/// renewal and leaves the record to be taken over).
pub struct Lock {
    c: Clients,
    name: String,
    shared: Arc<tokio::sync::Mutex<Shared>>,
    renewal: tokio::task::JoinHandle<()>,
    lost: Arc<AtomicBool>,
    /// How long this run waited for another to finish.
    pub waited: Duration,
    /// PutParameter calls made to take the lock (one, plus one per release seen while waiting
    /// and per takeover).
    pub creates: u32,
}

/// What the JSON summary says about the lock.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LockReport {
    pub parameter: String,
    pub waited_ms: u64,
    /// PutParameter calls made to take the lock (one, plus one per release seen while waiting
    /// and per takeover).
    pub creates: u32,
}

fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

fn read_trimmed(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// The start time of `pid` (field 22 of `/proc/PID/stat`), if such a process exists.
pub(crate) fn start_of(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: count after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19).map(str::to_string)
}

fn local() -> Local {
    Local {
        boot_id: read_trimmed("/proc/sys/kernel/random/boot_id"),
        pid_ns: std::fs::read_link("/proc/self/ns/pid")
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
    }
}

fn me(command: &str) -> Result<Holder, EngineError> {
    let here = local();
    let pid = std::process::id();
    let now = now_unix();
    Ok(Holder {
        id: crate::core::pki::random_chars(16)?,
        command: command.into(),
        host: Some(read_trimmed("/proc/sys/kernel/hostname"))
            .filter(|h| !h.is_empty())
            .or_else(|| std::env::var("HOSTNAME").ok())
            .unwrap_or_else(|| "unknown".into()),
        boot_id: here.boot_id,
        pid_ns: here.pid_ns,
        pid,
        pid_start: start_of(pid).unwrap_or_default(),
        since: now,
        expires: now + LEASE_SECS,
    })
}

/// The parameter's record, if it exists and is one (a record that does not parse counts as
/// none: not ours to keep).
async fn read_json<T: serde::de::DeserializeOwned>(
    c: &Clients,
    name: &str,
) -> Result<Option<T>, EngineError> {
    Ok(aws::lock::read(c, name)
        .await?
        .and_then(|v| serde_json::from_str(&v).ok()))
}

fn encode(h: &Holder) -> String {
    serde_json::to_string(h).unwrap_or_default()
}

/// Takes the cluster's lock for `command`, waiting up to `timeout` for another run to release
/// it.
///
/// # Errors
/// The lock is still held after `timeout` (the error names the holder), or AWS refuses.
pub async fn acquire(
    c: &Clients,
    cluster: &str,
    region: &str,
    command: &str,
    timeout: Duration,
    events: &EventSink,
) -> Result<Lock, EngineError> {
    let name = aws::lock::parameter_name(cluster);
    let tags = crate::core::tags::tags_for(cluster, "lock", false, &Default::default());
    let mut holder = me(command)?;
    let here = local();
    let start = Instant::now();
    let mut delay = c.tuning.scaled(Duration::from_secs(1));
    let mut announced = String::new();
    let mut warned = String::new();
    let mut checked = String::new();
    let mut creates = 0;
    'take: loop {
        refresh(&mut holder);
        creates += 1;
        if aws::lock::create(c, &name, &encode(&holder), &tags).await? {
            break;
        }
        // Held: read until it is released (then create again), stale, or the timeout.
        loop {
            let Some(current) = aws::lock::read(c, &name).await? else {
                // Released between the two calls: create again (after a breath, so that a read
                // that keeps disagreeing with the create cannot spin).
                tokio::time::sleep(c.tuning.scaled(Duration::from_millis(200))).await;
                continue 'take;
            };
            // Waited for, taken over or removed only when it is this cluster's: a parameter of
            // that name without our tag is someone else's, whatever it holds.
            if checked != current {
                let owner = match aws::ssm::owner_tag(c, &name).await? {
                    // Released between the read and this look: create again.
                    None => continue 'take,
                    Some(owner) => owner,
                };
                if owner.as_deref() != Some(cluster) {
                    return Err(EngineError::Lock(format!(
                        "{name} exists without the tag {}={cluster}: it is not this cluster's lock, so provision neither waits for it nor removes it; \
                         if nothing uses it, delete it (aws ssm delete-parameter --name {name} --region {region}) and run again",
                        crate::core::tags::CLUSTER_TAG
                    )));
                }
                checked.clone_from(&current);
            }
            let other: Holder = serde_json::from_str(&current).map_err(|e| {
                EngineError::Lock(format!(
                    "{name} exists but is not a provision lock ({e}); remove it if nothing uses it"
                ))
            })?;
            if other.id == holder.id {
                break 'take; // our own create, retried by the SDK after an answer was lost
            }
            if let Some(why) = stale(&other, &here, now_unix(), start_of(other.pid).as_deref()) {
                if warned != other.id {
                    (events)(Event::Warning {
                        message: format!(
                            "taking over the cluster lock of {}: {why}",
                            other.describe()
                        ),
                    });
                    warned.clone_from(&other.id);
                }
                refresh(&mut holder);
                creates += 1;
                if take_over(c, &name, &tags, &other, &holder).await? {
                    break 'take;
                }
                // Another run is taking it over: wait for it like for any holder.
            }
            if start.elapsed() >= timeout {
                return Err(EngineError::Lock(format!(
                    "the cluster {cluster} is locked by {} (lease until {}); gave up after {} s (--lock-timeout). \
                     If that run is gone for good, the lock ends with its lease (at once when it ran on this machine), \
                     or remove it now with `provision unlock --name {cluster} --region {region}`",
                    other.describe(),
                    crate::core::lock::unix_utc(other.expires),
                    start.elapsed().as_secs()
                )));
            }
            if announced != other.id {
                (events)(Event::Waiting {
                    what: format!("the cluster lock, held by {}", other.describe()),
                    elapsed_ms: ms_since(start),
                });
                announced.clone_from(&other.id);
            }
            tokio::time::sleep(delay.min(timeout.saturating_sub(start.elapsed()))).await;
            delay = (delay * 3 / 2).min(c.tuning.scaled(Duration::from_secs(15)));
        }
    }
    let shared = Arc::new(tokio::sync::Mutex::new(Shared {
        holder,
        released: false,
    }));
    let lost = Arc::new(AtomicBool::new(false));
    let renewal = tokio::spawn(renew(
        c.clone(),
        name.clone(),
        shared.clone(),
        lost.clone(),
        events.clone(),
    ));
    Ok(Lock {
        c: c.clone(),
        name,
        shared,
        renewal,
        lost,
        waited: start.elapsed(),
        creates,
    })
}

/// A fresh lease, counted from now.
fn refresh(h: &mut Holder) {
    h.since = now_unix();
    h.expires = h.since + LEASE_SECS;
}

/// How old a takeover claim may get before it counts as left by a run that died taking over.
const CLAIM_SECS: i64 = 60;

/// A claim on taking over one stale lock.
#[derive(serde::Serialize, serde::Deserialize)]
struct Claim {
    stale: String,
    by: String,
    at: i64,
}

/// Replaces the stale record `old` with ours, unless another run is doing the same: the takers
/// first create `NAME-takeover` without overwrite (one of them succeeds), the winner checks
/// that the record is still `old`, replaces it, and removes the claim. A loser that gets the
/// claim later finds the record changed and backs off. `true` when the lock is ours.
async fn take_over(
    c: &Clients,
    name: &str,
    tags: &[(String, String)],
    old: &Holder,
    mine: &Holder,
) -> Result<bool, EngineError> {
    let claim_name = format!("{name}-takeover");
    let claim = Claim {
        stale: old.id.clone(),
        by: mine.id.clone(),
        at: now_unix(),
    };
    let claim_json = serde_json::to_string(&claim).unwrap_or_default();
    if !aws::lock::create(c, &claim_name, &claim_json, tags).await? {
        // Someone else's claim: wait, unless it was left by a run that died taking over.
        let left: Option<Claim> = read_json(c, &claim_name).await?;
        if left.is_none_or(|l| l.at + CLAIM_SECS < now_unix()) {
            aws::lock::delete(c, &claim_name).await?;
        }
        return Ok(false);
    }
    let still: Option<Holder> = read_json(c, name).await?;
    let ours = match still {
        Some(h) if h.id == old.id => {
            aws::lock::replace(c, name, &encode(mine)).await?;
            true
        }
        // Released meanwhile: take it the ordinary way.
        None => aws::lock::create(c, name, &encode(mine), tags).await?,
        Some(_) => false,
    };
    aws::lock::delete(c, &claim_name).await?;
    Ok(ours)
}

struct Shared {
    holder: Holder,
    released: bool,
}

/// How often a run looks whether its lock is still its own: a `provision unlock` (or a takeover)
/// during a run stops it within this time, before a second run can get far.
const LOOK_EVERY: Duration = Duration::from_secs(15);

/// Looks at the record every [`LOOK_EVERY`] and extends the lease every `RENEW_SECS` while the
/// run lasts: when it
/// is no longer ours (a run that took over after this one was suspended past its lease, or a
/// `provision unlock`), this run warns, stops renewing and marks the lock lost, which makes the
/// engine stop starting new steps. Renewal and release exclude each other, so a renewal never
/// lands after the release's delete.
async fn renew(
    c: Clients,
    name: String,
    shared: Arc<tokio::sync::Mutex<Shared>>,
    lost: Arc<AtomicBool>,
    events: EventSink,
) {
    let renew_every = Duration::from_secs(u64::try_from(RENEW_SECS).unwrap_or(120));
    let mut renewed_at = Instant::now();
    loop {
        tokio::time::sleep(LOOK_EVERY).await;
        let mut s = shared.lock().await;
        if s.released {
            return;
        }
        let Ok(current) = read_json::<Holder>(&c, &name).await else {
            continue; // try again at the next look; the lease has room
        };
        if current.as_ref().is_none_or(|h| h.id != s.holder.id) {
            lost.store(true, Ordering::SeqCst);
            (events)(Event::Warning {
                message: format!(
                    "lost the cluster lock {name} (another run took it over, or it was removed): stopping before the next step"
                ),
            });
            return;
        }
        if renewed_at.elapsed() < renew_every {
            continue;
        }
        renewed_at = Instant::now();
        let mut renewed = s.holder.clone();
        renewed.expires = now_unix() + LEASE_SECS;
        if aws::lock::replace(&c, &name, &encode(&renewed))
            .await
            .is_ok()
        {
            s.holder = renewed;
        }
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        self.renewal.abort();
    }
}

impl Lock {
    pub fn report(&self) -> LockReport {
        LockReport {
            parameter: self.name.clone(),
            waited_ms: u64::try_from(self.waited.as_millis()).unwrap_or(u64::MAX),
            creates: self.creates,
        }
    }

    /// Set once the lock is known to be lost: the engine starts no further step.
    pub fn lost(&self) -> Arc<AtomicBool> {
        self.lost.clone()
    }

    /// Stops renewing and deletes the record, unless it is no longer ours. While the lease
    /// has not run out nobody else can have taken the lock over, so no read is needed first.
    /// Deletes the lock if it is still ours. `false` when the delete failed (said as a warning).
    pub async fn release(self, events: &EventSink) -> bool {
        let mut s = self.shared.lock().await;
        s.released = true;
        let lost = self.lost.load(Ordering::SeqCst);
        if lost || s.holder.expires <= now_unix() {
            let current: Option<Holder> = read_json(&self.c, &self.name).await.ok().flatten();
            if current.is_none_or(|h| h.id != s.holder.id) {
                return true;
            }
        }
        if let Err(e) = aws::lock::delete(&self.c, &self.name).await {
            (events)(Event::Warning {
                message: format!(
                    "could not release the cluster lock ({e}); the next run takes it over once this process is gone (at once on this machine, else when its lease ends), or run `provision unlock`"
                ),
            });
            return false;
        }
        true
    }
}

/// Removes the lock whoever holds it (`provision unlock`): the holder it removed, if any.
///
/// # Errors
/// AWS errors, or a parameter that is not a provision lock of this cluster.
pub async fn force_unlock(c: &Clients, cluster: &str) -> Result<Option<Holder>, EngineError> {
    let name = aws::lock::parameter_name(cluster);
    let Some(value) = aws::lock::read(c, &name).await? else {
        return Ok(None);
    };
    let holder: Holder = serde_json::from_str(&value).map_err(|e| {
        EngineError::Lock(format!(
            "{name} is not a provision lock ({e}); not removing it"
        ))
    })?;
    if aws::ssm::owner_tag(c, &name).await?.flatten().as_deref() != Some(cluster) {
        return Err(EngineError::Lock(format!(
            "{name} does not carry {}={cluster}; not removing it",
            crate::core::tags::CLUSTER_TAG
        )));
    }
    aws::lock::delete(c, &name).await?;
    aws::lock::delete(c, &format!("{name}-takeover")).await?;
    Ok(Some(holder))
}

/// The error of a step not started because another run took the cluster lock over.
pub(crate) fn lost(cluster: &str) -> crate::aws::AwsError {
    crate::aws::AwsError::unexpected(
        "starting a step of",
        cluster,
        "the cluster lock was lost (another run took it over, or it was removed): not started",
    )
}
