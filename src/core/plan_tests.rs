//! The planner's tests, data-driven: a converged cluster (what AWS reports after `up`), one
//! change to it per case, and the row the plan must hold for it. Adding a case is adding a row.

use super::*;
use crate::core::graph::tests::{demo_spec, eks_spec};
use crate::core::graph::{self, Rule, Source};
use crate::core::kinds::addon_secret::{ObsAddonSecrets, ObsParameter};
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
use crate::core::kinds::{Desired, Kind};
use crate::core::spec::ClusterSpec;

const NOW: i64 = 1_800_000_000;
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
fn converged(spec: &ClusterSpec) -> Observed {
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
    let some = |s: &str| Some(s.to_string());
    for n in &g.nodes {
        let id = n.id.as_str();
        match &n.desired {
            Desired::Vpc(v) => obs.vpcs.push(ObsVpc {
                id: aws(id),
                logical: some(id),
                cidr: v.cidr.to_string(),
                dns_support: Some(true),
                dns_hostnames: Some(true),
            }),
            Desired::Subnet(s) => obs.subnets.push(ObsSubnet {
                id: aws(id),
                logical: some(id),
                vpc_id: aws(graph::VPC),
                cidr: s.cidr.to_string(),
                az: format!("us-east-1{}", (b'a' + s.index as u8) as char),
                map_public_ip: s.public,
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
                rules: s.rules.iter().map(|r| obs_rule(r, &groups)).collect(),
            }),
            Desired::IamRole(r) => obs.roles.push(ObsIam {
                logical: id.into(),
                name: r.name.clone(),
                arn: format!("{ACCOUNT_ROLE}{}", r.name),
                owned: true,
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
            }),
            Desired::BootstrapSecret(s) => {
                obs.secret = Some(ObsSecret {
                    name: s.parameter.clone(),
                    owned: true,
                    content: Some(Bootstrap {
                        version: 1,
                        cluster_id: "abcdefghijkl".into(),
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
                        private_ip: Some(format!("10.0.0.{}", 10 + k)),
                        public_ip: Some(format!("203.0.113.{}", 10 + k)),
                    })
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
                    nodegroup: None,
                })
            }
            _ => {}
        }
    }
    // What needs other nodes first: rules between groups, policies naming instances, what EKS
    // reports with the cluster.
    for n in &g.nodes {
        match &n.desired {
            Desired::IngressRules(l) => {
                for (group, r) in &l.rules {
                    let rule = obs_rule(r, &groups);
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
            Desired::InlinePolicy(p) => {
                let arn = format!("{ACCOUNT_ROLE}{}", p.role_name);
                let instance = format!("i-{}-0", graph::MASTER);
                obs.policies.push(ObsPolicy {
                    role: p.role_name.clone(),
                    name: p.name.clone(),
                    document: p.render(&arn, &spec.region, Some(&instance)).unwrap(),
                });
            }
            Desired::EksAddons(a) => {
                let e = obs.eks.as_mut().unwrap();
                e.addons.extend(a.names.iter().map(|(n, _)| ObsAddon {
                    name: n.clone(),
                    status: "ACTIVE".into(),
                    issues: vec![],
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
                obs.eks.as_mut().unwrap().nodegroup = Some(ObsNodegroup {
                    name: ng.name.clone(),
                    status: "ACTIVE".into(),
                    min: s.min,
                    max: s.max,
                    desired: s.desired,
                    owned: true,
                    instance_types: s.instance_types.clone(),
                    spot: s.spot,
                    labels: s.labels.clone(),
                    issues: vec![],
                });
            }
            _ => {}
        }
    }
    obs
}

fn rows(spec: &ClusterSpec, obs: &Observed) -> Vec<Row> {
    plan(spec, &graph::build(spec), obs, NOW).rows()
}

fn kubeadm_with_addons() -> ClusterSpec {
    let mut spec = demo_spec(3, 2);
    let text = "name = \"x\"\nregion = \"us-east-1\"\nkind = \"kubeadm\"\n[network]\nvpc_cidr = \"10.0.0.0/16\"\nadmin_cidrs = [\"203.0.113.0/24\"]\n[kubeadm]\ncni = \"calico\"\ninstance_type = \"t3.medium\"\nworkers = 1\n[addons]\nmonitoring = true\nlogging = true\ntracing = true\n";
    spec.addons = crate::core::spec::parse("t.toml", text).unwrap().0.addons;
    spec
}

fn eks_full() -> ClusterSpec {
    let mut spec = eks_spec("private_subnets = true");
    spec.addons = kubeadm_with_addons().addons;
    if let crate::core::spec::Flavor::Eks(e) = &mut spec.flavor {
        e.access.push(crate::core::spec::AccessEntry {
            principal_arn: "arn:aws:iam::123456789012:role/admins".into(),
            policy: crate::core::spec::AccessPolicy::Admin,
            namespaces: vec![],
        });
        e.nodegroup.labels.insert("tier".into(), "web".into());
    }
    spec
}

#[test]
fn a_converged_cluster_plans_to_keep_everything() {
    for spec in [
        demo_spec(3, 2),
        kubeadm_with_addons(),
        eks_spec(""),
        eks_full(),
    ] {
        let r = rows(&spec, &converged(&spec));
        let moving: Vec<&Row> = r.iter().filter(|r| r.action != Action::Keep).collect();
        assert!(moving.is_empty(), "{}: {moving:#?}", spec.kind());
        assert!(converged(&spec).instances.iter().all(|i| i.is_live()));
    }
}

#[test]
fn an_empty_account_means_create_everything_and_read_the_lookups() {
    for spec in [demo_spec(3, 2), kubeadm_with_addons(), eks_full()] {
        for r in rows(&spec, &Observed::default()) {
            let want = match r.kind {
                "availability-zones" | "ami" => Action::Read,
                // New workers join with the token the new control plane makes.
                "join-token" => Action::Read,
                _ => Action::Create,
            };
            assert_eq!(r.action, want, "{} {}", r.id, r.kind);
            assert!(r.reason.is_none() && r.warnings.is_empty(), "{r:?}");
        }
    }
}

/// One change to a converged cluster and the row it must give.
struct Case {
    what: &'static str,
    spec: fn() -> ClusterSpec,
    change: fn(&mut Observed),
    id: &'static str,
    action: Action,
    /// Found in the row's changes, reason or warnings.
    says: &'static str,
    /// Other nodes the change moves too.
    also: &'static [&'static str],
}

fn demo() -> ClusterSpec {
    demo_spec(3, 2)
}

fn role<'a>(obs: &'a mut Observed, id: &str) -> &'a mut ObsIam {
    obs.roles.iter_mut().find(|r| r.logical == id).unwrap()
}

fn live<'a>(obs: &'a mut Observed, id: &str) -> impl Iterator<Item = &'a mut ObsInstance> {
    let id = id.to_string();
    obs.instances
        .iter_mut()
        .filter(move |i| i.logical.as_deref() == Some(&id))
}

