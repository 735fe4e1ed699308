//! EKS: the control plane's additional security group, the three roles (started with the
//! network), the cluster, its access entries, the add-ons around the node group (like
//! terraform-aws-eks's `before_compute`), our launch template and the managed node group.

use super::network::Net;
use super::rules::{SgRole, rules};
use super::{
    ACCESS_ENTRIES, ADDONS, ADDONS_BASE, Builder, CLUSTER_ROLE, EBS_CSI_ROLE, EKS_CLUSTER,
    EKS_UPGRADE,
};
use super::{
    NODE_LOG_ACCESS, NODE_LOG_POLICY, NODE_ROLE, NODE_TEMPLATE, NODEGROUP, NODEGROUP_RETIRE,
};
use super::{PRIVATE_ROUTE_TABLE, ROUTE_TABLE, SG_CONTROL_PLANE, VPC, sg_name};
use crate::core::kinds::Desired;
use crate::core::kinds::access_entries::AccessEntries;
use crate::core::kinds::eks_addons::EksAddons;
use crate::core::kinds::eks_cluster::EksCluster;
use crate::core::kinds::eks_upgrade::EksUpgrade;
use crate::core::kinds::iam_role::IamRole;
use crate::core::kinds::inline_policy::{Document, InlinePolicy};
use crate::core::kinds::launch_template::LaunchTemplate;
use crate::core::kinds::nodegroup::Nodegroup;
use crate::core::kinds::nodegroup_retire::NodegroupRetire;
use crate::core::kinds::security_group::SecurityGroup;
use crate::core::spec::{Addon, ClusterSpec, DEFAULT_DISK_GB, DEFAULT_NODEGROUP};
use crate::core::tags;
use crate::core::userdata::{LogShipper, NodeAgentsDoc};

/// The managed policies of the EKS roles.
pub const EKS_CLUSTER_POLICIES: [&str; 1] = ["AmazonEKSClusterPolicy"];
pub const EKS_NODE_POLICIES: [&str; 3] = [
    "AmazonEKSWorkerNodePolicy",
    "AmazonEKS_CNI_Policy",
    "AmazonEC2ContainerRegistryReadOnly",
];
pub const EBS_CSI_POLICIES: [&str; 1] = ["service-role/AmazonEBSCSIDriverPolicy"];
/// The EBS CSI driver's controller service account (EKS Pod Identity association).
pub const EBS_CSI_SERVICE_ACCOUNT: &str = "ebs-csi-controller-sa";

/// Whether an add-on must be running before nodes can become Ready.
pub fn before_compute(addon: &str) -> bool {
    matches!(addon, "vpc-cni" | "kube-proxy" | "eks-pod-identity-agent")
}

/// The EKS name of the spec's node group `name` (its first generation: a blue/green
/// replacement adds a suffix, see `kinds::nodegroup::replacement_name`). The one
/// `[eks.nodegroup]` is `CLUSTER-nodes`.
pub fn nodegroup_name(cluster: &str, name: &str) -> String {
    format!("{cluster}-{name}")
}

