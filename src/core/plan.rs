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
    /// The IAM roles whose names derive from the cluster, by logical id (node-role, ...).
    pub roles: Vec<ObsIam>,
    /// The instance profiles whose names derive from the cluster, by logical id.
    pub profiles: Vec<ObsProfile>,
    pub secret: Option<ObsSecret>,
    /// The add-ons' passwords parameter.
    pub addon_secret: Option<ObsSecret>,
    /// The log writer's password parameter (what the nodes may read).
    pub log_writer_secret: Option<ObsSecret>,
    /// The add-on role's inline policy document, if any.
    pub addons_policy: Option<String>,
    /// The EKS node role's log shipper policy document, if any.
    pub node_log_policy: Option<String>,
    /// The node role's `provision-ca-access` inline policy document, if any.
    pub ca_policy: Option<String>,
    pub addresses: Vec<ObsAddress>,
    /// NAT gateways not deleted (or being deleted).
    pub nat_gateways: Vec<ObsNat>,
    /// The EKS cluster of the cluster's name, if any (owned or not).
    pub eks: Option<ObsEks>,
    pub nodegroup: Option<ObsNodegroup>,
    pub launch_templates: Vec<ObsTemplate>,
    /// What Kubernetes made in the cluster's VPC (looked up by `down` and `plan --destroy`).
    pub leftovers: Leftovers,
    /// Lookups that could not be made (e.g. no permission for EKS when removing a kubeadm
    /// cluster), for the user to see.
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObsAddress {
    pub allocation_id: String,
    pub logical: Option<String>,
    pub public_ip: String,
    pub association_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObsNat {
    pub id: String,
    pub logical: Option<String>,
    pub state: String,
    pub subnet_id: String,
    /// The gateway's network interfaces (AWS removes them with it).
    pub interfaces: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObsEks {
    pub name: String,
    pub arn: String,
    pub status: String,
    pub version: String,
    pub endpoint: Option<String>,
    /// Base64, as EKS reports it.
    pub ca_data: Option<String>,
    /// Carries our cluster tag.
    pub owned: bool,
    pub addons: Vec<String>,
    pub access_entries: Vec<ObsAccessEntry>,
    /// The security group EKS made for the cluster, with its rules.
    pub cluster_sg: Option<ObsSg>,
}

/// An EKS access entry as observed: its principal, whether we made it, its access policies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObsAccessEntry {
    pub principal: String,
    /// Carries our cluster tag (the cluster creator's entry, which EKS makes, does not).
    pub owned: bool,
    /// (policy ARN, namespaces; empty: cluster-wide)
    pub policies: Vec<(String, Vec<String>)>,
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

impl std::fmt::Display for AccessChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
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
            AccessChange::Delete { principal } => {
                write!(
                    f,
                    "remove the access entry of {principal} (no longer in the spec)"
                )
            }
        }
    }
}

/// The EKS access policy ARN of `policy`, in the partition of `cluster_arn`.
pub fn access_policy_arn(cluster_arn: &str, policy: super::spec::AccessPolicy) -> String {
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
    wanted: &[super::spec::AccessEntry],
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

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObsTemplate {
    pub id: String,
    pub logical: Option<String>,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObsNodegroup {
    pub name: String,
    pub status: String,
    pub min: u32,
    pub max: u32,
    pub desired: u32,
    pub owned: bool,
    pub instance_types: Vec<String>,
    pub spot: bool,
    pub labels: std::collections::BTreeMap<String, String>,
    /// EKS's health issues (why it is DEGRADED).
    pub issues: Vec<String>,
}

/// The label changes that bring `have` to `want`: (labels to add or update, keys to remove).
pub fn label_changes(
    want: &std::collections::BTreeMap<String, String>,
    have: &std::collections::BTreeMap<String, String>,
) -> (std::collections::BTreeMap<String, String>, Vec<String>) {
    let add = want
        .iter()
        .filter(|(k, v)| have.get(*k) != Some(v))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let remove = have
        .keys()
        .filter(|k| !want.contains_key(*k))
        .cloned()
        .collect();
    (add, remove)
}

/// A load balancer a Kubernetes controller made in our VPC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObsLoadBalancer {
    /// The ARN (ELBv2) or name (classic).
    pub id: String,
    pub classic: bool,
}

/// What Kubernetes controllers made in the cluster's VPC, found by their tags
/// (`kubernetes.io/cluster/NAME`, `elbv2.k8s.aws/cluster = NAME`, the VPC CNI's).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Leftovers {
    pub load_balancers: Vec<ObsLoadBalancer>,
    /// ELBv2 target group ARNs.
    pub target_groups: Vec<String>,
    /// Security group ids (never ours: those carry provision:cluster).
    pub security_groups: Vec<String>,
    /// `available` network interfaces in our subnets that the VPC CNI made.
    pub interfaces: Vec<String>,
}

