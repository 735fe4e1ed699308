//! Network interfaces: what holds a subnet, a security group or a VPC that `down` cannot
//! delete, named when it gives up.

use super::error::api;
use super::retry::{is_dependency_violation, retry};
use super::{AwsError, Clients};

/// A network interface, as `down` reports it when it blocks a delete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    pub id: String,
    pub description: String,
    pub instance: Option<String>,
    pub status: String,
}

impl std::fmt::Display for Interface {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.instance {
            Some(i) => write!(f, "{} ({}, attached to {i})", self.id, self.description),
            None => write!(f, "{} ({}, {})", self.id, self.description, self.status),
        }
    }
}

/// Network interfaces in a VPC, subnet or security group (`filter` = vpc-id, subnet-id,
/// group-id).
///
/// # Errors
/// The AWS error of the Describe.
pub async fn find(c: &Clients, filter: &str, value: &str) -> Result<Vec<Interface>, AwsError> {
    let f = aws_sdk_ec2::types::Filter::builder()
        .name(filter)
        .values(value)
        .build();
    let out = c
        .ec2
        .describe_network_interfaces()
        .filters(f)
        .send()
        .await
        .map_err(api("finding what blocks", value))?;
    Ok(out
        .network_interfaces()
        .iter()
        .map(|n| Interface {
            id: n.network_interface_id().unwrap_or("eni-?").to_string(),
            description: n
                .description()
                .filter(|d| !d.is_empty())
                .unwrap_or("no description")
                .to_string(),
            instance: n
                .attachment()
                .and_then(|a| a.instance_id())
                .map(str::to_string),
            status: n
                .status()
                .map(|s| s.as_str().to_string())
                .unwrap_or_default(),
        })
        .collect())
}

/// Retries a delete while AWS reports DependencyViolation; on giving up, names the interfaces
/// that block it.
///
/// # Errors
/// The delete's error, with the blockers when there are.
pub async fn delete_with_blockers<F, Fut>(
    c: &Clients,
    filter: &str,
    id: &str,
    op: F,
) -> Result<(), AwsError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), AwsError>>,
{
    match retry(c.tuning.dependency(), is_dependency_violation, op).await {
        Ok(()) => Ok(()),
        Err(e @ AwsError::Deadline { .. }) => {
            let blockers = find(c, filter, id).await.unwrap_or_default();
            if blockers.is_empty() {
                Err(e)
            } else {
                let names: Vec<String> = blockers.iter().map(ToString::to_string).collect();
                Err(AwsError::unexpected(
                    "deleting",
                    id,
                    format!("{} (blocked by {})", e, names.join("; ")),
                ))
            }
        }
        Err(e) => Err(e),
    }
}
