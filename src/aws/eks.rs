//! EKS clusters and managed node groups (issue #3): create (tagged, idempotent through client
//! request tokens, retrying while a new role propagates), describe, wait, delete.
//!
//! Readiness is polled with [`poll`] (DescribeCluster / DescribeNodegroup every
//! [`POLL_INTERVAL`]) rather than the SDK's waiters, whose delays are fixed at 30-120 s for
//! these resources: a creation that finishes is noticed within 15 s, at 4 calls a minute.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_eks::types::{
    AmiTypes, AuthenticationMode, CapacityTypes, CreateAccessConfigRequest, NodegroupScalingConfig,
    VpcConfigRequest,
};

use super::error::{absent_if, api};
use super::retry::{Backoff, is_iam_propagation, retry};
use super::{AwsError, Clients};
use crate::core::plan::{AccessChange, ObsAccessEntry};
use crate::core::spec::{Arch, NodegroupSpec};

/// Managed policies of the EKS cluster role.
pub use crate::core::graph::EKS_CLUSTER_POLICIES as CLUSTER_POLICIES;
/// Managed policies of the node group's role.
pub use crate::core::graph::EKS_NODE_POLICIES as NODE_POLICIES;

/// How often [`poll`] asks. A 10-minute cluster creation costs 40 DescribeCluster calls and is
/// noticed at most 15 s late; the SDK's ClusterActive waiter would poll 30-120 s apart.
pub const POLL_INTERVAL: Duration = Duration::from_secs(15);

/// What a poll saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    /// The wanted state.
    Done,
    /// A state that will not turn into the wanted one (with the reason).
    Failed(String),
    /// Still on its way (the current state, for progress).
    Pending(String),
}

/// Polls `describe` every `interval` until it reports [`Seen::Done`], a failure, or `max` has
/// passed; `progress` hears each pending state. The first poll is immediate.
///
/// # Errors
/// The AWS error of a describe, a failure state, or the deadline.
pub async fn poll<F, Fut>(
    what: &str,
    want: &str,
    interval: Duration,
    max: Duration,
    mut describe: F,
    progress: &(dyn Fn(&str) + Send + Sync),
) -> Result<(), AwsError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Seen, AwsError>>,
{
    let interval = super::poll::scaled(interval);
    let start = tokio::time::Instant::now();
    loop {
        // Fixed rate: the next poll is `interval` after this one started.
        let next = tokio::time::Instant::now() + interval;
        match describe().await? {
            Seen::Done => return Ok(()),
            Seen::Failed(why) => {
                return Err(AwsError::Wait {
                    resource: what.into(),
                    state: want.into(),
                    message: why,
                });
            }
            Seen::Pending(state) => {
                if start.elapsed() + interval > max {
                    return Err(AwsError::Wait {
                        resource: what.into(),
                        state: want.into(),
                        message: format!(
                            "still {state} after {} s (the limit)",
                            start.elapsed().as_secs()
                        ),
                    });
                }
                progress(&state);
                tokio::time::sleep_until(next).await;
            }
        }
    }
}

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
    /// The security group EKS made for the cluster (the managed nodes are in it).
    pub cluster_sg: Option<String>,
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
        cluster_sg: c
            .resources_vpc_config()
            .and_then(|v| v.cluster_security_group_id())
            .map(str::to_string),
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
    let send = |token: String| {
        let (vpc, access, tags) = (vpc.clone(), access.clone(), tags.clone());
        async move {
            let out = retry(Backoff::IAM_PROPAGATION, is_iam_propagation, || async {
                c.eks
                    .create_cluster()
                    .name(i.name)
                    .version(i.version)
                    .role_arn(i.role_arn)
                    .resources_vpc_config(vpc.clone())
                    .access_config(access.clone())
                    .set_tags(Some(tags.clone()))
                    .client_request_token(&token)
                    .send()
                    .await
                    .map_err(api("creating EKS cluster", i.name))
            })
            .await?;
            out.cluster().map(cluster_of).ok_or_else(|| {
                AwsError::unexpected("creating EKS cluster", i.name, "no cluster in the answer")
            })
        }
    };
    let k = send(i.client_token.clone()).await?;
    // A token that already served a cluster since deleted answers with that cluster: make a
    // new one instead (a fresh create is always CREATING).
    if matches!(k.status.as_str(), "DELETING" | "FAILED") {
        return send(fresh_token(&i.client_token)).await;
    }
    Ok(k)
}

