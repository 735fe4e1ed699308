//! The Kubernetes API: the readiness probe of `--wait cluster`, drains, new nodes' readiness
//! and the bootstrap tokens of the join-token kind; how its errors are told apart and shown.

pub mod drain;
pub mod join_token;
pub mod probe;
pub mod ready;

/// Waiting for the cluster failed: what was last seen, in one line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ProbeError(pub String);

/// An answer worth asking again within the drain's deadline: a refusal (429), the API
/// server's own trouble (5xx), or no answer at all.
pub(crate) fn is_transient(e: &kube::Error) -> bool {
    match e {
        kube::Error::Api(s) => s.code == 429 || s.code >= 500,
        kube::Error::HyperError(_) | kube::Error::Service(_) => true,
        _ => false,
    }
}

pub(crate) fn is_status(e: &kube::Error, code: u16) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == code)
}

pub(crate) fn message(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) if !s.message.is_empty() => s.message.clone(),
        other => other.to_string(),
    }
}

pub(crate) fn api_error(doing: &str, what: &str, e: &kube::Error) -> crate::aws::AwsError {
    crate::aws::AwsError::unexpected(doing, what, format!("the API server said: {}", message(e)))
}

#[cfg(test)]
mod transient {
    use super::is_transient;

    fn api(code: u16) -> kube::Error {
        let mut s = kube::core::Status::failure("m", "r");
        s.code = code;
        kube::Error::Api(Box::new(s))
    }

    #[test]
    fn refusals_and_server_trouble_are_asked_again_and_the_rest_is_not() {
        for code in [429, 500, 503, 504] {
            assert!(is_transient(&api(code)), "{code}");
        }
        for code in [400, 403, 404, 409, 422] {
            assert!(!is_transient(&api(code)), "{code}");
        }
        assert!(is_transient(&kube::Error::Service(
            "connection reset".into()
        )));
        assert!(!is_transient(&kube::Error::LinesCodecMaxLineLengthExceeded));
    }
}
