//! The desired resource graph of a cluster.
//!
//! Every node has a stable logical id (also its `provision:resource` tag), its desired state
//! (whose variant is its kind) and the ids it depends on. The plan diffs the nodes against what
//! AWS reports; the engine runs them as soon as their dependencies are done, handing each the
//! outputs of exactly those dependencies. The network is shared by both flavours
//! (`network`); the rest is the flavour's (`kubeadm`, `eks`) and the add-ons' (`addons`).

mod addons;
mod eks;
mod kubeadm;
mod network;
pub mod policies;
pub mod rules;
#[cfg(test)]
pub(crate) mod tests;

use super::kinds::{Desired, Kind};
use super::spec::{ClusterSpec, Flavor};

pub use addons::{addon_ami_id, addon_ports, addon_sg_id};
pub use eks::{
    EBS_CSI_POLICIES, EBS_CSI_SERVICE_ACCOUNT, EKS_CLUSTER_POLICIES, EKS_NODE_POLICIES,
    before_compute, nodegroup_id, nodegroup_name, template_id,
};
pub use kubeadm::{MASTER_EIP, MASTER_EIP_ASSOCIATION, master_address, worker_split};
pub use rules::{NODE_EXPORTER_PORT, Protocol, Rule, SgRole, Source};

/// One node of the graph.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub id: String,
    pub desired: Desired,
    pub deps: Vec<String>,
}

impl Node {
    pub fn kind(&self) -> Kind {
        self.desired.kind()
    }
}

/// The desired graph, in a topological order.
#[derive(Debug, Clone, PartialEq)]
pub struct Graph {
    pub nodes: Vec<Node>,
}

pub const AZS: &str = "availability-zones";
pub const AMI: &str = "ami";
pub const VPC: &str = "vpc";
pub const IGW: &str = "internet-gateway";
pub const ROUTE_TABLE: &str = "route-table";
pub const SG_NODES: &str = "sg-nodes";
pub const SG_CONTROL_PLANE: &str = "sg-control-plane";
pub const NODE_ROLE: &str = "node-role";
pub const NODE_PROFILE: &str = "node-instance-profile";
pub const SECRET: &str = "bootstrap-secret";
pub const MASTER: &str = "master";
/// The etcd snapshots' bucket (kubeadm).
pub const ETCD_BACKUPS: &str = "etcd-backups";
pub const JOIN_TOKEN: &str = "join-token";
pub const CA_ACCESS: &str = "ca-access";
/// The node role's permission to write the nodes' boot reports.
pub const NODE_REPORTS: &str = "node-reports";
/// The node role's policy for the SSM agent (Run Command, Session Manager).
pub const SSM_AGENT: &str = "ssm-agent";
/// The in-place upgrade of the kubeadm control plane.
pub const CONTROL_PLANE_UPGRADE: &str = "control-plane-upgrade";
pub const PRIVATE_ROUTE_TABLE: &str = "private-route-table";
pub const NAT_EIP: &str = "nat-eip";
pub const NAT_GATEWAY: &str = "nat-gateway";
pub const CLUSTER_ROLE: &str = "cluster-role";
pub const EBS_CSI_ROLE: &str = "ebs-csi-role";
pub const EKS_CLUSTER: &str = "eks-cluster";
/// The EKS version upgrade (control plane, add-ons, node groups), before anything else runs on
/// the cluster.
pub const EKS_UPGRADE: &str = "eks-upgrade";
pub const ACCESS_ENTRIES: &str = "access-entries";
/// Add-ons the nodes need to become Ready (the pod network, kube-proxy, pod identity): installed
/// before the node group, as terraform-aws-eks's `before_compute` does.
pub const ADDONS_BASE: &str = "addons-base";
/// Add-ons that run as Deployments (CoreDNS, the EBS CSI controller): they can only become
/// ACTIVE once nodes exist.
pub const ADDONS: &str = "addons";
pub const NODEGROUP: &str = "nodegroup";
/// Deletes the node groups the spec no longer has, once its own are ACTIVE.
pub const NODEGROUP_RETIRE: &str = "nodegroup-retire";
pub const NODE_TEMPLATE: &str = "node-launch-template";
pub const ADDONS_ROLE: &str = "addons-role";
pub const ADDONS_PROFILE: &str = "addons-instance-profile";
pub const ADDONS_ACCESS: &str = "addons-access";
/// The add-on role's inline policy.
pub const ADDONS_ACCESS_POLICY: &str = "provision-addons-access";
pub const ADDONS_SECRET: &str = "addons-secret";
/// The node role's inline policy that lets the control plane read the bootstrap secret.
pub const CA_ACCESS_POLICY: &str = "provision-ca-access";
pub const NODE_REPORTS_POLICY: &str = "provision-node-reports";
pub const SSM_AGENT_POLICY: &str = "provision-ssm-agent";
/// Rules between two of our security groups, authorized once both exist.
pub const SG_LINKS: &str = "sg-links";
/// The EKS cluster's security group (EKS makes it; its id is known once the cluster exists).
pub const EKS_CLUSTER_SG: &str = "eks-cluster-sg";
/// The rules between the add-ons and the EKS nodes, added once the cluster (and its group) exist.
pub const EKS_ADDON_INGRESS: &str = "eks-addon-ingress";
pub const NODE_LOG_ACCESS: &str = "node-log-access";
/// The EKS node role's inline policy for the log shipper's password.
pub const NODE_LOG_POLICY: &str = "provision-log-shipper";

