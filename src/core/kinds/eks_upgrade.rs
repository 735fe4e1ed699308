//! An EKS version upgrade, one minor at a time: the control plane (UpdateClusterVersion), then
//! the managed add-ons to the new minor's default version (or their pin), then each node group
//! to the new minor's AMI release (UpdateNodegroupVersion). The diff orders the steps; an update
//! EKS is already running is followed, not started again, so a killed `up` resumes.
//!
//! What it observes comes with the cluster ([`super::eks_cluster::ObsEks::upgrade`]); the add-on
//! catalog and the insights are looked up only when [`lookups`] says an upgrade is due.

use std::collections::BTreeMap;
use std::fmt;

use super::eks_cluster::{ObsEks, listed};
use super::{Change, Context, NoState, Plan, Refusal};
use crate::core::latency::{Cost, Profile};
use crate::core::spec::MaxUnavailable;

/// The versions the spec asks for, and what they apply to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EksUpgrade {
    /// The cluster's node, and its name.
    pub cluster: String,
    pub name: String,
    /// The target version, `1.MINOR`.
    pub version: String,
    /// The managed add-ons of the spec, and those pinned to a version.
    pub addons: Vec<String>,
    pub pins: BTreeMap<String, String>,
    /// The spec's node groups (their nodes' ids) with the updateConfig each asks for. Every
    /// group of ours is upgraded (EKS upgrades no control plane past a group below it).
    pub nodegroups: Vec<(String, Option<MaxUnavailable>)>,
    /// `up --force`: go ahead although upgrade insights report ERROR.
    pub force: bool,
}

/// What an EKS update applies to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Target {
    Cluster,
    Addon(String),
    Nodegroup(String),
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Cluster => write!(f, "the control plane"),
            Target::Addon(a) => write!(f, "add-on {a}"),
            Target::Nodegroup(n) => write!(f, "node group {n}"),
        }
    }
}

/// An EKS update (DescribeUpdate).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObsUpdate {
    pub id: String,
    pub target: Target,
    /// `VersionUpdate`, `AddonUpdate`, `ConfigUpdate`, ...
    pub kind: String,
    /// `InProgress`, `Successful`, `Failed`, `Cancelled`.
    pub status: String,
    /// The version it moves to (its `Version` or `AddonVersion` parameter).
    pub to: Option<String>,
    /// `CODE: message` of each error.
    pub errors: Vec<String>,
}

/// An upgrade insight that reports ERROR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObsInsight {
    pub id: String,
    pub name: String,
    pub reason: String,
    pub recommendation: String,
}

/// An add-on's versions for one Kubernetes minor (DescribeAddonVersions).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddonVersions {
    /// The version EKS installs by default on that minor.
    pub default: Option<String>,
    pub compatible: Vec<String>,
}

/// What the upgrade's diff reads, found with the cluster.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObsUpgrade {
    /// The updates in progress on the cluster, its add-ons and node groups (looked up for those
    /// whose status is UPDATING).
    pub updates: Vec<ObsUpdate>,
    /// The UPGRADE_READINESS insights in ERROR; `None`: not looked up (none was due, or
    /// ListInsights failed: see `insights_unread`).
    pub insights: Option<Vec<ObsInsight>>,
    /// Why the insights could not be read.
    pub insights_unread: Option<String>,
    /// minor -> add-on -> its versions there.
    pub catalog: BTreeMap<u32, BTreeMap<String, AddonVersions>>,
}

/// One step of an upgrade, in the order `up` takes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Drift {
    /// An update EKS is running: follow it until Successful.
    Follow {
        id: String,
        target: Target,
        to: Option<String>,
    },
    /// UpdateClusterVersion, one minor up.
    ControlPlane { from: String, to: String },
    /// UpdateAddon to a version of the new minor.
    Addon {
        name: String,
        from: String,
        to: String,
        minor: String,
    },
    /// UpdateNodegroupVersion to the cluster's minor, with the updateConfig set first if the
    /// spec's differs.
    Nodegroup {
        name: String,
        from: String,
        to: String,
        update_config: Option<MaxUnavailable>,
    },
}

/// Steps of one phase run together; the phases run in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    ControlPlane,
    Addons,
    Nodegroups,
}

impl Drift {
    /// What the step updates.
    pub fn target(&self) -> Target {
        match self {
            Drift::Follow { target, .. } => target.clone(),
            Drift::ControlPlane { .. } => Target::Cluster,
            Drift::Addon { name, .. } => Target::Addon(name.clone()),
            Drift::Nodegroup { name, .. } => Target::Nodegroup(name.clone()),
        }
    }

