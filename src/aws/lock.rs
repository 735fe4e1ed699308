//! The cluster lock's SSM parameter (see `core::lock`): create-if-absent, read, replace, delete.
//! A plain String parameter: the record holds no secret.

use super::error::{Code, api};
use super::{AwsError, Clients};

/// The lock's parameter name.
pub fn parameter_name(cluster: &str) -> String {
    format!("/provision/{cluster}/lock")
}

/// Creates the parameter with `value` unless it exists: `true` if this call created it. AWS
/// creates a parameter for one caller only (`Overwrite=false`), which is what makes it a lock.
///
/// # Errors
/// Any AWS error but ParameterAlreadyExists.
pub async fn create(
    c: &Clients,
    name: &str,
    value: &str,
    tags: &[(String, String)],
) -> Result<bool, AwsError> {
    let tags = super::ssm::tags(tags);
    let r = c
        .ssm
        .put_parameter()
        .name(name)
        .description("provision: the cluster lock, held while `provision up` or `down` runs")
        .r#type(aws_sdk_ssm::types::ParameterType::String)
        .tier(aws_sdk_ssm::types::ParameterTier::Standard)
        .value(value)
        .set_tags(Some(tags))
        .send()
        .await
        .map_err(api("taking the cluster lock", name));
    match r {
        Ok(_) => Ok(true),
        // TooManyUpdates: another run's call on the same parameter at the same moment.
        Err(e)
            if matches!(
                e.code(),
                Code::ParameterAlreadyExists | Code::TooManyUpdates
            ) =>
        {
            Ok(false)
        }
        Err(e) => Err(e),
    }
}

/// The parameter's value, if it exists.
///
/// # Errors
/// Any AWS error but ParameterNotFound.
pub async fn read(c: &Clients, name: &str) -> Result<Option<String>, AwsError> {
    match c
        .ssm
        .get_parameter()
        .name(name)
        .send()
        .await
        .map_err(api("reading the cluster lock", name))
    {
        Ok(out) => Ok(out.parameter().and_then(|p| p.value()).map(str::to_string)),
        Err(e) if *e.code() == Code::ParameterNotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Replaces the value (renewal, or taking over a stale lock); tags stay.
///
/// # Errors
/// The AWS error of the call.
pub async fn replace(c: &Clients, name: &str, value: &str) -> Result<(), AwsError> {
    // TooManyUpdates (concurrent calls on one parameter) is not retried by the SDK.
    super::retry::retry(
        super::retry::Backoff::EVENTUAL,
        |e| *e.code() == Code::TooManyUpdates,
        || async {
            c.ssm
                .put_parameter()
                .name(name)
                .r#type(aws_sdk_ssm::types::ParameterType::String)
                .value(value)
                .overwrite(true)
                .send()
                .await
                .map_err(api("writing the cluster lock", name))
        },
    )
    .await?;
    Ok(())
}

/// Deletes the parameter; one that is already gone is fine.
///
/// # Errors
/// Any AWS error but ParameterNotFound.
pub async fn delete(c: &Clients, name: &str) -> Result<(), AwsError> {
    match c
        .ssm
        .delete_parameter()
        .name(name)
        .send()
        .await
        .map_err(api("releasing the cluster lock", name))
    {
        Ok(_) => Ok(()),
        Err(e) if *e.code() == Code::ParameterNotFound => Ok(()),
        Err(e) => Err(e),
    }
}
