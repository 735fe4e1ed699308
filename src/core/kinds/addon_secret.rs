//! The add-ons' generated passwords (an SSM SecureString), and the log writer's password alone
//! in a parameter of its own: the only one the nodes may read.

use std::fmt;

use super::{Change, Context, Doomed, Kind, Observed, Plan, Refusal};
use crate::core::latency::{Cost, Profile};
use crate::core::teardown::Step;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddonSecret {
    pub parameter: String,
    /// The log writer's parameter.
    pub writer: String,
}

/// The add-ons' generated passwords.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AddonPasswords {
    pub grafana_admin_password: String,
    pub elastic_password: String,
    pub kibana_system_password: String,
    /// The Elasticsearch user the nodes' Fluent Bit ships logs as (write to its indices only).
    pub fluent_bit_password: String,
}

impl std::fmt::Debug for AddonPasswords {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AddonPasswords(redacted)")
    }
}

/// An SSM parameter found by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObsParameter {
    pub name: String,
    /// Carries our cluster tag.
    pub owned: bool,
}

/// The two parameters, as found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObsAddonSecrets {
    pub passwords: Option<ObsParameter>,
    pub writer: Option<ObsParameter>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drift {
    /// The log writer's parameter is missing.
    Writer,
}

impl fmt::Display for Drift {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Drift::Writer => f.write_str("store the log writer's password apart"),
        }
    }
}

impl Plan for AddonSecret {
    const NAME: &'static str = "addon-secret";
    const TAGS: Option<super::TagFamily> = Some(super::TagFamily::SsmParameter);
    const DELETE_AFTER: &'static [Step] = &[Step::Kind(Kind::Vpc), Step::Kind(Kind::IamRole)];
    type Observed = ObsAddonSecrets;
    type Drift = Drift;

    fn diff(&self, _id: &str, cx: &Context<'_>) -> Change<Drift> {
        let o = &cx.obs.addon_secrets;
        for p in [&o.passwords, &o.writer].into_iter().flatten() {
            if !p.owned {
                return Change::refuse(
                    Some(p.name.clone()),
                    Refusal::NotOurs {
                        what: "SSM parameter",
                        name: p.name.clone(),
                        cluster: cx.spec.name.clone(),
                    },
                );
            }
        }
        match &o.passwords {
            None => Change::create(),
            Some(p) => Change::update(
                &p.name,
                if o.writer.is_none() {
                    vec![Drift::Writer]
                } else {
                    Vec::new()
                },
            ),
        }
    }

    fn doomed(obs: &Observed) -> Vec<Doomed> {
        let o = &obs.addon_secrets;
        [&o.passwords, &o.writer]
            .into_iter()
            .flatten()
            .filter(|p| p.owned)
            .map(|p| Doomed::new(Self::NAME, Some(crate::core::graph::ADDONS_SECRET), &p.name))
            .collect()
    }

    // The add-ons' parameter, then the log writer's.
    fn cost(&self, p: &Profile) -> Cost {
        Cost::same(2.0 * p.call)
    }
}