pub(crate) fn nodes(spec: &ClusterSpec, b: &mut Builder, net: &Net) {
    let Some(e) = spec.eks() else {
        return;
    };
    let strings = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    b.add(
        SG_CONTROL_PLANE,
        Desired::SecurityGroup(SecurityGroup {
            role: SgRole::ControlPlane,
            name: sg_name(spec, "control-plane"),
            description: format!("provision {}: EKS control plane interfaces", spec.name),
            rules: rules(spec, SgRole::ControlPlane),
            vpc: VPC.into(),
        }),
        &[VPC],
    );
    let role = |suffix: &str, service, policies: &[&str]| {
        Desired::IamRole(IamRole {
            name: tags::role_name(&spec.name, &spec.region, suffix),
            service,
            policies: strings(policies),
        })
    };
    b.add(
        CLUSTER_ROLE,
        role("cluster", "eks.amazonaws.com", &EKS_CLUSTER_POLICIES),
        &[],
    );
    b.add(
        NODE_ROLE,
        role("node", "ec2.amazonaws.com", &EKS_NODE_POLICIES),
        &[],
    );
    let csi = e.addons.iter().any(|a| a == "aws-ebs-csi-driver");
    if csi {
        b.add(
            EBS_CSI_ROLE,
            role("ebs-csi", "pods.eks.amazonaws.com", &EBS_CSI_POLICIES),
            &[],
        );
    }
    // The control plane gets every subnet; nodes go to the private ones when there are.
    let all: Vec<String> = net.public.iter().chain(&net.private).cloned().collect();
    let mut deps: Vec<&str> = vec![SG_CONTROL_PLANE, CLUSTER_ROLE, ROUTE_TABLE, VPC];
    deps.extend(all.iter().map(String::as_str));
    b.add(
        EKS_CLUSTER,
        Desired::EksCluster(EksCluster {
            name: spec.name.clone(),
            version: e.version.clone(),
            role: CLUSTER_ROLE.into(),
            security_group: SG_CONTROL_PLANE.into(),
            vpc: VPC.into(),
            subnets: all.clone(),
            endpoint_public_access: e.endpoint_public_access,
            endpoint_private_access: e.endpoint_private_access,
            public_access_cidrs: spec
                .network
                .admin_cidrs
                .iter()
                .map(ToString::to_string)
                .collect(),
        }),
        &deps,
    );
    b.add(
        EKS_UPGRADE,
        Desired::EksUpgrade(EksUpgrade {
            cluster: EKS_CLUSTER.into(),
            name: spec.name.clone(),
            version: e.version.clone(),
            addons: e.addons.clone(),
            pins: e.addon_versions.clone(),
            nodegroups: e
                .nodegroups
                .iter()
                .map(|g| (nodegroup_id(&g.name), g.max_unavailable))
                .collect(),
            force: e.skip_insights,
        }),
        &[EKS_CLUSTER],
    );
    b.add(
        ACCESS_ENTRIES,
        Desired::AccessEntries(AccessEntries {
            cluster: EKS_CLUSTER.into(),
            entries: e.access.clone(),
        }),
        &[EKS_CLUSTER],
    );
    let with_role = |a: &String| {
        let role = (a == "aws-ebs-csi-driver").then(|| EBS_CSI_ROLE.to_string());
        (a.clone(), role)
    };
    let (base, rest): (Vec<_>, Vec<_>) = e
        .addons
        .iter()
        .map(with_role)
        .partition(|(a, _)| before_compute(a));
    let addons = |names| {
        Desired::EksAddons(EksAddons {
            cluster: EKS_CLUSTER.into(),
            vpc: VPC.into(),
            names,
            pins: e.addon_versions.clone(),
        })
    };
    let has_base = !base.is_empty();
    if has_base {
        b.add(ADDONS_BASE, addons(base), &[EKS_CLUSTER, EKS_UPGRADE, VPC]);
    }
    let groups = nodegroups(spec, b, net, has_base);
    if !rest.is_empty() {
        let mut deps = vec![EKS_CLUSTER, EKS_UPGRADE, VPC];
        deps.extend(groups.iter().map(String::as_str));
        if csi {
            deps.push(EBS_CSI_ROLE);
        }
        b.add(ADDONS, addons(rest), &deps);
    }
}

/// The graph node of the spec's node group `name` (`nodes`, the one `[eks.nodegroup]`, keeps
/// the id it always had).
pub fn nodegroup_id(name: &str) -> String {
    if name == DEFAULT_NODEGROUP {
        NODEGROUP.to_string()
    } else {
        format!("{NODEGROUP}-{name}")
    }
}

/// The graph node of the launch template of the spec's node group `name` with a root volume
/// of `disk` GiB: a new size is a new template, and a new group (EKS cannot change a group's
/// template to another in place).
pub fn template_id(name: &str, disk: u32) -> String {
    let base = if name == DEFAULT_NODEGROUP {
        NODE_TEMPLATE.to_string()
    } else {
        format!("{NODE_TEMPLATE}-{name}")
    };
    if disk == DEFAULT_DISK_GB {
        base
    } else {
        format!("{base}-{disk}gb")
    }
}

