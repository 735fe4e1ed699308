//! The availability zones the subnets go to: the first ones, by name, that offer the instance
//! type (not every zone offers every type). A lookup, needed only while a subnet is missing.

use super::{Change, Context, NoDrift, NoState, Plan};
use crate::core::latency::{Cost, Profile};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AvailabilityZones {
    pub count: usize,
    /// The instance type the zones must offer.
    pub instance_type: String,
}

impl Plan for AvailabilityZones {
    const NAME: &'static str = "availability-zones";
    type Observed = NoState;
    type Drift = NoDrift;

    fn diff(&self, _id: &str, cx: &Context<'_>) -> Change<NoDrift> {
        if zones_needed(cx) {
            Change::read()
        } else {
            Change::keep(None)
        }
    }

    // DescribeInstanceTypeOfferings.
    fn cost(&self, p: &Profile) -> Cost {
        Cost::same(p.call)
    }
}

/// Whether some subnet of the graph, public or private, does not exist yet: every subnet is
/// placed by the zone at its index.
pub fn zones_needed(cx: &Context<'_>) -> bool {
    cx.graph.nodes.iter().any(|n| match &n.desired {
        super::Desired::Subnet(_) => super::subnet::find(cx.obs, &n.id).is_none(),
        _ => false,
    })
}
