//! The cluster's VPC.

use crate::core::events::Progress;
use aws_sdk_ec2::client::Waiters as _;
use aws_sdk_ec2::types::{AttributeBooleanValue, ResourceType, VpcAttributeName, VpcState};
use std::time::Duration;

use super::error::{Code, api, gone_is_fine};
use super::kind::{Apply, Cx, Scope, Tx};
use super::retry::{Backoff, is_eventual_not_found, retry};
use super::{AwsError, Clients, list_tagged, logical, tag_spec};
use crate::core::kinds::vpc::{Drift, ObsVpc, Vpc};
use crate::core::kinds::{Action, Change, Inputs, Output, Plan};

impl Apply for Vpc {
    async fn observe(c: &Clients, scope: &Scope<'_>) -> Result<Vec<ObsVpc>, AwsError> {
        let mut out: Vec<ObsVpc> = list_tagged!(c, describe_vpcs, scope.cluster, "VPCs", tags)
            .map(|v| ObsVpc {
                id: v.vpc_id().unwrap_or_default().into(),
                logical: logical(v.tags()),
                cidr: v.cidr_block().unwrap_or_default().into(),
                dns_support: None,
                dns_hostnames: None,
                stamp: super::stamp_of(v.tags()),
            })
            .collect();
        if scope.vpc_attributes {
            for v in &mut out {
                let (support, hostnames) = dns_attributes(c, &v.id).await?;
                v.dns_support = Some(support);
                v.dns_hostnames = Some(hostnames);
            }
        }
        Ok(out)
    }

    async fn apply(
        &self,
        cx: &Cx<'_>,
        id: &str,
        change: &Change<Drift>,
        _inputs: &Inputs,
    ) -> Result<Output, AwsError> {
        let c = cx.c;
        if let (Action::Update | Action::Keep, Some(vpc)) = (change.action, &change.aws_id) {
            let support = change.drifts.contains(&Drift::DnsSupport);
            let hostnames = change.drifts.contains(&Drift::DnsHostnames);
            if change.action == Action::Update {
                set_dns(c, vpc, support, hostnames).await?;
                cx.report.resource(
                    id,
                    Self::NAME,
                    Some(vpc),
                    Progress::Updated,
                    Some("DNS support and hostnames on".into()),
                );
            } else {
                cx.report
                    .resource(id, Self::NAME, Some(vpc), Progress::Existing, None);
            }
            return Ok(Output::Id(vpc.clone()));
        }
        cx.report.resource(
            id,
            Self::NAME,
            None,
            Progress::Creating,
            Some(self.cidr.to_string()),
        );
        let vpc = create(c, &self.cidr.to_string(), &cx.tags(id, true)).await?;
        cx.report
            .resource(id, Self::NAME, Some(&vpc), Progress::Created, None);
        Ok(Output::Id(vpc))
    }

    async fn delete(tx: &Tx<'_>) -> Result<(), AwsError> {
        for v in &tx.obs.vpcs {
            tx.report
                .deleting(
                    v.logical.as_deref(),
                    Self::NAME,
                    &v.id,
                    super::interfaces::delete_with_blockers(tx.c, "vpc-id", &v.id, || {
                        delete(tx.c, &v.id)
                    }),
                )
                .await?;
        }
        Ok(())
    }
}

/// Reads enableDnsSupport and enableDnsHostnames.
///
/// # Errors
/// When either Describe fails.
pub async fn dns_attributes(c: &Clients, vpc: &str) -> Result<(bool, bool), AwsError> {
    let get = |attr: VpcAttributeName| async move {
        c.ec2
            .describe_vpc_attribute()
            .vpc_id(vpc)
            .attribute(attr)
            .send()
            .await
            .map_err(api("reading DNS attributes of", vpc))
    };
    let (s, h) = tokio::try_join!(
        get(VpcAttributeName::EnableDnsSupport),
        get(VpcAttributeName::EnableDnsHostnames)
    )?;
    let v = |o: Option<&AttributeBooleanValue>| o.and_then(|a| a.value()).unwrap_or(false);
    Ok((v(s.enable_dns_support()), v(h.enable_dns_hostnames())))
}

/// Creates the VPC (tagged), waits until it is available and turns DNS hostnames on (support is
/// on already).
///
/// # Errors
/// The AWS error of the failing call.
pub async fn create(
    c: &Clients,
    cidr: &str,
    tags: &[(String, String)],
) -> Result<String, AwsError> {
    let out = c
        .ec2
        .create_vpc()
        .cidr_block(cidr)
        .tag_specifications(tag_spec(ResourceType::Vpc, tags))
        .send()
        .await
        .map_err(api("creating", &format!("VPC {cidr}")))?;
    let vpc = out
        .vpc()
        .and_then(|v| v.vpc_id())
        .ok_or_else(|| AwsError::unexpected("creating", "VPC", "no VPC id in the answer"))?
        .to_string();
    if out.vpc().and_then(|v| v.state()) != Some(&VpcState::Available) {
        c.ec2
            .wait_until_vpc_available()
            .vpc_ids(&vpc)
            .wait(Duration::from_secs(120))
            .await
            .map_err(|e| AwsError::Wait {
                resource: vpc.clone(),
                state: "available".into(),
                message: super::error::one_line(&e),
            })?;
    }
    // DNS support is on in every new VPC; only hostnames need turning on.
    set_dns(c, &vpc, false, true).await?;
    Ok(vpc)
}

/// Turns on the DNS attributes that are off (one call per attribute: the API takes one at a time).
///
/// # Errors
/// The AWS error of the failing call.
pub async fn set_dns(
    c: &Clients,
    vpc: &str,
    support: bool,
    hostnames: bool,
) -> Result<(), AwsError> {
    let on = || AttributeBooleanValue::builder().value(true).build();
    // Hostnames can only be enabled once support is, so these two run in order.
    if support {
        retry(Backoff::EVENTUAL, is_eventual_not_found, || async {
            c.ec2
                .modify_vpc_attribute()
                .vpc_id(vpc)
                .enable_dns_support(on())
                .send()
                .await
                .map_err(api("enabling DNS support on", vpc))
        })
        .await?;
    }
    if hostnames {
        retry(Backoff::EVENTUAL, is_eventual_not_found, || async {
            c.ec2
                .modify_vpc_attribute()
                .vpc_id(vpc)
                .enable_dns_hostnames(on())
                .send()
                .await
                .map_err(api("enabling DNS hostnames on", vpc))
        })
        .await?;
    }
    Ok(())
}

/// # Errors
/// The AWS error of the failing call.
pub async fn delete(c: &Clients, vpc: &str) -> Result<(), AwsError> {
    gone_is_fine(
        c.ec2
            .delete_vpc()
            .vpc_id(vpc)
            .send()
            .await
            .map_err(api("deleting", vpc)),
        Code::InvalidVpcIdNotFound,
    )
}
