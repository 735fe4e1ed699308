//! The AWS layer: SDK clients, one module per resource kind (each implementing [`kind::Apply`]:
//! observe by tag, apply a planned change, delete), retries for what the SDK does not retry,
//! polling, and an interceptor that counts every API call.
//!
//! Architecture invariant: every create call here sets the ownership tags in the same call
//! (TagSpecifications / Tags), and every delete call is made only for a resource discovered
//! through the cluster tag (or, for IAM and SSM, found by name *and* checked for the tag).
//!
//! Architecture invariant: no module outside `aws` (and the join token's in `kube`) touches
//! the SDK.

pub mod calls;
pub mod discover;
pub mod error;
pub mod inventory;
pub mod kind;
pub mod leftovers;
pub mod lock;
pub mod node_reports;
pub mod poll;
pub mod retag;
pub mod retry;
pub mod ssm;
pub mod token;
pub mod volumes;

// One module per kind, in the order of `core::kinds::with_kinds!`.
pub mod access_entries;
pub mod addon_secret;
pub mod address_association;
pub mod availability_zones;
pub mod backup_bucket;
pub mod bootstrap_secret;
pub mod eks_addons;
pub mod eks_cluster;
pub mod eks_upgrade;
pub mod elastic_ip;
pub mod iam_role;
pub mod image;
pub mod ingress_rules;
pub mod inline_policy;
pub mod instance_profile;
pub mod instances;
pub mod internet_gateway;
pub mod kubeadm_upgrade;
pub mod launch_template;
pub mod nat_gateway;
pub mod nodegroup;
pub mod nodegroup_retire;
pub mod route_table;
pub mod security_group;
pub mod subnet;
pub mod vpc;
pub mod worker_pool;

// What the kinds share.
pub mod instance_waits;
pub mod interfaces;

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region};

pub use calls::CallCounter;
pub use error::{AwsError, Code};
pub use poll::Tuning;

/// The SDK clients of one run, all sharing one call counter.
#[derive(Debug, Clone)]
pub struct Clients {
    pub ec2: aws_sdk_ec2::Client,
    pub eks: aws_sdk_eks::Client,
    pub elbv2: aws_sdk_elasticloadbalancingv2::Client,
    pub elb: aws_sdk_elasticloadbalancing::Client,
    pub iam: aws_sdk_iam::Client,
    pub ssm: aws_sdk_ssm::Client,
    pub sts: aws_sdk_sts::Client,
    pub s3: aws_sdk_s3::Client,
    pub region: String,
    /// The account and caller the credentials resolve to, asked once (`up` stamps the caller,
    /// the etcd bucket's name has the account).
    pub identity: std::sync::Arc<tokio::sync::OnceCell<(String, String)>>,
    /// Images looked up in this run (`image::prefetch`), by source and architecture.
    pub images: std::sync::Arc<image::Cache>,
    pub calls: CallCounter,
    /// The knobs the edge read from the environment.
    pub tuning: Tuning,
}

/// Builds clients for `region` from the standard credential and endpoint chain
/// (`AWS_PROFILE`, `AWS_ENDPOINT_URL*`, …).
///
/// Throttling and 5xx answers are retried by the SDK's standard retry mode with more attempts
/// than its default (EC2's API buckets refill in seconds); each attempt has its own timeout.
pub async fn clients(region: &str, calls: CallCounter, tuning: Tuning) -> Clients {
    build(region, calls, None, tuning).await
}

/// Clients for an explicit endpoint with dummy credentials: the seam integration tests use to
/// inspect the emulator. Never falls back to real AWS.
pub async fn clients_for_endpoint(region: &str, endpoint: &str) -> Clients {
    build(
        region,
        CallCounter::default(),
        Some(endpoint),
        Tuning::default(),
    )
    .await
}

async fn build(
    region: &str,
    calls: CallCounter,
    endpoint: Option<&str>,
    tuning: Tuning,
) -> Clients {
    let retry = RetryConfig::standard()
        .with_max_attempts(8)
        .with_initial_backoff(Duration::from_millis(500))
        .with_max_backoff(Duration::from_secs(20));
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(10))
        // An endpoint that accepts and never answers: each attempt gives up after 30 s, and the
        // call (with its retries) after 2 minutes, with the error naming the call.
        .operation_attempt_timeout(tuning.call_timeout)
        .operation_timeout(tuning.call_timeout * 4)
        .build();
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(region.to_string()))
        .retry_config(retry)
        .timeout_config(timeouts);
    if let Some(url) = endpoint {
        loader =
            loader
                .endpoint_url(url)
                .credentials_provider(aws_sdk_ec2::config::Credentials::new(
                    "test",
                    "test",
                    None,
                    None,
                    "provision-tests",
                ));
    }
    let shared = loader.load().await;
    Clients {
        ec2: aws_sdk_ec2::Client::from_conf(
            aws_sdk_ec2::config::Builder::from(&shared)
                .interceptor(calls.clone())
                .build(),
        ),
        eks: aws_sdk_eks::Client::from_conf(
            aws_sdk_eks::config::Builder::from(&shared)
                .interceptor(calls.clone())
                .build(),
        ),
        iam: aws_sdk_iam::Client::from_conf(
            aws_sdk_iam::config::Builder::from(&shared)
                .interceptor(calls.clone())
                .build(),
        ),
        ssm: aws_sdk_ssm::Client::from_conf(
            aws_sdk_ssm::config::Builder::from(&shared)
                .interceptor(calls.clone())
                .build(),
        ),
        elbv2: aws_sdk_elasticloadbalancingv2::Client::from_conf(
            aws_sdk_elasticloadbalancingv2::config::Builder::from(&shared)
                .interceptor(calls.clone())
                .build(),
        ),
        elb: aws_sdk_elasticloadbalancing::Client::from_conf(
            aws_sdk_elasticloadbalancing::config::Builder::from(&shared)
                .interceptor(calls.clone())
                .build(),
        ),
        sts: aws_sdk_sts::Client::from_conf(
            aws_sdk_sts::config::Builder::from(&shared)
                .interceptor(calls.clone())
                .build(),
        ),
        s3: aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&shared)
                .interceptor(calls.clone())
                // The emulator answers on one host: path-style requests there.
                .force_path_style(endpoint.is_some())
                .build(),
        ),
        region: region.to_string(),
        identity: std::sync::Arc::default(),
        images: std::sync::Arc::default(),
        calls,
        tuning,
    }
}

