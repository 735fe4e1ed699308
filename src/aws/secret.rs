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
}

/// Reads and decrypts the secret, if it exists.
///
/// # Errors
/// Any error but ParameterNotFound, or content that is not ours.
pub async fn get(c: &Clients, name: &str) -> Result<Option<Bootstrap>, AwsError> {
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
                    format!("not a provision bootstrap secret: {e}"),
                )
            })
        }
        Err(e) if e.code() == "ParameterNotFound" => Ok(None),
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
    let value = serde_json::to_string(b)
        .map_err(|e| AwsError::unexpected("encoding", name, e.to_string()))?;
    let tags: Vec<aws_sdk_ssm::types::Tag> = tags
        .iter()
        .filter_map(|(k, v)| {
            aws_sdk_ssm::types::Tag::builder()
                .key(k)
                .value(v)
                .build()
                .ok()
        })
        .collect();
    let r = c
        .ssm
        .put_parameter()
        .name(name)
        .description("provision: cluster CA, bootstrap token and cluster id")
        .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
        .tier(aws_sdk_ssm::types::ParameterTier::Standard)
        .value(value)
        .set_tags(Some(tags))
        .send()
        .await
        .map_err(api("storing the bootstrap secret", name));
    match r {
        Ok(_) => Ok(b.clone()),
        Err(e) if e.code() == "ParameterAlreadyExists" => get(c, name).await?.ok_or(e),
        Err(e) => Err(e),
    }
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
