//! IAM roles. IAM names are global to the account: a role of our name without our tag belongs
//! to someone else and is neither adopted nor deleted.

use super::error::{Code, absent_if, api, gone_is_fine};
use super::kind::{Apply, Cx, Flavor, Scope, Tx};
use super::retry::{Backoff, is_dependency_violation, is_eventual_not_found, retry};
use super::{AwsError, Clients};
use crate::core::events::Progress;
use crate::core::graph;
use crate::core::kinds::iam_role::{Drift, IamRole, ObsIam, managed_policy_arn};
use crate::core::kinds::{Action, Change, Inputs, Output, Plan};
use crate::core::tags::{CLUSTER_TAG, REGION_TAG, node_role_name, role_name};

impl Apply for IamRole {
    async fn observe(c: &Clients, scope: &Scope<'_>) -> Result<Vec<ObsIam>, AwsError> {
        // Attached policies matter for the EKS roles only (the others have none).
        let policies = scope.flavor == Some(Flavor::Eks);
        let found = futures::future::try_join_all(names(scope).into_iter().map(
            |(logical, name)| async move {
                let Some(mut r) = get(c, &name, scope.cluster).await? else {
                    return Ok::<_, AwsError>(None);
                };
                r.logical = logical.to_string();
                if policies && r.owned {
                    r.policies = Some(attached_policies(c, &name).await?);
                }
                Ok(Some(r))
            },
        ))
        .await?;
        Ok(found.into_iter().flatten().collect())
    }

    async fn apply(
        &self,
        cx: &Cx<'_>,
        id: &str,
        change: &Change<Drift>,
        _inputs: &Inputs,
    ) -> Result<Output, AwsError> {
        let c = cx.c;
        if change.action != Action::Create {
            let r = crate::core::kinds::iam_role::find(cx.obs, id)
                .ok_or_else(|| AwsError::internal(format!("the plan's role {id} was found")))?;
            let arns: Vec<String> = change
                .drifts
                .iter()
                .map(|Drift::Attach(p)| managed_policy_arn(&r.arn, p))
                .collect();
            attach(c, &self.name, &arns).await?;
            let (action, detail) = if arns.is_empty() {
                (Progress::Existing, None)
            } else {
                (
                    Progress::Updated,
                    Some(format!("{} policy(ies) attached", arns.len())),
                )
            };
            cx.report
                .resource(id, Self::NAME, Some(&self.name), action, detail);
            return Ok(Output::Role {
                name: self.name.clone(),
                arn: r.arn.clone(),
            });
        }
        cx.report.resource(
            id,
            Self::NAME,
            None,
            Progress::Creating,
            Some(self.name.clone()),
        );
        let description = format!("provision {}: {id}", cx.spec.name);
        let arn = create(
            c,
            &self.name,
            self.service,
            &description,
            &cx.tags(id, false),
        )
        .await?;
        let arns: Vec<String> = self
            .policies
            .iter()
            .map(|p| managed_policy_arn(&arn, p))
            .collect();
        attach(c, &self.name, &arns).await?;
        let detail = (!self.policies.is_empty()).then(|| self.policies.join(", "));
        cx.report
            .resource(id, Self::NAME, Some(&self.name), Progress::Created, detail);
        Ok(Output::Role {
            name: self.name.clone(),
            arn,
        })
    }

    async fn delete(tx: &Tx<'_>) -> Result<(), AwsError> {
        let deletes = tx.obs.roles.iter().filter(|r| r.owned).map(|r| async move {
            tx.report
                .deleting(
                    Some(&r.logical),
                    Self::NAME,
                    &r.name,
                    retry(tx.c.tuning.dependency(), is_dependency_violation, || {
                        delete(tx.c, &r.name)
                    }),
                )
                .await?;
            Ok::<_, AwsError>(())
        });
        futures::future::try_join_all(deletes).await?;
        Ok(())
    }
}

/// The roles whose names derive from the cluster, by logical id, for a scope.
pub fn names(scope: &Scope<'_>) -> Vec<(&'static str, String)> {
    let mut out = vec![(
        graph::NODE_ROLE,
        node_role_name(scope.cluster, scope.region),
    )];
    if scope.eks() {
        out.push((
            graph::CLUSTER_ROLE,
            role_name(scope.cluster, scope.region, "cluster"),
        ));
        out.push((
            graph::EBS_CSI_ROLE,
            role_name(scope.cluster, scope.region, "ebs-csi"),
        ));
    }
    if scope.with_addons() {
        out.push((
            graph::ADDONS_ROLE,
            role_name(scope.cluster, scope.region, "addons"),
        ));
    }
    out
}

pub(crate) fn iam_tags(tags: &[(String, String)]) -> Vec<aws_sdk_iam::types::Tag> {
    tags.iter()
        .filter_map(|(k, v)| {
            aws_sdk_iam::types::Tag::builder()
                .key(k)
                .value(v)
                .build()
                .ok()
        })
        .collect()
}

