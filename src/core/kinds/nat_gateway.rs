//! The NAT gateway that gives private subnets their way out, in the first public subnet.

use std::fmt;

use super::{Change, Context, Doomed, Observed, Plan};
use crate::core::latency::{Cost, Profile};
use crate::core::teardown::Step;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatGateway {
    /// The public subnet's node.
    pub subnet: String,
    /// The Elastic IP's node.
    pub address: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObsNat {
    pub id: String,
    pub logical: Option<String>,
    pub state: String,
    pub subnet_id: String,
    /// The gateway's network interfaces (AWS removes them with it).
    pub interfaces: Vec<String>,
}

impl ObsNat {
    /// Pending or available: it counts as existing.
    pub fn is_live(&self) -> bool {
        matches!(self.state.as_str(), "pending" | "available")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drift {
    /// It is still pending: wait until it is available.
    AwaitAvailable,
}

impl fmt::Display for Drift {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Drift::AwaitAvailable => f.write_str("wait until it is available (now pending)"),
        }
    }
}

impl Plan for NatGateway {
    const NAME: &'static str = "nat-gateway";
    const TAGS: Option<super::TagFamily> = Some(super::TagFamily::Ec2);
    const DELETE_AFTER: &'static [Step] = &[Step::Kubernetes];
    type Observed = Vec<ObsNat>;
    type Drift = Drift;

    fn diff(&self, id: &str, cx: &Context<'_>) -> Change<Drift> {
        if let Some(n) = live(cx.obs, id) {
            let drifts = if n.state == "pending" {
                vec![Drift::AwaitAvailable]
            } else {
                Vec::new()
            };
            return Change::update(&n.id, drifts);
        }
        // One that failed is not coming back: a new one takes its place.
        match cx
            .obs
            .nat_gateways
            .iter()
            .find(|n| n.logical.as_deref() == Some(id) && n.state == "failed")
        {
            Some(failed) => Change::replace(&failed.id),
            None => Change::create(),
        }
    }

    fn doomed(obs: &Observed) -> Vec<Doomed> {
        obs.nat_gateways
            .iter()
            .filter(|n| n.is_live())
            .map(|n| Doomed::new(Self::NAME, n.logical.as_deref(), &n.id))
            .collect()
    }

    // Create, its wait, the poll that sees it available.
    fn cost(&self, p: &Profile) -> Cost {
        Cost::same(2.0 * p.call + p.nat)
    }
}

/// The live gateway that stands for node `id`.
pub fn live<'a>(obs: &'a Observed, id: &str) -> Option<&'a ObsNat> {
    obs.nat_gateways
        .iter()
        .find(|n| n.logical.as_deref() == Some(id) && n.is_live())
}
