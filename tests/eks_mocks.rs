//! EKS paths the emulator cannot show, through SDK-level mocks (aws-smithy-mocks): the
//! CREATING → ACTIVE waiter, a FAILED cluster, the IAM-propagation retry of CreateCluster,
//! add-ons and access entries (the emulator answers 404 for both).

mod common;

use std::time::Duration;

use aws_sdk_eks::Client;
use aws_sdk_eks::operation::create_cluster::{CreateClusterError, CreateClusterOutput};
use aws_sdk_eks::operation::describe_addon::DescribeAddonOutput;
use aws_sdk_eks::operation::describe_cluster::DescribeClusterOutput;
use aws_sdk_eks::types::{AccessScopeType, Addon, AddonStatus, Cluster, ClusterStatus};
use aws_smithy_mocks::{RuleMode, mock};
use provision::aws::{access_entries, eks_addons, eks_cluster, nodegroup};
use provision::core::spec::{AccessEntry, AccessPolicy};

/// Clients whose EKS client answers from `rules`.
async fn clients(rules: &[&aws_smithy_mocks::Rule], mode: RuleMode) -> provision::aws::Clients {
    common::eks_mocked(rules, mode).await
}

fn cluster(status: ClusterStatus) -> Cluster {
    Cluster::builder()
        .name("demo")
        .arn("arn:aws:eks:us-east-1:123456789012:cluster/demo")
        .status(status)
        .endpoint("https://x.eks.amazonaws.com")
        .build()
}

#[tokio::test(start_paused = true)]
async fn the_active_wait_sits_through_creating() {
    let describe = mock!(Client::describe_cluster)
        .sequence()
        .output(|| {
            DescribeClusterOutput::builder()
                .cluster(cluster(ClusterStatus::Creating))
                .build()
        })
        .times(3)
        .output(|| {
            DescribeClusterOutput::builder()
                .cluster(cluster(ClusterStatus::Active))
                .build()
        })
        .build();
    let c = clients(&[&describe], RuleMode::Sequential).await;
    let seen = std::sync::Mutex::new(Vec::new());
    let start = tokio::time::Instant::now();
    let got = eks_cluster::wait_active_with(
        &c,
        "demo",
        eks_cluster::POLL_INTERVAL,
        Duration::from_secs(1800),
        &|s| seen.lock().unwrap().push(s.to_string()),
    )
    .await
    .unwrap();
    assert_eq!(got.name, "demo");
    assert_eq!(describe.num_calls(), 4, "three CREATING polls, then ACTIVE");
    assert_eq!(start.elapsed(), Duration::from_secs(45), "15 s apart");
    assert_eq!(*seen.lock().unwrap(), ["CREATING"; 3], "progress per poll");
}

/// The budget the issue sets: a 10-minute creation is noticed within 15 s, in at most 60 polls.
#[tokio::test(start_paused = true)]
async fn a_ten_minute_creation_costs_41_polls_and_is_noticed_within_15_s() {
    let describe = mock!(Client::describe_cluster)
        .sequence()
        .output(|| {
            DescribeClusterOutput::builder()
                .cluster(cluster(ClusterStatus::Creating))
                .build()
        })
        .times(40)
        .output(|| {
            DescribeClusterOutput::builder()
                .cluster(cluster(ClusterStatus::Active))
                .build()
        })
        .build();
    let c = clients(&[&describe], RuleMode::Sequential).await;
    let start = tokio::time::Instant::now();
    eks_cluster::wait_active(&c, "demo", Duration::from_secs(1800))
        .await
        .unwrap();
    // The 41st poll at 600 s sees ACTIVE: EKS's own ACTIVE at any time in (585, 600] s is
    // noticed at 600 s.
    assert_eq!(describe.num_calls(), 41);
    assert!(describe.num_calls() <= 60);
    assert_eq!(start.elapsed(), Duration::from_secs(600));
}

#[tokio::test(start_paused = true)]
async fn the_wait_gives_up_at_its_deadline_and_says_how_long() {
    let describe = mock!(Client::describe_cluster)
        .sequence()
        .output(|| {
            DescribeClusterOutput::builder()
                .cluster(cluster(ClusterStatus::Creating))
                .build()
        })
        .times(100)
        .build();
    let c = clients(&[&describe], RuleMode::Sequential).await;
    let err = eks_cluster::wait_active(&c, "demo", Duration::from_secs(60))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("still CREATING after 60 s"),
        "{err}"
    );
    assert_eq!(describe.num_calls(), 5, "at 0, 15, 30, 45 and 60 s");
}

