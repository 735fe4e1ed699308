//! The cluster spec: the TOML a user writes, and its validation into a [`ClusterSpec`].
//!
//! Parsing keeps the byte span of every value ([`toml::Spanned`]) so that every error names the
//! field *and* the file and line it came from. Validation runs completely before any AWS call
//! and reports every problem it finds, not only the first.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use toml::Spanned;

use super::cidr::Ipv4Net;

/// The default Ubuntu 24.04 LTS image, resolved from Canonical's public SSM parameter.
pub const UBUNTU_2404_SSM_AMD64: &str =
    "/aws/service/canonical/ubuntu/server/24.04/stable/current/amd64/hvm/ebs-gp3/ami-id";
pub const UBUNTU_2404_SSM_ARM64: &str =
    "/aws/service/canonical/ubuntu/server/24.04/stable/current/arm64/hvm/ebs-gp3/ami-id";

/// The Kubernetes minors this release knows how to bootstrap (kubeadm config `v1beta4`).
pub const SUPPORTED_MINORS: std::ops::RangeInclusive<u32> = 31..=37;
pub const DEFAULT_KUBERNETES_VERSION: &str = "1.36";
pub const DEFAULT_SERVICE_CIDR: &str = "10.96.0.0/12";

// ---------------------------------------------------------------------------------------------
// Raw spec, exactly as written.

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSpec {
    name: Spanned<String>,
    region: Spanned<String>,
    kind: Spanned<String>,
    network: Spanned<RawNetwork>,
    kubeadm: Option<Spanned<RawKubeadm>>,
    eks: Option<Spanned<RawEks>>,
    addons: Option<Spanned<RawAddons>>,
    security: Option<Spanned<RawSecurity>>,
    #[serde(default)]
    tags: BTreeMap<String, Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAddons {
    monitoring: Option<Spanned<RawAddon>>,
    logging: Option<Spanned<RawAddon>>,
    tracing: Option<Spanned<RawAddon>>,
}

/// `monitoring = true`, or a table.
#[derive(Debug)]
enum RawAddon {
    On(bool),
    Table(RawAddonTable),
}

/// By hand rather than `#[serde(untagged)]`, whose only error is "data did not match any
/// variant": a table's own error (which key, what type) is kept.
impl<'de> Deserialize<'de> for RawAddon {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        match toml::Value::deserialize(d)? {
            toml::Value::Boolean(b) => Ok(RawAddon::On(b)),
            v @ toml::Value::Table(_) => v
                .try_into::<RawAddonTable>()
                .map(RawAddon::Table)
                .map_err(|e| D::Error::custom(format!("{e}").trim_end().replace('\n', " "))),
            other => Err(D::Error::custom(format!(
                "`true`, `false` or a table (enabled, instance_type, volume_gb, versions), not {} {}",
                if other.type_str().starts_with(['a', 'e', 'i', 'o', 'u']) {
                    "an"
                } else {
                    "a"
                },
                other.type_str()
            ))),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAddonTable {
    #[serde(default = "yes")]
    enabled: bool,
    instance_type: Option<String>,
    volume_gb: Option<i64>,
    #[serde(default)]
    versions: BTreeMap<String, String>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSecurity {
    namespaces: Option<Spanned<Vec<Spanned<String>>>>,
    default_deny: Option<Spanned<bool>>,
    default_deny_egress: Option<Spanned<bool>>,
    #[serde(default)]
    bindings: Vec<Spanned<RawBinding>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBinding {
    user: Option<Spanned<String>>,
    group: Option<Spanned<String>>,
    role: Spanned<String>,
    namespaces: Spanned<Vec<Spanned<String>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEks {
    version: Option<Spanned<String>>,
    endpoint_public_access: Option<Spanned<bool>>,
    endpoint_private_access: Option<Spanned<bool>>,
    nodegroup: Spanned<RawNodegroup>,
    #[serde(default)]
    access: Vec<Spanned<RawAccess>>,
    addons: Option<Spanned<Vec<Spanned<String>>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNodegroup {
    instance_types: Spanned<Vec<Spanned<String>>>,
    min: Spanned<i64>,
    max: Spanned<i64>,
    desired: Spanned<i64>,
    capacity_type: Option<Spanned<String>>,
    disk_size: Option<Spanned<i64>>,
    #[serde(default)]
    labels: BTreeMap<String, Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAccess {
    principal_arn: Spanned<String>,
    policy: Spanned<String>,
    namespaces: Option<Spanned<Vec<Spanned<String>>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNetwork {
    vpc_cidr: Spanned<String>,
    availability_zones: Option<Spanned<i64>>,
    subnet_prefix: Option<Spanned<i64>>,
    admin_cidrs: Spanned<Vec<Spanned<String>>>,
    private_subnets: Option<Spanned<bool>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKubeadm {
    kubernetes_version: Option<Spanned<String>>,
    cni: Spanned<String>,
    instance_type: Spanned<String>,
    workers: Spanned<i64>,
    ami: Option<Spanned<String>>,
    key_name: Option<Spanned<String>>,
    ssh: Option<Spanned<bool>>,
    pod_cidr: Option<Spanned<String>>,
    root_volume_gb: Option<Spanned<i64>>,
}

// ---------------------------------------------------------------------------------------------
// Validated spec: preconditions are carried in the types.

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
                .nodegroup
                .instance_types
                .first()
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
    /// At least one.
    pub workers: u32,
    pub ami: AmiSource,
    pub key_name: Option<String>,
    pub ssh: bool,
    pub pod_cidr: Ipv4Net,
    pub service_cidr: Ipv4Net,
    pub root_volume_gb: i32,
}

/// The `[eks]` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EksSpec {
    /// `1.MINOR`.
    pub version: String,
    pub endpoint_public_access: bool,
    pub endpoint_private_access: bool,
    pub nodegroup: NodegroupSpec,
    pub access: Vec<AccessEntry>,
    pub addons: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodegroupSpec {
    pub instance_types: Vec<String>,
    pub arch: Arch,
    pub min: u32,
    pub max: u32,
    pub desired: u32,
    pub spot: bool,
    pub disk_size: u32,
    pub labels: BTreeMap<String, String>,
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
pub const EKS_MINORS: std::ops::RangeInclusive<u32> = 30..=36;
pub const DEFAULT_EKS_VERSION: &str = "1.35";
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
#[derive(Debug, Clone, PartialEq, Eq)]
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

/// Something in the spec that is allowed but worth saying.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecWarning {
    pub field: String,
    pub message: String,
}

/// One problem with a spec, located in its file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecIssue {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub field: String,
    pub message: String,
}

impl fmt::Display for SpecIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}: {}",
            self.file, self.line, self.column, self.field, self.message
        )
    }
}

/// Every problem found in a spec.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct SpecError {
    pub issues: Vec<SpecIssue>,
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.issues.len();
        write!(
            f,
            "invalid cluster spec ({n} problem{})",
            if n == 1 { "" } else { "s" }
        )?;
        for issue in &self.issues {
            write!(f, "\n  {issue}")?;
        }
        Ok(())
    }
}

impl SpecError {
    /// The fields named by the issues, in order (for tests and JSON output).
    pub fn fields(&self) -> Vec<&str> {
        self.issues.iter().map(|i| i.field.as_str()).collect()
    }
}

/// Parses and validates a spec. `file` is only used in messages.
///
/// # Errors
/// A [`SpecError`] listing every problem, each with its field, line and column.
pub fn parse(file: &str, text: &str) -> Result<(ClusterSpec, Vec<SpecWarning>), SpecError> {
    let mut v = Validator {
        file,
        text,
        issues: Vec::new(),
        warnings: Vec::new(),
    };
    let raw: RawSpec = match toml::from_str(text) {
        Ok(raw) => raw,
        Err(e) => {
            let span = e.span().unwrap_or(0..0);
            let field = field_for_parse_error(text, span.start, e.message());
            v.push(span, &field, e.message().trim().to_string());
            return Err(SpecError { issues: v.issues });
        }
    };
    let spec = v.validate(raw);
    match spec {
        Some(spec) if v.issues.is_empty() => Ok((spec, v.warnings)),
        _ => Err(SpecError { issues: v.issues }),
    }
}

struct Validator<'a> {
    file: &'a str,
    text: &'a str,
    issues: Vec<SpecIssue>,
    warnings: Vec<SpecWarning>,
}

impl Validator<'_> {
    fn push(&mut self, span: std::ops::Range<usize>, field: &str, message: String) {
        let (line, column) = line_col(self.text, span.start);
        self.issues.push(SpecIssue {
            file: self.file.to_string(),
            line,
            column,
            field: field.to_string(),
            message,
        });
    }

    fn err<T>(&mut self, at: &Spanned<T>, field: &str, message: impl Into<String>) {
        self.push(at.span(), field, message.into());
    }

    fn warn(&mut self, field: &str, message: impl Into<String>) {
        self.warnings.push(SpecWarning {
            field: field.to_string(),
            message: message.into(),
        });
    }

    fn cidr(&mut self, s: &Spanned<String>, field: &str) -> Option<Ipv4Net> {
        match s.get_ref().parse::<Ipv4Net>() {
            Ok(n) => Some(n),
            Err(e) => {
                self.err(s, field, e.to_string());
                None
            }
        }
    }

    fn validate(&mut self, raw: RawSpec) -> Option<ClusterSpec> {
        let name = raw.name.get_ref().clone();
        if let Err(m) = check_cluster_name(&name) {
            self.err(&raw.name, "name", m);
        }
        let region = raw.region.get_ref().clone();
        if !is_region(&region) {
            self.err(
                &raw.region,
                "region",
                format!("`{region}` is not an AWS region name (e.g. us-east-1)"),
            );
        }
        match raw.kind.get_ref().as_str() {
            "kubeadm" | "eks" => {}
            other => self.err(
                &raw.kind,
                "kind",
                format!("unknown kind `{other}`: expected \"kubeadm\" or \"eks\""),
            ),
        }
        let tags = self.tags(&raw.tags);
        let network = self.network(raw.network.get_ref());
        let eks = match (&raw.eks, raw.kind.get_ref().as_str()) {
            (Some(e), "eks") => self.eks(e.get_ref(), network.as_ref()),
            (Some(e), _) => {
                self.err(e, "eks", "the [eks] table goes with kind = \"eks\"");
                None
            }
            (None, "eks") => {
                self.push(
                    0..0,
                    "eks",
                    "missing table [eks], required when kind = \"eks\"".into(),
                );
                None
            }
            (None, _) => None,
        };
        if let (Some(k), "eks") = (&raw.kubeadm, raw.kind.get_ref().as_str()) {
            self.err(
                k,
                "kubeadm",
                "the [kubeadm] table goes with kind = \"kubeadm\"",
            );
        }
        let kubeadm = match &raw.kubeadm {
            Some(k) => self.kubeadm(k.get_ref(), network.as_ref()),
            None => {
                if raw.kind.get_ref() == "kubeadm" {
                    self.push(
                        0..0,
                        "kubeadm",
                        "missing table [kubeadm], required when kind = \"kubeadm\"".into(),
                    );
                }
                None
            }
        };
        if let Some(p) = raw.network.get_ref().private_subnets.as_ref()
            && *p.get_ref()
            && raw.kind.get_ref() == "kubeadm"
        {
            self.err(
                    p,
                    "network.private_subnets",
                    "private subnets (behind a NAT gateway) are for kind = \"eks\"; kubeadm nodes live in the public subnets",
                );
        }
        let addons = match &raw.addons {
            Some(a) => self.addons(a.get_ref()),
            None => AddonsSpec::default(),
        };
        let enforces = match (raw.kind.get_ref().as_str(), &kubeadm) {
            // The VPC CNI's network policy agent is on (vpc-cni's enableNetworkPolicy).
            ("eks", _) => Some(true),
            (_, Some(k)) => Some(k.cni.enforces_network_policy()),
            _ => None,
        };
        let security = match &raw.security {
            Some(sec) => self.security(sec.get_ref(), enforces, raw.kind.get_ref() == "eks"),
            None => SecuritySpec::default(),
        };
        let mut eks = eks;
        if let Some(e) = eks.as_mut() {
            // On EKS, bindings are access entries scoped to their namespaces.
            for b in &security.bindings {
                if let Subject::User(arn) = &b.subject {
                    if e.access.iter().any(|a| &a.principal_arn == arn) {
                        let at = raw
                            .security
                            .as_ref()
                            .and_then(|sec| {
                                sec.get_ref().bindings.iter().find_map(|b| {
                                    b.get_ref().user.as_ref().filter(|u| u.get_ref() == arn)
                                })
                            })
                            .map_or(0..0, |u| u.span());
                        self.push(
                            at,
                            "security.bindings",
                            format!("`{arn}` is in both [[eks.access]] and [[security.bindings]]: list it once"),
                        );
                    } else {
                        e.access.push(AccessEntry {
                            principal_arn: arn.clone(),
                            policy: b.role.access_policy(),
                            namespaces: b.namespaces.clone(),
                        });
                    }
                }
            }
        }
        let flavor = match raw.kind.get_ref().as_str() {
            "eks" => Flavor::Eks(eks?),
            _ => Flavor::Kubeadm(kubeadm?),
        };
        Some(ClusterSpec {
            name,
            region,
            network: network?,
            flavor,
            addons,
            security,
            tags,
        })
    }

    fn addons(&mut self, raw: &RawAddons) -> AddonsSpec {
        let mut out = AddonsSpec::default();
        for (addon, entry) in [
            (Addon::Monitoring, &raw.monitoring),
            (Addon::Logging, &raw.logging),
            (Addon::Tracing, &raw.tracing),
        ] {
            let Some(entry) = entry else { continue };
            let field = format!("addons.{}", addon.as_str());
            let table = match entry.get_ref() {
                RawAddon::On(false) => continue,
                RawAddon::On(true) => None,
                RawAddon::Table(t) if !t.enabled => continue,
                RawAddon::Table(t) => Some(t),
            };
            let instance_type = table
                .and_then(|t| t.instance_type.clone())
                .unwrap_or_else(|| addon.default_instance_type().to_string());
            let arch = match check_instance_type(&instance_type) {
                Ok(a) => a,
                Err(m) => {
                    let m = m.replace("kubeadm needs", "an add-on instance needs");
                    self.err(entry, &format!("{field}.instance_type"), m);
                    Arch::Amd64
                }
            };
            let volume_gb = table.and_then(|t| t.volume_gb).unwrap_or(30);
            if !(8..=16384).contains(&volume_gb) {
                self.err(
                    entry,
                    &format!("{field}.volume_gb"),
                    format!("{volume_gb} GiB: 8 to 16384"),
                );
            }
            let mut versions: BTreeMap<String, String> = addon
                .default_versions()
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            for (image, tag) in table.map(|t| &t.versions).into_iter().flatten() {
                if !versions.contains_key(image) {
                    let known: Vec<&str> =
                        addon.default_versions().iter().map(|(k, _)| *k).collect();
                    self.err(
                        entry,
                        &format!("{field}.versions.{image}"),
                        format!(
                            "unknown image `{image}`: {} runs {}",
                            addon.as_str(),
                            known.join(", ")
                        ),
                    );
                } else if !is_image_tag(tag) {
                    self.err(
                        entry,
                        &format!("{field}.versions.{image}"),
                        format!(
                            "`{tag}` is not a pinned image tag (e.g. 1.2.3 or v1.2.3; not `latest`)"
                        ),
                    );
                } else {
                    versions.insert(image.clone(), tag.clone());
                }
            }
            let spec = AddonSpec {
                instance_type,
                arch,
                volume_gb: volume_gb.clamp(8, 16384) as i32,
                versions,
            };
            match addon {
                Addon::Monitoring => out.monitoring = Some(spec),
                Addon::Logging => out.logging = Some(spec),
                Addon::Tracing => out.tracing = Some(spec),
            }
        }
        out
    }

    fn security(&mut self, raw: &RawSecurity, enforces: Option<bool>, eks: bool) -> SecuritySpec {
        let mut namespaces = Vec::new();
        if let Some(ns) = &raw.namespaces {
            for (i, n) in ns.get_ref().iter().enumerate() {
                let field = format!("security.namespaces[{i}]");
                let name = n.get_ref();
                if !is_dns_label(name) {
                    self.err(n, &field, format!("`{name}` is not a Kubernetes namespace name (lower-case letters, digits and -, at most 63)"));
                } else if name.starts_with("kube-") || name == "default" {
                    self.err(n, &field, format!("`{name}` is a system namespace: the baseline is for your own namespaces"));
                } else if namespaces.contains(name) {
                    self.err(n, &field, format!("`{name}` is listed twice"));
                }
                namespaces.push(name.clone());
            }
        }
        let default_deny = match (&raw.default_deny, enforces) {
            (Some(d), Some(false)) if *d.get_ref() => {
                self.err(
                    d,
                    "security.default_deny",
                    "Flannel does not enforce NetworkPolicy, so a default-deny policy would protect nothing: use cni = \"calico\", or set default_deny = false",
                );
                false
            }
            (Some(d), _) => *d.get_ref(),
            (None, Some(e)) => e,
            (None, None) => false,
        };
        let default_deny_egress = match &raw.default_deny_egress {
            Some(d) if *d.get_ref() && !default_deny => {
                self.err(
                    d,
                    "security.default_deny_egress",
                    "goes with default_deny (and a CNI that enforces NetworkPolicy)",
                );
                false
            }
            Some(d) => *d.get_ref(),
            None => false,
        };
        if raw.default_deny.is_none() && enforces == Some(false) && !namespaces.is_empty() {
            self.warn(
                "security.default_deny",
                "Flannel does not enforce NetworkPolicy: the namespaces get no default-deny policy",
            );
        }
        let mut bindings = Vec::new();
        for (i, b) in raw.bindings.iter().enumerate() {
            let field = format!("security.bindings[{i}]");
            let r = b.get_ref();
            let subject = match (&r.user, &r.group) {
                (Some(u), None) => {
                    let name = u.get_ref();
                    if eks && !is_principal_arn(name) {
                        self.err(u, &format!("{field}.user"), format!("`{name}` is not an IAM user or role ARN: on EKS a binding becomes an access entry of that principal"));
                    } else if name.is_empty() || name.len() > 253 {
                        self.err(u, &format!("{field}.user"), "1 to 253 characters");
                    }
                    Some(Subject::User(name.clone()))
                }
                (None, Some(g)) => {
                    let name = g.get_ref();
                    if eks {
                        self.err(g, &format!("{field}.group"), "EKS access entries are per IAM principal: give `user` an IAM user or role ARN");
                    } else if name.is_empty() || name.len() > 253 || name.starts_with("system:") {
                        self.err(
                            g,
                            &format!("{field}.group"),
                            format!("`{name}`: 1 to 253 characters, not a system: group"),
                        );
                    }
                    Some(Subject::Group(name.clone()))
                }
                _ => {
                    self.err(b, &field, "give exactly one of `user` or `group`");
                    None
                }
            };
            let role = match r.role.get_ref().as_str() {
                "view" => Some(BindingRole::View),
                "edit" => Some(BindingRole::Edit),
                "admin" => Some(BindingRole::Admin),
                other => {
                    self.err(&r.role, &format!("{field}.role"), format!("unknown role `{other}`: expected view, edit or admin (the built-in ClusterRoles)"));
                    None
                }
            };
            let mut ns = Vec::new();
            if r.namespaces.get_ref().is_empty() {
                self.err(&r.namespaces, &format!("{field}.namespaces"), "at least one namespace: bindings are namespaced (cluster-wide access goes in [[eks.access]] or the admin kubeconfig)");
            }
            for n in r.namespaces.get_ref() {
                if !is_dns_label(n.get_ref()) {
                    self.err(
                        n,
                        &format!("{field}.namespaces"),
                        format!("`{}` is not a Kubernetes namespace name", n.get_ref()),
                    );
                }
                ns.push(n.get_ref().clone());
            }
            if let (Some(subject), Some(role)) = (subject, role) {
                bindings.push(Binding {
                    subject,
                    role,
                    namespaces: ns,
                });
            }
        }
        SecuritySpec {
            namespaces,
            default_deny,
            default_deny_egress,
            bindings,
        }
    }

    fn tags(&mut self, raw: &BTreeMap<String, Spanned<String>>) -> BTreeMap<String, String> {
        if raw.len() > 40 {
            self.push(0..0, "tags", format!("{} tags given; at most 40 (AWS allows 50 per resource and provision uses up to 10)", raw.len()));
        }
        let mut out = BTreeMap::new();
        for (k, v) in raw {
            let field = format!("tags.{k}");
            let lower = k.to_ascii_lowercase();
            if k.is_empty() || k.len() > 128 {
                self.err(v, &field, "tag keys are 1 to 128 characters");
            } else if lower.starts_with("aws:")
                || lower.starts_with("provision:")
                || lower.starts_with("kubernetes.io/cluster/")
                || lower == "name"
            {
                self.err(v, &field, format!("tag key `{k}` is reserved (aws:*, provision:*, kubernetes.io/cluster/*, Name)"));
            }
            if v.get_ref().len() > 256 {
                self.err(v, &field, "tag values are at most 256 characters");
            }
            out.insert(k.clone(), v.get_ref().clone());
        }
        out
    }

    fn network(&mut self, n: &RawNetwork) -> Option<NetworkSpec> {
        let vpc = self.cidr(&n.vpc_cidr, "network.vpc_cidr");
        if let Some(vpc) = vpc
            && !(16..=28).contains(&vpc.prefix())
        {
            self.err(
                &n.vpc_cidr,
                "network.vpc_cidr",
                format!("`{vpc}`: AWS VPC blocks are /16 to /28"),
            );
        }
        let azs = match &n.availability_zones {
            None => 2,
            Some(a) => {
                let v = *a.get_ref();
                if !(2..=6).contains(&v) {
                    self.err(
                        a,
                        "network.availability_zones",
                        format!("{v} is out of range: 2 to 6 availability zones"),
                    );
                }
                v.clamp(2, 6) as usize
            }
        };
        let private = n.private_subnets.as_ref().is_some_and(|p| *p.get_ref());
        let carved = if private { 2 * azs } else { azs };
        let mut subnets = None;
        if let Some(vpc) = vpc.filter(|v| (16..=28).contains(&v.prefix())) {
            let (prefix, at) = match &n.subnet_prefix {
                None => ((vpc.prefix() + 4).min(28), None),
                Some(p) => (p.get_ref().clamp(&0, &32).to_owned() as u8, Some(p)),
            };
            if let Some(p) = at {
                let want = *p.get_ref();
                if !(16..=28).contains(&want) || want < i64::from(vpc.prefix()) {
                    self.err(p, "network.subnet_prefix", format!("/{want} does not fit: subnets are /16 to /28 and no larger than the VPC (/{})", vpc.prefix()));
                }
            }
            match vpc.carve(prefix, carved) {
                Some(s) => subnets = Some(s),
                None => {
                    let (span, field) = match (&n.subnet_prefix, &n.availability_zones) {
                        (Some(p), _) => (p.span(), "network.subnet_prefix"),
                        (None, Some(a)) => (a.span(), "network.availability_zones"),
                        (None, None) => (n.vpc_cidr.span(), "network.vpc_cidr"),
                    };
                    self.push(
                        span,
                        field,
                        format!("{carved} subnets of /{prefix} do not fit in {vpc}"),
                    );
                }
            }
        }
        let mut admin = Vec::new();
        if n.admin_cidrs.get_ref().is_empty() {
            self.err(
                &n.admin_cidrs,
                "network.admin_cidrs",
                "at least one CIDR is needed: the API server (6443) is reachable only from these",
            );
        }
        for (i, c) in n.admin_cidrs.get_ref().iter().enumerate() {
            let field = format!("network.admin_cidrs[{i}]");
            if let Some(net) = self.cidr(c, &field) {
                if admin.contains(&net) {
                    self.err(c, &field, format!("`{net}` is listed twice"));
                } else {
                    if net.is_anywhere() {
                        self.warn(&field, "0.0.0.0/0 opens the Kubernetes API (and SSH, if enabled) to the whole internet");
                    }
                    admin.push(net);
                }
            }
        }
        let mut public: Vec<Ipv4Net> = subnets?;
        let private_cidrs = public.split_off(azs);
        Some(NetworkSpec {
            vpc_cidr: vpc?,
            subnet_cidrs: public,
            private_subnet_cidrs: private_cidrs,
            admin_cidrs: admin,
        })
    }

    fn eks(&mut self, e: &RawEks, net: Option<&NetworkSpec>) -> Option<EksSpec> {
        let version = match &e.version {
            None => Some(DEFAULT_EKS_VERSION.to_string()),
            Some(v) => {
                let t = v.get_ref();
                let minor = t
                    .strip_prefix("1.")
                    .and_then(|m| m.parse::<u32>().ok())
                    .filter(|m| EKS_MINORS.contains(m));
                if minor.is_none() || t.matches('.').count() != 1 {
                    self.err(v, "eks.version", format!("`{t}` is not an EKS version this release supports: 1.{} to 1.{} (minor only, e.g. \"{DEFAULT_EKS_VERSION}\")", EKS_MINORS.start(), EKS_MINORS.end()));
                }
                minor.map(|m| format!("1.{m}"))
            }
        };
        let public = e
            .endpoint_public_access
            .as_ref()
            .is_none_or(|b| *b.get_ref());
        // On by default: the nodes reach the API server inside the VPC. With the private
        // endpoint off they would go through the public one, which admits only admin_cidrs.
        let private = e
            .endpoint_private_access
            .as_ref()
            .is_none_or(|b| *b.get_ref());
        let world_open = net.is_some_and(|n| n.admin_cidrs.iter().any(Ipv4Net::is_anywhere));
        if let Some(p) = e.endpoint_private_access.as_ref().filter(|_| !private)
            && public
            && !world_open
        {
            self.err(
                p,
                "eks.endpoint_private_access",
                "the nodes could not reach the API server: the public endpoint admits only network.admin_cidrs; keep the private endpoint on (the default)",
            );
        }
        if !public && !private {
            let span = e.endpoint_public_access.as_ref().map_or(0..0, |b| b.span());
            self.push(
                span,
                "eks.endpoint_public_access",
                "the API endpoint must be public, private or both".into(),
            );
        }
        if public && net.is_some_and(|n| n.admin_cidrs.iter().any(Ipv4Net::is_anywhere)) {
            self.warn(
                "eks.endpoint_public_access",
                "the public API endpoint will accept 0.0.0.0/0 (network.admin_cidrs)",
            );
        }
        let nodegroup = self.nodegroup(&e.nodegroup);
        let mut access = Vec::new();
        let mut principals = Vec::new();
        for (i, a) in e.access.iter().enumerate() {
            let a = a.get_ref();
            let field = format!("eks.access[{i}]");
            let arn = a.principal_arn.get_ref();
            if !is_principal_arn(arn) {
                self.err(&a.principal_arn, &format!("{field}.principal_arn"), format!("`{arn}` is not an IAM role or user ARN (arn:aws:iam::123456789012:role/NAME)"));
            } else if principals.contains(arn) {
                self.err(
                    &a.principal_arn,
                    &format!("{field}.principal_arn"),
                    format!("`{arn}` is listed twice"),
                );
            }
            principals.push(arn.clone());
            let policy = match a.policy.get_ref().as_str() {
                "cluster-admin" => Some(AccessPolicy::ClusterAdmin),
                "admin" => Some(AccessPolicy::Admin),
                "edit" => Some(AccessPolicy::Edit),
                "view" => Some(AccessPolicy::View),
                other => {
                    self.err(
                        &a.policy,
                        &format!("{field}.policy"),
                        format!(
                            "unknown policy `{other}`: expected cluster-admin, admin, edit or view"
                        ),
                    );
                    None
                }
            };
            let mut namespaces = Vec::new();
            if let Some(ns) = &a.namespaces {
                if ns.get_ref().is_empty() {
                    self.err(
                        ns,
                        &format!("{field}.namespaces"),
                        "an empty list: leave namespaces out for cluster-wide access",
                    );
                }
                for n in ns.get_ref() {
                    if !is_dns_label(n.get_ref()) {
                        self.err(
                            n,
                            &format!("{field}.namespaces"),
                            format!("`{}` is not a Kubernetes namespace name", n.get_ref()),
                        );
                    }
                    namespaces.push(n.get_ref().clone());
                }
            }
            if let Some(policy) = policy {
                access.push(AccessEntry {
                    principal_arn: arn.clone(),
                    policy,
                    namespaces,
                });
            }
        }
        let addons = match &e.addons {
            None => DEFAULT_EKS_ADDONS.iter().map(|a| a.to_string()).collect(),
            Some(list) => {
                let mut out: Vec<String> = Vec::new();
                for a in list.get_ref() {
                    let name = a.get_ref();
                    if !is_dns_label(name) {
                        self.err(
                            a,
                            "eks.addons",
                            format!("`{name}` is not an EKS add-on name"),
                        );
                    } else if out.contains(name) {
                        self.err(a, "eks.addons", format!("`{name}` is listed twice"));
                    } else {
                        out.push(name.clone());
                    }
                }
                out
            }
        };
        Some(EksSpec {
            version: version?,
            endpoint_public_access: public,
            endpoint_private_access: private,
            nodegroup: nodegroup?,
            access,
            addons,
        })
    }

    fn nodegroup(&mut self, ng: &Spanned<RawNodegroup>) -> Option<NodegroupSpec> {
        let g = ng.get_ref();
        let types = g.instance_types.get_ref();
        if types.is_empty() || types.len() > 20 {
            self.err(
                &g.instance_types,
                "eks.nodegroup.instance_types",
                "1 to 20 instance types",
            );
        }
        let mut arch = None;
        for t in types {
            match check_instance_type(t.get_ref()) {
                Ok(a) if arch.is_some_and(|b| b != a) => {
                    self.err(t, "eks.nodegroup.instance_types", "a node group's instance types must share one architecture (x86_64 or arm64)");
                }
                Ok(a) => arch = Some(a),
                Err(m) => self.err(t, "eks.nodegroup.instance_types", m),
            }
        }
        let (min, max, desired) = (*g.min.get_ref(), *g.max.get_ref(), *g.desired.get_ref());
        if !(0..=1000).contains(&min) {
            self.err(&g.min, "eks.nodegroup.min", format!("{min}: 0 to 1000"));
        }
        if !(1..=1000).contains(&max) {
            self.err(&g.max, "eks.nodegroup.max", format!("{max}: 1 to 1000"));
        }
        if desired < min || desired > max {
            self.err(
                &g.desired,
                "eks.nodegroup.desired",
                format!("{desired} is not between min ({min}) and max ({max})"),
            );
        }
        let spot = match g.capacity_type.as_ref().map(|c| c.get_ref().as_str()) {
            None | Some("ON_DEMAND") => false,
            Some("SPOT") => true,
            Some(other) => {
                let c = g.capacity_type.as_ref().expect("some");
                self.err(
                    c,
                    "eks.nodegroup.capacity_type",
                    format!("`{other}`: expected \"ON_DEMAND\" or \"SPOT\""),
                );
                false
            }
        };
        let disk = match &g.disk_size {
            None => 20,
            Some(d) => {
                let v = *d.get_ref();
                if !(20..=16384).contains(&v) {
                    self.err(
                        d,
                        "eks.nodegroup.disk_size",
                        format!("{v} GiB: 20 to 16384"),
                    );
                }
                v.clamp(20, 16384)
            }
        };
        let mut labels = BTreeMap::new();
        for (k, v) in &g.labels {
            if !is_label_key(k) {
                self.err(
                    v,
                    &format!("eks.nodegroup.labels.{k}"),
                    format!("`{k}` is not a Kubernetes label key"),
                );
            }
            let val = v.get_ref();
            if val.len() > 63
                || !val
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            {
                self.err(v, &format!("eks.nodegroup.labels.{k}"), format!("`{val}` is not a Kubernetes label value (63 characters of A-Z a-z 0-9 - _ .)"));
            }
            labels.insert(k.clone(), val.clone());
        }
        let ok = (0..=1000).contains(&min)
            && (1..=1000).contains(&max)
            && (min..=max).contains(&desired);
        Some(NodegroupSpec {
            instance_types: types.iter().map(|t| t.get_ref().clone()).collect(),
            arch: arch?,
            min: u32::try_from(min).ok().filter(|_| ok)?,
            max: u32::try_from(max).ok()?,
            desired: u32::try_from(desired).ok()?,
            spot,
            disk_size: u32::try_from(disk).ok()?,
            labels,
        })
    }

    fn kubeadm(&mut self, k: &RawKubeadm, net: Option<&NetworkSpec>) -> Option<KubeadmSpec> {
        let version = match &k.kubernetes_version {
            None => {
                Some(parse_version(DEFAULT_KUBERNETES_VERSION).expect("default version parses"))
            }
            Some(v) => match parse_version(v.get_ref()) {
                Ok(ver) => Some(ver),
                Err(m) => {
                    self.err(v, "kubeadm.kubernetes_version", m);
                    None
                }
            },
        };
        let cni = match k.cni.get_ref().as_str() {
            "calico" => Some(Cni::Calico),
            "flannel" => Some(Cni::Flannel),
            other => {
                self.err(
                    &k.cni,
                    "kubeadm.cni",
                    format!("unknown CNI `{other}`: expected \"calico\" or \"flannel\""),
                );
                None
            }
        };
        let itype = k.instance_type.get_ref().clone();
        let arch = match check_instance_type(&itype) {
            Ok(a) => Some(a),
            Err(m) => {
                self.err(&k.instance_type, "kubeadm.instance_type", m);
                None
            }
        };
        let workers = *k.workers.get_ref();
        if !(1..=1000).contains(&workers) {
            self.err(&k.workers, "kubeadm.workers", format!("{workers} workers: a kubeadm cluster needs 1 to 1000 workers (the control plane is tainted against workloads)"));
        }
        let ami = match &k.ami {
            None => Some(AmiSource::SsmParameter(
                match arch {
                    Some(Arch::Arm64) => UBUNTU_2404_SSM_ARM64,
                    _ => UBUNTU_2404_SSM_AMD64,
                }
                .to_string(),
            )),
            Some(a) => {
                let s = a.get_ref();
                if let Some(p) = s.strip_prefix("resolve:ssm:") {
                    if p.starts_with('/') && p.len() > 1 {
                        Some(AmiSource::SsmParameter(p.to_string()))
                    } else {
                        self.err(
                            a,
                            "kubeadm.ami",
                            format!("`{s}`: expected resolve:ssm:/parameter/path"),
                        );
                        None
                    }
                } else if is_ami_id(s) {
                    Some(AmiSource::Id(s.clone()))
                } else {
                    self.err(a, "kubeadm.ami", format!("`{s}` is neither an AMI id (ami-0123456789abcdef0) nor resolve:ssm:/parameter/path"));
                    None
                }
            }
        };
        let key_name = k.key_name.as_ref().map(|s| s.get_ref().clone());
        if let Some(kn) = &k.key_name {
            let s = kn.get_ref();
            if s.is_empty() || s.len() > 255 || !s.is_ascii() {
                self.err(
                    kn,
                    "kubeadm.key_name",
                    "key pair names are 1 to 255 ASCII characters",
                );
            }
        }
        let ssh = k.ssh.as_ref().is_some_and(|s| *s.get_ref());
        if let Some(s) = &k.ssh {
            if *s.get_ref() && key_name.is_none() {
                self.err(
                    s,
                    "kubeadm.ssh",
                    "ssh = true needs kubeadm.key_name (the image has no password login)",
                );
            }
            if *s.get_ref() && net.is_some_and(|n| n.admin_cidrs.iter().any(Ipv4Net::is_anywhere)) {
                self.warn(
                    "kubeadm.ssh",
                    "SSH (22) will be open to 0.0.0.0/0 because network.admin_cidrs contains it",
                );
            }
        }
        let service_cidr: Ipv4Net = DEFAULT_SERVICE_CIDR.parse().expect("constant parses");
        let pod_cidr = match (&k.pod_cidr, cni) {
            (Some(p), _) => self.cidr(p, "kubeadm.pod_cidr"),
            (None, Some(c)) => Some(c.default_pod_cidr().parse().expect("constant parses")),
            (None, None) => None,
        };
        if let Some(pod) = pod_cidr {
            let span = k
                .pod_cidr
                .as_ref()
                .map(|p| p.span())
                .unwrap_or_else(|| k.cni.span());
            if !(8..=24).contains(&pod.prefix()) {
                self.push(
                    span.clone(),
                    "kubeadm.pod_cidr",
                    format!("`{pod}` must be /8 to /24 (each node takes a /24 or smaller block)"),
                );
            }
            // The controller manager gives every node a /24 of the pod network, which Flannel
            // routes; with too small a network the last nodes never become Ready.
            if cni == Some(Cni::Flannel) && (8..=24).contains(&pod.prefix()) {
                let blocks = 1u64 << (24 - u32::from(pod.prefix()));
                let nodes = 1 + u64::try_from(workers).unwrap_or(0);
                if nodes > blocks {
                    self.push(
                        span.clone(),
                        "kubeadm.pod_cidr",
                        format!("{pod} holds {blocks} node block(s) of /24 but the cluster has {nodes} nodes; use a larger pod_cidr"),
                    );
                }
            }
            if let Some(n) = net
                && pod.overlaps(&n.vpc_cidr)
            {
                self.push(span.clone(), "kubeadm.pod_cidr", format!("pod network {pod} overlaps network.vpc_cidr {}; set kubeadm.pod_cidr to a free range", n.vpc_cidr));
            }
            if pod.overlaps(&service_cidr) {
                self.push(
                    span,
                    "kubeadm.pod_cidr",
                    format!("pod network {pod} overlaps the service network {service_cidr}"),
                );
            }
        }
        if let Some(n) = net
            && n.vpc_cidr.overlaps(&service_cidr)
        {
            self.push(
                0..0,
                "network.vpc_cidr",
                format!(
                    "{} overlaps the Kubernetes service network {service_cidr}",
                    n.vpc_cidr
                ),
            );
        }
        let root = match &k.root_volume_gb {
            None => 30,
            Some(r) => {
                let v = *r.get_ref();
                if !(20..=16384).contains(&v) {
                    self.err(
                        r,
                        "kubeadm.root_volume_gb",
                        format!("{v} GiB: root volumes are 20 to 16384 GiB for a Kubernetes node"),
                    );
                }
                v.clamp(20, 16384) as i32
            }
        };
        Some(KubeadmSpec {
            version: version?,
            cni: cni?,
            instance_type: itype,
            arch: arch?,
            workers: u32::try_from(workers)
                .ok()
                .filter(|w| (1..=1000).contains(w))?,
            ami: ami?,
            key_name,
            ssh,
            pod_cidr: pod_cidr?,
            service_cidr,
            root_volume_gb: root,
        })
    }
}

