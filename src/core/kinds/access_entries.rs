//! The cluster's EKS access entries and their access policies, converging on the spec. An entry
//! we did not make (the cluster creator's) only ever gains policies, and is never removed.

use std::fmt;

use super::eks_cluster::{ObsAccessEntry, listed, partition};
use super::{Change, Context, Doomed, NoState, Observed, Plan};
use crate::core::latency::{Cost, Profile};
use crate::core::spec::{AccessEntry, AccessPolicy};
use crate::core::teardown::Step;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessEntries {
    /// The cluster's node.
    pub cluster: String,
    pub entries: Vec<AccessEntry>,
}

/// One change to a cluster's access entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessChange {
    /// CreateAccessEntry, then the association.
    Create {
        principal: String,
        policy_arn: String,
        namespaces: Vec<String>,
    },
    /// AssociateAccessPolicy (adds it, or changes its scope).
    Associate {
        principal: String,
        policy_arn: String,
        namespaces: Vec<String>,
    },
    Disassociate {
        principal: String,
        policy_arn: String,
    },
    /// An entry of ours the spec no longer lists.
    Delete { principal: String },
}

impl AccessChange {
    pub fn principal(&self) -> &str {
        match self {
            AccessChange::Create { principal, .. }
            | AccessChange::Associate { principal, .. }
            | AccessChange::Disassociate { principal, .. }
            | AccessChange::Delete { principal } => principal,
        }
    }
}

impl fmt::Display for AccessChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let short = |arn: &str| arn.rsplit('/').next().unwrap_or(arn).to_string();
        let scope = |ns: &[String]| {
            if ns.is_empty() {
                "cluster-wide".to_string()
            } else {
                format!("in {}", ns.join(", "))
            }
        };
        match self {
            AccessChange::Create {
                principal,
                policy_arn,
                namespaces,
            } => write!(
                f,
                "grant {} to {principal} {}",
                short(policy_arn),
                scope(namespaces)
            ),
            AccessChange::Associate {
                principal,
                policy_arn,
                namespaces,
            } => write!(
                f,
                "associate {} with {principal} {}",
                short(policy_arn),
                scope(namespaces)
            ),
            AccessChange::Disassociate {
                principal,
                policy_arn,
            } => write!(f, "revoke {} from {principal}", short(policy_arn)),
            AccessChange::Delete { principal } => write!(
                f,
                "remove the access entry of {principal} (no longer in the spec)"
            ),
        }
    }
}

impl Plan for AccessEntries {
    const NAME: &'static str = "access-entries";
    const DELETE_AFTER: &'static [Step] = &[Step::Kubernetes];
    // EKS reports them with the cluster.
    type Observed = NoState;
    type Drift = AccessChange;

    fn diff(&self, _id: &str, cx: &Context<'_>) -> Change<AccessChange> {
        match listed(cx.obs) {
            Some(e) => Change::update(
                &e.name,
                access_changes(&e.arn, &self.entries, &e.access_entries),
            ),
            // A cluster still to be made (or being made) has only its creator's entry, which
            // is not ours.
            None => Change {
                drifts: access_changes(
                    &format!("arn:{}:eks", partition(&cx.spec.region)),
                    &self.entries,
                    &[],
                ),
                ..Change::create()
            },
        }
    }

    fn doomed(obs: &Observed) -> Vec<Doomed> {
        // Only the entries we made: the creator's goes with the cluster, so that a `down` that
        // stops before the cluster is deleted does not lock its operator out.
        obs.eks
            .iter()
            .filter(|e| e.owned)
            .flat_map(|e| e.access_entries.iter().filter(|p| p.owned))
            .map(|p| Doomed::new(Self::NAME, Some("access-entry"), &p.principal))
            .collect()
    }

    // ListAccessEntries; per entry (in parallel) create, then associate its policy.
    fn cost(&self, p: &Profile) -> Cost {
        Cost::same(if self.entries.is_empty() { 1.0 } else { 3.0 } * p.call)
    }
}

/// The EKS access policy ARN of `policy`, in the partition of `cluster_arn`.
pub fn access_policy_arn(cluster_arn: &str, policy: AccessPolicy) -> String {
    let partition = cluster_arn
        .split(':')
        .nth(1)
        .filter(|p| p.starts_with("aws"))
        .unwrap_or("aws");
    format!(
        "arn:{partition}:eks::aws:cluster-access-policy/{}",
        policy.eks_policy()
    )
}

/// What turns the observed access entries into the wanted ones. Entries we did not make (the
/// cluster creator's) are left as they are unless the spec names their principal.
pub fn access_changes(
    cluster_arn: &str,
    wanted: &[AccessEntry],
    observed: &[ObsAccessEntry],
) -> Vec<AccessChange> {
    let mut out = Vec::new();
    for w in wanted {
        let arn = access_policy_arn(cluster_arn, w.policy);
        let mut want_ns = w.namespaces.clone();
        want_ns.sort();
        match observed.iter().find(|o| o.principal == w.principal_arn) {
            None => out.push(AccessChange::Create {
                principal: w.principal_arn.clone(),
                policy_arn: arn,
                namespaces: w.namespaces.clone(),
            }),
            Some(o) => {
                let same = o.policies.iter().any(|(p, ns)| {
                    let mut ns = ns.clone();
                    ns.sort();
                    *p == arn && ns == want_ns
                });
                if !same {
                    out.push(AccessChange::Associate {
                        principal: w.principal_arn.clone(),
                        policy_arn: arn.clone(),
                        namespaces: w.namespaces.clone(),
                    });
                }
                // On an entry we did not make (the creator's), policies are only added: taking
                // one away could lock its operator out.
                for (p, _) in o.policies.iter().filter(|(p, _)| o.owned && *p != arn) {
                    out.push(AccessChange::Disassociate {
                        principal: w.principal_arn.clone(),
                        policy_arn: p.clone(),
                    });
                }
            }
        }
    }
    for o in observed
        .iter()
        .filter(|o| o.owned && !wanted.iter().any(|w| w.principal_arn == o.principal))
    {
        out.push(AccessChange::Delete {
            principal: o.principal.clone(),
        });
    }
    out
}
