//! EKS clusters and managed node groups (issue #3): create (tagged, idempotent through client
//! request tokens, retrying while a new role propagates), describe, wait, delete.
//!
//! These are the AWS-layer building blocks of the EKS path; the engine wiring comes next.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_eks::client::Waiters as _;
use aws_sdk_eks::types::{
    AmiTypes, AuthenticationMode, CapacityTypes, CreateAccessConfigRequest, NodegroupScalingConfig,
    VpcConfigRequest,
};

use super::error::{absent_if, api};
use super::retry::{Backoff, is_iam_propagation, retry};
use super::{AwsError, Clients};
use crate::core::spec::{Arch, NodegroupSpec};

/// Managed policies of the EKS cluster role.
pub const CLUSTER_POLICIES: [&str; 1] = ["AmazonEKSClusterPolicy"];
/// Managed policies of the node group's role.
pub const NODE_POLICIES: [&str; 3] = [
    "AmazonEKSWorkerNodePolicy",
    "AmazonEKS_CNI_Policy",
    "AmazonEC2ContainerRegistryReadOnly",
];

/// The ARN of an AWS managed policy in the partition of `role_arn`.
pub fn managed_policy_arn(role_arn: &str, name: &str) -> String {
    let partition = role_arn
        .split(':')
        .nth(1)
        .filter(|p| p.starts_with("aws"))
        .unwrap_or("aws");
    format!("arn:{partition}:iam::aws:policy/{name}")
}

/// What EKS reports about a cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EksCluster {
    pub name: String,
    pub arn: String,
    pub status: String,
    pub endpoint: Option<String>,
    /// Base64 as EKS returns it (not parsed: the emulator's is not a PEM).
    pub ca_data: Option<String>,
    pub version: Option<String>,
    pub tags: HashMap<String, String>,
}

/// Everything CreateCluster needs.
#[derive(Debug, Clone)]
pub struct ClusterInput<'a> {
    pub name: &'a str,
    pub version: &'a str,
    pub role_arn: &'a str,
    pub subnet_ids: Vec<String>,
    pub security_group_ids: Vec<String>,
    pub endpoint_public_access: bool,
    pub endpoint_private_access: bool,
    pub public_access_cidrs: Vec<String>,
    pub tags: &'a [(String, String)],
    /// Makes a retried or resumed create return the same cluster.
    pub client_token: String,
}

fn cluster_of(c: &aws_sdk_eks::types::Cluster) -> EksCluster {
    EksCluster {
        name: c.name().unwrap_or_default().into(),
        arn: c.arn().unwrap_or_default().into(),
        status: c
            .status()
            .map(|s| s.as_str().to_string())
            .unwrap_or_default(),
        endpoint: c.endpoint().map(str::to_string),
        ca_data: c
            .certificate_authority()
            .and_then(|a| a.data())
            .map(str::to_string),
        version: c.version().map(str::to_string),
        tags: c.tags().cloned().unwrap_or_default(),
    }
}

/// Creates the cluster in API access mode, retrying while its new role propagates.
///
/// # Errors
/// The AWS error of CreateCluster, or a deadline error naming the propagation wait.
pub async fn create_cluster(c: &Clients, i: &ClusterInput<'_>) -> Result<EksCluster, AwsError> {
    let vpc = VpcConfigRequest::builder()
        .set_subnet_ids(Some(i.subnet_ids.clone()))
        .set_security_group_ids(Some(i.security_group_ids.clone()))
        .endpoint_public_access(i.endpoint_public_access)
        .endpoint_private_access(i.endpoint_private_access)
        .set_public_access_cidrs(
            i.endpoint_public_access
                .then(|| i.public_access_cidrs.clone()),
        )
        .build();
    let access = CreateAccessConfigRequest::builder()
        .authentication_mode(AuthenticationMode::Api)
        .bootstrap_cluster_creator_admin_permissions(true)
        .build();
    let tags: HashMap<String, String> = i.tags.iter().cloned().collect();
    let out = retry(Backoff::IAM_PROPAGATION, is_iam_propagation, || async {
        c.eks
            .create_cluster()
            .name(i.name)
            .version(i.version)
            .role_arn(i.role_arn)
            .resources_vpc_config(vpc.clone())
            .access_config(access.clone())
            .set_tags(Some(tags.clone()))
            .client_request_token(&i.client_token)
            .send()
            .await
            .map_err(api("creating EKS cluster", i.name))
    })
    .await?;
    out.cluster().map(cluster_of).ok_or_else(|| {
        AwsError::unexpected("creating EKS cluster", i.name, "no cluster in the answer")
    })
}

