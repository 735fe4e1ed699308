//! Retries for what the SDK's retry mode does not cover: eventual consistency right after a
//! create (NotFound for an id we just got, IAM instance profiles not yet visible to EC2) and
//! DependencyViolation during teardown. Bounded by a deadline that the final error reports.

use std::future::Future;
use std::time::Duration;
use tokio::time::Instant;

use super::AwsError;
use super::error::Code;

/// How long and how often to retry.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
    pub deadline: Duration,
}

impl Backoff {
    /// IAM propagation takes seconds usually and minutes sometimes (aws-cdk#16037).
    pub const IAM_PROPAGATION: Backoff = Backoff {
        initial: Duration::from_secs(2),
        max: Duration::from_secs(15),
        deadline: Duration::from_secs(300),
    };
    /// An id we just created that another API does not know yet.
    pub const EVENTUAL: Backoff = Backoff {
        initial: Duration::from_millis(500),
        max: Duration::from_secs(5),
        deadline: Duration::from_secs(60),
    };
}

/// Error codes that mean "the id you just got is not visible here yet".
pub fn is_eventual_not_found(e: &AwsError) -> bool {
    matches!(
        e.code(),
        Code::InvalidVpcIdNotFound
            | Code::InvalidSubnetIdNotFound
            | Code::InvalidGroupNotFound
            | Code::InvalidInternetGatewayIdNotFound
            | Code::InvalidRouteTableIdNotFound
            | Code::InvalidInstanceIdNotFound
            | Code::NoSuchEntity
    )
}

/// RunInstances before a new instance profile has propagated to EC2.
pub fn is_iam_propagation(e: &AwsError) -> bool {
    let m = e.message();
    (*e.code() == Code::InvalidParameterValue
        && (m.contains("IAM Instance Profile") || m.contains("iamInstanceProfile")))
        || (*e.code() == Code::InvalidParameterException
            && [
                // What EKS says while a new role propagates (terraform-provider-aws's list).
                "could not be assumed",
                "does not exist",
                "Error in role params",
                "doesn't have the Amazon EKS Managed Policies",
                "IAM role's policy must include",
            ]
            .iter()
            .any(|needle| m.contains(needle)))
}

pub fn is_dependency_violation(e: &AwsError) -> bool {
    matches!(
        e.code(),
        Code::DependencyViolation | Code::DeleteConflict | Code::ResourceInUse
    ) || (*e.code() == Code::InvalidParameterValue && e.message().contains("in use"))
}

/// Runs `op` until it succeeds, fails with an error `retryable` rejects, or the deadline passes.
///
/// # Errors
/// The first non-retryable error, or [`AwsError::Deadline`] wrapping the last retryable one.
pub async fn retry<T, F, Fut>(
    b: Backoff,
    retryable: impl Fn(&AwsError) -> bool,
    mut op: F,
) -> Result<T, AwsError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, AwsError>>,
{
    let start = Instant::now();
    let mut delay = b.initial;
    loop {
        match op().await {
            Ok(v) => return Ok(v),
            Err(e) if retryable(&e) => {
                if start.elapsed() + delay > b.deadline {
                    let (doing, resource) = e.context();
                    return Err(AwsError::Deadline {
                        doing: doing.to_string(),
                        resource: resource.to_string(),
                        secs: b.deadline.as_secs(),
                        last: Box::new(e),
                    });
                }
                tracing::debug!(error = %e, delay_ms = delay.as_millis() as u64, "retrying");
                tokio::time::sleep(jitter(delay)).await;
                delay = (delay * 3 / 2).min(b.max);
            }
            Err(e) => return Err(e),
        }
    }
}

/// 75–100 % of `d`, so concurrent retries spread out.
fn jitter(d: Duration) -> Duration {
    let mut b = [0u8; 1];
    let frac = if getrandom::fill(&mut b).is_ok() {
        0.75 + f64::from(b[0]) / 1020.0
    } else {
        1.0
    };
    d.mul_f64(frac)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn api(code: &str, message: &str) -> AwsError {
        AwsError::api("launching", "master", code, message)
    }

    #[tokio::test(start_paused = true)]
    async fn retries_iam_propagation_then_succeeds() {
        let n = AtomicU32::new(0);
        let got = retry(Backoff::IAM_PROPAGATION, is_iam_propagation, || async {
            if n.fetch_add(1, Ordering::SeqCst) < 3 { Err(api("InvalidParameterValue", "Value (x) for parameter iamInstanceProfile.name is invalid. Invalid IAM Instance Profile name")) } else { Ok(7) }
        })
        .await
        .unwrap();
        assert_eq!(got, 7);
        assert_eq!(n.load(Ordering::SeqCst), 4);
    }

    #[test]
    fn eks_role_propagation_messages_are_transient() {
        let e = |m: &str| AwsError::api("creating", "eks", "InvalidParameterException", m);
        assert!(is_iam_propagation(&e(
            "Role with arn: arn:aws:iam::1:role/x, could not be assumed because it does not exist or the trusted entity is not correct"
        )));
        assert!(is_iam_propagation(&e(
            "The provided role doesn't have the Amazon EKS Managed Policies associated with it."
        )));
        assert!(!is_iam_propagation(&e(
            "Subnets specified must be in at least two different AZs"
        )));
    }

    #[tokio::test(start_paused = true)]
    async fn gives_up_at_the_deadline_and_says_so() {
        let err = retry(Backoff::EVENTUAL, is_eventual_not_found, || async {
            Err::<(), _>(api("InvalidVpcID.NotFound", "gone"))
        })
        .await
        .unwrap_err();
        assert!(matches!(err, AwsError::Deadline { secs: 60, .. }), "{err}");
        assert_eq!(*err.code(), Code::InvalidVpcIdNotFound);
        assert!(err.to_string().contains("launching master"), "{err}");
    }

    #[tokio::test(start_paused = true)]
    async fn other_errors_fail_at_once() {
        let n = AtomicU32::new(0);
        let err = retry(Backoff::EVENTUAL, is_eventual_not_found, || async {
            n.fetch_add(1, Ordering::SeqCst);
            Err::<(), _>(api("UnauthorizedOperation", "no"))
        })
        .await
        .unwrap_err();
        assert_eq!(*err.code(), Code::UnauthorizedOperation);
        assert_eq!(n.load(Ordering::SeqCst), 1);
    }
}
