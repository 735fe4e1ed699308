//! A test fixture: what AWS reports once `up` of a spec has finished, built from the spec's
//! graph. The planner's tests change one thing in it per case.

use crate::core::graph::{self, Rule, Source};
use crate::core::kinds::addon_secret::{ObsAddonSecrets, ObsParameter};
use crate::core::kinds::backup_bucket::ObsBucket;
use crate::core::kinds::bootstrap_secret::{Bootstrap, ObsSecret};
use crate::core::kinds::eks_cluster::{ObsAccessEntry, ObsAddon, ObsEks};
use crate::core::kinds::elastic_ip::ObsAddress;
use crate::core::kinds::iam_role::{ObsIam, managed_policy_arn};
use crate::core::kinds::inline_policy::ObsPolicy;
use crate::core::kinds::instance_profile::ObsProfile;
use crate::core::kinds::instances::ObsInstance;
use crate::core::kinds::internet_gateway::ObsIgw;
use crate::core::kinds::nat_gateway::ObsNat;
use crate::core::kinds::nodegroup::ObsNodegroup;
use crate::core::kinds::route_table::ObsRouteTable;
use crate::core::kinds::security_group::{ObsRule, ObsSg};
use crate::core::kinds::subnet::ObsSubnet;
use crate::core::kinds::vpc::ObsVpc;
use crate::core::kinds::{Desired, Kind, Observed};
use crate::core::spec::ClusterSpec;

/// The etcd snapshots' bucket of a converged kubeadm cluster.
pub const BUCKET: &str = "provision-demo-use1-123456789012";
/// The cluster id in its bootstrap secret (which names its snapshots' prefix).
pub const CLUSTER_ID: &str = "abcdefghijkl";

pub(super) const NOW: i64 = 1_800_000_000;
const ACCOUNT_ROLE: &str = "arn:aws:iam::123456789012:role/provision/";

/// The AWS id `converged` gives node `id`.
fn aws(id: &str) -> String {
    match id {
        graph::VPC => "vpc-1".into(),
        graph::IGW => "igw-1".into(),
        graph::NAT_GATEWAY => "nat-1".into(),
        _ if id.starts_with("sg-") => format!("sg-id-{id}"),
        _ => format!("x-{id}"),
    }
}

fn obs_rule(r: &Rule, groups: &std::collections::HashMap<String, String>) -> ObsRule {
    ObsRule {
        protocol: r.protocol.as_str().into(),
        from_port: i32::from(r.from_port),
        to_port: i32::from(r.to_port),
        source: match &r.source {
            Source::Cidr(c) => c.to_string(),
            Source::Group(g) => groups.get(g).cloned().unwrap_or_default(),
        },
    }
}

/// What AWS reports once `up` of `spec` has finished.
pub(super) fn converged(spec: &ClusterSpec) -> Observed {
    let g = graph::build(spec);
    let mut obs = Observed::default();
    let mut groups: std::collections::HashMap<String, String> = g
        .nodes
        .iter()
        .filter(|n| n.kind() == Kind::SecurityGroup)
        .map(|n| (n.id.clone(), aws(&n.id)))
        .collect();
    if spec.eks().is_some() {
        groups.insert(graph::EKS_CLUSTER_SG.into(), "sg-eks-cluster".into());
    }
    for n in &g.nodes {
        observe_node(&mut obs, &n.id, &n.desired, &groups);
    }
    // What needs other nodes first: rules between groups, policies naming instances, what EKS
    // reports with the cluster.
    for n in &g.nodes {
        observe_after(&mut obs, &n.id, &n.desired, &groups, &spec.region);
    }
    obs
}

fn some(s: &str) -> Option<String> {
    Some(s.to_string())
}

