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
    /// An address no instance is given automatically (an explicit CIDR reservation): the
    /// kubeadm control plane's, so that a new one restored from a snapshot finds it free.
    pub reserve: Option<std::net::Ipv4Addr>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObsSubnet {
    pub id: String,
    pub logical: Option<String>,
    pub vpc_id: String,
    pub cidr: String,
    pub az: String,
    pub map_public_ip: bool,
    /// Its explicit CIDR reservations (read where the spec wants one: `Scope::reserving`).
    pub reserved: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drift {
    MapPublicIp,
    /// The reservation of [`Subnet::reserve`] is missing (a cluster of an earlier release).
    Reserve(std::net::Ipv4Addr),
}

impl fmt::Display for Drift {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Drift::MapPublicIp => f.write_str("map public IPs on launch"),
            Drift::Reserve(ip) => write!(f, "reserve {ip} for the control plane"),
        }
    }
}

/// The CIDR of an address's reservation.
pub fn reservation(ip: std::net::Ipv4Addr) -> String {
    format!("{ip}/32")
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
        let mut drifts = Vec::new();
        if self.public && !s.map_public_ip {
            drifts.push(Drift::MapPublicIp);
        }
        // A reservation may include an address in use (AWS leaves its holder alone): made
        // also when another instance has it, so that nothing new takes it once that one goes.
        if let Some(ip) = self
            .reserve
            .filter(|ip| !s.reserved.contains(&reservation(*ip)))
        {
            drifts.push(Drift::Reserve(ip));
        }
        Change::update(&s.id, drifts)
    }

    fn doomed(obs: &Observed) -> Vec<Doomed> {
        obs.subnets
            .iter()
            .map(|s| Doomed::new(Self::NAME, s.logical.as_deref(), &s.id))
            .collect()
    }

    // CreateSubnet, then ModifySubnetAttribute (public addresses) for public subnets, then
    // CreateSubnetCidrReservation where it reserves an address.
    fn cost(&self, p: &Profile) -> Cost {
        let calls = 1 + u8::from(self.public) + u8::from(self.reserve.is_some());
        Cost::same(f64::from(calls) * p.call)
    }
}

/// The subnet that stands for node `id`.
pub fn find<'a>(obs: &'a Observed, id: &str) -> Option<&'a ObsSubnet> {
    obs.subnets
        .iter()
        .find(|s| s.logical.as_deref() == Some(id))
}