/// # Errors
/// Any error but ResourceNotFoundException.
pub async fn describe_cluster(c: &Clients, name: &str) -> Result<Option<EksCluster>, AwsError> {
    let r = c
        .eks
        .describe_cluster()
        .name(name)
        .send()
        .await
        .map_err(api("describing EKS cluster", name));
    Ok(absent_if(r, "ResourceNotFoundException")?.and_then(|o| o.cluster().map(cluster_of)))
}

/// Waits (the SDK waiter) until the cluster is ACTIVE and returns it.
///
/// # Errors
/// FAILED, or the timeout.
pub async fn wait_cluster_active(
    c: &Clients,
    name: &str,
    max: Duration,
) -> Result<EksCluster, AwsError> {
    let poll = c
        .eks
        .wait_until_cluster_active()
        .name(name)
        .wait(max)
        .await
        .map_err(|e| super::error::wait_failed(format!("EKS cluster {name}"), "ACTIVE", &e))?;
    let out = poll
        .into_result()
        .map_err(|e| super::error::wait_failed(format!("EKS cluster {name}"), "ACTIVE", &e))?;
    out.cluster().map(cluster_of).ok_or_else(|| {
        AwsError::unexpected("waiting for EKS cluster", name, "no cluster in the answer")
    })
}

/// Deletes the cluster and waits until it is gone.
///
/// # Errors
/// The AWS error of DeleteCluster (ResourceInUseException while node groups remain), or the timeout.
pub async fn delete_cluster(c: &Clients, name: &str, max: Duration) -> Result<(), AwsError> {
    let r = c
        .eks
        .delete_cluster()
        .name(name)
        .send()
        .await
        .map_err(api("deleting EKS cluster", name));
    if absent_if(r, "ResourceNotFoundException")?.is_none() {
        return Ok(());
    }
    c.eks
        .wait_until_cluster_deleted()
        .name(name)
        .wait(max)
        .await
        .map_err(|e| super::error::wait_failed(format!("EKS cluster {name}"), "deleted", &e))?;
    Ok(())
}

/// What EKS reports about a managed node group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EksNodegroup {
    pub name: String,
    pub status: String,
    pub desired: Option<i32>,
    pub tags: HashMap<String, String>,
}

fn nodegroup_of(n: &aws_sdk_eks::types::Nodegroup) -> EksNodegroup {
    EksNodegroup {
        name: n.nodegroup_name().unwrap_or_default().into(),
        status: n
            .status()
            .map(|s| s.as_str().to_string())
            .unwrap_or_default(),
        desired: n.scaling_config().and_then(|s| s.desired_size()),
        tags: n.tags().cloned().unwrap_or_default(),
    }
}

/// Everything CreateNodegroup needs.
#[derive(Debug, Clone)]
pub struct NodegroupInput<'a> {
    pub cluster: &'a str,
    pub name: &'a str,
    pub spec: &'a NodegroupSpec,
    pub node_role_arn: &'a str,
    pub subnet_ids: Vec<String>,
    pub tags: &'a [(String, String)],
    pub client_token: String,
}

