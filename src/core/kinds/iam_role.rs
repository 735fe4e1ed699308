//! An IAM role a service may assume, with AWS managed policies attached.
//!
//! IAM names are global to the account: a role of our name without our tag is someone else's,
//! and is neither adopted nor deleted.

use std::fmt;

use super::{Change, Context, Doomed, Kind, Observed, Plan, Refusal};
use crate::core::latency::{Cost, Profile};
use crate::core::teardown::Step;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IamRole {
    pub name: String,
    /// The service that may assume it (`ec2.amazonaws.com`, ...).
    pub service: &'static str,
    /// AWS managed policies, by their name under `arn:PARTITION:iam::aws:policy/`.
    pub policies: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObsIam {
    /// The graph node this role stands for.
    pub logical: String,
    pub name: String,
    pub arn: String,
    /// Carries our cluster tag and no other region's. An untagged role of the same name is
    /// someone else's.
    pub owned: bool,
    /// The region its tags name, when it is not ours: the same cluster name's in that region.
    pub other_region: Option<String>,
    /// Attached managed policy ARNs, when they were looked up.
    pub policies: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Drift {
    /// A managed policy the role lacks.
    Attach(String),
}

impl fmt::Display for Drift {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Drift::Attach(p) => write!(f, "attach {p}"),
        }
    }
}

impl Plan for IamRole {
    const NAME: &'static str = "iam-role";
    const TAGS: Option<super::TagFamily> = Some(super::TagFamily::IamRole);
    const DELETE_AFTER: &'static [Step] = &[
        Step::Kind(Kind::InstanceProfile),
        Step::Kind(Kind::EksCluster),
        Step::Kind(Kind::Nodegroup),
        Step::Kind(Kind::EksAddons),
    ];
    type Observed = Vec<ObsIam>;
    type Drift = Drift;

    fn diff(&self, id: &str, cx: &Context<'_>) -> Change<Drift> {
        let Some(r) = find(cx.obs, id) else {
            return Change::create();
        };
        if let Some(region) = &r.other_region {
            return Change::refuse(
                Some(r.name.clone()),
                Refusal::OtherRegion {
                    what: "IAM role",
                    name: r.name.clone(),
                    region: region.clone(),
                },
            );
        }
        if !r.owned {
            return Change::refuse(
                Some(r.name.clone()),
                Refusal::NotOurs {
                    what: "IAM role",
                    name: r.name.clone(),
                    cluster: cx.spec.name.clone(),
                },
            );
        }
        let drifts = match &r.policies {
            Some(have) => self
                .policies
                .iter()
                .filter(|p| !have.iter().any(|a| a.ends_with(&format!(":policy/{p}"))))
                .map(|p| Drift::Attach(p.clone()))
                .collect(),
            None => Vec::new(),
        };
        Change::update(&r.name, drifts)
    }

    fn doomed(obs: &Observed) -> Vec<Doomed> {
        obs.roles
            .iter()
            .filter(|r| r.owned)
            .map(|r| Doomed::new(Self::NAME, Some(&r.logical), &r.name))
            .collect()
    }

    // CreateRole, then the policy attachments (in parallel).
    fn cost(&self, p: &Profile) -> Cost {
        Cost::same(if self.policies.is_empty() { 1.0 } else { 2.0 } * p.call)
    }
}

/// The role that stands for node `id`.
pub fn find<'a>(obs: &'a Observed, id: &str) -> Option<&'a ObsIam> {
    obs.roles.iter().find(|r| r.logical == id)
}

/// The ARN of an AWS managed policy in the partition of `role_arn`.
pub fn managed_policy_arn(role_arn: &str, name: &str) -> String {
    let partition = role_arn
        .split(':')
        .nth(1)
        .filter(|p| p.starts_with("aws"))
        .unwrap_or("aws");
    format!("arn:{partition}:iam::aws:policy/{name}")
}

impl Observed {
    /// The role that stands for node `id`.
    pub fn role(&self, id: &str) -> Option<&ObsIam> {
        find(self, id)
    }
}