fn sg<'a>(obs: &'a mut Observed, id: &str) -> &'a mut ObsSg {
    obs.security_groups
        .iter_mut()
        .find(|g| g.logical.as_deref() == Some(id))
        .unwrap()
}

fn eks(obs: &mut Observed) -> &mut ObsEks {
    obs.eks.as_mut().unwrap()
}

fn nodegroup(obs: &mut Observed) -> &mut ObsNodegroup {
    eks(obs).nodegroup.as_mut().unwrap()
}

const CASES: &[Case] = &[
    // Drifts: what `up` repairs.
    Case {
        what: "DNS hostnames off",
        spec: demo,
        change: |o| o.vpcs[0].dns_hostnames = Some(false),
        id: "vpc",
        action: Action::Update,
        says: "enable DNS hostnames",
        also: &[],
    },
    Case {
        what: "DNS support off",
        spec: demo,
        change: |o| o.vpcs[0].dns_support = Some(false),
        id: "vpc",
        action: Action::Update,
        says: "enable DNS support",
        also: &[],
    },
    Case {
        what: "no public IPs on launch",
        spec: demo,
        change: |o| o.subnets[1].map_public_ip = false,
        id: "subnet-1",
        action: Action::Update,
        says: "map public IPs",
        also: &[],
    },
    Case {
        what: "gateway detached",
        spec: demo,
        change: |o| o.igws[0].attached_vpcs.clear(),
        id: "internet-gateway",
        action: Action::Update,
        says: "attach to the VPC",
        also: &[],
    },
    Case {
        what: "default route gone",
        spec: demo,
        change: |o| o.route_tables[0].default_route = None,
        id: "route-table",
        action: Action::Update,
        says: "add the default route",
        also: &[],
    },
    Case {
        what: "default route elsewhere",
        spec: demo,
        change: |o| o.route_tables[0].default_route = Some("igw-old".into()),
        id: "route-table",
        action: Action::Update,
        says: "move the default route from igw-old",
        also: &[],
    },
    Case {
        what: "association gone",
        spec: demo,
        change: |o| {
            o.route_tables[0].associations.pop();
        },
        id: "route-table",
        action: Action::Update,
        says: "associate 1 subnet(s)",
        also: &[],
    },
    Case {
        what: "own rule revoked",
        spec: demo,
        change: |o| {
            sg(o, "sg-nodes").rules.pop();
        },
        id: "sg-nodes",
        action: Action::Update,
        says: "allow",
        also: &[],
    },
    Case {
        what: "link rule revoked",
        spec: kubeadm_with_addons,
        change: |o| {
            sg(o, "sg-control-plane")
                .rules
                .retain(|r| !r.source.starts_with("sg-"))
        },
        id: "sg-links",
        action: Action::Update,
        says: "allow tcp 6443-6443",
        also: &[],
    },
    Case {
        what: "role lost a policy",
        spec: || eks_spec(""),
        change: |o| {
            role(o, graph::NODE_ROLE).policies.as_mut().unwrap().pop();
        },
        id: "node-role",
        action: Action::Update,
        says: "attach AmazonEC2ContainerRegistryReadOnly",
        also: &[],
    },
    Case {
        what: "profile lost its role",
        spec: demo,
        change: |o| o.profiles[0].roles.clear(),
        id: "node-instance-profile",
        action: Action::Update,
        says: "add the role",
        also: &[],
    },
    Case {
        what: "CA policy names an old instance",
        spec: demo,
        change: |o| o.policies[0].document = o.policies[0].document.replace("i-master-0", "i-old"),
        id: "ca-access",
        action: Action::Update,
        says: "scope it to the current control plane",
        also: &[],
    },
    Case {
        what: "log writer's parameter gone",
        spec: kubeadm_with_addons,
        change: |o| o.addon_secrets.writer = None,
        id: "addons-secret",
        action: Action::Update,
        says: "log writer",
        also: &[],
    },
    Case {
        what: "stopped control plane",
        spec: demo,
        change: |o| live(o, "master").for_each(|i| i.state = "stopped".into()),
        id: "master",
        action: Action::Update,
        says: "start 1 stopped",
        also: &[],
    },
    Case {
        what: "a worker terminated",
        spec: demo,
        change: |o| {
            live(o, "workers-0")
                .take(1)
                .for_each(|i| i.state = "terminated".into())
        },
        id: "workers-0",
        action: Action::Update,
        says: "launch 1 more (have 1, want 2)",
        also: &["ami", "join-token"],
    },
    Case {
        what: "workers missing after the token expired",
        spec: demo,
        change: |o| {
            live(o, "workers-0").for_each(|i| i.state = "terminated".into());
            o.secret
                .as_mut()
                .unwrap()
                .content
                .as_mut()
                .unwrap()
                .token_created = Some(NOW - 4 * 3600);
        },
        id: "join-token",
        action: Action::Create,
        says: "mint a new one",
        also: &["workers-0", "ami"],
    },
    Case {
        what: "workers missing with a fresh token",
        spec: demo,
        change: |o| live(o, "workers-0").for_each(|i| i.state = "terminated".into()),
        id: "join-token",
        action: Action::Read,
        says: "",
        also: &["workers-0", "ami"],
    },
    Case {
        what: "a subnet to make",
        spec: demo,
        change: |o| {
            o.subnets.pop();
        },
        id: "availability-zones",
        action: Action::Read,
        says: "",
        also: &["subnet-1", "route-table"],
    },
    Case {
        what: "a worker to launch",
        spec: demo,
        change: |o| live(o, "workers-1").for_each(|i| i.state = "terminated".into()),
        id: "ami",
        action: Action::Read,
        says: "",
        also: &["workers-1", "join-token"],
    },
    Case {
        what: "cluster still creating",
        spec: || eks_spec(""),
        change: |o| {
            let e = eks(o);
            e.status = "CREATING".into();
            e.addons.clear();
            e.access_entries.clear();
            e.nodegroup = None;
        },
        id: "eks-cluster",
        action: Action::Update,
        says: "wait until ACTIVE (now CREATING)",
        also: &["access-entries", "addons-base", "nodegroup", "addons"],
    },
    Case {
        what: "node group rescaled by hand",
        spec: || eks_spec(""),
        change: |o| nodegroup(o).desired = 1,
        id: "nodegroup",
        action: Action::Update,
        says: "scale min/max/desired 1/3/1 to 1/3/2",
        also: &[],
    },
    Case {
        what: "node group relabelled",
        spec: eks_full,
        change: |o| {
            nodegroup(o).labels.clear();
        },
        id: "nodegroup",
        action: Action::Update,
        says: "labels: set",
        also: &[],
    },
    Case {
        what: "add-on removed",
        spec: || eks_spec(""),
        change: |o| eks(o).addons.retain(|a| a.name != "coredns"),
        id: "addons",
        action: Action::Update,
        says: "install coredns",
        also: &[],
    },
    Case {
        what: "add-on updating",
        spec: || eks_spec(""),
        change: |o| {
            eks(o)
                .addons
                .iter_mut()
                .filter(|a| a.name == "vpc-cni")
                .for_each(|a| a.status = "UPDATING".into())
        },
        id: "addons-base",
        action: Action::Update,
        says: "wait until vpc-cni is ACTIVE",
        also: &[],
    },
    Case {
        what: "access entry re-scoped",
        spec: eks_full,
        change: |o| eks(o).access_entries[0].policies.clear(),
        id: "access-entries",
        action: Action::Update,
        says: "associate AmazonEKSAdminPolicy",
        also: &[],
    },
    Case {
        what: "access entry of ours dropped from the spec",
        spec: || eks_spec(""),
        change: |o| {
            eks(o).access_entries.push(ObsAccessEntry {
                principal: "arn:aws:iam::1:role/old".into(),
                owned: true,
                policies: vec![],
            })
        },
        id: "access-entries",
        action: Action::Update,
        says: "remove the access entry",
        also: &[],
    },
    Case {
        what: "NAT gateway pending",
        spec: || eks_spec("private_subnets = true"),
        change: |o| o.nat_gateways[0].state = "pending".into(),
        id: "nat-gateway",
        action: Action::Update,
        says: "wait until it is available",
        also: &[],
    },
    Case {
        what: "NAT gateway failed",
        spec: || eks_spec("private_subnets = true"),
        change: |o| o.nat_gateways[0].state = "failed".into(),
        id: "nat-gateway",
        action: Action::Replace,
        says: "",
        also: &["private-route-table"],
    },
    // Warnings: nothing to do, something to say.
    Case {
        what: "more workers than the spec",
        spec: demo,
        change: |o| {
            o.instances.push(ObsInstance {
                id: "i-extra".into(),
                logical: Some("workers-0".into()),
                state: "running".into(),
                subnet_id: None,
                private_ip: None,
                public_ip: None,
            })
        },
        id: "workers-0",
        action: Action::Warn,
        says: "scale-in is not done by up",
        also: &[],
    },
    Case {
        what: "node group degraded",
        spec: || eks_spec(""),
        change: |o| {
            nodegroup(o).status = "DEGRADED".into();
            nodegroup(o).issues = vec!["Ec2SpotCapacity".into()];
        },
        id: "nodegroup",
        action: Action::Warn,
        says: "DEGRADED (Ec2SpotCapacity)",
        also: &[],
    },
    Case {
        what: "add-on degraded",
        spec: || eks_spec(""),
        change: |o| {
            eks(o)
                .addons
                .iter_mut()
                .filter(|a| a.name == "coredns")
                .for_each(|a| a.status = "DEGRADED".into())
        },
        id: "addons",
        action: Action::Warn,
        says: "coredns is DEGRADED",
        also: &[],
    },
    Case {
        what: "cluster on another version",
        spec: || eks_spec(""),
        change: |o| eks(o).version = "1.33".into(),
        id: "eks-cluster",
        action: Action::Warn,
        says: "does not upgrade",
        also: &[],
    },
    // Refusals: `up` changes nothing.
    Case {
        what: "VPC CIDR changed",
        spec: demo,
        change: |o| o.vpcs[0].cidr = "10.9.0.0/16".into(),
        id: "vpc",
        action: Action::Refuse,
        says: "cannot be changed in place",
        also: &[],
    },
    Case {
        what: "two VPCs hold resources",
        spec: demo,
        change: |o| {
            let mut v = o.vpcs[0].clone();
            v.id = "vpc-2".into();
            o.vpcs.push(v);
            o.route_tables[0].vpc_id = "vpc-2".into();
        },
        id: "vpc",
        action: Action::Refuse,
        says: "2 VPCs carry",
        also: &[],
    },
    Case {
        what: "subnet CIDR changed",
        spec: demo,
        change: |o| o.subnets[0].cidr = "10.0.99.0/24".into(),
        id: "subnet-0",
        action: Action::Refuse,
        says: "cannot be changed in place",
        also: &[],
    },
    Case {
        what: "someone else's role",
        spec: demo,
        change: |o| role(o, graph::NODE_ROLE).owned = false,
        id: "node-role",
        action: Action::Refuse,
        says: "refusing to adopt",
        also: &[],
    },
    Case {
        what: "someone else's profile",
        spec: demo,
        change: |o| o.profiles[0].owned = false,
        id: "node-instance-profile",
        action: Action::Refuse,
        says: "refusing to adopt",
        also: &[],
    },
    Case {
        what: "someone else's secret",
        spec: demo,
        change: |o| o.secret.as_mut().unwrap().owned = false,
        id: "bootstrap-secret",
        action: Action::Refuse,
        says: "refusing to adopt",
        also: &[],
    },
    Case {
        what: "a malformed stored token",
        spec: demo,
        change: |o| o.secret.as_mut().unwrap().content.as_mut().unwrap().token = "nope".into(),
        id: "bootstrap-secret",
        action: Action::Refuse,
        says: "malformed",
        also: &[],
    },
    Case {
        what: "someone else's add-on parameter",
        spec: kubeadm_with_addons,
        change: |o| o.addon_secrets.passwords.as_mut().unwrap().owned = false,
        id: "addons-secret",
        action: Action::Refuse,
        says: "refusing to adopt",
        also: &[],
    },
    Case {
        what: "the control plane lost, workers left",
        spec: demo,
        change: |o| live(o, "master").for_each(|i| i.state = "terminated".into()),
        id: "master",
        action: Action::Refuse,
        says: "a new control plane would be a new, empty cluster",
        also: &[],
    },
    Case {
        what: "an instance stopping",
        spec: demo,
        change: |o| live(o, "workers-1").for_each(|i| i.state = "stopping".into()),
        id: "workers-1",
        action: Action::Refuse,
        says: "is stopping",
        also: &[],
    },
    Case {
        what: "a kubeadm cluster turned EKS",
        spec: || eks_spec(""),
        change: |o| {
            o.instances.push(ObsInstance {
                id: "i-1".into(),
                logical: Some("master".into()),
                state: "running".into(),
                subnet_id: None,
                private_ip: None,
                public_ip: None,
            })
        },
        id: "master",
        action: Action::Refuse,
        says: "kind = \"kubeadm\"",
        also: &[],
    },
    Case {
        what: "someone else's EKS cluster",
        spec: || eks_spec(""),
        change: |o| eks(o).owned = false,
        id: "eks-cluster",
        action: Action::Refuse,
        says: "refusing to adopt",
        also: &[],
    },
    Case {
        what: "a FAILED EKS cluster",
        spec: || eks_spec(""),
        change: |o| eks(o).status = "FAILED".into(),
        id: "eks-cluster",
        action: Action::Refuse,
        says: "is FAILED",
        also: &[],
    },
    Case {
        what: "someone else's node group",
        spec: || eks_spec(""),
        change: |o| nodegroup(o).owned = false,
        id: "nodegroup",
        action: Action::Refuse,
        says: "refusing to adopt",
        also: &[],
    },
    Case {
        what: "node group instance type changed",
        spec: || eks_spec(""),
        change: |o| nodegroup(o).instance_types = vec!["m5.large".into()],
        id: "nodegroup",
        action: Action::Refuse,
        says: "cannot be changed in place",
        also: &[],
    },
    Case {
        what: "a failed node group",
        spec: || eks_spec(""),
        change: |o| nodegroup(o).status = "CREATE_FAILED".into(),
        id: "nodegroup",
        action: Action::Refuse,
        says: "CREATE_FAILED",
        also: &[],
    },
    Case {
        what: "a failed add-on",
        spec: || eks_spec(""),
        change: |o| {
            eks(o)
                .addons
                .iter_mut()
                .filter(|a| a.name == "coredns")
                .for_each(|a| a.status = "CREATE_FAILED".into())
        },
        id: "addons",
        action: Action::Refuse,
        says: "CREATE_FAILED",
        also: &[],
    },
];

