//! The AWS layer's error: what we were doing, to which resource, and what AWS said (its error
//! code as a [`Code`]), with the SDK's error kept as the source. Its message is one or two
//! lines; the SDK's own (which can dump the whole HTTP exchange) is never shown to a user.

use std::sync::Arc;

use aws_sdk_ec2::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;

use super::calls::CallInfo;

/// The AWS error codes provision acts on. Anything else is [`Code::Other`], reported as AWS
/// gave it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Code {
    AccessDenied,
    AccessDeniedException,
    UnauthorizedOperation,
    UnauthorizedException,
    AuthFailure,
    DependencyViolation,
    DeleteConflict,
    ResourceInUse,
    ResourceInUseException,
    ResourceNotFoundException,
    NoSuchEntity,
    ParameterNotFound,
    ParameterAlreadyExists,
    TooManyUpdates,
    InvalidResourceId,
    InvalidParameterValue,
    InvalidParameterException,
    IdempotentInstanceTerminated,
    InvalidPermissionDuplicate,
    InvalidPermissionNotFound,
    InvalidVpcIdNotFound,
    InvalidSubnetIdNotFound,
    InvalidGroupNotFound,
    InvalidInternetGatewayIdNotFound,
    GatewayNotAttached,
    /// An attach or association that is already there (a retried call whose first one took).
    ResourceAlreadyAssociated,
    InvalidRouteTableIdNotFound,
    InvalidAssociationIdNotFound,
    InvalidInstanceIdNotFound,
    /// An instance in a state the call does not accept (pending, for AssociateAddress).
    InvalidInstanceId,
    IncorrectInstanceState,
    InvalidAllocationIdNotFound,
    InvalidIpAddressInUse,
    NatGatewayNotFound,
    InvalidLaunchTemplateIdNotFound,
    InvalidNetworkInterfaceIdNotFound,
    InvalidNetworkInterfaceInUse,
    LoadBalancerNotFound,
    TargetGroupNotFound,
    VolumeInUse,
    InvalidVolumeNotFound,
    NoSuchBucket,
    /// A CreateBucket retried after its first call took.
    BucketAlreadyOwnedByYou,
    /// A bucket name someone else (another account) has.
    BucketAlreadyExists,
    NoSuchLifecycleConfiguration,
    NoSuchPublicAccessBlockConfiguration,
    ServerSideEncryptionConfigurationNotFound,
    NoSuchTagSet,
    /// SSM's: an instance Run Command does not know (yet).
    SsmInvalidInstanceId,
    /// A code provision does not act on.
    Other(Box<str>),
}

macro_rules! codes {
    ($($variant:ident = $text:literal,)*) => {
        impl Code {
            /// The code as AWS spells it.
            pub fn as_str(&self) -> &str {
                match self {
                    $(Code::$variant => $text,)*
                    Code::Other(s) => s,
                }
            }

            pub fn parse(s: &str) -> Code {
                match s {
                    $($text => Code::$variant,)*
                    other => Code::Other(other.into()),
                }
            }
        }
    };
}

