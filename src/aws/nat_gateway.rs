//! NAT gateways, polled by provision (the SDK's waiters poll 15-120 s apart).

use crate::core::events::Progress;
use std::time::Duration;

use aws_sdk_ec2::types::ResourceType;

use super::error::{Code, absent_if, api};
use super::kind::{Apply, Cx, Scope, Tx};
use super::poll::Seen;
use super::retry::{Backoff, is_eventual_not_found, retry};
use super::{AwsError, Clients, cluster_filter, logical, owned, tag_spec};
use crate::core::kinds::nat_gateway::{Drift, NatGateway, ObsNat};
use crate::core::kinds::{Action, Change, Inputs, Kind, Output, Plan};
use crate::core::tags;

/// Between two polls of a NAT gateway, which takes a minute or two to be made or deleted.
const NAT_POLL: Duration = Duration::from_secs(10);

impl Apply for NatGateway {
    async fn observe(c: &Clients, scope: &Scope<'_>) -> Result<Vec<ObsNat>, AwsError> {
        if !scope.wants(Kind::NatGateway) {
            return Ok(Vec::new());
        }
        let items: Vec<_> = c
            .ec2
            .describe_nat_gateways()
            .filter(cluster_filter(scope.cluster))
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(api("listing", "NAT gateways"))?;
        Ok(items
            .into_iter()
            .filter(|n| owned(n.tags(), scope.cluster))
            .map(|n| ObsNat {
                id: n.nat_gateway_id().unwrap_or_default().into(),
                logical: logical(n.tags()),
                state: n
                    .state()
                    .map(|s| s.as_str().to_string())
                    .unwrap_or_default(),
                subnet_id: n.subnet_id().unwrap_or_default().into(),
                interfaces: n
                    .nat_gateway_addresses()
                    .iter()
                    .filter_map(|a| a.network_interface_id().map(str::to_string))
                    .collect(),
            })
            .collect())
    }

    async fn apply(
        &self,
        cx: &Cx<'_>,
        id: &str,
        change: &Change<Drift>,
        inputs: &Inputs,
    ) -> Result<Output, AwsError> {
        let c = cx.c;
        if let (Action::Update | Action::Keep, Some(n)) = (change.action, &change.aws_id) {
            if change.drifts.contains(&Drift::AwaitAvailable) {
                wait_available(c, n).await?;
            }
            cx.report
                .resource(id, Self::NAME, Some(n), Progress::Existing, None);
            return Ok(Output::Id(n.clone()));
        }
        let sn = inputs.id(&self.subnet)?;
        let (eip, _) = inputs.address(&self.address)?;
        cx.report.resource(
            id,
            Self::NAME,
            None,
            Progress::Creating,
            Some(format!("in {sn}")),
        );
        // Same subnet and address: a retried or resumed create returns the same gateway.
        let token = tags::client_token(&[&cx.spec.name, sn, eip]);
        let n = create(c, sn, eip, &token, &cx.tags(id, false)).await?;
        cx.report.resource(
            id,
            Self::NAME,
            Some(&n),
            Progress::Created,
            Some(format!("in {sn}")),
        );
        Ok(Output::Id(n))
    }

    async fn delete(tx: &Tx<'_>) -> Result<(), AwsError> {
        let deletes = tx
            .obs
            .nat_gateways
            .iter()
            .filter(|n| n.is_live())
            .map(|n| async move {
                tx.report
                    .deleting(n.logical.as_deref(), Self::NAME, &n.id, delete(tx.c, &n.id))
                    .await?;
                Ok::<_, AwsError>(())
            });
        futures::future::try_join_all(deletes).await?;
        Ok(())
    }
}