#[test]
fn every_drift_warning_and_refusal_gives_its_row() {
    for case in CASES {
        let spec = (case.spec)();
        let mut obs = converged(&spec);
        (case.change)(&mut obs);
        let all = rows(&spec, &obs);
        let row = all
            .iter()
            .find(|r| r.id == case.id && r.action == case.action)
            .unwrap_or_else(|| {
                panic!(
                    "{}: no {} row for {}: {:#?}",
                    case.what,
                    case.action.as_str(),
                    case.id,
                    all.iter()
                        .filter(|r| r.action != Action::Keep)
                        .collect::<Vec<_>>()
                )
            });
        let text: Vec<&String> = row
            .changes
            .iter()
            .chain(&row.warnings)
            .chain(&row.reason)
            .collect();
        assert!(
            case.says.is_empty() || text.iter().any(|t| t.contains(case.says)),
            "{}: {row:#?}",
            case.what
        );
        let plan = plan(&spec, &graph::build(&spec), &obs, NOW);
        assert_eq!(
            plan.refused(),
            case.action == Action::Refuse,
            "{}: a refusal, and only a refusal, stops up",
            case.what
        );
        // Exactly this change moves (a refusal may come with the consequences of its state).
        if case.action != Action::Refuse {
            let others: Vec<&Row> = all
                .iter()
                .filter(|r| r.action != Action::Keep && r.id != case.id)
                .filter(|r| !case.also.contains(&r.id.as_str()))
                .collect();
            assert!(others.is_empty(), "{}: {others:#?}", case.what);
        }
    }
}

