//! An instance profile holding one role (the nodes', or the add-on instances').

use std::fmt;

use super::{Change, Context, Doomed, Kind, Observed, Plan, Refusal};
use crate::core::latency::{Cost, Profile};
use crate::core::teardown::Step;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceProfile {
    pub name: String,
    /// The role's node, and its name.
    pub role: String,
    pub role_name: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObsProfile {
    /// The graph node it stands for.
    pub logical: String,
    pub name: String,
    pub arn: String,
    pub roles: Vec<String>,
    /// Carries our cluster tag and no other region's.
    pub owned: bool,
    /// The region its tags name, when it is not ours.
    pub other_region: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Drift {
    AddRole(String),
}

impl fmt::Display for Drift {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Drift::AddRole(r) => write!(f, "add the role {r}"),
        }
    }
}

impl Plan for InstanceProfile {
    const NAME: &'static str = "instance-profile";
    const TAGS: Option<super::TagFamily> = Some(super::TagFamily::InstanceProfile);
    const DELETE_AFTER: &'static [Step] = &[Step::Kind(Kind::Instances)];
    type Observed = Vec<ObsProfile>;
    type Drift = Drift;

    fn diff(&self, id: &str, cx: &Context<'_>) -> Change<Drift> {
        let Some(p) = find(cx.obs, id) else {
            return Change::create();
        };
        if let Some(region) = &p.other_region {
            return Change::refuse(
                Some(p.name.clone()),
                Refusal::OtherRegion {
                    what: "instance profile",
                    name: p.name.clone(),
                    region: region.clone(),
                },
            );
        }
        if !p.owned {
            return Change::refuse(
                Some(p.name.clone()),
                Refusal::NotOurs {
                    what: "instance profile",
                    name: p.name.clone(),
                    cluster: cx.spec.name.clone(),
                },
            );
        }
        let drifts = if p.roles.contains(&self.role_name) {
            Vec::new()
        } else {
            vec![Drift::AddRole(self.role_name.clone())]
        };
        Change::update(&p.name, drifts)
    }

    fn doomed(obs: &Observed) -> Vec<Doomed> {
        obs.profiles
            .iter()
            .filter(|p| p.owned)
            .map(|p| Doomed::new(Self::NAME, Some(&p.logical), &p.name))
            .collect()
    }

    // Create, add the role.
    fn cost(&self, p: &Profile) -> Cost {
        Cost::same(2.0 * p.call)
    }
}

/// The profile that stands for node `id`.
pub fn find<'a>(obs: &'a Observed, id: &str) -> Option<&'a ObsProfile> {
    obs.profiles.iter().find(|p| p.logical == id)
}

impl Observed {
    /// The instance profile that stands for node `id`.
    pub fn profile(&self, id: &str) -> Option<&ObsProfile> {
        find(self, id)
    }
}
