//! The EKS managed node group (Amazon Linux 2023, through our launch template), polled every
//! 15 s (the SDK's waiter polls 30-120 s apart). Scaling and labels change in one
//! UpdateNodegroupConfig.

use crate::core::events::Progress;
use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_eks::types::{AmiTypes, CapacityTypes, NodegroupScalingConfig};

use super::eks_cluster::POLL_INTERVAL;
use super::error::{Code, absent_if, api};
use super::kind::{Apply, Cx, Scope, Tx};
use super::poll::Seen;
use super::retry::{Backoff, is_iam_propagation, retry};
use super::{AwsError, Clients};
use crate::core::graph;
use crate::core::kinds::nodegroup::{Drift, Nodegroup, ObsNodegroup};
use crate::core::kinds::{Change, Inputs, NoState, Output, Plan};
use crate::core::spec::{Arch, MaxUnavailable, NodegroupSpec, Taint};
use crate::core::tags::{self, CLUSTER_TAG};

impl Apply for Nodegroup {
    async fn observe(_c: &Clients, _scope: &Scope<'_>) -> Result<NoState, AwsError> {
        // EKS reports it with the cluster (see `eks_cluster`).
        Ok(NoState)
    }

    async fn apply(
        &self,
        cx: &Cx<'_>,
        id: &str,
        change: &Change<Drift>,
        inputs: &Inputs,
    ) -> Result<Output, AwsError> {
        let c = cx.c;
        let cluster = inputs.eks(&self.cluster)?.name.clone();
        let progress = |state: &str| {
            cx.report
                .waiting(format!("EKS node group {}: {state}", self.name));
        };
        if let Some(Drift::New { name, replaces }) = change.drifts.first() {
            let subnet_ids: Vec<String> = self
                .subnets
                .iter()
                .map(|s| inputs.id(s).map(str::to_string))
                .collect::<Result<_, _>>()?;
            let s = &self.spec;
            let detail = format!(
                "{} x {} ({}..{})",
                s.desired,
                s.instance_types.join("/"),
                s.min,
                s.max
            );
            let detail = if replaces.is_empty() {
                detail
            } else {
                format!("{detail}, replacing {}", replaces.join(", "))
            };
            cx.report.resource(
                id,
                Self::NAME,
                None,
                Progress::Creating,
                Some(detail.clone()),
            );
            let vpc = inputs.id(&self.vpc)?;
            create(
                c,
                &NodegroupInput {
                    cluster: &cluster,
                    name,
                    spec: s,
                    node_role_arn: inputs.role(&self.role)?.1,
                    subnet_ids,
                    launch_template: Some(inputs.id(&self.template)?.to_string()),
                    tags: &cx.tags(id, false),
                    // What EKS cannot change in place is in it: a name used again (after a
                    // replacement and back) is a new group, not the old one's answer.
                    client_token: tags::client_token(&[
                        &cluster,
                        name,
                        vpc,
                        &s.instance_types.join(","),
                        if s.spot { "SPOT" } else { "ON_DEMAND" },
                        &s.disk_size.to_string(),
                    ]),
                },
            )
            .await?;
            wait_active_with(
                c,
                &cluster,
                name,
                POLL_INTERVAL,
                cx.limits.eks,
                false,
                &progress,
            )
            .await?;
            cx.report
                .resource(id, Self::NAME, Some(name), Progress::Created, Some(detail));
            return Ok(Output::Id(name.clone()));
        }
        let name = change.aws_id.clone().unwrap_or_else(|| self.name.clone());
        let mut scale = None;
        let mut config = None;
        let mut taints = (Vec::new(), Vec::new());
        let mut labels = (Default::default(), Vec::new());
        let mut detail = Vec::new();
        for d in &change.drifts {
            match d {
                Drift::AwaitActive { replaces, .. } => {
                    // One that exists may be DEGRADED; a replacement must be ACTIVE.
                    wait_active_with(
                        c,
                        &cluster,
                        &name,
                        POLL_INTERVAL,
                        cx.limits.eks,
                        !replaces,
                        &progress,
                    )
                    .await?;
                }
                Drift::Scale { to, .. } => {
                    scale = Some(*to);
                    detail.push(d.to_string());
                }
                Drift::Labels { set, remove } => {
                    labels = (set.clone(), remove.clone());
                    detail.push(d.to_string());
                }
                Drift::UpdateConfig { to, .. } => {
                    config = Some(*to);
                    detail.push(d.to_string());
                }
                Drift::Taints { set, remove } => {
                    taints = (set.clone(), remove.clone());
                    detail.push(d.to_string());
                }
                Drift::New { .. } => {
                    return Err(AwsError::internal(
                        "a new node group among an update's drifts",
                    ));
                }
            }
        }
        if detail.is_empty() {
            cx.report
                .resource(id, Self::NAME, Some(&name), Progress::Existing, None);
        } else {
            let detail = detail.join(", ");
            cx.report.resource(
                id,
                Self::NAME,
                Some(&name),
                Progress::Updating,
                Some(detail.clone()),
            );
            let change = ConfigChange {
                scaling: scale,
                labels,
                taints,
                update_config: config,
            };
            update(c, &cluster, &name, change, cx.limits.eks).await?;
            cx.report
                .resource(id, Self::NAME, Some(&name), Progress::Updated, Some(detail));
        }
        Ok(Output::Id(name.clone()))
    }

