//! The EKS building blocks of the AWS layer against the emulator: roles with their managed
//! policies, cluster and node group create / describe / wait / delete, and the order EKS
//! enforces between them. (The engine wiring of `kind = "eks"` is issue 3's next step.)

mod common;

use std::time::Duration;

use provision::aws::{Clients, access_entries, eks_addons, eks_cluster, iam_role, nodegroup};
use provision::core::graph::{EKS_CLUSTER_POLICIES, EKS_NODE_POLICIES};
use provision::core::kinds::eks_cluster::EksInfo;
use provision::core::kinds::iam_role::managed_policy_arn;
use provision::core::spec::{Arch, NodegroupSpec};

type Tags = Vec<(String, String)>;

#[tokio::test(flavor = "multi_thread")]
async fn cluster_and_nodegroup_lifecycle() {
    let c = common::sdk().await;
    let name = common::unique("eks");
    let tags = provision::core::tags::tags_for(&name, "eks-cluster", false, &Default::default());

    let (vpc, subnets) = make_network(&c).await;
    let cluster_role = format!("{name}-cluster");
    let node_role = format!("{name}-node");
    let (cluster_arn, node_arn) = make_roles(&c, &cluster_role, &node_role, &tags).await;
    let active = make_cluster(&c, &name, &cluster_arn, &subnets, &tags).await;
    install_add_ons(&c, &name, &tags).await;
    grant_access(&c, &name, &active, &tags).await;
    make_nodegroup(&c, &name, &node_arn, &subnets, &tags).await;

    // EKS refuses to delete a cluster that still has node groups: node group first.
    let err = eks_cluster::delete(&c, &name, Duration::from_secs(60))
        .await
        .unwrap_err();
    assert_eq!(err.code().as_str(), "ResourceInUseException", "{err}");
    nodegroup::delete(&c, &name, "workers", Duration::from_secs(60))
        .await
        .unwrap();
    eks_cluster::delete(&c, &name, Duration::from_secs(60))
        .await
        .unwrap();
    assert!(eks_cluster::describe(&c, &name).await.unwrap().is_none());
    // Deleting again is not an error.
    eks_cluster::delete(&c, &name, Duration::from_secs(60))
        .await
        .unwrap();

    iam_role::delete(&c, &cluster_role).await.unwrap();
    iam_role::delete(&c, &node_role).await.unwrap();
    for s in &subnets {
        c.ec2.delete_subnet().subnet_id(s).send().await.unwrap();
    }
    c.ec2.delete_vpc().vpc_id(&vpc).send().await.unwrap();
}

/// A VPC with two subnets in two zones. Returns their ids.
async fn make_network(c: &Clients) -> (String, Vec<String>) {
    let vpc = common::untagged_vpc(c, "10.50.0.0/16").await;
    let mut subnets = Vec::new();
    for (cidr, az) in [
        ("10.50.0.0/20", "us-east-1a"),
        ("10.50.16.0/20", "us-east-1b"),
    ] {
        let s = c
            .ec2
            .create_subnet()
            .vpc_id(&vpc)
            .cidr_block(cidr)
            .availability_zone(az)
            .send()
            .await
            .unwrap();
        subnets.push(s.subnet().unwrap().subnet_id().unwrap().to_string());
    }
    (vpc, subnets)
}

/// The cluster's role (trusted by EKS) and the nodes' (trusted by EC2), with their policies.
/// Returns their ARNs.
async fn make_roles(
    c: &Clients,
    cluster_role: &str,
    node_role: &str,
    tags: &Tags,
) -> (String, String) {
    let cluster_arn = iam_role::create(c, cluster_role, "eks.amazonaws.com", "test", tags)
        .await
        .unwrap();
    let node_arn = iam_role::create(c, node_role, "ec2.amazonaws.com", "test", tags)
        .await
        .unwrap();
    let arns = |arn: &str, names: &[&str]| {
        names
            .iter()
            .map(|n| managed_policy_arn(arn, n))
            .collect::<Vec<_>>()
    };
    iam_role::attach(c, cluster_role, &arns(&cluster_arn, &EKS_CLUSTER_POLICIES))
        .await
        .unwrap();
    iam_role::attach(c, node_role, &arns(&node_arn, &EKS_NODE_POLICIES))
        .await
        .unwrap();
    // Attaching again changes nothing.
    iam_role::attach(c, node_role, &arns(&node_arn, &EKS_NODE_POLICIES))
        .await
        .unwrap();
    let got = common::role_policy_names(c, node_role).await;
    assert_eq!(
        got,
        [
            "AmazonEC2ContainerRegistryReadOnly",
            "AmazonEKSWorkerNodePolicy",
            "AmazonEKS_CNI_Policy"
        ]
    );
    (cluster_arn, node_arn)
}

