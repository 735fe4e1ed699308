//! EC2 instances of one role: launched in one call (tagged, IMDSv2 required, an encrypted root
//! volume, user data assembled in `core`), stopped ones started again, terminated by `down`.

use crate::core::events::Progress;
use aws_sdk_ec2::types::{
    BlockDeviceMapping, EbsBlockDevice, Filter, HttpTokensState, IamInstanceProfileSpecification,
    InstanceMetadataEndpointState, InstanceMetadataOptionsRequest, InstanceType, ResourceType,
    VolumeType,
};
use base64::Engine as _;

use super::error::{Code, api};
use super::kind::{Apply, Cx, Scope, Tx};
use super::retry::{Backoff, is_eventual_not_found, is_iam_propagation, retry};
use super::{AwsError, Clients, cluster_filter, logical, owned, ssm, tag_spec};
use crate::core::kinds::instances::{Drift, Instances, ObsInstance, Role, TokenScope};
use crate::core::kinds::{Action, Change, Inputs, Output, Plan};
use crate::core::tags;
use crate::core::userdata::UserData;

impl Apply for Instances {
    async fn observe(c: &Clients, scope: &Scope<'_>) -> Result<Vec<ObsInstance>, AwsError> {
        let states = Filter::builder()
            .name("instance-state-name")
            .set_values(Some(
                [
                    "pending",
                    "running",
                    "stopping",
                    "stopped",
                    "shutting-down",
                    "terminated",
                ]
                .map(String::from)
                .to_vec(),
            ))
            .build();
        let reservations: Vec<_> = c
            .ec2
            .describe_instances()
            .filters(cluster_filter(scope.cluster))
            .filters(states)
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(api("listing", "instances"))?;
        Ok(reservations
            .iter()
            .flat_map(|r| r.instances())
            .filter(|i| owned(i.tags(), scope.cluster))
            .map(observed)
            .collect())
    }

    async fn apply(
        &self,
        cx: &Cx<'_>,
        id: &str,
        change: &Change<Drift>,
        inputs: &Inputs,
    ) -> Result<Output, AwsError> {
        let mut live: Vec<ObsInstance> = cx.obs.live_instances(id).cloned().collect();
        let mut launch_count = if change.action == Action::Create {
            self.count
        } else {
            0
        };
        let mut started: Vec<String> = Vec::new();
        let mut restore: Option<&str> = None;
        for d in &change.drifts {
            match d {
                Drift::Start(ids) => started.extend(ids.iter().cloned()),
                Drift::Launch { count, .. } => launch_count += count,
                Drift::Restore { key, .. } => restore = Some(key),
            }
        }
        start(cx.c, &started).await?;
        for i in &live {
            if started.contains(&i.id) {
                cx.report.resource(
                    id,
                    Self::NAME,
                    Some(&i.id),
                    Progress::Updated,
                    Some("started".into()),
                );
            } else {
                cx.report
                    .resource(id, Self::NAME, Some(&i.id), Progress::Existing, None);
            }
        }
        if launch_count > 0 {
            // A restore's launch is its own (the lost control plane spent the plain token), and
            // the same again when a stopped run makes it again with the same snapshot.
            let (me, nonce) = match restore {
                Some(key) => (
                    Instances {
                        user_data: self.user_data.restoring(key),
                        ..self.clone()
                    },
                    format!("restore-{}", crate::core::tags::short_hash(key)),
                ),
                // The control plane's first launch keeps the token of earlier releases.
                None if self.role == Role::Master => (self.clone(), String::new()),
                None => (self.clone(), live.len().to_string()),
            };
            let launched = me.launch(cx, id, launch_count, &nonce, inputs).await?;
            for i in &launched {
                cx.report.resource(
                    id,
                    Self::NAME,
                    Some(&i.id),
                    Progress::Created,
                    i.private_ip.clone(),
                );
            }
            live.extend(launched);
        }
        Ok(Output::Instances(live))
    }

    async fn delete(tx: &Tx<'_>) -> Result<(), AwsError> {
        let live: Vec<&ObsInstance> = tx
            .obs
            .instances
            .iter()
            .filter(|i| i.state != "terminated")
            .collect();
        let ids: Vec<String> = live.iter().map(|i| i.id.clone()).collect();
        let name = |i: &ObsInstance| i.logical.clone().unwrap_or_else(|| "(untracked)".into());
        for i in &live {
            tx.report
                .resource(&name(i), Self::NAME, Some(&i.id), Progress::Deleting, None);
        }
        super::instance_waits::terminate(tx.c, &ids, tx.limits.instances).await?;
        for i in &live {
            tx.report
                .resource(&name(i), Self::NAME, Some(&i.id), Progress::Deleted, None);
        }
        Ok(())
    }
}

