//! Security groups and their ingress rules.

use crate::core::events::Progress;
use std::collections::HashMap;

use aws_sdk_ec2::types::{IpPermission, IpRange, ResourceType, UserIdGroupPair};

use super::error::{Code, api, gone_is_fine};
use super::kind::{Apply, Cx, Scope, Tx};
use super::retry::{Backoff, is_eventual_not_found, retry};
use super::{AwsError, Clients, list_tagged, logical, tag_spec};
use crate::core::graph::rules::{Rule, SgRole, Source};
use crate::core::kinds::security_group::{Drift, ObsRule, ObsSg, SecurityGroup};
use crate::core::kinds::{Action, Change, Inputs, Output, Plan};

impl Apply for SecurityGroup {
    async fn observe(c: &Clients, scope: &Scope<'_>) -> Result<Vec<ObsSg>, AwsError> {
        let items = list_tagged!(
            c,
            describe_security_groups,
            scope.cluster,
            "security groups",
            tags
        );
        Ok(items.map(|g| observed(&g)).collect())
    }

    async fn apply(
        &self,
        cx: &Cx<'_>,
        id: &str,
        change: &Change<Drift>,
        inputs: &Inputs,
    ) -> Result<Output, AwsError> {
        let (sg, missing): (String, Vec<&Rule>) = match (change.action, &change.aws_id) {
            (Action::Update | Action::Keep, Some(sg)) => (
                sg.clone(),
                change.drifts.iter().map(|Drift::Allow(r)| r).collect(),
            ),
            _ => {
                cx.report.resource(
                    id,
                    Self::NAME,
                    None,
                    Progress::Creating,
                    Some(self.name.clone()),
                );
                let vpc = inputs.id(&self.vpc)?;
                let kubernetes = self.role == SgRole::Nodes;
                let sg = create(
                    cx.c,
                    vpc,
                    &self.name,
                    &self.description,
                    &cx.tags(id, kubernetes),
                )
                .await?;
                (sg, self.rules.iter().collect())
            }
        };
        let mut groups = inputs.groups();
        groups.insert(id.to_string(), sg.clone());
        authorize(cx.c, &sg, &missing, &groups).await?;
        let n = missing.len();
        let action = match change.action {
            Action::Create => Progress::Created,
            _ if n > 0 => Progress::Updated,
            _ => Progress::Existing,
        };
        cx.report.resource(
            id,
            Self::NAME,
            Some(&sg),
            action,
            (n > 0).then(|| format!("{n} ingress rule(s)")),
        );
        Ok(Output::Group(sg))
    }

    async fn delete(tx: &Tx<'_>) -> Result<(), AwsError> {
        // A group that another remaining group's rules name goes after that group: delete,
        // round by round, the groups nothing left references.
        let mut remaining = tx.obs.security_groups.clone();
        while !remaining.is_empty() {
            let referenced = |g: &ObsSg| {
                remaining
                    .iter()
                    .any(|o| o.id != g.id && o.rules.iter().any(|r| r.source == g.id))
            };
            let mut round: Vec<ObsSg> = remaining
                .iter()
                .filter(|g| !referenced(g))
                .cloned()
                .collect();
            if round.is_empty() {
                // A cycle (not one provision makes): try them all; AWS names the blocker.
                round = remaining.clone();
            }
            for g in &round {
                tx.report
                    .deleting(
                        g.logical.as_deref(),
                        Self::NAME,
                        &g.id,
                        super::interfaces::delete_with_blockers(tx.c, "group-id", &g.id, || {
                            delete(tx.c, &g.id)
                        }),
                    )
                    .await?;
            }
            remaining.retain(|g| !round.iter().any(|r| r.id == g.id));
        }
        Ok(())
    }
}

/// A group as the SDK describes it, its permissions flattened to one source each.
pub(crate) fn observed(g: &aws_sdk_ec2::types::SecurityGroup) -> ObsSg {
    let mut rules = Vec::new();
    for p in g.ip_permissions() {
        let proto = p.ip_protocol().unwrap_or_default().to_string();
        let (from, to) = (p.from_port().unwrap_or(-1), p.to_port().unwrap_or(-1));
        for r in p.ip_ranges() {
            rules.push(ObsRule {
                protocol: proto.clone(),
                from_port: from,
                to_port: to,
                source: r.cidr_ip().unwrap_or_default().into(),
            });
        }
        for r in p.user_id_group_pairs() {
            rules.push(ObsRule {
                protocol: proto.clone(),
                from_port: from,
                to_port: to,
                source: r.group_id().unwrap_or_default().into(),
            });
        }
    }
    ObsSg {
        id: g.group_id().unwrap_or_default().into(),
        logical: logical(g.tags()),
        vpc_id: g.vpc_id().unwrap_or_default().into(),
        rules,
    }
}