pub fn subnet_id(i: usize) -> String {
    format!("subnet-{i}")
}

pub fn private_subnet_id(i: usize) -> String {
    format!("private-subnet-{i}")
}

/// A worker pool's node: `workers` for the default pool (`kubeadm.workers`), else
/// `workers-NAME`.
pub fn pool_id(name: &str) -> String {
    if name == crate::core::spec::DEFAULT_POOL {
        name.to_string()
    } else {
        format!("workers-{name}")
    }
}

/// The logical id of a pool's instances in the public subnet `zone` (`workers-0`,
/// `workers-gpu-1`): what their tag says.
pub fn pool_zone_id(pool: &str, zone: usize) -> String {
    format!("{}-{zone}", pool_id(pool))
}

/// Whether a logical id is a worker's (of any pool).
pub fn is_workers_id(id: &str) -> bool {
    id.starts_with("workers-")
        && id
            .rsplit_once('-')
            .is_some_and(|(_, n)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// Collects nodes while a graph is built.
pub(crate) struct Builder {
    nodes: Vec<Node>,
}

impl Builder {
    pub(crate) fn add(&mut self, id: &str, desired: Desired, deps: &[&str]) {
        self.nodes.push(Node {
            id: id.to_string(),
            desired,
            deps: deps.iter().map(|d| d.to_string()).collect(),
        });
    }

    pub(crate) fn nodes_mut(&mut self) -> &mut Vec<Node> {
        &mut self.nodes
    }
}

/// Builds the desired graph for a validated spec.
pub fn build(spec: &ClusterSpec) -> Graph {
    let mut b = Builder { nodes: Vec::new() };
    let net = network::nodes(spec, &mut b);
    // The monitoring group first: the nodes' and the other add-ons' groups admit node_exporter
    // scrapes from it.
    addons::monitoring_group(spec, &mut b);
    match &spec.flavor {
        Flavor::Kubeadm(_) => kubeadm::nodes(spec, &mut b, &net),
        Flavor::Eks(_) => eks::nodes(spec, &mut b, &net),
    }
    addons::nodes(spec, &mut b, &net);
    kubeadm::address(spec, &mut b);
    lookups_first(&mut b);
    rules::link_groups(&mut b);
    Graph {
        nodes: topological(b.nodes),
    }
}

/// Read-only lookups (the zones that offer the instance type, the images) come before anything
/// is made: a plausible wrong value (an instance type no zone offers, an image that does not
/// exist) fails before the first create, not after the network and the roles exist. Every node
/// without dependencies waits for them; the rest wait through those.
fn lookups_first(b: &mut Builder) {
    let lookups: Vec<String> = b
        .nodes
        .iter()
        .filter(|n| matches!(n.kind(), Kind::AvailabilityZones | Kind::Image))
        .map(|n| n.id.clone())
        .collect();
    for n in &mut b.nodes {
        if n.deps.is_empty() && !lookups.contains(&n.id) {
            n.deps.extend(lookups.iter().cloned());
        }
    }
}

/// The nodes in an order where every node comes after its dependencies, keeping the order
/// they were added in otherwise (dependencies on ids that are not nodes are ignored).
fn topological(nodes: Vec<Node>) -> Vec<Node> {
    let ids: std::collections::HashSet<String> = nodes.iter().map(|n| n.id.clone()).collect();
    let mut placed: std::collections::HashSet<String> = std::collections::HashSet::new();
    let mut pending = nodes;
    let mut out = Vec::with_capacity(pending.len());
    while !pending.is_empty() {
        let ready = pending
            .iter()
            .position(|n| {
                n.deps
                    .iter()
                    .all(|d| placed.contains(d) || !ids.contains(d))
            })
            // A cycle would be a bug in `build`; keep the rest as it is rather than loop.
            .unwrap_or(0);
        let n = pending.remove(ready);
        placed.insert(n.id.clone());
        out.push(n);
    }
    out
}

impl Graph {
    pub fn get(&self, id: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.id == id)
    }

    /// The longest chain of `cost(node)` through the graph, and the chain itself.
    pub fn critical_path(&self, cost: impl Fn(&Node) -> f64) -> (f64, Vec<String>) {
        let mut best: std::collections::HashMap<&str, (f64, Vec<String>)> =
            std::collections::HashMap::new();
        for n in &self.nodes {
            let (base, mut path) = n
                .deps
                .iter()
                .filter_map(|d| best.get(d.as_str()))
                .max_by(|a, b| a.0.total_cmp(&b.0))
                .cloned()
                .unwrap_or((0.0, Vec::new()));
            path.push(n.id.clone());
            best.insert(&n.id, (base + cost(n), path));
        }
        best.into_values()
            .max_by(|a, b| a.0.total_cmp(&b.0))
            .unwrap_or((0.0, Vec::new()))
    }
}

/// A security group's name: `provision-CLUSTER-SUFFIX`.
pub(crate) fn sg_name(spec: &ClusterSpec, suffix: &str) -> String {
    format!("provision-{}-{suffix}", spec.name)
}