/// What AWS reports of one node's own resources.
fn observe_node(
    obs: &mut Observed,
    id: &str,
    desired: &Desired,
    groups: &std::collections::HashMap<String, String>,
) {
    match desired {
        Desired::Vpc(v) => obs.vpcs.push(ObsVpc {
            id: aws(id),
            logical: some(id),
            cidr: v.cidr.to_string(),
            dns_support: Some(true),
            dns_hostnames: Some(true),
            stamp: Default::default(),
        }),
        Desired::Subnet(s) => obs.subnets.push(ObsSubnet {
            id: aws(id),
            logical: some(id),
            vpc_id: aws(graph::VPC),
            cidr: s.cidr.to_string(),
            az: format!("us-east-1{}", (b'a' + s.index as u8) as char),
            map_public_ip: s.public,
            reserved: s
                .reserve
                .map(crate::core::kinds::subnet::reservation)
                .into_iter()
                .collect(),
        }),
        Desired::InternetGateway(_) => obs.igws.push(ObsIgw {
            id: aws(id),
            logical: some(id),
            attached_vpcs: vec![aws(graph::VPC)],
        }),
        Desired::RouteTable(r) => obs.route_tables.push(ObsRouteTable {
            id: aws(id),
            logical: some(id),
            vpc_id: aws(graph::VPC),
            default_route: Some(aws(&r.gateway)),
            associations: r
                .subnets
                .iter()
                .map(|s| (format!("assoc-{s}"), aws(s)))
                .collect(),
        }),
        Desired::LaunchTemplate(t) => {
            obs.launch_templates
                .push(crate::core::kinds::launch_template::ObsTemplate {
                    id: aws(id),
                    logical: some(id),
                    name: t.name.clone(),
                })
        }
        Desired::ElasticIp(_) => obs.addresses.push(ObsAddress {
            allocation_id: aws(id),
            logical: some(id),
            public_ip: "198.51.100.7".into(),
            association_id: None,
            instance_id: None,
        }),
        Desired::NatGateway(_) => obs.nat_gateways.push(ObsNat {
            id: aws(id),
            logical: some(id),
            state: "available".into(),
            subnet_id: aws("subnet-0"),
            interfaces: vec![],
        }),
        Desired::SecurityGroup(s) => obs.security_groups.push(ObsSg {
            id: aws(id),
            logical: some(id),
            vpc_id: aws(graph::VPC),
            rules: s.rules.iter().map(|r| obs_rule(r, groups)).collect(),
        }),
        Desired::IamRole(r) => obs.roles.push(ObsIam {
            logical: id.into(),
            name: r.name.clone(),
            arn: format!("{ACCOUNT_ROLE}{}", r.name),
            owned: true,
            other_region: None,
            policies: Some(
                r.policies
                    .iter()
                    .map(|p| managed_policy_arn(ACCOUNT_ROLE, p))
                    .collect(),
            ),
        }),
        Desired::InstanceProfile(p) => obs.profiles.push(ObsProfile {
            logical: id.into(),
            name: p.name.clone(),
            arn: format!("arn:aws:iam::123456789012:instance-profile/{}", p.name),
            roles: vec![p.role_name.clone()],
            owned: true,
            other_region: None,
        }),
        Desired::BootstrapSecret(s) => {
            obs.secret = Some(ObsSecret {
                name: s.parameter.clone(),
                owned: true,
                content: Some(Bootstrap {
                    version: 1,
                    cluster_id: CLUSTER_ID.into(),
                    ca_cert_pem: String::new(),
                    ca_key_pem: String::new(),
                    token: "abcdef.0123456789abcdef".into(),
                    token_created: Some(NOW - 3600),
                }),
                unreadable: None,
            })
        }
        Desired::AddonSecret(s) => {
            obs.addon_secrets = ObsAddonSecrets {
                passwords: Some(ObsParameter {
                    name: s.parameter.clone(),
                    owned: true,
                }),
                writer: Some(ObsParameter {
                    name: s.writer.clone(),
                    owned: true,
                }),
            }
        }
        Desired::Instances(i) => {
            for k in 0..i.count {
                obs.instances.push(ObsInstance {
                    id: format!("i-{id}-{k}"),
                    logical: some(id),
                    state: "running".into(),
                    subnet_id: Some(aws(&i.subnet)),
                    // The control plane at its fixed address, the others after it.
                    private_ip: Some(
                        i.private_ip
                            .clone()
                            .unwrap_or_else(|| format!("10.0.0.{}", 20 + k)),
                    ),
                    public_ip: Some(format!("203.0.113.{}", 10 + k)),
                    version: None,
                    // The tags it was launched with (the control plane's backup interval).
                    backup_interval: i
                        .tags
                        .iter()
                        .find(|(t, _)| t == crate::core::stamp::BACKUP_INTERVAL_TAG)
                        .map(|(_, v)| v.clone()),
                    ..Default::default()
                })
            }
        }
        Desired::WorkerPool(p) => {
            for (logical, z) in &p.zones {
                for k in 0..z.count {
                    obs.instances.push(ObsInstance {
                        id: format!("i-{logical}-{k}"),
                        logical: some(logical),
                        state: "running".into(),
                        subnet_id: Some(aws(&z.subnet)),
                        private_ip: Some(format!("10.0.1.{}", 10 + k)),
                        public_ip: None,
                        version: Some(p.version.clone()),
                        launch_hash: Some(p.launch_hash.clone()),
                        instance_type: Some(p.instance_type.clone()),
                        launched_at: Some(NOW - 3600 + i64::from(k)),
                        backup_interval: None,
                    })
                }
            }
        }
        Desired::EksCluster(e) => {
            obs.eks = Some(ObsEks {
                name: e.name.clone(),
                arn: format!("arn:aws:eks:us-east-1:123456789012:cluster/{}", e.name),
                status: "ACTIVE".into(),
                version: e.version.clone(),
                endpoint: some("https://x.eks.amazonaws.com"),
                ca_data: None,
                owned: true,
                addons: Vec::new(),
                access_entries: Vec::new(),
                cluster_sg: Some(ObsSg {
                    id: "sg-eks-cluster".into(),
                    logical: None,
                    vpc_id: aws(graph::VPC),
                    rules: Vec::new(),
                }),
                nodegroups: Vec::new(),
                stamp: Default::default(),
                platform_version: None,
                health: Vec::new(),
                upgrade: Default::default(),
            })
        }
        _ => {}
    }
}

