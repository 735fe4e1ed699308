//! An Elastic IP (the NAT gateway's, the kubeadm control plane's), tagged like everything else.

use super::{Change, Context, Doomed, Kind, NoDrift, Observed, Plan};
use crate::core::latency::{Cost, Profile};
use crate::core::teardown::Step;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElasticIp;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObsAddress {
    pub allocation_id: String,
    pub logical: Option<String>,
    pub public_ip: String,
    pub association_id: Option<String>,
    /// The instance it is associated with, if any.
    pub instance_id: Option<String>,
}

impl Plan for ElasticIp {
    const NAME: &'static str = "elastic-ip";
    const TAGS: Option<super::TagFamily> = Some(super::TagFamily::Ec2);
    const DELETE_AFTER: &'static [Step] =
        &[Step::Kind(Kind::NatGateway), Step::Kind(Kind::Instances)];
    type Observed = Vec<ObsAddress>;
    type Drift = NoDrift;

    fn diff(&self, id: &str, cx: &Context<'_>) -> Change<NoDrift> {
        match find(cx.obs, id) {
            Some(a) => Change::keep(Some(a.allocation_id.clone())),
            None => Change::create(),
        }
    }

    fn doomed(obs: &Observed) -> Vec<Doomed> {
        obs.addresses
            .iter()
            .map(|a| Doomed::new(Self::NAME, a.logical.as_deref(), &a.allocation_id))
            .collect()
    }

    // AllocateAddress.
    fn cost(&self, p: &Profile) -> Cost {
        Cost::same(p.call)
    }
}

/// The address that stands for node `id`.
pub fn find<'a>(obs: &'a Observed, id: &str) -> Option<&'a ObsAddress> {
    obs.addresses
        .iter()
        .find(|a| a.logical.as_deref() == Some(id))
}
