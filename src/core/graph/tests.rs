//! The graph builder's unit tests.

use super::*;
use crate::core::kinds::iam_role::IamRole;
use crate::core::kinds::{Desired, Kind};
use crate::core::spec::{self, ClusterSpec, Flavor};
use rules::rules;

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
            EKS_UPGRADE,
            ACCESS_ENTRIES,
            ADDONS_BASE,
            NODE_TEMPLATE,
            NODEGROUP,
            NODEGROUP_RETIRE,
            ADDONS
        ]
    );
    // The roles and the network are independent: created concurrently, once the read-only
    // lookups have passed (nothing is made for an instance type no zone offers).
    assert_eq!(deps(&g, CLUSTER_ROLE), [AZS]);
    assert_eq!(deps(&g, NODE_ROLE), [AZS]);
    assert_eq!(deps(&g, VPC), [AZS]);
    assert!(waits_for(&g, EKS_CLUSTER, CLUSTER_ROLE));
    assert!(waits_for(&g, EKS_CLUSTER, "subnet-1"));
    assert!(
        !waits_for(&g, EKS_CLUSTER, NODE_ROLE),
        "the node role is not on the cluster's path"
    );
    // An upgrade goes before anything that runs on the cluster, which is then at the new version.
    for id in [ADDONS_BASE, NODEGROUP, ADDONS] {
        assert!(waits_for(&g, id, EKS_UPGRADE), "{id}");
    }
    // The pod network before the nodes, CoreDNS and the CSI controller after them.
    assert!(waits_for(&g, NODEGROUP, ADDONS_BASE));
    assert!(waits_for(&g, ADDONS, NODEGROUP));
    assert!(waits_for(&g, ADDONS, EBS_CSI_ROLE));
    let names = |id: &str| match &g.get(id).unwrap().desired {
        Desired::EksAddons(a) => a.names.clone(),
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
        Desired::IamRole(IamRole {
            service, policies, ..
        }) => {
            assert_eq!(*service, "ec2.amazonaws.com");
            assert_eq!(policies, &EKS_NODE_POLICIES.map(String::from));
        }
        other => panic!("{other:?}"),
    }
    match &g.get(NODEGROUP).unwrap().desired {
        Desired::Nodegroup(n) => {
            assert_eq!(n.subnets, ["subnet-0", "subnet-1"]);
            assert_eq!((n.spec.min, n.spec.max, n.spec.desired), (1, 3, 2));
        }
        other => panic!("{other:?}"),
    }
    // No kubeadm nodes, and no instance-profile or secret for EKS.
    assert!(g.nodes.iter().all(|n| !matches!(
        n.kind(),
        Kind::Instances | Kind::BootstrapSecret | Kind::InstanceProfile | Kind::Image
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
        Desired::RouteTable(r) => {
            assert_eq!(r.gateway, NAT_GATEWAY);
            assert_eq!(r.subnets, ["private-subnet-0", "private-subnet-1"]);
        }
        other => panic!("{other:?}"),
    }
    match &g.get(NODEGROUP).unwrap().desired {
        Desired::Nodegroup(n) => {
            assert_eq!(n.subnets, ["private-subnet-0", "private-subnet-1"])
        }
        other => panic!("{other:?}"),
    }
    assert!(
        waits_for(&g, NODEGROUP, PRIVATE_ROUTE_TABLE),
        "nodes need their way out"
    );
    assert!(waits_for(&g, EKS_CLUSTER, "private-subnet-1"));
    match &g.get("private-subnet-0").unwrap().desired {
        Desired::Subnet(s) => assert!(!s.public),
        other => panic!("{other:?}"),
    }
}

#[test]
fn several_node_groups_each_get_a_template_their_subnets_and_are_retired_after_all() {
    let text = "name = \"e\"\nregion = \"us-east-1\"\nkind = \"eks\"\n[network]\nvpc_cidr = \"10.0.0.0/16\"\nadmin_cidrs = [\"203.0.113.0/24\"]\nprivate_subnets = true\n[[eks.nodegroups]]\nname = \"web\"\ninstance_types = [\"t3.large\"]\nmin = 1\nmax = 3\ndesired = 2\n[[eks.nodegroups]]\nname = \"edge\"\ninstance_types = [\"m7g.large\"]\nmin = 0\nmax = 2\ndesired = 1\ndisk_size = 50\nsubnets = \"public\"\ntaints = [{ key = \"edge\", effect = \"NO_SCHEDULE\" }]\n";
    let spec = spec::parse("t.toml", text).unwrap().0;
    let g = build(&spec);
    for (group, name, template, disk, subnets) in [
        (
            "nodegroup-web",
            "e-web",
            "node-launch-template-web",
            20,
            ["private-subnet-0", "private-subnet-1"],
        ),
        (
            "nodegroup-edge",
            "e-edge",
            "node-launch-template-edge-50gb",
            50,
            ["subnet-0", "subnet-1"],
        ),
    ] {
        match &g.get(group).unwrap().desired {
            Desired::Nodegroup(n) => {
                assert_eq!(n.name, name);
                assert_eq!(n.subnets, subnets);
                assert_eq!(n.template, template);
            }
            other => panic!("{other:?}"),
        }
        match &g.get(template).unwrap().desired {
            Desired::LaunchTemplate(t) => {
                let size = if disk == 20 {
                    String::new()
                } else {
                    format!("-{disk}gb")
                };
                assert_eq!(t.name, format!("provision-e-{}{size}", &name[2..]));
                assert_eq!(t.disk_gb, disk);
            }
            other => panic!("{other:?}"),
        }
        assert!(waits_for(&g, group, EKS_UPGRADE));
        assert!(waits_for(&g, NODEGROUP_RETIRE, group), "{group}");
        assert!(waits_for(&g, ADDONS, group), "CoreDNS needs nodes: {group}");
    }
    assert!(waits_for(&g, "nodegroup-web", PRIVATE_ROUTE_TABLE));
    assert!(!waits_for(&g, "nodegroup-edge", PRIVATE_ROUTE_TABLE));
    match &g.get(EKS_UPGRADE).unwrap().desired {
        Desired::EksUpgrade(u) => assert_eq!(
            u.nodegroups,
            [
                ("nodegroup-web".to_string(), None),
                ("nodegroup-edge".to_string(), None)
            ]
        ),
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
            ETCD_BACKUPS,
            "master-eip",
            "node-reports",
            "ssm-agent",
            SG_LINKS,
            MASTER,
            CA_ACCESS,
            "control-plane-upgrade",
            JOIN_TOKEN,
            "workers",
            "master-eip-association"
        ]
    );
}

#[test]
fn the_control_plane_has_a_fixed_address_its_certificate_names() {
    use crate::core::kinds::instances::Instances;
    use crate::core::userdata::UserData;
    let g = build(&demo_spec(2, 2));
    let node = |id: &str| g.nodes.iter().find(|n| n.id == id).unwrap();
    let master = node(MASTER);
    assert!(
        master.deps.iter().any(|d| d == "master-eip"),
        "allocated first"
    );
    let Desired::Instances(Instances {
        user_data: UserData::Master(doc),
        ..
    }) = &master.desired
    else {
        panic!("{:?}", master.desired)
    };
    assert_eq!(doc.addresses, ["master-eip"]);
    let association = node("master-eip-association");
    assert_eq!(association.deps, ["master-eip", MASTER]);
    assert_eq!(node("master-eip").desired.kind(), Kind::ElasticIp);
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
    let (len, path) = g.critical_path(|n| {
        if matches!(n.kind(), Kind::Instances | Kind::WorkerPool) {
            10.0
        } else {
            1.0
        }
    });
    assert_eq!(path.last().map(String::as_str), Some("workers"), "{path:?}");
    assert!(path.contains(&MASTER.to_string()));
    assert!(len >= 20.0);
}