codes! {
    AccessDenied = "AccessDenied",
    AccessDeniedException = "AccessDeniedException",
    UnauthorizedOperation = "UnauthorizedOperation",
    UnauthorizedException = "UnauthorizedException",
    AuthFailure = "AuthFailure",
    DependencyViolation = "DependencyViolation",
    DeleteConflict = "DeleteConflict",
    ResourceInUse = "ResourceInUse",
    ResourceInUseException = "ResourceInUseException",
    ResourceNotFoundException = "ResourceNotFoundException",
    NoSuchEntity = "NoSuchEntity",
    ParameterNotFound = "ParameterNotFound",
    ParameterAlreadyExists = "ParameterAlreadyExists",
    TooManyUpdates = "TooManyUpdates",
    InvalidResourceId = "InvalidResourceId",
    InvalidParameterValue = "InvalidParameterValue",
    InvalidParameterException = "InvalidParameterException",
    IdempotentInstanceTerminated = "IdempotentInstanceTerminated",
    InvalidPermissionDuplicate = "InvalidPermission.Duplicate",
    InvalidPermissionNotFound = "InvalidPermission.NotFound",
    InvalidVpcIdNotFound = "InvalidVpcID.NotFound",
    InvalidSubnetIdNotFound = "InvalidSubnetID.NotFound",
    InvalidGroupNotFound = "InvalidGroup.NotFound",
    InvalidInternetGatewayIdNotFound = "InvalidInternetGatewayID.NotFound",
    GatewayNotAttached = "Gateway.NotAttached",
    ResourceAlreadyAssociated = "Resource.AlreadyAssociated",
    InvalidRouteTableIdNotFound = "InvalidRouteTableID.NotFound",
    InvalidAssociationIdNotFound = "InvalidAssociationID.NotFound",
    InvalidInstanceIdNotFound = "InvalidInstanceID.NotFound",
    InvalidInstanceId = "InvalidInstanceID",
    IncorrectInstanceState = "IncorrectInstanceState",
    InvalidAllocationIdNotFound = "InvalidAllocationID.NotFound",
    InvalidIpAddressInUse = "InvalidIPAddress.InUse",
    NatGatewayNotFound = "NatGatewayNotFound",
    InvalidLaunchTemplateIdNotFound = "InvalidLaunchTemplateId.NotFound",
    InvalidNetworkInterfaceIdNotFound = "InvalidNetworkInterfaceID.NotFound",
    InvalidNetworkInterfaceInUse = "InvalidNetworkInterface.InUse",
    LoadBalancerNotFound = "LoadBalancerNotFound",
    TargetGroupNotFound = "TargetGroupNotFound",
    VolumeInUse = "VolumeInUse",
    InvalidVolumeNotFound = "InvalidVolume.NotFound",
    NoSuchBucket = "NoSuchBucket",
    BucketAlreadyOwnedByYou = "BucketAlreadyOwnedByYou",
    BucketAlreadyExists = "BucketAlreadyExists",
    NoSuchLifecycleConfiguration = "NoSuchLifecycleConfiguration",
    NoSuchPublicAccessBlockConfiguration = "NoSuchPublicAccessBlockConfiguration",
    ServerSideEncryptionConfigurationNotFound = "ServerSideEncryptionConfigurationNotFoundError",
    NoSuchTagSet = "NoSuchTagSet",
    SsmInvalidInstanceId = "InvalidInstanceId",
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Code {
    /// A call refused for lack of permission.
    pub fn is_access_denied(&self) -> bool {
        matches!(
            self,
            Code::AccessDenied
                | Code::AccessDeniedException
                | Code::UnauthorizedOperation
                | Code::UnauthorizedException
        )
    }
}

/// The SDK's error, kept for `source()` (and debug logs), never for a user's eyes.
#[derive(Clone)]
pub struct SdkSource(Arc<dyn std::error::Error + Send + Sync>);

impl std::fmt::Debug for SdkSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&self.0, f)
    }
}

impl std::fmt::Display for SdkSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&self.0, f)
    }
}

impl std::error::Error for SdkSource {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum AwsError {
    /// AWS answered with an error code.
    #[error("{doing} {resource}: {code}: {message}")]
    Api {
        doing: String,
        resource: String,
        code: Code,
        message: String,
        #[source]
        source: Option<SdkSource>,
    },
    /// An answer that is not the service's: another server on the endpoint, a proxy, the
    /// wrong region.
    #[error(
        "{doing} {resource}: {} got an answer that is not AWS's (HTTP {} from {}): check the endpoint (AWS_ENDPOINT_URL*, proxies) and the region",
        call.name, call.status.unwrap_or_default(), call.endpoint
    )]
    Unreadable {
        doing: String,
        resource: String,
        call: Box<Call>,
        #[source]
        source: SdkSource,
    },
    /// No answer: the connection failed or timed out.
    #[error(
        "{doing} {resource}: {} could not reach {} ({}): check the network, the endpoint and the region",
        call.name, call.endpoint, call.what.as_deref().unwrap_or("no answer")
    )]
    Unreachable {
        doing: String,
        resource: String,
        call: Box<Call>,
        #[source]
        source: SdkSource,
    },
    /// A transient condition did not clear before its deadline.
    #[error("{doing} {resource}: still failing after {secs} s (deadline): {last}")]
    Deadline {
        doing: String,
        resource: String,
        secs: u64,
        #[source]
        last: Box<AwsError>,
    },
    /// A wait gave up or saw a failure state.
    #[error("waiting for {resource} to be {state}: {message}")]
    Wait {
        resource: String,
        state: String,
        message: String,
    },
    /// Something AWS said does not fit what we expect (missing fields, foreign owners…).
    #[error("{doing} {resource}: {message}")]
    Unexpected {
        doing: String,
        resource: String,
        message: String,
    },
}