    pub fn phase(&self) -> Phase {
        match self {
            Drift::ControlPlane { .. }
            | Drift::Follow {
                target: Target::Cluster,
                ..
            } => Phase::ControlPlane,
            Drift::Addon { .. }
            | Drift::Follow {
                target: Target::Addon(_),
                ..
            } => Phase::Addons,
            Drift::Nodegroup { .. }
            | Drift::Follow {
                target: Target::Nodegroup(_),
                ..
            } => Phase::Nodegroups,
        }
    }
}

impl fmt::Display for Drift {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Drift::Follow { id, target, to } => {
                write!(f, "follow the update {id} of {target} in progress")?;
                match to {
                    Some(v) => write!(f, " (to {v})"),
                    None => Ok(()),
                }
            }
            Drift::ControlPlane { from, to } => write!(f, "control plane {from} -> {to}"),
            Drift::Addon {
                name,
                from,
                to,
                minor,
            } => write!(f, "add-on {name} {from} -> {to} (for {minor})"),
            Drift::Nodegroup {
                name,
                from,
                to,
                update_config,
            } => {
                write!(f, "node group {name} {from} -> {to}")?;
                match update_config {
                    Some(u) => write!(f, " (at most {u} unavailable)"),
                    None => Ok(()),
                }
            }
        }
    }
}

impl Plan for EksUpgrade {
    const NAME: &'static str = "eks-upgrade";
    // EKS reports what it reads with the cluster.
    type Observed = NoState;
    type Drift = Drift;

    fn diff(&self, _id: &str, cx: &Context<'_>) -> Change<Drift> {
        // A cluster being created is made at the spec's version; one not ours, or not usable,
        // the cluster's own diff refuses.
        let Some(e) = listed(cx.obs) else {
            return Change::keep(None);
        };
        match steps(self, e) {
            Err(why) => Change::refuse(Some(e.name.clone()), why),
            Ok(steps) => {
                let change = Change::update(&e.name, steps);
                match (&e.upgrade.insights_unread, change.drifts.is_empty()) {
                    (Some(why), false) => change.warn(format!(
                        "the upgrade insights could not be read ({why}): upgrading without them"
                    )),
                    _ => change,
                }
            }
        }
    }

    // Nothing on a fresh create: the cluster is made at the spec's version.
    fn cost(&self, _p: &Profile) -> Cost {
        Cost::same(0.0)
    }
}

/// `1.MINOR` (or `1.MINOR.PATCH`) -> MINOR.
pub fn minor(version: &str) -> Option<u32> {
    version.strip_prefix("1.")?.split('.').next()?.parse().ok()
}

fn version_of(minor: u32) -> String {
    format!("1.{minor}")
}

/// Whether an upgrade toward `target` is not finished: the control plane is below it, a node
/// group is below the control plane, or a version update of either is in progress.
pub fn pending(target: &str, e: &ObsEks) -> bool {
    let (Some(cur), Some(want)) = (minor(&e.version), minor(target)) else {
        return false;
    };
    cur < want
        || ours(e).any(|g| minor(&g.version).is_some_and(|v| v < cur))
        // A version update of the control plane or one of our node groups (an add-on's update
        // alone, such as a pin's, is the add-ons' to wait for).
        || e.upgrade
            .updates
            .iter()
            .any(|u| u.status == "InProgress" && u.kind == "VersionUpdate")
}

/// What discovery must look up for the upgrade's diff: the add-on catalog of these minors, and
/// whether the insights.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Lookups {
    pub minors: Vec<u32>,
    pub insights: bool,
}

/// What to look up for an upgrade to `target` (`force`: not the insights), or, without one,
/// for add-ons whose `pins` differ from what runs (the catalog of the running minor).
pub fn lookups(target: &str, force: bool, pins: &BTreeMap<String, String>, e: &ObsEks) -> Lookups {
    let (Some(cur), Some(want)) = (minor(&e.version), minor(target)) else {
        return Lookups::default();
    };
    if !pending(target, e) || want < cur {
        let moved = e
            .addons
            .iter()
            .any(|a| !a.version.is_empty() && pins.get(&a.name).is_some_and(|p| p != &a.version));
        return Lookups {
            minors: if moved && want >= cur {
                vec![cur]
            } else {
                vec![]
            },
            insights: false,
        };
    }
    Lookups {
        minors: (cur..=want).collect(),
        insights: cur < want && !force,
    }
}

