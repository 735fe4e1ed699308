//! An EKS managed node group of the spec (Amazon Linux 2023, through our launch template).
//! Scaling, labels, taints and the updateConfig change in place; what EKS cannot change in place
//! (instance types, capacity type, disk, subnets) makes a new group beside the old one (blue/green): the old
//! one is deleted once the new one is ACTIVE, by [`super::nodegroup_retire`].
//!
//! A group belongs to the spec's group whose node it was made for (its `provision:resource`
//! tag); [`current`] says which of them serves it. That one function decides for the diff of
//! both kinds.

use std::collections::BTreeMap;
use std::fmt;

use super::eks_cluster::ObsEks;
use super::{Change, Context, Doomed, NoState, Observed, Plan, Refusal};
use crate::core::latency::{Cost, Profile};
use crate::core::spec::{MaxUnavailable, NodegroupSpec, Taint};
use crate::core::teardown::Step;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nodegroup {
    /// The EKS name of its first generation (`CLUSTER-NAME`); a replacement adds a suffix.
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
    /// The node it was made for (its `provision:resource` tag).
    pub logical: Option<String>,
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
    pub taints: Vec<Taint>,
    /// The id of its launch template (`None`: made without one).
    pub launch_template: Option<String>,
    pub subnets: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Drift {
    /// Make the group `name` (a new one beside `replaces`, which cannot become what the spec
    /// asks), and wait until it is ACTIVE.
    New {
        name: String,
        replaces: Vec<String>,
    },
    /// It is being created or updated: wait until it is ACTIVE (or DEGRADED, unless it
    /// `replaces` other groups: those are deleted after it, so it must be ACTIVE).
    AwaitActive {
        status: String,
        replaces: bool,
    },
    /// (min, max, desired)
    Scale {
        from: (u32, u32, u32),
        to: (u32, u32, u32),
    },
    Labels {
        set: BTreeMap<String, String>,
        remove: Vec<String>,
    },
    Taints {
        set: Vec<Taint>,
        remove: Vec<Taint>,
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
            Drift::New { name, replaces } if replaces.is_empty() => write!(f, "create {name}"),
            Drift::New { name, replaces } => write!(
                f,
                "create {name} in place of {} (deleted once {name} is ACTIVE)",
                replaces.join(", ")
            ),
            Drift::AwaitActive { status, .. } => write!(f, "wait until ACTIVE (now {status})"),
            Drift::Taints { set, remove } => write!(
                f,
                "taints: set [{}], remove [{}]",
                set.iter().map(show_taint).collect::<Vec<_>>().join(", "),
                remove.iter().map(show_taint).collect::<Vec<_>>().join(", ")
            ),
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

    fn diff(&self, id: &str, cx: &Context<'_>) -> Change<Drift> {
        let Some(e) = cx.obs.eks.as_ref() else {
            return self.new_group(Vec::new());
        };
        if let Some(other) = e
            .nodegroups
            .iter()
            .find(|g| g.name == self.name && !g.owned)
        {
            return Change::refuse(
                Some(other.name.clone()),
                Refusal::NotOurs {
                    what: "EKS node group",
                    name: other.name.clone(),
                    cluster: cx.spec.name.clone(),
                },
            );
        }
        let want = Wanted::new(
            cx.obs,
            id,
            &self.name,
            &self.spec,
            &self.template,
            &self.subnets,
        );
        let Some(g) = current(e, &want) else {
            let old = of_node(e, id, &self.name)
                .into_iter()
                .map(|g| g.name.clone())
                .collect();
            return self.new_group(old);
        };
        let aws_id = Some(g.name.clone());
        let s = &self.spec;
        let mut drifts = Vec::new();
        let mut warning = None;
        match g.status.as_str() {
            "ACTIVE" => {}
            "CREATING" | "UPDATING" => drifts.push(Drift::AwaitActive {
                status: g.status.clone(),
                replaces: of_node(e, id, &self.name).len() > 1,
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
        let set: Vec<Taint> = s
            .taints
            .iter()
            .filter(|t| !g.taints.contains(t))
            .cloned()
            .collect();
        // EKS knows a taint by its key and effect: one whose value changes is set again.
        let remove: Vec<Taint> = g
            .taints
            .iter()
            .filter(|t| {
                !s.taints
                    .iter()
                    .any(|w| w.key == t.key && w.effect == t.effect)
            })
            .cloned()
            .collect();
        if !set.is_empty() || !remove.is_empty() {
            drifts.push(Drift::Taints { set, remove });
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
            .flat_map(|e| e.nodegroups.iter())
            .filter(|g| g.owned)
            .map(|g| Doomed::new(Self::NAME, g.logical.as_deref(), &g.name))
            .collect()
    }

    // CreateNodegroup, its creation, the DescribeNodegroup that sees it ACTIVE.
    fn cost(&self, p: &Profile) -> Cost {
        Cost::same(2.0 * p.call + p.eks_nodegroup)
    }
}

impl Nodegroup {
    /// A new group: the first of its node (its plain name), or one beside those that cannot
    /// become what the spec asks (the name with a suffix of what differs).
    fn new_group(&self, replaces: Vec<String>) -> Change<Drift> {
        let name = if replaces.iter().any(|n| n == &self.name) {
            replacement_name(&self.name, &self.spec)
        } else {
            self.name.clone()
        };
        let change = if replaces.is_empty() {
            Change::create()
        } else {
            Change::replace(&replaces.join(","))
        };
        Change {
            drifts: vec![Drift::New { name, replaces }],
            ..change
        }
    }
}

/// The groups made for node `id` of the graph (by their tag; one without it by its name).
pub fn of_node<'a>(e: &'a ObsEks, id: &str, name: &str) -> Vec<&'a ObsNodegroup> {
    e.nodegroups
        .iter()
        .filter(|g| {
            g.owned
                && match &g.logical {
                    Some(l) => l == id,
                    None => g.name == name,
                }
        })
        .collect()
}

/// What a group must run to serve a node of the spec: the node's id, its first generation's
/// EKS name, the spec, and the AWS id of its launch template (`None`: not made yet).
#[derive(Debug, Clone)]
pub struct Wanted<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub spec: &'a NodegroupSpec,
    pub template: Option<&'a str>,
    /// The AWS ids of its subnets, sorted (`None`: not all made yet).
    pub subnets: Option<Vec<&'a str>>,
}

impl<'a> Wanted<'a> {
    /// `template` and `subnets`: the graph nodes of its launch template and subnets, looked up
    /// in what was observed.
    pub fn new(
        obs: &'a Observed,
        id: &'a str,
        name: &'a str,
        spec: &'a NodegroupSpec,
        template: &str,
        subnets: &[String],
    ) -> Wanted<'a> {
        let ids: Option<Vec<&str>> = subnets
            .iter()
            .map(|s| {
                obs.subnets
                    .iter()
                    .find(|o| o.logical.as_deref() == Some(s.as_str()))
                    .map(|o| o.id.as_str())
            })
            .collect();
        Wanted {
            id,
            name,
            spec,
            template: obs
                .launch_templates
                .iter()
                .find(|t| t.logical.as_deref() == Some(template))
                .map(|t| t.id.as_str()),
            subnets: ids.map(|mut v| {
                v.sort_unstable();
                v
            }),
        }
    }
}

/// Whether a group runs what the spec asks that EKS cannot change in place: its instance
/// types, capacity type, launch template (whose name carries the disk size) and subnets.
pub fn fits(g: &ObsNodegroup, w: &Wanted<'_>) -> bool {
    let sorted = |v: &[String]| {
        let mut v = v.to_vec();
        v.sort();
        v
    };
    sorted(&g.instance_types) == sorted(&w.spec.instance_types)
        && g.spot == w.spec.spot
        && (g.launch_template.is_none() || g.launch_template.as_deref() == w.template)
        && (g.subnets.is_empty()
            || w.subnets.as_ref().is_some_and(|want| {
                let mut have: Vec<&str> = g.subnets.iter().map(String::as_str).collect();
                have.sort_unstable();
                &have == want
            }))
}

/// The group that serves the node: of those made for it, one that fits the spec, the newest
/// generation first (a replacement made, its old group not deleted yet).
pub fn current<'a>(e: &'a ObsEks, w: &Wanted<'_>) -> Option<&'a ObsNodegroup> {
    let mut fitting: Vec<&ObsNodegroup> = of_node(e, w.id, w.name)
        .into_iter()
        .filter(|g| fits(g, w) && !matches!(g.status.as_str(), "DELETING" | "DELETE_FAILED"))
        .collect();
    fitting.sort_by_key(|g| g.name != replacement_name(w.name, w.spec));
    fitting.into_iter().next()
}

/// The EKS name of a group that replaces `name`: a suffix from what EKS cannot change in
/// place, so a resumed `up` finds the same one.
pub fn replacement_name(name: &str, s: &NodegroupSpec) -> String {
    let mut types = s.instance_types.clone();
    types.sort();
    let token = crate::core::tags::client_token(&[
        &types.join(","),
        if s.spot { "SPOT" } else { "ON_DEMAND" },
        &s.disk_size.to_string(),
    ]);
    let hex = token.trim_start_matches("provision-");
    format!("{name}-{}", &hex[..6])
}

fn show_taint(t: &Taint) -> String {
    match &t.value {
        Some(v) => format!("{}={v}:{}", t.key, t.effect),
        None => format!("{}:{}", t.key, t.effect),
    }
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
