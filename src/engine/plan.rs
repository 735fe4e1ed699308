//! `provision plan`: the same discovery and diff `up` uses, and no mutating call.

use super::EngineError;
use crate::aws::{self, Clients};
use crate::core::graph;
use crate::core::plan::{self, PlanItem};
use crate::core::spec::ClusterSpec;

/// What `up` would do.
///
/// # Errors
/// When discovery fails.
pub async fn plan_up(c: &Clients, spec: &ClusterSpec) -> Result<Vec<PlanItem>, EngineError> {
    let obs = aws::discover::observe(
        c,
        &aws::discover::Scope {
            cluster: &spec.name,
            vpc_attributes: true,
            kind: Some(spec.kind()),
            leftovers: false,
            addons: spec.addons.any(),
        },
    )
    .await?;
    // `up` removes empty duplicate VPCs before anything else; say so, and diff without them.
    let spare = plan::spare_vpcs(&obs);
    let mut obs = obs;
    obs.vpcs.retain(|v| !spare.contains(&v.id));
    let mut items = plan::diff(&graph::build(spec), &obs);
    for id in spare {
        items.insert(
            0,
            PlanItem {
                id: graph::VPC.into(),
                kind: graph::Kind::Vpc,
                action: plan::Action::Delete,
                aws_id: Some(id),
                changes: vec!["an empty duplicate of the cluster's VPC".into()],
            },
        );
    }
    Ok(items)
}

/// What `down` would delete, in teardown order, and warnings about what could not be looked up.
///
/// # Errors
/// When discovery fails.
pub async fn plan_down(
    c: &Clients,
    cluster: &str,
) -> Result<(Vec<PlanItem>, Vec<String>), EngineError> {
    let obs = aws::discover::observe(
        c,
        &aws::discover::Scope {
            cluster,
            vpc_attributes: false,
            kind: None,
            leftovers: true,
            addons: true,
        },
    )
    .await?;
    let order: Vec<graph::TeardownStep> = graph::teardown_order()
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    let mut items = plan::destroy_items(&obs);
    items.sort_by_key(|(s, _)| order.iter().position(|o| o == s));
    Ok((items.into_iter().map(|(_, i)| i).collect(), obs.warnings))
}
