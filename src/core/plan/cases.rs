//! The planner's cases: one change each to a converged cluster, and the row the plan must hold
//! for it (every drift `up` repairs, every warning, every refusal).

use super::Action;
use super::converged::NOW;
use crate::core::graph;
use crate::core::graph::tests::{demo_spec, eks_spec};
use crate::core::kinds::Observed;
use crate::core::kinds::eks_cluster::{ObsAccessEntry, ObsEks};
use crate::core::kinds::eks_upgrade::{ObsInsight, ObsUpdate, Target};
use crate::core::kinds::iam_role::ObsIam;
use crate::core::kinds::instances::ObsInstance;
use crate::core::kinds::nodegroup::ObsNodegroup;
use crate::core::kinds::security_group::ObsSg;
use crate::core::spec::ClusterSpec;

pub(super) fn kubeadm_with_addons() -> ClusterSpec {
    let mut spec = demo_spec(3, 2);
    let text = "name = \"x\"\nregion = \"us-east-1\"\nkind = \"kubeadm\"\n[network]\nvpc_cidr = \"10.0.0.0/16\"\nadmin_cidrs = [\"203.0.113.0/24\"]\n[kubeadm]\ncni = \"calico\"\ninstance_type = \"t3.medium\"\nworkers = 1\n[addons]\nmonitoring = true\nlogging = true\ntracing = true\n";
    spec.addons = crate::core::spec::parse("t.toml", text).unwrap().0.addons;
    spec
}

pub(super) fn eks_full() -> ClusterSpec {
    let mut spec = eks_spec("private_subnets = true");
    spec.addons = kubeadm_with_addons().addons;
    if let crate::core::spec::Flavor::Eks(e) = &mut spec.flavor {
        e.access.push(crate::core::spec::AccessEntry {
            principal_arn: "arn:aws:iam::123456789012:role/admins".into(),
            policy: crate::core::spec::AccessPolicy::Admin,
            namespaces: vec![],
        });
        e.nodegroups[0].labels.insert("tier".into(), "web".into());
    }
    spec
}

/// One change to a converged cluster and the row it must give.
pub(super) struct Case {
    pub what: &'static str,
    pub spec: fn() -> ClusterSpec,
    pub change: fn(&mut Observed),
    pub id: &'static str,
    pub action: Action,
    /// Found in the row's changes, reason or warnings.
    pub says: &'static str,
    /// Other nodes the change moves too.
    pub also: &'static [&'static str],
}

pub(super) fn demo() -> ClusterSpec {
    demo_spec(3, 2)
}

pub(super) fn role<'a>(obs: &'a mut Observed, id: &str) -> &'a mut ObsIam {
    obs.roles.iter_mut().find(|r| r.logical == id).unwrap()
}

pub(super) fn live<'a>(
    obs: &'a mut Observed,
    id: &str,
) -> impl Iterator<Item = &'a mut ObsInstance> {
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

pub(super) fn eks(obs: &mut Observed) -> &mut ObsEks {
    obs.eks.as_mut().unwrap()
}

/// The control plane's `ca-access` policy with `from` replaced by `to` in its document.
fn ca_policy_edited(obs: &mut Observed, from: &str, to: &str) {
    for p in obs
        .policies
        .iter_mut()
        .filter(|p| p.name == graph::CA_ACCESS_POLICY)
    {
        assert!(p.document.contains(from), "{from} not in {}", p.document);
        p.document = p.document.replace(from, to);
    }
}

/// The cluster and its node group at `version`.
fn at_version(obs: &mut Observed, version: &str) {
    let e = eks(obs);
    e.version = version.into();
    for g in &mut e.nodegroups {
        g.version = version.into();
    }
}

fn nodegroup(obs: &mut Observed) -> &mut ObsNodegroup {
    &mut eks(obs).nodegroups[0]
}

