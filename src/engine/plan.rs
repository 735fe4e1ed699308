//! `provision plan`: the same discovery and plan `up` uses, and no mutating call.

use super::EngineError;
use crate::aws::kind::Scope;
use crate::aws::{self, Clients};
use crate::core::graph;
use crate::core::kinds::Row;
use crate::core::spec::ClusterSpec;

/// What `up` would do, and warnings about what could not be looked up.
///
/// # Errors
/// When discovery fails.
pub async fn plan_up(
    c: &Clients,
    spec: &ClusterSpec,
) -> Result<(Vec<Row>, Vec<String>), EngineError> {
    let graph = graph::build(spec);
    let obs = aws::discover::observe(c, &Scope::up(spec, &graph)).await?;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let plan = crate::core::plan::plan(spec, &graph, &obs, now);
    Ok((plan.rows(), obs.warnings))
}

/// What `down` would delete, in teardown order, and warnings about what could not be looked up.
///
/// # Errors
/// When discovery fails.
pub async fn plan_down(c: &Clients, cluster: &str) -> Result<(Vec<Row>, Vec<String>), EngineError> {
    let obs = aws::discover::observe(c, &Scope::down(cluster, &c.region)).await?;
    let mut rows: Vec<Row> = crate::core::plan::destroy(&obs, false)
        .into_iter()
        .map(|(_, d)| d.row())
        .collect();
    // What `down` leaves, with the warnings it prints.
    rows.extend(crate::core::plan::kept(&obs, cluster, &c.region, false));
    Ok((rows, obs.warnings))
}