/// The code of a call that had none (no answer, or one that is not AWS's).
static NO_CODE: std::sync::LazyLock<Code> = std::sync::LazyLock::new(|| Code::Other("".into()));

/// The call an error came from, when AWS did not answer with an error code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// Service and operation, e.g. `EKS CreateCluster`.
    pub name: String,
    /// Scheme, host and port the request went to.
    pub endpoint: String,
    /// The HTTP status, when there was an answer.
    pub status: Option<u16>,
    /// What went wrong, when there was none.
    pub what: Option<String>,
}

impl AwsError {
    /// The AWS error code, when AWS gave one.
    pub fn code(&self) -> &Code {
        match self {
            AwsError::Api { code, .. } => code,
            AwsError::Deadline { last, .. } => last.code(),
            _ => &NO_CODE,
        }
    }

    pub fn message(&self) -> &str {
        match self {
            AwsError::Api { message, .. }
            | AwsError::Wait { message, .. }
            | AwsError::Unexpected { message, .. } => message,
            AwsError::Unreadable { .. } | AwsError::Unreachable { .. } => "",
            AwsError::Deadline { last, .. } => last.message(),
        }
    }

    /// What we were doing and to which resource.
    pub fn context(&self) -> (&str, &str) {
        match self {
            AwsError::Api {
                doing, resource, ..
            }
            | AwsError::Unreadable {
                doing, resource, ..
            }
            | AwsError::Unreachable {
                doing, resource, ..
            }
            | AwsError::Deadline {
                doing, resource, ..
            }
            | AwsError::Unexpected {
                doing, resource, ..
            } => (doing, resource),
            AwsError::Wait { resource, .. } => ("waiting for", resource),
        }
    }

    pub fn unexpected(doing: &str, resource: &str, message: impl Into<String>) -> Self {
        AwsError::Unexpected {
            doing: doing.into(),
            resource: resource.into(),
            message: message.into(),
        }
    }

    /// A broken internal invariant: an error that asks for a bug report, never a panic.
    pub fn internal(what: impl std::fmt::Display) -> Self {
        AwsError::unexpected(
            "provisioning",
            "the cluster",
            format!("internal error ({what}): please file a bug with this message"),
        )
    }

    /// An error code AWS gave, for tests and mocks.
    pub fn api(doing: &str, resource: &str, code: &str, message: &str) -> Self {
        AwsError::Api {
            doing: doing.into(),
            resource: resource.into(),
            code: Code::parse(code),
            message: message.into(),
            source: None,
        }
    }
}

impl From<crate::core::kinds::Missing> for AwsError {
    fn from(m: crate::core::kinds::Missing) -> Self {
        AwsError::internal(m)
    }
}

/// `aws_sdk_eks::operation::create_cluster::CreateClusterError` → `EKS CreateCluster`.
fn call_of<E>() -> String {
    let name = std::any::type_name::<E>();
    let mut parts = name.split("::");
    let service = parts
        .next()
        .and_then(|c| c.strip_prefix("aws_sdk_"))
        .unwrap_or("AWS")
        .to_uppercase();
    let op = name
        .rsplit("::")
        .next()
        .and_then(|t| t.strip_suffix("Error"))
        .unwrap_or("call");
    format!("{service} {op}")
}