impl Leftovers {
    pub fn is_empty(&self) -> bool {
        self.load_balancers.is_empty()
            && self.target_groups.is_empty()
            && self.security_groups.is_empty()
            && self.interfaces.is_empty()
    }
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

/// NAT gateway states that count as existing.
pub fn nat_is_live(state: &str) -> bool {
    matches!(state, "pending" | "available")
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
    /// The graph node this role stands for.
    pub logical: String,
    pub name: String,
    pub arn: String,
    /// Carries our cluster tag. An untagged role of the same name is someone else's.
    pub owned: bool,
    /// Attached managed policy ARNs, when they were looked up.
    pub policies: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObsProfile {
    /// The graph node it stands for.
    pub logical: String,
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
            Kind::IamRole => self.role(node_id).map(|r| r.name.clone()),
            Kind::ElasticIp => self
                .addresses
                .iter()
                .find(|a| by(&a.logical))
                .map(|a| a.allocation_id.clone()),
            Kind::NatGateway => self
                .nat_gateways
                .iter()
                .find(|n| by(&n.logical) && nat_is_live(&n.state))
                .map(|n| n.id.clone()),
            Kind::EksCluster | Kind::AccessEntries | Kind::Addons => {
                self.eks.as_ref().map(|e| e.name.clone())
            }
            Kind::Nodegroup => self.nodegroup.as_ref().map(|n| n.name.clone()),
            Kind::LaunchTemplate => self
                .launch_templates
                .iter()
                .find(|t| by(&t.logical))
                .map(|t| t.id.clone()),
            Kind::InstanceProfile => self.profile(node_id).map(|r| r.name.clone()),
            Kind::Secret if node_id == super::graph::ADDONS_SECRET => {
                self.addon_secret.as_ref().map(|r| r.name.clone())
            }
            Kind::Secret => self.secret.as_ref().map(|r| r.name.clone()),
            Kind::Instance => {
                let ids: Vec<&str> = self
                    .live_instances(node_id)
                    .map(|i| i.id.as_str())
                    .collect();
                (!ids.is_empty()).then(|| ids.join(","))
            }
            Kind::IamPolicy if node_id == super::graph::NODE_LOG_ACCESS => self
                .node_log_policy
                .as_ref()
                .map(|_| super::graph::NODE_LOG_POLICY.to_string()),
            Kind::IamPolicy if node_id == super::graph::ADDONS_ACCESS => self
                .addons_policy
                .as_ref()
                .map(|_| super::graph::ADDONS_ACCESS_POLICY.to_string()),
            Kind::IamPolicy => self
                .ca_policy
                .as_ref()
                .map(|_| super::graph::CA_ACCESS_POLICY.to_string()),
            Kind::AvailabilityZones
            | Kind::Ami
            | Kind::JoinToken
            | Kind::LoadBalancer
            | Kind::TargetGroup
            | Kind::NetworkInterface => None,
        }
    }

    /// The instance profile that stands for a logical node.
    pub fn profile(&self, node_id: &str) -> Option<&ObsProfile> {
        self.profiles.iter().find(|p| p.logical == node_id)
    }

    /// The role that stands for a logical node.
    pub fn role(&self, node_id: &str) -> Option<&ObsIam> {
        self.roles.iter().find(|r| r.logical == node_id)
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
        let mut out: HashMap<String, String> = self
            .security_groups
            .iter()
            .filter_map(|g| g.logical.clone().map(|l| (l, g.id.clone())))
            .collect();
        if let Some(g) = self.eks.as_ref().and_then(|e| e.cluster_sg.as_ref()) {
            out.insert(super::graph::EKS_CLUSTER_SG.into(), g.id.clone());
        }
        out
    }

