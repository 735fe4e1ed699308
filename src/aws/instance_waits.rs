//! Waiting for instances (to run, to pass their status checks, to terminate), in batches, one
//! Describe per batch and poll, polled by provision at fixed rates (the SDK's waiters poll
//! 15-120 s apart).

use std::time::Duration;

use super::error::{Code, api};
use super::retry::is_eventual_not_found;
use super::{AwsError, Clients};
use crate::core::kinds::instances::ObsInstance;

/// Between two polls for instances to run: an instance runs about 40 s after RunInstances, so
/// this notices it at most 5 s late (the SDK's waiter polls 15-120 s apart).
pub const RUNNING_POLL: Duration = Duration::from_secs(5);
/// Between two polls for status checks, which pass about 2 minutes after an instance runs.
pub const STATUS_POLL: Duration = Duration::from_secs(10);

/// Waits until all instances run: one DescribeInstances per poll for the batch, asking only for
/// those not running yet (a filter on the state), so that answers shrink as instances come up
/// instead of carrying every instance on every poll.
///
/// # Errors
/// When an instance stops or terminates instead, or the wait times out.
async fn wait_running_batch(c: &Clients, ids: &[String], max: Duration) -> Result<(), AwsError> {
    use aws_sdk_ec2::types::InstanceStateName as S;
    if ids.is_empty() {
        return Ok(());
    }
    let resource = ids.join(", ");
    let not_running = aws_sdk_ec2::types::Filter::builder()
        .name("instance-state-name")
        .set_values(Some(
            [
                "pending",
                "stopping",
                "stopped",
                "shutting-down",
                "terminated",
            ]
            .map(String::from)
            .to_vec(),
        ))
        .build();
    super::poll::until(
        &c.tuning,
        RUNNING_POLL,
        max,
        &resource,
        "running",
        || async {
            let out = c
                .ec2
                .describe_instances()
                .set_instance_ids(Some(ids.to_vec()))
                .filters(not_running.clone())
                .send()
                .await
                .map_err(api("waiting for", &resource));
            let out = match out {
                Ok(out) => out,
                // Right after RunInstances the ids may not be visible to Describe yet.
                Err(e) if is_eventual_not_found(&e) => {
                    return Ok(super::poll::Seen::Pending(e.code().to_string()));
                }
                Err(e) => return Err(e),
            };
            let waiting: Vec<&aws_sdk_ec2::types::Instance> = out
                .reservations()
                .iter()
                .flat_map(|r| r.instances())
                .collect();
            let state =
                |i: &aws_sdk_ec2::types::Instance| i.state().and_then(|s| s.name()).cloned();
            // `stopped` is not a failure: an instance `up` just started again can still read as
            // stopped for a moment (the SDK's waiter fails on shutting-down, terminated and stopping).
            if let Some(gone) = waiting
                .iter()
                .find(|i| !matches!(state(i), Some(S::Pending | S::Stopped)))
            {
                let reason = gone
                    .state_reason()
                    .and_then(|r| r.message())
                    .unwrap_or("no reason given");
                let now = state(gone).map_or_else(|| "?".to_string(), |s| s.as_str().to_string());
                return Err(AwsError::Wait {
                    resource: gone.instance_id().unwrap_or("?").to_string(),
                    state: "running".into(),
                    message: format!("it is {now} instead ({reason})"),
                });
            }
            if waiting.is_empty() {
                return Ok(super::poll::Seen::Ready(()));
            }
            Ok(super::poll::Seen::Pending(format!(
                "{} of {} running",
                ids.len() - waiting.len(),
                ids.len()
            )))
        },
    )
    .await
}

/// The instances with their current state and addresses (one call per 500 ids).
///
/// # Errors
/// The AWS error of a call.
pub async fn describe(c: &Clients, ids: &[String]) -> Result<Vec<ObsInstance>, AwsError> {
    let batches = ids.chunks(INSTANCE_BATCH).map(|b| async move {
        let out = c
            .ec2
            .describe_instances()
            .set_instance_ids(Some(b.to_vec()))
            .send()
            .await
            .map_err(api("describing", &b.join(", ")))?;
        Ok::<_, AwsError>(
            out.reservations()
                .iter()
                .flat_map(|r| r.instances())
                .map(super::instances::observed)
                .collect::<Vec<_>>(),
        )
    });
    Ok(futures::future::try_join_all(batches)
        .await?
        .into_iter()
        .flatten()
        .collect())
}

