//! Security groups and their ingress rules.

use std::collections::HashMap;

use aws_sdk_ec2::types::{IpPermission, IpRange, ResourceType, UserIdGroupPair};

use super::error::api;
use super::retry::{Backoff, is_eventual_not_found, retry};
use super::{AwsError, Clients, tag_spec};
use crate::core::graph::{Rule, Source};

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
        let mut p = IpPermission::builder()
            .ip_protocol(r.protocol.as_str())
            .from_port(i32::from(r.from_port))
            .to_port(i32::from(r.to_port));
        p = match &r.source {
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
        Err(e) if e.code() == "InvalidPermission.Duplicate" => {
            for p in perms {
                match send(vec![p]).await {
                    Ok(_) => {}
                    Err(e) if e.code() == "InvalidPermission.Duplicate" => {}
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
pub async fn revoke(
    c: &Clients,
    group: &str,
    rules: &[crate::core::plan::ObsRule],
) -> Result<(), AwsError> {
    if rules.is_empty() {
        return Ok(());
    }
    let perms: Vec<aws_sdk_ec2::types::IpPermission> = rules
        .iter()
        .map(|r| {
            let b = aws_sdk_ec2::types::IpPermission::builder()
                .ip_protocol(&r.protocol)
                .from_port(r.from_port)
                .to_port(r.to_port);
            if r.source.starts_with("sg-") {
                b.user_id_group_pairs(
                    aws_sdk_ec2::types::UserIdGroupPair::builder()
                        .group_id(&r.source)
                        .build(),
                )
                .build()
            } else {
                b.ip_ranges(
                    aws_sdk_ec2::types::IpRange::builder()
                        .cidr_ip(&r.source)
                        .build(),
                )
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
    super::network::ignore_not_found(r, "InvalidPermission.NotFound")
}

/// # Errors
/// The AWS error of the failing call.
pub async fn delete(c: &Clients, group: &str) -> Result<(), AwsError> {
    super::network::ignore_not_found(
        c.ec2
            .delete_security_group()
            .group_id(group)
            .send()
            .await
            .map_err(api("deleting", group)),
        "InvalidGroup.NotFound",
    )
}