/// Creates a managed node group on Amazon Linux 2023, retrying while its new role propagates.
///
/// # Errors
/// The AWS error of CreateNodegroup.
pub async fn create_nodegroup(
    c: &Clients,
    i: &NodegroupInput<'_>,
) -> Result<EksNodegroup, AwsError> {
    let g = i.spec;
    let scaling = NodegroupScalingConfig::builder()
        .min_size(i32::try_from(g.min).unwrap_or(i32::MAX))
        .max_size(i32::try_from(g.max).unwrap_or(i32::MAX))
        .desired_size(i32::try_from(g.desired).unwrap_or(i32::MAX))
        .build();
    let ami = match g.arch {
        Arch::Amd64 => AmiTypes::Al2023X8664Standard,
        Arch::Arm64 => AmiTypes::Al2023Arm64Standard,
    };
    let capacity = if g.spot {
        CapacityTypes::Spot
    } else {
        CapacityTypes::OnDemand
    };
    let tags: HashMap<String, String> = i.tags.iter().cloned().collect();
    let labels: HashMap<String, String> = g
        .labels
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let out = retry(Backoff::IAM_PROPAGATION, is_iam_propagation, || async {
        c.eks
            .create_nodegroup()
            .cluster_name(i.cluster)
            .nodegroup_name(i.name)
            .scaling_config(scaling.clone())
            .disk_size(i32::try_from(g.disk_size).unwrap_or(20))
            .set_subnets(Some(i.subnet_ids.clone()))
            .set_instance_types(Some(g.instance_types.clone()))
            .ami_type(ami.clone())
            .capacity_type(capacity.clone())
            .node_role(i.node_role_arn)
            .set_labels(Some(labels.clone()))
            .set_tags(Some(tags.clone()))
            .client_request_token(&i.client_token)
            .send()
            .await
            .map_err(api("creating EKS node group", i.name))
    })
    .await?;
    out.nodegroup().map(nodegroup_of).ok_or_else(|| {
        AwsError::unexpected(
            "creating EKS node group",
            i.name,
            "no node group in the answer",
        )
    })
}

/// # Errors
/// Any error but ResourceNotFoundException.
pub async fn describe_nodegroup(
    c: &Clients,
    cluster: &str,
    name: &str,
) -> Result<Option<EksNodegroup>, AwsError> {
    let r = c
        .eks
        .describe_nodegroup()
        .cluster_name(cluster)
        .nodegroup_name(name)
        .send()
        .await
        .map_err(api("describing EKS node group", name));
    Ok(absent_if(r, "ResourceNotFoundException")?.and_then(|o| o.nodegroup().map(nodegroup_of)))
}

/// Waits (the SDK waiter) until the node group is ACTIVE.
///
/// # Errors
/// CREATE_FAILED, or the timeout.
pub async fn wait_nodegroup_active(
    c: &Clients,
    cluster: &str,
    name: &str,
    max: Duration,
) -> Result<(), AwsError> {
    c.eks
        .wait_until_nodegroup_active()
        .cluster_name(cluster)
        .nodegroup_name(name)
        .wait(max)
        .await
        .map_err(|e| super::error::wait_failed(format!("EKS node group {name}"), "ACTIVE", &e))?;
    Ok(())
}

/// Deletes the node group and waits until it is gone.
///
/// # Errors
/// The AWS error of DeleteNodegroup, or the timeout.
pub async fn delete_nodegroup(
    c: &Clients,
    cluster: &str,
    name: &str,
    max: Duration,
) -> Result<(), AwsError> {
    let r = c
        .eks
        .delete_nodegroup()
        .cluster_name(cluster)
        .nodegroup_name(name)
        .send()
        .await
        .map_err(api("deleting EKS node group", name));
    if absent_if(r, "ResourceNotFoundException")?.is_none() {
        return Ok(());
    }
    c.eks
        .wait_until_nodegroup_deleted()
        .cluster_name(cluster)
        .nodegroup_name(name)
        .wait(max)
        .await
        .map_err(|e| super::error::wait_failed(format!("EKS node group {name}"), "deleted", &e))?;
    Ok(())
}

