//! The bootstrap secret: the cluster CA (with its key), the bootstrap token and the cluster id,
//! kept as an SSM SecureString so that `up` from another machine (resume, kubeconfig,
//! scale-out) uses the same CA. Tagged like every other resource.

use serde::{Deserialize, Serialize};

use super::error::api;
use super::{AwsError, Clients};

/// The content of the secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bootstrap {
    pub version: u32,
    /// Random; scopes idempotency tokens to this incarnation of the cluster.
    pub cluster_id: String,
    pub ca_cert_pem: String,
    pub ca_key_pem: String,
    pub token: String,
    /// When `token` was made (unix seconds); absent in secrets of older releases.
    #[serde(default)]
    pub token_created: Option<i64>,
}

/// Our tags in SSM's shape (PutParameter takes them only when it creates the parameter).
pub fn ssm_tags(tags: &[(String, String)]) -> Vec<aws_sdk_ssm::types::Tag> {
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

/// Reads and decrypts the secret, if it exists.
///
/// # Errors
/// Any error but ParameterNotFound, or content that is not ours.
pub async fn get(c: &Clients, name: &str) -> Result<Option<Bootstrap>, AwsError> {
    get_json(c, name).await
}

/// The add-ons' generated passwords.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddonSecrets {
    pub grafana_admin_password: String,
    pub elastic_password: String,
    pub kibana_system_password: String,
    /// The Elasticsearch user the nodes' Fluent Bit ships logs as (write to its indices only).
    pub fluent_bit_password: String,
}

/// Reads and decrypts a JSON secret of ours, if it exists.
///
/// # Errors
/// Any error but ParameterNotFound, or content that is not ours.
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
        .map_err(api("reading the bootstrap secret", name))
    {
        Ok(out) => {
            let value = out.parameter().and_then(|p| p.value()).unwrap_or_default();
            serde_json::from_str(value).map(Some).map_err(|e| {
                AwsError::unexpected(
                    "reading the bootstrap secret",
                    name,
                    format!("not a provision secret of this kind: {e}"),
                )
            })
        }
        Err(e) if e.code() == "ParameterNotFound" => Ok(None),
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
        .map_err(api("reading the tags of the bootstrap secret", name));
    match r {
        Ok(out) => Ok(Some(
            out.tag_list()
                .iter()
                .find(|t| t.key() == crate::core::tags::CLUSTER_TAG)
                .map(|t| t.value().to_string()),
        )),
        Err(e) if matches!(e.code(), "InvalidResourceId" | "ParameterNotFound") => Ok(None),
        Err(e) => Err(e),
    }
}

/// Stores the secret unless it exists; returns what is stored (ours, or the one a concurrent or
/// earlier run stored first).
///
/// # Errors
/// The AWS error of the failing call.
pub async fn put(
    c: &Clients,
    name: &str,
    b: &Bootstrap,
    tags: &[(String, String)],
) -> Result<Bootstrap, AwsError> {
    put_json(
        c,
        name,
        "provision: cluster CA, bootstrap token and cluster id",
        b,
        tags,
    )
    .await
}

/// Stores a JSON secret unless it exists; returns what is stored.
///
/// # Errors
/// The AWS error of the failing call.
pub async fn put_json<T>(
    c: &Clients,
    name: &str,
    description: &str,
    b: &T,
    tags: &[(String, String)],
) -> Result<T, AwsError>
where
    T: Serialize + serde::de::DeserializeOwned + Clone,
{
    let value = serde_json::to_string(b)
        .map_err(|e| AwsError::unexpected("encoding", name, e.to_string()))?;
    let tags = ssm_tags(tags);
    let r = c
        .ssm
        .put_parameter()
        .name(name)
        .description(description)
        .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
        .tier(aws_sdk_ssm::types::ParameterTier::Standard)
        .value(value)
        .set_tags(Some(tags.clone()))
        .send()
        .await
        .map_err(api("storing the bootstrap secret", name));
    match r {
        Ok(_) => Ok(b.clone()),
        Err(e) if e.code() == "ParameterAlreadyExists" => {
            // Someone got there first: a concurrent or earlier run of ours, or not ours at all.
            let cluster = tags
                .iter()
                .find(|t| t.key() == crate::core::tags::CLUSTER_TAG)
                .map(|t| t.value().to_string());
            if owner_tag(c, name).await?.flatten() != cluster {
                return Err(AwsError::unexpected(
                    "storing the bootstrap secret",
                    name,
                    format!(
                        "a parameter of this name exists without the tag {}={}: refusing to adopt it",
                        crate::core::tags::CLUSTER_TAG,
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
pub async fn update(c: &Clients, name: &str, b: &Bootstrap) -> Result<(), AwsError> {
    let value = serde_json::to_string(b)
        .map_err(|e| AwsError::unexpected("encoding", name, e.to_string()))?;
    c.ssm
        .put_parameter()
        .name(name)
        .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
        .value(value)
        .overwrite(true)
        .send()
        .await
        .map_err(api("updating the bootstrap secret", name))?;
    Ok(())
}

/// # Errors
/// Any error but ParameterNotFound.
pub async fn delete(c: &Clients, name: &str) -> Result<(), AwsError> {
    super::network::ignore_not_found(
        c.ssm
            .delete_parameter()
            .name(name)
            .send()
            .await
            .map_err(api("deleting the bootstrap secret", name)),
        "ParameterNotFound",
    )
}
