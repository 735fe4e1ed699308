//! The desired resource graph of a cluster, and the teardown order.
//!
//! Every node has a stable logical id (also its `provision:resource` tag) and the ids it depends
//! on. The engine runs nodes as soon as their dependencies are done; `plan` diffs the same nodes
//! against what AWS reports; the critical path of the graph is what a perfect engine would take.

use super::cidr::Ipv4Net;
use super::spec::{AccessEntry, Addon, AmiSource, Arch, ClusterSpec, Cni, Flavor};
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
    ElasticIp,
    NatGateway,
    EksCluster,
    /// The cluster's EKS access entries and their access policies.
    AccessEntries,
    /// A set of EKS add-ons.
    Addons,
    Nodegroup,
    LaunchTemplate,
    /// What Kubernetes made, deleted by `down` only.
    LoadBalancer,
    TargetGroup,
    NetworkInterface,
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
            Kind::ElasticIp => "elastic-ip",
            Kind::NatGateway => "nat-gateway",
            Kind::EksCluster => "eks-cluster",
            Kind::AccessEntries => "access-entries",
            Kind::Addons => "addons",
            Kind::Nodegroup => "nodegroup",
            Kind::LaunchTemplate => "launch-template",
            Kind::LoadBalancer => "load-balancer",
            Kind::TargetGroup => "target-group",
            Kind::NetworkInterface => "network-interface",
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
    /// An add-on instance's own group.
    Addon,
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
    /// An image lookup (the kubeadm nodes', or the add-on instances' of one architecture).
    Ami {
        source: AmiSource,
        arch: Arch,
    },
    Vpc {
        cidr: Ipv4Net,
    },
    Subnet {
        /// The availability zone (index into the looked-up zones).
        index: usize,
        cidr: Ipv4Net,
        /// Public: addresses on launch, tagged for internet-facing load balancers; private: tagged
        /// for internal ones.
        public: bool,
    },
    InternetGateway,
    /// An address for the NAT gateway.
    ElasticIp,
    NatGateway {
        subnet: String,
    },
    /// A route table whose default route goes to `gateway` (the IGW or the NAT gateway, by
    /// logical id), associated with `subnets` (logical ids).
    RouteTable {
        gateway: String,
        subnets: Vec<String>,
    },
    SecurityGroup {
        role: SgRole,
        name: String,
        description: String,
        rules: Vec<Rule>,
    },
    /// An IAM role that `service` may assume, with AWS managed policies (names under
    /// `arn:aws:iam::aws:policy/`).
    Role {
        name: String,
        service: &'static str,
        policies: Vec<String>,
    },
    InstanceProfile {
        name: String,
        /// The role's logical id.
        role: String,
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
    /// The add-ons' generated passwords (SSM SecureString).
    AddonSecret {
        parameter: String,
    },
    /// The add-on role's inline policy: EC2 discovery for Prometheus, and the add-ons' secret.
    AddonsAccess {
        role: String,
        policy: String,
        parameter: String,
    },
    /// EKS with the logging add-on: the node role may read the add-ons' parameter (the Fluent
    /// Bit user's password; it only writes logs).
    NodeLogAccess {
        role: String,
        policy: String,
        parameter: String,
    },
    /// Rules added to groups that exist already: (group's logical id, rule).
    IngressRules {
        rules: Vec<(String, Rule)>,
    },
    /// One add-on's instance.
    AddonInstance {
        addon: Addon,
        subnet: String,
    },
    /// Lets the control plane instance, and only it, read the bootstrap secret.
    CaAccess {
        role: String,
        policy: String,
        parameter: String,
    },
    EksCluster {
        name: String,
        version: String,
    },
    AccessEntries {
        entries: Vec<AccessEntry>,
    },
    /// Add-ons, each with the logical id of the role its pods assume (EKS Pod Identity), if any.
    Addons {
        names: Vec<(String, Option<String>)>,
    },
    /// The node group's launch template: IMDSv2 required, an encrypted gp3 root volume.
    LaunchTemplate {
        name: String,
        disk_gb: u32,
    },
    Nodegroup {
        name: String,
        subnets: Vec<String>,
        /// (min, max, desired)
        scaling: (u32, u32, u32),
        instance_types: Vec<String>,
        spot: bool,
        labels: std::collections::BTreeMap<String, String>,
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
pub const PUBLIC_ROUTE_TABLE: &str = ROUTE_TABLE;
pub const PRIVATE_ROUTE_TABLE: &str = "private-route-table";
pub const NAT_EIP: &str = "nat-eip";
pub const NAT_GATEWAY: &str = "nat-gateway";
pub const CLUSTER_ROLE: &str = "cluster-role";
pub const EBS_CSI_ROLE: &str = "ebs-csi-role";
pub const EKS_CLUSTER: &str = "eks-cluster";
pub const ACCESS_ENTRIES: &str = "access-entries";
/// Add-ons the nodes need to become Ready (the pod network, kube-proxy, pod identity): installed
/// before the node group, as terraform-aws-eks's `before_compute` does.
pub const ADDONS_BASE: &str = "addons-base";
/// Add-ons that run as Deployments (CoreDNS, the EBS CSI controller): they can only become
/// ACTIVE once nodes exist.
pub const ADDONS: &str = "addons";
pub const NODEGROUP: &str = "nodegroup";
pub const NODE_TEMPLATE: &str = "node-launch-template";
pub const ADDONS_ROLE: &str = "addons-role";
pub const ADDONS_PROFILE: &str = "addons-instance-profile";
pub const ADDONS_ACCESS: &str = "addons-access";
/// The add-on role's inline policy.
pub const ADDONS_ACCESS_POLICY: &str = "provision-addons-access";
pub const ADDONS_SECRET: &str = "addons-secret";

/// An add-on's security group.
pub fn addon_sg_id(a: Addon) -> String {
    format!("sg-{}", a.as_str())
}

/// The image lookup of the add-on instances of one architecture.
pub fn addon_ami_id(arch: Arch) -> String {
    match arch {
        Arch::Amd64 => "addon-ami-amd64".into(),
        Arch::Arm64 => "addon-ami-arm64".into(),
    }
}

/// The add-ons' ports: (port, what, from the admin CIDRs (a UI) or from the nodes (ingest)).
pub fn addon_ports(a: Addon) -> &'static [(u16, &'static str, bool)] {
    match a {
        Addon::Monitoring => &[(3000, "Grafana", true), (9090, "Prometheus", true)],
        Addon::Logging => &[
            (5601, "Kibana", true),
            (9200, "Elasticsearch ingest from nodes", false),
        ],
        Addon::Tracing => &[
            (16686, "Jaeger UI", true),
            (4317, "OTLP gRPC from nodes", false),
            (4318, "OTLP HTTP from nodes", false),
        ],
    }
}