/// The launch template's name for `template_id(name, disk)`.
fn template_name(cluster: &str, name: &str, disk: u32) -> String {
    if disk == DEFAULT_DISK_GB {
        format!("provision-{cluster}-{name}")
    } else {
        format!("provision-{cluster}-{name}-{disk}gb")
    }
}

/// The nodes' read of the log writer's password, then per node group its launch template and
/// the group; then the retirement of the groups the spec no longer has.
fn nodegroups(spec: &ClusterSpec, b: &mut Builder, net: &Net, has_base: bool) -> Vec<String> {
    let Some(e) = spec.eks() else {
        return Vec::new();
    };
    // The nodes' user data names the logging instance's address.
    let logging = spec.addons.logging.as_ref().map(|l| LogShipper {
        logging: Addon::Logging.as_str().into(),
        fluent_bit_version: l.versions.get("fluent_bit").cloned().unwrap_or_default(),
        parameter: tags::log_writer_parameter_name(&spec.name),
    });
    let template_deps: Vec<&str> = logging.iter().map(|l| l.logging.as_str()).collect();
    let mut common: Vec<&str> = vec![EKS_CLUSTER, EKS_UPGRADE, NODE_ROLE, VPC];
    if spec.addons.logging.is_some() {
        b.add(
            NODE_LOG_ACCESS,
            Desired::InlinePolicy(InlinePolicy {
                role: NODE_ROLE.into(),
                role_name: tags::node_role_name(&spec.name, &spec.region),
                name: NODE_LOG_POLICY.into(),
                document: Document::LogWriter {
                    parameter: tags::log_writer_parameter_name(&spec.name),
                },
            }),
            &[NODE_ROLE],
        );
        common.push(NODE_LOG_ACCESS);
    }
    if has_base {
        common.push(ADDONS_BASE);
    }
    let mut ids = Vec::new();
    for g in &e.nodegroups {
        let template = template_id(&g.name, g.disk_size);
        b.add(
            &template,
            Desired::LaunchTemplate(LaunchTemplate {
                name: template_name(&spec.name, &g.name, g.disk_size),
                disk_gb: g.disk_size,
                agents: NodeAgentsDoc {
                    node_exporter: spec.addons.monitoring.is_some(),
                    logging: logging.clone(),
                },
            }),
            &template_deps,
        );
        let subnets = if g.public { &net.public } else { &net.private };
        let mut deps = common.clone();
        deps.push(&template);
        deps.extend(subnets.iter().map(String::as_str));
        if !g.public {
            deps.push(PRIVATE_ROUTE_TABLE);
        }
        let id = nodegroup_id(&g.name);
        b.add(
            &id,
            Desired::Nodegroup(Nodegroup {
                name: nodegroup_name(&spec.name, &g.name),
                spec: g.clone(),
                cluster: EKS_CLUSTER.into(),
                role: NODE_ROLE.into(),
                template: template.clone(),
                vpc: VPC.into(),
                subnets: subnets.clone(),
            }),
            &deps,
        );
        ids.push(id);
    }
    let mut deps: Vec<&str> = vec![EKS_CLUSTER];
    deps.extend(ids.iter().map(String::as_str));
    b.add(
        NODEGROUP_RETIRE,
        Desired::NodegroupRetire(NodegroupRetire {
            cluster: EKS_CLUSTER.into(),
            groups: e
                .nodegroups
                .iter()
                .map(|g| {
                    (
                        nodegroup_id(&g.name),
                        nodegroup_name(&spec.name, &g.name),
                        g.clone(),
                        template_id(&g.name, g.disk_size),
                        if g.public { &net.public } else { &net.private }.clone(),
                    )
                })
                .collect(),
            templates: e
                .nodegroups
                .iter()
                .map(|g| template_id(&g.name, g.disk_size))
                .collect(),
        }),
        &deps,
    );
    ids
}