/// Installs the add-ons the cluster lacks (one ListAddons, then CreateAddon for each missing
/// one, concurrently) and waits until all of them are ACTIVE. vpc-cni gets network-policy
/// enforcement turned on.
///
/// # Errors
/// The AWS error of a call, or an add-on that does not become ACTIVE in time.
pub async fn ensure_addons(
    c: &Clients,
    cluster: &str,
    names: &[String],
    tags: &[(String, String)],
    max: Duration,
) -> Result<Vec<String>, AwsError> {
    let listed = c
        .eks
        .list_addons()
        .cluster_name(cluster)
        .send()
        .await
        .map_err(api("listing the add-ons of", cluster))?;
    let have: Vec<&str> = listed.addons().iter().map(String::as_str).collect();
    let missing: Vec<&String> = names
        .iter()
        .filter(|n| !have.contains(&n.as_str()))
        .collect();
    let tags: HashMap<String, String> = tags.iter().cloned().collect();
    let creates = missing.iter().map(|name| {
        let tags = tags.clone();
        async move {
            let mut req = c
                .eks
                .create_addon()
                .cluster_name(cluster)
                .addon_name(name.as_str())
                .resolve_conflicts(aws_sdk_eks::types::ResolveConflicts::Overwrite)
                .set_tags(Some(tags))
                .client_request_token(format!("{cluster}-{name}"));
            if name.as_str() == "vpc-cni" {
                req = req.configuration_values(r#"{"enableNetworkPolicy":"true"}"#);
            }
            req.send()
                .await
                .map_err(api("installing add-on", &format!("{name} on {cluster}")))
        }
    });
    futures::future::try_join_all(creates).await?;
    let waits = names.iter().map(|name| async move {
        c.eks
            .wait_until_addon_active()
            .cluster_name(cluster)
            .addon_name(name.as_str())
            .wait(max)
            .await
            .map_err(|e| {
                super::error::wait_failed(format!("add-on {name} on {cluster}"), "ACTIVE", &e)
            })
    });
    futures::future::try_join_all(waits).await?;
    Ok(missing.into_iter().cloned().collect())
}

/// The ARN of an EKS access policy in the partition of `cluster_arn`.
pub fn access_policy_arn(cluster_arn: &str, policy: crate::core::spec::AccessPolicy) -> String {
    let partition = cluster_arn
        .split(':')
        .nth(1)
        .filter(|p| p.starts_with("aws"))
        .unwrap_or("aws");
    format!(
        "arn:{partition}:eks::aws:cluster-access-policy/{}",
        policy.eks_policy()
    )
}

/// Creates the access entries the cluster lacks and associates their access policy, scoped to
/// the cluster or to the listed namespaces.
///
/// # Errors
/// The AWS error of a call.
pub async fn ensure_access_entries(
    c: &Clients,
    cluster: &EksCluster,
    entries: &[crate::core::spec::AccessEntry],
    tags: &[(String, String)],
) -> Result<Vec<String>, AwsError> {
    use aws_sdk_eks::types::{AccessScope, AccessScopeType};
    let name = cluster.name.as_str();
    let listed = c
        .eks
        .list_access_entries()
        .cluster_name(name)
        .send()
        .await
        .map_err(api("listing the access entries of", name))?;
    let have: Vec<&str> = listed.access_entries().iter().map(String::as_str).collect();
    let tags: HashMap<String, String> = tags.iter().cloned().collect();
    let missing: Vec<&crate::core::spec::AccessEntry> = entries
        .iter()
        .filter(|e| !have.contains(&e.principal_arn.as_str()))
        .collect();
    let creates = missing.iter().map(|e| {
        let tags = tags.clone();
        async move {
            let who = format!("{} on {name}", e.principal_arn);
            c.eks
                .create_access_entry()
                .cluster_name(name)
                .principal_arn(&e.principal_arn)
                .set_tags(Some(tags))
                .send()
                .await
                .map_err(api("creating the access entry of", &who))?;
            let scope = if e.namespaces.is_empty() {
                AccessScope::builder()
                    .r#type(AccessScopeType::Cluster)
                    .build()
            } else {
                AccessScope::builder()
                    .r#type(AccessScopeType::Namespace)
                    .set_namespaces(Some(e.namespaces.clone()))
                    .build()
            };
            c.eks
                .associate_access_policy()
                .cluster_name(name)
                .principal_arn(&e.principal_arn)
                .policy_arn(access_policy_arn(&cluster.arn, e.policy))
                .access_scope(scope)
                .send()
                .await
                .map_err(api("associating the access policy of", &who))?;
            Ok::<_, AwsError>(e.principal_arn.clone())
        }
    });
    futures::future::try_join_all(creates).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn managed_policy_arns_follow_the_partition() {
        assert_eq!(
            managed_policy_arn("arn:aws:iam::1:role/r", "AmazonEKSClusterPolicy"),
            "arn:aws:iam::aws:policy/AmazonEKSClusterPolicy"
        );
        assert_eq!(
            managed_policy_arn("arn:aws-cn:iam::1:role/r", "AmazonEKS_CNI_Policy"),
            "arn:aws-cn:iam::aws:policy/AmazonEKS_CNI_Policy"
        );
    }
}