    async fn delete(tx: &Tx<'_>) -> Result<(), AwsError> {
        let Some(e) = tx.obs.eks.as_ref().filter(|e| e.owned) else {
            return Ok(());
        };
        let groups = e.nodegroups.iter().filter(|g| g.owned).map(|g| async move {
            let logical = g.logical.as_deref().unwrap_or(graph::NODEGROUP);
            tx.report
                .resource(logical, Self::NAME, Some(&g.name), Progress::Deleting, None);
            delete(tx.c, &e.name, &g.name, tx.limits.eks).await?;
            tx.report
                .resource(logical, Self::NAME, Some(&g.name), Progress::Deleted, None);
            Ok::<_, AwsError>(())
        });
        futures::future::try_join_all(groups).await?;
        Ok(())
    }
}

/// A node group as discovery records it.
pub(crate) fn observed(n: EksNodegroup, cluster: &str) -> ObsNodegroup {
    ObsNodegroup {
        owned: n.tags.get(CLUSTER_TAG).map(String::as_str) == Some(cluster),
        logical: n.tags.get(tags::RESOURCE_TAG).cloned(),
        name: n.name,
        arn: n.arn,
        status: n.status,
        min: n.min.unwrap_or_default().max(0) as u32,
        max: n.max.unwrap_or_default().max(0) as u32,
        desired: n.desired.unwrap_or_default().max(0) as u32,
        instance_types: n.instance_types,
        spot: n.spot,
        labels: n.labels.into_iter().collect(),
        issues: n.issues,
        version: n.version,
        release_version: n.release_version,
        max_unavailable: n.max_unavailable,
        taints: n.taints,
        launch_template: n.launch_template,
        subnets: n.subnets,
    }
}

/// What EKS reports about a managed node group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EksNodegroup {
    pub name: String,
    pub arn: String,
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
    pub version: String,
    pub release_version: String,
    pub max_unavailable: Option<MaxUnavailable>,
    pub taints: Vec<Taint>,
    pub launch_template: Option<String>,
    pub subnets: Vec<String>,
}

fn nodegroup_of(n: &aws_sdk_eks::types::Nodegroup) -> EksNodegroup {
    EksNodegroup {
        name: n.nodegroup_name().unwrap_or_default().into(),
        arn: n.nodegroup_arn().unwrap_or_default().into(),
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
        version: n.version().unwrap_or_default().to_string(),
        release_version: n.release_version().unwrap_or_default().to_string(),
        max_unavailable: n.update_config().and_then(|u| {
            let n = |v: i32| u32::try_from(v).ok();
            match (u.max_unavailable(), u.max_unavailable_percentage()) {
                (Some(c), _) => n(c).map(MaxUnavailable::Count),
                (None, Some(p)) => n(p).map(MaxUnavailable::Percent),
                (None, None) => None,
            }
        }),
        subnets: n.subnets().to_vec(),
        launch_template: n.launch_template().and_then(|t| t.id()).map(str::to_string),
        taints: n
            .taints()
            .iter()
            .map(|t| Taint {
                key: t.key().unwrap_or_default().to_string(),
                value: t.value().map(str::to_string),
                effect: t
                    .effect()
                    .map(|e| e.as_str().to_string())
                    .unwrap_or_default(),
            })
            .collect(),
    }
}

/// EKS's form of a taint.
fn taint_of(t: &Taint) -> aws_sdk_eks::types::Taint {
    aws_sdk_eks::types::Taint::builder()
        .key(&t.key)
        .set_value(t.value.clone())
        .effect(aws_sdk_eks::types::TaintEffect::from(t.effect.as_str()))
        .build()
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
pub async fn create(c: &Clients, i: &NodegroupInput<'_>) -> Result<EksNodegroup, AwsError> {
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
                let req = match g.max_unavailable {
                    Some(u) => req.update_config(super::eks_upgrade::update_config_of(u)),
                    None => req,
                };
                req.set_subnets(Some(i.subnet_ids.clone()))
                    .set_instance_types(Some(g.instance_types.clone()))
                    .ami_type(ami.clone())
                    .capacity_type(capacity.clone())
                    .node_role(i.node_role_arn)
                    .set_labels(Some(labels.clone()))
                    .set_taints(
                        (!g.taints.is_empty()).then(|| g.taints.iter().map(taint_of).collect()),
                    )
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
        return send(super::eks_cluster::fresh_token(&i.client_token)).await;
    }
    Ok(n)
}

