//! The EKS cluster: created tagged and idempotent (client request tokens), retried while its new
//! role propagates, polled every 15 s until ACTIVE (the SDK's waiter polls 30-120 s apart).
//! Discovery also lists what EKS reports with it: add-ons, access entries, our node group and
//! the cluster's own security group.

use crate::core::events::Progress;
use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_eks::types::{AuthenticationMode, CreateAccessConfigRequest, VpcConfigRequest};

use super::error::{Code, absent_if, api};
use super::kind::{Apply, Cx, Scope, Tx};
use super::poll::Seen;
use super::retry::{Backoff, is_iam_propagation, retry};
use super::{AwsError, Clients};
use crate::core::graph;
use crate::core::kinds::eks_cluster::{Drift, EksCluster, EksInfo, ObsEks};
use crate::core::kinds::{Action, Change, Inputs, Output, Plan};
use crate::core::tags::{self, CLUSTER_TAG};

/// How often clusters and node groups are polled. A 10-minute cluster creation costs 41
/// DescribeCluster calls and is noticed at most 15 s late.
pub const POLL_INTERVAL: Duration = Duration::from_secs(15);

impl Apply for EksCluster {
    async fn observe(c: &Clients, scope: &Scope<'_>) -> Result<Option<ObsEks>, AwsError> {
        if !scope.eks() {
            return Ok(None);
        }
        observe(c, scope).await
    }

    async fn apply(
        &self,
        cx: &Cx<'_>,
        id: &str,
        change: &Change<Drift>,
        inputs: &Inputs,
    ) -> Result<Output, AwsError> {
        let c = cx.c;
        let action = match change.action {
            Action::Keep | Action::Warn => {
                // Discovery just described it: no second DescribeCluster.
                let e = cx
                    .obs
                    .eks
                    .as_ref()
                    .ok_or_else(|| AwsError::internal("a kept EKS cluster was observed"))?;
                let info = EksInfo {
                    name: e.name.clone(),
                    arn: e.arn.clone(),
                    endpoint: e.endpoint.clone(),
                    ca_data: e.ca_data.clone(),
                    version: Some(e.version.clone()),
                    cluster_sg: e.cluster_sg.as_ref().map(|g| g.id.clone()),
                };
                cx.report.resource(
                    id,
                    Self::NAME,
                    Some(&self.name),
                    Progress::Existing,
                    info.endpoint.clone(),
                );
                return Ok(Output::Eks(info));
            }
            Action::Update => {
                for Drift::AwaitActive { status } in &change.drifts {
                    cx.report.resource(
                        id,
                        Self::NAME,
                        Some(&self.name),
                        Progress::Waiting,
                        Some(status.clone()),
                    );
                }
                Progress::Existing
            }
            _ => {
                let mut subnets = Vec::new();
                for s in &self.subnets {
                    subnets.push(inputs.id(s)?.to_string());
                }
                let vpc = inputs.id(&self.vpc)?;
                cx.report.resource(
                    id,
                    Self::NAME,
                    None,
                    Progress::Creating,
                    Some(format!("Kubernetes {}", self.version)),
                );
                create(
                    c,
                    &ClusterInput {
                        name: &self.name,
                        version: &self.version,
                        role_arn: inputs.role(&self.role)?.1,
                        subnet_ids: subnets,
                        security_group_ids: vec![inputs.group(&self.security_group)?.to_string()],
                        endpoint_public_access: self.endpoint_public_access,
                        endpoint_private_access: self.endpoint_private_access,
                        public_access_cidrs: self.public_access_cidrs.clone(),
                        tags: &cx.tags(id, false),
                        // A new VPC is a new cluster: a token from an earlier cluster of this name
                        // (deleted since) must not answer for it.
                        client_token: tags::client_token(&[&self.name, vpc, "cluster"]),
                    },
                )
                .await?;
                Progress::Created
            }
        };
        let progress = |state: &str| {
            cx.report
                .waiting(format!("EKS cluster {}: {state}", self.name));
        };
        let info = wait_active_with(c, &self.name, POLL_INTERVAL, cx.limits.eks, &progress).await?;
        cx.report.resource(
            id,
            Self::NAME,
            Some(&self.name),
            action,
            info.endpoint.clone(),
        );
        Ok(Output::Eks(info))
    }