/// The node_exporter port, open on every node and add-on instance to the monitoring group only.
pub const NODE_EXPORTER_PORT: u16 = 9100;
/// The EBS CSI driver's controller service account (EKS Pod Identity association).
pub const EBS_CSI_SERVICE_ACCOUNT: &str = "ebs-csi-controller-sa";

/// Whether an add-on must be running before nodes can become Ready.
pub fn before_compute(addon: &str) -> bool {
    matches!(addon, "vpc-cni" | "kube-proxy" | "eks-pod-identity-agent")
}

/// The EKS managed node group's name.
pub fn nodegroup_name(cluster: &str) -> String {
    format!("{cluster}-nodes")
}
/// The node role's inline policy that lets the control plane read the bootstrap secret.
pub const CA_ACCESS_POLICY: &str = "provision-ca-access";

pub fn subnet_id(i: usize) -> String {
    format!("subnet-{i}")
}

pub fn private_subnet_id(i: usize) -> String {
    format!("private-subnet-{i}")
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
    let admin = |port: u16, description: &'static str| {
        spec.network.admin_cidrs.iter().map(move |c| Rule {
            protocol: Protocol::Tcp,
            from_port: port,
            to_port: port,
            source: Source::Cidr(*c),
            description,
        })
    };
    let k = match &spec.flavor {
        Flavor::Kubeadm(k) => k,
        // EKS manages the node <-> control plane groups itself; ours is the additional group of
        // the control plane's network interfaces, reached from the admin CIDRs (over a VPN or
        // Direct Connect) only when the private endpoint is on.
        Flavor::Eks(e) => {
            return match role {
                SgRole::ControlPlane if e.endpoint_private_access => {
                    admin(443, "EKS private endpoint from admin CIDRs").collect()
                }
                _ => Vec::new(),
            };
        }
    };
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
                out.extend(admin(22, "SSH from admin CIDRs"));
            }
            if spec.addons.monitoring.is_some() {
                out.push(Rule {
                    protocol: Protocol::Tcp,
                    from_port: NODE_EXPORTER_PORT,
                    to_port: NODE_EXPORTER_PORT,
                    source: Source::Group(addon_sg_id(Addon::Monitoring)),
                    description: "node_exporter from Prometheus",
                });
            }
        }
        SgRole::ControlPlane => {
            out.push(group(
                Protocol::Tcp,
                6443,
                6443,
                "Kubernetes API from nodes",
            ));
            out.extend(admin(6443, "Kubernetes API from admin CIDRs"));
        }
        SgRole::Addon => {}
    }
    out
}

/// An add-on's security group rules: its UIs from the admin CIDRs, its ingest ports from the
/// cluster's nodes (kubeadm: our node group; EKS: added once the cluster's own group exists, see
/// `eks_addon_ingress`), node_exporter from the monitoring group.
pub fn addon_rules(spec: &ClusterSpec, a: Addon) -> Vec<Rule> {
    let mut out = Vec::new();
    for (port, what, ui) in addon_ports(a) {
        if *ui {
            for c in &spec.network.admin_cidrs {
                out.push(Rule {
                    protocol: Protocol::Tcp,
                    from_port: *port,
                    to_port: *port,
                    source: Source::Cidr(*c),
                    description: what,
                });
            }
        } else if spec.kubeadm().is_some() {
            out.push(Rule {
                protocol: Protocol::Tcp,
                from_port: *port,
                to_port: *port,
                source: Source::Group(SG_NODES.into()),
                description: what,
            });
        }
    }
    if spec.addons.monitoring.is_some() {
        out.push(Rule {
            protocol: Protocol::Tcp,
            from_port: NODE_EXPORTER_PORT,
            to_port: NODE_EXPORTER_PORT,
            source: Source::Group(addon_sg_id(Addon::Monitoring)),
            description: "node_exporter from Prometheus",
        });
    }
    out
}

/// The EKS cluster's security group (EKS makes it; its id is known once the cluster exists).
pub const EKS_CLUSTER_SG: &str = "eks-cluster-sg";
/// The rules between the add-ons and the EKS nodes, added once the cluster (and its group) exist.
pub const EKS_ADDON_INGRESS: &str = "eks-addon-ingress";
pub const NODE_LOG_ACCESS: &str = "node-log-access";
/// The EKS node role's inline policy for the log shipper's password.
pub const NODE_LOG_POLICY: &str = "provision-log-shipper";

/// On EKS, the add-ons' ingest ports from the nodes (in the cluster's security group) and
/// node_exporter on the nodes from Prometheus.
pub fn eks_addon_ingress(spec: &ClusterSpec) -> Vec<(String, Rule)> {
    let mut out = Vec::new();
    for (a, _) in spec.addons.enabled() {
        for (port, what, ui) in addon_ports(a) {
            if !ui {
                out.push((
                    addon_sg_id(a),
                    Rule {
                        protocol: Protocol::Tcp,
                        from_port: *port,
                        to_port: *port,
                        source: Source::Group(EKS_CLUSTER_SG.into()),
                        description: what,
                    },
                ));
            }
        }
    }
    if spec.addons.monitoring.is_some() {
        out.push((
            EKS_CLUSTER_SG.into(),
            Rule {
                protocol: Protocol::Tcp,
                from_port: NODE_EXPORTER_PORT,
                to_port: NODE_EXPORTER_PORT,
                source: Source::Group(addon_sg_id(Addon::Monitoring)),
                description: "node_exporter from Prometheus",
            },
        ));
    }
    out
}