/// What AWS reports that names other nodes' resources.
fn observe_after(
    obs: &mut Observed,
    id: &str,
    desired: &Desired,
    groups: &std::collections::HashMap<String, String>,
    region: &str,
) {
    match desired {
        Desired::IngressRules(l) => {
            for (group, r) in &l.rules {
                let rule = obs_rule(r, groups);
                if group == graph::EKS_CLUSTER_SG {
                    if let Some(e) = obs.eks.as_mut().and_then(|e| e.cluster_sg.as_mut()) {
                        e.rules.push(rule);
                    }
                } else if let Some(sg) = obs
                    .security_groups
                    .iter_mut()
                    .find(|s| s.logical.as_deref() == Some(group))
                {
                    sg.rules.push(rule);
                }
            }
        }
        Desired::AddressAssociation(a) => {
            let instance = format!("i-{}-0", a.instance);
            if let Some(address) = obs
                .addresses
                .iter_mut()
                .find(|x| x.logical.as_deref() == Some(&a.address))
            {
                address.association_id = Some(format!("eipassoc-{}", a.instance));
                address.instance_id = Some(instance);
            }
        }
        Desired::BackupBucket(b) => {
            obs.bucket = Some(ObsBucket {
                name: BUCKET.into(),
                owned: true,
                days: Some(b.days),
                public_blocked: true,
                encrypted: true,
                snapshots: Vec::new(),
            });
        }
        Desired::InlinePolicy(p) => {
            let arn = format!("{ACCOUNT_ROLE}{}", p.role_name);
            let instance = format!("i-{}-0", graph::MASTER);
            obs.policies.push(ObsPolicy {
                role: p.role_name.clone(),
                name: p.name.clone(),
                document: p
                    .render(&arn, region, Some(&instance), Some((BUCKET, CLUSTER_ID)))
                    .unwrap(),
            });
        }
        Desired::EksAddons(a) => {
            let e = obs.eks.as_mut().unwrap();
            e.addons.extend(a.names.iter().map(|(n, _)| ObsAddon {
                name: n.clone(),
                status: "ACTIVE".into(),
                issues: vec![],
                version: a.pins.get(n).cloned().unwrap_or_default(),
            }));
        }
        Desired::AccessEntries(a) => {
            let e = obs.eks.as_mut().unwrap();
            e.access_entries = a
                .entries
                .iter()
                .map(|w| ObsAccessEntry {
                    principal: w.principal_arn.clone(),
                    owned: true,
                    policies: vec![(
                        crate::core::kinds::access_entries::access_policy_arn(&e.arn, w.policy),
                        w.namespaces.clone(),
                    )],
                })
                .collect();
        }
        Desired::Nodegroup(ng) => {
            let s = &ng.spec;
            let e = obs.eks.as_mut().unwrap();
            e.nodegroups.push(ObsNodegroup {
                name: ng.name.clone(),
                logical: Some(id.to_string()),
                arn: format!("arn:aws:eks:::nodegroup/{}", ng.name),
                status: "ACTIVE".into(),
                min: s.min,
                max: s.max,
                desired: s.desired,
                owned: true,
                instance_types: s.instance_types.clone(),
                spot: s.spot,
                labels: s.labels.clone(),
                issues: vec![],
                version: e.version.clone(),
                release_version: format!("{}.0-20261201", e.version),
                max_unavailable: s.max_unavailable,
                taints: s.taints.clone(),
                launch_template: Some(aws(&ng.template)),
                subnets: ng.subnets.iter().map(|s| aws(s)).collect(),
            });
        }
        _ => {}
    }
}