impl Instances {
    /// Launches `count` instances with the user data the node's dependencies complete; `id` is
    /// their logical id, `nonce` what makes this launch's client token differ from the node's
    /// other launches (how many it has, or which instances it replaces) and stay the same when
    /// a stopped run makes it again.
    pub(crate) async fn launch(
        &self,
        cx: &Cx<'_>,
        id: &str,
        count: u32,
        nonce: &str,
        inputs: &Inputs,
    ) -> Result<Vec<ObsInstance>, AwsError> {
        if let UserData::Master(m) = &self.user_data {
            refresh_token(cx, inputs.bootstrap(&m.secret)?).await?;
        }
        let user_data = self
            .user_data
            .render(inputs)
            .map_err(|e| AwsError::unexpected("preparing the user data of", id, e.to_string()))?;
        let user_data = crate::core::userdata::pack(&user_data);
        let image = inputs.image(&self.image)?;
        let subnet = inputs.id(&self.subnet)?;
        let groups: Vec<String> = self
            .groups
            .iter()
            .map(|g| inputs.group(g).map(str::to_string))
            .collect::<Result<_, _>>()?;
        let profile = inputs.id(&self.profile)?;
        let client_token = match &self.token_scope {
            TokenScope::ClusterId(secret) => {
                let cluster_id = &inputs.bootstrap(secret)?.cluster_id;
                if nonce.is_empty() {
                    format!("{cluster_id}-{id}")
                } else {
                    format!("{cluster_id}-{id}-{nonce}")
                }
            }
            TokenScope::Vpc(vpc) => tags::client_token(&[&cx.spec.name, inputs.id(vpc)?, id]),
        };
        cx.report.resource(
            id,
            Self::NAME,
            None,
            Progress::Creating,
            Some(format!("{count} x {} in {subnet}", self.instance_type)),
        );
        run(
            cx.c,
            &Launch {
                logical: id,
                count: i32::try_from(count).unwrap_or(i32::MAX),
                image: &image.id,
                root_device: &image.root_device,
                instance_type: &self.instance_type,
                subnet,
                security_groups: groups,
                instance_profile: profile,
                user_data: &user_data,
                key_name: self.key_name.as_deref(),
                volume_gb: self.volume_gb,
                tags: &{
                    let mut t = cx.tags(id, self.kubernetes_owned);
                    // What `status` says a node was launched for (add-on instances run no
                    // Kubernetes).
                    if let (true, Some(k)) = (self.kubernetes_owned, cx.spec.kubeadm()) {
                        t.push((
                            crate::core::stamp::VERSION_TAG.to_string(),
                            k.version.to_string(),
                        ));
                    }
                    t.extend(self.tags.iter().cloned());
                    t
                },
                client_token,
                spot: self.spot,
                private_ip: self.private_ip.as_deref(),
            },
        )
        .await
    }
}

/// A new control plane's `kubeadm init` creates the stored token afresh: record when, so that a
/// later run does not take it for expired (the secret may be older than this control plane).
async fn refresh_token(
    cx: &Cx<'_>,
    b: &crate::core::kinds::bootstrap_secret::Bootstrap,
) -> Result<(), AwsError> {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    if crate::core::pki::token_usable(b.token_created, now) {
        return Ok(());
    }
    let mut fresh = b.clone();
    fresh.token_created = Some(now);
    ssm::replace_json(cx.c, &tags::secret_parameter_name(&cx.spec.name), &fresh).await
}

/// An instance as the SDK describes it.
pub(crate) fn observed(i: &aws_sdk_ec2::types::Instance) -> ObsInstance {
    ObsInstance {
        id: i.instance_id().unwrap_or_default().into(),
        logical: logical(i.tags()),
        state: i
            .state()
            .and_then(|s| s.name())
            .map(|n| n.as_str().to_string())
            .unwrap_or_default(),
        subnet_id: i.subnet_id().map(str::to_string),
        private_ip: i.private_ip_address().map(str::to_string),
        public_ip: i.public_ip_address().map(str::to_string),
        version: super::tag_value(i.tags(), crate::core::stamp::VERSION_TAG).map(str::to_string),
        launch_hash: super::tag_value(i.tags(), crate::core::stamp::LAUNCH_HASH_TAG)
            .map(str::to_string),
        instance_type: i.instance_type().map(|t| t.as_str().to_string()),
        launched_at: i.launch_time().map(aws_smithy_types::DateTime::secs),
        backup_interval: super::tag_value(i.tags(), crate::core::stamp::BACKUP_INTERVAL_TAG)
            .map(str::to_string),
    }
}

/// Everything one RunInstances call needs.
#[derive(Debug, Clone)]
pub struct Launch<'a> {
    pub logical: &'a str,
    pub count: i32,
    pub image: &'a str,
    pub root_device: &'a str,
    pub instance_type: &'a str,
    pub subnet: &'a str,
    pub security_groups: Vec<String>,
    pub instance_profile: &'a str,
    /// What EC2 is sent ([`crate::core::userdata::pack`]).
    pub user_data: &'a [u8],
    pub key_name: Option<&'a str>,
    pub volume_gb: i32,
    pub tags: &'a [(String, String)],
    /// Makes a retried or resumed launch return the same instances instead of new ones.
    pub client_token: String,
    /// A one-time Spot request, terminated when interrupted.
    pub spot: bool,
    /// The one instance's fixed private address.
    pub private_ip: Option<&'a str>,
}

