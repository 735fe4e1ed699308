//! The kubeadm nodes' boot reports (`core::progress`): read in one paginated
//! GetParametersByPath; found for `down` by path and tag in one DescribeParameters; and the
//! tail of an instance's console output for a failure.

use super::error::api;
use super::{AwsError, Clients};
use crate::core::progress::{NodeReport, nodes_path};
use crate::core::tags::CLUSTER_TAG;

/// Every report under the cluster's nodes path (reports that do not parse are left out).
///
/// # Errors
/// The AWS error of the call.
pub async fn read(c: &Clients, cluster: &str) -> Result<Vec<NodeReport>, AwsError> {
    let path = nodes_path(cluster);
    let pages: Vec<_> = c
        .ssm
        .get_parameters_by_path()
        .path(&path)
        .into_paginator()
        .send()
        .try_collect()
        .await
        .map_err(api("reading the nodes' reports", &path))?;
    Ok(pages
        .iter()
        .flat_map(|p| p.parameters())
        .filter_map(|p| NodeReport::parse(p.name()?, p.value()?))
        .collect())
}

/// The report parameters carrying the cluster's tag (what `down` deletes).
///
/// # Errors
/// The AWS error of the call.
pub async fn owned(c: &Clients, cluster: &str) -> Result<Vec<String>, AwsError> {
    use aws_sdk_ssm::types::ParameterStringFilter;
    let path = nodes_path(cluster);
    let filter = |key: &str, option: Option<&str>, value: &str| {
        ParameterStringFilter::builder()
            .key(key)
            .set_option(option.map(str::to_string))
            .values(value)
            .build()
            .map_err(AwsError::internal)
    };
    let found: Vec<_> = c
        .ssm
        .describe_parameters()
        .parameter_filters(filter("Path", Some("OneLevel"), &path)?)
        .parameter_filters(filter(&format!("tag:{CLUSTER_TAG}"), None, cluster)?)
        .into_paginator()
        .send()
        .try_collect()
        .await
        .map_err(api("listing the nodes' reports", &path))?;
    Ok(found
        .iter()
        .flat_map(|p| p.parameters())
        .filter_map(|p| p.name().map(str::to_string))
        .collect())
}

/// The last `lines` lines of an instance's console output (what cloud-init printed), if EC2
/// has any yet.
///
/// # Errors
/// The AWS error of the call.
pub async fn console_tail(
    c: &Clients,
    instance: &str,
    lines: usize,
) -> Result<Option<String>, AwsError> {
    use base64::Engine as _;
    let out = c
        .ec2
        .get_console_output()
        .instance_id(instance)
        .send()
        .await
        .map_err(api("reading the console output of", instance))?;
    Ok(out
        .output()
        .and_then(|o| base64::engine::general_purpose::STANDARD.decode(o).ok())
        .map(|b| String::from_utf8_lossy(&b).to_string())
        .map(|t| crate::core::progress::tail(&t, lines))
        .filter(|t| !t.trim().is_empty()))
}