#[tokio::test]
async fn a_failed_cluster_ends_the_wait_with_its_state() {
    let describe = mock!(Client::describe_cluster).then_output(|| {
        DescribeClusterOutput::builder()
            .cluster(cluster(ClusterStatus::Failed))
            .build()
    });
    let c = clients(&[&describe], RuleMode::Sequential).await;
    let err = eks_cluster::wait_active(&c, "demo", Duration::from_secs(1800))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("ACTIVE") && err.to_string().contains("demo"),
        "{err}"
    );
    assert_eq!(describe.num_calls(), 1, "FAILED is terminal: no more polls");
}

const PROPAGATING: &str = "Role with arn: arn:aws:iam::123456789012:role/x, could not be assumed because it does not exist or the trusted entity is not correct";

#[tokio::test(start_paused = true)]
async fn create_cluster_retries_while_its_role_propagates() {
    let create = mock!(Client::create_cluster)
        .sequence()
        .error(|| {
            CreateClusterError::InvalidParameterException(
                aws_sdk_eks::types::error::InvalidParameterException::builder()
                    .message(PROPAGATING)
                    // What the SDK's deserializer fills in from a real answer.
                    .meta(
                        aws_sdk_eks::error::ErrorMetadata::builder()
                            .code("InvalidParameterException")
                            .message(PROPAGATING)
                            .build(),
                    )
                    .build(),
            )
        })
        .times(2)
        .output(|| {
            CreateClusterOutput::builder()
                .cluster(cluster(ClusterStatus::Creating))
                .build()
        })
        .build();
    let c = clients(&[&create], RuleMode::Sequential).await;
    let input = eks_cluster::ClusterInput {
        name: "demo",
        version: "1.35",
        role_arn: "arn:aws:iam::123456789012:role/x",
        subnet_ids: vec!["subnet-1".into(), "subnet-2".into()],
        security_group_ids: vec![],
        endpoint_public_access: true,
        endpoint_private_access: false,
        public_access_cidrs: vec!["198.51.100.0/24".into()],
        tags: &[],
        client_token: "t".into(),
    };
    let got = eks_cluster::create(&c, &input).await.unwrap();
    assert_eq!(got.status, "CREATING");
    assert_eq!(create.num_calls(), 3);
}

