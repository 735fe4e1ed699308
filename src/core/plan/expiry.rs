//! The cluster's expiry as a change of the plan: what `up` sets `provision:expires-at` to,
//! and which existing resources it retags (what it creates carries the tag from its create
//! call).

use crate::core::kinds::{Action, Kind, Observed, Row, TagFamily};
use crate::core::lock::unix_utc;
use crate::core::spec::ClusterSpec;
use crate::core::stamp;

/// One existing resource to retag.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Target {
    pub family: TagFamily,
    /// What the family's API names it by: an EC2 id, an IAM or parameter name, an EKS ARN.
    pub id: String,
}

/// Moving the cluster's expiry on what already exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retag {
    /// The expiry the VPC's tags had.
    pub from: Option<i64>,
    pub to: i64,
    /// The VPC first (what `list`, `gc` and the plan read): once it has the new expiry no
    /// `gc` deletes the cluster for the old one, even if the run stops before the rest.
    pub targets: Vec<Target>,
}

impl Retag {
    pub fn row(&self) -> Row {
        Row {
            id: "(cluster)".into(),
            kind: "expiry",
            action: Action::Update,
            aws_id: None,
            changes: vec![format!(
                "{} {} -> {} on {} existing resource(s)",
                stamp::EXPIRES_AT_TAG,
                self.from.map_or("(none)".to_string(), unix_utc),
                unix_utc(self.to),
                self.targets.len()
            )],
            reason: None,
            warnings: Vec::new(),
        }
    }

    /// The tag it puts on every target.
    pub fn tag(&self) -> (String, String) {
        (stamp::EXPIRES_AT_TAG.to_string(), unix_utc(self.to))
    }
}

/// The latest expiry the cluster's VPC and EKS cluster carry: what `gc` reads again under the
/// lock (an expiry moved on either keeps the cluster).
pub fn latest(obs: &Observed) -> Option<i64> {
    obs.vpcs
        .iter()
        .map(|v| v.stamp.expires_at)
        .chain(
            obs.eks
                .iter()
                .filter(|e| e.owned)
                .map(|e| e.stamp.expires_at),
        )
        .flatten()
        .max()
}

/// The expiry the cluster has: its VPC's (or, with no VPC left, its EKS cluster's).
pub fn observed(obs: &Observed) -> Option<i64> {
    obs.vpcs
        .iter()
        .find_map(|v| v.stamp.expires_at)
        .or_else(|| {
            obs.eks
                .as_ref()
                .filter(|e| e.owned)
                .and_then(|e| e.stamp.expires_at)
        })
}

/// The expiry after this `up` (see [`stamp::expiry`]), and the retag of what exists when that
/// differs from what the VPC says.
pub fn plan(spec: &ClusterSpec, obs: &Observed, now: i64) -> (Option<i64>, Option<Retag>) {
    let from = observed(obs);
    let to = stamp::expiry(spec.ttl, from, now);
    let Some(to) = to.filter(|t| Some(*t) != from) else {
        return (to, None);
    };
    let mut targets: Vec<Target> = Vec::new();
    for k in Kind::ALL {
        let Some(family) = k.tags() else { continue };
        for d in k.doomed(obs) {
            let id = match (family, k) {
                (TagFamily::Eks, Kind::EksCluster) => obs.eks.as_ref().map(|e| e.arn.clone()),
                (TagFamily::Eks, _) => obs
                    .eks
                    .as_ref()
                    .and_then(|e| e.nodegroups.iter().find(|g| g.name == d.aws_id))
                    .map(|g| g.arn.clone()),
                _ => Some(d.aws_id),
            };
            if let Some(id) = id.filter(|i| !i.is_empty()) {
                targets.push(Target { family, id });
            }
        }
    }
    if targets.is_empty() {
        return (Some(to), None);
    }
    let vpcs: Vec<String> = obs.vpcs.iter().map(|v| v.id.clone()).collect();
    // The VPC first, then the rest (a stable sort keeps the kinds' order).
    targets.sort_by_key(|t| !vpcs.contains(&t.id));
    (Some(to), Some(Retag { from, to, targets }))
}