#[test]
fn an_empty_duplicate_vpc_is_deleted_first_and_the_rest_planned_without_it() {
    let spec = demo();
    let mut obs = converged(&spec);
    let mut dup = obs.vpcs[0].clone();
    dup.id = "vpc-0dup".into();
    obs.vpcs.push(dup);
    let p = plan(&spec, &graph::build(&spec), &obs, NOW);
    assert_eq!(
        p.loose,
        [Loose::SpareVpc {
            id: "vpc-0dup".into()
        }]
    );
    let r = p.rows();
    assert_eq!(
        (r[0].action, r[0].aws_id.as_deref()),
        (Action::Delete, Some("vpc-0dup"))
    );
    assert!(r[1..].iter().all(|r| r.action == Action::Keep), "{r:#?}");
    assert!(!p.refused());
}

#[test]
fn spare_vpcs_are_the_empty_duplicates() {
    use crate::core::kinds::vpc::spare_vpcs;
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
    assert!(spare_vpcs(&Observed::default()).is_empty(), "no VPC at all");
}

#[test]
fn zones_are_looked_up_while_any_subnet_public_or_private_is_missing() {
    // Found by the crash benchmark: an `up` killed after the public subnets but before the
    // private ones skipped the lookup on resume, and the private subnets had no zone.
    let spec = eks_spec("private_subnets = true");
    let mut obs = converged(&spec);
    obs.subnets
        .retain(|s| !s.logical.as_deref().unwrap().starts_with("private-"));
    let azs = rows(&spec, &obs)
        .into_iter()
        .find(|r| r.id == graph::AZS)
        .unwrap();
    assert_eq!(azs.action, Action::Read);
}

