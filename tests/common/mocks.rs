//! Clients whose EKS client answers from aws-smithy-mocks rules.

use std::time::Duration;

use aws_sdk_eks::config::{AsyncSleep, Sleep};
use aws_smithy_mocks::{RuleMode, mock_client};

/// Waiters and SDK back-off sleep for no time at all.
#[derive(Debug)]
struct NoSleep;
impl AsyncSleep for NoSleep {
    fn sleep(&self, _: Duration) -> Sleep {
        Sleep::new(async {})
    }
}

/// Clients whose EKS client answers from `rules`; the other services point nowhere.
pub async fn eks_mocked(
    rules: &[&aws_smithy_mocks::Rule],
    mode: RuleMode,
) -> provision::aws::Clients {
    let mut c = provision::aws::clients_for_endpoint("us-east-1", "http://127.0.0.1:9").await;
    c.eks = mock_client!(aws_sdk_eks, mode, rules, |b| b.sleep_impl(NoSleep));
    c
}
