//! The kubeadm cluster's S3 bucket for etcd snapshots: tagged in CreateBucket, encrypted
//! (SSE-S3), every public access blocked, and a lifecycle rule that expires a snapshot after the
//! spec's `etcd_backup_days`. The control plane writes a snapshot under [`snapshot_prefix`] (its
//! cluster id's, so that a bucket kept by `down --keep-backups` and taken up again by a new
//! cluster of the same name never gives it the old one's data) every `etcd_backup_interval`;
//! when it is lost, the newest one of this cluster is what a new control plane restores (`instances::Drift::Restore`). `down` deletes the bucket with its
//! snapshots, or keeps it with `--keep-backups` (`plan::kept` names it).

use std::fmt;

use super::{Change, Context, Doomed, Kind, Observed, Plan, Refusal};
use crate::core::latency::{Cost, Profile};
use crate::core::teardown::Step;

/// Where the snapshots are, in the bucket (each cluster's under [`snapshot_prefix`], the only
/// prefix its control plane may write).
pub const SNAPSHOT_PREFIX: &str = "etcd/";

/// Where one cluster's snapshots are: `etcd/CLUSTER-ID/` (the id of its bootstrap secret, made
/// anew with each cluster of the name).
pub fn snapshot_prefix(cluster_id: &str) -> String {
    format!("{SNAPSHOT_PREFIX}{cluster_id}/")
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupBucket {
    /// Days a snapshot is kept.
    pub days: u32,
}

/// The bucket as found by its name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObsBucket {
    pub name: String,
    /// Carries our cluster tag.
    pub owned: bool,
    /// The expiry of the lifecycle rule on [`SNAPSHOT_PREFIX`], if there is one.
    pub days: Option<u32>,
    pub public_blocked: bool,
    pub encrypted: bool,
    /// The snapshots, oldest first.
    pub snapshots: Vec<Snapshot>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub key: String,
    /// When S3 stored it (seconds since the epoch).
    pub at: i64,
    pub bytes: i64,
}

impl ObsBucket {
    /// The snapshots the control plane of the cluster `cluster_id` wrote (a key of another
    /// shape, or of another cluster of the name, is never restored nor written into a script).
    pub fn of<'a>(&'a self, cluster_id: &str) -> impl Iterator<Item = &'a Snapshot> {
        let prefix = snapshot_prefix(cluster_id);
        self.snapshots
            .iter()
            .filter(move |s| s.key.starts_with(&prefix) && is_snapshot_key(&s.key))
    }

    /// The snapshot a new control plane of the cluster `cluster_id` restores: the latest
    /// stored of [`ObsBucket::of`].
    pub fn newest(&self, cluster_id: &str) -> Option<&Snapshot> {
        self.of(cluster_id).max_by_key(|s| (s.at, &s.key))
    }

    /// Every control plane's snapshots, of whichever cluster of the name.
    pub fn all(&self) -> impl Iterator<Item = &Snapshot> {
        self.snapshots.iter().filter(|s| is_snapshot_key(&s.key))
    }
}

/// The suffix of a snapshot's key, after its UTC time (`date -u +%Y%m%dT%H%M%SZ`).
pub const SNAPSHOT_SUFFIX: &str = ".tar.gz";