/// Waits until the instances run and pass their status checks (one batched
/// DescribeInstanceStatus per poll, with IncludeAllInstances).
///
/// # Errors
/// When the wait times out.
async fn wait_status_ok_batch(c: &Clients, ids: &[String], max: Duration) -> Result<(), AwsError> {
    use aws_sdk_ec2::types::SummaryStatus;
    if ids.is_empty() {
        return Ok(());
    }
    let resource = ids.join(", ");
    super::poll::until(
        &c.tuning,
        STATUS_POLL,
        max,
        &resource,
        "status ok",
        || async {
            let out = c
                .ec2
                .describe_instance_status()
                .set_instance_ids(Some(ids.to_vec()))
                .include_all_instances(true)
                .send()
                .await
                .map_err(api("waiting for the status checks of", &resource));
            let out = match out {
                Ok(out) => out,
                Err(e) if is_eventual_not_found(&e) => {
                    return Ok(super::poll::Seen::Pending(e.code().to_string()));
                }
                Err(e) => return Err(e),
            };
            // With IncludeAllInstances an instance that is not running yet is listed (not passed),
            // and one that terminates meanwhile fails the wait instead of missing until the deadline
            // (`stopped` is waited on: an instance `up` just started can read stopped a moment).
            if let Some(gone) = out.instance_statuses().iter().find(|s| {
                matches!(
                    s.instance_state().and_then(|x| x.name()),
                    Some(
                        aws_sdk_ec2::types::InstanceStateName::ShuttingDown
                            | aws_sdk_ec2::types::InstanceStateName::Terminated
                            | aws_sdk_ec2::types::InstanceStateName::Stopping
                    )
                )
            }) {
                return Err(AwsError::Wait {
                    resource: gone.instance_id().unwrap_or("?").to_string(),
                    state: "status ok".into(),
                    message: format!(
                        "it is {} instead",
                        gone.instance_state()
                            .and_then(|x| x.name())
                            .map_or("?", |n| n.as_str())
                    ),
                });
            }
            let ok = out
                .instance_statuses()
                .iter()
                .filter(|s| {
                    s.instance_status().and_then(|x| x.status()) == Some(&SummaryStatus::Ok)
                        && s.system_status().and_then(|x| x.status()) == Some(&SummaryStatus::Ok)
                })
                .count();
            if ok == ids.len() {
                Ok(super::poll::Seen::Ready(()))
            } else {
                Ok(super::poll::Seen::Pending(format!(
                    "{ok} of {} passed",
                    ids.len()
                )))
            }
        },
    )
    .await
}

/// Terminates the instances in one call and polls (one DescribeInstances per poll for the
/// batch) until every one is terminated. Not the SDK's `instance_terminated` waiter: it gives
/// up when it sees `pending` or `stopping`, which a `down` right after a killed `up` meets.
async fn terminate_batch(c: &Clients, ids: &[String], max: Duration) -> Result<(), AwsError> {
    if ids.is_empty() {
        return Ok(());
    }
    let resource = ids.join(", ");
    c.ec2
        .terminate_instances()
        .set_instance_ids(Some(ids.to_vec()))
        .send()
        .await
        .map_err(api("terminating", &resource))?;
    let deadline = tokio::time::Instant::now() + max;
    let mut delay = c.tuning.scaled(Duration::from_secs(2));
    loop {
        let out = c
            .ec2
            .describe_instances()
            .set_instance_ids(Some(ids.to_vec()))
            .send()
            .await
            .map_err(api("waiting for the termination of", &resource));
        let left: Vec<String> = match out {
            Ok(out) => out
                .reservations()
                .iter()
                .flat_map(|r| r.instances())
                .filter(|i| {
                    i.state().and_then(|s| s.name())
                        != Some(&aws_sdk_ec2::types::InstanceStateName::Terminated)
                })
                .map(|i| {
                    let state = i.state().and_then(|s| s.name()).map_or("?", |n| n.as_str());
                    format!("{} ({state})", i.instance_id().unwrap_or("?"))
                })
                .collect(),
            // Terminated long enough ago to be forgotten.
            Err(e) if *e.code() == Code::InvalidInstanceIdNotFound => Vec::new(),
            Err(e) => return Err(e),
        };
        if left.is_empty() {
            return Ok(());
        }
        if tokio::time::Instant::now() + delay > deadline {
            return Err(AwsError::Wait {
                resource,
                state: "terminated".into(),
                message: format!(
                    "gave up after {} s; still not terminated: {}",
                    max.as_secs(),
                    left.join(", ")
                ),
            });
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 3 / 2).min(c.tuning.scaled(Duration::from_secs(15)));
    }
}