/// Launches `count` instances in one call, retrying while a new instance profile propagates.
///
/// # Errors
/// The AWS error of RunInstances, or a deadline error if the profile never became usable.
pub async fn run(c: &Clients, l: &Launch<'_>) -> Result<Vec<ObsInstance>, AwsError> {
    let user_data = base64::engine::general_purpose::STANDARD.encode(l.user_data);
    let metadata = InstanceMetadataOptionsRequest::builder()
        .http_tokens(HttpTokensState::Required)
        .http_put_response_hop_limit(1)
        .http_endpoint(InstanceMetadataEndpointState::Enabled)
        .build();
    let root = BlockDeviceMapping::builder()
        .device_name(l.root_device)
        .ebs(
            EbsBlockDevice::builder()
                .encrypted(true)
                .volume_size(l.volume_gb)
                .volume_type(VolumeType::Gp3)
                .delete_on_termination(true)
                .build(),
        )
        .build();
    let what = format!("{} ({} x {})", l.logical, l.count, l.instance_type);
    let send = |token: String| {
        let (user_data, metadata, root, what) = (&user_data, &metadata, &root, &what);
        async move {
            retry(
                Backoff::IAM_PROPAGATION,
                // A fixed address is busy until the instance that had it (a lost control
                // plane shutting down) is terminated.
                |e| {
                    is_iam_propagation(e)
                        || is_eventual_not_found(e)
                        || (l.private_ip.is_some() && *e.code() == Code::InvalidIpAddressInUse)
                },
                || async {
                    c.ec2
                        .run_instances()
                        .image_id(l.image)
                        .instance_type(InstanceType::from(l.instance_type))
                        .min_count(l.count)
                        .max_count(l.count)
                        .subnet_id(l.subnet)
                        .set_security_group_ids(Some(l.security_groups.clone()))
                        .iam_instance_profile(
                            IamInstanceProfileSpecification::builder()
                                .name(l.instance_profile)
                                .build(),
                        )
                        .user_data(user_data)
                        .set_key_name(l.key_name.map(str::to_string))
                        .metadata_options(metadata.clone())
                        .block_device_mappings(root.clone())
                        .tag_specifications(tag_spec(ResourceType::Instance, l.tags))
                        .tag_specifications(tag_spec(ResourceType::Volume, l.tags))
                        .client_token(&token)
                        .set_instance_market_options(l.spot.then(spot_options))
                        .set_private_ip_address(l.private_ip.map(str::to_string))
                        .send()
                        .await
                        .map_err(api("launching", what))
                },
            )
            .await
        }
    };
    let out = match send(l.client_token.clone()).await {
        // The token was used before by instances that are gone (terminated after an earlier
        // run, or a launch that differed): those are not coming back, so launch anew.
        Err(e) if is_spent_client_token(&e) => {
            let fresh = crate::core::pki::random_chars(8)
                .map_err(|r| AwsError::unexpected("launching", &what, r.to_string()))?;
            tracing::debug!(error = %e, "client token spent, launching with a fresh one");
            send(format!("{}-{fresh}", l.client_token)).await?
        }
        other => other?,
    };
    Ok(out.instances().iter().map(observed).collect())
}

/// A one-time Spot request whose instance is terminated when EC2 takes it back (a worker; its
/// pool launches another on the next `up`).
fn spot_options() -> aws_sdk_ec2::types::InstanceMarketOptionsRequest {
    use aws_sdk_ec2::types::{
        InstanceInterruptionBehavior, InstanceMarketOptionsRequest, MarketType, SpotInstanceType,
        SpotMarketOptions,
    };
    InstanceMarketOptionsRequest::builder()
        .market_type(MarketType::Spot)
        .spot_options(
            SpotMarketOptions::builder()
                .spot_instance_type(SpotInstanceType::OneTime)
                .instance_interruption_behavior(InstanceInterruptionBehavior::Terminate)
                .build(),
        )
        .build()
}

/// RunInstances refuses a client token whose instances are terminated: they are not coming
/// back. (IdempotentParameterMismatch is not retried: the first launch may be alive and not yet
/// visible, and a fresh token would duplicate it.)
pub fn is_spent_client_token(e: &AwsError) -> bool {
    *e.code() == Code::IdempotentInstanceTerminated
}

/// Terminates instances without waiting for them to be gone (a removed worker: once
/// `shutting-down` it no longer counts).
///
/// # Errors
/// The AWS error of the call.
pub async fn terminate_now(c: &Clients, ids: &[String]) -> Result<(), AwsError> {
    if ids.is_empty() {
        return Ok(());
    }
    c.ec2
        .terminate_instances()
        .set_instance_ids(Some(ids.to_vec()))
        .send()
        .await
        .map_err(api("terminating", &ids.join(", ")))?;
    Ok(())
}

/// Starts stopped instances (one call).
///
/// # Errors
/// The AWS error of the call.
pub async fn start(c: &Clients, ids: &[String]) -> Result<(), AwsError> {
    if ids.is_empty() {
        return Ok(());
    }
    c.ec2
        .start_instances()
        .set_instance_ids(Some(ids.to_vec()))
        .send()
        .await
        .map_err(api("starting", &ids.join(", ")))?;
    Ok(())
}
