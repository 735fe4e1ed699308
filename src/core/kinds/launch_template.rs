//! The EKS node group's launch template: IMDSv2 required, an encrypted gp3 root volume, and
//! the nodes' agents for the add-ons. No instance tags: the nodes belong to the node group.

use super::{Change, Context, Doomed, Kind, NoDrift, Observed, Plan};
use crate::core::latency::{Cost, Profile};
use crate::core::teardown::Step;
use crate::core::userdata::NodeAgentsDoc;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchTemplate {
    pub name: String,
    pub disk_gb: u32,
    pub agents: NodeAgentsDoc,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObsTemplate {
    pub id: String,
    pub logical: Option<String>,
    pub name: String,
}

impl Plan for LaunchTemplate {
    const NAME: &'static str = "launch-template";
    const TAGS: Option<super::TagFamily> = Some(super::TagFamily::Ec2);
    const DELETE_AFTER: &'static [Step] = &[Step::Kind(Kind::Nodegroup)];
    type Observed = Vec<ObsTemplate>;
    type Drift = NoDrift;

    fn diff(&self, id: &str, cx: &Context<'_>) -> Change<NoDrift> {
        match cx
            .obs
            .launch_templates
            .iter()
            .find(|t| t.logical.as_deref() == Some(id))
        {
            Some(t) => Change::keep(Some(t.id.clone())),
            None => Change::create(),
        }
    }

    fn doomed(obs: &Observed) -> Vec<Doomed> {
        obs.launch_templates
            .iter()
            .map(|t| Doomed::new(Self::NAME, t.logical.as_deref(), &t.id))
            .collect()
    }

    fn cost(&self, p: &Profile) -> Cost {
        Cost::same(p.call)
    }
}
