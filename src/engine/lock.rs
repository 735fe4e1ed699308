//! The cluster lock: `up` and `down` of one cluster run one at a time, wherever they run.
//!
//! Taken before discovery and released after the last change, so that two runs never decide
//! from the same observation. A run that finds the lock held waits (polling, with backoff) up to
//! its `--lock-timeout`, then converges on what the other run made. A lock left by a killed run
//! is taken over at once when its process is known to be gone (same machine and pid namespace),
//! else when its lease ends (`core::lock::LEASE_SECS`, renewed while the holder runs).
//!
//! Taking over is not atomic in SSM (an overwrite is unconditional): after replacing a stale
//! record the taker waits [`settle`] and reads the record again; of two runs that took over the
//! same stale lock at the same moment only the last writer sees itself and goes on.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use super::EngineError;
use super::events::{Event, EventSink, ms_since};
use crate::aws::{self, Clients};
use crate::core::lock::{Holder, LEASE_SECS, Local, RENEW_SECS, stale};

/// How long a taker of a stale lock waits before checking that it still holds it: far longer
/// than the read-then-replace of another taker (two API calls), scaled for benchmarks but never
/// under half a second.
fn settle() -> Duration {
    aws::poll::scaled(Duration::from_secs(2)).max(Duration::from_millis(500))
}

/// A held lock; renewed in the background until [`Lock::release`] (or drop, which stops the
/// renewal and leaves the record to expire).
pub struct Lock {
    c: Clients,
    name: String,
    holder: Arc<Mutex<Holder>>,
    renewal: tokio::task::JoinHandle<()>,
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
fn start_of(pid: u32) -> Option<String> {
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
    command: &str,
    timeout: Duration,
    events: &EventSink,
) -> Result<Lock, EngineError> {
    let name = aws::lock::parameter_name(cluster);
    let tags = crate::core::tags::tags_for(cluster, "lock", false, &Default::default());
    let mut holder = me(command)?;
    let here = local();
    let start = Instant::now();
    let mut delay = aws::poll::scaled(Duration::from_secs(1));
    let mut announced = String::new();
    let mut creates = 0;
    'take: loop {
        holder.expires = now_unix() + LEASE_SECS;
        creates += 1;
        if aws::lock::create(c, &name, &encode(&holder), &tags).await? {
            break;
        }
        // Held: read until it is released (then create again), stale, or the timeout.
        loop {
            let Some(current) = aws::lock::read(c, &name).await? else {
                continue 'take;
            };
            let other: Holder = serde_json::from_str(&current).map_err(|e| {
                EngineError::Refused(format!(
                    "{name} exists but is not a provision lock ({e}); remove it if nothing uses it"
                ))
            })?;
            if other.id == holder.id {
                break 'take; // our own create, retried by the SDK after an answer was lost
            }
            if let Some(why) = stale(&other, &here, now_unix(), start_of(other.pid).as_deref()) {
                (events)(Event::Warning {
                    message: format!(
                        "taking over the cluster lock of {}: {why}",
                        other.describe()
                    ),
                });
                creates += 1;
                aws::lock::replace(c, &name, &encode(&holder)).await?;
                tokio::time::sleep(settle()).await;
                // Of two runs that took it over at the same moment, the last writer goes on.
                continue;
            }
            if start.elapsed() + delay > timeout {
                return Err(EngineError::Refused(format!(
                    "the cluster {cluster} is locked by {} (lease until {}); gave up after {} s (--lock-timeout). \
                     If that run is gone for good, the lock ends with its lease, or remove it now with `provision unlock --name {cluster} --region REGION`",
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
            tokio::time::sleep(delay).await;
            delay = (delay * 3 / 2).min(aws::poll::scaled(Duration::from_secs(15)));
        }
    }
    let holder = Arc::new(Mutex::new(holder));
    let renewal = tokio::spawn(renew(
        c.clone(),
        name.clone(),
        holder.clone(),
        events.clone(),
    ));
    Ok(Lock {
        c: c.clone(),
        name,
        holder,
        renewal,
        waited: start.elapsed(),
        creates,
    })
}

/// Extends the lease every `RENEW_SECS` while the run lasts. If the lease ran out before a
/// renewal (the process was suspended), the record is read first: another run may have taken
/// over, and then this one warns and stops renewing rather than overwrite it.
async fn renew(c: Clients, name: String, holder: Arc<Mutex<Holder>>, events: EventSink) {
    let every = Duration::from_secs(u64::try_from(RENEW_SECS).unwrap_or(120));
    loop {
        tokio::time::sleep(every).await;
        let mine = holder
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        if mine.expires <= now_unix() {
            let current: Option<Holder> = match aws::lock::read(&c, &name).await {
                Ok(v) => v.and_then(|v| serde_json::from_str(&v).ok()),
                Err(_) => continue,
            };
            if current.as_ref().is_none_or(|h| h.id != mine.id) {
                (events)(Event::Warning {
                    message: format!(
                        "lost the cluster lock {name} while suspended past its lease: another run may be changing the cluster"
                    ),
                });
                return;
            }
        }
        let renewed = Holder {
            expires: now_unix() + LEASE_SECS,
            ..mine
        };
        if aws::lock::replace(&c, &name, &encode(&renewed))
            .await
            .is_ok()
        {
            *holder
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = renewed;
        }
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

    /// Stops renewing and deletes the record. While the lease has not run out nobody else can
    /// have taken the lock over, so no read is needed first; past it, the record is checked.
    pub async fn release(self, events: &EventSink) {
        self.renewal.abort();
        let mine = self
            .holder
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        if mine.expires <= now_unix() {
            let current: Option<Holder> = aws::lock::read(&self.c, &self.name)
                .await
                .ok()
                .flatten()
                .and_then(|v| serde_json::from_str(&v).ok());
            if current.is_none_or(|h| h.id != mine.id) {
                return;
            }
        }
        if let Err(e) = aws::lock::delete(&self.c, &self.name).await {
            (events)(Event::Warning {
                message: format!(
                    "could not release the cluster lock ({e}); the next run takes it over when this process is gone"
                ),
            });
        }
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
        EngineError::Refused(format!(
            "{name} is not a provision lock ({e}); not removing it"
        ))
    })?;
    if aws::secret::owner_tag(c, &name).await?.flatten().as_deref() != Some(cluster) {
        return Err(EngineError::Refused(format!(
            "{name} does not carry {}={cluster}; not removing it",
            crate::core::tags::CLUSTER_TAG
        )));
    }
    aws::lock::delete(c, &name).await?;
    Ok(Some(holder))
}
