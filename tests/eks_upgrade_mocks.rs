//! EKS upgrade paths the emulator does not show, through SDK-level mocks (aws-smithy-mocks): an
//! update EKS reports Failed, upgrade insights in ERROR, and a step that finds its update
//! already running (a killed `up`) and follows it instead of starting another.

mod common;

use std::time::Duration;

use aws_sdk_eks::Client;
use aws_sdk_eks::operation::describe_addon_versions::DescribeAddonVersionsOutput;
use aws_sdk_eks::operation::describe_insight::DescribeInsightOutput;
use aws_sdk_eks::operation::describe_update::DescribeUpdateOutput;
use aws_sdk_eks::operation::list_insights::ListInsightsOutput;
use aws_sdk_eks::operation::list_updates::ListUpdatesOutput;
use aws_sdk_eks::operation::update_cluster_version::{
    UpdateClusterVersionError, UpdateClusterVersionOutput,
};
use aws_sdk_eks::operation::update_nodegroup_version::UpdateNodegroupVersionOutput;
use aws_sdk_eks::types::error::ResourceInUseException;
use aws_sdk_eks::types::{
    ErrorCode, ErrorDetail, Insight, InsightStatus, InsightStatusValue, InsightSummary, Update,
    UpdateParam, UpdateParamType, UpdateStatus, UpdateType,
};
use aws_smithy_mocks::{RuleMode, mock};
use provision::aws::eks_upgrade;
use provision::core::kinds::Refusal;
use provision::core::kinds::eks_cluster::ObsEks;
use provision::core::kinds::eks_upgrade::{Drift, EksUpgrade, steps};

fn update(id: &str, status: UpdateStatus, version: &str) -> Update {
    Update::builder()
        .id(id)
        .status(status)
        .r#type(UpdateType::VersionUpdate)
        .params(
            UpdateParam::builder()
                .r#type(UpdateParamType::Version)
                .value(version)
                .build(),
        )
        .build()
}

fn described(u: Update) -> DescribeUpdateOutput {
    DescribeUpdateOutput::builder().update(u).build()
}

#[tokio::test(start_paused = true)]
async fn a_failed_node_group_update_is_an_error_naming_what_eks_reports() {
    let start = mock!(Client::update_nodegroup_version).then_output(|| {
        UpdateNodegroupVersionOutput::builder()
            .update(update("u-ng", UpdateStatus::InProgress, "1.35"))
            .build()
    });
    let describe = mock!(Client::describe_update)
        .match_requests(|r| {
            r.update_id() == Some("u-ng") && r.nodegroup_name() == Some("demo-nodes")
        })
        .sequence()
        .output(|| described(update("u-ng", UpdateStatus::InProgress, "1.35")))
        .times(2)
        .output(|| {
            let mut u = update("u-ng", UpdateStatus::Failed, "1.35");
            u.errors = Some(vec![
                ErrorDetail::builder()
                    .error_code(ErrorCode::PodEvictionFailure)
                    .error_message("Reached max retries while trying to evict pods from nodes in node group demo-nodes")
                    .build(),
            ]);
            described(u)
        })
        .build();
    let c = common::eks_mocked(&[&start, &describe], RuleMode::MatchAny).await;
    let t0 = tokio::time::Instant::now();
    let err = eks_upgrade::run_step(
        &c,
        "demo",
        &Drift::Nodegroup {
            name: "demo-nodes".into(),
            from: "1.34".into(),
            to: "1.35".into(),
            update_config: None,
        },
        Duration::from_secs(3600),
        &|_| {},
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("u-ng of node group demo-nodes on demo"),
        "{err}"
    );
    assert!(
        err.contains("EKS reports it Failed: PodEvictionFailure: Reached max retries"),
        "{err}"
    );
    assert_eq!(describe.num_calls(), 3);
    assert_eq!(t0.elapsed(), Duration::from_secs(30), "polled every 15 s");
}