    /// The observed rules of a security group, by logical id (ours, or the EKS cluster's).
    pub fn group_rules(&self, logical: &str) -> Vec<ObsRule> {
        if logical == super::graph::EKS_CLUSTER_SG {
            return self
                .eks
                .as_ref()
                .and_then(|e| e.cluster_sg.as_ref())
                .map(|g| g.rules.clone())
                .unwrap_or_default();
        }
        self.security_groups
            .iter()
            .find(|g| g.logical.as_deref() == Some(logical))
            .map(|g| g.rules.clone())
            .unwrap_or_default()
    }

    /// Whether anything tagged with the cluster exists.
    pub fn is_empty(&self) -> bool {
        self.vpcs.is_empty()
            && self.subnets.is_empty()
            && self.igws.is_empty()
            && self.route_tables.is_empty()
            && self.security_groups.is_empty()
            && !self.instances.iter().any(|i| i.state != "terminated")
            && !self.roles.iter().any(|r| r.owned)
            && !self.profiles.iter().any(|p| p.owned)
            && self.secret.as_ref().is_none_or(|s| !s.owned)
            && self.addon_secret.as_ref().is_none_or(|s| !s.owned)
            && self.log_writer_secret.as_ref().is_none_or(|s| !s.owned)
            && self.addresses.is_empty()
            && !self.nat_gateways.iter().any(|n| nat_is_live(&n.state))
            && self.eks.as_ref().is_none_or(|e| !e.owned)
            && self.nodegroup.as_ref().is_none_or(|n| !n.owned)
            && self.leftovers.is_empty()
            && self.launch_templates.is_empty()
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
            || obs.nat_gateways.iter().any(|n| {
                nat_is_live(&n.state)
                    && obs
                        .subnets
                        .iter()
                        .any(|s| s.id == n.subnet_id && s.vpc_id == id)
            })
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

/// The kind of a route table's gateway node, and what to call it.
pub fn gateway_kind(gateway: &str) -> (Kind, &'static str) {
    if gateway == super::graph::NAT_GATEWAY {
        (Kind::NatGateway, "NAT gateway")
    } else {
        (Kind::InternetGateway, "internet gateway")
    }
}

/// Whether an instance node still has instances to launch.
pub fn needs_launch(n: &super::graph::Node, obs: &Observed) -> bool {
    match &n.desired {
        Desired::Master { .. } | Desired::AddonInstance { .. } => {
            obs.live_instances(&n.id).next().is_none()
        }
        Desired::Workers { count, .. } => (obs.live_instances(&n.id).count() as u32) < *count,
        _ => false,
    }
}

/// Whether the availability zones must be looked up: some subnet of the graph, public or
/// private, does not exist yet (every subnet is placed by the zone at its index).
pub fn zones_needed(graph: &Graph, obs: &Observed) -> bool {
    graph
        .nodes
        .iter()
        .filter(|n| matches!(n.desired, Desired::Subnet { .. }))
        .any(|n| obs.id_of(&n.id, Kind::Subnet).is_none())
}

/// Whether an image lookup is needed: an instance node that depends on it has instances to
/// launch.
pub fn image_needed(graph: &Graph, ami: &str, obs: &Observed) -> bool {
    graph
        .nodes
        .iter()
        .any(|m| m.deps.iter().any(|d| d == ami) && needs_launch(m, obs))
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
                (Desired::AvailabilityZones { .. }, _) => {
                    if zones_needed(graph, obs) { Action::Read } else { Action::Keep }
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
                (Desired::AddonInstance { .. }, Some(_)) => {
                    if obs.live_instances(&n.id).any(ObsInstance::is_stopped) {
                        changes.push("start the stopped instance".into());
                        Action::Update
                    } else {
                        Action::Keep
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
                    if image_needed(graph, &n.id, obs) { Action::Read } else { Action::Keep }
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
                (Desired::IngressRules { rules }, _) => {
                    for (group, r) in rules {
                        if !missing_rules(std::slice::from_ref(r), &obs.group_rules(group), &groups).is_empty() {
                            changes.push(format!("allow {} {}-{} ({}) on {group}", r.protocol.as_str(), r.from_port, r.to_port, r.description));
                        }
                    }
                    // None of them yet (a new cluster): a creation, not a change.
                    if changes.is_empty() { Action::Keep } else if changes.len() == rules.len() { Action::Create } else { Action::Update }
                }
                (_, None) => Action::Create,
                (Desired::Role { policies, .. }, Some(_)) => {
                    let r = obs.role(&n.id).expect("aws_id came from it");
                    if !r.owned {
                        changes.push("an IAM role of this name exists without our tag: refusing to adopt it".into());
                    } else if let Some(have) = &r.policies {
                        for p in policies {
                            if !have.iter().any(|a| a.ends_with(&format!(":policy/{p}"))) {
                                changes.push(format!("attach {p}"));
                            }
                        }
                    }
                    if changes.is_empty() { Action::Keep } else { Action::Update }
                }
                (Desired::ElasticIp | Desired::NatGateway { .. } | Desired::LaunchTemplate { .. }, Some(_)) => {
                    Action::Keep
                }
                (Desired::EksCluster { name, version }, Some(_)) => {
                    let e = obs.eks.as_ref().expect("aws_id came from it");
                    if !e.owned {
                        changes.push(format!("an EKS cluster named {name} exists without our tag: refusing to adopt it"));
                    }
                    match e.status.as_str() {
                        "ACTIVE" => {}
                        "CREATING" | "UPDATING" => changes.push(format!("wait until ACTIVE (now {})", e.status)),
                        other => changes.push(format!("{IMMUTABLE}: the cluster is {other}")),
                    }
                    if e.owned && !e.version.is_empty() && &e.version != version {
                        changes.push(format!("runs Kubernetes {}, the spec says {version}: up does not upgrade clusters", e.version));
                    }
                    if changes.iter().any(|c| c.starts_with("wait")) { Action::Update } else { Action::Keep }
                }
                (Desired::AccessEntries { entries }, Some(_)) => {
                    let e = obs.eks.as_ref().expect("aws_id came from it");
                    changes.extend(access_changes(&e.arn, entries, &e.access_entries).iter().map(ToString::to_string));
                    if changes.is_empty() { Action::Keep } else { Action::Update }
                }
                (Desired::Addons { names }, Some(_)) => {
                    let have = &obs.eks.as_ref().expect("aws_id came from it").addons;
                    for (a, _) in names.iter().filter(|(a, _)| !have.contains(a)) {
                        changes.push(format!("install {a}"));
                    }
                    if changes.is_empty() { Action::Keep } else { Action::Update }
                }
                (Desired::Nodegroup { scaling: want, instance_types, spot, labels, .. }, Some(_)) => {
                    let g = obs.nodegroup.as_ref().expect("aws_id came from it");
                    if !g.owned {
                        changes.push("a node group of this name exists without our tag: refusing to adopt it".into());
                    }
                    match g.status.as_str() {
                        "ACTIVE" | "UPDATING" | "CREATING" => {}
                        // Degraded capacity (Spot reclaimed, nodes not joining) is reported, not refused.
                        "DEGRADED" => changes.push(format!("note: the node group is DEGRADED ({})", g.issues.join("; "))),
                        other => changes.push(format!("{IMMUTABLE}: the node group is {other}")),
                    }
                    let sorted = |v: &[String]| {
                        let mut v = v.to_vec();
                        v.sort();
                        v
                    };
                    if g.owned && (sorted(&g.instance_types) != sorted(instance_types) || g.spot != *spot) {
                        changes.push(format!(
                            "{IMMUTABLE}: the node group runs {} ({}), the spec says {} ({})",
                            g.instance_types.join("/"),
                            if g.spot { "SPOT" } else { "ON_DEMAND" },
                            instance_types.join("/"),
                            if *spot { "SPOT" } else { "ON_DEMAND" }
                        ));
                    }
                    if g.owned && (g.min, g.max, g.desired) != *want {
                        changes.push(format!(
                            "scale min/max/desired {}/{}/{} to {}/{}/{}",
                            g.min, g.max, g.desired, want.0, want.1, want.2
                        ));
                    }
                    let (add, remove) = label_changes(labels, &g.labels);
                    if g.owned && (!add.is_empty() || !remove.is_empty()) {
                        changes.push(format!("labels: set {add:?}, remove {remove:?}"));
                    }
                    if changes.iter().all(|c| c.starts_with("note:")) { Action::Keep } else { Action::Update }
                }
                (Desired::Secret { .. }, Some(_)) if !obs.secret.as_ref().is_some_and(|s| s.owned) => {
                    changes.push(
                        "a parameter of this name exists without our tag: refusing to adopt it".into(),
                    );
                    Action::Update
                }
                (Desired::AddonSecret { .. }, Some(_)) => {
                    if !obs.addon_secret.as_ref().is_some_and(|s| s.owned) {
                        changes.push("a parameter of this name exists without our tag: refusing to adopt it".into());
                        Action::Update
                    } else {
                        Action::Keep
                    }
                }
                (Desired::AddonsAccess { .. } | Desired::NodeLogAccess { .. }, Some(_)) => Action::Keep,
                (Desired::InstanceProfile { name, .. }, Some(_)) => {
                    let p = obs.profile(&n.id).expect("aws_id came from it");
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
                (Desired::Subnet { cidr, public, .. }, Some(id)) => {
                    let s = obs.subnets.iter().find(|s| &s.id == id).expect("aws_id came from it");
                    if s.cidr != cidr.to_string() {
                        changes.push(format!("{IMMUTABLE}: the subnet is {}, the spec carves {cidr}", s.cidr));
                    }
                    if *public && !s.map_public_ip {
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
                (Desired::RouteTable { gateway, subnets }, Some(id)) => {
                    let rt = obs.route_tables.iter().find(|r| &r.id == id).expect("aws_id came from it");
                    let (kind, what) = gateway_kind(gateway);
                    let gw = obs.id_of(gateway, kind);
                    if gw.is_none() || rt.default_route != gw {
                        changes.push(format!("add the default route to the {what}"));
                    }
                    let missing = subnets
                        .iter()
                        .filter(|sn| {
                            let sid = obs.id_of(sn, Kind::Subnet);
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
    for p in obs.profiles.iter().filter(|p| p.owned) {
        out.push((
            TeardownStep::InstanceProfiles,
            item(Kind::InstanceProfile, &p.name, &Some(p.logical.clone())),
        ));
    }
    for s in [&obs.addon_secret, &obs.log_writer_secret]
        .into_iter()
        .flatten()
        .filter(|s| s.owned)
    {
        out.push((
            TeardownStep::Secrets,
            item(
                Kind::Secret,
                &s.name,
                &Some(super::graph::ADDONS_SECRET.into()),
            ),
        ));
    }
    for r in obs.roles.iter().filter(|r| r.owned) {
        out.push((
            TeardownStep::Roles,
            item(Kind::IamRole, &r.name, &Some(r.logical.clone())),
        ));
    }
    let k8s = Some("(kubernetes)".to_string());
    let l = &obs.leftovers;
    for lb in &l.load_balancers {
        out.push((
            TeardownStep::KubernetesLoadBalancers,
            item(Kind::LoadBalancer, &lb.id, &k8s),
        ));
    }
    for tg in &l.target_groups {
        out.push((
            TeardownStep::KubernetesLoadBalancers,
            item(Kind::TargetGroup, tg, &k8s),
        ));
    }
    for g in &l.security_groups {
        out.push((
            TeardownStep::KubernetesLoadBalancers,
            item(Kind::SecurityGroup, g, &k8s),
        ));
    }
    for n in &l.interfaces {
        out.push((
            TeardownStep::NetworkInterfaces,
            item(Kind::NetworkInterface, n, &k8s),
        ));
    }
    if let Some(e) = obs.eks.as_ref().filter(|e| e.owned) {
        let eks = Some(super::graph::EKS_CLUSTER.to_string());
        if let Some(g) = obs.nodegroup.as_ref().filter(|g| g.owned) {
            out.push((
                TeardownStep::Nodegroups,
                item(
                    Kind::Nodegroup,
                    &g.name,
                    &Some(super::graph::NODEGROUP.into()),
                ),
            ));
        }
        for a in &e.addons {
            out.push((
                TeardownStep::Addons,
                item(Kind::Addons, a, &Some("addon".into())),
            ));
        }
        // Only the entries we made: the creator's goes with the cluster, so that a `down` that
        // stops before the cluster is deleted does not lock its operator out.
        for p in e.access_entries.iter().filter(|p| p.owned) {
            out.push((
                TeardownStep::AccessEntries,
                item(
                    Kind::AccessEntries,
                    &p.principal,
                    &Some("access-entry".into()),
                ),
            ));
        }
        out.push((
            TeardownStep::EksClusters,
            item(Kind::EksCluster, &e.name, &eks),
        ));
    }
    for t in &obs.launch_templates {
        out.push((
            TeardownStep::LaunchTemplates,
            item(Kind::LaunchTemplate, &t.id, &t.logical),
        ));
    }
    for n in obs.nat_gateways.iter().filter(|n| nat_is_live(&n.state)) {
        out.push((
            TeardownStep::NatGateways,
            item(Kind::NatGateway, &n.id, &n.logical),
        ));
    }
    for a in &obs.addresses {
        out.push((
            TeardownStep::ElasticIps,
            item(Kind::ElasticIp, &a.allocation_id, &a.logical),
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
    fn zones_are_looked_up_while_any_subnet_public_or_private_is_missing() {
        // Found by the crash benchmark: an `up` killed after the public subnets but before the
        // private ones skipped the lookup on resume, and the private subnets had no zone.
        let text = "name = \"e\"\nregion = \"us-east-1\"\nkind = \"eks\"\n[network]\nvpc_cidr = \"10.0.0.0/16\"\nadmin_cidrs = [\"203.0.113.0/24\"]\nprivate_subnets = true\n[eks]\nversion = \"1.35\"\n[eks.nodegroup]\ninstance_types = [\"t3.large\"]\nmin = 1\nmax = 2\ndesired = 1\n";
        let spec = crate::core::spec::parse("t.toml", text).unwrap().0;
        let g = build(&spec);
        let subnet = |logical: &str| ObsSubnet {
            id: format!("subnet-{logical}"),
            logical: Some(logical.into()),
            vpc_id: "vpc-1".into(),
            cidr: String::new(),
            az: String::new(),
            map_public_ip: true,
        };
        let mut obs = Observed::default();
        let ids: Vec<String> = g
            .nodes
            .iter()
            .filter(|n| matches!(n.desired, Desired::Subnet { .. }))
            .map(|n| n.id.clone())
            .collect();
        assert!(ids.iter().any(|i| i.starts_with("private-")), "{ids:?}");
        for id in ids.iter().filter(|i| !i.starts_with("private-")) {
            obs.subnets.push(subnet(id));
        }
        assert!(zones_needed(&g, &obs), "private subnets still to make");
        let azs = diff(&g, &obs)
            .into_iter()
            .find(|i| i.id == graph::AZS)
            .unwrap();
        assert_eq!(azs.action, Action::Read);
        for id in ids.iter().filter(|i| i.starts_with("private-")) {
            obs.subnets.push(subnet(id));
        }
        assert!(!zones_needed(&g, &obs));
    }

    fn eks_observed(spec: &crate::core::spec::ClusterSpec) -> Observed {
        let g = build(spec);
        let mut obs = Observed::default();
        for n in &g.nodes {
            if let Desired::Role { name, policies, .. } = &n.desired {
                obs.roles.push(ObsIam {
                    logical: n.id.clone(),
                    name: name.clone(),
                    arn: format!("arn:aws:iam::1:role/{name}"),
                    owned: true,
                    policies: Some(
                        policies
                            .iter()
                            .map(|p| format!("arn:aws:iam::aws:policy/{p}"))
                            .collect(),
                    ),
                });
            }
        }
        obs.eks = Some(ObsEks {
            name: spec.name.clone(),
            arn: "arn:aws:eks:us-east-1:1:cluster/e".into(),
            status: "ACTIVE".into(),
            version: "1.35".into(),
            endpoint: Some("https://x".into()),
            ca_data: None,
            owned: true,
            addons: crate::core::spec::DEFAULT_EKS_ADDONS
                .map(String::from)
                .to_vec(),
            access_entries: Vec::new(),
            cluster_sg: None,
        });
        obs.nodegroup = Some(ObsNodegroup {
            name: graph::nodegroup_name(&spec.name),
            status: "ACTIVE".into(),
            min: 1,
            max: 3,
            desired: 2,
            owned: true,
            instance_types: vec!["t3.large".into()],
            spot: false,
            labels: Default::default(),
            issues: Vec::new(),
        });
        obs
    }

    #[test]
    fn access_entries_converge_on_the_spec() {
        use crate::core::spec::{AccessEntry, AccessPolicy};
        let arn = "arn:aws:eks:us-east-1:1:cluster/e";
        let pol = |p: AccessPolicy| access_policy_arn(arn, p);
        let want = vec![
            AccessEntry {
                principal_arn: "arn:aws:iam::1:role/a".into(),
                policy: AccessPolicy::View,
                namespaces: vec![],
            },
            AccessEntry {
                principal_arn: "arn:aws:iam::1:role/b".into(),
                policy: AccessPolicy::Edit,
                namespaces: vec!["x".into(), "y".into()],
            },
            AccessEntry {
                principal_arn: "arn:aws:iam::1:role/new".into(),
                policy: AccessPolicy::Admin,
                namespaces: vec![],
            },
        ];
        let obs = vec![
            // a: was admin, is now view: view granted, admin revoked.
            ObsAccessEntry {
                principal: "arn:aws:iam::1:role/a".into(),
                owned: true,
                policies: vec![(pol(AccessPolicy::Admin), vec![])],
            },
            // b: right policy, scope in another order: nothing to do.
            ObsAccessEntry {
                principal: "arn:aws:iam::1:role/b".into(),
                owned: true,
                policies: vec![(pol(AccessPolicy::Edit), vec!["y".into(), "x".into()])],
            },
            // ours, gone from the spec: removed.
            ObsAccessEntry {
                principal: "arn:aws:iam::1:role/old".into(),
                owned: true,
                policies: vec![],
            },
            // the creator's, not ours: left alone.
            ObsAccessEntry {
                principal: "arn:aws:iam::1:user/creator".into(),
                owned: false,
                policies: vec![(pol(AccessPolicy::ClusterAdmin), vec![])],
            },
        ];
        let changes = access_changes(arn, &want, &obs);
        assert_eq!(
            changes,
            [
                AccessChange::Associate {
                    principal: "arn:aws:iam::1:role/a".into(),
                    policy_arn: pol(AccessPolicy::View),
                    namespaces: vec![]
                },
                AccessChange::Disassociate {
                    principal: "arn:aws:iam::1:role/a".into(),
                    policy_arn: pol(AccessPolicy::Admin)
                },
                AccessChange::Create {
                    principal: "arn:aws:iam::1:role/new".into(),
                    policy_arn: pol(AccessPolicy::Admin),
                    namespaces: vec![]
                },
                AccessChange::Delete {
                    principal: "arn:aws:iam::1:role/old".into()
                },
            ]
        );
        // The spec names the creator's principal with another policy: added, the creator's
        // cluster-admin kept.
        let creator = vec![AccessEntry {
            principal_arn: "arn:aws:iam::1:user/creator".into(),
            policy: AccessPolicy::View,
            namespaces: vec![],
        }];
        let c = access_changes(arn, &creator, &obs[3..4]);
        assert_eq!(c.len(), 1, "{c:?}");
        assert!(matches!(c[0], AccessChange::Associate { .. }));
        // Narrowed to namespaces: re-associated with the new scope.
        let narrowed = vec![AccessEntry {
            namespaces: vec!["x".into()],
            ..want[1].clone()
        }];
        let c = access_changes(arn, &narrowed, &obs[1..2]);
        assert_eq!(c.len(), 1);
        assert!(c[0].to_string().contains("in x"), "{}", c[0]);
        assert_eq!(
            access_policy_arn("arn:aws-cn:eks:cn-north-1:1:cluster/e", AccessPolicy::Edit),
            "arn:aws-cn:eks::aws:cluster-access-policy/AmazonEKSEditPolicy"
        );
    }

    #[test]
    fn eks_drift_is_planned_as_updates() {
        let spec = graph::tests::eks_spec("");
        let g = build(&spec);
        let mut obs = eks_observed(&spec);
        let keep = |obs: &Observed, id: &str| {
            let p = diff(&g, obs);
            let item = p.iter().find(|p| p.id == id).unwrap().clone();
            (item.action, item.changes)
        };
        for id in [
            graph::EKS_CLUSTER,
            graph::NODEGROUP,
            graph::ADDONS,
            graph::ADDONS_BASE,
            graph::NODE_ROLE,
        ] {
            assert_eq!(keep(&obs, id).0, Action::Keep, "{id}");
        }
        obs.nodegroup.as_mut().unwrap().desired = 1;
        obs.eks.as_mut().unwrap().addons.retain(|a| a != "coredns");
        obs.roles[1].policies.as_mut().unwrap().pop();
        assert_eq!(
            keep(&obs, graph::NODEGROUP),
            (
                Action::Update,
                vec!["scale min/max/desired 1/3/1 to 1/3/2".to_string()]
            )
        );
        assert_eq!(
            keep(&obs, graph::ADDONS),
            (Action::Update, vec!["install coredns".to_string()])
        );
        assert_eq!(keep(&obs, graph::ADDONS_BASE).0, Action::Keep);
        let (a, c) = keep(&obs, &obs.roles[1].logical.clone());
        assert_eq!(a, Action::Update);
        assert_eq!(c.len(), 1, "{c:?}");
        obs.nodegroup.as_mut().unwrap().desired = 2;
        obs.nodegroup.as_mut().unwrap().status = "DEGRADED".into();
        assert_eq!(
            keep(&obs, graph::NODEGROUP).0,
            Action::Keep,
            "DEGRADED is reported, not refused"
        );
        obs.nodegroup
            .as_mut()
            .unwrap()
            .labels
            .insert("old".into(), "x".into());
        let (a, c) = keep(&obs, graph::NODEGROUP);
        assert_eq!(a, Action::Update);
        assert!(c.iter().any(|c| c.contains("remove [\"old\"]")), "{c:?}");
        obs.nodegroup.as_mut().unwrap().instance_types = vec!["m5.large".into()];
        assert!(
            keep(&obs, graph::NODEGROUP)
                .1
                .iter()
                .any(|c| c.contains(IMMUTABLE))
        );
        obs.eks.as_mut().unwrap().owned = false;
        assert!(keep(&obs, graph::EKS_CLUSTER).1[0].contains("refusing to adopt"));
        obs.eks.as_mut().unwrap().owned = true;
        obs.eks.as_mut().unwrap().status = "FAILED".into();
        assert!(keep(&obs, graph::EKS_CLUSTER).1[0].contains(IMMUTABLE));
    }

    #[test]
    fn destroy_lists_what_kubernetes_made_and_the_eks_objects() {
        let spec = graph::tests::eks_spec("");
        let mut obs = eks_observed(&spec);
        obs.leftovers.load_balancers.push(ObsLoadBalancer {
            id: "arn:lb".into(),
            classic: false,
        });
        obs.leftovers.interfaces.push("eni-1".into());
        let items = destroy_items(&obs);
        let step = |id: &str| {
            items
                .iter()
                .find(|(_, i)| i.aws_id.as_deref() == Some(id))
                .unwrap()
                .0
        };
        assert_eq!(step("arn:lb"), TeardownStep::KubernetesLoadBalancers);
        assert_eq!(step("eni-1"), TeardownStep::NetworkInterfaces);
        assert_eq!(step("e"), TeardownStep::EksClusters);
        assert_eq!(step("e-nodes"), TeardownStep::Nodegroups);
        assert_eq!(step("coredns"), TeardownStep::Addons);
        assert_eq!(
            items
                .iter()
                .filter(|(s, _)| *s == TeardownStep::Roles)
                .count(),
            3
        );
        // Someone else's cluster of the same name: nothing of it is listed.
        obs.eks.as_mut().unwrap().owned = false;
        obs.nodegroup = None;
        let items = destroy_items(&obs);
        assert!(
            !items
                .iter()
                .any(|(s, _)| matches!(s, TeardownStep::EksClusters | TeardownStep::Addons))
        );
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
