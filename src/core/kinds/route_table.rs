//! A route table whose default route goes to a gateway (the internet gateway, or the NAT
//! gateway for private subnets), associated with its subnets.

use std::fmt;

use super::{Change, Context, Doomed, Kind, Observed, Plan};
use crate::core::latency::{Cost, Profile};
use crate::core::teardown::Step;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteTable {
    pub vpc: String,
    /// The gateway's node: an internet or NAT gateway.
    pub gateway: String,
    /// The subnets' nodes.
    pub subnets: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObsRouteTable {
    pub id: String,
    pub logical: Option<String>,
    pub vpc_id: String,
    /// The gateway of the 0.0.0.0/0 route, if there is one.
    pub default_route: Option<String>,
    /// (association id, subnet id)
    pub associations: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Drift {
    /// Add the default route, or move it (ReplaceRoute) from the target it has.
    DefaultRoute { from: Option<String> },
    /// Associate these subnets (nodes).
    Associate(Vec<String>),
}

impl fmt::Display for Drift {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Drift::DefaultRoute { from: None } => f.write_str("add the default route"),
            Drift::DefaultRoute { from: Some(t) } => write!(f, "move the default route from {t}"),
            Drift::Associate(s) => write!(f, "associate {} subnet(s)", s.len()),
        }
    }
}

impl Plan for RouteTable {
    const NAME: &'static str = "route-table";
    const TAGS: Option<super::TagFamily> = Some(super::TagFamily::Ec2);
    const DELETE_AFTER: &'static [Step] = &[Step::Kind(Kind::EksCluster)];
    type Observed = Vec<ObsRouteTable>;
    type Drift = Drift;

    fn diff(&self, id: &str, cx: &Context<'_>) -> Change<Drift> {
        let Some(rt) = cx
            .obs
            .route_tables
            .iter()
            .find(|r| r.logical.as_deref() == Some(id))
        else {
            return Change::create();
        };
        let mut drifts = Vec::new();
        let gw = gateway_id(cx.obs, &self.gateway);
        if gw.is_none() || rt.default_route.as_deref() != gw {
            drifts.push(Drift::DefaultRoute {
                from: rt.default_route.clone(),
            });
        }
        let missing: Vec<String> = self
            .subnets
            .iter()
            .filter(|sn| {
                let sid = super::subnet::find(cx.obs, sn).map(|s| s.id.as_str());
                sid.is_none_or(|sid| !rt.associations.iter().any(|(_, s)| s == sid))
            })
            .cloned()
            .collect();
        if !missing.is_empty() {
            drifts.push(Drift::Associate(missing));
        }
        Change::update(&rt.id, drifts)
    }

    fn doomed(obs: &Observed) -> Vec<Doomed> {
        obs.route_tables
            .iter()
            .map(|r| Doomed::new(Self::NAME, r.logical.as_deref(), &r.id))
            .collect()
    }

    // Create, the default route, the associations (in parallel).
    fn cost(&self, p: &Profile) -> Cost {
        Cost::same(3.0 * p.call)
    }
}

/// The AWS id of the gateway node `id` (an internet gateway, or a NAT gateway that is live).
pub fn gateway_id<'a>(obs: &'a Observed, id: &str) -> Option<&'a str> {
    obs.igws
        .iter()
        .find(|g| g.logical.as_deref() == Some(id))
        .map(|g| g.id.as_str())
        .or_else(|| super::nat_gateway::live(obs, id).map(|n| n.id.as_str()))
}
