//! The node IAM role and its instance profile.
//!
//! IAM names are global to the account; a role or profile of our name that lacks our cluster tag
//! belongs to someone else and is neither adopted nor deleted.

use super::discover::{obs_profile, obs_role};
use super::error::{absent_if, api};
use super::{AwsError, Clients};
use crate::core::plan::{ObsIam, ObsProfile};

fn iam_tags(tags: &[(String, String)]) -> Vec<aws_sdk_iam::types::Tag> {
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

/// # Errors
/// Any error but NoSuchEntity.
pub async fn get_role(c: &Clients, name: &str, cluster: &str) -> Result<Option<ObsIam>, AwsError> {
    let r = c
        .iam
        .get_role()
        .role_name(name)
        .send()
        .await
        .map_err(api("reading IAM role", name));
    Ok(absent_if(r, "NoSuchEntity")?.and_then(|out| out.role().map(|r| obs_role(r, cluster))))
}

/// # Errors
/// Any error but NoSuchEntity.
pub async fn get_instance_profile(
    c: &Clients,
    name: &str,
    cluster: &str,
) -> Result<Option<ObsProfile>, AwsError> {
    let r = c
        .iam
        .get_instance_profile()
        .instance_profile_name(name)
        .send()
        .await
        .map_err(api("reading instance profile", name));
    Ok(absent_if(r, "NoSuchEntity")?
        .and_then(|out| out.instance_profile().map(|p| obs_profile(p, cluster))))
}

/// Creates the node role (trusted by EC2), tagged.
///
/// # Errors
/// The AWS error of the failing call.
pub async fn create_role(
    c: &Clients,
    name: &str,
    tags: &[(String, String)],
) -> Result<String, AwsError> {
    create_service_role(
        c,
        name,
        "ec2.amazonaws.com",
        "provision: Kubernetes nodes",
        tags,
    )
    .await
}

/// Creates a role that `service` (e.g. `eks.amazonaws.com`) may assume, tagged.
///
/// # Errors
/// The AWS error of the failing call.
pub async fn create_service_role(
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
        .set_tags(Some(iam_tags(tags)))
        .send()
        .await
        .map_err(api("creating IAM role", name))?;
    Ok(out.role().map(|r| r.arn().to_string()).unwrap_or_default())
}

/// Attaches AWS managed policies (by ARN) that the role lacks, concurrently.
///
/// # Errors
/// The AWS error of the first failing call.
pub async fn attach_policies(c: &Clients, role: &str, arns: &[String]) -> Result<(), AwsError> {
    let have = attached_policies(c, role).await?;
    attach_missing(c, role, arns, &have).await
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

/// Attaches the policies of `arns` that are not in `have`, concurrently.
///
/// # Errors
/// The AWS error of the first failing call.
pub async fn attach_missing(
    c: &Clients,
    role: &str,
    arns: &[String],
    have: &[String],
) -> Result<(), AwsError> {
    let missing = arns
        .iter()
        .filter(|a| !have.contains(a))
        .map(|arn| async move {
            super::retry::retry(
                super::retry::Backoff::EVENTUAL,
                super::retry::is_eventual_not_found,
                || async {
                    c.iam
                        .attach_role_policy()
                        .role_name(role)
                        .policy_arn(arn)
                        .send()
                        .await
                        .map_err(api("attaching a policy to IAM role", role))
                },
            )
            .await
        });
    futures::future::try_join_all(missing).await?;
    Ok(())
}

/// Creates the instance profile, tagged.
///
/// # Errors
/// The AWS error of the failing call.
pub async fn create_instance_profile(
    c: &Clients,
    name: &str,
    tags: &[(String, String)],
) -> Result<String, AwsError> {
    let out = c
        .iam
        .create_instance_profile()
        .instance_profile_name(name)
        .path("/provision/")
        .set_tags(Some(iam_tags(tags)))
        .send()
        .await
        .map_err(api("creating instance profile", name))?;
    Ok(out
        .instance_profile()
        .map(|p| p.arn().to_string())
        .unwrap_or_default())
}

/// # Errors
/// The AWS error of the failing call (an instance profile holds one role: LimitExceeded if taken).
pub async fn add_role(c: &Clients, profile: &str, role: &str) -> Result<(), AwsError> {
    // Right after CreateRole, IAM may not know the role yet (NoSuchEntity).
    super::retry::retry(
        super::retry::Backoff::EVENTUAL,
        super::retry::is_eventual_not_found,
        || async {
            c.iam
                .add_role_to_instance_profile()
                .instance_profile_name(profile)
                .role_name(role)
                .send()
                .await
                .map_err(api("adding the node role to instance profile", profile))
        },
    )
    .await?;
    Ok(())
}

/// Removes the roles from the profile, then deletes it.
///
/// # Errors
/// The AWS error of the failing call.
pub async fn delete_instance_profile(c: &Clients, p: &ObsProfile) -> Result<(), AwsError> {
    for role in &p.roles {
        let r = c
            .iam
            .remove_role_from_instance_profile()
            .instance_profile_name(&p.name)
            .role_name(role)
            .send()
            .await;
        super::network::ignore_not_found(
            r.map_err(api("removing role from instance profile", &p.name)),
            "NoSuchEntity",
        )?;
    }
    super::network::ignore_not_found(
        c.iam
            .delete_instance_profile()
            .instance_profile_name(&p.name)
            .send()
            .await
            .map_err(api("deleting instance profile", &p.name)),
        "NoSuchEntity",
    )
}

/// Detaches managed policies and deletes inline ones, then deletes the role.
///
/// # Errors
/// The AWS error of the failing call.
pub async fn delete_role(c: &Clients, name: &str) -> Result<(), AwsError> {
    let attached = c
        .iam
        .list_attached_role_policies()
        .role_name(name)
        .send()
        .await
        .map_err(api("listing policies of IAM role", name))?;
    for p in attached.attached_policies() {
        if let Some(arn) = p.policy_arn() {
            c.iam
                .detach_role_policy()
                .role_name(name)
                .policy_arn(arn)
                .send()
                .await
                .map_err(api("detaching a policy from IAM role", name))?;
        }
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
    super::network::ignore_not_found(
        c.iam
            .delete_role()
            .role_name(name)
            .send()
            .await
            .map_err(api("deleting IAM role", name)),
        "NoSuchEntity",
    )
}

/// The document of an inline role policy, decoded (IAM returns it URL-encoded), if it exists.
///
/// # Errors
/// Any error but NoSuchEntity.
pub async fn get_role_policy(
    c: &Clients,
    role: &str,
    policy: &str,
) -> Result<Option<String>, AwsError> {
    let r = c
        .iam
        .get_role_policy()
        .role_name(role)
        .policy_name(policy)
        .send()
        .await
        .map_err(api("reading the inline policy of IAM role", role));
    Ok(absent_if(r, "NoSuchEntity")?.map(|out| percent_decode(out.policy_document())))
}

/// Creates or replaces an inline role policy.
///
/// # Errors
/// The AWS error of the call.
pub async fn put_role_policy(
    c: &Clients,
    role: &str,
    policy: &str,
    document: &str,
) -> Result<(), AwsError> {
    super::retry::retry(
        super::retry::Backoff::EVENTUAL,
        super::retry::is_eventual_not_found,
        || async {
            c.iam
                .put_role_policy()
                .role_name(role)
                .policy_name(policy)
                .policy_document(document)
                .send()
                .await
                .map_err(api("setting the inline policy of IAM role", role))
        },
    )
    .await?;
    Ok(())
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match (
            b[i],
            b.get(i + 1).and_then(|c| hex(*c)),
            b.get(i + 2).and_then(|c| hex(*c)),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    #[test]
    fn policy_documents_are_url_decoded() {
        assert_eq!(super::percent_decode("%7B%22a%22%3A%201%7D"), "{\"a\": 1}");
        assert_eq!(super::percent_decode("{\"a\":1}"), "{\"a\":1}");
        assert_eq!(super::percent_decode("100%"), "100%");
    }
}