struct Builder {
    nodes: Vec<Node>,
}

impl Builder {
    fn add(&mut self, id: &str, kind: Kind, desired: Desired, deps: &[&str]) {
        self.nodes.push(Node {
            id: id.to_string(),
            kind,
            desired,
            deps: deps.iter().map(|d| d.to_string()).collect(),
        });
    }
}

/// Builds the desired graph for a validated spec: the network nodes are shared, the rest is
/// the flavour's.
pub fn build(spec: &ClusterSpec) -> Graph {
    let azs = spec.network.subnet_cidrs.len();
    let mut b = Builder { nodes: Vec::new() };
    b.add(
        AZS,
        Kind::AvailabilityZones,
        Desired::AvailabilityZones { count: azs },
        &[],
    );
    if let Flavor::Kubeadm(k) = &spec.flavor {
        b.add(
            AMI,
            Kind::Ami,
            Desired::Ami {
                source: k.ami.clone(),
                arch: k.arch,
            },
            &[],
        );
    }
    b.add(
        VPC,
        Kind::Vpc,
        Desired::Vpc {
            cidr: spec.network.vpc_cidr,
        },
        &[],
    );
    let subnet_ids: Vec<String> = (0..azs).map(subnet_id).collect();
    for (i, cidr) in spec.network.subnet_cidrs.iter().enumerate() {
        b.add(
            &subnet_ids[i],
            Kind::Subnet,
            Desired::Subnet {
                index: i,
                cidr: *cidr,
                public: true,
            },
            &[VPC, AZS],
        );
    }
    let private_ids: Vec<String> = (0..spec.network.private_subnet_cidrs.len())
        .map(private_subnet_id)
        .collect();
    for (i, cidr) in spec.network.private_subnet_cidrs.iter().enumerate() {
        b.add(
            &private_ids[i],
            Kind::Subnet,
            Desired::Subnet {
                index: i,
                cidr: *cidr,
                public: false,
            },
            &[VPC, AZS],
        );
    }
    b.add(IGW, Kind::InternetGateway, Desired::InternetGateway, &[VPC]);
    let mut rt_deps: Vec<&str> = vec![VPC, IGW];
    rt_deps.extend(subnet_ids.iter().map(String::as_str));
    b.add(
        ROUTE_TABLE,
        Kind::RouteTable,
        Desired::RouteTable {
            gateway: IGW.into(),
            subnets: subnet_ids.clone(),
        },
        &rt_deps,
    );
    if !private_ids.is_empty() {
        b.add(NAT_EIP, Kind::ElasticIp, Desired::ElasticIp, &[]);
        // The NAT gateway needs the IGW attached and its subnet routed to it.
        b.add(
            NAT_GATEWAY,
            Kind::NatGateway,
            Desired::NatGateway {
                subnet: subnet_ids[0].clone(),
            },
            &[&subnet_ids[0], NAT_EIP, ROUTE_TABLE],
        );
        let mut deps: Vec<&str> = vec![VPC, NAT_GATEWAY];
        deps.extend(private_ids.iter().map(String::as_str));
        b.add(
            PRIVATE_ROUTE_TABLE,
            Kind::RouteTable,
            Desired::RouteTable {
                gateway: NAT_GATEWAY.into(),
                subnets: private_ids.clone(),
            },
            &deps,
        );
    }
    // The monitoring group first: the nodes' and the other add-ons' groups admit node_exporter
    // scrapes from it.
    if spec.addons.monitoring.is_some() {
        addon_group(spec, &mut b, Addon::Monitoring);
    }
    match &spec.flavor {
        Flavor::Kubeadm(_) => kubeadm_nodes(spec, &mut b, &subnet_ids),
        Flavor::Eks(_) => eks_nodes(spec, &mut b, &subnet_ids, &private_ids),
    }
    addon_nodes(spec, &mut b, &subnet_ids);
    link_groups(&mut b);
    Graph {
        nodes: topological(b.nodes),
    }
}

/// Rules between two of our security groups, authorized once both exist.
pub const SG_LINKS: &str = "sg-links";

