//! What AWS reported (`Observed`) and the diff of the desired graph against it (`Plan`).
//!
//! `up` and `plan` share this diff: `plan` prints it, `up` acts on it node by node, so what
//! `plan` says is what `up` does.

use std::collections::HashMap;

use super::graph::{Desired, Graph, Kind, Protocol, Rule, Source, TeardownStep};

/// Everything tagged with the cluster (plus the IAM and SSM objects found by name).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observed {
    pub vpcs: Vec<ObsVpc>,
    pub subnets: Vec<ObsSubnet>,
    pub igws: Vec<ObsIgw>,
    pub route_tables: Vec<ObsRouteTable>,
    pub security_groups: Vec<ObsSg>,
    pub instances: Vec<ObsInstance>,
    pub role: Option<ObsIam>,
    pub profile: Option<ObsProfile>,
    pub secret: Option<ObsSecret>,
    /// The node role's `provision-ca-access` inline policy document, if any.
    pub ca_policy: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObsVpc {
    pub id: String,
    pub logical: Option<String>,
    pub cidr: String,
    pub dns_support: Option<bool>,
    pub dns_hostnames: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObsSubnet {
    pub id: String,
    pub logical: Option<String>,
    pub vpc_id: String,
    pub cidr: String,
    pub az: String,
    pub map_public_ip: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObsIgw {
    pub id: String,
    pub logical: Option<String>,
    pub attached_vpcs: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObsRouteTable {
    pub id: String,
    pub logical: Option<String>,
    pub vpc_id: String,
    /// The gateway of the 0.0.0.0/0 route, if there is one.
    pub default_route: Option<String>,
    /// (association id, subnet id)
    pub associations: Vec<(String, String)>,
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
pub struct ObsInstance {
    pub id: String,
    pub logical: Option<String>,
    pub state: String,
    pub subnet_id: Option<String>,
    pub private_ip: Option<String>,
    pub public_ip: Option<String>,
}

impl ObsInstance {
    /// Not terminated or on its way there: it counts towards the desired number. A stopped
    /// instance is started again, not replaced (a new master would have a new address).
    pub fn is_live(&self) -> bool {
        matches!(
            self.state.as_str(),
            "pending" | "running" | "stopping" | "stopped"
        )
    }

    pub fn is_stopped(&self) -> bool {
        matches!(self.state.as_str(), "stopping" | "stopped")
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObsIam {
    pub name: String,
    pub arn: String,
    /// Carries our cluster tag. An untagged role of the same name is someone else's.
    pub owned: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObsProfile {
    pub name: String,
    pub arn: String,
    pub roles: Vec<String>,
    pub owned: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObsSecret {
    pub name: String,
    pub owned: bool,
}

impl Observed {
    /// The AWS id and a short description of the resource that stands for a logical node.
    pub fn id_of(&self, node_id: &str, kind: Kind) -> Option<String> {
        let by = |logical: &Option<String>| logical.as_deref() == Some(node_id);
        match kind {
            Kind::Vpc => self
                .vpcs
                .iter()
                .find(|v| by(&v.logical))
                .map(|v| v.id.clone()),
            Kind::Subnet => self
                .subnets
                .iter()
                .find(|v| by(&v.logical))
                .map(|v| v.id.clone()),
            Kind::InternetGateway => self
                .igws
                .iter()
                .find(|v| by(&v.logical))
                .map(|v| v.id.clone()),
            Kind::RouteTable => self
                .route_tables
                .iter()
                .find(|v| by(&v.logical))
                .map(|v| v.id.clone()),
            Kind::SecurityGroup => self
                .security_groups
                .iter()
                .find(|v| by(&v.logical))
                .map(|v| v.id.clone()),
            Kind::IamRole => self.role.as_ref().map(|r| r.name.clone()),
            Kind::InstanceProfile => self.profile.as_ref().map(|r| r.name.clone()),
            Kind::Secret => self.secret.as_ref().map(|r| r.name.clone()),
            Kind::Instance => {
                let ids: Vec<&str> = self
                    .live_instances(node_id)
                    .map(|i| i.id.as_str())
                    .collect();
                (!ids.is_empty()).then(|| ids.join(","))
            }
            Kind::IamPolicy => self
                .ca_policy
                .as_ref()
                .map(|_| super::graph::CA_ACCESS_POLICY.to_string()),
            Kind::AvailabilityZones | Kind::Ami | Kind::JoinToken => None,
        }
    }

    pub fn live_instances<'a>(
        &'a self,
        node_id: &'a str,
    ) -> impl Iterator<Item = &'a ObsInstance> + 'a {
        self.instances
            .iter()
            .filter(move |i| i.is_live() && i.logical.as_deref() == Some(node_id))
    }

    /// Security group ids by logical id, for resolving group sources in rules.
    pub fn group_ids(&self) -> HashMap<String, String> {
        self.security_groups
            .iter()
            .filter_map(|g| g.logical.clone().map(|l| (l, g.id.clone())))
            .collect()
    }

    /// Whether anything tagged with the cluster exists.
    pub fn is_empty(&self) -> bool {
        self.vpcs.is_empty()
            && self.subnets.is_empty()
            && self.igws.is_empty()
            && self.route_tables.is_empty()
            && self.security_groups.is_empty()
            && !self.instances.iter().any(|i| i.state != "terminated")
            && self.role.as_ref().is_none_or(|r| !r.owned)
            && self.profile.as_ref().is_none_or(|p| !p.owned)
            && self.secret.as_ref().is_none_or(|s| !s.owned)
    }
}

/// Tagged VPCs that hold none of our subnets, route tables, security groups or gateway
/// attachments, when more than one VPC is tagged: duplicates to remove. If every VPC is empty,
/// the first (by id) is kept.
pub fn spare_vpcs(obs: &Observed) -> Vec<String> {
    if obs.vpcs.len() < 2 {
        return Vec::new();
    }
    let used = |id: &str| {
        obs.subnets.iter().any(|s| s.vpc_id == id)
            || obs.route_tables.iter().any(|r| r.vpc_id == id)
            || obs.security_groups.iter().any(|g| g.vpc_id == id)
            || obs
                .igws
                .iter()
                .any(|g| g.attached_vpcs.iter().any(|v| v == id))
    };
    let mut ids: Vec<&str> = obs.vpcs.iter().map(|v| v.id.as_str()).collect();
    ids.sort();
    let mut spare: Vec<String> = ids
        .iter()
        .filter(|id| !used(id))
        .map(|id| id.to_string())
        .collect();
    if spare.len() == ids.len() {
        spare.remove(0);
    }
    spare
}

/// Marks a change AWS cannot make to an existing resource: `up` refuses, `plan` shows it.
pub const IMMUTABLE: &str = "cannot be changed in place (run `provision down`, then `up`)";

/// What `up` will do to one node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Create,
    Update,
    Keep,
    Read,
    Delete,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Update => "update",
            Action::Keep => "keep",
            Action::Read => "read",
            Action::Delete => "delete",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanItem {
    pub id: String,
    pub kind: Kind,
    pub action: Action,
    pub aws_id: Option<String>,
    pub changes: Vec<String>,
}

/// The ingress rules of `desired` that `observed` lacks, given the AWS ids of the groups.
/// A group source whose group does not exist yet counts as missing.
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

/// Diffs the graph against what AWS reported.
pub fn diff(graph: &Graph, obs: &Observed) -> Vec<PlanItem> {
    let groups = obs.group_ids();
    graph
        .nodes
        .iter()
        .map(|n| {
            let aws_id = obs.id_of(&n.id, n.kind);
            let mut changes = Vec::new();
            let action = match (&n.desired, &aws_id) {
                (Desired::AvailabilityZones { count }, _) => {
                    let missing = (0..*count).any(|i| obs.id_of(&super::graph::subnet_id(i), Kind::Subnet).is_none());
                    if missing { Action::Read } else { Action::Keep }
                }
                (Desired::CaAccess { .. }, Some(_)) => {
                    let doc = obs.ca_policy.as_deref().unwrap_or_default();
                    match obs.live_instances(super::graph::MASTER).next() {
                        Some(m) if doc.contains(&format!("instance/{}\"", m.id)) => Action::Keep,
                        _ => {
                            changes.push("scope it to the current control plane instance".into());
                            Action::Update
                        }
                    }
                }
                (Desired::JoinToken, _) => {
                    let master_exists = obs.live_instances(super::graph::MASTER).next().is_some();
                    let workers_missing = graph.nodes.iter().any(|m| match &m.desired {
                        Desired::Workers { count, .. } => (obs.live_instances(&m.id).count() as u32) < *count,
                        _ => false,
                    });
                    if master_exists && workers_missing {
                        changes.push("check the bootstrap token; mint a new one through the API server if it expired".into());
                    }
                    if workers_missing { Action::Read } else { Action::Keep }
                }
                (Desired::Ami { .. }, _) => {
                    let launch = graph.nodes.iter().any(|m| match &m.desired {
                        Desired::Master { .. } => obs.live_instances(&m.id).next().is_none(),
                        Desired::Workers { count, .. } => (obs.live_instances(&m.id).count() as u32) < *count,
                        _ => false,
                    });
                    if launch { Action::Read } else { Action::Keep }
                }
                (Desired::Master { .. }, Some(_)) => {
                    if obs.live_instances(&n.id).any(ObsInstance::is_stopped) {
                        changes.push("start the stopped control plane".into());
                        Action::Update
                    } else {
                        Action::Keep
                    }
                }
                (Desired::Workers { count, .. }, Some(_)) => {
                    let live = obs.live_instances(&n.id).count() as u32;
                    let stopped = obs.live_instances(&n.id).filter(|i| i.is_stopped()).count();
                    if stopped > 0 {
                        changes.push(format!("start {stopped} stopped instance(s)"));
                    }
                    if live < *count {
                        changes.push(format!("launch {} more (have {live}, want {count})", count - live));
                    } else if live > *count {
                        changes.push(format!("{} more than the spec's {count}; scale-in is not done by up", live - count));
                    }
                    if live < *count || stopped > 0 { Action::Update } else { Action::Keep }
                }
                (_, None) => Action::Create,
                (Desired::NodeRole { .. }, Some(_)) if !obs.role.as_ref().is_some_and(|r| r.owned) => {
                    changes.push("an IAM role of this name exists without our tag: refusing to adopt it".into());
                    Action::Update
                }
                (Desired::Secret { .. }, Some(_)) if !obs.secret.as_ref().is_some_and(|s| s.owned) => {
                    changes.push(
                        "a parameter of this name exists without our tag: refusing to adopt it".into(),
                    );
                    Action::Update
                }
                (Desired::InstanceProfile { name }, Some(_)) => {
                    let p = obs.profile.as_ref().expect("aws_id came from it");
                    if !p.owned {
                        changes.push("an instance profile of this name exists without our tag: refusing to adopt it".into());
                    }
                    if !p.roles.iter().any(|r| r == name) {
                        changes.push("add the node role".into());
                    }
                    if changes.is_empty() { Action::Keep } else { Action::Update }
                }
                (Desired::Vpc { cidr }, Some(id)) => {
                    let v = obs.vpcs.iter().find(|v| &v.id == id).expect("aws_id came from it");
                    if v.cidr != cidr.to_string() {
                        changes.push(format!("{IMMUTABLE}: the VPC is {}, network.vpc_cidr says {cidr}", v.cidr));
                    }
                    if v.dns_support == Some(false) {
                        changes.push("enable DNS support".into());
                    }
                    if v.dns_hostnames == Some(false) {
                        changes.push("enable DNS hostnames".into());
                    }
                    if changes.is_empty() { Action::Keep } else { Action::Update }
                }
                (Desired::Subnet { cidr, .. }, Some(id)) => {
                    let s = obs.subnets.iter().find(|s| &s.id == id).expect("aws_id came from it");
                    if s.cidr != cidr.to_string() {
                        changes.push(format!("{IMMUTABLE}: the subnet is {}, the spec carves {cidr}", s.cidr));
                    }
                    if !s.map_public_ip {
                        changes.push("map public IPs on launch".into());
                    }
                    if changes.is_empty() { Action::Keep } else { Action::Update }
                }
                (Desired::InternetGateway, Some(id)) => {
                    let g = obs.igws.iter().find(|g| &g.id == id).expect("aws_id came from it");
                    let vpc = obs.id_of(super::graph::VPC, Kind::Vpc);
                    if vpc.is_none() || !g.attached_vpcs.iter().any(|a| Some(a) == vpc.as_ref()) {
                        changes.push("attach to the VPC".into());
                    }
                    if changes.is_empty() { Action::Keep } else { Action::Update }
                }
                (Desired::RouteTable { subnets }, Some(id)) => {
                    let rt = obs.route_tables.iter().find(|r| &r.id == id).expect("aws_id came from it");
                    let igw = obs.id_of(super::graph::IGW, Kind::InternetGateway);
                    if igw.is_none() || rt.default_route != igw {
                        changes.push("add the default route to the internet gateway".into());
                    }
                    let missing = (0..*subnets)
                        .filter(|i| {
                            let sid = obs.id_of(&super::graph::subnet_id(*i), Kind::Subnet);
                            !rt.associations.iter().any(|(_, s)| Some(s) == sid.as_ref())
                        })
                        .count();
                    if missing > 0 {
                        changes.push(format!("associate {missing} subnet(s)"));
                    }
                    if changes.is_empty() { Action::Keep } else { Action::Update }
                }
                (Desired::SecurityGroup { rules, .. }, Some(id)) => {
                    let g = obs.security_groups.iter().find(|g| &g.id == id).expect("aws_id came from it");
                    let missing = missing_rules(rules, &g.rules, &groups);
                    for r in missing {
                        changes.push(format!("allow {} {}-{} ({})", r.protocol.as_str(), r.from_port, r.to_port, r.description));
                    }
                    if changes.is_empty() { Action::Keep } else { Action::Update }
                }
                _ => Action::Keep,
            };
            PlanItem { id: n.id.clone(), kind: n.kind, action, aws_id, changes }
        })
        .collect()
}

/// Every resource `down` would delete, grouped by teardown step.
pub fn destroy_items(obs: &Observed) -> Vec<(TeardownStep, PlanItem)> {
    let item = |kind: Kind, id: &str, logical: &Option<String>| PlanItem {
        id: logical.clone().unwrap_or_else(|| "(untracked)".into()),
        kind,
        action: Action::Delete,
        aws_id: Some(id.to_string()),
        changes: Vec::new(),
    };
    let mut out = Vec::new();
    for i in obs.instances.iter().filter(|i| i.state != "terminated") {
        out.push((
            TeardownStep::Instances,
            item(Kind::Instance, &i.id, &i.logical),
        ));
    }
    for g in &obs.security_groups {
        out.push((
            TeardownStep::SecurityGroups,
            item(Kind::SecurityGroup, &g.id, &g.logical),
        ));
    }
    for r in &obs.route_tables {
        out.push((
            TeardownStep::RouteTables,
            item(Kind::RouteTable, &r.id, &r.logical),
        ));
    }
    for g in &obs.igws {
        out.push((
            TeardownStep::InternetGateways,
            item(Kind::InternetGateway, &g.id, &g.logical),
        ));
    }
    for s in &obs.subnets {
        out.push((TeardownStep::Subnets, item(Kind::Subnet, &s.id, &s.logical)));
    }
    for v in &obs.vpcs {
        out.push((TeardownStep::Vpcs, item(Kind::Vpc, &v.id, &v.logical)));
    }
    if let Some(p) = obs.profile.as_ref().filter(|p| p.owned) {
        out.push((
            TeardownStep::InstanceProfiles,
            item(
                Kind::InstanceProfile,
                &p.name,
                &Some(super::graph::NODE_PROFILE.into()),
            ),
        ));
    }
    if let Some(r) = obs.role.as_ref().filter(|r| r.owned) {
        out.push((
            TeardownStep::Roles,
            item(
                Kind::IamRole,
                &r.name,
                &Some(super::graph::NODE_ROLE.into()),
            ),
        ));
    }
    if let Some(s) = obs.secret.as_ref().filter(|s| s.owned) {
        out.push((
            TeardownStep::Secrets,
            item(Kind::Secret, &s.name, &Some(super::graph::SECRET.into())),
        ));
    }
    out
}

/// Protocol names as the EC2 API reports them.
pub fn protocol_name(p: Protocol) -> &'static str {
    p.as_str()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::graph::{self, build};

    fn spec() -> crate::core::spec::ClusterSpec {
        let text = "name = \"demo\"\nregion = \"us-east-1\"\nkind = \"kubeadm\"\n[network]\nvpc_cidr = \"10.0.0.0/16\"\nadmin_cidrs = [\"203.0.113.0/24\"]\n[kubeadm]\ncni = \"flannel\"\ninstance_type = \"t3.medium\"\nworkers = 3\n";
        crate::core::spec::parse("t.toml", text).unwrap().0
    }

    #[test]
    fn empty_account_means_create_everything() {
        let plan = diff(&build(&spec()), &Observed::default());
        for item in &plan {
            let want = if item.kind.is_lookup() {
                Action::Read
            } else {
                Action::Create
            };
            assert_eq!(item.action, want, "{}", item.id);
        }
    }

    #[test]
    fn drift_is_reported_as_updates() {
        let mut obs = Observed::default();
        obs.vpcs.push(ObsVpc {
            id: "vpc-1".into(),
            logical: Some("vpc".into()),
            cidr: "10.0.0.0/16".into(),
            dns_support: Some(true),
            dns_hostnames: Some(false),
        });
        obs.security_groups.push(ObsSg {
            id: "sg-1".into(),
            logical: Some(graph::SG_NODES.into()),
            vpc_id: "vpc-1".into(),
            rules: vec![ObsRule {
                protocol: "tcp".into(),
                from_port: 10250,
                to_port: 10250,
                source: "sg-1".into(),
            }],
        });
        obs.instances.push(ObsInstance {
            id: "i-1".into(),
            logical: Some("workers-0".into()),
            state: "running".into(),
            subnet_id: None,
            private_ip: None,
            public_ip: None,
        });
        let plan = diff(&build(&spec()), &obs);
        let get = |id: &str| plan.iter().find(|p| p.id == id).unwrap();
        assert_eq!(get("vpc").action, Action::Update);
        assert_eq!(get("vpc").changes, ["enable DNS hostnames"]);
        let sg = get(graph::SG_NODES);
        assert_eq!(sg.action, Action::Update);
        assert_eq!(sg.changes.len(), 1, "{:?}", sg.changes);
        assert!(sg.changes[0].contains("8472"));
        assert_eq!(
            get("workers-0").action,
            Action::Update,
            "3 workers over 2 AZs is 2 + 1"
        );
        assert_eq!(get("workers-0").changes, ["launch 1 more (have 1, want 2)"]);
    }

    #[test]
    fn a_changed_vpc_cidr_cannot_be_applied_in_place() {
        let mut obs = Observed::default();
        obs.vpcs.push(ObsVpc {
            id: "vpc-1".into(),
            logical: Some("vpc".into()),
            cidr: "10.9.0.0/16".into(),
            dns_support: Some(true),
            dns_hostnames: Some(true),
        });
        let plan = diff(&build(&spec()), &obs);
        let vpc = plan.iter().find(|p| p.id == "vpc").unwrap();
        assert_eq!(vpc.action, Action::Update);
        assert!(
            vpc.changes[0].contains(IMMUTABLE) && vpc.changes[0].contains("10.9.0.0/16"),
            "{:?}",
            vpc.changes
        );
    }

    #[test]
    fn empty_duplicate_vpcs_are_spare() {
        let vpc = |id: &str| ObsVpc {
            id: id.into(),
            logical: Some("vpc".into()),
            cidr: "10.0.0.0/16".into(),
            dns_support: None,
            dns_hostnames: None,
        };
        let mut obs = Observed {
            vpcs: vec![vpc("vpc-b"), vpc("vpc-a")],
            ..Observed::default()
        };
        assert_eq!(
            spare_vpcs(&obs),
            ["vpc-b"],
            "both empty: keep the first by id"
        );
        obs.subnets.push(ObsSubnet {
            id: "s".into(),
            logical: None,
            vpc_id: "vpc-b".into(),
            cidr: String::new(),
            az: String::new(),
            map_public_ip: true,
        });
        assert_eq!(spare_vpcs(&obs), ["vpc-a"], "keep the one in use");
        obs.security_groups.push(ObsSg {
            id: "g".into(),
            logical: None,
            vpc_id: "vpc-a".into(),
            rules: vec![],
        });
        assert!(spare_vpcs(&obs).is_empty(), "both in use: nothing is spare");
        obs.vpcs.pop();
        assert!(spare_vpcs(&obs).is_empty());
        assert!(spare_vpcs(&Observed::default()).is_empty(), "no VPC at all");
    }

    #[test]
    fn missing_group_source_counts_as_missing() {
        let spec = spec();
        let rules = graph::rules(&spec, graph::SgRole::ControlPlane);
        let missing = missing_rules(&rules, &[], &HashMap::new());
        assert_eq!(missing.len(), rules.len());
    }
}