pub(super) const CASES: &[Case] = &[
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
        change: |o| ca_policy_edited(o, "i-master-0", "i-old"),
        id: "ca-access",
        action: Action::Update,
        says: "scope it to the current control plane",
        also: &[],
    },
    Case {
        what: "CA policy reaches every cluster's snapshots (an earlier release's)",
        spec: demo,
        change: |o| ca_policy_edited(o, "/etcd/abcdefghijkl/*", "/etcd/*"),
        id: "ca-access",
        action: Action::Update,
        says: "and this cluster's snapshots",
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
        id: "workers",
        action: Action::Update,
        says: "launch 1 in workers-0 (have 1, want 2)",
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
        also: &["workers", "ami"],
    },
    Case {
        what: "workers missing with a fresh token",
        spec: demo,
        change: |o| live(o, "workers-0").for_each(|i| i.state = "terminated".into()),
        id: "join-token",
        action: Action::Read,
        says: "",
        also: &["workers", "ami"],
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
        also: &["workers", "join-token"],
    },
    Case {
        what: "cluster still creating",
        spec: || eks_spec(""),
        change: |o| {
            let e = eks(o);
            e.status = "CREATING".into();
            e.addons.clear();
            e.access_entries.clear();
            e.nodegroups.clear();
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
        what: "cluster a minor below the spec",
        spec: || eks_spec(""),
        change: |o| at_version(o, "1.35"),
        id: "eks-upgrade",
        action: Action::Update,
        says: "control plane 1.35 -> 1.36",
        also: &[],
    },
    // Refusals: `up` changes nothing.
    Case {
        what: "cluster above the spec's version",
        spec: || eks_spec(""),
        change: |o| at_version(o, "1.37"),
        id: "eks-upgrade",
        action: Action::Refuse,
        says: "EKS cannot downgrade",
        also: &[],
    },
    Case {
        what: "upgrade insights in ERROR",
        spec: || eks_spec(""),
        change: |o| {
            at_version(o, "1.35");
            eks(o).upgrade.insights = Some(vec![ObsInsight {
                id: "i-1".into(),
                name: "Deprecated APIs removed in Kubernetes v1.36".into(),
                reason: "deprecated API usage detected".into(),
                recommendation: "update the manifests to the v1 API".into(),
            }]);
        },
        id: "eks-upgrade",
        action: Action::Refuse,
        says: "Deprecated APIs removed in Kubernetes v1.36 (deprecated API usage detected): update the manifests",
        also: &[],
    },
    Case {
        what: "another update in progress before an upgrade",
        spec: || eks_spec(""),
        change: |o| {
            at_version(o, "1.35");
            let e = eks(o);
            e.status = "UPDATING".into();
            e.upgrade.updates = vec![ObsUpdate {
                id: "u-1".into(),
                target: Target::Cluster,
                kind: "EndpointAccessUpdate".into(),
                status: "InProgress".into(),
                to: None,
                errors: vec![],
            }];
        },
        id: "eks-upgrade",
        action: Action::Refuse,
        says: "not a step of this upgrade (EndpointAccessUpdate u-1)",
        also: &["eks-cluster"],
    },
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
        what: "an instance stopping",
        spec: demo,
        change: |o| live(o, "workers-1").for_each(|i| i.state = "stopping".into()),
        id: "workers",
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
                version: None,
                ..Default::default()
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
        what: "node group instance type changed: blue/green",
        spec: || eks_spec(""),
        change: |o| nodegroup(o).instance_types = vec!["m5.large".into()],
        id: "nodegroup",
        action: Action::Replace,
        says: "in place of e-nodes (deleted once e-nodes-",
        also: &["nodegroup-retire"],
    },
    Case {
        what: "node group capacity type changed: the old one retired",
        spec: || eks_spec(""),
        change: |o| nodegroup(o).spot = true,
        id: "nodegroup-retire",
        action: Action::Delete,
        says: "delete e-nodes (replaced by e-nodes-",
        also: &["nodegroup"],
    },
    Case {
        what: "a replacement made, its old group not deleted yet",
        spec: || eks_spec(""),
        change: |o| {
            let mut old = nodegroup(o).clone();
            nodegroup(o).name = "e-nodes-new".into();
            old.instance_types = vec!["m5.large".into()];
            eks(o).nodegroups.push(old);
        },
        id: "nodegroup-retire",
        action: Action::Delete,
        says: "delete e-nodes (replaced by e-nodes-new)",
        also: &[],
    },
    Case {
        what: "a DEGRADED replacement: the old group is kept",
        spec: || eks_spec(""),
        change: |o| {
            let mut old = nodegroup(o).clone();
            nodegroup(o).name = "e-nodes-new".into();
            nodegroup(o).status = "DEGRADED".into();
            nodegroup(o).issues = vec!["AsgInstanceLaunchFailures: no Spot capacity".into()];
            old.instance_types = vec!["m5.large".into()];
            eks(o).nodegroups.push(old);
        },
        id: "nodegroup-retire",
        action: Action::Warn,
        says: "keeping e-nodes: its replacement e-nodes-new is DEGRADED",
        also: &["nodegroup"],
    },
    Case {
        what: "a node group removed from the spec",
        spec: || eks_spec(""),
        change: |o| {
            let mut gone = nodegroup(o).clone();
            gone.name = "e-batch".into();
            gone.logical = Some("nodegroup-batch".into());
            eks(o).nodegroups.push(gone);
        },
        id: "nodegroup-retire",
        action: Action::Delete,
        says: "delete e-batch (no longer in the spec)",
        also: &[],
    },
    Case {
        what: "a taint added by hand",
        spec: || eks_spec(""),
        change: |o| {
            nodegroup(o).taints.push(crate::core::spec::Taint {
                key: "dedicated".into(),
                value: Some("gpu".into()),
                effect: "NO_SCHEDULE".into(),
            })
        },
        id: "nodegroup",
        action: Action::Update,
        says: "remove [dedicated=gpu:NO_SCHEDULE]",
        also: &[],
    },
    Case {
        what: "someone else's node group of our name",
        spec: || eks_spec(""),
        change: |o| nodegroup(o).owned = false,
        id: "nodegroup",
        action: Action::Refuse,
        says: "refusing to adopt it",
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
