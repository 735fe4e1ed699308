//! Associating an Elastic IP with an instance (the kubeadm control plane's fixed address).

use crate::core::events::Progress;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::error::{Code, api};
use super::kind::{Apply, Cx, Scope, Tx};
use super::poll::{Seen, until};
use super::{AwsError, Clients};
use crate::core::kinds::address_association::{AddressAssociation, Drift};
use crate::core::kinds::{Action, Change, Inputs, NoState, Output, Plan};

/// How often AssociateAddress is tried again while the instance is not running yet: an instance
/// runs 30-60 s after its launch, and nothing waits for the association but the end of `up`,
/// which waits longer for the status checks.
const EVERY: Duration = Duration::from_secs(10);

impl Apply for AddressAssociation {
    async fn observe(_: &Clients, _: &Scope<'_>) -> Result<NoState, AwsError> {
        Ok(NoState)
    }

    async fn apply(
        &self,
        cx: &Cx<'_>,
        id: &str,
        change: &Change<Drift>,
        inputs: &Inputs,
    ) -> Result<Output, AwsError> {
        let (allocation, ip) = inputs.address(&self.address)?;
        if change.action == Action::Keep {
            cx.report.resource(
                id,
                Self::NAME,
                change.aws_id.as_deref(),
                Progress::Existing,
                Some(ip.into()),
            );
            return Ok(Output::Nothing);
        }
        let instance = inputs
            .instances(&self.instance)?
            .first()
            .map(|i| i.id.clone())
            .ok_or_else(|| AwsError::internal(format!("{} has no instance", self.instance)))?;
        let (doing, done) = match change.action {
            Action::Update => (Progress::Updating, Progress::Updated),
            _ => (Progress::Creating, Progress::Created),
        };
        cx.report.resource(id, Self::NAME, None, doing, None);
        let association = associate(cx, allocation, &instance).await?;
        cx.report.resource(
            id,
            Self::NAME,
            Some(&association),
            done,
            Some(format!("{ip} on {instance}")),
        );
        Ok(Output::Nothing)
    }

    // The address's release (the `elastic-ip` kind, after the instances) ends the association.
    async fn delete(_: &Tx<'_>) -> Result<(), AwsError> {
        Ok(())
    }
}

/// AssociateAddress, tried again every 10 s while the instance is pending (AWS answers
/// InvalidInstanceID or IncorrectInstanceState until it runs) or not yet visible, for as long
/// as `up` waits for instances; the same answers for an instance in any other state fail at once.
async fn associate(cx: &Cx<'_>, allocation: &str, instance: &str) -> Result<String, AwsError> {
    let what = format!("{allocation} to {instance}");
    let refused_running = AtomicBool::new(false);
    let refused_running = &refused_running;
    until(
        &cx.c.tuning,
        EVERY,
        cx.limits.instances,
        &format!("Elastic IP {allocation}"),
        &format!("associated with {instance}"),
        || async {
            let out =
                cx.c.ec2
                    .associate_address()
                    .allocation_id(allocation)
                    .instance_id(instance)
                    .allow_reassociation(true)
                    .send()
                    .await
                    .map_err(api("associating", &what));
            match out {
                Ok(o) => Ok(Seen::Ready(
                    o.association_id().unwrap_or_default().to_string(),
                )),
                Err(e) => match e.code() {
                    // Not visible yet: EC2's eventual consistency after the launch.
                    Code::InvalidInstanceIdNotFound => Ok(Seen::Pending(format!(
                        "not accepted yet ({})",
                        e.code().as_str()
                    ))),
                    // Also what AWS answers for lasting conditions (an instance shutting down,
                    // one with several interfaces): tried again while it is pending, and once
                    // more if it runs now (it may have started since the refusal).
                    Code::IncorrectInstanceState | Code::InvalidInstanceId => {
                        let now =
                            super::instance_waits::describe(cx.c, &[instance.to_string()]).await?;
                        match now.first().map(|i| i.state.as_str()) {
                            Some("pending") => Ok(Seen::Pending(format!(
                                "not accepted while the instance is pending ({})",
                                e.code().as_str()
                            ))),
                            Some("running") if !refused_running.swap(true, Ordering::Relaxed) => {
                                Ok(Seen::Pending(format!(
                                    "not accepted as the instance started ({})",
                                    e.code().as_str()
                                )))
                            }
                            _ => Err(e),
                        }
                    }
                    _ => Err(e),
                },
            }
        },
    )
    .await
}
