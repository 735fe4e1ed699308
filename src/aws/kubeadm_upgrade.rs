//! The control plane's upgrade through SSM Run Command: wait until the instance's SSM agent is
//! online (DescribeInstanceInformation), SendCommand with the upgrade script, follow it with
//! GetCommandInvocation at a fixed rate, show the end of its output when it fails, and move the
//! instance's version tag once it succeeded.

use std::time::Duration;

use aws_sdk_ssm::types::InstanceInformationStringFilter;

use super::error::{Code, api};
use super::kind::{Apply, Cx, Scope, Tx};
use super::poll::{Seen, until};
use super::{AwsError, Clients};
use crate::core::events::Progress;
use crate::core::kinds::kubeadm_upgrade::{Drift, KubeadmUpgrade};
use crate::core::kinds::{Change, Inputs, NoState, Output, Plan};

/// How often the agent's registration and the command are looked at.
const POLL: Duration = Duration::from_secs(5);
/// How long the command may run on the node (the packages, the images, the static pods).
const EXECUTION_TIMEOUT_SECS: u32 = 3600;
/// How long SSM may take to deliver it.
const DELIVERY_TIMEOUT_SECS: i32 = 600;
/// How much of a failed command's output the error shows.
const TAIL_LINES: usize = 12;

impl Apply for KubeadmUpgrade {
    async fn observe(_c: &Clients, _scope: &Scope<'_>) -> Result<NoState, AwsError> {
        // The control plane's version is its instance's tag (the instances kind's discovery).
        Ok(NoState)
    }

    async fn apply(
        &self,
        cx: &Cx<'_>,
        id: &str,
        change: &Change<Drift>,
        _inputs: &Inputs,
    ) -> Result<Output, AwsError> {
        for d in &change.drifts {
            let Drift::Upgrade { instance, from, to } = d;
            cx.report.resource(
                id,
                Self::NAME,
                Some(instance),
                Progress::Updating,
                Some(format!("Kubernetes {from} to {to} through SSM Run Command")),
            );
            agent_online(cx, instance).await?;
            let script = crate::core::cloudinit::upgrade_script(&self.version);
            let command = send(cx, instance, to, &script).await?;
            cx.report.resource(
                id,
                Self::NAME,
                Some(instance),
                Progress::Waiting,
                Some(format!(
                    "command {command}: kubeadm upgrade plan and apply, the kubelet"
                )),
            );
            follow(cx, instance, &command, to).await?;
            // What the control plane runs now: the next run's diff starts from it.
            super::retag::ec2_tags(
                cx.c,
                &[instance],
                crate::core::stamp::VERSION_TAG,
                &self.version.to_string(),
            )
            .await?;
            cx.report.resource(
                id,
                Self::NAME,
                Some(instance),
                Progress::Updated,
                Some(format!("Kubernetes {to}")),
            );
        }
        Ok(Output::Nothing)
    }

    async fn delete(_tx: &Tx<'_>) -> Result<(), AwsError> {
        Ok(())
    }
}

/// Waits until the instance's SSM agent reports Online (it registers minutes after boot, and
/// again once the role lets it).
async fn agent_online(cx: &Cx<'_>, instance: &str) -> Result<(), AwsError> {
    let filter = InstanceInformationStringFilter::builder()
        .key("InstanceIds")
        .values(instance)
        .build()
        .map_err(|e| AwsError::unexpected("asking for", "the SSM agent", e.to_string()))?;
    until(
        &cx.c.tuning,
        POLL,
        cx.limits.nodes,
        &format!("the SSM agent of {instance}"),
        "Online (it needs outbound HTTPS to ssm, ssmmessages and ec2messages, and the node role's provision-ssm-agent policy)",
        || async {
            let out = cx
                .c
                .ssm
                .describe_instance_information()
                .filters(filter.clone())
                .send()
                .await
                .map_err(api("looking for the SSM agent of", instance))?;
            let ping = out
                .instance_information_list()
                .first()
                .and_then(|i| i.ping_status())
                .map(|p| p.as_str().to_string());
            Ok(match ping.as_deref() {
                Some("Online") => Seen::Ready(()),
                Some(other) => Seen::Pending(format!("agent {other}")),
                None => Seen::Pending("agent not registered".into()),
            })
        },
    )
    .await
}

