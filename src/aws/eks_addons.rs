//! EKS add-ons: installed with client request tokens (concurrently), polled every 10 s until
//! ACTIVE (the SDK's waiter polls 10-120 s apart and gives up on DEGRADED).

use crate::core::events::Progress;
use std::collections::HashMap;
use std::time::Duration;

use super::error::{Code, absent_if, api};
use super::kind::{Apply, Cx, Scope, Tx};
use super::poll::Seen;
use super::retry::{Backoff, is_iam_propagation, retry};
use super::{AwsError, Clients};
use crate::core::graph::EBS_CSI_SERVICE_ACCOUNT;
use crate::core::kinds::eks_addons::{Drift, EksAddons};
use crate::core::kinds::eks_cluster::ObsAddon;
use crate::core::kinds::{Action, Change, Inputs, NoState, Output, Plan};

/// Add-ons are polled every 10 s (they take 30-90 s).
pub const POLL_INTERVAL: Duration = Duration::from_secs(10);
/// How long an add-on may take to become ACTIVE.
const ADDON_TIMEOUT: Duration = Duration::from_secs(15 * 60);

impl Apply for EksAddons {
    async fn observe(_c: &Clients, _scope: &Scope<'_>) -> Result<NoState, AwsError> {
        // EKS reports them with the cluster (see `eks_cluster`).
        Ok(NoState)
    }

    async fn apply(
        &self,
        cx: &Cx<'_>,
        id: &str,
        change: &Change<Drift>,
        inputs: &Inputs,
    ) -> Result<Output, AwsError> {
        let list: Vec<&str> = self.names.iter().map(|(n, _)| n.as_str()).collect();
        if matches!(change.action, Action::Keep | Action::Warn) {
            cx.report.resource(
                id,
                Self::NAME,
                Some(&list.join(",")),
                Progress::Existing,
                None,
            );
            return Ok(Output::Nothing);
        }
        let cluster = inputs.eks(&self.cluster)?.name.clone();
        let mut install_now = Vec::new();
        let mut waits: Vec<(&str, bool)> = Vec::new();
        for d in &change.drifts {
            match d {
                Drift::Install(name) => {
                    let role = self
                        .names
                        .iter()
                        .find(|(n, _)| n == name)
                        .and_then(|(_, r)| r.as_ref());
                    let pod_identity = match role {
                        Some(r) => Some((
                            EBS_CSI_SERVICE_ACCOUNT.to_string(),
                            inputs.role(r)?.1.to_string(),
                        )),
                        None => None,
                    };
                    install_now.push(AddonWant {
                        name: name.clone(),
                        pod_identity,
                        version: self.pins.get(name).cloned(),
                    });
                    waits.push((name, false));
                }
                Drift::AwaitActive { name, .. } => waits.push((name, true)),
                Drift::Pin { name, to, .. } => {
                    cx.report.resource(
                        id,
                        Self::NAME,
                        Some(name),
                        Progress::Updating,
                        Some(d.to_string()),
                    );
                    update(cx.c, &cluster, name, to).await?;
                    waits.push((name, true));
                }
            }
        }
        if !install_now.is_empty() {
            let names: Vec<&str> = install_now.iter().map(|a| a.name.as_str()).collect();
            cx.report.resource(
                id,
                Self::NAME,
                None,
                Progress::Creating,
                Some(names.join(", ")),
            );
        }
        let vpc = inputs.id(&self.vpc)?;
        install(cx.c, &cluster, vpc, &install_now, &cx.tags(id, false)).await?;
        for d in wait_active(cx.c, &cluster, &waits, ADDON_TIMEOUT).await? {
            cx.report.warning(format!("add-on {d}"));
        }
        let pinned = change.drifts.iter().any(|d| matches!(d, Drift::Pin { .. }));
        let action = match (install_now.is_empty(), pinned) {
            (false, _) => Progress::Created,
            (true, true) => Progress::Updated,
            (true, false) => Progress::Existing,
        };
        cx.report
            .resource(id, Self::NAME, Some(&list.join(",")), action, None);
        Ok(Output::Nothing)
    }

