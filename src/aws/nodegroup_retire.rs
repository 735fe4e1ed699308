//! Deletes the node groups the plan retired (removed from the spec, or replaced blue/green),
//! all at once, each waited for until gone: EKS drains their nodes, honouring
//! PodDisruptionBudgets, onto the groups that are ACTIVE by then.

use super::kind::{Apply, Cx, Scope, Tx};
use super::{AwsError, Clients};
use crate::core::events::Progress;
use crate::core::kinds::nodegroup_retire::{Drift, NodegroupRetire};
use crate::core::kinds::{Action, Change, Inputs, NoState, Output, Plan};

impl Apply for NodegroupRetire {
    async fn observe(_c: &Clients, _scope: &Scope<'_>) -> Result<NoState, AwsError> {
        // EKS reports the node groups with the cluster.
        Ok(NoState)
    }

    async fn apply(
        &self,
        cx: &Cx<'_>,
        id: &str,
        change: &Change<Drift>,
        inputs: &Inputs,
    ) -> Result<Output, AwsError> {
        if change.action != Action::Delete {
            return Ok(Output::Nothing);
        }
        let cluster = inputs.eks(&self.cluster)?.name.clone();
        let groups = change.drifts.iter().filter_map(|d| match d {
            Drift::Delete { name, .. } => Some((d, name)),
            Drift::Template { .. } => None,
        });
        let deletes = groups.map(|(d, name)| {
            let cluster = &cluster;
            async move {
                cx.report.resource(
                    id,
                    Self::NAME,
                    Some(name),
                    Progress::Deleting,
                    Some(d.to_string()),
                );
                super::nodegroup::delete(cx.c, cluster, name, cx.limits.eks).await?;
                cx.report
                    .resource(id, Self::NAME, Some(name), Progress::Deleted, None);
                Ok::<_, AwsError>(())
            }
        });
        futures::future::try_join_all(deletes).await?;
        // A template goes once no group uses it.
        for d in &change.drifts {
            if let Drift::Template { id: template, .. } = d {
                cx.report.resource(
                    id,
                    Self::NAME,
                    Some(template),
                    Progress::Deleting,
                    Some(d.to_string()),
                );
                super::launch_template::delete(cx.c, template).await?;
                cx.report
                    .resource(id, Self::NAME, Some(template), Progress::Deleted, None);
            }
        }
        Ok(Output::Nothing)
    }

    async fn delete(_tx: &Tx<'_>) -> Result<(), AwsError> {
        // `down` deletes every node group with the node group kind.
        Ok(())
    }
}
