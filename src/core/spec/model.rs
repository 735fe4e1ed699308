//! The validated spec: preconditions are carried in the types.

use std::collections::BTreeMap;
use std::fmt;

use super::{UBUNTU_2404_SSM_AMD64, UBUNTU_2404_SSM_ARM64};
use crate::core::cidr::Ipv4Net;

// ---------------------------------------------------------------------------------------------
/// A spec that passed validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterSpec {
    pub name: String,
    pub region: String,
    pub network: NetworkSpec,
    pub flavor: Flavor,
    pub addons: AddonsSpec,
    pub security: SecuritySpec,
    /// User tags added to every resource, after (and never overriding) the ownership tags.
    pub tags: BTreeMap<String, String>,
    /// How long the cluster lives (`ttl = "4h"`, or `up --ttl`): see [`crate::core::stamp`].
    pub ttl: Option<crate::core::stamp::Ttl>,
}

/// The observability add-ons: each its own instance in the cluster's VPC.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddonsSpec {
    pub monitoring: Option<AddonSpec>,
    pub logging: Option<AddonSpec>,
    pub tracing: Option<AddonSpec>,
}

/// Which add-on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Addon {
    Monitoring,
    Logging,
    Tracing,
}

impl Addon {
    pub const ALL: [Addon; 3] = [Addon::Monitoring, Addon::Logging, Addon::Tracing];

    pub fn as_str(self) -> &'static str {
        match self {
            Addon::Monitoring => "monitoring",
            Addon::Logging => "logging",
            Addon::Tracing => "tracing",
        }
    }

    /// The images it runs, with their pinned default versions (current stable lines, late 2026).
    pub fn default_versions(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Addon::Monitoring => &[("prometheus", "v3.7.3"), ("grafana", "12.3.0")],
            Addon::Logging => &[
                ("elasticsearch", "9.2.1"),
                ("kibana", "9.2.1"),
                ("fluent_bit", "4.2.0"),
            ],
            Addon::Tracing => &[("jaeger", "2.12.0")],
        }
    }

    pub fn default_instance_type(self) -> &'static str {
        match self {
            Addon::Monitoring => "t3.medium",
            // Elasticsearch wants memory: 2 GiB of heap and the page cache.
            Addon::Logging => "t3.large",
            Addon::Tracing => "t3.small",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddonSpec {
    pub instance_type: String,
    pub arch: Arch,
    /// The data volume (GiB).
    pub volume_gb: i32,
    /// Image name -> tag, defaults filled in.
    pub versions: BTreeMap<String, String>,
}

impl AddonsSpec {
    pub fn get(&self, a: Addon) -> Option<&AddonSpec> {
        match a {
            Addon::Monitoring => self.monitoring.as_ref(),
            Addon::Logging => self.logging.as_ref(),
            Addon::Tracing => self.tracing.as_ref(),
        }
    }

    pub fn enabled(&self) -> impl Iterator<Item = (Addon, &AddonSpec)> {
        Addon::ALL
            .into_iter()
            .filter_map(|a| self.get(a).map(|s| (a, s)))
    }

    pub fn any(&self) -> bool {
        self.enabled().next().is_some()
    }
}

/// The cluster security baseline: namespaces, default-deny NetworkPolicies, RBAC bindings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecuritySpec {
    pub namespaces: Vec<String>,
    /// A default-deny ingress NetworkPolicy (with allow-same-namespace) in each.
    pub default_deny: bool,
    /// Also deny egress, except DNS (an allow-DNS policy) and the namespace's own pods.
    pub default_deny_egress: bool,
    pub bindings: Vec<Binding>,
}

/// A RoleBinding of a built-in ClusterRole to a user or group, in namespaces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    pub subject: Subject,
    pub role: BindingRole,
    pub namespaces: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    User(String),
    Group(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindingRole {
    View,
    Edit,
    Admin,
}

impl BindingRole {
    pub fn as_str(self) -> &'static str {
        match self {
            BindingRole::View => "view",
            BindingRole::Edit => "edit",
            BindingRole::Admin => "admin",
        }
    }

    /// The EKS access policy with the same meaning.
    pub fn access_policy(self) -> AccessPolicy {
        match self {
            BindingRole::View => AccessPolicy::View,
            BindingRole::Edit => AccessPolicy::Edit,
            BindingRole::Admin => AccessPolicy::Admin,
        }
    }
}

/// What runs the Kubernetes control plane: the same network, other resource kinds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Flavor {
    /// kubeadm on EC2 instances provision launches.
    Kubeadm(KubeadmSpec),
    /// An EKS cluster and a managed node group.
    Eks(EksSpec),
}