    async fn delete(tx: &Tx<'_>) -> Result<(), AwsError> {
        let Some(e) = tx.obs.eks.as_ref().filter(|e| e.owned) else {
            return Ok(());
        };
        let names: Vec<String> = e.addons.iter().map(|a| a.name.clone()).collect();
        for a in &names {
            tx.report
                .resource("addon", Self::NAME, Some(a), Progress::Deleting, None);
        }
        delete(tx.c, &e.name, &names, tx.limits.eks).await?;
        for a in &names {
            tx.report
                .resource("addon", Self::NAME, Some(a), Progress::Deleted, None);
        }
        Ok(())
    }
}

/// The cluster's add-ons (ListAddons) and, with `status`, their status (DescribeAddon for each,
/// concurrently: `up` and `plan` need it, `down` not).
///
/// # Errors
/// The AWS error of a call.
pub async fn observe(c: &Clients, cluster: &str, status: bool) -> Result<Vec<ObsAddon>, AwsError> {
    let out = c
        .eks
        .list_addons()
        .cluster_name(cluster)
        .send()
        .await
        .map_err(api("listing the add-ons of", cluster))?;
    let with_status = status;
    futures::future::try_join_all(out.addons().iter().map(|name| async move {
        if with_status {
            observe_one(c, cluster, name).await
        } else {
            Ok::<_, AwsError>(ObsAddon {
                name: name.clone(),
                status: String::new(),
                issues: Vec::new(),
                version: String::new(),
            })
        }
    }))
    .await
}

/// DescribeAddon, its error saying what we were `doing` to the add-on.
/// UpdateAddon to `version`, keeping what someone changed in its resources (ours set no
/// conflicting fields); the update EKS started, if it says.
///
/// # Errors
/// The AWS error of UpdateAddon.
pub async fn update(
    c: &Clients,
    cluster: &str,
    name: &str,
    version: &str,
) -> Result<Option<aws_sdk_eks::types::Update>, AwsError> {
    let out = c
        .eks
        .update_addon()
        .cluster_name(cluster)
        .addon_name(name)
        .addon_version(version)
        .resolve_conflicts(aws_sdk_eks::types::ResolveConflicts::Preserve)
        .send()
        .await
        .map_err(api("updating add-on", &format!("{name} on {cluster}")))?;
    Ok(out.update)
}

/// One add-on as DescribeAddon reports it: status, health issues, version.
///
/// # Errors
/// The AWS error of DescribeAddon.
pub async fn observe_one(c: &Clients, cluster: &str, name: &str) -> Result<ObsAddon, AwsError> {
    let d = describe(c, cluster, name, "describing").await?;
    let (status, issues) = self::status(&d);
    let version = d
        .addon()
        .and_then(|a| a.addon_version())
        .unwrap_or_default()
        .to_string();
    Ok(ObsAddon {
        name: name.to_string(),
        status,
        issues,
        version,
    })
}

