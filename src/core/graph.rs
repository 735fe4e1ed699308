//! The desired resource graph of a cluster, and the teardown order.
//!
//! Every node has a stable logical id (also its `provision:resource` tag) and the ids it depends
//! on. The engine runs nodes as soon as their dependencies are done; `plan` diffs the same nodes
//! against what AWS reports; the critical path of the graph is what a perfect engine would take.

use super::cidr::Ipv4Net;
use super::spec::{AmiSource, ClusterSpec, Cni};
use super::tags;

/// What kind of AWS resource (or read-only lookup) a node stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    AvailabilityZones,
    Ami,
    Vpc,
    Subnet,
    InternetGateway,
    RouteTable,
    SecurityGroup,
    IamRole,
    InstanceProfile,
    Secret,
    Instance,
    /// An inline policy on the node role.
    IamPolicy,
    /// The bootstrap token workers join with: reused while valid, minted anew through the API
    /// server when workers join an existing cluster after it expired.
    JoinToken,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::AvailabilityZones => "availability-zones",
            Kind::Ami => "ami",
            Kind::Vpc => "vpc",
            Kind::Subnet => "subnet",
            Kind::InternetGateway => "internet-gateway",
            Kind::RouteTable => "route-table",
            Kind::SecurityGroup => "security-group",
            Kind::IamRole => "iam-role",
            Kind::InstanceProfile => "instance-profile",
            Kind::Secret => "secret",
            Kind::Instance => "instance",
            Kind::JoinToken => "join-token",
            Kind::IamPolicy => "iam-policy",
        }
    }

    /// Lookups read AWS but create nothing.
    pub fn is_lookup(self) -> bool {
        matches!(self, Kind::AvailabilityZones | Kind::Ami | Kind::JoinToken)
    }
}

/// A security group's role in the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SgRole {
    /// On every node: node-to-node traffic through the group itself.
    Nodes,
    /// On the master only: the API server.
    ControlPlane,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    Tcp,
    Udp,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}

/// Where an ingress rule admits traffic from.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Source {
    Cidr(Ipv4Net),
    /// Another (or the same) security group, by logical id.
    Group(String),
}

/// One ingress rule.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Rule {
    pub protocol: Protocol,
    pub from_port: u16,
    pub to_port: u16,
    pub source: Source,
    pub description: &'static str,
}

/// What a node should look like.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Desired {
    AvailabilityZones {
        count: usize,
    },
    Ami {
        source: AmiSource,
    },
    Vpc {
        cidr: Ipv4Net,
    },
    Subnet {
        index: usize,
        cidr: Ipv4Net,
    },
    InternetGateway,
    /// Public route table: default route to the IGW, associated with every subnet.
    RouteTable {
        subnets: usize,
    },
    SecurityGroup {
        role: SgRole,
        name: String,
        description: String,
        rules: Vec<Rule>,
    },
    NodeRole {
        name: String,
    },
    InstanceProfile {
        name: String,
    },
    Secret {
        parameter: String,
    },
    Master {
        subnet: String,
    },
    Workers {
        subnet: String,
        count: u32,
    },
    JoinToken,
    /// Lets the control plane instance, and only it, read the bootstrap secret.
    CaAccess {
        role: String,
        policy: String,
        parameter: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub id: String,
    pub kind: Kind,
    pub desired: Desired,
    pub deps: Vec<String>,
}

/// The desired graph, in a topological order.
#[derive(Debug, Clone, PartialEq, Eq)]
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
pub const JOIN_TOKEN: &str = "join-token";
pub const CA_ACCESS: &str = "ca-access";
/// The node role's inline policy that lets the control plane read the bootstrap secret.
pub const CA_ACCESS_POLICY: &str = "provision-ca-access";

pub fn subnet_id(i: usize) -> String {
    format!("subnet-{i}")
}

pub fn workers_id(i: usize) -> String {
    format!("workers-{i}")
}

/// How many workers go into each subnet: round-robin, so at most one call per AZ.
pub fn worker_split(workers: u32, subnets: usize) -> Vec<u32> {
    let n = subnets.max(1) as u32;
    (0..n)
        .map(|i| workers / n + u32::from(i < workers % n))
        .collect()
}