    async fn delete(tx: &Tx<'_>) -> Result<(), AwsError> {
        let Some(e) = tx.obs.eks.as_ref().filter(|e| e.owned) else {
            return Ok(());
        };
        let c = tx.c;
        // EKS deletes the cluster's own security group with it, which it cannot while our
        // groups' rules name it (or its rules name ours): take those out first.
        if let Some(cg) = &e.cluster_sg {
            let ours: Vec<&str> = tx
                .obs
                .security_groups
                .iter()
                .map(|g| g.id.as_str())
                .collect();
            for g in &tx.obs.security_groups {
                let naming: Vec<_> = g
                    .rules
                    .iter()
                    .filter(|r| r.source == cg.id)
                    .cloned()
                    .collect();
                super::security_group::revoke(c, &g.id, &naming).await?;
            }
            let naming_ours: Vec<_> = cg
                .rules
                .iter()
                .filter(|r| ours.contains(&r.source.as_str()))
                .cloned()
                .collect();
            super::security_group::revoke(c, &cg.id, &naming_ours).await?;
        }
        let logical = graph::EKS_CLUSTER;
        tx.report
            .resource(logical, Self::NAME, Some(&e.name), Progress::Deleting, None);
        retry(
            c.tuning.dependency(),
            |err| *err.code() == Code::ResourceInUseException,
            || delete(c, &e.name, tx.limits.eks),
        )
        .await?;
        tx.report
            .resource(logical, Self::NAME, Some(&e.name), Progress::Deleted, None);
        Ok(())
    }
}

/// The EKS cluster of the cluster's name and, if it is ours and ACTIVE, what EKS reports with
/// it (all in flight at once). `down` (no flavour) tolerates being denied DescribeCluster by
/// someone with only the kubeadm permissions, unless the cluster's EKS-only roles exist.
async fn observe(c: &Clients, scope: &Scope<'_>) -> Result<Option<ObsEks>, AwsError> {
    let cluster = scope.cluster;
    let found = match describe(c, cluster).await {
        Ok(f) => f,
        Err(e) if scope.flavor.is_none() && e.code().is_access_denied() => {
            return denied(c, scope, e).await;
        }
        Err(e) => return Err(e),
    };
    let Some(e) = found else {
        return Ok(None);
    };
    let owned = e.tags.get(CLUSTER_TAG).map(String::as_str) == Some(cluster);
    let mut obs = ObsEks {
        name: e.name.clone(),
        arn: e.arn.clone(),
        status: e.status.clone(),
        version: e.version.clone().unwrap_or_default(),
        endpoint: e.endpoint.clone(),
        ca_data: e.ca_data.clone(),
        owned,
        addons: Vec::new(),
        access_entries: Vec::new(),
        cluster_sg: None,
        nodegroups: Vec::new(),
        stamp: crate::core::stamp::Stamp::from_tags(
            e.tags.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        ),
        platform_version: e.platform_version.clone(),
        health: e.health.clone(),
        upgrade: Default::default(),
    };
    // Add-ons, access entries and node groups exist only on a cluster that has become ACTIVE;
    // while it is CREATING, `up` waits and then makes them.
    if !obs.listed() {
        return Ok(Some(obs));
    }
    let (addons, entries, groups, cluster_sg) = tokio::try_join!(
        super::eks_addons::observe(c, cluster, scope.flavor.is_some()),
        super::access_entries::observe(c, cluster, cluster),
        super::nodegroup::describe_all(c, cluster),
        async {
            match &e.cluster_sg {
                Some(id) => super::security_group::by_id(c, id).await,
                None => Ok(None),
            }
        },
    )?;
    obs.addons = addons;
    obs.access_entries = entries;
    obs.cluster_sg = cluster_sg;
    obs.nodegroups = groups
        .into_iter()
        .map(|n| super::nodegroup::observed(n, cluster))
        .collect();
    if let Some((version, force, pins)) = scope.eks_version {
        super::eks_upgrade::observe(c, &mut obs, version, force, pins).await?;
    }
    Ok(Some(obs))
}

/// DescribeCluster was denied: a hidden cluster is likely when its EKS-only roles exist, and
/// deleting its roles and network under it would leave it broken and still billed.
async fn denied(c: &Clients, scope: &Scope<'_>, e: AwsError) -> Result<Option<ObsEks>, AwsError> {
    let roles = [
        tags::role_name(scope.cluster, scope.region, "cluster"),
        tags::role_name(scope.cluster, scope.region, "ebs-csi"),
    ];
    for name in &roles {
        if super::iam_role::get(c, name, scope.cluster)
            .await?
            .is_some_and(|r| r.owned)
        {
            return Err(AwsError::unexpected(
                "looking for the EKS cluster",
                scope.cluster,
                format!(
                    "{e}; its IAM roles exist, so it may too: `down` needs eks:DescribeCluster (and the other EKS permissions) to remove it"
                ),
            ));
        }
    }
    scope.warn(format!(
        "could not look for an EKS cluster named {} ({e}); if there is one, delete it first",
        scope.cluster
    ));
    Ok(None)
}