#[tokio::test]
async fn missing_addons_are_installed_and_waited_for() {
    let list = mock!(Client::list_addons).then_output(|| {
        aws_sdk_eks::operation::list_addons::ListAddonsOutput::builder()
            .addons("coredns")
            .build()
    });
    let create = mock!(Client::create_addon)
        .match_requests(|r| {
            r.addon_name() != Some("vpc-cni")
                || r.configuration_values() == Some(r#"{"enableNetworkPolicy":"true"}"#)
        })
        .then_output(|| aws_sdk_eks::operation::create_addon::CreateAddonOutput::builder().build());
    let describe = mock!(Client::describe_addon).then_output(|| {
        DescribeAddonOutput::builder()
            .addon(
                Addon::builder()
                    .addon_name("x")
                    .status(AddonStatus::Active)
                    .build(),
            )
            .build()
    });
    let csi = mock!(Client::create_addon)
        .match_requests(|r| {
            r.addon_name() == Some("aws-ebs-csi-driver")
                && r.pod_identity_associations().iter().any(|a| {
                    a.service_account() == "ebs-csi-controller-sa"
                        && a.role_arn() == "arn:aws:iam::123456789012:role/csi"
                })
        })
        .then_output(|| aws_sdk_eks::operation::create_addon::CreateAddonOutput::builder().build());
    let c = clients(&[&list, &csi, &create, &describe], RuleMode::MatchAny).await;
    // Discovery lists them with their status.
    let have = eks_addons::observe(&c, "demo", true).await.unwrap();
    assert_eq!(have.len(), 1);
    assert_eq!(
        (have[0].name.as_str(), have[0].status.as_str()),
        ("coredns", "ACTIVE")
    );
    // The plan installs the others (coredns is there already).
    let mut want: Vec<eks_addons::AddonWant> = ["vpc-cni", "kube-proxy"]
        .map(eks_addons::AddonWant::named)
        .to_vec();
    want.push(eks_addons::AddonWant {
        name: "aws-ebs-csi-driver".into(),
        pod_identity: Some((
            "ebs-csi-controller-sa".into(),
            "arn:aws:iam::123456789012:role/csi".into(),
        )),
        version: None,
    });
    eks_addons::install(&c, "demo", "vpc-1", &want, &[])
        .await
        .unwrap();
    let waited: Vec<(&str, bool)> = want.iter().map(|a| (a.name.as_str(), false)).collect();
    let degraded = eks_addons::wait_active(&c, "demo", &waited, Duration::from_secs(600))
        .await
        .unwrap();
    assert!(degraded.is_empty());
    assert_eq!(
        create.num_calls(),
        2,
        "vpc-cni carried network policy on, and kube-proxy"
    );
    assert_eq!(
        csi.num_calls(),
        1,
        "the EBS CSI driver got its pod identity"
    );
    assert_eq!(
        describe.num_calls(),
        4,
        "one for discovery, one per add-on installed"
    );
}

#[tokio::test(start_paused = true)]
async fn a_new_degraded_addon_is_waited_for_an_old_one_reported_and_a_failed_one_fails() {
    let addon = |status: AddonStatus| {
        DescribeAddonOutput::builder()
            .addon(
                Addon::builder()
                    .addon_name("coredns")
                    .status(status)
                    .build(),
            )
            .build()
    };
    let describe = mock!(Client::describe_addon)
        .sequence()
        .output(move || addon(AddonStatus::Degraded))
        .times(2)
        .output(move || addon(AddonStatus::Active))
        .output(move || addon(AddonStatus::Degraded))
        .output(move || addon(AddonStatus::CreateFailed))
        .build();
    let create = mock!(Client::create_addon)
        .then_output(|| aws_sdk_eks::operation::create_addon::CreateAddonOutput::builder().build());
    let c = clients(&[&describe, &create], RuleMode::MatchAny).await;
    let want = [eks_addons::AddonWant::named("coredns")];
    // Created now: DEGRADED until its pods have nodes, so it is waited for.
    let start = tokio::time::Instant::now();
    eks_addons::install(&c, "demo", "vpc-1", &want, &[])
        .await
        .unwrap();
    let new = [("coredns", false)];
    let degraded = eks_addons::wait_active(&c, "demo", &new, Duration::from_secs(600))
        .await
        .unwrap();
    assert!(degraded.is_empty());
    assert_eq!(create.num_calls(), 1);
    assert_eq!(describe.num_calls(), 3);
    assert_eq!(
        start.elapsed(),
        Duration::from_secs(20),
        "polled every 10 s"
    );
    // Already there and DEGRADED: reported at once, not waited for 15 minutes.
    let old = [("coredns", true)];
    let degraded = eks_addons::wait_active(&c, "demo", &old, Duration::from_secs(600))
        .await
        .unwrap();
    assert_eq!(degraded.len(), 1, "{degraded:?}");
    assert_eq!(describe.num_calls(), 4);
    let err = eks_addons::wait_active(&c, "demo", &old, Duration::from_secs(600))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("CREATE_FAILED"), "{err}");
}