/// The steps from what EKS reports to the spec's version, or why not.
///
/// # Errors
/// The refusal: a downgrade, an update in progress that is not a step of this upgrade, ERROR
/// insights (without `force`), a pinned add-on version the new minor cannot run.
pub fn steps(want: &EksUpgrade, e: &ObsEks) -> Result<Vec<Drift>, Refusal> {
    let (Some(cur0), Some(target)) = (minor(&e.version), minor(&want.version)) else {
        return Ok(Vec::new());
    };
    if target < cur0 {
        return Err(Refusal::Downgrade {
            what: format!("the EKS cluster {}", e.name),
            from: e.version.clone(),
            to: want.version.clone(),
        });
    }
    if !pending(&want.version, e) {
        return Ok(Vec::new());
    }
    let mut plan = Steps {
        want,
        e,
        steps: Vec::new(),
        followed: Vec::new(),
        addons: e
            .addons
            .iter()
            .filter(|a| want.addons.contains(&a.name) && !a.version.is_empty())
            // One being created is the add-ons node's to wait for, at the version it gets.
            .filter(|a| matches!(a.status.as_str(), "ACTIVE" | "DEGRADED" | "UPDATING"))
            .map(|a| (a.name.clone(), a.version.clone()))
            .collect(),
        nodegroups: updatable(e)
            .filter_map(|g| Some((g.name.clone(), minor(&g.version)?)))
            .collect(),
    };
    let mut cur = cur0;
    for u in e
        .upgrade
        .updates
        .iter()
        .filter(|u| u.status == "InProgress")
    {
        let ours = match &u.target {
            Target::Cluster => {
                u.kind == "VersionUpdate"
                    && cur0 < target
                    && u.to.as_deref() == Some(version_of(cur0 + 1).as_str())
            }
            Target::Addon(a) => u.kind == "AddonUpdate" && plan.addons.contains_key(a),
            // A configuration update of ours (the updateConfig before a version update, a
            // scale) is waited for, then the version update made.
            Target::Nodegroup(n) => {
                ["VersionUpdate", "ConfigUpdate"].contains(&u.kind.as_str())
                    && plan.nodegroups.contains_key(n)
            }
        };
        if !ours {
            return Err(Refusal::UpdateInProgress {
                what: u.target.to_string(),
                id: u.id.clone(),
                kind: u.kind.clone(),
            });
        }
        // A configuration update, or an AMI update within the old minor, is waited for; the
        // version update still follows it.
        let below = matches!(&u.target, Target::Nodegroup(_))
            && u.to.as_deref().and_then(minor) != Some(cur0);
        if u.kind == "ConfigUpdate" || below {
            continue;
        }
        match &u.target {
            Target::Cluster => cur = cur0 + 1,
            Target::Addon(a) => {
                if let Some(to) = &u.to {
                    plan.addons.insert(a.clone(), to.clone());
                }
            }
            Target::Nodegroup(_) => {}
        }
        plan.followed.push(u.target.clone());
    }
    // The control plane's update first, then what follows it at that minor.
    let mut followed: Vec<Drift> = e
        .upgrade
        .updates
        .iter()
        .filter(|u| u.status == "InProgress")
        .map(|u| Drift::Follow {
            id: u.id.clone(),
            target: u.target.clone(),
            to: u.to.clone(),
        })
        .collect();
    followed.sort_by_key(|d| d.phase() as u8);
    plan.steps.extend(followed);
    // At the minor the control plane is at: what an earlier run did not finish.
    let behind = plan.nodegroups.values().any(|v| *v < cur);
    if behind || !plan.followed.is_empty() {
        plan.at(cur)?;
    }
    for m in cur + 1..=target {
        plan.steps.push(Drift::ControlPlane {
            from: version_of(m - 1),
            to: version_of(m),
        });
        plan.at(m)?;
    }
    let upgrades = plan
        .steps
        .iter()
        .any(|s| matches!(s, Drift::ControlPlane { .. }));
    if upgrades
        && !want.force
        && let Some(errors) = e.upgrade.insights.as_ref().filter(|i| !i.is_empty())
    {
        return Err(Refusal::Insights {
            cluster: e.name.clone(),
            insights: errors
                .iter()
                .map(|i| format!("{} ({}): {}", i.name, i.reason, i.recommendation))
                .collect(),
        });
    }
    // Phases in order; a followed step stands for the one it replaces.
    Ok(plan.steps)
}

/// The steps being built: the versions each add-on and node group will have reached.
struct Steps<'a> {
    want: &'a EksUpgrade,
    e: &'a ObsEks,
    steps: Vec<Drift>,
    followed: Vec<Target>,
    addons: BTreeMap<String, String>,
    nodegroups: BTreeMap<String, u32>,
}

