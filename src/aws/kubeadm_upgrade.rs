//! The control plane's upgrade (and its etcd snapshots: their interval, or the snapshots
//! themselves for one launched before them) through SSM Run Command: wait
//! until the instance's SSM agent is online (DescribeInstanceInformation), SendCommand with the
//! script, follow it with GetCommandInvocation at a fixed rate, show the end of its output when
//! it fails, and move the instance's tag (version, interval) once it succeeded.

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
        inputs: &Inputs,
    ) -> Result<Output, AwsError> {
        for d in &change.drifts {
            let instance = d.instance();
            // What it does, and the tag that records it once it succeeded (the next run's diff
            // starts from it).
            let (doing, tag, value, done) = match d {
                Drift::Upgrade { from, to, .. } => (
                    format!("the upgrade of {instance} from Kubernetes {from} to {to}"),
                    crate::core::stamp::VERSION_TAG,
                    self.version.to_string(),
                    format!("Kubernetes {to}"),
                ),
                Drift::InstallBackups { every, .. } | Drift::BackupInterval { to: every, .. } => {
                    let every_text = crate::core::stamp::format_duration(i64::from(*every));
                    (
                        format!("etcd snapshots every {every_text} on {instance}"),
                        crate::core::stamp::BACKUP_INTERVAL_TAG,
                        every.to_string(),
                        format!("etcd snapshots every {every_text}"),
                    )
                }
            };
            cx.report.resource(
                id,
                Self::NAME,
                Some(instance),
                Progress::Updating,
                Some(format!("{doing} through SSM Run Command")),
            );
            agent_online(cx, instance).await?;
            // Made once the agent is online: the installer's URL need only outlive the delivery.
            let script = match d {
                Drift::Upgrade { .. } => crate::core::cloudinit::upgrade_script(&self.version),
                Drift::InstallBackups { every, .. } => self.installer(cx, inputs, *every).await?,
                Drift::BackupInterval { to, .. } => crate::core::cloudinit::retime_script(*to),
            };
            send_and_follow(cx, id, instance, &doing, &script).await?;
            super::retag::ec2_tags(cx.c, &[instance], tag, &value).await?;
            cx.report.resource(
                id,
                Self::NAME,
                Some(instance),
                Progress::Updated,
                Some(done),
            );
        }
        Ok(Output::Nothing)
    }

    async fn delete(_tx: &Tx<'_>) -> Result<(), AwsError> {
        Ok(())
    }
}

/// How long the installer's presigned URL is good for: presigned once the agent is online, it
/// is fetched as soon as SSM delivers the command (within DELIVERY_TIMEOUT_SECS).
const INSTALLER_URL_TTL: Duration = Duration::from_secs(900);

impl KubeadmUpgrade {
    /// What a control plane launched by an earlier release runs to save snapshots: the installer
    /// (node.py alone is 16 KB) put into the bucket under the cluster's prefix (its lifecycle
    /// rule removes it with the snapshots), and a command fetching it through a presigned URL
    /// (Ubuntu's curl; no credentials on the node) that runs it only when its SHA-256 matches.
    async fn installer(
        &self,
        cx: &Cx<'_>,
        inputs: &Inputs,
        every: u32,
    ) -> Result<String, AwsError> {
        let bucket = inputs.id(&self.bucket)?;
        let prefix = crate::core::kinds::backup_bucket::snapshot_prefix(
            &inputs.bootstrap(&self.secret)?.cluster_id,
        );
        let script = crate::core::cloudinit::install_script(
            &crate::core::cloudinit::EtcdBackupInput {
                bucket,
                prefix: &prefix,
                interval: every,
                restore: None,
            },
            &cx.spec.name,
            &crate::core::tags::secret_parameter_name(&cx.spec.name),
        );
        let key = format!("{prefix}provision-install-snapshots.sh");
        let account = cx.c.account().await?;
        cx.c.s3
            .put_object()
            .bucket(bucket)
            .key(&key)
            .expected_bucket_owner(account)
            .content_type("text/x-shellscript")
            .body(script.clone().into_bytes().into())
            .send()
            .await
            .map_err(api(
                "putting the snapshots' installer into S3 bucket",
                bucket,
            ))?;
        let ttl = aws_sdk_s3::presigning::PresigningConfig::expires_in(INSTALLER_URL_TTL)
            .map_err(|e| AwsError::unexpected("presigning", &key, e.to_string()))?;
        // No expected-owner header: it would be signed, and curl would have to send it (the
        // digest is what the node checks).
        let url =
            cx.c.s3
                .get_object()
                .bucket(bucket)
                .key(&key)
                .presigned(ttl)
                .await
                .map_err(api(
                    "presigning the snapshots' installer in S3 bucket",
                    bucket,
                ))?;
        Ok(crate::core::cloudinit::fetch_script(
            url.uri(),
            &crate::core::cloudinit::digest(&script),
        ))
    }
}

/// Sends `script` to the instance (its agent online) through Run Command (`what` names it in
/// progress and errors), then follows it to its end.
async fn send_and_follow(
    cx: &Cx<'_>,
    id: &str,
    instance: &str,
    what: &str,
    script: &str,
) -> Result<(), AwsError> {
    let command = send(cx, instance, what, script).await?;
    cx.report.resource(
        id,
        KubeadmUpgrade::NAME,
        Some(instance),
        Progress::Waiting,
        Some(format!("command {command}: {what}")),
    );
    follow(cx, instance, &command, what).await
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
async fn send(cx: &Cx<'_>, instance: &str, what: &str, script: &str) -> Result<String, AwsError> {
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
                .comment(comment(&cx.spec.name, what))
                .timeout_seconds(DELIVERY_TIMEOUT_SECS)
                .parameters(
                    "commands",
                    vec![crate::core::cloudinit::run_command(script)],
                )
                .parameters("executionTimeout", vec![EXECUTION_TIMEOUT_SECS.to_string()])
                .send()
                .await
                .map_err(api(&format!("sending {what} to"), instance))
        },
    )
    .await?;
    out.command()
        .and_then(|c| c.command_id())
        .map(str::to_string)
        .ok_or_else(|| {
            AwsError::unexpected(&format!("sending {what} to"), instance, "no command id")
        })
}

/// Follows the command until it ends; its output's last lines when it did not succeed.
async fn follow(cx: &Cx<'_>, instance: &str, command: &str, what: &str) -> Result<(), AwsError> {
    let max = Duration::from_secs(u64::from(EXECUTION_TIMEOUT_SECS))
        + Duration::from_secs(u64::try_from(DELIVERY_TIMEOUT_SECS).unwrap_or(600));
    until(
        &cx.c.tuning,
        POLL,
        max,
        &format!("{what} (command {command})"),
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
                Err(e) => return Err(api(&format!("following {what} on"), instance)(e)),
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

/// SendCommand's comment (at most 100 characters).
fn comment(cluster: &str, what: &str) -> String {
    format!("provision {cluster}: {what}")
        .chars()
        .take(100)
        .collect()
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
