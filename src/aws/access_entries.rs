//! EKS access entries and their access policies.

use crate::core::events::Progress;
use std::collections::HashMap;

use super::error::{Code, absent_if, api};
use super::kind::{Apply, Cx, Scope, Tx};
use super::{AwsError, Clients};
use crate::core::kinds::access_entries::{AccessChange, AccessEntries};
use crate::core::kinds::eks_cluster::ObsAccessEntry;
use crate::core::kinds::{Action, Change, Inputs, NoState, Output, Plan};

impl Apply for AccessEntries {
    async fn observe(_c: &Clients, _scope: &Scope<'_>) -> Result<NoState, AwsError> {
        // EKS reports them with the cluster (see `eks_cluster`).
        Ok(NoState)
    }

    async fn apply(
        &self,
        cx: &Cx<'_>,
        id: &str,
        change: &Change<AccessChange>,
        inputs: &Inputs,
    ) -> Result<Output, AwsError> {
        let cluster = inputs.eks(&self.cluster)?.name.clone();
        apply_changes(cx.c, &cluster, &change.drifts, &cx.tags(id, false)).await?;
        let (action, detail) = match change.action {
            Action::Keep => (
                Progress::Existing,
                format!("{} entr(ies)", self.entries.len()),
            ),
            Action::Create if change.drifts.is_empty() => (
                Progress::Created,
                format!("{} entr(ies)", self.entries.len()),
            ),
            _ => (
                if change.action == Action::Create {
                    Progress::Created
                } else {
                    Progress::Updated
                },
                change
                    .drifts
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; "),
            ),
        };
        cx.report
            .resource(id, Self::NAME, Some(&cluster), action, Some(detail));
        Ok(Output::Nothing)
    }

    async fn delete(tx: &Tx<'_>) -> Result<(), AwsError> {
        let Some(e) = tx.obs.eks.as_ref().filter(|e| e.owned) else {
            return Ok(());
        };
        // Ours only: the creator's entry goes with the cluster.
        let ours: Vec<String> = e
            .access_entries
            .iter()
            .filter(|p| p.owned)
            .map(|p| p.principal.clone())
            .collect();
        for p in &ours {
            tx.report.resource(
                "access-entry",
                Self::NAME,
                Some(p),
                Progress::Deleting,
                None,
            );
        }
        delete(tx.c, &e.name, &ours).await?;
        for p in &ours {
            tx.report
                .resource("access-entry", Self::NAME, Some(p), Progress::Deleted, None);
        }
        Ok(())
    }
}

/// Every access entry of the cluster: whether it carries our tag, and its access policies with
/// their scope (ListAccessEntries, then DescribeAccessEntry and ListAssociatedAccessPolicies for
/// each entry, concurrently).
///
/// # Errors
/// The AWS error of a call.
pub async fn observe(
    c: &Clients,
    cluster: &str,
    owner: &str,
) -> Result<Vec<ObsAccessEntry>, AwsError> {
    let principals = c
        .eks
        .list_access_entries()
        .cluster_name(cluster)
        .send()
        .await
        .map_err(api("listing the access entries of", cluster))?
        .access_entries()
        .to_vec();
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

/// Makes the changes the plan decided (`core::kinds::access_entries::access_changes`) (concurrently per principal, in
/// order within one).
///
/// # Errors
/// The AWS error of a call.
pub async fn apply_changes(
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
        let p = ch.principal();
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
                        // An entry made by a run that stopped before its association (or the
                        // creator's, which the spec names) is there already.
                        let r = c
                            .eks
                            .create_access_entry()
                            .cluster_name(cluster)
                            .principal_arn(principal)
                            .set_tags(Some(tags.clone()))
                            .send()
                            .await
                            .map_err(api("creating the access entry of", &who));
                        absent_if(r, Code::ResourceInUseException)?;
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
                        delete(c, cluster, std::slice::from_ref(principal)).await?;
                    }
                }
            }
            Ok::<_, AwsError>(())
        }
    });
    futures::future::try_join_all(work).await?;
    Ok(())
}

/// Deletes access entries (their policy associations go with them), concurrently.
///
/// # Errors
/// The AWS error of a call.
pub async fn delete(c: &Clients, cluster: &str, principals: &[String]) -> Result<(), AwsError> {
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
        absent_if(r, Code::ResourceNotFoundException).map(|_| ())
    });
    futures::future::try_join_all(deletes).await?;
    Ok(())
}
