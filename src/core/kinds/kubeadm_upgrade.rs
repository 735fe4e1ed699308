//! Upgrading a kubeadm control plane in place, one minor at a time as kubeadm requires: the
//! new minor's pkgs.k8s.io repository, `kubeadm upgrade plan` and `apply`, then the kubelet and
//! kubectl, sent to the instance with SSM Run Command (no SSH). The workers follow by rolling
//! replacement (their pools depend on this node, so they are replaced once it is done).
//!
//! The decision is the control plane's version tag against the spec: a lower version or a
//! skipped minor is refused; the tag moves once the command succeeded, so a run stopped in the
//! middle sends the command again (the script waits for one still running on the node, and
//! `kubeadm upgrade apply` at the same version finishes what is left).
//!
//! The same channel sets another `etcd_backup_interval` on the running control plane (its
//! timer, which its user data wrote at boot), decided by its `provision:etcd-backup-interval`
//! tag, moved once the command succeeded; a control plane without the tag was launched before
//! etcd snapshots, and gets them the same way (the backup script, its timer and node.py of
//! this release, fetched from the cluster's bucket), then the tag.

use std::fmt;

use super::{Change, Context, NoState, Plan, Refusal};
use crate::core::latency::{Cost, Profile};
use crate::core::spec::KubernetesVersion;

#[derive(Debug, Clone, PartialEq)]
pub struct KubeadmUpgrade {
    /// The control plane's node.
    pub master: String,
    /// The version the spec asks for.
    pub version: KubernetesVersion,
    /// Seconds between etcd snapshots, as the spec asks.
    pub backup_interval: u32,
    /// The snapshots' bucket (its name) and the bootstrap secret (the cluster id, which names
    /// the snapshots' prefix): what a control plane launched before snapshots is given.
    pub bucket: String,
    pub secret: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Drift {
    /// Run the upgrade on the control plane `instance`, from the version it was tagged with.
    Upgrade {
        instance: String,
        from: String,
        to: String,
    },
    /// Set the backup timer of the control plane `instance` to `to` seconds (it was launched
    /// with `from`).
    BackupInterval {
        instance: String,
        from: u32,
        to: u32,
    },
    /// Give the control plane `instance`, launched by an earlier release (no interval tag),
    /// this release's backup script and timer (every `every` seconds).
    InstallBackups { instance: String, every: u32 },
}

impl Drift {
    /// The control plane's instance the command goes to.
    pub fn instance(&self) -> &str {
        match self {
            Drift::Upgrade { instance, .. }
            | Drift::BackupInterval { instance, .. }
            | Drift::InstallBackups { instance, .. } => instance,
        }
    }
}

impl fmt::Display for Drift {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Drift::Upgrade { instance, from, to } => write!(
                f,
                "upgrade the control plane {instance} from Kubernetes {from} to {to} (kubeadm upgrade apply through SSM Run Command); the workers are replaced after it"
            ),
            Drift::BackupInterval { instance, from, to } => write!(
                f,
                "save etcd every {} instead of {} on the control plane {instance} (its backup timer, through SSM Run Command)",
                crate::core::stamp::format_duration(i64::from(*to)),
                crate::core::stamp::format_duration(i64::from(*from)),
            ),
            Drift::InstallBackups { instance, every } => write!(
                f,
                "save etcd every {} on the control plane {instance}, launched by an earlier release (this one's backup script, timer and provision-node.py, through SSM Run Command)",
                crate::core::stamp::format_duration(i64::from(*every)),
            ),
        }
    }
}

impl Plan for KubeadmUpgrade {
    const NAME: &'static str = "control-plane-upgrade";
    type Observed = NoState;
    type Drift = Drift;

    fn diff(&self, _id: &str, cx: &Context<'_>) -> Change<Drift> {
        // A control plane still to be made is made at the spec's version and interval.
        let Some(master) = cx.obs.live_instances(&self.master).next() else {
            return Change::keep(None);
        };
        let mut drifts = Vec::new();
        match self.upgrade(master) {
            Ok(Some(d)) => drifts.push(d),
            Ok(None) => {}
            Err(why) => return Change::refuse(Some(master.id.clone()), why),
        }
        // Tagged at launch since etcd snapshots; a control plane without the tag saves none.
        match master.backup_interval.as_deref() {
            None => drifts.push(Drift::InstallBackups {
                instance: master.id.clone(),
                every: self.backup_interval,
            }),
            Some(t) => {
                if let Some(from) = t.parse::<u32>().ok().filter(|f| *f != self.backup_interval) {
                    drifts.push(Drift::BackupInterval {
                        instance: master.id.clone(),
                        from,
                        to: self.backup_interval,
                    });
                }
            }
        }
        let installs = drifts
            .iter()
            .any(|d| matches!(d, Drift::InstallBackups { .. }));
        if drifts.is_empty() {
            Change::keep(Some(master.id.clone()))
        } else if let Some(w) = installs.then(|| off_address(master, cx)).flatten() {
            Change::update(&master.id, drifts).warn(w)
        } else {
            Change::update(&master.id, drifts)
        }
    }

    // An upgrade is not part of a fresh create.
    fn cost(&self, _p: &Profile) -> Cost {
        Cost::same(0.0)
    }
}

/// What a restore from its snapshots would not give a control plane of an earlier release that
/// is not at the fixed address: the workers' way back (they joined at its own address).
fn off_address(master: &super::instances::ObsInstance, cx: &Context<'_>) -> Option<String> {
    let fixed = crate::core::graph::master_address(cx.spec)?.to_string();
    let at = master.private_ip.as_deref()?;
    (at != fixed).then(|| {
        format!(
            "the control plane {} is at {at}, not at {fixed}: a control plane restored from these snapshots would be at {fixed}, which its workers do not know (they would need replacing)",
            master.id
        )
    })
}

impl KubeadmUpgrade {
    /// The upgrade the control plane's version tag asks for, none, or why not.
    fn upgrade(&self, master: &super::instances::ObsInstance) -> Result<Option<Drift>, Refusal> {
        let Some(from) = master.version.as_deref() else {
            return Ok(None);
        };
        let Some(running) = tagged_version(from) else {
            return Ok(None);
        };
        let to = self.version.to_string();
        if self.version.minor < running.minor
            || (self.version.minor == running.minor
                && matches!((self.version.patch, running.patch), (Some(w), Some(r)) if w < r))
        {
            return Err(Refusal::KubeadmDowngrade {
                from: from.to_string(),
                to,
            });
        }
        if self.version.minor > running.minor + 1 {
            return Err(Refusal::SkippedMinor {
                from: from.to_string(),
                to,
                next: format!("1.{}", running.minor + 1),
            });
        }
        let patch_differs = self.version.minor == running.minor
            && self.version.patch.is_some()
            && self.version.patch != running.patch;
        if self.version.minor == running.minor && !patch_differs {
            return Ok(None);
        }
        Ok(Some(Drift::Upgrade {
            instance: master.id.clone(),
            from: from.to_string(),
            to,
        }))
    }
}

/// A version tag, `1.MINOR` or `1.MINOR.PATCH`, whatever the minor (one a later release made
/// is still compared, so that going back to this release's newest is refused).
fn tagged_version(tag: &str) -> Option<KubernetesVersion> {
    crate::core::spec::version_parts(tag)
        .ok()
        .filter(|(major, _)| *major == 1)
        .map(|(_, v)| v)
}
