//! Rules between our security groups (and the EKS cluster's), added once the groups exist.

use super::kind::{Apply, Cx, Scope, Tx};
use super::security_group::authorize;
use super::{AwsError, Clients};
use crate::core::events::Progress;
use crate::core::graph::rules::Rule;
use crate::core::kinds::ingress_rules::{Drift, IngressRules};
use crate::core::kinds::{Action, Change, Inputs, NoState, Output, Plan};

impl Apply for IngressRules {
    async fn observe(_c: &Clients, _scope: &Scope<'_>) -> Result<NoState, AwsError> {
        Ok(NoState)
    }

    async fn apply(
        &self,
        cx: &Cx<'_>,
        id: &str,
        change: &Change<Drift>,
        inputs: &Inputs,
    ) -> Result<Output, AwsError> {
        let groups = inputs.groups();
        let mut targets: Vec<&String> = change
            .drifts
            .iter()
            .map(|Drift::Allow { group, .. }| group)
            .collect();
        targets.sort_unstable();
        targets.dedup();
        let mut work: Vec<(String, Vec<&Rule>)> = Vec::new();
        for target in targets {
            let Some(group) = groups.get(target) else {
                cx.report.resource(
                    id,
                    Self::NAME,
                    None,
                    Progress::Skipped,
                    Some(format!(
                        "{target} does not exist (the cluster reports no security group)"
                    )),
                );
                continue;
            };
            let rules = change
                .drifts
                .iter()
                .filter_map(|Drift::Allow { group, rule }| (group == target).then_some(rule))
                .collect();
            work.push((group.clone(), rules));
        }
        // One AuthorizeSecurityGroupIngress per group, all at once.
        let added: usize = work.iter().map(|(_, m)| m.len()).sum();
        futures::future::try_join_all(
            work.iter()
                .map(|(group, rules)| authorize(cx.c, group, rules, &groups)),
        )
        .await?;
        let action = match change.action {
            Action::Create => Progress::Created,
            _ if added > 0 => Progress::Updated,
            _ => Progress::Existing,
        };
        cx.report.resource(
            id,
            Self::NAME,
            Some(id),
            action,
            (added > 0).then(|| format!("{added} ingress rule(s)")),
        );
        Ok(Output::Nothing)
    }

    async fn delete(_tx: &Tx<'_>) -> Result<(), AwsError> {
        // The rules go with their groups.
        Ok(())
    }
}