/// Which of the given instances are terminated (or unknown to EC2).
///
/// # Errors
/// The AWS error of the Describe.
pub async fn terminated(
    c: &Clients,
    ids: &[String],
) -> Result<std::collections::HashSet<String>, AwsError> {
    if ids.is_empty() {
        return Ok(Default::default());
    }
    let out = c
        .ec2
        .describe_instances()
        .set_instance_ids(Some(ids.to_vec()))
        .send()
        .await
        .map_err(api("checking the state of", &ids.join(", ")))?;
    let live: std::collections::HashSet<String> = out
        .reservations()
        .iter()
        .flat_map(|r| r.instances())
        .filter(|i| {
            i.state().and_then(|s| s.name())
                != Some(&aws_sdk_ec2::types::InstanceStateName::Terminated)
        })
        .filter_map(|i| i.instance_id().map(str::to_string))
        .collect();
    Ok(ids.iter().filter(|i| !live.contains(*i)).cloned().collect())
}

/// DescribeInstanceStatus takes at most 100 instance ids per call.
const STATUS_BATCH: usize = 100;
/// DescribeInstances and TerminateInstances take up to 1000 ids; 500 keeps requests small.
const INSTANCE_BATCH: usize = 500;

/// Waits until all instances run (batches of 500 ids in parallel, one DescribeInstances per
/// poll each), then returns those of `details` with their addresses (one more call).
///
/// # Errors
/// When an instance terminates instead, or the wait times out.
pub async fn wait_running(
    c: &Clients,
    ids: &[String],
    details: &[String],
    max: Duration,
) -> Result<Vec<ObsInstance>, AwsError> {
    futures::future::try_join_all(
        ids.chunks(INSTANCE_BATCH)
            .map(|b| wait_running_batch(c, b, max)),
    )
    .await?;
    if details.is_empty() {
        return Ok(Vec::new());
    }
    describe(c, details).await
}

/// Waits until the instances pass their status checks, in batches of 100 ids.
///
/// # Errors
/// When a check fails or the wait times out.
pub async fn wait_status_ok(c: &Clients, ids: &[String], max: Duration) -> Result<(), AwsError> {
    futures::future::try_join_all(
        ids.chunks(STATUS_BATCH)
            .map(|b| wait_status_ok_batch(c, b, max)),
    )
    .await?;
    Ok(())
}

/// Terminates the instances and waits until they are gone, in batches.
///
/// # Errors
/// The AWS error of the call, or a wait that times out.
pub async fn terminate(c: &Clients, ids: &[String], max: Duration) -> Result<(), AwsError> {
    futures::future::try_join_all(
        ids.chunks(INSTANCE_BATCH)
            .map(|b| terminate_batch(c, b, max)),
    )
    .await?;
    Ok(())
}

/// The EC2 status checks of `ids` at this moment, by id: `ok` when both the instance and the
/// system check pass, else the worse of the two (`impaired`, `initializing`,
/// `insufficient-data`, `not-applicable` for an instance that is not running).
///
/// # Errors
/// The AWS error of a call.
pub async fn status_checks(
    c: &Clients,
    ids: &[String],
) -> Result<std::collections::BTreeMap<String, String>, AwsError> {
    use aws_sdk_ec2::types::SummaryStatus;
    let mut out = std::collections::BTreeMap::new();
    for b in ids.chunks(INSTANCE_BATCH) {
        let res = c
            .ec2
            .describe_instance_status()
            .set_instance_ids(Some(b.to_vec()))
            .include_all_instances(true)
            .send()
            .await
            .map_err(api("reading the status checks of", &b.join(", ")))?;
        for s in res.instance_statuses() {
            let of =
                |x: Option<&SummaryStatus>| x.map_or("not-applicable", |v| v.as_str()).to_string();
            let inst = of(s.instance_status().and_then(|x| x.status()));
            let sys = of(s.system_status().and_then(|x| x.status()));
            let rank = |v: &str| match v {
                "impaired" => 0,
                "insufficient-data" => 1,
                "initializing" => 2,
                "not-applicable" => 3,
                _ => 4,
            };
            let worse = if rank(&sys) < rank(&inst) { sys } else { inst };
            if let Some(id) = s.instance_id() {
                out.insert(id.to_string(), worse);
            }
        }
    }
    Ok(out)
}