/// Cluster names end up in IAM role names (64 characters), tags and DNS labels.
pub fn check_cluster_name(name: &str) -> Result<(), String> {
    let ok_chars = name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    let first_ok = name.bytes().next().is_some_and(|b| b.is_ascii_lowercase());
    let last_ok = name.bytes().last().is_some_and(|b| b != b'-');
    if name.is_empty() || name.len() > 40 || !ok_chars || !first_ok || !last_ok {
        return Err(format!(
            "`{name}` is not a valid cluster name: 1 to 40 characters of a-z, 0-9 and '-', starting with a letter and not ending with '-'"
        ));
    }
    Ok(())
}

/// `arn:aws:iam::123456789012:role/NAME` or `…:user/NAME` (any partition, any path).
/// A pinned container image tag: no `latest`, only tag characters.
fn is_image_tag(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s != "latest"
        && s.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && s.chars().any(|c| c.is_ascii_digit())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
}

fn is_principal_arn(s: &str) -> bool {
    let parts: Vec<&str> = s.splitn(6, ':').collect();
    parts.len() == 6
        && parts[0] == "arn"
        && parts[1].starts_with("aws")
        && parts[2] == "iam"
        && parts[3].is_empty()
        && parts[4].len() == 12
        && parts[4].bytes().all(|b| b.is_ascii_digit())
        && (parts[5].starts_with("role/") || parts[5].starts_with("user/"))
        && parts[5].len() > 5
}