#[tokio::test(start_paused = true)]
async fn a_control_plane_update_already_running_is_followed_not_started_again() {
    // The killed run had started u-run (to 1.34); an older, finished update is listed too.
    let refused = mock!(Client::update_cluster_version).then_error(|| {
        UpdateClusterVersionError::ResourceInUseException(
            ResourceInUseException::builder()
                .message("Cluster has an update in progress")
                .meta(
                    aws_sdk_eks::error::ErrorMetadata::builder()
                        .code("ResourceInUseException")
                        .message("Cluster has an update in progress")
                        .build(),
                )
                .build(),
        )
    });
    let list = mock!(Client::list_updates).then_output(|| {
        ListUpdatesOutput::builder()
            .update_ids("u-old")
            .update_ids("u-run")
            .build()
    });
    let old = mock!(Client::describe_update)
        .match_requests(|r| r.update_id() == Some("u-old"))
        .then_output(|| described(update("u-old", UpdateStatus::Successful, "1.33")));
    let running = mock!(Client::describe_update)
        .match_requests(|r| r.update_id() == Some("u-run"))
        .sequence()
        .output(|| described(update("u-run", UpdateStatus::InProgress, "1.34")))
        .times(2)
        .output(|| described(update("u-run", UpdateStatus::Successful, "1.34")))
        .build();
    let c = common::eks_mocked(&[&refused, &list, &old, &running], RuleMode::MatchAny).await;
    eks_upgrade::run_step(
        &c,
        "demo",
        &Drift::ControlPlane {
            from: "1.33".into(),
            to: "1.34".into(),
        },
        Duration::from_secs(3600),
        &|_| {},
    )
    .await
    .unwrap();
    assert_eq!(refused.num_calls(), 1, "one UpdateClusterVersion, refused");
    assert_eq!(
        running.num_calls(),
        3,
        "found in progress, then followed to Successful"
    );
}

#[tokio::test(start_paused = true)]
async fn a_started_update_is_followed_until_successful() {
    let start = mock!(Client::update_cluster_version).then_output(|| {
        UpdateClusterVersionOutput::builder()
            .update(update("u-1", UpdateStatus::InProgress, "1.34"))
            .build()
    });
    let describe = mock!(Client::describe_update)
        .sequence()
        .output(|| described(update("u-1", UpdateStatus::InProgress, "1.34")))
        .times(31)
        .output(|| described(update("u-1", UpdateStatus::Successful, "1.34")))
        .build();
    let c = common::eks_mocked(&[&start, &describe], RuleMode::MatchAny).await;
    let t0 = tokio::time::Instant::now();
    let seen = std::sync::Mutex::new(0);
    eks_upgrade::run_step(
        &c,
        "demo",
        &Drift::ControlPlane {
            from: "1.33".into(),
            to: "1.34".into(),
        },
        Duration::from_secs(3600),
        &|s| {
            assert_eq!(s, "InProgress");
            *seen.lock().unwrap() += 1;
        },
    )
    .await
    .unwrap();
    // An 8-minute control plane update: 32 DescribeUpdate, noticed within 15 s.
    assert_eq!(describe.num_calls(), 32);
    assert_eq!(t0.elapsed(), Duration::from_secs(31 * 15));
    assert_eq!(*seen.lock().unwrap(), 31);
}

fn observed(version: &str) -> ObsEks {
    ObsEks {
        name: "demo".into(),
        arn: "arn:aws:eks:us-east-1:123456789012:cluster/demo".into(),
        status: "ACTIVE".into(),
        version: version.into(),
        endpoint: None,
        ca_data: None,
        owned: true,
        addons: vec![],
        access_entries: vec![],
        cluster_sg: None,
        nodegroups: vec![],
        stamp: Default::default(),
        platform_version: None,
        health: vec![],
        upgrade: Default::default(),
    }
}