/// What EKS reports about a cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Described {
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
    pub platform_version: Option<String>,
    /// EKS's health issues (`CODE: message`).
    pub health: Vec<String>,
}

impl Described {
    pub fn info(&self) -> EksInfo {
        EksInfo {
            name: self.name.clone(),
            arn: self.arn.clone(),
            endpoint: self.endpoint.clone(),
            ca_data: self.ca_data.clone(),
            version: self.version.clone(),
            cluster_sg: self.cluster_sg.clone(),
        }
    }
}

fn described(c: &aws_sdk_eks::types::Cluster) -> Described {
    Described {
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
        platform_version: c.platform_version().map(str::to_string),
        health: c
            .health()
            .map(|h| {
                h.issues()
                    .iter()
                    .map(|i| {
                        format!(
                            "{}: {}",
                            i.code().map_or("issue", |c| c.as_str()),
                            i.message().unwrap_or_default()
                        )
                    })
                    .collect()
            })
            .unwrap_or_default(),
    }
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

/// Creates the cluster in API access mode, retrying while its new role propagates.
///
/// # Errors
/// The AWS error of CreateCluster, or a deadline error naming the propagation wait.
pub async fn create(c: &Clients, i: &ClusterInput<'_>) -> Result<Described, AwsError> {
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
            out.cluster().map(described).ok_or_else(|| {
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
pub(crate) fn fresh_token(token: &str) -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    format!("{token}-{secs}")
}

/// # Errors
/// Any error but ResourceNotFoundException.
pub async fn describe(c: &Clients, name: &str) -> Result<Option<Described>, AwsError> {
    let r = c
        .eks
        .describe_cluster()
        .name(name)
        .send()
        .await
        .map_err(api("describing EKS cluster", name));
    Ok(absent_if(r, Code::ResourceNotFoundException)?.and_then(|o| o.cluster().map(described)))
}

/// Polls until the cluster is ACTIVE and returns it.
///
/// # Errors
/// FAILED, the cluster disappearing, or the timeout.
pub async fn wait_active(c: &Clients, name: &str, max: Duration) -> Result<EksInfo, AwsError> {
    wait_active_with(c, name, POLL_INTERVAL, max, &|_| {}).await
}

/// [`wait_active`] with its interval and a progress callback.
///
/// # Errors
/// FAILED, the cluster disappearing, or the timeout.
pub async fn wait_active_with(
    c: &Clients,
    name: &str,
    interval: Duration,
    max: Duration,
    progress: &(dyn Fn(&str) + Send + Sync),
) -> Result<EksInfo, AwsError> {
    let what = format!("EKS cluster {name}");
    super::poll::until_with(
        &c.tuning,
        interval,
        max,
        &what,
        "ACTIVE",
        progress,
        || async {
            Ok(match describe(c, name).await? {
                None => Seen::Failed("the cluster is gone".into()),
                Some(k) => match k.status.as_str() {
                    "ACTIVE" => Seen::Ready(k.info()),
                    "FAILED" | "DELETING" => Seen::Failed(format!("the cluster is {}", k.status)),
                    _ => Seen::Pending(k.status),
                },
            })
        },
    )
    .await
}

/// Deletes the cluster and waits until it is gone.
///
/// # Errors
/// The AWS error of DeleteCluster (ResourceInUseException while node groups remain), or the
/// timeout.
pub async fn delete(c: &Clients, name: &str, max: Duration) -> Result<(), AwsError> {
    let r = c
        .eks
        .delete_cluster()
        .name(name)
        .send()
        .await
        .map_err(api("deleting EKS cluster", name));
    if absent_if(r, Code::ResourceNotFoundException)?.is_none() {
        return Ok(());
    }
    let what = format!("EKS cluster {name}");
    super::poll::until(&c.tuning, POLL_INTERVAL, max, &what, "deleted", || async {
        Ok(match describe(c, name).await? {
            None => Seen::Ready(()),
            Some(k) if k.status == "FAILED" => Seen::Failed("deletion FAILED".into()),
            Some(k) => Seen::Pending(k.status),
        })
    })
    .await
}