/// A DNS-1123 label: namespaces, add-on names.
fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// `[prefix/]name`: name is 63 characters of alphanumerics, `-`, `_`, `.`, starting and ending
/// alphanumeric; the prefix is a DNS subdomain.
fn is_label_key(k: &str) -> bool {
    let (prefix, name) = match k.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, k),
    };
    let name_ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric())
        && name
            .bytes()
            .last()
            .is_some_and(|b| b.is_ascii_alphanumeric());
    let prefix_ok =
        prefix.is_none_or(|p| !p.is_empty() && p.len() <= 253 && p.split('.').all(is_dns_label));
    name_ok && prefix_ok
}

/// `us-east-1`, `eu-central-2`, `us-gov-west-1`, `ap-southeast-5` …
pub fn is_region(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    if parts.len() < 3 || parts.len() > 4 {
        return false;
    }
    let (last, rest) = parts.split_last().expect("len >= 3");
    !last.is_empty()
        && last.len() <= 2
        && last.bytes().all(|b| b.is_ascii_digit())
        && rest
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
        && rest[0].len() == 2
}

fn is_ami_id(s: &str) -> bool {
    s.strip_prefix("ami-").is_some_and(|h| {
        (8..=17).contains(&h.len())
            && h.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

fn parse_version(s: &str) -> Result<KubernetesVersion, String> {
    let t = s.strip_prefix('v').unwrap_or(s);
    let parts: Vec<&str> = t.split('.').collect();
    let num = |p: &str| -> Option<u32> {
        (!p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()))
            .then(|| p.parse().ok())
            .flatten()
    };
    let bad = || {
        format!(
            "`{s}` is not a Kubernetes version: expected 1.MINOR or 1.MINOR.PATCH, e.g. \"{DEFAULT_KUBERNETES_VERSION}\""
        )
    };
    let (major, minor, patch) = match parts.as_slice() {
        [a, b] => (num(a).ok_or_else(bad)?, num(b).ok_or_else(bad)?, None),
        [a, b, c] => (
            num(a).ok_or_else(bad)?,
            num(b).ok_or_else(bad)?,
            Some(num(c).ok_or_else(bad)?),
        ),
        _ => return Err(bad()),
    };
    if major != 1 || !SUPPORTED_MINORS.contains(&minor) {
        return Err(format!(
            "Kubernetes {s} is not supported: this release bootstraps 1.{} to 1.{} (kubeadm config v1beta4)",
            SUPPORTED_MINORS.start(),
            SUPPORTED_MINORS.end()
        ));
    }
    Ok(KubernetesVersion { minor, patch })
}

/// Accepts `family.size` names and rejects sizes too small for kubeadm (2 vCPU, 2 GiB).
fn check_instance_type(s: &str) -> Result<Arch, String> {
    let Some((family, size)) = s.split_once('.') else {
        return Err(format!(
            "`{s}` is not an EC2 instance type (e.g. t3.medium)"
        ));
    };
    let fam_ok = family
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_lowercase())
        && family.bytes().any(|b| b.is_ascii_digit())
        && family
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    let size_ok = !size.is_empty()
        && size
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if !fam_ok || !size_ok {
        return Err(format!(
            "`{s}` is not an EC2 instance type (e.g. t3.medium)"
        ));
    }
    if matches!(size, "nano" | "micro") || matches!(s, "t2.small" | "m1.small") {
        return Err(format!(
            "`{s}` is too small: kubeadm needs at least 2 vCPUs and 2 GiB of memory (e.g. t3.medium)"
        ));
    }
    // Graviton families carry a `g` among the letters after the generation digit (t4g, m7gd, c6gn).
    let after_digits = family.trim_start_matches(|c: char| c.is_ascii_lowercase());
    let suffix = after_digits.trim_start_matches(|c: char| c.is_ascii_digit());
    let suffix = suffix.split('-').next().unwrap_or("");
    Ok(if suffix.contains('g') {
        Arch::Arm64
    } else {
        Arch::Amd64
    })
}

/// 1-based line and column of a byte offset.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// The dotted path of the key a parse error points at, from the table headers above it.
fn field_for_parse_error(text: &str, offset: usize, message: &str) -> String {
    let offset = offset.min(text.len());
    let mut table = String::new();
    let mut key_here = None;
    let line_start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    for line in text[..line_start].lines() {
        let t = line.trim();
        if let Some(h) = t.strip_prefix('[').and_then(|h| h.split(']').next()) {
            table = h.trim_matches('[').trim().to_string();
        }
    }
    let line = text[line_start..].lines().next().unwrap_or("").trim();
    if line.starts_with('[') {
        table = line
            .trim_matches(|c| c == '[' || c == ']')
            .trim()
            .to_string();
    } else if let Some((k, _)) = line.split_once('=') {
        key_here = Some(k.trim().trim_matches('"').to_string());
    }
    // serde names missing and unknown fields in backticks; prefer that name.
    let named = message
        .split('`')
        .nth(1)
        .filter(|_| message.contains("field"))
        .map(str::to_string);
    let key = named.or(key_here);
    match (table.is_empty(), key) {
        (true, Some(k)) => k,
        (false, Some(k)) => format!("{table}.{k}"),
        (false, None) => table,
        (true, None) => "(document)".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) const GOOD: &str = r#"
name = "demo"
region = "us-east-1"
kind = "kubeadm"

[network]
vpc_cidr = "10.0.0.0/16"
availability_zones = 2
admin_cidrs = ["203.0.113.0/24"]

[kubeadm]
kubernetes_version = "1.36"
cni = "calico"
instance_type = "t3.medium"
workers = 2
"#;

    #[test]
    fn good_spec_validates_with_defaults() {
        let (spec, warnings) = parse("good.toml", GOOD).unwrap();
        assert!(warnings.is_empty());
        assert_eq!(spec.name, "demo");
        let subnets: Vec<String> = spec
            .network
            .subnet_cidrs
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(subnets, ["10.0.0.0/20", "10.0.16.0/20"]);
        assert!(spec.network.private_subnet_cidrs.is_empty());
        let k = spec.kubeadm().unwrap();
        assert_eq!(k.pod_cidr.to_string(), "192.168.0.0/16");
        assert_eq!(k.ami, AmiSource::SsmParameter(UBUNTU_2404_SSM_AMD64.into()));
        assert_eq!(k.arch, Arch::Amd64);
        assert_eq!(k.root_volume_gb, 30);
        assert!(!k.ssh);
    }

    const EKS: &str = r#"
name = "eks-demo"
region = "us-west-2"
kind = "eks"

[network]
vpc_cidr = "10.30.0.0/16"
admin_cidrs = ["203.0.113.0/24"]

[eks]
version = "1.35"

[eks.nodegroup]
instance_types = ["t3.large", "t3a.large"]
min = 1
max = 3
desired = 2
capacity_type = "SPOT"
labels = { "team" = "platform", "example.com/tier" = "web" }

[[eks.access]]
principal_arn = "arn:aws:iam::123456789012:role/platform-admins"
policy = "cluster-admin"

[[eks.access]]
principal_arn = "arn:aws:iam::123456789012:user/dev"
policy = "edit"
namespaces = ["team-a", "team-b"]
"#;

    #[test]
    fn a_good_eks_spec_validates_with_defaults() {
        let (spec, warnings) = parse("eks.toml", EKS).unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(spec.kind(), "eks");
        assert_eq!(spec.instance_type(), "t3.large");
        let e = spec.eks().unwrap();
        assert_eq!(e.version, "1.35");
        assert!(e.endpoint_public_access && e.endpoint_private_access);
        assert_eq!(
            (e.nodegroup.min, e.nodegroup.max, e.nodegroup.desired),
            (1, 3, 2)
        );
        assert!(e.nodegroup.spot);
        assert_eq!(e.addons, DEFAULT_EKS_ADDONS.map(String::from));
        assert_eq!(e.access.len(), 2);
        assert_eq!(e.access[1].namespaces, ["team-a", "team-b"]);
        assert!(spec.network.private_subnet_cidrs.is_empty());
    }

    #[test]
    fn addons_and_the_security_baseline_parse_with_defaults() {
        let text = format!(
            "{GOOD}\n[addons]\nmonitoring = true\nlogging = {{ instance_type = \"m7i.large\", versions = {{ elasticsearch = \"9.1.0\" }} }}\ntracing = false\n[security]\nnamespaces = [\"team-a\", \"team-b\"]\n[[security.bindings]]\ngroup = \"devs\"\nrole = \"edit\"\nnamespaces = [\"team-a\"]\n"
        );
        let (spec, warnings) = parse("a.toml", &text).unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        let m = spec.addons.monitoring.as_ref().unwrap();
        assert_eq!(m.instance_type, "t3.medium");
        assert_eq!(m.versions["prometheus"], "v3.7.3");
        let l = spec.addons.logging.as_ref().unwrap();
        assert_eq!(l.instance_type, "m7i.large");
        assert_eq!(l.versions["elasticsearch"], "9.1.0");
        assert_eq!(
            l.versions["kibana"], "9.2.1",
            "the others keep their defaults"
        );
        assert!(spec.addons.tracing.is_none());
        assert!(spec.security.default_deny, "Calico enforces NetworkPolicy");
        assert_eq!(spec.security.namespaces, ["team-a", "team-b"]);
        assert_eq!(
            spec.security.bindings[0].subject,
            Subject::Group("devs".into())
        );
        assert_eq!(spec.security.bindings[0].role, BindingRole::Edit);
    }

    #[test]
    fn the_security_baseline_is_checked_field_by_field() {
        let flannel = GOOD.replace("cni = \"calico\"", "cni = \"flannel\"");
        let cases = [
            (
                format!("{flannel}\n[security]\nnamespaces = [\"a\"]\ndefault_deny = true\n"),
                "security.default_deny",
            ),
            (
                format!("{GOOD}\n[security]\nnamespaces = [\"kube-system\"]\n"),
                "security.namespaces[0]",
            ),
            (
                format!("{GOOD}\n[security]\nnamespaces = [\"Team_A\"]\n"),
                "security.namespaces[0]",
            ),
            (
                format!(
                    "{GOOD}\n[[security.bindings]]\nuser = \"a\"\ngroup = \"b\"\nrole = \"edit\"\nnamespaces = [\"x\"]\n"
                ),
                "security.bindings[0]",
            ),
            (
                format!(
                    "{GOOD}\n[[security.bindings]]\nuser = \"a\"\nrole = \"owner\"\nnamespaces = [\"x\"]\n"
                ),
                "security.bindings[0].role",
            ),
            (
                format!(
                    "{GOOD}\n[[security.bindings]]\nuser = \"a\"\nrole = \"view\"\nnamespaces = []\n"
                ),
                "security.bindings[0].namespaces",
            ),
            (
                format!(
                    "{GOOD}\n[addons]\nmonitoring = {{ versions = {{ grafana = \"latest\" }} }}\n"
                ),
                "addons.monitoring.versions.grafana",
            ),
            (
                format!("{GOOD}\n[addons]\nmonitoring = {{ versions = {{ loki = \"3.0.0\" }} }}\n"),
                "addons.monitoring.versions.loki",
            ),
            (
                format!("{GOOD}\n[addons]\ntracing = {{ instance_type = \"t3.micro\" }}\n"),
                "addons.tracing.instance_type",
            ),
        ];
        for (text, field) in cases {
            let err = parse("s.toml", &text).unwrap_err();
            assert!(err.fields().contains(&field), "{field}: {err}");
        }
        let egress_alone = format!(
            "{GOOD}\n[security]\nnamespaces = [\"a\"]\ndefault_deny = false\ndefault_deny_egress = true\n"
        );
        let err = parse("s.toml", &egress_alone).unwrap_err();
        assert_eq!(err.fields(), ["security.default_deny_egress"], "{err}");
        let (spec, _) = parse(
            "s.toml",
            &format!("{GOOD}\n[security]\nnamespaces = [\"a\"]\ndefault_deny_egress = true\n"),
        )
        .unwrap();
        assert!(spec.security.default_deny && spec.security.default_deny_egress);
        // Flannel without an explicit default_deny: no policies, and a warning.
        let (spec, warnings) = parse(
            "s.toml",
            &format!("{flannel}\n[security]\nnamespaces = [\"a\"]\n"),
        )
        .unwrap();
        assert!(!spec.security.default_deny);
        assert_eq!(warnings[0].field, "security.default_deny");
    }

    #[test]
    fn on_eks_bindings_become_namespaced_access_entries() {
        let text = format!(
            "{EKS}\n[[security.bindings]]\nuser = \"arn:aws:iam::123456789012:role/team-a\"\nrole = \"admin\"\nnamespaces = [\"team-a\"]\n"
        );
        let (spec, _) = parse("e.toml", &text).unwrap();
        let e = spec.eks().unwrap();
        let a = e
            .access
            .iter()
            .find(|a| a.principal_arn.ends_with("role/team-a"))
            .unwrap();
        assert_eq!(a.policy, AccessPolicy::Admin);
        assert_eq!(a.namespaces, ["team-a"]);
        assert!(spec.security.default_deny, "the VPC CNI enforces policy");
        let group = format!(
            "{EKS}\n[[security.bindings]]\ngroup = \"devs\"\nrole = \"view\"\nnamespaces = [\"x\"]\n"
        );
        let err = parse("e.toml", &group).unwrap_err();
        assert!(
            err.fields().contains(&"security.bindings[0].group"),
            "{err}"
        );
        let dup = format!(
            "{EKS}\n[[security.bindings]]\nuser = \"arn:aws:iam::123456789012:user/dev\"\nrole = \"view\"\nnamespaces = [\"x\"]\n"
        );
        let err = parse("e.toml", &dup).unwrap_err();
        assert!(err.fields().contains(&"security.bindings"), "{err}");
        assert!(err.issues.iter().all(|i| i.line > 1), "located: {err}");
    }

    #[test]
    fn private_subnets_are_carved_after_the_public_ones() {
        let text = EKS.replace(
            "admin_cidrs = [\"203.0.113.0/24\"]",
            "admin_cidrs = [\"203.0.113.0/24\"]\nprivate_subnets = true",
        );
        let (spec, _) = parse("eks.toml", &text).unwrap();
        let s = |v: &[Ipv4Net]| v.iter().map(ToString::to_string).collect::<Vec<_>>();
        assert_eq!(
            s(&spec.network.subnet_cidrs),
            ["10.30.0.0/20", "10.30.16.0/20"]
        );
        assert_eq!(
            s(&spec.network.private_subnet_cidrs),
            ["10.30.32.0/20", "10.30.48.0/20"]
        );
        let err = parse(
            "k.toml",
            &GOOD.replace("[network]", "[network]\nprivate_subnets = true"),
        )
        .unwrap_err();
        assert_eq!(err.fields(), ["network.private_subnets"], "{err}");
    }

    #[test]
    fn eks_tables_are_validated_field_by_field() {
        let cases = [
            ("version = \"1.35\"", "version = \"1.20\"", "eks.version"),
            ("min = 1", "min = 4", "eks.nodegroup.desired"),
            (
                "capacity_type = \"SPOT\"",
                "capacity_type = \"spot\"",
                "eks.nodegroup.capacity_type",
            ),
            (
                "[\"t3.large\", \"t3a.large\"]",
                "[\"t3.large\", \"m7g.large\"]",
                "eks.nodegroup.instance_types",
            ),
            (
                "policy = \"edit\"",
                "policy = \"owner\"",
                "eks.access[1].policy",
            ),
            (
                "role/platform-admins",
                "group/platform-admins",
                "eks.access[0].principal_arn",
            ),
            ("\"team-b\"]", "\"Team_B\"]", "eks.access[1].namespaces"),
            (
                "\"team\" = \"platform\"",
                "\"-team\" = \"platform\"",
                "eks.nodegroup.labels.-team",
            ),
            (
                "version = \"1.35\"",
                "version = \"1.35\"\nendpoint_public_access = false\nendpoint_private_access = false",
                "eks.endpoint_public_access",
            ),
            (
                "version = \"1.35\"",
                "version = \"1.35\"\nendpoint_private_access = false",
                "eks.endpoint_private_access",
            ),
        ];
        for (from, to, field) in cases {
            assert!(EKS.contains(from), "{from}");
            let err = parse("eks.toml", &EKS.replacen(from, to, 1)).unwrap_err();
            assert!(err.fields().contains(&field), "{to}: {err}");
        }
        let err = parse(
            "eks.toml",
            &EKS.replace("[eks.nodegroup]", "[eks.nodegroupz]"),
        )
        .unwrap_err();
        assert!(err.issues[0].message.contains("nodegroupz"), "{err}");
    }

    #[test]
    fn tables_must_match_the_kind() {
        let err = parse("k.toml", &format!("{GOOD}\n[eks]\n[eks.nodegroup]\ninstance_types = [\"t3.large\"]\nmin = 1\nmax = 1\ndesired = 1\n")).unwrap_err();
        assert_eq!(err.fields(), ["eks"], "{err}");
    }

    #[test]
    fn instance_type_arch() {
        assert_eq!(check_instance_type("t4g.medium"), Ok(Arch::Arm64));
        assert_eq!(check_instance_type("m7gd.large"), Ok(Arch::Arm64));
        assert_eq!(check_instance_type("g4dn.xlarge"), Ok(Arch::Amd64));
        assert_eq!(check_instance_type("m7i-flex.large"), Ok(Arch::Amd64));
        assert!(check_instance_type("t3.micro").is_err());
        assert!(check_instance_type("t2.small").is_err());
        assert!(check_instance_type("t3.small").is_ok());
        assert!(check_instance_type("medium").is_err());
    }

    #[test]
    fn world_open_admin_cidr_is_a_warning() {
        let text = GOOD.replace("203.0.113.0/24", "0.0.0.0/0");
        let (_, warnings) = parse("w.toml", &text).unwrap();
        assert_eq!(warnings.len(), 1);
        assert_eq!(warnings[0].field, "network.admin_cidrs[0]");
    }

    #[test]
    fn line_and_column() {
        assert_eq!(line_col("a\nbc\nd", 3), (2, 2));
        assert_eq!(line_col("abc", 0), (1, 1));
    }
}
