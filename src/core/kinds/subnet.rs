//! A subnet in one availability zone: public ones map public addresses on launch and are
//! tagged for internet-facing load balancers, private ones (behind the NAT gateway) for internal
//! ones.

use std::fmt;

use super::{Change, Context, Doomed, Kind, Observed, Plan, Refusal};
use crate::core::cidr::Ipv4Net;
use crate::core::latency::{Cost, Profile};
use crate::core::teardown::Step;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subnet {
    /// The availability zone: an index into the zones the lookup found.
    pub index: usize,
    pub cidr: Ipv4Net,
    pub public: bool,
    /// The VPC's node.
    pub vpc: String,
    /// The availability zones' lookup node.
    pub zones: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObsSubnet {
    pub id: String,
    pub logical: Option<String>,
    pub vpc_id: String,
    pub cidr: String,
    pub az: String,
    pub map_public_ip: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drift {
    MapPublicIp,
}

impl fmt::Display for Drift {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Drift::MapPublicIp => f.write_str("map public IPs on launch"),
        }
    }
}

impl Plan for Subnet {
    const NAME: &'static str = "subnet";
    const TAGS: Option<super::TagFamily> = Some(super::TagFamily::Ec2);
    const DELETE_AFTER: &'static [Step] = &[
        Step::Kind(Kind::Instances),
        Step::Kind(Kind::RouteTable),
        Step::Kind(Kind::EksCluster),
        Step::Kind(Kind::NatGateway),
        Step::Interfaces,
    ];
    type Observed = Vec<ObsSubnet>;
    type Drift = Drift;

    fn diff(&self, id: &str, cx: &Context<'_>) -> Change<Drift> {
        let Some(s) = find(cx.obs, id) else {
            return Change::create();
        };
        if s.cidr != self.cidr.to_string() {
            return Change::refuse(
                Some(s.id.clone()),
                Refusal::Immutable {
                    what: format!("the subnet is {}, the spec carves {}", s.cidr, self.cidr),
                },
            );
        }
        let drifts = if self.public && !s.map_public_ip {
            vec![Drift::MapPublicIp]
        } else {
            Vec::new()
        };
        Change::update(&s.id, drifts)
    }

    fn doomed(obs: &Observed) -> Vec<Doomed> {
        obs.subnets
            .iter()
            .map(|s| Doomed::new(Self::NAME, s.logical.as_deref(), &s.id))
            .collect()
    }

    // CreateSubnet, then ModifySubnetAttribute (public addresses) for public subnets.
    fn cost(&self, p: &Profile) -> Cost {
        Cost::same(if self.public { 2.0 } else { 1.0 } * p.call)
    }
}

/// The subnet that stands for node `id`.
pub fn find<'a>(obs: &'a Observed, id: &str) -> Option<&'a ObsSubnet> {
    obs.subnets
        .iter()
        .find(|s| s.logical.as_deref() == Some(id))
}
