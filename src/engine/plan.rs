//! `provision plan`: the same discovery and plan `up` uses, and no mutating call.

use super::EngineError;
use crate::aws::kind::Scope;
use crate::aws::{self, Clients};
use crate::core::access::Access;
use crate::core::graph;
use crate::core::kinds::{Observed, Row};
use crate::core::observed::ApiReach;
use crate::core::plan::Plan;
use crate::core::spec::ClusterSpec;

/// What `up` would do, and warnings about what could not be looked up.
///
/// # Errors
/// When discovery fails.
pub async fn plan_up(
    c: &Clients,
    spec: &ClusterSpec,
    api_server: Option<&str>,
) -> Result<(Vec<Row>, Vec<String>), EngineError> {
    let graph = graph::build(spec);
    let mut obs = aws::discover::observe(c, &Scope::up(spec, &graph)).await?;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let plan = decide(spec, &graph, &mut obs, now, api_server).await;
    Ok((plan.rows(), obs.warnings))
}

/// The plan `up` executes and `plan` prints. When it drains nodes, whether the API server
/// answers is asked first (one request) and the plan made again knowing it: rows that would
/// drain through an API server that does not answer refuse, before anything changes.
pub(crate) async fn decide(
    spec: &ClusterSpec,
    graph: &graph::Graph,
    obs: &mut Observed,
    now: i64,
    api_server: Option<&str>,
) -> Plan {
    let plan = crate::core::plan::plan(spec, graph, obs, now);
    if !plan.drains() {
        return plan;
    }
    obs.api = Some(reach(&spec.name, obs, api_server).await);
    crate::core::plan::plan(spec, graph, obs, now)
}

async fn reach(cluster: &str, obs: &Observed, api_server: Option<&str>) -> ApiReach {
    let access = match crate::core::access::access(cluster, obs) {
        Ok(Access::Kubeadm { server, ca }) => (server, ca),
        Ok(Access::Eks { server, .. }) => {
            return ApiReach::Unreachable {
                server,
                why: "not a kubeadm cluster".into(),
            };
        }
        Err(why) => {
            return ApiReach::Unreachable {
                server: api_server.unwrap_or("the control plane").to_string(),
                why,
            };
        }
    };
    let server = api_server.map_or(access.0, str::to_string);
    match crate::kube::probe::reachable(&server, &access.1).await {
        Ok(()) => ApiReach::Reachable { server },
        Err(why) => ApiReach::Unreachable { server, why },
    }
}

/// What `down` would delete, in teardown order, and warnings about what could not be looked up.
///
/// # Errors
/// When discovery fails.
pub async fn plan_down(c: &Clients, cluster: &str) -> Result<(Vec<Row>, Vec<String>), EngineError> {
    let obs = aws::discover::observe(c, &Scope::down(cluster, &c.region)).await?;
    let mut rows: Vec<Row> = crate::core::plan::destroy(&obs, Default::default())
        .into_iter()
        .map(|(_, d)| d.row())
        .collect();
    // What `down` leaves, with the warnings it prints.
    rows.extend(crate::core::plan::kept(
        &obs,
        cluster,
        &c.region,
        Default::default(),
    ));
    Ok((rows, obs.warnings))
}