#[tokio::test]
async fn access_entries_get_their_policy_and_scope() {
    let create = mock!(Client::create_access_entry).then_output(|| {
        aws_sdk_eks::operation::create_access_entry::CreateAccessEntryOutput::builder().build()
    });
    let cluster_wide = mock!(Client::associate_access_policy)
        .match_requests(|r| {
            r.principal_arn() == Some("arn:aws:iam::123456789012:role/admins")
                && r.policy_arn()
                    == Some("arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy")
                && r.access_scope().and_then(|s| s.r#type()) == Some(&AccessScopeType::Cluster)
        })
        .then_output(|| {
            aws_sdk_eks::operation::associate_access_policy::AssociateAccessPolicyOutput::builder()
                .build()
        });
    let namespaced = mock!(Client::associate_access_policy)
        .match_requests(|r| {
            r.principal_arn() == Some("arn:aws:iam::123456789012:user/dev")
                && r.policy_arn()
                    == Some("arn:aws:eks::aws:cluster-access-policy/AmazonEKSEditPolicy")
                && r.access_scope().map(|s| s.namespaces().to_vec())
                    == Some(vec!["team-a".to_string()])
        })
        .then_output(|| {
            aws_sdk_eks::operation::associate_access_policy::AssociateAccessPolicyOutput::builder()
                .build()
        });
    let view = mock!(Client::associate_access_policy)
        .match_requests(|r| {
            r.principal_arn() == Some("arn:aws:iam::123456789012:role/already")
                && r.policy_arn()
                    == Some("arn:aws:eks::aws:cluster-access-policy/AmazonEKSViewPolicy")
        })
        .then_output(|| {
            aws_sdk_eks::operation::associate_access_policy::AssociateAccessPolicyOutput::builder()
                .build()
        });
    let c = clients(
        &[&create, &cluster_wide, &namespaced, &view],
        RuleMode::MatchAny,
    )
    .await;
    let entries = vec![
        AccessEntry {
            principal_arn: "arn:aws:iam::123456789012:role/admins".into(),
            policy: AccessPolicy::ClusterAdmin,
            namespaces: vec![],
        },
        AccessEntry {
            principal_arn: "arn:aws:iam::123456789012:user/dev".into(),
            policy: AccessPolicy::Edit,
            namespaces: vec!["team-a".into()],
        },
        AccessEntry {
            principal_arn: "arn:aws:iam::123456789012:role/already".into(),
            policy: AccessPolicy::View,
            namespaces: vec![],
        },
    ];
    // The existing entry lost its association (a run stopped between the two calls).
    let observed = [provision::core::kinds::eks_cluster::ObsAccessEntry {
        principal: "arn:aws:iam::123456789012:role/already".into(),
        owned: true,
        policies: vec![],
    }];
    // The plan decides the changes; the AWS side makes them.
    let changes = provision::core::kinds::access_entries::access_changes(
        "arn:aws:eks:us-east-1:123456789012:cluster/demo",
        &entries,
        &observed,
    );
    assert_eq!(changes.len(), 3);
    access_entries::apply_changes(&c, "demo", &changes, &[])
        .await
        .unwrap();
    assert_eq!(
        create.num_calls(),
        2,
        "the existing entry is not created again"
    );
    assert_eq!((cluster_wide.num_calls(), namespaced.num_calls()), (1, 1));
    assert_eq!(view.num_calls(), 1, "its association is restored");
}

fn nodegroup(status: aws_sdk_eks::types::NodegroupStatus) -> aws_sdk_eks::types::Nodegroup {
    aws_sdk_eks::types::Nodegroup::builder()
        .nodegroup_name("demo-nodes")
        .status(status)
        .health(
            aws_sdk_eks::types::NodegroupHealth::builder()
                .issues(
                    aws_sdk_eks::types::Issue::builder()
                        .code(aws_sdk_eks::types::NodegroupIssueCode::NodeCreationFailure)
                        .message("Instances failed to join the kubernetes cluster")
                        .build(),
                )
                .build(),
        )
        .build()
}

#[tokio::test(start_paused = true)]
async fn the_node_group_wait_sits_through_creating_and_reports_why_it_failed() {
    use aws_sdk_eks::operation::describe_nodegroup::DescribeNodegroupOutput;
    use aws_sdk_eks::types::NodegroupStatus;
    let describe = mock!(Client::describe_nodegroup)
        .sequence()
        .output(|| {
            DescribeNodegroupOutput::builder()
                .nodegroup(nodegroup(NodegroupStatus::Creating))
                .build()
        })
        .times(2)
        .output(|| {
            DescribeNodegroupOutput::builder()
                .nodegroup(nodegroup(NodegroupStatus::Active))
                .build()
        })
        .output(|| {
            DescribeNodegroupOutput::builder()
                .nodegroup(nodegroup(NodegroupStatus::CreateFailed))
                .build()
        })
        .build();
    let c = clients(&[&describe], RuleMode::Sequential).await;
    let start = tokio::time::Instant::now();
    nodegroup::wait_active(&c, "demo", "demo-nodes", Duration::from_secs(1800))
        .await
        .unwrap();
    assert_eq!(describe.num_calls(), 3);
    assert_eq!(start.elapsed(), Duration::from_secs(30));
    let err = nodegroup::wait_active(&c, "demo", "demo-nodes", Duration::from_secs(1800))
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("CREATE_FAILED")
            && msg.contains("NodeCreationFailure")
            && msg.contains("failed to join"),
        "{msg}"
    );
}

/// `down` deletes the node group before the cluster: EKS refuses the other order.
#[tokio::test(start_paused = true)]
async fn deleting_a_cluster_that_still_has_a_node_group_is_refused_with_the_aws_code() {
    let delete = mock!(Client::delete_cluster).then_error(|| {
        aws_sdk_eks::operation::delete_cluster::DeleteClusterError::ResourceInUseException(
            aws_sdk_eks::types::error::ResourceInUseException::builder()
                .message("Cluster has nodegroups attached")
                .meta(
                    aws_sdk_eks::error::ErrorMetadata::builder()
                        .code("ResourceInUseException")
                        .message("Cluster has nodegroups attached")
                        .build(),
                )
                .build(),
        )
    });
    let c = clients(&[&delete], RuleMode::Sequential).await;
    let err = eks_cluster::delete(&c, "demo", Duration::from_secs(60))
        .await
        .unwrap_err();
    assert_eq!(err.code().as_str(), "ResourceInUseException");
    assert!(err.to_string().contains("demo"), "{err}");
}