/// Moves every rule whose source is another of our groups out of its group into one
/// [`SG_LINKS`] node, so that the groups are created side by side instead of one after the
/// other (the nodes' group admits Prometheus, the add-ons' admit the nodes, the control plane's
/// admits the nodes): the groups depend on the VPC only, and what runs in them waits for the
/// links (created alongside the subnets and route table, so off the critical path).
fn link_groups(b: &mut Builder) {
    let groups: Vec<String> = b
        .nodes
        .iter()
        .filter(|n| matches!(n.desired, Desired::SecurityGroup { .. }))
        .map(|n| n.id.clone())
        .collect();
    let mut links: Vec<(String, Rule)> = Vec::new();
    for n in &mut b.nodes {
        let id = n.id.clone();
        if let Desired::SecurityGroup { rules, .. } = &mut n.desired {
            let (other, own): (Vec<Rule>, Vec<Rule>) = std::mem::take(rules).into_iter().partition(
                |r| matches!(&r.source, Source::Group(g) if *g != id && groups.contains(g)),
            );
            *rules = own;
            links.extend(other.into_iter().map(|r| (id.clone(), r)));
            n.deps.retain(|d| !groups.contains(d));
        }
    }
    if links.is_empty() {
        return;
    }
    let mut deps: Vec<&str> = Vec::new();
    for (g, r) in &links {
        for id in [
            Some(g.as_str()),
            match &r.source {
                Source::Group(s) => Some(s.as_str()),
                Source::Cidr(_) => None,
            },
        ]
        .into_iter()
        .flatten()
        {
            if !deps.contains(&id) {
                deps.push(id);
            }
        }
    }
    let deps: Vec<String> = deps.into_iter().map(str::to_string).collect();
    // What runs in a group (instances, the node group) starts with its rules in place: a
    // failure to authorize them stops the launch, as a failing group did.
    for n in &mut b.nodes {
        if !matches!(n.desired, Desired::SecurityGroup { .. })
            && n.deps.iter().any(|d| deps.contains(d))
        {
            n.deps.push(SG_LINKS.to_string());
        }
    }
    let deps: Vec<&str> = deps.iter().map(String::as_str).collect();
    b.add(
        SG_LINKS,
        Kind::SecurityGroup,
        Desired::IngressRules { rules: links },
        &deps,
    );
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

/// An add-on's security group (after the groups its rules name).
fn addon_group(spec: &ClusterSpec, b: &mut Builder, a: Addon) {
    let mut deps: Vec<&str> = vec![VPC];
    let mon = addon_sg_id(Addon::Monitoring);
    if spec.addons.monitoring.is_some() && a != Addon::Monitoring {
        deps.push(&mon);
    }
    if spec.kubeadm().is_some() && a != Addon::Monitoring {
        deps.push(SG_NODES);
    }
    b.add(
        &addon_sg_id(a),
        Kind::SecurityGroup,
        Desired::SecurityGroup {
            role: SgRole::Addon,
            name: sg_name(spec, a.as_str()),
            description: format!("provision {}: {} add-on", spec.name, a.as_str()),
            rules: addon_rules(spec, a),
        },
        &deps,
    );
}

/// The add-on instances: each in the first public subnet with its own security group, an
/// instance profile of their own, and the generated passwords in an SSM parameter. They depend
/// on the network only, so they are made while the cluster is.
fn addon_nodes(spec: &ClusterSpec, b: &mut Builder, subnet_ids: &[String]) {
    if !spec.addons.any() {
        return;
    }
    if spec.eks().is_some() {
        let rules = eks_addon_ingress(spec);
        let groups: Vec<String> = spec.addons.enabled().map(|(a, _)| addon_sg_id(a)).collect();
        let mut deps: Vec<&str> = vec![EKS_CLUSTER];
        deps.extend(groups.iter().map(String::as_str));
        if !rules.is_empty() {
            b.add(
                EKS_ADDON_INGRESS,
                Kind::SecurityGroup,
                Desired::IngressRules { rules },
                &deps,
            );
        }
    }
    let role = tags::role_name(&spec.name, &spec.region, "addons");
    b.add(
        ADDONS_ROLE,
        Kind::IamRole,
        Desired::Role {
            name: role.clone(),
            service: "ec2.amazonaws.com",
            policies: Vec::new(),
        },
        &[],
    );
    b.add(
        ADDONS_PROFILE,
        Kind::InstanceProfile,
        Desired::InstanceProfile {
            name: role.clone(),
            role: ADDONS_ROLE.into(),
        },
        &[ADDONS_ROLE],
    );
    let parameter = tags::addons_parameter_name(&spec.name);
    b.add(
        ADDONS_SECRET,
        Kind::Secret,
        Desired::AddonSecret {
            parameter: parameter.clone(),
        },
        &[],
    );
    b.add(
        ADDONS_ACCESS,
        Kind::IamPolicy,
        Desired::AddonsAccess {
            role,
            policy: ADDONS_ACCESS_POLICY.into(),
            parameter,
        },
        &[ADDONS_ROLE],
    );
    let mut archs: Vec<Arch> = spec.addons.enabled().map(|(_, s)| s.arch).collect();
    archs.sort_by_key(|a| *a == Arch::Arm64);
    archs.dedup();
    for arch in &archs {
        b.add(
            &addon_ami_id(*arch),
            Kind::Ami,
            Desired::Ami {
                source: AmiSource::ubuntu(*arch),
                arch: *arch,
            },
            &[],
        );
    }
    for (a, s) in spec.addons.enabled() {
        let sg = addon_sg_id(a);
        if a != Addon::Monitoring {
            addon_group(spec, b, a);
        }
        let ami = addon_ami_id(s.arch);
        b.add(
            a.as_str(),
            Kind::Instance,
            Desired::AddonInstance {
                addon: a,
                subnet: subnet_ids[0].clone(),
            },
            &[
                &subnet_ids[0],
                &sg,
                ADDONS_PROFILE,
                &ami,
                ADDONS_SECRET,
                ROUTE_TABLE,
            ],
        );
    }
}

fn sg_name(spec: &ClusterSpec, suffix: &str) -> String {
    format!("provision-{}-{suffix}", spec.name)
}

fn kubeadm_nodes(spec: &ClusterSpec, b: &mut Builder, subnet_ids: &[String]) {
    let Flavor::Kubeadm(k) = &spec.flavor else {
        return;
    };
    let azs = subnet_ids.len();
    let mon = addon_sg_id(Addon::Monitoring);
    let mut node_deps: Vec<&str> = vec![VPC];
    if spec.addons.monitoring.is_some() {
        node_deps.push(&mon);
    }
    b.add(
        SG_NODES,
        Kind::SecurityGroup,
        Desired::SecurityGroup {
            role: SgRole::Nodes,
            name: sg_name(spec, "nodes"),
            description: format!("provision {}: every node", spec.name),
            rules: rules(spec, SgRole::Nodes),
        },
        &node_deps,
    );
    b.add(
        SG_CONTROL_PLANE,
        Kind::SecurityGroup,
        Desired::SecurityGroup {
            role: SgRole::ControlPlane,
            name: sg_name(spec, "control-plane"),
            description: format!("provision {}: Kubernetes API server", spec.name),
            rules: rules(spec, SgRole::ControlPlane),
        },
        &[VPC, SG_NODES],
    );
    let role = tags::node_role_name(&spec.name, &spec.region);
    b.add(
        NODE_ROLE,
        Kind::IamRole,
        Desired::Role {
            name: role.clone(),
            service: "ec2.amazonaws.com",
            policies: Vec::new(),
        },
        &[],
    );
    b.add(
        NODE_PROFILE,
        Kind::InstanceProfile,
        Desired::InstanceProfile {
            name: role,
            role: NODE_ROLE.into(),
        },
        &[NODE_ROLE],
    );
    b.add(
        SECRET,
        Kind::Secret,
        Desired::Secret {
            parameter: tags::secret_parameter_name(&spec.name),
        },
        &[],
    );
    let first = subnet_ids[0].clone();
    let mut master_deps: Vec<&str> = vec![
        &first,
        SG_NODES,
        SG_CONTROL_PLANE,
        NODE_PROFILE,
        AMI,
        SECRET,
        ROUTE_TABLE,
    ];
    // The control plane installs the log shipper, which needs the logging instance's address.
    let logging = Addon::Logging.as_str();
    if spec.addons.logging.is_some() {
        master_deps.push(logging);
    }
    b.add(
        MASTER,
        Kind::Instance,
        Desired::Master {
            subnet: first.clone(),
        },
        &master_deps,
    );
    b.add(
        CA_ACCESS,
        Kind::IamPolicy,
        Desired::CaAccess {
            role: tags::node_role_name(&spec.name, &spec.region),
            policy: CA_ACCESS_POLICY.into(),
            parameter: tags::secret_parameter_name(&spec.name),
        },
        &[NODE_ROLE, MASTER],
    );
    b.add(
        JOIN_TOKEN,
        Kind::JoinToken,
        Desired::JoinToken,
        &[SECRET, MASTER],
    );
    for (i, count) in worker_split(k.workers, azs).into_iter().enumerate() {
        if count > 0 {
            b.add(
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
}

/// The managed policies of the EKS roles (see `aws::eks` for their ARNs).
pub const EKS_CLUSTER_POLICIES: [&str; 1] = ["AmazonEKSClusterPolicy"];
pub const EKS_NODE_POLICIES: [&str; 3] = [
    "AmazonEKSWorkerNodePolicy",
    "AmazonEKS_CNI_Policy",
    "AmazonEC2ContainerRegistryReadOnly",
];
pub const EBS_CSI_POLICIES: [&str; 1] = ["service-role/AmazonEBSCSIDriverPolicy"];

fn eks_nodes(spec: &ClusterSpec, b: &mut Builder, subnet_ids: &[String], private_ids: &[String]) {
    let Flavor::Eks(e) = &spec.flavor else {
        return;
    };
    let strings = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    b.add(
        SG_CONTROL_PLANE,
        Kind::SecurityGroup,
        Desired::SecurityGroup {
            role: SgRole::ControlPlane,
            name: sg_name(spec, "control-plane"),
            description: format!("provision {}: EKS control plane interfaces", spec.name),
            rules: rules(spec, SgRole::ControlPlane),
        },
        &[VPC],
    );
    b.add(
        CLUSTER_ROLE,
        Kind::IamRole,
        Desired::Role {
            name: tags::role_name(&spec.name, &spec.region, "cluster"),
            service: "eks.amazonaws.com",
            policies: strings(&EKS_CLUSTER_POLICIES),
        },
        &[],
    );
    b.add(
        NODE_ROLE,
        Kind::IamRole,
        Desired::Role {
            name: tags::node_role_name(&spec.name, &spec.region),
            service: "ec2.amazonaws.com",
            policies: strings(&EKS_NODE_POLICIES),
        },
        &[],
    );
    let csi = e.addons.iter().any(|a| a == "aws-ebs-csi-driver");
    if csi {
        b.add(
            EBS_CSI_ROLE,
            Kind::IamRole,
            Desired::Role {
                name: tags::role_name(&spec.name, &spec.region, "ebs-csi"),
                service: "pods.eks.amazonaws.com",
                policies: strings(&EBS_CSI_POLICIES),
            },
            &[],
        );
    }
    // The control plane gets every subnet; nodes go to the private ones when there are.
    let mut cluster_deps: Vec<&str> = vec![SG_CONTROL_PLANE, CLUSTER_ROLE, ROUTE_TABLE];
    cluster_deps.extend(subnet_ids.iter().map(String::as_str));
    cluster_deps.extend(private_ids.iter().map(String::as_str));
    b.add(
        EKS_CLUSTER,
        Kind::EksCluster,
        Desired::EksCluster {
            name: spec.name.clone(),
            version: e.version.clone(),
        },
        &cluster_deps,
    );
    b.add(
        ACCESS_ENTRIES,
        Kind::AccessEntries,
        Desired::AccessEntries {
            entries: e.access.clone(),
        },
        &[EKS_CLUSTER],
    );
    let with_role = |a: &String| {
        let role = (a == "aws-ebs-csi-driver").then(|| EBS_CSI_ROLE.to_string());
        (a.clone(), role)
    };
    let base: Vec<(String, Option<String>)> = e
        .addons
        .iter()
        .filter(|a| before_compute(a))
        .map(with_role)
        .collect();
    let rest: Vec<(String, Option<String>)> = e
        .addons
        .iter()
        .filter(|a| !before_compute(a))
        .map(with_role)
        .collect();
    let has_base = !base.is_empty();
    if has_base {
        b.add(
            ADDONS_BASE,
            Kind::Addons,
            Desired::Addons { names: base },
            &[EKS_CLUSTER],
        );
    }
    let node_subnets = if private_ids.is_empty() {
        subnet_ids.to_vec()
    } else {
        private_ids.to_vec()
    };
    // The nodes' user data names the logging instance's address.
    let logging = Addon::Logging.as_str();
    let template_deps: &[&str] = if spec.addons.logging.is_some() {
        &[logging]
    } else {
        &[]
    };
    b.add(
        NODE_TEMPLATE,
        Kind::LaunchTemplate,
        Desired::LaunchTemplate {
            name: format!("provision-{}-nodes", spec.name),
            disk_gb: e.nodegroup.disk_size,
        },
        template_deps,
    );
    let mut ng_deps: Vec<&str> = vec![EKS_CLUSTER, NODE_ROLE, NODE_TEMPLATE];
    if spec.addons.logging.is_some() {
        b.add(
            NODE_LOG_ACCESS,
            Kind::IamPolicy,
            Desired::NodeLogAccess {
                role: tags::node_role_name(&spec.name, &spec.region),
                policy: NODE_LOG_POLICY.into(),
                parameter: tags::log_writer_parameter_name(&spec.name),
            },
            &[NODE_ROLE],
        );
        ng_deps.push(NODE_LOG_ACCESS);
    }
    if has_base {
        ng_deps.push(ADDONS_BASE);
    }
    if !private_ids.is_empty() {
        ng_deps.push(PRIVATE_ROUTE_TABLE);
    }
    b.add(
        NODEGROUP,
        Kind::Nodegroup,
        Desired::Nodegroup {
            name: nodegroup_name(&spec.name),
            subnets: node_subnets,
            scaling: (e.nodegroup.min, e.nodegroup.max, e.nodegroup.desired),
            instance_types: e.nodegroup.instance_types.clone(),
            spot: e.nodegroup.spot,
            labels: e.nodegroup.labels.clone(),
        },
        &ng_deps,
    );
    if !rest.is_empty() {
        let mut deps = vec![NODEGROUP];
        if csi {
            deps.push(EBS_CSI_ROLE);
        }
        b.add(ADDONS, Kind::Addons, Desired::Addons { names: rest }, &deps);
    }
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

/// The partition and account of an IAM role ARN (`arn:PARTITION:iam::ACCOUNT:role/...`).
fn role_arn_parts(role_arn: &str) -> Option<(&str, &str)> {
    let mut parts = role_arn.splitn(6, ':');
    let (arn, partition, service, _, account) = (
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
    );
    (arn == "arn" && service == "iam" && !account.is_empty()).then_some((partition, account))
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
    ca_access_policy_for(role_arn, region, &[parameter], instance_id)
}

/// [`ca_access_policy`] for several parameters (the bootstrap secret and, with the logging
/// add-on, the add-ons' passwords: the control plane installs the log shipper).
pub fn ca_access_policy_for(
    role_arn: &str,
    region: &str,
    parameters: &[&str],
    instance_id: &str,
) -> Option<String> {
    let (partition, account) = role_arn_parts(role_arn)?;
    let doc = serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "ControlPlaneReadsTheClusterCA",
            "Effect": "Allow",
            "Action": "ssm:GetParameter",
            "Resource": if parameters.len() == 1 {
                serde_json::json!(format!("arn:{partition}:ssm:{region}:{account}:parameter{}", parameters[0]))
            } else {
                serde_json::json!(parameters.iter().map(|p| format!("arn:{partition}:ssm:{region}:{account}:parameter{p}")).collect::<Vec<_>>())
            },
            "Condition": {"StringEquals": {"ec2:SourceInstanceARN": format!("arn:{partition}:ec2:{region}:{account}:instance/{instance_id}")}},
        }],
    });
    Some(doc.to_string())
}

/// The add-on role's inline policy: `ec2:DescribeInstances` (and zones) for Prometheus's EC2
/// discovery, which IAM cannot narrow to resources, and `ssm:GetParameter` on the add-ons'
/// passwords only. `None` if `role_arn` is not an IAM role ARN.
pub fn addons_access_policy(role_arn: &str, region: &str, parameter: &str) -> Option<String> {
    let (partition, account) = role_arn_parts(role_arn)?;
    let doc = serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "PrometheusDiscoversTheClusterInstances",
                "Effect": "Allow",
                "Action": ["ec2:DescribeInstances", "ec2:DescribeAvailabilityZones"],
                "Resource": "*",
            },
            {
                "Sid": "AddonsReadTheirPasswords",
                "Effect": "Allow",
                "Action": "ssm:GetParameter",
                "Resource": format!("arn:{partition}:ssm:{region}:{account}:parameter{parameter}"),
            },
        ],
    });
    Some(doc.to_string())
}

