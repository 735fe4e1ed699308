//! Moving the cluster's expiry on what exists (`up --ttl` on a running cluster): the VPC first
//! in its own call (it is what `list` and `gc` read), then one call per IAM object, parameter
//! and EKS resource, all at once, and one EC2 CreateTags for the other EC2 resources.

use futures::future::try_join_all;

use super::error::api;
use super::{AwsError, Clients};
use crate::core::kinds::TagFamily;
use crate::core::plan::expiry::Retag;

/// Tags every target of `r` with the new expiry.
///
/// # Errors
/// The first call that failed, naming its resource.
pub async fn retag(c: &Clients, r: &Retag) -> Result<(), AwsError> {
    let (key, value) = r.tag();
    // The plan puts the VPC first: tagged alone, before anything else.
    let mut rest = r.targets.as_slice();
    if let Some((first, tail)) = rest.split_first()
        && first.family == TagFamily::Ec2
    {
        ec2_tags(c, &[first.id.as_str()], &key, &value).await?;
        rest = tail;
    }
    let others = rest
        .iter()
        .filter(|t| t.family != TagFamily::Ec2)
        .map(|t| one(c, t.family, &t.id, &key, &value));
    try_join_all(others).await?;
    let ec2: Vec<&str> = rest
        .iter()
        .filter(|t| t.family == TagFamily::Ec2)
        .map(|t| t.id.as_str())
        .collect();
    for chunk in ec2.chunks(1000) {
        ec2_tags(c, chunk, &key, &value).await?;
    }
    Ok(())
}

/// Sets one tag on EC2 resources (one CreateTags).
pub(crate) async fn ec2_tags(
    c: &Clients,
    ids: &[&str],
    key: &str,
    value: &str,
) -> Result<(), AwsError> {
    c.ec2
        .create_tags()
        .set_resources(Some(ids.iter().map(|s| s.to_string()).collect()))
        .tags(
            aws_sdk_ec2::types::Tag::builder()
                .key(key)
                .value(value)
                .build(),
        )
        .send()
        .await
        .map_err(api("tagging", &ids.join(",")))?;
    Ok(())
}

async fn one(
    c: &Clients,
    family: TagFamily,
    id: &str,
    key: &str,
    value: &str,
) -> Result<(), AwsError> {
    let tag = [(key.to_string(), value.to_string())];
    match family {
        TagFamily::Ec2 => ec2_tags(c, &[id], key, value).await,
        TagFamily::IamRole => c
            .iam
            .tag_role()
            .role_name(id)
            .set_tags(Some(super::iam_role::iam_tags(&tag)))
            .send()
            .await
            .map(drop)
            .map_err(api("tagging IAM role", id)),
        TagFamily::InstanceProfile => c
            .iam
            .tag_instance_profile()
            .instance_profile_name(id)
            .set_tags(Some(super::iam_role::iam_tags(&tag)))
            .send()
            .await
            .map(drop)
            .map_err(api("tagging instance profile", id)),
        TagFamily::SsmParameter => c
            .ssm
            .add_tags_to_resource()
            .resource_type(aws_sdk_ssm::types::ResourceTypeForTagging::Parameter)
            .resource_id(id)
            .set_tags(Some(super::ssm::tags(&tag)))
            .send()
            .await
            .map(drop)
            .map_err(api("tagging SSM parameter", id)),
        TagFamily::Eks => c
            .eks
            .tag_resource()
            .resource_arn(id)
            .tags(key, value)
            .send()
            .await
            .map(drop)
            .map_err(api("tagging", id)),
        TagFamily::S3 => s3_tag(c, id, key, value).await,
    }
}

/// PutBucketTagging replaces the whole set: the bucket's tags with this one moved.
async fn s3_tag(c: &Clients, bucket: &str, key: &str, value: &str) -> Result<(), AwsError> {
    let have =
        c.s3.get_bucket_tagging()
            .bucket(bucket)
            .send()
            .await
            .map_err(api("reading the tags of S3 bucket", bucket))?;
    let mut set: Vec<(String, String)> = have
        .tag_set()
        .iter()
        .filter(|t| t.key() != key)
        .map(|t| (t.key().to_string(), t.value().to_string()))
        .collect();
    set.push((key.to_string(), value.to_string()));
    let tags = super::s3_tags(&set)?;
    let tagging = aws_sdk_s3::types::Tagging::builder()
        .set_tag_set(Some(tags))
        .build()
        .map_err(|e| AwsError::internal(e.to_string()))?;
    c.s3.put_bucket_tagging()
        .bucket(bucket)
        .tagging(tagging)
        .send()
        .await
        .map(drop)
        .map_err(api("tagging S3 bucket", bucket))
}