/// One security group by id (the EKS cluster's, which is not ours), with its rules.
///
/// # Errors
/// Any error but InvalidGroup.NotFound.
pub async fn by_id(c: &Clients, id: &str) -> Result<Option<ObsSg>, AwsError> {
    let out = c
        .ec2
        .describe_security_groups()
        .group_ids(id)
        .send()
        .await
        .map_err(api("describing", id));
    Ok(super::error::absent_if(out, Code::InvalidGroupNotFound)?
        .and_then(|o| o.security_groups().first().map(observed)))
}

/// # Errors
/// The AWS error of the failing call.
pub async fn create(
    c: &Clients,
    vpc: &str,
    name: &str,
    description: &str,
    tags: &[(String, String)],
) -> Result<String, AwsError> {
    let out = retry(Backoff::EVENTUAL, is_eventual_not_found, || async {
        c.ec2
            .create_security_group()
            .vpc_id(vpc)
            .group_name(name)
            .description(description)
            .tag_specifications(tag_spec(ResourceType::SecurityGroup, tags))
            .send()
            .await
            .map_err(api("creating security group", name))
    })
    .await?;
    out.group_id()
        .map(str::to_string)
        .ok_or_else(|| AwsError::unexpected("creating security group", name, "no id in the answer"))
}

/// Adds the given ingress rules in one call. Rules that already exist are not an error.
///
/// # Errors
/// The AWS error of the failing call, or a group source that has no id yet.
pub async fn authorize(
    c: &Clients,
    group: &str,
    rules: &[&Rule],
    groups: &HashMap<String, String>,
) -> Result<(), AwsError> {
    if rules.is_empty() {
        return Ok(());
    }
    let mut perms = Vec::new();
    for r in rules {
        let p = IpPermission::builder()
            .ip_protocol(r.protocol.as_str())
            .from_port(i32::from(r.from_port))
            .to_port(i32::from(r.to_port));
        let p = match &r.source {
            Source::Cidr(cidr) => p.ip_ranges(
                IpRange::builder()
                    .cidr_ip(cidr.to_string())
                    .description(r.description)
                    .build(),
            ),
            Source::Group(logical) => {
                let id = groups.get(logical).ok_or_else(|| {
                    AwsError::unexpected(
                        "authorizing ingress on",
                        group,
                        format!("source group {logical} has no id"),
                    )
                })?;
                p.user_id_group_pairs(
                    UserIdGroupPair::builder()
                        .group_id(id)
                        .description(r.description)
                        .build(),
                )
            }
        };
        perms.push(p.build());
    }
    let send = |perms: Vec<IpPermission>| async move {
        retry(Backoff::EVENTUAL, is_eventual_not_found, || async {
            c.ec2
                .authorize_security_group_ingress()
                .group_id(group)
                .set_ip_permissions(Some(perms.clone()))
                .send()
                .await
                .map_err(api("authorizing ingress on", group))
        })
        .await
    };
    match send(perms.clone()).await {
        Ok(_) => Ok(()),
        // The call is all-or-nothing: one rule that exists already (added by hand, or by a run
        // whose answer was lost) means none was added. Add them one by one instead.
        Err(e) if *e.code() == Code::InvalidPermissionDuplicate => {
            for p in perms {
                match send(vec![p]).await {
                    Ok(_) => {}
                    Err(e) if *e.code() == Code::InvalidPermissionDuplicate => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// Revokes ingress rules as observed (a group or CIDR source each); none is no call.
///
/// # Errors
/// The AWS error of the call (a rule already gone is fine).
pub async fn revoke(c: &Clients, group: &str, rules: &[ObsRule]) -> Result<(), AwsError> {
    if rules.is_empty() {
        return Ok(());
    }
    let perms: Vec<IpPermission> = rules
        .iter()
        .map(|r| {
            let b = IpPermission::builder()
                .ip_protocol(&r.protocol)
                .from_port(r.from_port)
                .to_port(r.to_port);
            if r.source.starts_with("sg-") {
                b.user_id_group_pairs(UserIdGroupPair::builder().group_id(&r.source).build())
                    .build()
            } else {
                b.ip_ranges(IpRange::builder().cidr_ip(&r.source).build())
                    .build()
            }
        })
        .collect();
    let r = c
        .ec2
        .revoke_security_group_ingress()
        .group_id(group)
        .set_ip_permissions(Some(perms))
        .send()
        .await
        .map_err(api("removing rules from", group));
    gone_is_fine(r, Code::InvalidPermissionNotFound)
}

/// # Errors
/// The AWS error of the failing call.
pub async fn delete(c: &Clients, group: &str) -> Result<(), AwsError> {
    gone_is_fine(
        c.ec2
            .delete_security_group()
            .group_id(group)
            .send()
            .await
            .map_err(api("deleting", group)),
        Code::InvalidGroupNotFound,
    )
}