/// The security group rules for a spec (least privilege, see ARCHITECTURE.md).
pub fn rules(spec: &ClusterSpec, role: SgRole) -> Vec<Rule> {
    let k = &spec.kubeadm;
    let group = |p, from, to, d| Rule {
        protocol: p,
        from_port: from,
        to_port: to,
        source: Source::Group(SG_NODES.into()),
        description: d,
    };
    let mut out = Vec::new();
    match role {
        SgRole::Nodes => {
            out.push(group(Protocol::Tcp, 10250, 10250, "kubelet API from nodes"));
            match k.cni {
                Cni::Calico => {
                    out.push(group(
                        Protocol::Udp,
                        4789,
                        4789,
                        "Calico VXLAN between nodes",
                    ));
                    out.push(group(Protocol::Tcp, 5473, 5473, "Calico Typha from nodes"));
                }
                Cni::Flannel => out.push(group(
                    Protocol::Udp,
                    8472,
                    8472,
                    "Flannel VXLAN between nodes",
                )),
            }
            if k.ssh {
                for c in &spec.network.admin_cidrs {
                    out.push(Rule {
                        protocol: Protocol::Tcp,
                        from_port: 22,
                        to_port: 22,
                        source: Source::Cidr(*c),
                        description: "SSH from admin CIDRs",
                    });
                }
            }
        }
        SgRole::ControlPlane => {
            out.push(group(
                Protocol::Tcp,
                6443,
                6443,
                "Kubernetes API from nodes",
            ));
            for c in &spec.network.admin_cidrs {
                out.push(Rule {
                    protocol: Protocol::Tcp,
                    from_port: 6443,
                    to_port: 6443,
                    source: Source::Cidr(*c),
                    description: "Kubernetes API from admin CIDRs",
                });
            }
        }
    }
    out
}

/// Builds the desired graph for a validated spec.
pub fn build(spec: &ClusterSpec) -> Graph {
    let azs = spec.network.subnet_cidrs.len();
    let mut nodes = Vec::new();
    let mut add = |id: &str, kind: Kind, desired: Desired, deps: &[&str]| {
        nodes.push(Node {
            id: id.to_string(),
            kind,
            desired,
            deps: deps.iter().map(|d| d.to_string()).collect(),
        });
    };
    add(
        AZS,
        Kind::AvailabilityZones,
        Desired::AvailabilityZones { count: azs },
        &[],
    );
    add(
        AMI,
        Kind::Ami,
        Desired::Ami {
            source: spec.kubeadm.ami.clone(),
        },
        &[],
    );
    add(
        VPC,
        Kind::Vpc,
        Desired::Vpc {
            cidr: spec.network.vpc_cidr,
        },
        &[],
    );
    let subnet_ids: Vec<String> = (0..azs).map(subnet_id).collect();
    for (i, cidr) in spec.network.subnet_cidrs.iter().enumerate() {
        add(
            &subnet_ids[i],
            Kind::Subnet,
            Desired::Subnet {
                index: i,
                cidr: *cidr,
            },
            &[VPC, AZS],
        );
    }
    add(IGW, Kind::InternetGateway, Desired::InternetGateway, &[VPC]);
    let mut rt_deps: Vec<&str> = vec![VPC, IGW];
    rt_deps.extend(subnet_ids.iter().map(String::as_str));
    add(
        ROUTE_TABLE,
        Kind::RouteTable,
        Desired::RouteTable { subnets: azs },
        &rt_deps,
    );
    let sg_name = |suffix: &str| format!("provision-{}-{suffix}", spec.name);
    add(
        SG_NODES,
        Kind::SecurityGroup,
        Desired::SecurityGroup {
            role: SgRole::Nodes,
            name: sg_name("nodes"),
            description: format!("provision {}: every node", spec.name),
            rules: rules(spec, SgRole::Nodes),
        },
        &[VPC],
    );
    add(
        SG_CONTROL_PLANE,
        Kind::SecurityGroup,
        Desired::SecurityGroup {
            role: SgRole::ControlPlane,
            name: sg_name("control-plane"),
            description: format!("provision {}: Kubernetes API server", spec.name),
            rules: rules(spec, SgRole::ControlPlane),
        },
        &[VPC, SG_NODES],
    );
    let role = tags::node_role_name(&spec.name, &spec.region);
    add(
        NODE_ROLE,
        Kind::IamRole,
        Desired::NodeRole { name: role.clone() },
        &[],
    );
    add(
        NODE_PROFILE,
        Kind::InstanceProfile,
        Desired::InstanceProfile { name: role },
        &[NODE_ROLE],
    );
    add(
        SECRET,
        Kind::Secret,
        Desired::Secret {
            parameter: tags::secret_parameter_name(&spec.name),
        },
        &[],
    );
    let first = subnet_ids[0].clone();
    add(
        MASTER,
        Kind::Instance,
        Desired::Master {
            subnet: first.clone(),
        },
        &[
            &first,
            SG_NODES,
            SG_CONTROL_PLANE,
            NODE_PROFILE,
            AMI,
            SECRET,
            ROUTE_TABLE,
        ],
    );
    add(
        CA_ACCESS,
        Kind::IamPolicy,
        Desired::CaAccess {
            role: tags::node_role_name(&spec.name, &spec.region),
            policy: CA_ACCESS_POLICY.into(),
            parameter: tags::secret_parameter_name(&spec.name),
        },
        &[NODE_ROLE, MASTER],
    );
    add(
        JOIN_TOKEN,
        Kind::JoinToken,
        Desired::JoinToken,
        &[SECRET, MASTER],
    );
    for (i, count) in worker_split(spec.kubeadm.workers, azs)
        .into_iter()
        .enumerate()
    {
        if count > 0 {
            add(
                &workers_id(i),
                Kind::Instance,
                Desired::Workers {
                    subnet: subnet_ids[i].clone(),
                    count,
                },
                &[
                    &subnet_ids[i],
                    SG_NODES,
                    NODE_PROFILE,
                    AMI,
                    SECRET,
                    ROUTE_TABLE,
                    MASTER,
                    JOIN_TOKEN,
                ],
            );
        }
    }
    Graph { nodes }
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

/// The policy document of the `ca-access` node: `ssm:GetParameter` on the bootstrap secret,
/// only for requests made with the role's credentials from the control plane instance
/// (`ec2:SourceInstanceARN`), so workers sharing the role cannot read the CA key. Partition and
/// account come from the role's ARN; `None` if it is not an IAM role ARN.
pub fn ca_access_policy(
    role_arn: &str,
    region: &str,
    parameter: &str,
    instance_id: &str,
) -> Option<String> {
    let mut parts = role_arn.splitn(6, ':');
    let (arn, partition, service, _, account) = (
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
    );
    if arn != "arn" || service != "iam" || account.is_empty() {
        return None;
    }
    let doc = serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "ControlPlaneReadsTheClusterCA",
            "Effect": "Allow",
            "Action": "ssm:GetParameter",
            "Resource": format!("arn:{partition}:ssm:{region}:{account}:parameter{parameter}"),
            "Condition": {"StringEquals": {"ec2:SourceInstanceARN": format!("arn:{partition}:ec2:{region}:{account}:instance/{instance_id}")}},
        }],
    });
    Some(doc.to_string())
}