impl ClusterSpec {
    pub fn kubeadm(&self) -> Option<&KubeadmSpec> {
        match &self.flavor {
            Flavor::Kubeadm(k) => Some(k),
            Flavor::Eks(_) => None,
        }
    }

    pub fn eks(&self) -> Option<&EksSpec> {
        match &self.flavor {
            Flavor::Eks(e) => Some(e),
            Flavor::Kubeadm(_) => None,
        }
    }

    /// `kubeadm` or `eks`, as the spec's `kind` says.
    pub fn kind(&self) -> &'static str {
        match self.flavor {
            Flavor::Kubeadm(_) => "kubeadm",
            Flavor::Eks(_) => "eks",
        }
    }

    /// The instance type the availability zones must offer.
    pub fn instance_type(&self) -> &str {
        match &self.flavor {
            Flavor::Kubeadm(k) => &k.instance_type,
            Flavor::Eks(e) => e
                .nodegroups
                .first()
                .and_then(|g| g.instance_types.first())
                .map_or("", String::as_str),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkSpec {
    pub vpc_cidr: Ipv4Net,
    /// One public subnet per availability zone, in AZ order.
    pub subnet_cidrs: Vec<Ipv4Net>,
    /// One private subnet per availability zone (behind one NAT gateway), or none.
    pub private_subnet_cidrs: Vec<Ipv4Net>,
    pub admin_cidrs: Vec<Ipv4Net>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubeadmSpec {
    pub version: KubernetesVersion,
    pub cni: Cni,
    pub instance_type: String,
    pub arch: Arch,
    /// At least one pool; the one of `kubeadm.workers` is [`DEFAULT_POOL`].
    pub pools: Vec<PoolSpec>,
    pub ami: AmiSource,
    pub key_name: Option<String>,
    pub ssh: bool,
    pub pod_cidr: Ipv4Net,
    pub service_cidr: Ipv4Net,
    pub root_volume_gb: i32,
    /// How often the control plane saves an etcd snapshot to the cluster's bucket (seconds).
    pub etcd_backup_interval: u32,
    /// How many days the bucket keeps a snapshot (its lifecycle rule).
    pub etcd_backup_days: u32,
}

impl KubeadmSpec {
    /// How many workers all pools want.
    pub fn workers(&self) -> u32 {
        self.pools.iter().map(|p| p.count).sum()
    }
}

/// The `[eks]` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EksSpec {
    /// `1.MINOR`.
    pub version: String,
    pub endpoint_public_access: bool,
    pub endpoint_private_access: bool,
    /// The managed node groups (`[[eks.nodegroups]]`, or the one `[eks.nodegroup]`, named
    /// `nodes`).
    pub nodegroups: Vec<NodegroupSpec>,
    pub access: Vec<AccessEntry>,
    pub addons: Vec<String>,
    /// The add-ons pinned to a version (`{ name, version }` entries of `addons`).
    pub addon_versions: BTreeMap<String, String>,
    /// `up --force`: upgrade even when EKS's upgrade insights report ERROR.
    pub skip_insights: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodegroupSpec {
    /// Its name in the spec; EKS's is `CLUSTER-NAME` (see `graph::nodegroup_name`).
    pub name: String,
    pub instance_types: Vec<String>,
    pub arch: Arch,
    pub min: u32,
    pub max: u32,
    pub desired: u32,
    pub spot: bool,
    pub disk_size: u32,
    pub labels: BTreeMap<String, String>,
    /// How many nodes a version update may replace at once (EKS's updateConfig); `None`:
    /// EKS's default (one node), not managed.
    pub max_unavailable: Option<MaxUnavailable>,
    pub taints: Vec<Taint>,
    /// In the public subnets (`subnets = "public"`); by default the private ones when there are.
    pub public: bool,
}

/// A node group's root volume unless `disk_size` says otherwise (GiB).
pub const DEFAULT_DISK_GB: u32 = 20;

/// The name of the one `[eks.nodegroup]`.
pub const DEFAULT_NODEGROUP: &str = "nodes";

/// A Kubernetes taint on a node group's nodes, with EKS's effect names.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Taint {
    pub key: String,
    pub value: Option<String>,
    /// `NO_SCHEDULE`, `NO_EXECUTE` or `PREFER_NO_SCHEDULE`.
    pub effect: String,
}

/// A taint effect as Kubernetes spells it (`NoSchedule`), from EKS's name (`NO_SCHEDULE`).
pub fn kubernetes_effect(eks: &str) -> Option<&'static str> {
    match eks {
        "NO_SCHEDULE" => Some("NoSchedule"),
        "NO_EXECUTE" => Some("NoExecute"),
        "PREFER_NO_SCHEDULE" => Some("PreferNoSchedule"),
        _ => None,
    }
}

/// A worker pool of a kubeadm cluster (`[[kubeadm.pools]]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolSpec {
    pub name: String,
    pub instance_type: String,
    pub count: u32,
    /// Set by the kubelet when it registers (`--node-labels`).
    pub labels: BTreeMap<String, String>,
    /// Set by `kubeadm join` (JoinConfiguration's nodeRegistration.taints).
    pub taints: Vec<Taint>,
    pub spot: bool,
    /// Indexes of the public subnets it spreads over (all by default).
    pub zones: Vec<usize>,
    /// A rolling replacement launches at most this many nodes beyond `count`...
    pub max_surge: u32,
    /// ...and takes at most this many out of service before their replacements are Ready.
    pub max_unavailable: u32,
}

