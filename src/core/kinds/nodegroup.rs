//! The EKS managed node group (Amazon Linux 2023, through our launch template). Scaling and
//! labels change in place; instance types and capacity type cannot.

use std::collections::BTreeMap;
use std::fmt;

use super::{Change, Context, Doomed, NoState, Observed, Plan, Refusal};
use crate::core::latency::{Cost, Profile};
use crate::core::spec::{MaxUnavailable, NodegroupSpec};
use crate::core::teardown::Step;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nodegroup {
    pub name: String,
    pub spec: NodegroupSpec,
    /// The nodes of the cluster, the node role, the launch template, the VPC and the subnets.
    pub cluster: String,
    pub role: String,
    pub template: String,
    pub vpc: String,
    pub subnets: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObsNodegroup {
    pub name: String,
    pub arn: String,
    pub status: String,
    pub min: u32,
    pub max: u32,
    pub desired: u32,
    pub owned: bool,
    pub instance_types: Vec<String>,
    pub spot: bool,
    pub labels: BTreeMap<String, String>,
    /// EKS's health issues (why it is DEGRADED).
    pub issues: Vec<String>,
    /// Its Kubernetes version (`1.35`) and AMI release.
    pub version: String,
    pub release_version: String,
    /// Its updateConfig; `None`: EKS's default (one node).
    pub max_unavailable: Option<MaxUnavailable>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Drift {
    /// It is being created or updated: wait until it is ACTIVE (or DEGRADED).
    AwaitActive { status: String },
    /// (min, max, desired)
    Scale {
        from: (u32, u32, u32),
        to: (u32, u32, u32),
    },
    Labels {
        set: BTreeMap<String, String>,
        remove: Vec<String>,
    },
    /// How many nodes an update may take down at once (an upgrade sets it before its version
    /// update instead).
    UpdateConfig {
        from: Option<MaxUnavailable>,
        to: MaxUnavailable,
    },
}

impl fmt::Display for Drift {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Drift::AwaitActive { status } => write!(f, "wait until ACTIVE (now {status})"),
            Drift::Scale { from, to } => write!(
                f,
                "scale min/max/desired {}/{}/{} to {}/{}/{}",
                from.0, from.1, from.2, to.0, to.1, to.2
            ),
            Drift::Labels { set, remove } => write!(f, "labels: set {set:?}, remove {remove:?}"),
            Drift::UpdateConfig { from, to } => match from {
                Some(from) => write!(f, "at most {from} -> {to} unavailable in updates"),
                None => write!(f, "at most {to} unavailable in updates"),
            },
        }
    }
}

impl Plan for Nodegroup {
    const NAME: &'static str = "nodegroup";
    const TAGS: Option<super::TagFamily> = Some(super::TagFamily::Eks);
    const DELETE_AFTER: &'static [Step] = &[Step::Kubernetes];
    // EKS reports it with the cluster.
    type Observed = NoState;
    type Drift = Drift;

    fn diff(&self, _id: &str, cx: &Context<'_>) -> Change<Drift> {
        let Some(g) = observed(cx.obs) else {
            return Change::create();
        };
        let aws_id = Some(g.name.clone());
        if !g.owned {
            return Change::refuse(
                aws_id,
                Refusal::NotOurs {
                    what: "EKS node group",
                    name: g.name.clone(),
                    cluster: cx.spec.name.clone(),
                },
            );
        }
        let s = &self.spec;
        let capacity = |spot: bool| if spot { "SPOT" } else { "ON_DEMAND" };
        let sorted = |v: &[String]| {
            let mut v = v.to_vec();
            v.sort();
            v
        };
        if sorted(&g.instance_types) != sorted(&s.instance_types) || g.spot != s.spot {
            return Change::refuse(
                aws_id,
                Refusal::Immutable {
                    what: format!(
                        "the node group runs {} ({}), the spec says {} ({})",
                        g.instance_types.join("/"),
                        capacity(g.spot),
                        s.instance_types.join("/"),
                        capacity(s.spot)
                    ),
                },
            );
        }
        let mut drifts = Vec::new();
        let mut warning = None;
        match g.status.as_str() {
            "ACTIVE" => {}
            "CREATING" | "UPDATING" => drifts.push(Drift::AwaitActive {
                status: g.status.clone(),
            }),
            // Degraded capacity (Spot reclaimed, nodes not joining) is reported, not refused.
            "DEGRADED" => {
                warning = Some(format!(
                    "the node group is DEGRADED ({})",
                    g.issues.join("; ")
                ))
            }
            other => {
                return Change::refuse(
                    aws_id,
                    Refusal::State {
                        what: format!("the node group {}", g.name),
                        state: other.to_string(),
                    },
                );
            }
        }
        let want = (s.min, s.max, s.desired);
        if (g.min, g.max, g.desired) != want {
            drifts.push(Drift::Scale {
                from: (g.min, g.max, g.desired),
                to: want,
            });
        }
        let (set, remove) = label_changes(&s.labels, &g.labels);
        if !set.is_empty() || !remove.is_empty() {
            drifts.push(Drift::Labels { set, remove });
        }
        let upgrading = cx
            .obs
            .eks
            .as_ref()
            .zip(cx.spec.eks())
            .is_some_and(|(e, want)| super::eks_upgrade::pending(&want.version, e));
        if let Some(to) = s
            .max_unavailable
            .filter(|to| g.max_unavailable != Some(*to))
            && !upgrading
        {
            drifts.push(Drift::UpdateConfig {
                from: g.max_unavailable,
                to,
            });
        }
        let change = Change::update(&g.name, drifts);
        match warning {
            Some(w) => change.warn(w),
            None => change,
        }
    }

    fn doomed(obs: &Observed) -> Vec<Doomed> {
        obs.eks
            .iter()
            .filter(|e| e.owned)
            .filter_map(|e| e.nodegroup.as_ref())
            .filter(|g| g.owned)
            .map(|g| Doomed::new(Self::NAME, Some(crate::core::graph::NODEGROUP), &g.name))
            .collect()
    }

    // CreateNodegroup, its creation, the DescribeNodegroup that sees it ACTIVE.
    fn cost(&self, p: &Profile) -> Cost {
        Cost::same(2.0 * p.call + p.eks_nodegroup)
    }
}

/// The node group as EKS reported it with the cluster.
pub fn observed(obs: &Observed) -> Option<&ObsNodegroup> {
    obs.eks.as_ref().and_then(|e| e.nodegroup.as_ref())
}

/// The label changes that bring `have` to `want`: (labels to add or update, keys to remove).
pub fn label_changes(
    want: &BTreeMap<String, String>,
    have: &BTreeMap<String, String>,
) -> (BTreeMap<String, String>, Vec<String>) {
    let set = want
        .iter()
        .filter(|(k, v)| have.get(*k) != Some(v))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let remove = have
        .keys()
        .filter(|k| !want.contains_key(*k))
        .cloned()
        .collect();
    (set, remove)
}
