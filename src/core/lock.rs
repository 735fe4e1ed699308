//! The cluster lock's record and the rule for when a lock left behind may be taken over.
//!
//! `up` and `down` hold a lock on the cluster for their whole run: an SSM parameter
//! (`/provision/NAME/lock`) created with `Overwrite=false`, which AWS creates for one caller
//! only. Its value is a [`Holder`]; the engine renews `expires` while it runs and deletes the
//! parameter at the end. A holder that was killed leaves the parameter behind; [`stale`] decides
//! from the record, the current time and what this process knows about its own machine whether
//! it may be taken over. Pure: the caller reads `/proc` and the clock.

use serde::{Deserialize, Serialize};

/// How long a lock is valid without renewal, in seconds. A holder on another machine that was
/// killed blocks others this long at most.
pub const LEASE_SECS: i64 = 360;
/// How often the holder renews its lease, in seconds.
pub const RENEW_SECS: i64 = 120;

/// Who holds the lock: written as JSON into the parameter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    /// Random, unique per run.
    pub id: String,
    /// `up` or `down`.
    pub command: String,
    /// For people: the host name of the holder's machine.
    pub host: String,
    /// The machine's boot id (`/proc/sys/kernel/random/boot_id`); empty when unknown.
    pub boot_id: String,
    /// The holder's pid namespace (`/proc/self/ns/pid`), so that a container on the same
    /// machine never judges a pid of another namespace.
    pub pid_ns: String,
    pub pid: u32,
    /// The process's start time in clock ticks since boot (`/proc/PID/stat`), which tells a
    /// reused pid from the holder.
    pub pid_start: String,
    /// Unix seconds.
    pub since: i64,
    /// Unix seconds: the lease ends here unless renewed.
    pub expires: i64,
}

/// What this process can tell about the holder's process, when it runs on the same machine and
/// in the same pid namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Local {
    pub boot_id: String,
    pub pid_ns: String,
}

impl Holder {
    /// Whether the holder runs where this process can see its pid.
    pub fn is_local(&self, local: &Local) -> bool {
        !self.boot_id.is_empty()
            && self.boot_id == local.boot_id
            && !self.pid_ns.is_empty()
            && self.pid_ns == local.pid_ns
    }

    /// One line for people: "`provision up` (pid 42 on host ci-1, since 12:00:00Z)".
    pub fn describe(&self) -> String {
        format!(
            "`provision {}` (pid {} on host {}, since {})",
            self.command,
            self.pid,
            self.host,
            unix_utc(self.since)
        )
    }
}

/// Why a lock left behind may be taken over, if it may.
///
/// `start_of_pid` is the start time of `holder.pid` on this machine now (`None` when no such
/// process exists); it is only consulted when the holder is local.
pub fn stale(
    holder: &Holder,
    local: &Local,
    now: i64,
    start_of_pid: Option<&str>,
) -> Option<String> {
    if holder.expires < now {
        return Some(format!(
            "its lease ended at {} without renewal",
            unix_utc(holder.expires)
        ));
    }
    if holder.is_local(local) {
        match start_of_pid {
            None => return Some(format!("process {} is gone", holder.pid)),
            Some(s) if s != holder.pid_start => {
                return Some(format!(
                    "process {} is gone (the pid now belongs to another process)",
                    holder.pid
                ));
            }
            Some(_) => {}
        }
    }
    None
}

/// `2026-11-26T05:16:38Z` for unix seconds.
pub fn unix_utc(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn holder() -> Holder {
        Holder {
            id: "a".into(),
            command: "up".into(),
            host: "ci-1".into(),
            boot_id: "boot".into(),
            pid_ns: "pid:[1]".into(),
            pid: 42,
            pid_start: "1000".into(),
            since: 1_000,
            expires: 1_000 + LEASE_SECS,
        }
    }

    fn here() -> Local {
        Local {
            boot_id: "boot".into(),
            pid_ns: "pid:[1]".into(),
        }
    }

    #[test]
    fn a_live_local_holder_within_its_lease_holds() {
        assert_eq!(stale(&holder(), &here(), 1_010, Some("1000")), None);
    }

    #[test]
    fn a_dead_local_holder_is_stale_at_once() {
        let why = stale(&holder(), &here(), 1_010, None).unwrap();
        assert!(why.contains("process 42 is gone"), "{why}");
    }

    #[test]
    fn a_reused_pid_is_not_the_holder() {
        let why = stale(&holder(), &here(), 1_010, Some("2000")).unwrap();
        assert!(why.contains("another process"), "{why}");
    }

    #[test]
    fn a_remote_holder_holds_until_its_lease_ends() {
        let other = Local {
            boot_id: "other-machine".into(),
            pid_ns: "pid:[1]".into(),
        };
        // The pid is not looked at for another machine, even if no such process runs here.
        assert_eq!(stale(&holder(), &other, 1_010, None), None);
        let why = stale(&holder(), &other, 1_000 + LEASE_SECS + 1, None).unwrap();
        assert!(why.contains("lease ended"), "{why}");
    }

    #[test]
    fn another_pid_namespace_on_the_same_machine_is_remote() {
        let container = Local {
            boot_id: "boot".into(),
            pid_ns: "pid:[2]".into(),
        };
        assert_eq!(stale(&holder(), &container, 1_010, None), None);
        let unknown = Holder {
            boot_id: String::new(),
            ..holder()
        };
        assert_eq!(stale(&unknown, &here(), 1_010, None), None);
    }

    #[test]
    fn unix_utc_formats_dates() {
        assert_eq!(unix_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(unix_utc(1_795_670_198), "2026-11-26T05:16:38Z");
        assert_eq!(unix_utc(951_782_400), "2000-02-29T00:00:00Z");
    }
}