/// The pool `kubeadm.workers` makes; its instances keep the ids `workers-N`.
pub const DEFAULT_POOL: &str = "workers";

/// EKS's updateConfig: at most this many nodes, or this percentage, unavailable at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaxUnavailable {
    Count(u32),
    Percent(u32),
}

impl std::fmt::Display for MaxUnavailable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MaxUnavailable::Count(n) => write!(f, "{n} node(s)"),
            MaxUnavailable::Percent(p) => write!(f, "{p}%"),
        }
    }
}

/// An EKS access entry: a principal and an access policy, cluster-wide or for namespaces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessEntry {
    pub principal_arn: String,
    pub policy: AccessPolicy,
    /// Empty: cluster-wide.
    pub namespaces: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessPolicy {
    ClusterAdmin,
    Admin,
    Edit,
    View,
}

impl AccessPolicy {
    /// The EKS access policy ARN suffix (`arn:aws:eks::aws:cluster-access-policy/…`).
    pub fn eks_policy(self) -> &'static str {
        match self {
            AccessPolicy::ClusterAdmin => "AmazonEKSClusterAdminPolicy",
            AccessPolicy::Admin => "AmazonEKSAdminPolicy",
            AccessPolicy::Edit => "AmazonEKSEditPolicy",
            AccessPolicy::View => "AmazonEKSViewPolicy",
        }
    }
}

/// EKS versions this release accepts (standard and extended support around late 2026).
pub const EKS_MINORS: std::ops::RangeInclusive<u32> = 32..=36;
pub const DEFAULT_EKS_VERSION: &str = "1.36";
/// The add-ons a new EKS cluster gets unless the spec lists its own.
pub const DEFAULT_EKS_ADDONS: [&str; 5] = [
    "vpc-cni",
    "coredns",
    "kube-proxy",
    "eks-pod-identity-agent",
    "aws-ebs-csi-driver",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cni {
    Calico,
    Flannel,
}

impl Cni {
    pub fn as_str(self) -> &'static str {
        match self {
            Cni::Calico => "calico",
            Cni::Flannel => "flannel",
        }
    }

    /// The pod CIDR each CNI's stock manifest assumes.
    pub fn default_pod_cidr(self) -> &'static str {
        match self {
            Cni::Calico => "192.168.0.0/16",
            Cni::Flannel => "10.244.0.0/16",
        }
    }

    /// Whether the CNI enforces Kubernetes NetworkPolicy.
    pub fn enforces_network_policy(self) -> bool {
        matches!(self, Cni::Calico)
    }
}

impl AmiSource {
    /// Ubuntu 24.04 LTS from Canonical's public SSM parameter.
    pub fn ubuntu(arch: Arch) -> AmiSource {
        AmiSource::SsmParameter(
            match arch {
                Arch::Amd64 => UBUNTU_2404_SSM_AMD64,
                Arch::Arm64 => UBUNTU_2404_SSM_ARM64,
            }
            .to_string(),
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Arch {
    Amd64,
    Arm64,
}

/// Where the node image comes from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AmiSource {
    Id(String),
    SsmParameter(String),
}

/// `1.MINOR` (latest patch of that minor at boot) or `1.MINOR.PATCH` (pinned).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KubernetesVersion {
    pub minor: u32,
    pub patch: Option<u32>,
}

impl KubernetesVersion {
    /// The pkgs.k8s.io repository path component, e.g. `v1.36`.
    pub fn repo_minor(&self) -> String {
        format!("v1.{}", self.minor)
    }
}

impl fmt::Display for KubernetesVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.patch {
            Some(p) => write!(f, "1.{}.{}", self.minor, p),
            None => write!(f, "1.{}", self.minor),
        }
    }
}