#[tokio::test(start_paused = true)]
async fn insights_in_error_refuse_the_upgrade_naming_each_and_its_recommendation() {
    let list = mock!(Client::list_insights)
        .match_requests(|r| {
            r.filter().is_some_and(|f| {
                f.statuses() == [InsightStatusValue::Error]
                    && f.categories() == [aws_sdk_eks::types::Category::UpgradeReadiness]
            })
        })
        .then_output(|| {
            ListInsightsOutput::builder()
                .insights(
                    InsightSummary::builder()
                        .id("ins-1")
                        .name("Deprecated APIs removed in Kubernetes v1.35")
                        .insight_status(
                            InsightStatus::builder()
                                .status(InsightStatusValue::Error)
                                .reason("Deprecated API usage detected within last 30 days")
                                .build(),
                        )
                        .build(),
                )
                .build()
        });
    let describe = mock!(Client::describe_insight)
        .match_requests(|r| r.id() == Some("ins-1"))
        .then_output(|| {
            DescribeInsightOutput::builder()
                .insight(
                    Insight::builder()
                        .id("ins-1")
                        .recommendation(
                            "Update manifests and API clients to use newer Kubernetes APIs",
                        )
                        .build(),
                )
                .build()
        });
    let catalog = mock!(Client::describe_addon_versions)
        .then_output(|| DescribeAddonVersionsOutput::builder().build());
    let c = common::eks_mocked(&[&list, &describe, &catalog], RuleMode::MatchAny).await;
    let want = EksUpgrade {
        cluster: "eks-cluster".into(),
        name: "demo".into(),
        version: "1.35".into(),
        addons: vec![],
        pins: Default::default(),
        nodegroups: vec![],
        force: false,
    };

    let mut e = observed("1.34");
    eks_upgrade::observe(&c, &mut e, "1.35", false, &Default::default())
        .await
        .unwrap();
    let why = steps(&want, &e).unwrap_err();
    assert!(matches!(why, Refusal::Insights { .. }), "{why:?}");
    let text = why.to_string();
    assert!(
        text.contains("Deprecated APIs removed in Kubernetes v1.35 (Deprecated API usage detected within last 30 days): Update manifests and API clients"),
        "{text}"
    );
    assert!(text.contains("provision up --force"), "{text}");
    assert_eq!(list.num_calls(), 1);

    // --force: the insights are not read, and the upgrade goes ahead.
    let mut forced = observed("1.34");
    eks_upgrade::observe(&c, &mut forced, "1.35", true, &Default::default())
        .await
        .unwrap();
    assert_eq!(list.num_calls(), 1, "no ListInsights under --force");
    let go = steps(
        &EksUpgrade {
            force: true,
            ..want
        },
        &forced,
    )
    .unwrap();
    assert_eq!(
        go,
        [Drift::ControlPlane {
            from: "1.34".into(),
            to: "1.35".into()
        }]
    );
}

#[tokio::test(start_paused = true)]
async fn an_update_not_visible_yet_is_asked_for_again() {
    use aws_sdk_eks::operation::describe_update::DescribeUpdateError;
    use aws_sdk_eks::types::error::ResourceNotFoundException;
    let start = mock!(Client::update_cluster_version).then_output(|| {
        UpdateClusterVersionOutput::builder()
            .update(update("u-new", UpdateStatus::InProgress, "1.34"))
            .build()
    });
    let describe = mock!(Client::describe_update)
        .sequence()
        .error(|| {
            DescribeUpdateError::ResourceNotFoundException(
                ResourceNotFoundException::builder()
                    .message("No update found for ID: u-new")
                    .meta(
                        aws_sdk_eks::error::ErrorMetadata::builder()
                            .code("ResourceNotFoundException")
                            .message("No update found for ID: u-new")
                            .build(),
                    )
                    .build(),
            )
        })
        .times(2)
        .output(|| described(update("u-new", UpdateStatus::Successful, "1.34")))
        .build();
    let c = common::eks_mocked(&[&start, &describe], RuleMode::MatchAny).await;
    eks_upgrade::run_step(
        &c,
        "demo",
        &Drift::ControlPlane {
            from: "1.33".into(),
            to: "1.34".into(),
        },
        Duration::from_secs(3600),
        &|_| {},
    )
    .await
    .unwrap();
    assert_eq!(describe.num_calls(), 3, "two NotFound, then Successful");
}
