//! Instance profiles.

use super::error::{Code, absent_if, api, gone_is_fine};
use super::iam_role::{iam_owner, iam_tags_in};
use super::kind::{Apply, Cx, Scope, Tx};
use super::retry::{Backoff, is_eventual_not_found, retry};
use super::{AwsError, Clients};
use crate::core::events::Progress;
use crate::core::graph;
use crate::core::kinds::instance_profile::{Drift, InstanceProfile, ObsProfile};
use crate::core::kinds::{Action, Change, Inputs, Output, Plan};
use crate::core::tags::{node_role_name, role_name};

impl Apply for InstanceProfile {
    async fn observe(c: &Clients, scope: &Scope<'_>) -> Result<Vec<ObsProfile>, AwsError> {
        let mut names = Vec::new();
        if scope.kubeadm() {
            names.push((
                graph::NODE_PROFILE,
                node_role_name(scope.cluster, scope.region),
            ));
        }
        if scope.with_addons() {
            names.push((
                graph::ADDONS_PROFILE,
                role_name(scope.cluster, scope.region, "addons"),
            ));
        }
        let found =
            futures::future::try_join_all(names.into_iter().map(|(logical, name)| async move {
                Ok::<_, AwsError>(get(c, &name, scope.cluster).await?.map(|mut p| {
                    p.logical = logical.to_string();
                    p
                }))
            }))
            .await?;
        Ok(found.into_iter().flatten().collect())
    }

    async fn apply(
        &self,
        cx: &Cx<'_>,
        id: &str,
        change: &Change<Drift>,
        inputs: &Inputs,
    ) -> Result<Output, AwsError> {
        let (role, _) = inputs.role(&self.role)?;
        match change.action {
            Action::Update => {
                add_role(cx.c, &self.name, role).await?;
                cx.report.resource(
                    id,
                    Self::NAME,
                    Some(&self.name),
                    Progress::Updated,
                    Some(format!("{role} added")),
                );
            }
            Action::Keep => {
                cx.report
                    .resource(id, Self::NAME, Some(&self.name), Progress::Existing, None)
            }
            _ => {
                cx.report.resource(
                    id,
                    Self::NAME,
                    None,
                    Progress::Creating,
                    Some(self.name.clone()),
                );
                create(cx.c, &self.name, &cx.tags(id, false)).await?;
                add_role(cx.c, &self.name, role).await?;
                cx.report
                    .resource(id, Self::NAME, Some(&self.name), Progress::Created, None);
            }
        }
        Ok(Output::Id(self.name.clone()))
    }

    async fn delete(tx: &Tx<'_>) -> Result<(), AwsError> {
        for p in tx.obs.profiles.iter().filter(|p| p.owned) {
            tx.report
                .deleting(Some(&p.logical), Self::NAME, &p.name, delete(tx.c, p))
                .await?;
        }
        Ok(())
    }
}

/// # Errors
/// Any error but NoSuchEntity.
pub async fn get(c: &Clients, name: &str, cluster: &str) -> Result<Option<ObsProfile>, AwsError> {
    let r = c
        .iam
        .get_instance_profile()
        .instance_profile_name(name)
        .send()
        .await
        .map_err(api("reading instance profile", name));
    Ok(absent_if(r, Code::NoSuchEntity)?.and_then(|out| {
        out.instance_profile().map(|p| {
            let owner = iam_owner(p.tags(), cluster, &c.region);
            ObsProfile {
                logical: String::new(),
                name: p.instance_profile_name().into(),
                arn: p.arn().into(),
                roles: p
                    .roles()
                    .iter()
                    .map(|r| r.role_name().to_string())
                    .collect(),
                owned: owner.0,
                other_region: owner.1,
            }
        })
    }))
}

/// Creates the instance profile, tagged.
///
/// # Errors
/// The AWS error of the failing call.
pub async fn create(c: &Clients, name: &str, tags: &[(String, String)]) -> Result<(), AwsError> {
    c.iam
        .create_instance_profile()
        .instance_profile_name(name)
        .path("/provision/")
        .set_tags(Some(iam_tags_in(tags, &c.region)))
        .send()
        .await
        .map_err(api("creating instance profile", name))?;
    Ok(())
}

/// # Errors
/// The AWS error of the failing call (an instance profile holds one role: LimitExceeded if taken).
pub async fn add_role(c: &Clients, profile: &str, role: &str) -> Result<(), AwsError> {
    // Right after CreateRole, IAM may not know the role yet (NoSuchEntity).
    retry(Backoff::EVENTUAL, is_eventual_not_found, || async {
        c.iam
            .add_role_to_instance_profile()
            .instance_profile_name(profile)
            .role_name(role)
            .send()
            .await
            .map_err(api("adding the role to instance profile", profile))
    })
    .await?;
    Ok(())
}

/// Removes the roles from the profile, then deletes it.
///
/// # Errors
/// The AWS error of the failing call.
pub async fn delete(c: &Clients, p: &ObsProfile) -> Result<(), AwsError> {
    for role in &p.roles {
        let r = c
            .iam
            .remove_role_from_instance_profile()
            .instance_profile_name(&p.name)
            .role_name(role)
            .send()
            .await;
        gone_is_fine(
            r.map_err(api("removing role from instance profile", &p.name)),
            Code::NoSuchEntity,
        )?;
    }
    gone_is_fine(
        c.iam
            .delete_instance_profile()
            .instance_profile_name(&p.name)
            .send()
            .await
            .map_err(api("deleting instance profile", &p.name)),
        Code::NoSuchEntity,
    )
}