/// SendCommand of the script; its command id.
async fn send(cx: &Cx<'_>, instance: &str, to: &str, script: &str) -> Result<String, AwsError> {
    // Run Command may not know an agent that DescribeInstanceInformation just reported Online
    // (SSM's eventual consistency): InvalidInstanceId is asked again for a minute.
    let out = super::retry::retry(
        super::retry::Backoff::EVENTUAL,
        |e| *e.code() == Code::SsmInvalidInstanceId,
        || async {
            cx.c.ssm
                .send_command()
                .document_name("AWS-RunShellScript")
                .instance_ids(instance)
                .comment(format!("provision {}: control plane to {to}", cx.spec.name))
                .timeout_seconds(DELIVERY_TIMEOUT_SECS)
                .parameters(
                    "commands",
                    vec![crate::core::cloudinit::run_command(script)],
                )
                .parameters("executionTimeout", vec![EXECUTION_TIMEOUT_SECS.to_string()])
                .send()
                .await
                .map_err(api("sending the upgrade command to", instance))
        },
    )
    .await?;
    out.command()
        .and_then(|c| c.command_id())
        .map(str::to_string)
        .ok_or_else(|| {
            AwsError::unexpected("sending the upgrade command to", instance, "no command id")
        })
}

/// Follows the command until it ends; its output's last lines when it did not succeed.
async fn follow(cx: &Cx<'_>, instance: &str, command: &str, to: &str) -> Result<(), AwsError> {
    let max = Duration::from_secs(u64::from(EXECUTION_TIMEOUT_SECS))
        + Duration::from_secs(u64::try_from(DELIVERY_TIMEOUT_SECS).unwrap_or(600));
    until(
        &cx.c.tuning,
        POLL,
        max,
        &format!("the upgrade of {instance} to {to} (command {command})"),
        "Success",
        || async {
            let got = cx
                .c
                .ssm
                .get_command_invocation()
                .command_id(command)
                .instance_id(instance)
                .send()
                .await;
            let inv = match got {
                Ok(i) => i,
                // Run Command is eventually consistent: a command just sent may not show yet.
                Err(e) if e.as_service_error().is_some_and(|s| s.is_invocation_does_not_exist()) => {
                    return Ok(Seen::Pending("not delivered yet".into()));
                }
                Err(e) => return Err(api("following the upgrade command on", instance)(e)),
            };
            let status = inv
                .status()
                .map(|s| s.as_str().to_string())
                .unwrap_or_default();
            Ok(match status.as_str() {
                "Success" => Seen::Ready(()),
                "Pending" | "InProgress" | "Delayed" => Seen::Pending(status),
                _ => Seen::Failed(format!(
                    "{status} ({}), exit code {}; the end of its output:\n{}\nsee `aws ssm get-command-invocation --command-id {command} --instance-id {instance}`, or look around with `aws ssm start-session --target {instance}`",
                    inv.status_details().unwrap_or_default(),
                    inv.response_code(),
                    tail(
                        inv.standard_output_content().unwrap_or_default(),
                        inv.standard_error_content().unwrap_or_default()
                    )
                )),
            })
        },
    )
    .await
}

/// The last lines of a command's output (stdout, then stderr), indented.
fn tail(stdout: &str, stderr: &str) -> String {
    let lines: Vec<&str> = stdout
        .lines()
        .chain(stderr.lines())
        .filter(|l| !l.trim().is_empty())
        .collect();
    let from = lines.len().saturating_sub(TAIL_LINES);
    lines[from..]
        .iter()
        .map(|l| format!("  {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}
