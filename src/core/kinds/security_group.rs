//! A security group of ours and its own ingress rules (rules naming another of our groups are
//! the `ingress-rules` node's, so that groups are created side by side).

use std::collections::HashMap;
use std::fmt;

use super::{Change, Context, Doomed, Kind, Observed, Plan};
use crate::core::graph::rules::{Rule, SgRole, Source};
use crate::core::latency::{Cost, Profile};
use crate::core::teardown::Step;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecurityGroup {
    pub role: SgRole,
    pub name: String,
    pub description: String,
    pub rules: Vec<Rule>,
    pub vpc: String,
}

/// An ingress permission as AWS reports it, flattened to one source per entry.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ObsRule {
    pub protocol: String,
    pub from_port: i32,
    pub to_port: i32,
    /// A CIDR or a security group id.
    pub source: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObsSg {
    pub id: String,
    pub logical: Option<String>,
    pub vpc_id: String,
    pub rules: Vec<ObsRule>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Drift {
    /// A rule the group lacks.
    Allow(Rule),
}

impl fmt::Display for Drift {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Drift::Allow(r) => write!(f, "allow {r}"),
        }
    }
}

impl Plan for SecurityGroup {
    const NAME: &'static str = "security-group";
    const TAGS: Option<super::TagFamily> = Some(super::TagFamily::Ec2);
    const DELETE_AFTER: &'static [Step] = &[
        Step::Kind(Kind::Instances),
        Step::Kind(Kind::EksCluster),
        Step::Interfaces,
    ];
    type Observed = Vec<ObsSg>;
    type Drift = Drift;

    fn diff(&self, id: &str, cx: &Context<'_>) -> Change<Drift> {
        let Some(g) = find(cx.obs, id) else {
            return Change::create();
        };
        let groups = group_ids(cx.obs);
        let drifts = missing_rules(&self.rules, &g.rules, &groups)
            .into_iter()
            .map(|r| Drift::Allow(r.clone()))
            .collect();
        Change::update(&g.id, drifts)
    }

    fn doomed(obs: &Observed) -> Vec<Doomed> {
        obs.security_groups
            .iter()
            .map(|g| Doomed::new(Self::NAME, g.logical.as_deref(), &g.id))
            .collect()
    }

    // Create, then authorize its rules (one call).
    fn cost(&self, p: &Profile) -> Cost {
        Cost::same(if self.rules.is_empty() { 1.0 } else { 2.0 } * p.call)
    }
}

/// The group that stands for node `id`.
pub fn find<'a>(obs: &'a Observed, id: &str) -> Option<&'a ObsSg> {
    obs.security_groups
        .iter()
        .find(|g| g.logical.as_deref() == Some(id))
}

/// Security group ids by logical id (ours, and the EKS cluster's own group under
/// [`crate::core::graph::EKS_CLUSTER_SG`]), for resolving group sources in rules.
pub fn group_ids(obs: &Observed) -> HashMap<String, String> {
    let mut out: HashMap<String, String> = obs
        .security_groups
        .iter()
        .filter_map(|g| g.logical.clone().map(|l| (l, g.id.clone())))
        .collect();
    if let Some(g) = obs.eks.as_ref().and_then(|e| e.cluster_sg.as_ref()) {
        out.insert(crate::core::graph::EKS_CLUSTER_SG.into(), g.id.clone());
    }
    out
}

/// The observed rules of a group by logical id (ours, or the EKS cluster's).
pub fn group_rules(obs: &Observed, logical: &str) -> Vec<ObsRule> {
    if logical == crate::core::graph::EKS_CLUSTER_SG {
        return obs
            .eks
            .as_ref()
            .and_then(|e| e.cluster_sg.as_ref())
            .map(|g| g.rules.clone())
            .unwrap_or_default();
    }
    find(obs, logical)
        .map(|g| g.rules.clone())
        .unwrap_or_default()
}

/// The rules of `desired` that `observed` lacks, given the AWS ids of the groups. A group
/// source whose group does not exist yet counts as missing.
pub fn missing_rules<'a>(
    desired: &'a [Rule],
    observed: &[ObsRule],
    groups: &HashMap<String, String>,
) -> Vec<&'a Rule> {
    desired
        .iter()
        .filter(|r| {
            let source = match &r.source {
                Source::Cidr(c) => Some(c.to_string()),
                Source::Group(g) => groups.get(g).cloned(),
            };
            let Some(source) = source else { return true };
            !observed.iter().any(|o| {
                o.protocol == r.protocol.as_str()
                    && o.from_port == i32::from(r.from_port)
                    && o.to_port == i32::from(r.to_port)
                    && o.source == source
            })
        })
        .collect()
}

impl Observed {
    /// Security group ids by logical id (see [`group_ids`]).
    pub fn group_ids(&self) -> HashMap<String, String> {
        group_ids(self)
    }
}