/// The EKS node role's inline policy for the log shipper: `ssm:GetParameter` on the add-ons'
/// parameter only.
pub fn node_log_policy(role_arn: &str, region: &str, parameter: &str) -> Option<String> {
    let (partition, account) = role_arn_parts(role_arn)?;
    Some(
        serde_json::json!({
            "Version": "2012-10-17",
            "Statement": [{
                "Sid": "NodesReadTheLogShipperPassword",
                "Effect": "Allow",
                "Action": "ssm:GetParameter",
                "Resource": format!("arn:{partition}:ssm:{region}:{account}:parameter{parameter}"),
            }],
        })
        .to_string(),
    )
}

/// A step of `down`: all resources of one kind, deleted after the steps it waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TeardownStep {
    /// What Kubernetes made in the VPC: load balancers, their target groups and security groups.
    KubernetesLoadBalancers,
    Nodegroups,
    LaunchTemplates,
    Addons,
    AccessEntries,
    EksClusters,
    /// `available` interfaces the VPC CNI left in our subnets.
    NetworkInterfaces,
    Instances,
    NatGateways,
    ElasticIps,
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
            TeardownStep::KubernetesLoadBalancers => "kubernetes-load-balancers",
            TeardownStep::Nodegroups => "nodegroups",
            TeardownStep::LaunchTemplates => "launch-templates",
            TeardownStep::Addons => "addons",
            TeardownStep::AccessEntries => "access-entries",
            TeardownStep::EksClusters => "eks-clusters",
            TeardownStep::NetworkInterfaces => "network-interfaces",
            TeardownStep::Instances => "instances",
            TeardownStep::NatGateways => "nat-gateways",
            TeardownStep::ElasticIps => "elastic-ips",
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