impl Clients {
    /// The account the credentials resolve to (one GetCallerIdentity per run).
    ///
    /// # Errors
    /// When there are no usable credentials.
    pub async fn account(&self) -> Result<&str, AwsError> {
        whoami(self).await.map(|(account, _)| account.as_str())
    }
}

/// The account and caller the credentials resolve to (one GetCallerIdentity per run).
///
/// # Errors
/// When there are no usable credentials.
pub async fn whoami(c: &Clients) -> Result<&(String, String), AwsError> {
    c.identity
        .get_or_try_init(|| async {
            let out = c
                .sts
                .get_caller_identity()
                .send()
                .await
                .map_err(error::api(
                    "checking the AWS credentials with",
                    "sts:GetCallerIdentity",
                ))?;
            Ok((
                out.account().unwrap_or_default().to_string(),
                out.arn().unwrap_or_default().to_string(),
            ))
        })
        .await
}

/// EC2 tags from (key, value) pairs.
pub(crate) fn ec2_tags(tags: &[(String, String)]) -> Vec<aws_sdk_ec2::types::Tag> {
    tags.iter()
        .map(|(k, v)| aws_sdk_ec2::types::Tag::builder().key(k).value(v).build())
        .collect()
}

/// S3 tags from (key, value) pairs.
pub(crate) fn s3_tags(tags: &[(String, String)]) -> Result<Vec<aws_sdk_s3::types::Tag>, AwsError> {
    tags.iter()
        .map(|(k, v)| aws_sdk_s3::types::Tag::builder().key(k).value(v).build())
        .collect::<Result<_, _>>()
        .map_err(|e| AwsError::internal(e.to_string()))
}

/// A TagSpecification for one resource type.
pub(crate) fn tag_spec(
    rt: aws_sdk_ec2::types::ResourceType,
    tags: &[(String, String)],
) -> aws_sdk_ec2::types::TagSpecification {
    aws_sdk_ec2::types::TagSpecification::builder()
        .resource_type(rt)
        .set_tags(Some(ec2_tags(tags)))
        .build()
}

/// The value of a tag in an EC2 tag list.
pub(crate) fn tag_value<'a>(tags: &'a [aws_sdk_ec2::types::Tag], key: &str) -> Option<&'a str> {
    tags.iter()
        .find(|t| t.key() == Some(key))
        .and_then(|t| t.value())
}

/// The logical id (`provision:resource`) in an EC2 tag list.
pub(crate) fn logical(tags: &[aws_sdk_ec2::types::Tag]) -> Option<String> {
    tag_value(tags, crate::core::tags::RESOURCE_TAG).map(str::to_string)
}

/// What an EC2 resource's stamp tags say (who made it, when, the cluster's expiry).
pub(crate) fn stamp_of(tags: &[aws_sdk_ec2::types::Tag]) -> crate::core::stamp::Stamp {
    crate::core::stamp::Stamp::from_tags(
        tags.iter()
            .map(|t| (t.key().unwrap_or_default(), t.value().unwrap_or_default())),
    )
}

/// Whether an EC2 tag list carries our cluster tag. The tag filter already asked for it; this
/// checks again on our side, so that `down` never acts on an answer that ignored the filter (the
/// emulator ignores it for NAT gateways).
pub(crate) fn owned(tags: &[aws_sdk_ec2::types::Tag], cluster: &str) -> bool {
    tag_value(tags, crate::core::tags::CLUSTER_TAG) == Some(cluster)
}

/// The items of a tag-filtered, paginated EC2 Describe (one call per page) that carry the
/// cluster's tag (checked again on our side, see [`owned`]).
macro_rules! list_tagged {
    ($c:expr, $op:ident, $cluster:expr, $what:literal, $tags:ident) => {{
        let items: Vec<_> = $c
            .ec2
            .$op()
            .filters($crate::aws::cluster_filter($cluster))
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err($crate::aws::error::api("listing", $what))?;
        items
            .into_iter()
            .filter(|i| $crate::aws::owned(i.$tags(), $cluster))
    }};
}
pub(crate) use list_tagged;

/// The filter that finds everything of one cluster.
pub(crate) fn cluster_filter(cluster: &str) -> aws_sdk_ec2::types::Filter {
    aws_sdk_ec2::types::Filter::builder()
        .name(format!("tag:{}", crate::core::tags::CLUSTER_TAG))
        .values(cluster)
        .build()
}