impl Steps<'_> {
    /// The add-ons, then the node groups, at minor `m` (the control plane's).
    fn at(&mut self, m: u32) -> Result<(), Refusal> {
        let minor_s = version_of(m);
        let catalog = self.e.upgrade.catalog.get(&m);
        let names: Vec<String> = self.addons.keys().cloned().collect();
        for name in names {
            if self.followed.contains(&Target::Addon(name.clone())) {
                continue;
            }
            let have = self.addons[&name].clone();
            let versions = catalog.and_then(|c| c.get(&name));
            let Some(versions) = versions else {
                return Err(Refusal::AddonUnavailable {
                    name,
                    minor: minor_s,
                });
            };
            let to = match self.want.pins.get(&name) {
                Some(pin) if compare(pin, &have) == std::cmp::Ordering::Less => {
                    return Err(Refusal::AddonDowngrade {
                        name,
                        from: have,
                        to: pin.clone(),
                    });
                }
                Some(pin) if versions.compatible.contains(pin) => pin.clone(),
                Some(pin) => {
                    return Err(Refusal::AddonPin {
                        name,
                        version: pin.clone(),
                        minor: minor_s,
                        compatible: versions.compatible.clone(),
                    });
                }
                None => match &versions.default {
                    // A newer version than the default, compatible, is kept (EKS does not
                    // downgrade add-ons).
                    Some(d)
                        if !(versions.compatible.contains(&have)
                            && compare(&have, d) != std::cmp::Ordering::Less) =>
                    {
                        d.clone()
                    }
                    Some(_) => have.clone(),
                    None => {
                        return Err(Refusal::AddonUnavailable {
                            name,
                            minor: minor_s,
                        });
                    }
                },
            };
            if to != have {
                self.steps.push(Drift::Addon {
                    name: name.clone(),
                    from: have,
                    to: to.clone(),
                    minor: minor_s.clone(),
                });
                self.addons.insert(name, to);
            }
        }
        let names: Vec<String> = self.nodegroups.keys().cloned().collect();
        for name in &names {
            let observed = ours(self.e).find(|g| &g.name == name);
            let config = observed
                .and_then(|g| g.logical.as_ref())
                .and_then(|l| self.want.nodegroups.iter().find(|(id, _)| id == l))
                .and_then(|(_, c)| *c);
            if self.followed.contains(&Target::Nodegroup(name.clone())) {
                self.followed
                    .retain(|t| t != &Target::Nodegroup(name.clone()));
                self.nodegroups.insert(name.clone(), m);
                continue;
            }
            let Some(have) = self.nodegroups.get(name).copied() else {
                continue;
            };
            if have < m {
                let observed = observed.and_then(|g| g.max_unavailable);
                let first = !self
                    .steps
                    .iter()
                    .any(|s| matches!(s, Drift::Nodegroup { name: n, .. } if n == name));
                self.steps.push(Drift::Nodegroup {
                    name: name.clone(),
                    from: version_of(have),
                    to: minor_s.clone(),
                    update_config: config.filter(|c| first && observed != Some(*c)),
                });
                self.nodegroups.insert(name.clone(), m);
            }
        }
        // A followed add-on update counts for this minor only.
        self.followed.retain(|t| !matches!(t, Target::Addon(_)));
        Ok(())
    }
}

/// Our node groups that are not being deleted.
fn ours(e: &ObsEks) -> impl Iterator<Item = &super::nodegroup::ObsNodegroup> {
    e.nodegroups
        .iter()
        .filter(|g| g.owned && !matches!(g.status.as_str(), "DELETING" | "DELETE_FAILED"))
}

/// Our node groups an update can start on (one being created gets the cluster's version).
fn updatable(e: &ObsEks) -> impl Iterator<Item = &super::nodegroup::ObsNodegroup> {
    ours(e).filter(|g| matches!(g.status.as_str(), "ACTIVE" | "DEGRADED" | "UPDATING"))
}

/// Why the add-on `name` cannot go to its `pin` outside an upgrade: below what runs, or not a
/// version the running minor runs (when the catalog was read).
pub fn pin_refusal(e: &ObsEks, name: &str, have: &str, pin: &str) -> Option<Refusal> {
    if compare(pin, have) == std::cmp::Ordering::Less {
        return Some(Refusal::AddonDowngrade {
            name: name.to_string(),
            from: have.to_string(),
            to: pin.to_string(),
        });
    }
    let cur = minor(&e.version)?;
    let versions = e.upgrade.catalog.get(&cur)?.get(name)?;
    (!versions.compatible.iter().any(|v| v == pin)).then(|| Refusal::AddonPin {
        name: name.to_string(),
        version: pin.to_string(),
        minor: version_of(cur),
        compatible: versions.compatible.clone(),
    })
}

/// Orders EKS add-on versions (`v1.19.2-eksbuild.1`) by their numbers.
pub fn compare(a: &str, b: &str) -> std::cmp::Ordering {
    let numbers = |v: &str| -> Vec<u64> {
        v.trim_start_matches('v')
            .split(|c: char| !c.is_ascii_digit())
            .filter(|s| !s.is_empty())
            .map(|s| s.parse().unwrap_or(0))
            .collect()
    };
    numbers(a).cmp(&numbers(b))
}

#[cfg(test)]
#[path = "eks_upgrade_tests.rs"]
mod tests;
