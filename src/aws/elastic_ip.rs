//! Elastic IPs.

use crate::core::events::Progress;
use aws_sdk_ec2::types::ResourceType;

use super::error::{Code, api, gone_is_fine};
use super::kind::{Apply, Cx, Scope, Tx};
use super::retry::retry;
use super::{AwsError, Clients, cluster_filter, logical, owned, tag_spec};
use crate::core::kinds::elastic_ip::{ElasticIp, ObsAddress};
use crate::core::kinds::{Action, Change, Inputs, Kind, NoDrift, Output, Plan};

impl Apply for ElasticIp {
    async fn observe(c: &Clients, scope: &Scope<'_>) -> Result<Vec<ObsAddress>, AwsError> {
        if !scope.wants(Kind::ElasticIp) {
            return Ok(Vec::new());
        }
        let out = c
            .ec2
            .describe_addresses()
            .filters(cluster_filter(scope.cluster))
            .send()
            .await
            .map_err(api("listing", "Elastic IPs"))?;
        Ok(out
            .addresses()
            .iter()
            .filter(|a| owned(a.tags(), scope.cluster))
            .map(|a| ObsAddress {
                allocation_id: a.allocation_id().unwrap_or_default().into(),
                logical: logical(a.tags()),
                public_ip: a.public_ip().unwrap_or_default().into(),
                association_id: a.association_id().map(str::to_string),
                instance_id: a.instance_id().map(str::to_string),
            })
            .collect())
    }

    async fn apply(
        &self,
        cx: &Cx<'_>,
        id: &str,
        change: &Change<NoDrift>,
        _inputs: &Inputs,
    ) -> Result<Output, AwsError> {
        if change.action != Action::Create {
            let a = crate::core::kinds::elastic_ip::find(cx.obs, id)
                .ok_or_else(|| AwsError::internal(format!("the plan's address {id} was found")))?;
            cx.report.resource(
                id,
                Self::NAME,
                Some(&a.allocation_id),
                Progress::Existing,
                None,
            );
            return Ok(Output::Address {
                allocation: a.allocation_id.clone(),
                ip: a.public_ip.clone(),
            });
        }
        cx.report
            .resource(id, Self::NAME, None, Progress::Creating, None);
        let (allocation, ip) = allocate(cx.c, &cx.tags(id, false)).await?;
        cx.report.resource(
            id,
            Self::NAME,
            Some(&allocation),
            Progress::Created,
            Some(ip.clone()),
        );
        Ok(Output::Address { allocation, ip })
    }

    async fn delete(tx: &Tx<'_>) -> Result<(), AwsError> {
        for a in &tx.obs.addresses {
            let logical = a.logical.as_deref().unwrap_or("(untracked)");
            tx.report.resource(
                logical,
                Self::NAME,
                Some(&a.allocation_id),
                Progress::Deleting,
                None,
            );
            // A NAT gateway's deletion frees its address a little after it reports deleted; an
            // instance's, once it is terminated.
            retry(
                tx.c.tuning.dependency(),
                |e| matches!(e.code(), Code::InvalidIpAddressInUse | Code::AuthFailure),
                || release(tx.c, &a.allocation_id),
            )
            .await?;
            tx.report.resource(
                logical,
                Self::NAME,
                Some(&a.allocation_id),
                Progress::Deleted,
                None,
            );
        }
        Ok(())
    }
}

/// Allocates an Elastic IP, tagged: (allocation id, address).
///
/// # Errors
/// The AWS error of the call.
pub async fn allocate(
    c: &Clients,
    tags: &[(String, String)],
) -> Result<(String, String), AwsError> {
    let out = c
        .ec2
        .allocate_address()
        .domain(aws_sdk_ec2::types::DomainType::Vpc)
        .tag_specifications(tag_spec(ResourceType::ElasticIp, tags))
        .send()
        .await
        .map_err(api("allocating", "an Elastic IP"))?;
    let allocation = out.allocation_id().map(str::to_string).ok_or_else(|| {
        AwsError::unexpected(
            "allocating",
            "an Elastic IP",
            "no allocation id in the answer",
        )
    })?;
    Ok((allocation, out.public_ip().unwrap_or_default().to_string()))
}

/// # Errors
/// The AWS error of the call (a missing address is fine).
pub async fn release(c: &Clients, allocation: &str) -> Result<(), AwsError> {
    gone_is_fine(
        c.ec2
            .release_address()
            .allocation_id(allocation)
            .send()
            .await
            .map_err(api("releasing", allocation)),
        Code::InvalidAllocationIdNotFound,
    )
}