/// Whose an IAM object is, from its tags: (ours, the other region it names). Ours when it
/// carries our cluster tag and no region tag but this region's (objects made before the region
/// tag have none: their names were this region's). IAM is global; this is the one place that
/// tells a cluster from its namesake in another region.
pub(crate) fn iam_owner(
    tags: &[aws_sdk_iam::types::Tag],
    cluster: &str,
    region: &str,
) -> (bool, Option<String>) {
    let ours = tags
        .iter()
        .any(|t| t.key() == CLUSTER_TAG && t.value() == cluster);
    let other = tags
        .iter()
        .find(|t| t.key() == REGION_TAG && t.value() != region)
        .map(|t| t.value().to_string());
    (ours && other.is_none(), other.filter(|_| ours))
}

/// The tags of an IAM object: the resource's, and the region's.
pub(crate) fn iam_tags_in(tags: &[(String, String)], region: &str) -> Vec<aws_sdk_iam::types::Tag> {
    let mut all = tags.to_vec();
    all.push((REGION_TAG.to_string(), region.to_string()));
    iam_tags(&all)
}

/// # Errors
/// Any error but NoSuchEntity.
pub async fn get(c: &Clients, name: &str, cluster: &str) -> Result<Option<ObsIam>, AwsError> {
    let r = c
        .iam
        .get_role()
        .role_name(name)
        .send()
        .await
        .map_err(api("reading IAM role", name));
    Ok(absent_if(r, Code::NoSuchEntity)?.and_then(|out| {
        out.role().map(|r| {
            let owner = iam_owner(r.tags(), cluster, &c.region);
            ObsIam {
                logical: String::new(),
                policies: None,
                name: r.role_name().into(),
                arn: r.arn().into(),
                owned: owner.0,
                other_region: owner.1,
            }
        })
    }))
}

/// Creates a role that `service` (e.g. `eks.amazonaws.com`) may assume, tagged.
///
/// # Errors
/// The AWS error of the failing call.
pub async fn create(
    c: &Clients,
    name: &str,
    service: &str,
    description: &str,
    tags: &[(String, String)],
) -> Result<String, AwsError> {
    // EKS Pod Identity also tags the session it starts.
    let actions = if service == "pods.eks.amazonaws.com" {
        serde_json::json!(["sts:AssumeRole", "sts:TagSession"])
    } else {
        serde_json::json!("sts:AssumeRole")
    };
    let trust = serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": service}, "Action": actions}],
    });
    let out = c
        .iam
        .create_role()
        .role_name(name)
        .path("/provision/")
        .assume_role_policy_document(trust.to_string())
        .description(description)
        .set_tags(Some(iam_tags_in(tags, &c.region)))
        .send()
        .await
        .map_err(api("creating IAM role", name))?;
    Ok(out.role().map(|r| r.arn().to_string()).unwrap_or_default())
}

/// The ARNs of the managed policies attached to a role.
///
/// # Errors
/// The AWS error of the call.
pub async fn attached_policies(c: &Clients, role: &str) -> Result<Vec<String>, AwsError> {
    let attached = c
        .iam
        .list_attached_role_policies()
        .role_name(role)
        .send()
        .await
        .map_err(api("listing policies of IAM role", role))?;
    Ok(attached
        .attached_policies()
        .iter()
        .filter_map(|p| p.policy_arn().map(str::to_string))
        .collect())
}

/// Attaches managed policies (by ARN), concurrently.
///
/// # Errors
/// The AWS error of the first failing call.
pub async fn attach(c: &Clients, role: &str, arns: &[String]) -> Result<(), AwsError> {
    futures::future::try_join_all(arns.iter().map(|arn| async move {
        retry(Backoff::EVENTUAL, is_eventual_not_found, || async {
            c.iam
                .attach_role_policy()
                .role_name(role)
                .policy_arn(arn)
                .send()
                .await
                .map_err(api("attaching a policy to IAM role", role))
        })
        .await
    }))
    .await?;
    Ok(())
}

/// Detaches managed policies and deletes inline ones, then deletes the role.
///
/// # Errors
/// The AWS error of the failing call.
pub async fn delete(c: &Clients, name: &str) -> Result<(), AwsError> {
    for arn in attached_policies(c, name).await? {
        c.iam
            .detach_role_policy()
            .role_name(name)
            .policy_arn(arn)
            .send()
            .await
            .map_err(api("detaching a policy from IAM role", name))?;
    }
    let inline = c
        .iam
        .list_role_policies()
        .role_name(name)
        .send()
        .await
        .map_err(api("listing inline policies of IAM role", name))?;
    for p in inline.policy_names() {
        c.iam
            .delete_role_policy()
            .role_name(name)
            .policy_name(p)
            .send()
            .await
            .map_err(api("deleting an inline policy of IAM role", name))?;
    }
    gone_is_fine(
        c.iam
            .delete_role()
            .role_name(name)
            .send()
            .await
            .map_err(api("deleting IAM role", name)),
        Code::NoSuchEntity,
    )
}