#[tokio::test(start_paused = true)]
async fn a_role_that_never_becomes_usable_fails_at_the_deadline_and_says_so() {
    let create = mock!(Client::create_cluster)
        .sequence()
        .error(|| {
            CreateClusterError::InvalidParameterException(
                aws_sdk_eks::types::error::InvalidParameterException::builder()
                    .message(PROPAGATING)
                    .meta(
                        aws_sdk_eks::error::ErrorMetadata::builder()
                            .code("InvalidParameterException")
                            .message(PROPAGATING)
                            .build(),
                    )
                    .build(),
            )
        })
        .times(1000)
        .build();
    let c = clients(&[&create], RuleMode::Sequential).await;
    let input = eks_cluster::ClusterInput {
        name: "demo",
        version: "1.35",
        role_arn: "arn:aws:iam::123456789012:role/x",
        subnet_ids: vec!["subnet-1".into(), "subnet-2".into()],
        security_group_ids: vec![],
        endpoint_public_access: true,
        endpoint_private_access: false,
        public_access_cidrs: vec!["198.51.100.0/24".into()],
        tags: &[],
        client_token: "t".into(),
    };
    let start = tokio::time::Instant::now();
    let err = eks_cluster::create(&c, &input).await.unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("300 s") && msg.contains("could not be assumed"),
        "{msg}"
    );
    assert!(start.elapsed() <= Duration::from_secs(300));
    assert!(
        create.num_calls() > 10,
        "retried with backoff: {}",
        create.num_calls()
    );
}

/// A client request token that already served a cluster since deleted answers with that
/// cluster: `create_cluster` then creates with a fresh token.
#[tokio::test]
async fn a_token_spent_on_a_deleted_cluster_is_replaced() {
    let spent = mock!(Client::create_cluster)
        .match_requests(|r| r.client_request_token() == Some("tok"))
        .then_output(|| {
            CreateClusterOutput::builder()
                .cluster(cluster(ClusterStatus::Deleting))
                .build()
        });
    let fresh = mock!(Client::create_cluster)
        .match_requests(|r| {
            r.client_request_token()
                .is_some_and(|t| t.starts_with("tok-") && t.len() > 4)
        })
        .then_output(|| {
            CreateClusterOutput::builder()
                .cluster(cluster(ClusterStatus::Creating))
                .build()
        });
    let c = clients(&[&spent, &fresh], RuleMode::MatchAny).await;
    let input = eks_cluster::ClusterInput {
        name: "demo",
        version: "1.35",
        role_arn: "arn:aws:iam::123456789012:role/x",
        subnet_ids: vec!["subnet-1".into(), "subnet-2".into()],
        security_group_ids: vec![],
        endpoint_public_access: true,
        endpoint_private_access: true,
        public_access_cidrs: vec!["198.51.100.0/24".into()],
        tags: &[],
        client_token: "tok".into(),
    };
    let got = eks_cluster::create(&c, &input).await.unwrap();
    assert_eq!(got.status, "CREATING");
    assert_eq!((spent.num_calls(), fresh.num_calls()), (1, 1));
}

/// Scaling a DEGRADED node group (Spot capacity reclaimed, say) is how it is repaired: the
/// update's wait accepts DEGRADED, while a new node group's does not.
#[tokio::test(start_paused = true)]
async fn a_degraded_node_group_can_still_be_scaled() {
    use aws_sdk_eks::operation::describe_nodegroup::DescribeNodegroupOutput;
    use aws_sdk_eks::operation::update_nodegroup_config::UpdateNodegroupConfigOutput;
    use aws_sdk_eks::types::NodegroupStatus;
    let update = mock!(Client::update_nodegroup_config)
        .match_requests(|r| r.scaling_config().and_then(|s| s.desired_size()) == Some(3))
        .then_output(|| UpdateNodegroupConfigOutput::builder().build());
    let describe = mock!(Client::describe_nodegroup).then_output(|| {
        DescribeNodegroupOutput::builder()
            .nodegroup(nodegroup(NodegroupStatus::Degraded))
            .build()
    });
    let c = clients(&[&update, &describe], RuleMode::MatchAny).await;
    nodegroup::update(
        &c,
        "demo",
        "demo-nodes",
        nodegroup::ConfigChange {
            scaling: Some((1, 3, 3)),
            ..Default::default()
        },
        Duration::from_secs(600),
    )
    .await
    .unwrap();
    assert_eq!(update.num_calls(), 1);
    let err = nodegroup::wait_active(&c, "demo", "demo-nodes", Duration::from_secs(600))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("DEGRADED"), "{err}");
}