/// Creates a public NAT gateway (tagged; `client_token` makes a retried create return the same
/// gateway) and waits until it is available.
///
/// # Errors
/// The AWS error of the call, or the gateway failing.
pub async fn create(
    c: &Clients,
    subnet: &str,
    allocation: &str,
    client_token: &str,
    tags: &[(String, String)],
) -> Result<String, AwsError> {
    let send = |token: String| async move {
        retry(Backoff::EVENTUAL, is_eventual_not_found, || async {
            c.ec2
                .create_nat_gateway()
                .subnet_id(subnet)
                .allocation_id(allocation)
                .client_token(&token)
                .tag_specifications(tag_spec(ResourceType::Natgateway, tags))
                .send()
                .await
                .map_err(api("creating", &format!("NAT gateway in {subnet}")))
        })
        .await
    };
    let mut out = send(client_token.to_string()).await?;
    // A token that served a gateway since failed or deleted answers with that gateway.
    let spent = |o: &aws_sdk_ec2::operation::create_nat_gateway::CreateNatGatewayOutput| {
        o.nat_gateway()
            .and_then(|n| n.state())
            .is_some_and(|s| matches!(s.as_str(), "failed" | "deleting" | "deleted"))
    };
    if spent(&out) {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        out = send(format!("{client_token}-{secs}")).await?;
    }
    let id = out
        .nat_gateway()
        .and_then(|n| n.nat_gateway_id())
        .ok_or_else(|| AwsError::unexpected("creating", "NAT gateway", "no id in the answer"))?
        .to_string();
    wait_available(c, &id).await?;
    Ok(id)
}

/// The NAT gateway as EC2 describes it now; `None` when EC2 does not know the id (just made and
/// not visible yet, or deleted long ago).
async fn describe(
    c: &Clients,
    id: &str,
    doing: &str,
) -> Result<Option<aws_sdk_ec2::types::NatGateway>, AwsError> {
    let out = c
        .ec2
        .describe_nat_gateways()
        .nat_gateway_ids(id)
        .send()
        .await
        .map_err(api(doing, id));
    Ok(absent_if(out, Code::NatGatewayNotFound)?.and_then(|o| o.nat_gateways().first().cloned()))
}

/// Waits (polling every 10 s; about 1-3 minutes on AWS) until the NAT gateway is available.
///
/// # Errors
/// The gateway failing, or ten minutes passing.
pub async fn wait_available(c: &Clients, id: &str) -> Result<(), AwsError> {
    use aws_sdk_ec2::types::NatGatewayState as S;
    super::poll::until(
        &c.tuning,
        NAT_POLL,
        Duration::from_secs(600),
        id,
        "available",
        || async {
            let gw = describe(c, id, "waiting for").await?;
            let gw = gw.as_ref();
            // Right after CreateNatGateway the id may not be visible yet (None).
            match gw.and_then(|g| g.state()) {
                Some(S::Available) => Ok(Seen::Ready(())),
                Some(S::Failed | S::Deleting | S::Deleted) => Err(AwsError::Wait {
                    resource: id.into(),
                    state: "available".into(),
                    message: format!(
                        "it is {} ({})",
                        gw.and_then(|g| g.state()).map_or("?", |s| s.as_str()),
                        gw.and_then(|g| g.failure_message())
                            .unwrap_or("no reason given")
                    ),
                }),
                other => Ok(Seen::Pending(
                    other.map_or("not visible yet", |s| s.as_str()).to_string(),
                )),
            }
        },
    )
    .await
}

/// Deletes the NAT gateway and waits until it is deleted (its address and interface are then
/// free).
///
/// # Errors
/// The AWS error of the call, or ten minutes passing.
pub async fn delete(c: &Clients, id: &str) -> Result<(), AwsError> {
    let r = c
        .ec2
        .delete_nat_gateway()
        .nat_gateway_id(id)
        .send()
        .await
        .map_err(api("deleting", id));
    if absent_if(r, Code::NatGatewayNotFound)?.is_none() {
        return Ok(());
    }
    super::poll::until(
        &c.tuning,
        NAT_POLL,
        Duration::from_secs(600),
        id,
        "deleted",
        || async {
            let gw = describe(c, id, "waiting for the deletion of").await?;
            match gw.as_ref().and_then(|g| g.state()) {
                None | Some(aws_sdk_ec2::types::NatGatewayState::Deleted) => Ok(Seen::Ready(())),
                Some(s) => Ok(Seen::Pending(s.as_str().to_string())),
            }
        },
    )
    .await
}