/// Every node group of the cluster (ListNodegroups, then DescribeNodegroup of each, at once).
///
/// # Errors
/// The AWS error of a call.
pub async fn describe_all(c: &Clients, cluster: &str) -> Result<Vec<EksNodegroup>, AwsError> {
    let mut names = Vec::new();
    let mut token = None;
    loop {
        let page = c
            .eks
            .list_nodegroups()
            .cluster_name(cluster)
            .set_next_token(token)
            .send()
            .await
            .map_err(api("listing the node groups of", cluster))?;
        names.extend(page.nodegroups.unwrap_or_default());
        token = page.next_token;
        if token.is_none() {
            break;
        }
    }
    let found =
        futures::future::try_join_all(names.iter().map(|n| describe(c, cluster, n))).await?;
    Ok(found.into_iter().flatten().collect())
}

/// # Errors
/// Any error but ResourceNotFoundException.
pub async fn describe(
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
    Ok(
        absent_if(r, Code::ResourceNotFoundException)?
            .and_then(|o| o.nodegroup().map(nodegroup_of)),
    )
}

/// Polls until the node group is ACTIVE.
///
/// # Errors
/// CREATE_FAILED (with EKS's health issues), or the timeout.
pub async fn wait_active(
    c: &Clients,
    cluster: &str,
    name: &str,
    max: Duration,
) -> Result<(), AwsError> {
    wait_active_with(c, cluster, name, POLL_INTERVAL, max, false, &|_| {}).await
}

/// [`wait_active`] with its interval and a progress callback. With
/// `accept_degraded`, DEGRADED ends the wait too (an existing node group whose capacity is
/// short, e.g. Spot reclaimed, being scaled or relabelled): the caller reports it.
///
/// # Errors
/// CREATE_FAILED (with EKS's health issues), or the timeout.
pub async fn wait_active_with(
    c: &Clients,
    cluster: &str,
    name: &str,
    interval: Duration,
    max: Duration,
    accept_degraded: bool,
    progress: &(dyn Fn(&str) + Send + Sync),
) -> Result<(), AwsError> {
    let what = format!("EKS node group {name}");
    super::poll::until_with(
        &c.tuning,
        interval,
        max,
        &what,
        "ACTIVE",
        progress,
        || async {
            Ok(match describe(c, cluster, name).await? {
                None => Seen::Failed("the node group is gone".into()),
                Some(n) => match n.status.as_str() {
                    "ACTIVE" => Seen::Ready(()),
                    "DEGRADED" if accept_degraded => Seen::Ready(()),
                    "CREATE_FAILED" | "DELETE_FAILED" | "DEGRADED" | "DELETING" => Seen::Failed(
                        format!("the node group is {} ({})", n.status, n.issues.join("; ")),
                    ),
                    _ => Seen::Pending(n.status),
                },
            })
        },
    )
    .await
}

/// What one UpdateNodegroupConfig changes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigChange {
    /// (min, max, desired)
    pub scaling: Option<(u32, u32, u32)>,
    /// (labels to add or update, keys to remove)
    pub labels: (std::collections::BTreeMap<String, String>, Vec<String>),
    /// (taints to add or update, taints to remove)
    pub taints: (Vec<Taint>, Vec<Taint>),
    pub update_config: Option<MaxUnavailable>,
}

/// Changes the node group's scaling, labels and updateConfig in one UpdateNodegroupConfig, and
/// waits until the update is applied.
///
/// # Errors
/// The AWS error of the call, or the node group failing.
pub async fn update(
    c: &Clients,
    cluster: &str,
    name: &str,
    change: ConfigChange,
    timeout: Duration,
) -> Result<(), AwsError> {
    let ConfigChange {
        scaling,
        labels,
        taints,
        update_config,
    } = change;
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
    if let Some(u) = update_config {
        req = req.update_config(super::eks_upgrade::update_config_of(u));
    }
    let (set, unset) = taints;
    if !set.is_empty() || !unset.is_empty() {
        req = req.taints(
            aws_sdk_eks::types::UpdateTaintsPayload::builder()
                .set_add_or_update_taints(
                    (!set.is_empty()).then(|| set.iter().map(taint_of).collect()),
                )
                .set_remove_taints(
                    (!unset.is_empty()).then(|| unset.iter().map(taint_of).collect()),
                )
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
    wait_active_with(c, cluster, name, POLL_INTERVAL, timeout, true, &|_| {}).await
}

/// Deletes the node group and waits until it is gone.
///
/// # Errors
/// The AWS error of DeleteNodegroup, or the timeout.
pub async fn delete(c: &Clients, cluster: &str, name: &str, max: Duration) -> Result<(), AwsError> {
    let r = c
        .eks
        .delete_nodegroup()
        .cluster_name(cluster)
        .nodegroup_name(name)
        .send()
        .await
        .map_err(api("deleting EKS node group", name));
    if absent_if(r, Code::ResourceNotFoundException)?.is_none() {
        return Ok(());
    }
    let what = format!("EKS node group {name}");
    super::poll::until(&c.tuning, POLL_INTERVAL, max, &what, "deleted", || async {
        Ok(match describe(c, cluster, name).await? {
            None => Seen::Ready(()),
            Some(n) if n.status == "DELETE_FAILED" => {
                Seen::Failed(format!("DELETE_FAILED ({})", n.issues.join("; ")))
            }
            Some(n) => Seen::Pending(n.status),
        })
    })
    .await
}
