//! The AWS layer's error: what we were doing, to which resource, and the AWS error code.

use aws_sdk_ec2::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

#[derive(Debug, Clone, thiserror::Error)]
pub enum AwsError {
    /// AWS answered with an error (or could not be reached).
    #[error("{doing} {resource}: {code}: {message}")]
    Api {
        doing: String,
        resource: String,
        code: String,
        message: String,
    },
    /// A transient condition did not clear before its deadline.
    #[error("{doing} {resource}: still failing after {secs} s (deadline): {last}")]
    Deadline {
        doing: String,
        resource: String,
        secs: u64,
        last: Box<AwsError>,
    },
    /// A waiter gave up or saw a failure state.
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

impl AwsError {
    /// The AWS error code, when AWS gave one.
    pub fn code(&self) -> &str {
        match self {
            AwsError::Api { code, .. } => code,
            AwsError::Deadline { last, .. } => last.code(),
            _ => "",
        }
    }

    pub fn message(&self) -> &str {
        match self {
            AwsError::Api { message, .. }
            | AwsError::Wait { message, .. }
            | AwsError::Unexpected { message, .. } => message,
            AwsError::Deadline { last, .. } => last.message(),
        }
    }

    pub fn unexpected(doing: &str, resource: &str, message: impl Into<String>) -> Self {
        AwsError::Unexpected {
            doing: doing.into(),
            resource: resource.into(),
            message: message.into(),
        }
    }
}

/// Maps an SDK error to an [`AwsError`] that says what we were doing to which resource.
pub fn api<E, R>(doing: &str, resource: &str) -> impl FnOnce(SdkError<E, R>) -> AwsError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug,
{
    let doing = doing.to_string();
    let resource = resource.to_string();
    move |e| {
        let code = match &e {
            SdkError::TimeoutError(_) => "Timeout".to_string(),
            SdkError::DispatchFailure(_) => "DispatchFailure".to_string(),
            SdkError::ConstructionFailure(_) => "ConstructionFailure".to_string(),
            _ => e.code().unwrap_or("Unknown").to_string(),
        };
        let message = e
            .message()
            .map(str::to_string)
            .unwrap_or_else(|| DisplayErrorContext(&e).to_string());
        AwsError::Api {
            doing,
            resource,
            code,
            message,
        }
    }
}

/// A call refused for lack of permission.
pub fn is_access_denied(e: &AwsError) -> bool {
    matches!(
        e.code(),
        "AccessDenied"
            | "AccessDeniedException"
            | "UnauthorizedOperation"
            | "UnauthorizedException"
    )
}

/// `Ok(None)` when the call failed with `code` (the thing is not there), else the result.
pub(crate) fn absent_if<T>(r: Result<T, AwsError>, code: &str) -> Result<Option<T>, AwsError> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.code() == code => Ok(None),
        Err(e) => Err(e),
    }
}

/// A waiter that gave up or saw a failure state, with the whole error chain as its message.
pub(crate) fn wait_failed<E: std::error::Error>(
    resource: impl Into<String>,
    state: &str,
    e: &E,
) -> AwsError {
    AwsError::Wait {
        resource: resource.into(),
        state: state.into(),
        message: DisplayErrorContext(e).to_string(),
    }
}