#[test]
fn access_entries_converge_on_the_spec() {
    use crate::core::kinds::access_entries::{AccessChange, access_changes, access_policy_arn};
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
    assert_eq!(
        access_changes(arn, &want, &obs),
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
    assert_eq!(
        access_policy_arn("arn:aws-cn:eks:cn-north-1:1:cluster/e", AccessPolicy::Edit),
        "arn:aws-cn:eks::aws:cluster-access-policy/AmazonEKSEditPolicy"
    );
}

#[test]
fn destroy_lists_what_kubernetes_made_first_and_the_secret_last() {
    let spec = kubeadm_with_addons();
    let mut obs = converged(&spec);
    obs.leftovers
        .load_balancers
        .push(crate::core::observed::ObsLoadBalancer {
            id: "arn:lb".into(),
            classic: false,
        });
    let items = destroy(&obs);
    assert_eq!(
        items.first().map(|(_, d)| d.aws_id.as_str()),
        Some("arn:lb")
    );
    assert_eq!(
        items.last().map(|(_, d)| d.id.as_str()),
        Some(graph::SECRET)
    );
    let position = |kind: &str| items.iter().position(|(_, d)| d.kind == kind).unwrap();
    assert!(position("instance") < position("security-group"));
    assert!(position("subnet") < position("vpc"));
    assert!(position("iam-role") < position("secret"));
    // Someone else's role of our name is not ours to delete.
    role(&mut obs, graph::ADDONS_ROLE).owned = false;
    assert!(
        !destroy(&obs)
            .iter()
            .any(|(_, d)| d.id == graph::ADDONS_ROLE)
    );
    assert!(!obs.is_empty());
    assert!(Observed::default().is_empty());
}

#[test]
fn destroy_lists_the_eks_objects_only_when_the_cluster_is_ours() {
    let spec = eks_full();
    let mut obs = converged(&spec);
    let kinds = |obs: &Observed| -> Vec<&'static str> {
        destroy(obs).into_iter().map(|(_, d)| d.kind).collect()
    };
    for k in [
        "eks-cluster",
        "nodegroup",
        "addons",
        "access-entries",
        "nat-gateway",
        "elastic-ip",
    ] {
        assert!(kinds(&obs).contains(&k), "{k}");
    }
    eks(&mut obs).owned = false;
    for k in ["eks-cluster", "nodegroup", "addons", "access-entries"] {
        assert!(!kinds(&obs).contains(&k), "{k} of someone else's cluster");
    }
}
