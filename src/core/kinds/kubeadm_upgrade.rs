//! Upgrading a kubeadm control plane in place, one minor at a time as kubeadm requires: the
//! new minor's pkgs.k8s.io repository, `kubeadm upgrade plan` and `apply`, then the kubelet and
//! kubectl, sent to the instance with SSM Run Command (no SSH). The workers follow by rolling
//! replacement (their pools depend on this node, so they are replaced once it is done).
//!
//! The decision is the control plane's version tag against the spec: a lower version or a
//! skipped minor is refused; the tag moves once the command succeeded, so a run stopped in the
//! middle sends the command again (the script waits for one still running on the node, and
//! `kubeadm upgrade apply` at the same version finishes what is left).

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
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Drift {
    /// Run the upgrade on the control plane `instance`, from the version it was tagged with.
    Upgrade {
        instance: String,
        from: String,
        to: String,
    },
}

impl fmt::Display for Drift {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Drift::Upgrade { instance, from, to } => write!(
                f,
                "upgrade the control plane {instance} from Kubernetes {from} to {to} (kubeadm upgrade apply through SSM Run Command); the workers are replaced after it"
            ),
        }
    }
}

impl Plan for KubeadmUpgrade {
    const NAME: &'static str = "control-plane-upgrade";
    type Observed = NoState;
    type Drift = Drift;

    fn diff(&self, _id: &str, cx: &Context<'_>) -> Change<Drift> {
        // A control plane still to be made is made at the spec's version.
        let Some(master) = cx.obs.live_instances(&self.master).next() else {
            return Change::keep(None);
        };
        let Some(from) = master.version.as_deref() else {
            return Change::keep(Some(master.id.clone()));
        };
        let Some(running) = tagged_version(from) else {
            return Change::keep(Some(master.id.clone()));
        };
        let to = self.version.to_string();
        let refuse = |why: Refusal| Change::refuse(Some(master.id.clone()), why);
        if self.version.minor < running.minor
            || (self.version.minor == running.minor
                && matches!((self.version.patch, running.patch), (Some(w), Some(r)) if w < r))
        {
            return refuse(Refusal::KubeadmDowngrade {
                from: from.to_string(),
                to,
            });
        }
        if self.version.minor > running.minor + 1 {
            return refuse(Refusal::SkippedMinor {
                from: from.to_string(),
                to,
                next: format!("1.{}", running.minor + 1),
            });
        }
        let patch_differs = self.version.minor == running.minor
            && self.version.patch.is_some()
            && self.version.patch != running.patch;
        if self.version.minor == running.minor && !patch_differs {
            return Change::keep(Some(master.id.clone()));
        }
        Change::update(
            &master.id,
            vec![Drift::Upgrade {
                instance: master.id.clone(),
                from: from.to_string(),
                to,
            }],
        )
    }

    // An upgrade is not part of a fresh create.
    fn cost(&self, _p: &Profile) -> Cost {
        Cost::same(0.0)
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
