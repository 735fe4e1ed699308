//! VPC, subnets, internet gateway and the public route table.

use aws_sdk_ec2::client::Waiters as _;
use aws_sdk_ec2::types::{AttributeBooleanValue, ResourceType, VpcAttributeName, VpcState};
use std::time::Duration;

use super::error::api;
use super::retry::{Backoff, is_eventual_not_found, retry};
use super::{AwsError, Clients, tag_spec};

/// Reads enableDnsSupport and enableDnsHostnames.
///
/// # Errors
/// When either Describe fails.
pub async fn vpc_dns_attributes(c: &Clients, vpc: &str) -> Result<(bool, bool), AwsError> {
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
pub async fn create_vpc(
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
            .map_err(|e| super::error::wait_failed(&vpc, "available", &e))?;
    }
    // DNS support is on in every new VPC; only hostnames need turning on.
    set_vpc_dns(c, &vpc, false, true).await?;
    Ok(vpc)
}

/// Turns on the DNS attributes that are off (one call per attribute: the API takes one at a time).
///
/// # Errors
/// The AWS error of the failing call.
pub async fn set_vpc_dns(
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

/// Creates a subnet (tagged) and, if `public`, maps public IPs on launch.
///
/// # Errors
/// The AWS error of the failing call.
pub async fn create_subnet(
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
pub async fn create_igw(c: &Clients, tags: &[(String, String)]) -> Result<String, AwsError> {
    let out = c
        .ec2
        .create_internet_gateway()
        .tag_specifications(tag_spec(ResourceType::InternetGateway, tags))
        .send()
        .await
        .map_err(api("creating", "internet gateway"))?;
    out.internet_gateway()
        .and_then(|g| g.internet_gateway_id())
        .map(str::to_string)
        .ok_or_else(|| AwsError::unexpected("creating", "internet gateway", "no id in the answer"))
}

/// # Errors
/// The AWS error of the failing call.
pub async fn attach_igw(c: &Clients, igw: &str, vpc: &str) -> Result<(), AwsError> {
    retry(Backoff::EVENTUAL, is_eventual_not_found, || async {
        c.ec2
            .attach_internet_gateway()
            .internet_gateway_id(igw)
            .vpc_id(vpc)
            .send()
            .await
            .map_err(api("attaching", &format!("{igw} to {vpc}")))
    })
    .await?;
    Ok(())
}

/// # Errors
/// The AWS error of the failing call.
pub async fn create_route_table(
    c: &Clients,
    vpc: &str,
    tags: &[(String, String)],
) -> Result<String, AwsError> {
    let out = retry(Backoff::EVENTUAL, is_eventual_not_found, || async {
        c.ec2
            .create_route_table()
            .vpc_id(vpc)
            .tag_specifications(tag_spec(ResourceType::RouteTable, tags))
            .send()
            .await
            .map_err(api("creating", &format!("route table in {vpc}")))
    })
    .await?;
    out.route_table()
        .and_then(|r| r.route_table_id())
        .map(str::to_string)
        .ok_or_else(|| AwsError::unexpected("creating", "route table", "no id in the answer"))
}

/// # Errors
/// The AWS error of the failing call.
pub async fn create_default_route(c: &Clients, rt: &str, gateway: &str) -> Result<(), AwsError> {
    retry(Backoff::EVENTUAL, is_eventual_not_found, || async {
        let req = c
            .ec2
            .create_route()
            .route_table_id(rt)
            .destination_cidr_block("0.0.0.0/0");
        let req = if is_nat(gateway) {
            req.nat_gateway_id(gateway)
        } else {
            req.gateway_id(gateway)
        };
        req.send()
            .await
            .map_err(api("adding the default route to", rt))
    })
    .await?;
    Ok(())
}

fn is_nat(gateway: &str) -> bool {
    gateway.starts_with("nat-")
}

/// Allocates an Elastic IP for the NAT gateway, tagged.
///
/// # Errors
/// The AWS error of the call.
pub async fn allocate_address(c: &Clients, tags: &[(String, String)]) -> Result<String, AwsError> {
    let out = c
        .ec2
        .allocate_address()
        .domain(aws_sdk_ec2::types::DomainType::Vpc)
        .tag_specifications(tag_spec(ResourceType::ElasticIp, tags))
        .send()
        .await
        .map_err(api("allocating", "an Elastic IP for the NAT gateway"))?;
    out.allocation_id().map(str::to_string).ok_or_else(|| {
        AwsError::unexpected(
            "allocating",
            "an Elastic IP",
            "no allocation id in the answer",
        )
    })
}

/// # Errors
/// The AWS error of the call (a missing address is fine).
pub async fn release_address(c: &Clients, allocation: &str) -> Result<(), AwsError> {
    ignore_not_found(
        c.ec2
            .release_address()
            .allocation_id(allocation)
            .send()
            .await
            .map_err(api("releasing", allocation)),
        "InvalidAllocationID.NotFound",
    )
}

/// Creates a public NAT gateway (tagged; `client_token` makes a retried create return the same
/// gateway) and waits (the SDK waiter) until it is available.
///
/// # Errors
/// The AWS error of the call, or the gateway failing.
pub async fn create_nat_gateway(
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
    wait_nat_available(c, &id).await?;
    Ok(id)
}

/// Between two polls of a NAT gateway, which takes a minute or two to be made or deleted (the
/// SDK's waiters poll 15-120 s apart).
const NAT_POLL: Duration = Duration::from_secs(10);

/// The NAT gateway as EC2 describes it now; `None` when EC2 does not know the id (just made and
/// not visible yet, or deleted long ago).
async fn describe_nat(
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
    Ok(super::error::absent_if(out, "NatGatewayNotFound")?
        .and_then(|o| o.nat_gateways().first().cloned()))
}

/// Waits (polling every 10 s; about 1-3 minutes on AWS) until the NAT gateway is available.
///
/// # Errors
/// The gateway failing, or ten minutes passing.
pub async fn wait_nat_available(c: &Clients, id: &str) -> Result<(), AwsError> {
    use aws_sdk_ec2::types::NatGatewayState as S;
    super::poll::until(
        NAT_POLL,
        Duration::from_secs(600),
        id,
        "available",
        || async {
            let gw = describe_nat(c, id, "waiting for").await?;
            let gw = gw.as_ref();
            // Right after CreateNatGateway the id may not be visible yet (None).
            match gw.and_then(|g| g.state()) {
                Some(S::Available) => Ok(super::poll::Seen::Ready(())),
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
                other => Ok(super::poll::Seen::Pending(
                    other.map_or("not visible yet", |s| s.as_str()).to_string(),
                )),
            }
        },
    )
    .await
}

/// Deletes the NAT gateway and waits until it is deleted (its address and interface are then free).
///
/// # Errors
/// The AWS error of the call, or ten minutes passing.
pub async fn delete_nat_gateway(c: &Clients, id: &str) -> Result<(), AwsError> {
    let r = c
        .ec2
        .delete_nat_gateway()
        .nat_gateway_id(id)
        .send()
        .await
        .map_err(api("deleting", id));
    if super::error::absent_if(r, "NatGatewayNotFound")?.is_none() {
        return Ok(());
    }
    super::poll::until(
        NAT_POLL,
        Duration::from_secs(600),
        id,
        "deleted",
        || async {
            let gw = describe_nat(c, id, "waiting for the deletion of").await?;
            match gw.as_ref().and_then(|g| g.state()) {
                None | Some(aws_sdk_ec2::types::NatGatewayState::Deleted) => {
                    Ok(super::poll::Seen::Ready(()))
                }
                Some(s) => Ok(super::poll::Seen::Pending(s.as_str().to_string())),
            }
        },
    )
    .await
}

/// Points an existing 0.0.0.0/0 route (to another target, or a blackhole) at the gateway.
///
/// # Errors
/// The AWS error of the failing call.
pub async fn replace_default_route(c: &Clients, rt: &str, gateway: &str) -> Result<(), AwsError> {
    let req = c
        .ec2
        .replace_route()
        .route_table_id(rt)
        .destination_cidr_block("0.0.0.0/0");
    let req = if is_nat(gateway) {
        req.nat_gateway_id(gateway)
    } else {
        req.gateway_id(gateway)
    };
    req.send()
        .await
        .map_err(api("replacing the default route of", rt))?;
    Ok(())
}

/// # Errors
/// The AWS error of the failing call.
pub async fn associate(c: &Clients, rt: &str, subnet: &str) -> Result<(), AwsError> {
    retry(Backoff::EVENTUAL, is_eventual_not_found, || async {
        c.ec2
            .associate_route_table()
            .route_table_id(rt)
            .subnet_id(subnet)
            .send()
            .await
            .map_err(api("associating", &format!("{rt} with {subnet}")))
    })
    .await?;
    Ok(())
}

/// Removes a route table's subnet associations, then the table (its routes go with it).
///
/// # Errors
/// The AWS error of the failing call.
pub async fn delete_route_table(
    c: &Clients,
    rt: &str,
    associations: &[(String, String)],
) -> Result<(), AwsError> {
    for (assoc, subnet) in associations {
        match c
            .ec2
            .disassociate_route_table()
            .association_id(assoc)
            .send()
            .await
            .map_err(api("disassociating", &format!("{rt} from {subnet}")))
        {
            Ok(_) => {}
            Err(e) if e.code() == "InvalidAssociationID.NotFound" => {}
            Err(e) => return Err(e),
        }
    }
    ignore_not_found(
        c.ec2
            .delete_route_table()
            .route_table_id(rt)
            .send()
            .await
            .map_err(api("deleting", rt)),
        "InvalidRouteTableID.NotFound",
    )
}

/// Detaches the gateway from every VPC, then deletes it.
///
/// # Errors
/// The AWS error of the failing call.
pub async fn delete_igw(c: &Clients, igw: &str, vpcs: &[String]) -> Result<(), AwsError> {
    for vpc in vpcs {
        let r = c
            .ec2
            .detach_internet_gateway()
            .internet_gateway_id(igw)
            .vpc_id(vpc)
            .send()
            .await
            .map_err(api("detaching", &format!("{igw} from {vpc}")));
        ignore_not_found(r.map(|_| ()), "Gateway.NotAttached")?;
    }
    ignore_not_found(
        c.ec2
            .delete_internet_gateway()
            .internet_gateway_id(igw)
            .send()
            .await
            .map_err(api("deleting", igw)),
        "InvalidInternetGatewayID.NotFound",
    )
}

/// # Errors
/// The AWS error of the failing call.
pub async fn delete_subnet(c: &Clients, subnet: &str) -> Result<(), AwsError> {
    ignore_not_found(
        c.ec2
            .delete_subnet()
            .subnet_id(subnet)
            .send()
            .await
            .map_err(api("deleting", subnet)),
        "InvalidSubnetID.NotFound",
    )
}

/// # Errors
/// The AWS error of the failing call.
pub async fn delete_vpc(c: &Clients, vpc: &str) -> Result<(), AwsError> {
    ignore_not_found(
        c.ec2
            .delete_vpc()
            .vpc_id(vpc)
            .send()
            .await
            .map_err(api("deleting", vpc)),
        "InvalidVpcID.NotFound",
    )
}

/// A delete whose target is already gone has done its job.
pub(crate) fn ignore_not_found<T>(r: Result<T, AwsError>, code: &str) -> Result<(), AwsError> {
    super::error::absent_if(r, code).map(|_| ())
}

/// A network interface, as `down` reports it when it blocks a delete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    pub id: String,
    pub description: String,
    pub instance: Option<String>,
    pub status: String,
}

impl std::fmt::Display for Interface {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.instance {
            Some(i) => write!(f, "{} ({}, attached to {i})", self.id, self.description),
            None => write!(f, "{} ({}, {})", self.id, self.description, self.status),
        }
    }
}

/// Network interfaces in a VPC, subnet or security group (`filter` = vpc-id, subnet-id,
/// group-id): what holds a resource `down` cannot delete.
///
/// # Errors
/// The AWS error of the Describe.
pub async fn interfaces(
    c: &Clients,
    filter: &str,
    value: &str,
) -> Result<Vec<Interface>, AwsError> {
    let f = aws_sdk_ec2::types::Filter::builder()
        .name(filter)
        .values(value)
        .build();
    let out = c
        .ec2
        .describe_network_interfaces()
        .filters(f)
        .send()
        .await
        .map_err(api("finding what blocks", value))?;
    Ok(out
        .network_interfaces()
        .iter()
        .map(|n| Interface {
            id: n.network_interface_id().unwrap_or("eni-?").to_string(),
            description: n
                .description()
                .filter(|d| !d.is_empty())
                .unwrap_or("no description")
                .to_string(),
            instance: n
                .attachment()
                .and_then(|a| a.instance_id())
                .map(str::to_string),
            status: n
                .status()
                .map(|s| s.as_str().to_string())
                .unwrap_or_default(),
        })
        .collect())
}
