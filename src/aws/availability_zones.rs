//! The availability zones the subnets go to (a lookup).

use crate::core::events::Progress;
use aws_sdk_ec2::types::Filter;

use super::error::api;
use super::kind::{Apply, Cx, Scope, Tx};
use super::{AwsError, Clients};
use crate::core::kinds::availability_zones::AvailabilityZones;
use crate::core::kinds::{Action, Change, Inputs, NoDrift, NoState, Output, Plan};

impl Apply for AvailabilityZones {
    async fn observe(_c: &Clients, _scope: &Scope<'_>) -> Result<NoState, AwsError> {
        Ok(NoState)
    }

    async fn apply(
        &self,
        cx: &Cx<'_>,
        id: &str,
        change: &Change<NoDrift>,
        _inputs: &Inputs,
    ) -> Result<Output, AwsError> {
        if change.action != Action::Read {
            cx.report.resource(
                id,
                Self::NAME,
                None,
                Progress::Skipped,
                Some("every subnet exists".into()),
            );
            return Ok(Output::Zones(Vec::new()));
        }
        let zones = lookup(cx.c, self.count, &self.instance_type).await?;
        cx.report
            .resource(id, Self::NAME, None, Progress::Read, Some(zones.join(", ")));
        Ok(Output::Zones(zones))
    }

    async fn delete(_tx: &Tx<'_>) -> Result<(), AwsError> {
        Ok(())
    }
}

/// The first `count` zones of the region, in name order, that offer `instance_type` (not every
/// zone offers every type: us-east-1e has no t3, for example).
///
/// # Errors
/// When fewer zones offer the type, or the call fails.
pub async fn lookup(
    c: &Clients,
    count: usize,
    instance_type: &str,
) -> Result<Vec<String>, AwsError> {
    let offers = c
        .ec2
        .describe_instance_type_offerings()
        .location_type(aws_sdk_ec2::types::LocationType::AvailabilityZone)
        .filters(
            Filter::builder()
                .name("instance-type")
                .values(instance_type)
                .build(),
        )
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .map_err(api(
            "listing the availability zones that offer the instance type in",
            &c.region,
        ))?;
    let mut names: Vec<String> = offers
        .iter()
        .filter_map(|o| o.location().map(str::to_string))
        .collect();
    names.sort();
    names.dedup();
    if names.len() < count {
        return Err(AwsError::unexpected(
            "choosing availability zones in",
            &c.region,
            format!(
                "network.availability_zones = {count}, but only {} zone(s) offer {instance_type}: {}",
                names.len(),
                names.join(", ")
            ),
        ));
    }
    names.truncate(count);
    Ok(names)
}