/// Creates the cluster and waits until it is active; returns what the wait saw.
async fn make_cluster(
    c: &Clients,
    name: &str,
    role_arn: &str,
    subnets: &[String],
    tags: &Tags,
) -> EksInfo {
    assert!(eks_cluster::describe(c, name).await.unwrap().is_none());
    let input = eks_cluster::ClusterInput {
        name,
        version: "1.35",
        role_arn,
        subnet_ids: subnets.to_vec(),
        security_group_ids: vec![],
        endpoint_public_access: true,
        endpoint_private_access: false,
        public_access_cidrs: vec!["198.51.100.0/24".into()],
        tags,
        client_token: format!("{name}-cluster"),
    };
    eks_cluster::create(c, &input).await.unwrap();
    let active = eks_cluster::wait_active(c, name, Duration::from_secs(60))
        .await
        .unwrap();
    let described = eks_cluster::describe(c, name).await.unwrap().unwrap();
    assert_eq!(described.status, "ACTIVE");
    assert_eq!(
        described.tags.get("provision:cluster").map(String::as_str),
        Some(name),
        "tagged at creation"
    );
    assert!(active.endpoint.is_some() && active.ca_data.is_some());
    active
}

/// The default add-ons (served by the emulator's in-process extension).
async fn install_add_ons(c: &Clients, name: &str, tags: &Tags) {
    let addons: Vec<String> = provision::core::spec::DEFAULT_EKS_ADDONS
        .iter()
        .map(|a| a.to_string())
        .collect();
    let want: Vec<eks_addons::AddonWant> = addons
        .iter()
        .map(|a| eks_addons::AddonWant::named(a))
        .collect();
    eks_addons::install(c, name, "vpc-1", &want, tags)
        .await
        .unwrap();
    let waits: Vec<(&str, bool)> = addons.iter().map(|a| (a.as_str(), false)).collect();
    eks_addons::wait_active(c, name, &waits, Duration::from_secs(60))
        .await
        .unwrap();
    let listed = c.eks.list_addons().cluster_name(name).send().await.unwrap();
    assert_eq!(listed.addons().len(), 5);
    let cni = c
        .eks
        .describe_addon()
        .cluster_name(name)
        .addon_name("vpc-cni")
        .send()
        .await
        .unwrap();
    assert_eq!(
        cni.addon().unwrap().configuration_values(),
        Some(r#"{"enableNetworkPolicy":"true"}"#)
    );
    let seen = eks_addons::observe(c, name, true).await.unwrap();
    assert_eq!(seen.len(), 5);
    assert!(seen.iter().all(|a| a.status == "ACTIVE"), "{seen:?}");
}

/// An access entry with its policy and scope (served by the emulator's extension).
async fn grant_access(c: &Clients, name: &str, active: &EksInfo, tags: &Tags) {
    let entries = vec![provision::core::spec::AccessEntry {
        principal_arn: "arn:aws:iam::123456789012:role/platform-admins".into(),
        policy: provision::core::spec::AccessPolicy::Edit,
        namespaces: vec!["team-a".into()],
    }];
    let observed = access_entries::observe(c, name, name).await.unwrap();
    let changes =
        provision::core::kinds::access_entries::access_changes(&active.arn, &entries, &observed);
    assert_eq!(changes.len(), 1);
    access_entries::apply_changes(c, name, &changes, tags)
        .await
        .unwrap();
    let policies = c
        .eks
        .list_associated_access_policies()
        .cluster_name(name)
        .principal_arn("arn:aws:iam::123456789012:role/platform-admins")
        .send()
        .await
        .unwrap();
    let p = &policies.associated_access_policies()[0];
    assert_eq!(
        p.policy_arn(),
        Some("arn:aws:eks::aws:cluster-access-policy/AmazonEKSEditPolicy")
    );
    assert_eq!(
        p.access_scope().map(|s| s.namespaces().to_vec()),
        Some(vec!["team-a".to_string()])
    );
    let observed = access_entries::observe(c, name, name).await.unwrap();
    assert!(
        provision::core::kinds::access_entries::access_changes(&active.arn, &entries, &observed)
            .is_empty(),
        "converged"
    );
}

/// The node group `workers`, waited for until active.
async fn make_nodegroup(c: &Clients, name: &str, node_arn: &str, subnets: &[String], tags: &Tags) {
    let spec = NodegroupSpec {
        name: "workers".into(),
        instance_types: vec!["t3.large".into()],
        arch: Arch::Amd64,
        min: 1,
        max: 3,
        desired: 2,
        spot: false,
        disk_size: 20,
        labels: Default::default(),
        max_unavailable: None,
        taints: vec![],
        public: true,
    };
    let ng = nodegroup::NodegroupInput {
        cluster: name,
        name: "workers",
        spec: &spec,
        node_role_arn: node_arn,
        subnet_ids: subnets.to_vec(),
        launch_template: None,
        tags,
        client_token: format!("{name}-workers"),
    };
    nodegroup::create(c, &ng).await.unwrap();
    nodegroup::wait_active(c, name, "workers", Duration::from_secs(60))
        .await
        .unwrap();
    let got = nodegroup::describe(c, name, "workers")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.desired, Some(2));
    assert_eq!(
        got.tags.get("provision:cluster").map(String::as_str),
        Some(name)
    );
}
