//! The cluster's VPC: DNS support and hostnames on (EKS and the nodes' names need them).

use std::fmt;

use super::{Change, Context, Doomed, Kind, Observed, Plan, Refusal};
use crate::core::cidr::Ipv4Net;
use crate::core::latency::{Cost, Profile};
use crate::core::teardown::Step;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vpc {
    pub cidr: Ipv4Net,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObsVpc {
    pub id: String,
    pub logical: Option<String>,
    pub cidr: String,
    /// Read only when asked (`up` and `plan`; `down` does not need them).
    pub dns_support: Option<bool>,
    pub dns_hostnames: Option<bool>,
    /// Who made it, when, and the cluster's expiry: the VPC's tags speak for the cluster.
    pub stamp: crate::core::stamp::Stamp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drift {
    DnsSupport,
    DnsHostnames,
}

impl fmt::Display for Drift {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Drift::DnsSupport => "enable DNS support",
            Drift::DnsHostnames => "enable DNS hostnames",
        })
    }
}

impl Plan for Vpc {
    const NAME: &'static str = "vpc";
    const TAGS: Option<super::TagFamily> = Some(super::TagFamily::Ec2);
    const DELETE_AFTER: &'static [Step] = &[
        Step::Kind(Kind::SecurityGroup),
        Step::Kind(Kind::RouteTable),
        Step::Kind(Kind::InternetGateway),
        Step::Kind(Kind::Subnet),
    ];
    type Observed = Vec<ObsVpc>;
    type Drift = Drift;

    /// `cx.obs` holds no spare VPC (see [`spare_vpcs`]): the plan deletes those first.
    fn diff(&self, id: &str, cx: &Context<'_>) -> Change<Drift> {
        if cx.obs.vpcs.len() > 1 {
            let mut ids: Vec<String> = cx.obs.vpcs.iter().map(|v| v.id.clone()).collect();
            ids.sort();
            return Change::refuse(
                None,
                Refusal::DuplicateVpcs {
                    cluster: cx.spec.name.clone(),
                    region: cx.spec.region.clone(),
                    ids,
                },
            );
        }
        let Some(v) = cx
            .obs
            .vpcs
            .iter()
            .find(|v| v.logical.as_deref() == Some(id))
        else {
            return Change::create();
        };
        if v.cidr != self.cidr.to_string() {
            return Change::refuse(
                Some(v.id.clone()),
                Refusal::Immutable {
                    what: format!("the VPC is {}, network.vpc_cidr says {}", v.cidr, self.cidr),
                },
            );
        }
        let mut drifts = Vec::new();
        if v.dns_support == Some(false) {
            drifts.push(Drift::DnsSupport);
        }
        if v.dns_hostnames == Some(false) {
            drifts.push(Drift::DnsHostnames);
        }
        Change::update(&v.id, drifts)
    }

    fn doomed(obs: &Observed) -> Vec<Doomed> {
        obs.vpcs
            .iter()
            .map(|v| Doomed::new(Self::NAME, v.logical.as_deref(), &v.id))
            .collect()
    }

    // CreateVpc, then ModifyVpcAttribute (DNS hostnames; support is on in a new VPC).
    fn cost(&self, p: &Profile) -> Cost {
        Cost::same(2.0 * p.call)
    }
}

/// Tagged VPCs that hold none of our subnets, route tables, security groups, gateway
/// attachments or NAT gateways, when more than one VPC is tagged: duplicates (CreateVpc takes
/// no client token, so an SDK retry after a lost answer can make a second one) that `up`
/// removes first. If every VPC is empty, the first (by id) is kept.
pub fn spare_vpcs(obs: &Observed) -> Vec<String> {
    if obs.vpcs.len() < 2 {
        return Vec::new();
    }
    let used = |id: &str| {
        obs.subnets.iter().any(|s| s.vpc_id == id)
            || obs.route_tables.iter().any(|r| r.vpc_id == id)
            || obs.security_groups.iter().any(|g| g.vpc_id == id)
            || obs.nat_gateways.iter().any(|n| {
                n.is_live()
                    && obs
                        .subnets
                        .iter()
                        .any(|s| s.id == n.subnet_id && s.vpc_id == id)
            })
            || obs
                .igws
                .iter()
                .any(|g| g.attached_vpcs.iter().any(|v| v == id))
    };
    let mut ids: Vec<&str> = obs.vpcs.iter().map(|v| v.id.as_str()).collect();
    ids.sort();
    let mut spare: Vec<String> = ids
        .iter()
        .filter(|id| !used(id))
        .map(|id| id.to_string())
        .collect();
    if spare.len() == ids.len() {
        spare.remove(0);
    }
    spare
}

/// The id of the VPC (there is one once spares are set aside).
pub fn id(obs: &Observed) -> Option<&str> {
    obs.vpcs.first().map(|v| v.id.as_str())
}