/// Maps an SDK error to an [`AwsError`] that says what we were doing to which resource.
pub fn api<E>(doing: &str, resource: &str) -> impl FnOnce(SdkError<E, HttpResponse>) -> AwsError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let doing = doing.to_string();
    let resource = resource.to_string();
    move |e| {
        let info = match &e {
            SdkError::ServiceError(ctx) => ctx.raw().extension::<CallInfo>().cloned(),
            SdkError::ResponseError(ctx) => ctx.raw().extension::<CallInfo>().cloned(),
            _ => None,
        };
        let status = match &e {
            SdkError::ServiceError(ctx) => Some(ctx.raw().status().as_u16()),
            SdkError::ResponseError(ctx) => Some(ctx.raw().status().as_u16()),
            _ => None,
        };
        let call = info
            .as_ref()
            .map(|i| format!("{} {}", i.service.to_uppercase(), i.operation))
            .unwrap_or_else(call_of::<E>);
        let endpoint = info
            .as_ref()
            .map(|i| i.endpoint.clone())
            .unwrap_or_else(|| "the AWS endpoint".to_string());
        let what = match &e {
            SdkError::TimeoutError(_) => Some("timed out".to_string()),
            SdkError::DispatchFailure(d) => Some(
                d.as_connector_error()
                    .map(|c| with_cause(c))
                    .unwrap_or_else(|| "the request could not be sent".to_string()),
            ),
            _ => None,
        };
        let code = e.code().map(Code::parse);
        let message = e.message().map(one_line_str);
        let source = SdkSource(Arc::new(e));
        match (code, what, status) {
            (Some(code), _, _) => AwsError::Api {
                doing,
                resource,
                code,
                message: message.unwrap_or_default(),
                source: Some(source),
            },
            (None, Some(what), _) => AwsError::Unreachable {
                doing,
                resource,
                call: Box::new(Call {
                    name: call,
                    endpoint,
                    status: None,
                    what: Some(what),
                }),
                source,
            },
            (None, None, Some(status)) => AwsError::Unreadable {
                doing,
                resource,
                call: Box::new(Call {
                    name: call,
                    endpoint,
                    status: Some(status),
                    what: None,
                }),
                source,
            },
            (None, None, None) => AwsError::Unexpected {
                doing,
                resource,
                message: format!("{call} could not be made (an internal error: please file a bug)"),
            },
        }
    }
}

/// An error's message and, when it has one, its root cause (`io error: Connection refused (os
/// error 111)`, `dns error: failed to lookup address information: …`), on one line.
fn with_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let top = one_line(&e);
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    let root = one_line(&cur);
    if root == top || top.contains(&root) {
        top
    } else {
        one_line_str(&format!("{top}: {root}"))
    }
}

/// An error's message on one line, at most 300 characters.
pub(crate) fn one_line(e: &impl std::fmt::Display) -> String {
    one_line_str(&e.to_string())
}

fn one_line_str(s: &str) -> String {
    let line = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.chars().count() > 300 {
        line.chars().take(300).collect::<String>() + "…"
    } else {
        line
    }
}

/// `Ok(None)` when the call failed with `code` (the thing is not there), else the result.
pub(crate) fn absent_if<T>(r: Result<T, AwsError>, code: Code) -> Result<Option<T>, AwsError> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) if *e.code() == code => Ok(None),
        Err(e) => Err(e),
    }
}

/// A delete whose target is already gone has done its job.
pub(crate) fn gone_is_fine<T>(r: Result<T, AwsError>, code: Code) -> Result<(), AwsError> {
    absent_if(r, code).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_unknown_ones_are_kept() {
        for c in ["InvalidVpcID.NotFound", "ParameterNotFound", "AccessDenied"] {
            assert_eq!(Code::parse(c).as_str(), c);
            assert!(!matches!(Code::parse(c), Code::Other(_)), "{c}");
        }
        assert_eq!(
            Code::parse("Whatever.Else"),
            Code::Other("Whatever.Else".into())
        );
        assert!(Code::parse("UnauthorizedOperation").is_access_denied());
    }

    #[test]
    fn the_call_is_named_from_the_operation_error_type() {
        assert_eq!(
            call_of::<aws_sdk_eks::operation::create_cluster::CreateClusterError>(),
            "EKS CreateCluster"
        );
        assert_eq!(
            call_of::<aws_sdk_ec2::operation::describe_vpcs::DescribeVpcsError>(),
            "EC2 DescribeVpcs"
        );
    }
}