/// A client request token that has not been used: `token` with the current time appended.
fn fresh_token(token: &str) -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    format!("{token}-{secs}")
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

/// Polls until the cluster is ACTIVE and returns it.
///
/// # Errors
/// FAILED, the cluster disappearing, or the timeout.
pub async fn wait_cluster_active(
    c: &Clients,
    name: &str,
    max: Duration,
) -> Result<EksCluster, AwsError> {
    wait_cluster_active_with(c, name, POLL_INTERVAL, max, &|_| {}).await
}

/// [`wait_cluster_active`] with its interval and a progress callback.
///
/// # Errors
/// FAILED, the cluster disappearing, or the timeout.
pub async fn wait_cluster_active_with(
    c: &Clients,
    name: &str,
    interval: Duration,
    max: Duration,
    progress: &(dyn Fn(&str) + Send + Sync),
) -> Result<EksCluster, AwsError> {
    let last = std::sync::Mutex::new(None);
    let what = format!("EKS cluster {name}");
    poll(
        &what,
        "ACTIVE",
        interval,
        max,
        || async {
            let seen = match describe_cluster(c, name).await? {
                None => Seen::Failed("the cluster is gone".into()),
                Some(k) => {
                    let state = k.status.clone();
                    *last
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(k);
                    match state.as_str() {
                        "ACTIVE" => Seen::Done,
                        "FAILED" | "DELETING" => Seen::Failed(format!("the cluster is {state}")),
                        _ => Seen::Pending(state),
                    }
                }
            };
            Ok(seen)
        },
        progress,
    )
    .await?;
    last.into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .ok_or_else(|| {
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
    let what = format!("EKS cluster {name}");
    poll(
        &what,
        "deleted",
        POLL_INTERVAL,
        max,
        || async {
            Ok(match describe_cluster(c, name).await? {
                None => Seen::Done,
                Some(k) if k.status == "FAILED" => Seen::Failed("deletion FAILED".into()),
                Some(k) => Seen::Pending(k.status),
            })
        },
        &|_| {},
    )
    .await
}

/// What EKS reports about a managed node group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EksNodegroup {
    pub name: String,
    pub status: String,
    pub min: Option<i32>,
    pub max: Option<i32>,
    pub desired: Option<i32>,
    /// Health issues EKS reports (why a node group is CREATE_FAILED or DEGRADED).
    pub issues: Vec<String>,
    pub instance_types: Vec<String>,
    pub spot: bool,
    pub labels: HashMap<String, String>,
    pub tags: HashMap<String, String>,
}

fn nodegroup_of(n: &aws_sdk_eks::types::Nodegroup) -> EksNodegroup {
    EksNodegroup {
        name: n.nodegroup_name().unwrap_or_default().into(),
        status: n
            .status()
            .map(|s| s.as_str().to_string())
            .unwrap_or_default(),
        min: n.scaling_config().and_then(|s| s.min_size()),
        max: n.scaling_config().and_then(|s| s.max_size()),
        desired: n.scaling_config().and_then(|s| s.desired_size()),
        issues: n
            .health()
            .map(|h| {
                h.issues()
                    .iter()
                    .map(|i| {
                        format!(
                            "{}: {}",
                            i.code().map(|c| c.as_str()).unwrap_or("issue"),
                            i.message().unwrap_or_default()
                        )
                    })
                    .collect()
            })
            .unwrap_or_default(),
        instance_types: n.instance_types().to_vec(),
        spot: n.capacity_type() == Some(&CapacityTypes::Spot),
        labels: n.labels().cloned().unwrap_or_default(),
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
    /// A launch template id (its default version); the root volume size then comes from it.
    pub launch_template: Option<String>,
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
    let send = |token: String| {
        let (scaling, ami, capacity, labels, tags) = (
            scaling.clone(),
            ami.clone(),
            capacity.clone(),
            labels.clone(),
            tags.clone(),
        );
        async move {
            let out = retry(Backoff::IAM_PROPAGATION, is_iam_propagation, || async {
                let req = c
                    .eks
                    .create_nodegroup()
                    .cluster_name(i.cluster)
                    .nodegroup_name(i.name)
                    .scaling_config(scaling.clone());
                let req = match &i.launch_template {
                    Some(id) => req.launch_template(
                        aws_sdk_eks::types::LaunchTemplateSpecification::builder()
                            .id(id)
                            .build(),
                    ),
                    None => req.disk_size(i32::try_from(g.disk_size).unwrap_or(20)),
                };
                req.set_subnets(Some(i.subnet_ids.clone()))
                    .set_instance_types(Some(g.instance_types.clone()))
                    .ami_type(ami.clone())
                    .capacity_type(capacity.clone())
                    .node_role(i.node_role_arn)
                    .set_labels(Some(labels.clone()))
                    .set_tags(Some(tags.clone()))
                    .client_request_token(&token)
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
    };
    let n = send(i.client_token.clone()).await?;
    // As for clusters: a token that served a node group since deleted or failed.
    if matches!(
        n.status.as_str(),
        "DELETING" | "CREATE_FAILED" | "DELETE_FAILED"
    ) {
        return send(fresh_token(&i.client_token)).await;
    }
    Ok(n)
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

/// Polls until the node group is ACTIVE.
///
/// # Errors
/// CREATE_FAILED (with EKS's health issues), or the timeout.
pub async fn wait_nodegroup_active(
    c: &Clients,
    cluster: &str,
    name: &str,
    max: Duration,
) -> Result<(), AwsError> {
    wait_nodegroup_active_with(c, cluster, name, POLL_INTERVAL, max, false, &|_| {}).await
}

/// [`wait_nodegroup_active`] with its interval and a progress callback. With
/// `accept_degraded`, DEGRADED ends the wait too (an existing node group whose capacity is
/// short, e.g. Spot reclaimed, being scaled or relabelled): the caller reports it.
///
/// # Errors
/// CREATE_FAILED (with EKS's health issues), or the timeout.
pub async fn wait_nodegroup_active_with(
    c: &Clients,
    cluster: &str,
    name: &str,
    interval: Duration,
    max: Duration,
    accept_degraded: bool,
    progress: &(dyn Fn(&str) + Send + Sync),
) -> Result<(), AwsError> {
    let what = format!("EKS node group {name}");
    poll(
        &what,
        "ACTIVE",
        interval,
        max,
        || async {
            Ok(match describe_nodegroup(c, cluster, name).await? {
                None => Seen::Failed("the node group is gone".into()),
                Some(n) => match n.status.as_str() {
                    "ACTIVE" => Seen::Done,
                    "DEGRADED" if accept_degraded => Seen::Done,
                    "CREATE_FAILED" | "DELETE_FAILED" | "DEGRADED" | "DELETING" => Seen::Failed(
                        format!("the node group is {} ({})", n.status, n.issues.join("; ")),
                    ),
                    _ => Seen::Pending(n.status),
                },
            })
        },
        progress,
    )
    .await
}

/// Changes the node group's scaling (min, max, desired) and labels (to add or update, keys to
/// remove) in one UpdateNodegroupConfig, and waits until the update is applied.
///
/// # Errors
/// The AWS error of the call, or the node group failing.
pub async fn update_nodegroup(
    c: &Clients,
    cluster: &str,
    name: &str,
    scaling: Option<(u32, u32, u32)>,
    labels: (std::collections::BTreeMap<String, String>, Vec<String>),
    timeout: Duration,
) -> Result<(), AwsError> {
    let to_i32 = |v: u32| i32::try_from(v).unwrap_or(i32::MAX);
    let mut req = c
        .eks
        .update_nodegroup_config()
        .cluster_name(cluster)
        .nodegroup_name(name);
    if let Some((min, max, desired)) = scaling {
        req = req.scaling_config(
            NodegroupScalingConfig::builder()
                .min_size(to_i32(min))
                .max_size(to_i32(max))
                .desired_size(to_i32(desired))
                .build(),
        );
    }
    let (add, remove) = labels;
    if !add.is_empty() || !remove.is_empty() {
        req = req.labels(
            aws_sdk_eks::types::UpdateLabelsPayload::builder()
                .set_add_or_update_labels((!add.is_empty()).then(|| add.into_iter().collect()))
                .set_remove_labels((!remove.is_empty()).then_some(remove))
                .build(),
        );
    }
    req.send()
        .await
        .map_err(api("updating EKS node group", name))?;
    wait_nodegroup_active_with(c, cluster, name, POLL_INTERVAL, timeout, true, &|_| {}).await
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
    let what = format!("EKS node group {name}");
    poll(
        &what,
        "deleted",
        POLL_INTERVAL,
        max,
        || async {
            Ok(match describe_nodegroup(c, cluster, name).await? {
                None => Seen::Done,
                Some(n) if n.status == "DELETE_FAILED" => {
                    Seen::Failed(format!("DELETE_FAILED ({})", n.issues.join("; ")))
                }
                Some(n) => Seen::Pending(n.status),
            })
        },
        &|_| {},
    )
    .await
}

/// The names of the cluster's add-ons.
///
/// # Errors
/// The AWS error of the call.
pub async fn list_addons(c: &Clients, cluster: &str) -> Result<Vec<String>, AwsError> {
    let out = c
        .eks
        .list_addons()
        .cluster_name(cluster)
        .send()
        .await
        .map_err(api("listing the add-ons of", cluster))?;
    Ok(out.addons().to_vec())
}

/// The principal ARNs of the cluster's access entries.
///
/// # Errors
/// The AWS error of the call.
pub async fn list_access_entries(c: &Clients, cluster: &str) -> Result<Vec<String>, AwsError> {
    let out = c
        .eks
        .list_access_entries()
        .cluster_name(cluster)
        .send()
        .await
        .map_err(api("listing the access entries of", cluster))?;
    Ok(out.access_entries().to_vec())
}

/// DescribeAddon, its error saying what we were `doing` to the add-on.
async fn describe_addon(
    c: &Clients,
    cluster: &str,
    name: &str,
    doing: &str,
) -> Result<aws_sdk_eks::operation::describe_addon::DescribeAddonOutput, AwsError> {
    c.eks
        .describe_addon()
        .cluster_name(cluster)
        .addon_name(name)
        .send()
        .await
        .map_err(api(doing, &format!("add-on {name} on {cluster}")))
}

/// Deletes add-ons (concurrently) and waits until they are gone.
///
/// # Errors
/// The AWS error of a call, or the timeout.
pub async fn delete_addons(
    c: &Clients,
    cluster: &str,
    names: &[String],
    max: Duration,
) -> Result<(), AwsError> {
    let deletes = names.iter().map(|name| async move {
        let r = c
            .eks
            .delete_addon()
            .cluster_name(cluster)
            .addon_name(name)
            .send()
            .await
            .map_err(api("deleting add-on", &format!("{name} on {cluster}")));
        if absent_if(r, "ResourceNotFoundException")?.is_none() {
            return Ok(());
        }
        // Our own poll, not the SDK's waiter: that one sleeps 10-120 s between polls.
        let what = format!("add-on {name} on {cluster}");
        poll(
            &what,
            "deleted",
            ADDON_POLL_INTERVAL,
            max,
            || async {
                let r = describe_addon(c, cluster, name, "waiting for the deletion of").await;
                Ok(match absent_if(r, "ResourceNotFoundException")? {
                    None => Seen::Done,
                    Some(out) => {
                        let status = out
                            .addon()
                            .and_then(|a| a.status())
                            .map_or("?", |s| s.as_str())
                            .to_string();
                        if status == "DELETE_FAILED" {
                            Seen::Failed(format!("{what} is DELETE_FAILED"))
                        } else {
                            Seen::Pending(status)
                        }
                    }
                })
            },
            &|_| {},
        )
        .await?;
        Ok::<_, AwsError>(())
    });
    futures::future::try_join_all(deletes).await?;
    Ok(())
}

/// Deletes access entries (their policy associations go with them), concurrently.
///
/// # Errors
/// The AWS error of a call.
pub async fn delete_access_entries(
    c: &Clients,
    cluster: &str,
    principals: &[String],
) -> Result<(), AwsError> {
    let deletes = principals.iter().map(|p| async move {
        let r = c
            .eks
            .delete_access_entry()
            .cluster_name(cluster)
            .principal_arn(p)
            .send()
            .await
            .map_err(api(
                "deleting the access entry of",
                &format!("{p} on {cluster}"),
            ));
        absent_if(r, "ResourceNotFoundException").map(|_| ())
    });
    futures::future::try_join_all(deletes).await?;
    Ok(())
}

/// One add-on to install, with the role its pods assume through EKS Pod Identity, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddonWant {
    pub name: String,
    /// (service account, role ARN)
    pub pod_identity: Option<(String, String)>,
}

impl AddonWant {
    pub fn named(name: &str) -> AddonWant {
        AddonWant {
            name: name.to_string(),
            pod_identity: None,
        }
    }
}

/// Add-ons are polled every 10 s (they take 30-90 s).
pub const ADDON_POLL_INTERVAL: Duration = Duration::from_secs(10);

/// Installs the add-ons the cluster lacks (`have`: its add-ons, listed when `None`) with
/// client request tokens derived from the cluster, `token_seed` (the VPC id: a new cluster of
/// the same name gets new tokens) and the add-on's name,
/// CreateAddon, concurrently, and polls until every wanted one is ACTIVE. vpc-cni gets
/// network-policy enforcement turned on. For an add-on created now, DEGRADED counts as not yet
/// ACTIVE (its pods wait for nodes); one that was already there and is DEGRADED is reported in
/// the outcome instead of waited for. CREATE_FAILED is a failure.
///
/// # Errors
/// The AWS error of a call, or an add-on that does not become ACTIVE in time.
pub async fn ensure_addons(
    c: &Clients,
    cluster: &str,
    token_seed: &str,
    want: &[AddonWant],
    have: Option<&[String]>,
    tags: &[(String, String)],
    max: Duration,
) -> Result<AddonOutcome, AwsError> {
    let have = match have {
        Some(h) => h.to_vec(),
        None => list_addons(c, cluster).await?,
    };
    let missing: Vec<&AddonWant> = want.iter().filter(|a| !have.contains(&a.name)).collect();
    let tags: HashMap<String, String> = tags.iter().cloned().collect();
    let creates = missing.iter().map(|a| {
        let tags = tags.clone();
        async move {
            let name = a.name.as_str();
            let who = format!("{name} on {cluster}");
            let mut req = c
                .eks
                .create_addon()
                .cluster_name(cluster)
                .addon_name(name)
                .resolve_conflicts(aws_sdk_eks::types::ResolveConflicts::Overwrite)
                .set_tags(Some(tags))
                .client_request_token(crate::core::tags::client_token(&[
                    cluster, token_seed, name,
                ]));
            if name == "vpc-cni" {
                req = req.configuration_values(r#"{"enableNetworkPolicy":"true"}"#);
            }
            if let Some((sa, role)) = &a.pod_identity {
                let assoc = aws_sdk_eks::types::AddonPodIdentityAssociations::builder()
                    .service_account(sa)
                    .role_arn(role)
                    .build()
                    .map_err(|e| AwsError::unexpected("installing add-on", &who, e.to_string()))?;
                req = req.pod_identity_associations(assoc);
            }
            // A pod identity role that was just created may not be usable yet.
            retry(Backoff::IAM_PROPAGATION, is_iam_propagation, || {
                let req = req.clone();
                let who = who.clone();
                async move { req.send().await.map_err(api("installing add-on", &who)) }
            })
            .await
        }
    });
    futures::future::try_join_all(creates).await?;
    let degraded = std::sync::Mutex::new(Vec::new());
    let waits = want.iter().map(|a| {
        let existed = have.contains(&a.name);
        let degraded = &degraded;
        async move {
            let name = a.name.as_str();
            let what = format!("add-on {name} on {cluster}");
            poll(
                &what,
                "ACTIVE",
                ADDON_POLL_INTERVAL,
                max,
                || async {
                    let r = describe_addon(c, cluster, name, "describing").await?;
                    let addon = r.addon();
                    let status = addon
                        .and_then(|x| x.status())
                        .map(|s| s.as_str().to_string())
                        .unwrap_or_default();
                    let issues: Vec<String> = addon
                        .and_then(|x| x.health())
                        .map(|h| {
                            h.issues()
                                .iter()
                                .filter_map(|i| i.message().map(str::to_string))
                                .collect()
                        })
                        .unwrap_or_default();
                    Ok(match status.as_str() {
                        "ACTIVE" => Seen::Done,
                        // An add-on that was already there and is DEGRADED (its pods lack nodes,
                        // for example) is reported, not waited for: up has not changed it.
                        "DEGRADED" if existed => {
                            degraded
                                .lock()
                                .unwrap_or_else(std::sync::PoisonError::into_inner)
                                .push(format!("{name}: DEGRADED ({})", issues.join("; ")));
                            Seen::Done
                        }
                        "CREATE_FAILED" | "DELETING" | "DELETE_FAILED" => {
                            Seen::Failed(format!("{status}: {}", issues.join("; ")))
                        }
                        _ => Seen::Pending(status),
                    })
                },
                &|_| {},
            )
            .await
        }
    });
    futures::future::try_join_all(waits).await?;
    Ok(AddonOutcome {
        created: missing.into_iter().map(|a| a.name.clone()).collect(),
        degraded: degraded
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    })
}

/// What [`ensure_addons`] did and saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddonOutcome {
    pub created: Vec<String>,
    /// Add-ons that were already installed and are DEGRADED, with EKS's health issues.
    pub degraded: Vec<String>,
}

/// The ARN of an EKS access policy in the partition of `cluster_arn`.
pub fn access_policy_arn(cluster_arn: &str, policy: crate::core::spec::AccessPolicy) -> String {
    crate::core::plan::access_policy_arn(cluster_arn, policy)
}

/// Every access entry of the cluster: whether it carries our tag, and its access policies with
/// their scope (ListAccessEntries, then DescribeAccessEntry and ListAssociatedAccessPolicies for
/// each entry, concurrently).
///
/// # Errors
/// The AWS error of a call.
pub async fn observe_access(
    c: &Clients,
    cluster: &str,
    owner: &str,
) -> Result<Vec<ObsAccessEntry>, AwsError> {
    let principals = list_access_entries(c, cluster).await?;
    let each = principals.into_iter().map(|p| async move {
        let who = format!("{p} on {cluster}");
        let (entry, policies) = tokio::try_join!(
            async {
                c.eks
                    .describe_access_entry()
                    .cluster_name(cluster)
                    .principal_arn(&p)
                    .send()
                    .await
                    .map_err(api("describing the access entry of", &who))
            },
            async {
                c.eks
                    .list_associated_access_policies()
                    .cluster_name(cluster)
                    .principal_arn(&p)
                    .send()
                    .await
                    .map_err(api("listing the access policies of", &who))
            },
        )?;
        let owned = entry
            .access_entry()
            .and_then(|e| e.tags())
            .and_then(|t| t.get(crate::core::tags::CLUSTER_TAG))
            .is_some_and(|v| v == owner);
        let policies = policies
            .associated_access_policies()
            .iter()
            .filter_map(|a| {
                let ns = a
                    .access_scope()
                    .map(|s| s.namespaces().to_vec())
                    .unwrap_or_default();
                a.policy_arn().map(|arn| (arn.to_string(), ns))
            })
            .collect();
        Ok::<_, AwsError>(ObsAccessEntry {
            principal: p,
            owned,
            policies,
        })
    });
    futures::future::try_join_all(each).await
}

/// Makes the changes of [`crate::core::plan::access_changes`] (concurrently per principal, in
/// order within one).
///
/// # Errors
/// The AWS error of a call.
pub async fn apply_access_changes(
    c: &Clients,
    cluster: &str,
    changes: &[AccessChange],
    tags: &[(String, String)],
) -> Result<(), AwsError> {
    use aws_sdk_eks::types::{AccessScope, AccessScopeType};
    let tags: HashMap<String, String> = tags.iter().cloned().collect();
    let scope = |ns: &[String]| {
        if ns.is_empty() {
            AccessScope::builder()
                .r#type(AccessScopeType::Cluster)
                .build()
        } else {
            AccessScope::builder()
                .r#type(AccessScopeType::Namespace)
                .set_namespaces(Some(ns.to_vec()))
                .build()
        }
    };
    let associate = |principal: &str, policy: &str, ns: &[String]| {
        let who = format!("{principal} on {cluster}");
        let req = c
            .eks
            .associate_access_policy()
            .cluster_name(cluster)
            .principal_arn(principal)
            .policy_arn(policy)
            .access_scope(scope(ns));
        async move {
            req.send()
                .await
                .map_err(api("associating the access policy of", &who))
                .map(|_| ())
        }
    };
    let mut by_principal: Vec<(&str, Vec<&AccessChange>)> = Vec::new();
    for ch in changes {
        let p = match ch {
            AccessChange::Create { principal, .. }
            | AccessChange::Associate { principal, .. }
            | AccessChange::Disassociate { principal, .. }
            | AccessChange::Delete { principal } => principal.as_str(),
        };
        match by_principal.iter_mut().find(|(q, _)| *q == p) {
            Some((_, v)) => v.push(ch),
            None => by_principal.push((p, vec![ch])),
        }
    }
    let work = by_principal.into_iter().map(|(_, chs)| {
        let tags = tags.clone();
        async move {
            for ch in chs {
                match ch {
                    AccessChange::Create {
                        principal,
                        policy_arn,
                        namespaces,
                    } => {
                        let who = format!("{principal} on {cluster}");
                        c.eks
                            .create_access_entry()
                            .cluster_name(cluster)
                            .principal_arn(principal)
                            .set_tags(Some(tags.clone()))
                            .send()
                            .await
                            .map_err(api("creating the access entry of", &who))?;
                        associate(principal, policy_arn, namespaces).await?;
                    }
                    AccessChange::Associate {
                        principal,
                        policy_arn,
                        namespaces,
                    } => associate(principal, policy_arn, namespaces).await?,
                    AccessChange::Disassociate {
                        principal,
                        policy_arn,
                    } => {
                        let who = format!("{principal} on {cluster}");
                        c.eks
                            .disassociate_access_policy()
                            .cluster_name(cluster)
                            .principal_arn(principal)
                            .policy_arn(policy_arn)
                            .send()
                            .await
                            .map_err(api("revoking an access policy of", &who))?;
                    }
                    AccessChange::Delete { principal } => {
                        delete_access_entries(c, cluster, std::slice::from_ref(principal)).await?;
                    }
                }
            }
            Ok::<_, AwsError>(())
        }
    });
    futures::future::try_join_all(work).await?;
    Ok(())
}

/// Brings the cluster's access entries to `entries` (observing them first when `observed` is
/// `None`); returns the changes made.
///
/// # Errors
/// The AWS error of a call.
pub async fn ensure_access_entries(
    c: &Clients,
    cluster: &str,
    cluster_arn: &str,
    entries: &[crate::core::spec::AccessEntry],
    observed: Option<&[ObsAccessEntry]>,
    tags: &[(String, String)],
) -> Result<Vec<AccessChange>, AwsError> {
    let owner = tags
        .iter()
        .find(|(k, _)| k == crate::core::tags::CLUSTER_TAG)
        .map(|(_, v)| v.as_str())
        .unwrap_or(cluster);
    let observed = match observed {
        Some(o) => o.to_vec(),
        None => observe_access(c, cluster, owner).await?,
    };
    let changes = crate::core::plan::access_changes(cluster_arn, entries, &observed);
    apply_access_changes(c, cluster, &changes, tags).await?;
    Ok(changes)
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