/// `etcd/CLUSTER-ID/20261205T201500Z.tar.gz`: what the control plane's backup writes (the id
/// of [`super::bootstrap_secret::CLUSTER_ID_LEN`] lower-case letters and digits).
pub fn is_snapshot_key(key: &str) -> bool {
    key.strip_prefix(SNAPSHOT_PREFIX)
        .and_then(|k| k.strip_suffix(SNAPSHOT_SUFFIX))
        .and_then(|k| k.split_once('/'))
        .filter(|(id, _)| {
            id.len() == super::bootstrap_secret::CLUSTER_ID_LEN
                && id
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
        .is_some_and(|(_, stamp)| {
            let b = stamp.as_bytes();
            b.len() == 16
                && b[8] == b'T'
                && b[15] == b'Z'
                && b[..8].iter().chain(&b[9..15]).all(u8::is_ascii_digit)
        })
}

/// The longest key [`is_snapshot_key`] accepts (for the user data's size check).
pub fn longest_key() -> String {
    let id = "x".repeat(super::bootstrap_secret::CLUSTER_ID_LEN);
    format!("{}20261205T201500Z{SNAPSHOT_SUFFIX}", snapshot_prefix(&id))
}

impl Snapshot {
    /// `2026-12-05T20:15:00Z`.
    pub fn time(&self) -> String {
        time::OffsetDateTime::from_unix_timestamp(self.at)
            .ok()
            .and_then(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            })
            .unwrap_or_else(|| self.at.to_string())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Drift {
    /// The lifecycle rule is missing or keeps snapshots another number of days.
    Lifecycle { have: Option<u32>, want: u32 },
    /// Some public access is not blocked.
    PublicAccess,
    /// No default encryption.
    Encryption,
}

impl fmt::Display for Drift {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Drift::Lifecycle {
                have: Some(have),
                want,
            } => write!(f, "keep snapshots {want} days (was {have})"),
            Drift::Lifecycle { have: None, want } => {
                write!(f, "keep snapshots {want} days (no expiry rule)")
            }
            Drift::PublicAccess => f.write_str("block all public access"),
            Drift::Encryption => f.write_str("encrypt by default (SSE-S3)"),
        }
    }
}

impl Plan for BackupBucket {
    const NAME: &'static str = "s3-bucket";
    const TAGS: Option<super::TagFamily> = Some(super::TagFamily::S3);
    // The control plane writes to it until it is gone.
    const DELETE_AFTER: &'static [Step] = &[Step::Kind(Kind::Instances)];
    type Observed = Option<ObsBucket>;
    type Drift = Drift;

    fn diff(&self, _id: &str, cx: &Context<'_>) -> Change<Drift> {
        let Some(b) = &cx.obs.bucket else {
            return Change::create();
        };
        if !b.owned {
            return Change::refuse(
                Some(b.name.clone()),
                Refusal::NotOurs {
                    what: "S3 bucket",
                    name: b.name.clone(),
                    cluster: cx.spec.name.clone(),
                },
            );
        }
        let mut drifts = Vec::new();
        if b.days != Some(self.days) {
            drifts.push(Drift::Lifecycle {
                have: b.days,
                want: self.days,
            });
        }
        if !b.public_blocked {
            drifts.push(Drift::PublicAccess);
        }
        if !b.encrypted {
            drifts.push(Drift::Encryption);
        }
        Change::update(&b.name, drifts)
    }

    fn doomed(obs: &Observed) -> Vec<Doomed> {
        obs.bucket
            .iter()
            .filter(|b| b.owned)
            .map(|b| Doomed::new(Self::NAME, Some(crate::core::graph::ETCD_BACKUPS), &b.name))
            .collect()
    }

    // CreateBucket, then its three settings at once.
    fn cost(&self, p: &Profile) -> Cost {
        Cost::same(2.0 * p.call)
    }
}

/// What `down --keep-backups` says it left, and where.
pub fn kept_note(b: &ObsBucket, cluster: &str, region: &str) -> String {
    // Snapshots only (not an installer of `control-plane-upgrade`'s, kept beside them).
    let newest = b
        .all()
        .max_by_key(|s| (s.at, &s.key))
        .map(|s| format!(", the newest of {}", s.time()))
        .unwrap_or_default();
    format!(
        "the etcd snapshots are kept in s3://{}/{SNAPSHOT_PREFIX} ({} snapshot(s){newest}): `provision down --name {cluster} --region {region}` without --keep-backups deletes them",
        b.name,
        b.all().count()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(key: &str, at: i64) -> Snapshot {
        Snapshot {
            key: key.into(),
            at,
            bytes: 1,
        }
    }

    #[test]
    fn the_newest_snapshot_is_the_latest_stored_of_the_control_planes_keys() {
        let b = ObsBucket {
            snapshots: vec![
                snap("etcd/abcdefghijkl/20261205T201500Z.tar.gz", 300),
                snap("etcd/abcdefghijkl/20261205T200000Z.tar.gz", 100),
                snap("etcd/abcdefghijkl/20261205T194500Z.tar.gz", 200),
                // Newer, but not what the control plane writes: never restored.
                snap("etcd/abcdefghijkl/$(reboot).tar.gz", 400),
                snap("etcd/abcdefghijkl/manual.db", 500),
                // Newer, but another cluster's of the name (a bucket kept by down).
                snap("etcd/oldcluster12/20261205T203000Z.tar.gz", 600),
            ],
            ..ObsBucket::default()
        };
        assert_eq!(
            b.newest("abcdefghijkl").map(|s| s.key.as_str()),
            Some("etcd/abcdefghijkl/20261205T201500Z.tar.gz")
        );
        assert_eq!(b.of("abcdefghijkl").count(), 3);
        assert_eq!(
            b.newest("oldcluster12").map(|s| s.key.as_str()),
            Some("etcd/oldcluster12/20261205T203000Z.tar.gz")
        );
        assert_eq!(
            b.newest("abcdefghijk"),
            None,
            "a prefix of an id is another id"
        );
        assert!(is_snapshot_key(&longest_key()));
        for bad in [
            "etcd/abcdefghijkl/20261205T201500Z.tar",
            "etcd/abcdefghijkl/20261205X201500Z.tar.gz",
            "x/abcdefghijkl/20261205T201500Z.tar.gz",
            "etcd/abcdefghijkl/2026120ST201500Z.tar.gz",
            "etcd/20261205T201500Z.tar.gz",
            "etcd//20261205T201500Z.tar.gz",
            "etcd/abcdefghij$l/20261205T201500Z.tar.gz",
            "etcd/a/b/20261205T201500Z.tar.gz",
            "etcd/abc123/20261205T201500Z.tar.gz",
            "etcd/abcdefghijklm/20261205T201500Z.tar.gz",
        ] {
            assert!(!is_snapshot_key(bad), "{bad}");
        }
        assert_eq!(snap("k", 1_764_965_700).time(), "2025-12-05T20:15:00Z");
        assert_eq!(ObsBucket::default().newest("abcdefghijkl"), None);
    }
}
