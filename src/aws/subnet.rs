//! Subnets.

use crate::core::events::Progress;
use aws_sdk_ec2::types::{AttributeBooleanValue, ResourceType, SubnetCidrReservationType};

use super::error::{Code, api, gone_is_fine};
use super::kind::{Apply, Cx, Scope, Tx};
use super::retry::{Backoff, is_dependency_violation, is_eventual_not_found, retry};
use super::{AwsError, Clients, list_tagged, logical, tag_spec};
use crate::core::kinds::subnet::{Drift, ObsSubnet, Subnet};
use crate::core::kinds::{Action, Change, Inputs, Output, Plan};
use crate::core::tags;

impl Apply for Subnet {
    async fn observe(c: &Clients, scope: &Scope<'_>) -> Result<Vec<ObsSubnet>, AwsError> {
        let items = list_tagged!(c, describe_subnets, scope.cluster, "subnets", tags);
        let mut found: Vec<ObsSubnet> = items
            .map(|s| ObsSubnet {
                id: s.subnet_id().unwrap_or_default().into(),
                logical: logical(s.tags()),
                vpc_id: s.vpc_id().unwrap_or_default().into(),
                cidr: s.cidr_block().unwrap_or_default().into(),
                az: s.availability_zone().unwrap_or_default().into(),
                map_public_ip: s.map_public_ip_on_launch().unwrap_or(false),
                reserved: Vec::new(),
            })
            .collect();
        let reads = found
            .iter_mut()
            .filter(|s| {
                s.logical
                    .as_ref()
                    .is_some_and(|l| scope.reserving.contains(l))
            })
            .map(|s| async move {
                s.reserved = reservations(c, &s.id).await?;
                Ok::<_, AwsError>(())
            });
        futures::future::try_join_all(reads).await?;
        Ok(found)
    }

    async fn apply(
        &self,
        cx: &Cx<'_>,
        id: &str,
        change: &Change<Drift>,
        inputs: &Inputs,
    ) -> Result<Output, AwsError> {
        if let (Action::Update | Action::Keep, Some(sn)) = (change.action, &change.aws_id) {
            if !change.drifts.is_empty() {
                for d in &change.drifts {
                    match d {
                        Drift::MapPublicIp => set_map_public_ip(cx.c, sn).await?,
                        Drift::Reserve(ip) => reserve(cx.c, sn, *ip, &cx.tags(id, true)).await?,
                    }
                }
                let said: Vec<String> = change.drifts.iter().map(ToString::to_string).collect();
                cx.report.resource(
                    id,
                    Self::NAME,
                    Some(sn),
                    Progress::Updated,
                    Some(said.join(", ")),
                );
            } else {
                cx.report
                    .resource(id, Self::NAME, Some(sn), Progress::Existing, None);
            }
            return Ok(Output::Id(sn.clone()));
        }
        let vpc = inputs.id(&self.vpc)?;
        let az = inputs
            .zones(&self.zones)?
            .get(self.index)
            .cloned()
            .ok_or_else(|| {
                AwsError::unexpected("creating", id, "no availability zone for this subnet")
            })?;
        let detail = format!("{} in {az}", self.cidr);
        cx.report.resource(
            id,
            Self::NAME,
            None,
            Progress::Creating,
            Some(detail.clone()),
        );
        // What the AWS Load Balancer Controller and the cloud provider look for.
        let mut tags = cx.tags(id, true);
        let role = if self.public {
            tags::ELB_ROLE_TAG
        } else {
            tags::INTERNAL_ELB_ROLE_TAG
        };
        tags.push((role.to_string(), "1".to_string()));
        let sn = create(cx.c, vpc, &self.cidr.to_string(), &az, self.public, &tags).await?;
        // Before anything launches into it.
        if let Some(ip) = self.reserve {
            reserve(cx.c, &sn, ip, &cx.tags(id, true)).await?;
        }
        cx.report
            .resource(id, Self::NAME, Some(&sn), Progress::Created, Some(detail));
        Ok(Output::Id(sn))
    }

