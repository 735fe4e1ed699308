//! The node groups `up` deletes: those of a group removed from the spec, and the old generation
//! of one replaced blue/green. The node runs after every group of the spec is ACTIVE, so the
//! workloads move by EKS's own drain onto groups that are ready for them.

use std::fmt;

use super::nodegroup::{Wanted, current};
use super::{Change, Context, Plan};
use crate::core::spec::NodegroupSpec;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodegroupRetire {
    /// The cluster's node.
    pub cluster: String,
    /// The spec's groups: (node id, first generation's EKS name, spec, its launch template's
    /// node, its subnets' nodes).
    pub groups: Vec<(String, String, NodegroupSpec, String, Vec<String>)>,
    /// The nodes of the spec's groups' launch templates; another node group template of ours
    /// goes with its group.
    pub templates: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Drift {
    /// DeleteNodegroup, then wait until it is gone.
    Delete { name: String, why: Why },
    /// DeleteLaunchTemplate of a group no longer in the spec (after its groups are gone).
    Template { id: String, logical: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Why {
    /// Its group is no longer in the spec.
    Removed,
    /// A new generation of its group replaces it.
    Replaced { by: String },
}

impl fmt::Display for Drift {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Drift::Delete {
                name,
                why: Why::Removed,
            } => write!(f, "delete {name} (no longer in the spec)"),
            Drift::Delete {
                name,
                why: Why::Replaced { by },
            } => write!(f, "delete {name} (replaced by {by})"),
            Drift::Template { id, logical } => {
                write!(
                    f,
                    "delete launch template {id} ({logical}, no longer in the spec)"
                )
            }
        }
    }
}

impl Plan for NodegroupRetire {
    const NAME: &'static str = "nodegroup-retire";
    // What it deletes, the node group kind deletes on `down`.
    type Observed = super::NoState;
    type Drift = Drift;

    fn diff(&self, _id: &str, cx: &Context<'_>) -> Change<Drift> {
        let Some(e) = super::eks_cluster::listed(cx.obs) else {
            return Change::keep(None);
        };
        let mut drifts = Vec::new();
        let mut warnings = Vec::new();
        for g in e.nodegroups.iter().filter(|g| g.owned) {
            let mine = self.groups.iter().find(|(id, name, ..)| match &g.logical {
                Some(l) => l == id,
                None => &g.name == name,
            });
            let why = match mine {
                None => Why::Removed,
                Some((id, name, spec, template, subnets)) => {
                    let want = Wanted::new(cx.obs, id, name, spec, template, subnets);
                    let now = current(e, &want);
                    if now.is_some_and(|c| c.name == g.name) {
                        continue;
                    }
                    if let Some(c) = now.filter(|c| !ready_or_coming(&c.status)) {
                        // Its replacement cannot take the workloads: keep it.
                        warnings.push(format!(
                            "keeping {}: its replacement {} is {} ({})",
                            g.name,
                            c.name,
                            c.status,
                            c.issues.join("; ")
                        ));
                        continue;
                    }
                    let by = now.map_or_else(
                        || super::nodegroup::replacement_name(name, spec),
                        |c| c.name.clone(),
                    );
                    if by == g.name {
                        continue;
                    }
                    Why::Replaced { by }
                }
            };
            drifts.push(Drift::Delete {
                name: g.name.clone(),
                why,
            });
        }
        for t in &cx.obs.launch_templates {
            if let Some(logical) = t.logical.as_ref().filter(|l| {
                l.starts_with(crate::core::graph::NODE_TEMPLATE) && !self.templates.contains(l)
            }) {
                drifts.push(Drift::Template {
                    id: t.id.clone(),
                    logical: logical.clone(),
                });
            }
        }
        if drifts.is_empty() {
            return warnings.into_iter().fold(Change::keep(None), Change::warn);
        }
        let names: Vec<String> = drifts
            .iter()
            .map(|d| match d {
                Drift::Delete { name, .. } => name.clone(),
                Drift::Template { id, .. } => id.clone(),
            })
            .collect();
        let change = Change {
            action: super::Action::Delete,
            ..Change::update(&names.join(","), drifts)
        };
        warnings.into_iter().fold(change, Change::warn)
    }
}

/// A replacement that is, or will be once `up` waits for it, ACTIVE (the node group's diff waits
/// for a replacement to be ACTIVE, not DEGRADED, before this node runs).
fn ready_or_coming(status: &str) -> bool {
    matches!(status, "ACTIVE" | "CREATING" | "UPDATING")
}
