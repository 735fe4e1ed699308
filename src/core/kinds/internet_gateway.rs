//! The internet gateway, attached to the VPC.

use std::fmt;

use super::{Change, Context, Doomed, Kind, Observed, Plan};
use crate::core::latency::{Cost, Profile};
use crate::core::teardown::Step;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InternetGateway {
    /// The VPC's node.
    pub vpc: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObsIgw {
    pub id: String,
    pub logical: Option<String>,
    pub attached_vpcs: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drift {
    Attach,
}

impl fmt::Display for Drift {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Drift::Attach => f.write_str("attach to the VPC"),
        }
    }
}

impl Plan for InternetGateway {
    const NAME: &'static str = "internet-gateway";
    const TAGS: Option<super::TagFamily> = Some(super::TagFamily::Ec2);
    const DELETE_AFTER: &'static [Step] = &[
        Step::Kind(Kind::Instances),
        Step::Kind(Kind::EksCluster),
        Step::Kind(Kind::NatGateway),
        Step::Kind(Kind::ElasticIp),
        Step::Interfaces,
    ];
    type Observed = Vec<ObsIgw>;
    type Drift = Drift;

    fn diff(&self, id: &str, cx: &Context<'_>) -> Change<Drift> {
        let Some(g) = cx
            .obs
            .igws
            .iter()
            .find(|g| g.logical.as_deref() == Some(id))
        else {
            return Change::create();
        };
        let vpc = super::vpc::id(cx.obs);
        let attached = vpc.is_some_and(|v| g.attached_vpcs.iter().any(|a| a == v));
        Change::update(
            &g.id,
            if attached {
                vec![]
            } else {
                vec![Drift::Attach]
            },
        )
    }

    fn doomed(obs: &Observed) -> Vec<Doomed> {
        obs.igws
            .iter()
            .map(|g| Doomed::new(Self::NAME, g.logical.as_deref(), &g.id))
            .collect()
    }

    // Create, attach.
    fn cost(&self, p: &Profile) -> Cost {
        Cost::same(2.0 * p.call)
    }
}