/// The teardown order: each step with every step that must finish before it (transitively, so
/// that leaving out a step with nothing to delete keeps the order of the others).
///
/// What Kubernetes made goes first (load balancers hold addresses and interfaces in our
/// subnets), then the node group, add-ons, access entries and the EKS cluster; instances go
/// before anything they sit in (interfaces in subnets and security groups, public IPs that block
/// the IGW detach, the instance profile). The VPC goes after everything inside it. The bootstrap
/// secret goes last, so a `down` that fails halfway still leaves `up` able to resume with the
/// same CA.
pub fn teardown_order() -> Vec<(TeardownStep, Vec<TeardownStep>)> {
    use TeardownStep::*;
    let direct = vec![
        (KubernetesLoadBalancers, vec![]),
        (Nodegroups, vec![KubernetesLoadBalancers]),
        (LaunchTemplates, vec![Nodegroups]),
        (Addons, vec![Nodegroups]),
        (AccessEntries, vec![KubernetesLoadBalancers]),
        (EksClusters, vec![Nodegroups, Addons, AccessEntries]),
        (Instances, vec![KubernetesLoadBalancers]),
        (NetworkInterfaces, vec![EksClusters, Instances]),
        (NatGateways, vec![KubernetesLoadBalancers]),
        (ElasticIps, vec![NatGateways]),
        (
            SecurityGroups,
            vec![Instances, EksClusters, NetworkInterfaces],
        ),
        (RouteTables, vec![EksClusters]),
        (
            InternetGateways,
            vec![Instances, EksClusters, NatGateways, NetworkInterfaces],
        ),
        (
            Subnets,
            vec![
                Instances,
                RouteTables,
                EksClusters,
                NatGateways,
                NetworkInterfaces,
            ],
        ),
        (
            Vpcs,
            vec![SecurityGroups, RouteTables, InternetGateways, Subnets],
        ),
        (InstanceProfiles, vec![Instances]),
        (
            Roles,
            vec![InstanceProfiles, EksClusters, Nodegroups, Addons],
        ),
        (Secrets, vec![Vpcs, Roles]),
    ];
    let deps_of = |s: TeardownStep| -> Vec<TeardownStep> {
        direct
            .iter()
            .find(|(t, _)| *t == s)
            .map(|(_, d)| d.clone())
            .unwrap_or_default()
    };
    direct
        .iter()
        .map(|(s, _)| {
            let mut all: Vec<TeardownStep> = Vec::new();
            let mut todo = deps_of(*s);
            while let Some(d) = todo.pop() {
                if !all.contains(&d) {
                    all.push(d);
                    todo.extend(deps_of(d));
                }
            }
            all.sort();
            (*s, all)
        })
        .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::core::spec;

    pub(crate) fn demo_spec(workers: u32, azs: u32) -> ClusterSpec {
        let text = format!(
            "name = \"demo\"\nregion = \"us-east-1\"\nkind = \"kubeadm\"\n[network]\nvpc_cidr = \"10.0.0.0/16\"\navailability_zones = {azs}\nadmin_cidrs = [\"203.0.113.0/24\"]\n[kubeadm]\ncni = \"calico\"\ninstance_type = \"t3.medium\"\nworkers = {workers}\n"
        );
        spec::parse("t.toml", &text).unwrap().0
    }

    pub(crate) fn eks_spec(extra_network: &str) -> ClusterSpec {
        let text = format!(
            "name = \"e\"\nregion = \"us-east-1\"\nkind = \"eks\"\n[network]\nvpc_cidr = \"10.0.0.0/16\"\nadmin_cidrs = [\"203.0.113.0/24\"]\n{extra_network}\n[eks.nodegroup]\ninstance_types = [\"t3.large\"]\nmin = 1\nmax = 3\ndesired = 2\n"
        );
        spec::parse("t.toml", &text).unwrap().0
    }

    fn deps<'a>(g: &'a Graph, id: &str) -> &'a [String] {
        &g.get(id).unwrap_or_else(|| panic!("no {id}")).deps
    }

    /// Everything `id` waits for, directly or not.
    fn waits_for(g: &Graph, id: &str, other: &str) -> bool {
        let mut todo = vec![id.to_string()];
        let mut seen = std::collections::HashSet::new();
        while let Some(n) = todo.pop() {
            for d in deps(g, &n) {
                if d == other {
                    return true;
                }
                if seen.insert(d.clone()) {
                    todo.push(d.clone());
                }
            }
        }
        false
    }

    #[test]
    fn eks_graph_shares_the_network_and_orders_addons_around_the_node_group() {
        let g = build(&eks_spec(""));
        let ids: Vec<&str> = g.nodes.iter().map(|n| n.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                AZS,
                VPC,
                "subnet-0",
                "subnet-1",
                IGW,
                ROUTE_TABLE,
                SG_CONTROL_PLANE,
                CLUSTER_ROLE,
                NODE_ROLE,
                EBS_CSI_ROLE,
                EKS_CLUSTER,
                ACCESS_ENTRIES,
                ADDONS_BASE,
                NODE_TEMPLATE,
                NODEGROUP,
                ADDONS
            ]
        );
        // The roles and the network are independent: created concurrently.
        assert!(deps(&g, CLUSTER_ROLE).is_empty() && deps(&g, NODE_ROLE).is_empty());
        assert!(waits_for(&g, EKS_CLUSTER, CLUSTER_ROLE));
        assert!(waits_for(&g, EKS_CLUSTER, "subnet-1"));
        assert!(
            !waits_for(&g, EKS_CLUSTER, NODE_ROLE),
            "the node role is not on the cluster's path"
        );
        // The pod network before the nodes, CoreDNS and the CSI controller after them.
        assert!(waits_for(&g, NODEGROUP, ADDONS_BASE));
        assert!(waits_for(&g, ADDONS, NODEGROUP));
        assert!(waits_for(&g, ADDONS, EBS_CSI_ROLE));
        let names = |id: &str| match &g.get(id).unwrap().desired {
            Desired::Addons { names } => names.clone(),
            other => panic!("{other:?}"),
        };
        let base: Vec<String> = names(ADDONS_BASE).into_iter().map(|(n, _)| n).collect();
        assert_eq!(base, ["vpc-cni", "kube-proxy", "eks-pod-identity-agent"]);
        assert_eq!(
            names(ADDONS),
            [
                ("coredns".to_string(), None),
                (
                    "aws-ebs-csi-driver".to_string(),
                    Some(EBS_CSI_ROLE.to_string())
                )
            ]
        );
        match &g.get(NODE_ROLE).unwrap().desired {
            Desired::Role {
                service, policies, ..
            } => {
                assert_eq!(*service, "ec2.amazonaws.com");
                assert_eq!(policies, &EKS_NODE_POLICIES.map(String::from));
            }
            other => panic!("{other:?}"),
        }
        match &g.get(NODEGROUP).unwrap().desired {
            Desired::Nodegroup {
                subnets, scaling, ..
            } => {
                assert_eq!(subnets, &["subnet-0", "subnet-1"]);
                assert_eq!(*scaling, (1, 3, 2));
            }
            other => panic!("{other:?}"),
        }
        // No kubeadm nodes, and no instance-profile or secret for EKS.
        assert!(g.nodes.iter().all(|n| !matches!(
            n.kind,
            Kind::Instance | Kind::Secret | Kind::InstanceProfile | Kind::Ami
        )));
        // EKS's own groups guard the nodes; ours admits the admin CIDRs to the private endpoint
        // (on by default) and nothing else.
        let r = rules(&eks_spec(""), SgRole::ControlPlane);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].from_port, 443);
    }

    #[test]
    fn private_subnets_route_through_one_nat_gateway_and_host_the_nodes() {
        let g = build(&eks_spec("private_subnets = true"));
        assert!(waits_for(&g, NAT_GATEWAY, NAT_EIP));
        assert!(
            waits_for(&g, NAT_GATEWAY, ROUTE_TABLE),
            "the public subnet is routed first"
        );
        match &g.get(PRIVATE_ROUTE_TABLE).unwrap().desired {
            Desired::RouteTable { gateway, subnets } => {
                assert_eq!(gateway, NAT_GATEWAY);
                assert_eq!(subnets, &["private-subnet-0", "private-subnet-1"]);
            }
            other => panic!("{other:?}"),
        }
        match &g.get(NODEGROUP).unwrap().desired {
            Desired::Nodegroup { subnets, .. } => {
                assert_eq!(subnets, &["private-subnet-0", "private-subnet-1"])
            }
            other => panic!("{other:?}"),
        }
        assert!(
            waits_for(&g, NODEGROUP, PRIVATE_ROUTE_TABLE),
            "nodes need their way out"
        );
        assert!(waits_for(&g, EKS_CLUSTER, "private-subnet-1"));
        match &g.get("private-subnet-0").unwrap().desired {
            Desired::Subnet { public, .. } => assert!(!public),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_private_endpoint_opens_443_to_the_admin_cidrs_only() {
        let mut spec = eks_spec("");
        let r = rules(&spec, SgRole::ControlPlane);
        assert_eq!(r.len(), 1);
        assert_eq!((r[0].from_port, r[0].to_port), (443, 443));
        assert_eq!(r[0].source, Source::Cidr("203.0.113.0/24".parse().unwrap()));
        if let Flavor::Eks(e) = &mut spec.flavor {
            e.endpoint_private_access = false;
        }
        assert!(rules(&spec, SgRole::ControlPlane).is_empty());
    }

    #[test]
    fn add_on_graphs_are_topologically_ordered_and_independent_of_the_cluster() {
        for kind in ["kubeadm", "eks"] {
            let mut spec = if kind == "eks" {
                eks_spec("")
            } else {
                demo_spec(2, 2)
            };
            let text = "name = \"x\"\nregion = \"us-east-1\"\nkind = \"kubeadm\"\n[network]\nvpc_cidr = \"10.0.0.0/16\"\nadmin_cidrs = [\"203.0.113.0/24\"]\n[kubeadm]\ncni = \"calico\"\ninstance_type = \"t3.medium\"\nworkers = 1\n[addons]\nmonitoring = true\nlogging = true\ntracing = true\n";
            spec.addons = spec::parse("t.toml", text).unwrap().0.addons;
            let g = build(&spec);
            let mut seen = std::collections::HashSet::new();
            for n in &g.nodes {
                for d in &n.deps {
                    assert!(seen.contains(d.as_str()), "{kind}: {} before {d}", n.id);
                }
                seen.insert(n.id.as_str());
            }
            for a in ["monitoring", "logging", "tracing"] {
                assert!(g.get(a).is_some(), "{kind}: {a}");
                assert!(
                    !waits_for(&g, a, EKS_CLUSTER) && !waits_for(&g, a, MASTER),
                    "{kind}: {a} waits only for the network"
                );
            }
        }
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
                SG_LINKS,
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
        // Transitive: the IGW waits for the load balancers even when there is no EKS cluster.
        assert!(
            deps(TeardownStep::InternetGateways).contains(&TeardownStep::KubernetesLoadBalancers)
        );
        assert!(deps(TeardownStep::EksClusters).contains(&TeardownStep::Nodegroups));
        assert!(deps(TeardownStep::Roles).contains(&TeardownStep::EksClusters));
        assert!(deps(TeardownStep::ElasticIps).contains(&TeardownStep::NatGateways));
        for (s, d) in &order {
            assert!(!d.contains(s), "{s} waits for itself");
        }
    }
}
