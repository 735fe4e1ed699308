//! Rules between two of our security groups (or from ours to the EKS cluster's own group),
//! added once both groups exist: the groups are then created side by side instead of one after
//! the other.

use std::fmt;

use super::security_group::{group_ids, group_rules, missing_rules};
use super::{Action, Change, Context, NoState, Plan};
use crate::core::graph::rules::Rule;
use crate::core::latency::{Cost, Profile};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngressRules {
    /// (the group's node, the rule)
    pub rules: Vec<(String, Rule)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Drift {
    Allow { group: String, rule: Rule },
}

impl fmt::Display for Drift {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Drift::Allow { group, rule } => write!(f, "allow {rule} on {group}"),
        }
    }
}

impl Plan for IngressRules {
    const NAME: &'static str = "ingress-rules";
    // The rules go with their groups.
    type Observed = NoState;
    type Drift = Drift;

    fn diff(&self, _id: &str, cx: &Context<'_>) -> Change<Drift> {
        let groups = group_ids(cx.obs);
        let drifts: Vec<Drift> = self
            .rules
            .iter()
            .filter(|(g, r)| {
                !missing_rules(std::slice::from_ref(r), &group_rules(cx.obs, g), &groups).is_empty()
            })
            .map(|(g, r)| Drift::Allow {
                group: g.clone(),
                rule: r.clone(),
            })
            .collect();
        // None of them yet (a new cluster): a creation, not a change.
        let action = if drifts.is_empty() {
            Action::Keep
        } else if drifts.len() == self.rules.len() {
            Action::Create
        } else {
            Action::Update
        };
        Change {
            action,
            aws_id: None,
            drifts,
            refusal: None,
            warnings: Vec::new(),
        }
    }

    // One AuthorizeSecurityGroupIngress per group, all at once.
    fn cost(&self, p: &Profile) -> Cost {
        Cost::same(p.call)
    }
}