/// A step of `down`: all resources of one kind, deleted after the steps it waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TeardownStep {
    Instances,
    SecurityGroups,
    RouteTables,
    InternetGateways,
    Subnets,
    Vpcs,
    InstanceProfiles,
    Roles,
    Secrets,
}

impl TeardownStep {
    pub fn as_str(self) -> &'static str {
        match self {
            TeardownStep::Instances => "instances",
            TeardownStep::SecurityGroups => "security-groups",
            TeardownStep::RouteTables => "route-tables",
            TeardownStep::InternetGateways => "internet-gateways",
            TeardownStep::Subnets => "subnets",
            TeardownStep::Vpcs => "vpcs",
            TeardownStep::InstanceProfiles => "instance-profiles",
            TeardownStep::Roles => "roles",
            TeardownStep::Secrets => "secrets",
        }
    }
}

impl std::fmt::Display for TeardownStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The teardown order: each step with the steps that must finish first.
///
/// Instances go first (they hold ENIs in subnets and security groups, public IPs that block
/// the IGW detach, and the instance profile). The VPC goes after everything inside it. The
/// bootstrap secret goes last, so a `down` that fails halfway still leaves `up` able to resume
/// with the same CA.
pub fn teardown_order() -> Vec<(TeardownStep, Vec<TeardownStep>)> {
    use TeardownStep::*;
    vec![
        (Instances, vec![]),
        (SecurityGroups, vec![Instances]),
        (RouteTables, vec![]),
        (InternetGateways, vec![Instances]),
        (Subnets, vec![Instances, RouteTables]),
        (
            Vpcs,
            vec![SecurityGroups, RouteTables, InternetGateways, Subnets],
        ),
        (InstanceProfiles, vec![Instances]),
        (Roles, vec![InstanceProfiles]),
        (Secrets, vec![Vpcs, Roles]),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::spec;

    pub(crate) fn demo_spec(workers: u32, azs: u32) -> ClusterSpec {
        let text = format!(
            "name = \"demo\"\nregion = \"us-east-1\"\nkind = \"kubeadm\"\n[network]\nvpc_cidr = \"10.0.0.0/16\"\navailability_zones = {azs}\nadmin_cidrs = [\"203.0.113.0/24\"]\n[kubeadm]\ncni = \"calico\"\ninstance_type = \"t3.medium\"\nworkers = {workers}\n"
        );
        spec::parse("t.toml", &text).unwrap().0
    }

    #[test]
    fn ca_access_is_scoped_to_the_parameter_and_the_control_plane() {
        let doc = ca_access_policy(
            "arn:aws:iam::123456789012:role/provision/provision-demo-ue1-node",
            "us-east-1",
            "/provision/demo/bootstrap",
            "i-0abc",
        )
        .unwrap();
        let v: serde_json::Value = serde_json::from_str(&doc).unwrap();
        let st = &v["Statement"][0];
        assert_eq!(st["Action"], "ssm:GetParameter");
        assert_eq!(
            st["Resource"],
            "arn:aws:ssm:us-east-1:123456789012:parameter/provision/demo/bootstrap"
        );
        assert_eq!(
            st["Condition"]["StringEquals"]["ec2:SourceInstanceARN"],
            "arn:aws:ec2:us-east-1:123456789012:instance/i-0abc"
        );
        let gov =
            ca_access_policy("arn:aws-us-gov:iam::1:role/r", "us-gov-west-1", "/p", "i-1").unwrap();
        assert!(gov.contains("arn:aws-us-gov:ssm:us-gov-west-1:1:parameter/p"));
        assert!(ca_access_policy("not-an-arn", "us-east-1", "/p", "i-1").is_none());
    }

    #[test]
    fn workers_spread_round_robin() {
        assert_eq!(worker_split(2, 2), [1, 1]);
        assert_eq!(worker_split(5, 3), [2, 2, 1]);
        assert_eq!(worker_split(1, 3), [1, 0, 0]);
        assert_eq!(worker_split(100, 2), [50, 50]);
    }

    #[test]
    fn graph_is_topologically_ordered_and_complete() {
        let g = build(&demo_spec(2, 2));
        let mut seen = std::collections::HashSet::new();
        for n in &g.nodes {
            for d in &n.deps {
                assert!(
                    seen.contains(d.as_str()),
                    "{} depends on {d}, which comes later",
                    n.id
                );
            }
            assert!(seen.insert(n.id.as_str()), "duplicate id {}", n.id);
        }
        let ids: Vec<&str> = g.nodes.iter().map(|n| n.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                AZS,
                AMI,
                VPC,
                "subnet-0",
                "subnet-1",
                IGW,
                ROUTE_TABLE,
                SG_NODES,
                SG_CONTROL_PLANE,
                NODE_ROLE,
                NODE_PROFILE,
                SECRET,
                MASTER,
                CA_ACCESS,
                JOIN_TOKEN,
                "workers-0",
                "workers-1"
            ]
        );
    }

    #[test]
    fn api_server_open_only_to_admin_cidrs_and_nodes() {
        let spec = demo_spec(2, 2);
        let cp = rules(&spec, SgRole::ControlPlane);
        assert!(cp.iter().all(|r| r.from_port == 6443 && r.to_port == 6443));
        let cidrs: Vec<String> = cp
            .iter()
            .filter_map(|r| match &r.source {
                Source::Cidr(c) => Some(c.to_string()),
                _ => None,
            })
            .collect();
        assert_eq!(cidrs, ["203.0.113.0/24"]);
        let nodes = rules(&spec, SgRole::Nodes);
        assert!(
            nodes
                .iter()
                .all(|r| r.source == Source::Group(SG_NODES.into())),
            "no CIDR rule on nodes without ssh"
        );
        assert!(!nodes.iter().any(|r| r.from_port == 22));
    }

    #[test]
    fn critical_path_follows_the_longest_chain() {
        let g = build(&demo_spec(2, 2));
        let (len, path) = g.critical_path(|n| if n.kind == Kind::Instance { 10.0 } else { 1.0 });
        assert!(
            path.last().is_some_and(|p| p.starts_with("workers-")),
            "{path:?}"
        );
        assert!(path.contains(&MASTER.to_string()));
        assert!(len >= 20.0);
    }

    #[test]
    fn teardown_waits_for_instances_and_deletes_the_secret_last() {
        let order = teardown_order();
        let deps = |s: TeardownStep| order.iter().find(|(t, _)| *t == s).unwrap().1.clone();
        assert!(deps(TeardownStep::SecurityGroups).contains(&TeardownStep::Instances));
        assert!(deps(TeardownStep::Subnets).contains(&TeardownStep::Instances));
        assert!(deps(TeardownStep::Vpcs).contains(&TeardownStep::Subnets));
        assert!(deps(TeardownStep::Secrets).contains(&TeardownStep::Vpcs));
    }
}