async fn describe(
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

/// An add-on's status and EKS's health issues.
fn status(
    d: &aws_sdk_eks::operation::describe_addon::DescribeAddonOutput,
) -> (String, Vec<String>) {
    let addon = d.addon();
    let status = addon
        .and_then(|x| x.status())
        .map(|s| s.as_str().to_string())
        .unwrap_or_default();
    let issues = addon
        .and_then(|x| x.health())
        .map(|h| {
            h.issues()
                .iter()
                .filter_map(|i| i.message().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    (status, issues)
}

/// One add-on to install, with the role its pods assume through EKS Pod Identity, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddonWant {
    pub name: String,
    /// (service account, role ARN)
    pub pod_identity: Option<(String, String)>,
    /// Its pinned version; `None`: EKS's default for the cluster's version.
    pub version: Option<String>,
}

impl AddonWant {
    pub fn named(name: &str) -> AddonWant {
        AddonWant {
            name: name.to_string(),
            pod_identity: None,
            version: None,
        }
    }
}

/// CreateAddon for each of `want`, concurrently, with client request tokens derived from the
/// cluster, `token_seed` (the VPC id: a new cluster of the same name gets new tokens) and the
/// add-on's name. vpc-cni gets network-policy enforcement turned on.
///
/// # Errors
/// The AWS error of a call (a pod identity role that is not yet usable is retried).
pub async fn install(
    c: &Clients,
    cluster: &str,
    token_seed: &str,
    want: &[AddonWant],
    tags: &[(String, String)],
) -> Result<(), AwsError> {
    let tags: HashMap<String, String> = tags.iter().cloned().collect();
    let creates = want.iter().map(|a| {
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
            if let Some(v) = &a.version {
                req = req.addon_version(v);
            }
            if name == "vpc-cni" {
                req = req.configuration_values(r#"{"enableNetworkPolicy":"true"}"#);
            }
            // Volumes carry the cluster's name, so `down` finds them after the cluster is gone.
            if name == "aws-ebs-csi-driver" {
                req = req.configuration_values(super::volumes::addon_configuration(cluster));
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
    Ok(())
}

/// Polls each add-on until it is ACTIVE. For one created now (`existed` false), DEGRADED counts
/// as not yet ACTIVE (its pods wait for nodes); one that was already there and is DEGRADED is
/// returned in the report instead of waited for. CREATE_FAILED is a failure.
///
/// # Errors
/// The AWS error of a call, or an add-on that does not become ACTIVE in time.
pub async fn wait_active(
    c: &Clients,
    cluster: &str,
    names: &[(&str, bool)],
    max: Duration,
) -> Result<Vec<String>, AwsError> {
    let degraded = std::sync::Mutex::new(Vec::new());
    let waits = names.iter().map(|(name, existed)| {
        let degraded = &degraded;
        async move {
            let what = format!("add-on {name} on {cluster}");
            super::poll::until(&c.tuning, POLL_INTERVAL, max, &what, "ACTIVE", || async {
                let (status, issues) = status(&describe(c, cluster, name, "describing").await?);
                Ok(match status.as_str() {
                    "ACTIVE" => Seen::Ready(()),
                    // Reported, not waited for: up has not changed it.
                    "DEGRADED" if *existed => {
                        degraded
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .push(format!("{name}: DEGRADED ({})", issues.join("; ")));
                        Seen::Ready(())
                    }
                    "CREATE_FAILED" | "DELETING" | "DELETE_FAILED" => {
                        Seen::Failed(format!("{status}: {}", issues.join("; ")))
                    }
                    _ => Seen::Pending(status),
                })
            })
            .await
        }
    });
    futures::future::try_join_all(waits).await?;
    Ok(degraded
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner))
}

/// Deletes add-ons (concurrently) and waits until they are gone (our own poll: the SDK's waiter
/// sleeps 10-120 s between polls).
///
/// # Errors
/// The AWS error of a call, or the timeout.
pub async fn delete(
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
        if absent_if(r, Code::ResourceNotFoundException)?.is_none() {
            return Ok(());
        }
        let what = format!("add-on {name} on {cluster}");
        super::poll::until(&c.tuning, POLL_INTERVAL, max, &what, "deleted", || async {
            let r = describe(c, cluster, name, "waiting for the deletion of").await;
            Ok(match absent_if(r, Code::ResourceNotFoundException)? {
                None => Seen::Ready(()),
                Some(out) => {
                    let (status, _) = status(&out);
                    if status == "DELETE_FAILED" {
                        Seen::Failed(format!("{what} is DELETE_FAILED"))
                    } else {
                        Seen::Pending(status)
                    }
                }
            })
        })
        .await
    });
    futures::future::try_join_all(deletes).await?;
    Ok(())
}
