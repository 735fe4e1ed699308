//! The observability add-ons: each an instance in the first public subnet with a security
//! group of its own, an instance profile they share, and the generated passwords in an SSM
//! parameter. They depend on the network only, so they are made while the cluster is.

use super::network::Net;
use super::rules::{SgRole, addon_rules, eks_addon_ingress};
use super::{ADDONS_ACCESS, ADDONS_ACCESS_POLICY, ADDONS_PROFILE, ADDONS_ROLE, ADDONS_SECRET};
use super::{Builder, EKS_ADDON_INGRESS, EKS_CLUSTER, ROUTE_TABLE, SG_NODES, VPC, sg_name};
use crate::core::kinds::Desired;
use crate::core::kinds::addon_secret::AddonSecret;
use crate::core::kinds::iam_role::IamRole;
use crate::core::kinds::image::Image;
use crate::core::kinds::ingress_rules::IngressRules;
use crate::core::kinds::inline_policy::{Document, InlinePolicy};
use crate::core::kinds::instance_profile::InstanceProfile;
use crate::core::kinds::instances::{Instances, Role, TokenScope};
use crate::core::kinds::security_group::SecurityGroup;
use crate::core::spec::{Addon, AmiSource, Arch, ClusterSpec};
use crate::core::tags;
use crate::core::userdata::{AddonDoc, UserData};

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

/// The monitoring add-on's group, added before the nodes' (whose rules name it).
pub(crate) fn monitoring_group(spec: &ClusterSpec, b: &mut Builder) {
    if spec.addons.monitoring.is_some() {
        group(spec, b, Addon::Monitoring);
    }
}

/// An add-on's security group (after the groups its rules name).
fn group(spec: &ClusterSpec, b: &mut Builder, a: Addon) {
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
        Desired::SecurityGroup(SecurityGroup {
            role: SgRole::Addon,
            name: sg_name(spec, a.as_str()),
            description: format!("provision {}: {} add-on", spec.name, a.as_str()),
            rules: addon_rules(spec, a),
            vpc: VPC.into(),
        }),
        &deps,
    );
}

pub(crate) fn nodes(spec: &ClusterSpec, b: &mut Builder, net: &Net) {
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
                Desired::IngressRules(IngressRules { rules }),
                &deps,
            );
        }
    }
    let role = tags::role_name(&spec.name, &spec.region, "addons");
    b.add(
        ADDONS_ROLE,
        Desired::IamRole(IamRole {
            name: role.clone(),
            service: "ec2.amazonaws.com",
            policies: Vec::new(),
        }),
        &[],
    );
    b.add(
        ADDONS_PROFILE,
        Desired::InstanceProfile(InstanceProfile {
            name: role.clone(),
            role: ADDONS_ROLE.into(),
            role_name: role.clone(),
        }),
        &[ADDONS_ROLE],
    );
    let parameter = tags::addons_parameter_name(&spec.name);
    b.add(
        ADDONS_SECRET,
        Desired::AddonSecret(AddonSecret {
            parameter: parameter.clone(),
            writer: tags::log_writer_parameter_name(&spec.name),
        }),
        &[],
    );
    b.add(
        ADDONS_ACCESS,
        Desired::InlinePolicy(InlinePolicy {
            role: ADDONS_ROLE.into(),
            role_name: role,
            name: ADDONS_ACCESS_POLICY.into(),
            document: Document::Addons {
                parameter: parameter.clone(),
            },
        }),
        &[ADDONS_ROLE],
    );
    let mut archs: Vec<Arch> = spec.addons.enabled().map(|(_, s)| s.arch).collect();
    archs.sort_by_key(|a| *a == Arch::Arm64);
    archs.dedup();
    for arch in &archs {
        b.add(
            &addon_ami_id(*arch),
            Desired::Image(Image {
                source: AmiSource::ubuntu(*arch),
                arch: *arch,
                field: "the add-ons' image (Ubuntu 24.04)",
            }),
            &[],
        );
    }
    let subnet = &net.public[0];
    for (a, s) in spec.addons.enabled() {
        let sg = addon_sg_id(a);
        if a != Addon::Monitoring {
            group(spec, b, a);
        }
        let ami = addon_ami_id(s.arch);
        b.add(
            a.as_str(),
            Desired::Instances(Instances {
                private_ip: None,
                role: Role::Addon(a),
                count: 1,
                subnet: subnet.clone(),
                groups: vec![sg.clone()],
                profile: ADDONS_PROFILE.into(),
                image: ami.clone(),
                instance_type: s.instance_type.clone(),
                volume_gb: s.volume_gb,
                key_name: None,
                token_scope: TokenScope::Vpc(VPC.into()),
                kubernetes_owned: false,
                spot: false,
                tags: Vec::new(),
                user_data: UserData::Addon(AddonDoc {
                    addon: a,
                    spec: s.clone(),
                    cluster: spec.name.clone(),
                    region: spec.region.clone(),
                    parameter: parameter.clone(),
                }),
            }),
            &[
                subnet,
                &sg,
                ADDONS_PROFILE,
                &ami,
                ADDONS_SECRET,
                ROUTE_TABLE,
                VPC,
            ],
        );
    }
}
