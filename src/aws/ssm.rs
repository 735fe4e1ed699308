//! SSM parameters of ours: JSON secrets (SecureString), read, stored without overwrite (the
//! first writer wins), replaced, deleted; found by name with their owner tag.

use super::error::{Code, api, gone_is_fine};
use super::{AwsError, Clients};
use crate::core::tags::CLUSTER_TAG;

/// Our tags in SSM's shape (PutParameter takes them only when it creates the parameter).
pub fn tags(tags: &[(String, String)]) -> Vec<aws_sdk_ssm::types::Tag> {
    tags.iter()
        .filter_map(|(k, v)| {
            aws_sdk_ssm::types::Tag::builder()
                .key(k)
                .value(v)
                .build()
                .ok()
        })
        .collect()
}

/// Reads and decrypts a JSON parameter of ours, if it exists.
///
/// # Errors
/// Any error but ParameterNotFound, or content that is not of this kind.
pub async fn get_json<T: serde::de::DeserializeOwned>(
    c: &Clients,
    name: &str,
) -> Result<Option<T>, AwsError> {
    match c
        .ssm
        .get_parameter()
        .name(name)
        .with_decryption(true)
        .send()
        .await
        .map_err(api("reading the SSM parameter", name))
    {
        Ok(out) => {
            let value = out.parameter().and_then(|p| p.value()).unwrap_or_default();
            serde_json::from_str(value).map(Some).map_err(|e| {
                AwsError::unexpected(
                    "reading the SSM parameter",
                    name,
                    format!("not a provision secret of this kind: {e}"),
                )
            })
        }
        Err(e) if *e.code() == Code::ParameterNotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Looks the parameter up by name: `None` if it does not exist, else the value of its cluster
/// tag (`Some(None)` when untagged). One ListTagsForResource call; a name lookup is exact
/// where DescribeParameters with filters pages through the whole account.
///
/// # Errors
/// Any error but "no such parameter".
pub async fn owner_tag(c: &Clients, name: &str) -> Result<Option<Option<String>>, AwsError> {
    let r = c
        .ssm
        .list_tags_for_resource()
        .resource_type(aws_sdk_ssm::types::ResourceTypeForTagging::Parameter)
        .resource_id(name)
        .send()
        .await
        .map_err(api("reading the tags of the SSM parameter", name));
    match r {
        Ok(out) => Ok(Some(
            out.tag_list()
                .iter()
                .find(|t| t.key() == CLUSTER_TAG)
                .map(|t| t.value().to_string()),
        )),
        Err(e) if matches!(e.code(), Code::InvalidResourceId | Code::ParameterNotFound) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Stores a JSON secret unless it exists; returns what is stored (ours, or the one a
/// concurrent or earlier run stored first).
///
/// # Errors
/// The AWS error of the failing call, or a parameter of this name that is not ours.
pub async fn put_json<T>(
    c: &Clients,
    name: &str,
    description: &str,
    value: &T,
    tags: &[(String, String)],
) -> Result<T, AwsError>
where
    T: serde::Serialize + serde::de::DeserializeOwned + Clone,
{
    let text = serde_json::to_string(value)
        .map_err(|e| AwsError::unexpected("encoding", name, e.to_string()))?;
    let cluster = tags
        .iter()
        .find(|(k, _)| k == CLUSTER_TAG)
        .map(|(_, v)| v.clone());
    let r = c
        .ssm
        .put_parameter()
        .name(name)
        .description(description)
        .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
        .tier(aws_sdk_ssm::types::ParameterTier::Standard)
        .value(text)
        .set_tags(Some(self::tags(tags)))
        .send()
        .await
        .map_err(api("storing the SSM parameter", name));
    match r {
        Ok(_) => Ok(value.clone()),
        Err(e) if *e.code() == Code::ParameterAlreadyExists => {
            // Someone got there first: a concurrent or earlier run of ours, or not ours at all.
            if owner_tag(c, name).await?.flatten() != cluster {
                return Err(AwsError::unexpected(
                    "storing the SSM parameter",
                    name,
                    format!(
                        "a parameter of this name exists without the tag {CLUSTER_TAG}={}: refusing to adopt it",
                        cluster.unwrap_or_default()
                    ),
                ));
            }
            get_json(c, name).await?.ok_or(e)
        }
        Err(e) => Err(e),
    }
}

/// Replaces the stored value (tags stay as they are).
///
/// # Errors
/// The AWS error of the call.
pub async fn replace_json<T: serde::Serialize>(
    c: &Clients,
    name: &str,
    value: &T,
) -> Result<(), AwsError> {
    let text = serde_json::to_string(value)
        .map_err(|e| AwsError::unexpected("encoding", name, e.to_string()))?;
    c.ssm
        .put_parameter()
        .name(name)
        .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
        .value(text)
        .overwrite(true)
        .send()
        .await
        .map_err(api("updating the SSM parameter", name))?;
    Ok(())
}

/// # Errors
/// Any error but ParameterNotFound.
pub async fn delete(c: &Clients, name: &str) -> Result<(), AwsError> {
    gone_is_fine(
        c.ssm
            .delete_parameter()
            .name(name)
            .send()
            .await
            .map_err(api("deleting the SSM parameter", name)),
        Code::ParameterNotFound,
    )
}