    async fn delete(tx: &Tx<'_>) -> Result<(), AwsError> {
        let c = tx.c;
        // Interfaces in our subnets that are not our (terminated) instances' belong to someone
        // else: AWS would refuse the delete (the emulator would not), so wait for them to go
        // and name them if they stay.
        let ours: std::collections::HashSet<&str> =
            tx.obs.instances.iter().map(|i| i.id.as_str()).collect();
        // Our NAT gateways' interfaces go with the gateways (deleted before this step).
        let nat_enis: std::collections::HashSet<&str> = tx
            .obs
            .nat_gateways
            .iter()
            .flat_map(|n| n.interfaces.iter().map(String::as_str))
            .collect();
        for s in &tx.obs.subnets {
            retry(c.tuning.dependency(), is_dependency_violation, || async {
                let foreign: Vec<super::interfaces::Interface> =
                    super::interfaces::find(c, "subnet-id", &s.id)
                        .await?
                        .into_iter()
                        .filter(|n| n.instance.as_deref().is_none_or(|i| !ours.contains(i)))
                        .filter(|n| !nat_enis.contains(n.id.as_str()))
                        .collect();
                // An interface of a terminated instance is on its way out (AWS deletes it; the
                // delete below retries DependencyViolation until it has).
                let attached: Vec<String> =
                    foreign.iter().filter_map(|n| n.instance.clone()).collect();
                let gone = super::instance_waits::terminated(c, &attached).await?;
                let left: Vec<String> = foreign
                    .iter()
                    .filter(|n| n.instance.as_ref().is_none_or(|i| !gone.contains(i)))
                    .map(ToString::to_string)
                    .collect();
                if left.is_empty() {
                    Ok(())
                } else {
                    Err(AwsError::api(
                        "deleting",
                        &s.id,
                        Code::DependencyViolation.as_str(),
                        &format!(
                            "network interfaces provision does not own are still in the subnet: {}",
                            left.join("; ")
                        ),
                    ))
                }
            })
            .await?;
        }
        let deletes = tx.obs.subnets.iter().map(|s| async move {
            tx.report
                .deleting(
                    s.logical.as_deref(),
                    Self::NAME,
                    &s.id,
                    super::interfaces::delete_with_blockers(c, "subnet-id", &s.id, || {
                        delete(c, &s.id)
                    }),
                )
                .await?;
            Ok::<_, AwsError>(())
        });
        futures::future::try_join_all(deletes).await?;
        Ok(())
    }
}

/// Creates a subnet (tagged) and, if `public`, maps public IPs on launch.
///
/// # Errors
/// The AWS error of the failing call.
pub async fn create(
    c: &Clients,
    vpc: &str,
    cidr: &str,
    az: &str,
    public: bool,
    tags: &[(String, String)],
) -> Result<String, AwsError> {
    let what = format!("subnet {cidr} in {az}");
    let out = retry(Backoff::EVENTUAL, is_eventual_not_found, || async {
        c.ec2
            .create_subnet()
            .vpc_id(vpc)
            .cidr_block(cidr)
            .availability_zone(az)
            .tag_specifications(tag_spec(ResourceType::Subnet, tags))
            .send()
            .await
            .map_err(api("creating", &what))
    })
    .await?;
    let id = out
        .subnet()
        .and_then(|s| s.subnet_id())
        .ok_or_else(|| AwsError::unexpected("creating", &what, "no subnet id in the answer"))?
        .to_string();
    if public {
        set_map_public_ip(c, &id).await?;
    }
    Ok(id)
}

/// Keeps `ip` off automatic assignment in the subnet: an explicit CIDR reservation of it
/// alone, tagged (it goes with the subnet).
///
/// # Errors
/// The AWS error of the failing call.
pub async fn reserve(
    c: &Clients,
    subnet: &str,
    ip: std::net::Ipv4Addr,
    tags: &[(String, String)],
) -> Result<(), AwsError> {
    let cidr = crate::core::kinds::subnet::reservation(ip);
    let made = retry(Backoff::EVENTUAL, is_eventual_not_found, || async {
        c.ec2
            .create_subnet_cidr_reservation()
            .subnet_id(subnet)
            .cidr(&cidr)
            .reservation_type(SubnetCidrReservationType::Explicit)
            .description("provision: the kubeadm control plane's address")
            .tag_specifications(tag_spec(ResourceType::SubnetCidrReservation, tags))
            .send()
            .await
            .map_err(api(&format!("reserving {cidr} in"), subnet))
    })
    .await;
    match made {
        Ok(_) => Ok(()),
        // No client token: an attempt whose answer was lost leaves the reservation made, and
        // the SDK's retry of it is refused as an overlap. Ours is there: done.
        Err(e)
            if reservations(c, subnet)
                .await
                .is_ok_and(|r| r.contains(&cidr)) =>
        {
            tracing::debug!(error = %e, subnet, "the reservation was there already");
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// The subnet's explicit CIDR reservations.
async fn reservations(c: &Clients, subnet: &str) -> Result<Vec<String>, AwsError> {
    let out = c
        .ec2
        .get_subnet_cidr_reservations()
        .subnet_id(subnet)
        .send()
        .await
        .map_err(api("reading the CIDR reservations of", subnet))?;
    Ok(out
        .subnet_ipv4_cidr_reservations()
        .iter()
        .filter(|r| r.reservation_type() == Some(&SubnetCidrReservationType::Explicit))
        .filter_map(|r| r.cidr().map(str::to_string))
        .collect())
}

/// # Errors
/// The AWS error of the failing call.
pub async fn set_map_public_ip(c: &Clients, subnet: &str) -> Result<(), AwsError> {
    retry(Backoff::EVENTUAL, is_eventual_not_found, || async {
        c.ec2
            .modify_subnet_attribute()
            .subnet_id(subnet)
            .map_public_ip_on_launch(AttributeBooleanValue::builder().value(true).build())
            .send()
            .await
            .map_err(api("turning on public IPs for", subnet))
    })
    .await?;
    Ok(())
}

/// # Errors
/// The AWS error of the failing call.
pub async fn delete(c: &Clients, subnet: &str) -> Result<(), AwsError> {
    gone_is_fine(
        c.ec2
            .delete_subnet()
            .subnet_id(subnet)
            .send()
            .await
            .map_err(api("deleting", subnet)),
        Code::InvalidSubnetIdNotFound,
    )
}
