//! `provision status`: one discovery, then at once the lock, the instances' status checks, the
//! nodes' boot reports and (when the API server answers within its time) the nodes Ready;
//! `core::status` decides what is healthy. Changes nothing and takes no lock.

use std::collections::BTreeMap;
use std::time::Duration;

use super::EngineError;
use crate::aws::{self, Clients};
use crate::core::access::Access;
use crate::core::kinds::{Action, Observed};
use crate::core::spec::ClusterSpec;
use crate::core::status::{Seen, Status};
use crate::kube::probe::{self, ApiClient};

/// How long the API server gets to list its nodes.
pub const API_TIMEOUT: Duration = Duration::from_secs(10);

/// The status of `cluster` in the clients' region. With `spec`, what `up` would create is
/// missing; with `api_server`, the API is asked there (a tunnel) instead of at its endpoint.
///
/// # Errors
/// When discovery fails.
pub async fn status(
    c: &Clients,
    cluster: &str,
    spec: Option<&ClusterSpec>,
    api_server: Option<&str>,
) -> Result<Status, EngineError> {
    let obs = super::inspect::observe(c, cluster).await?;
    let live: Vec<String> = obs
        .instances
        .iter()
        .filter(|i| i.is_live())
        .map(|i| i.id.clone())
        .collect();
    let nodes: BTreeMap<String, String> = obs
        .instances
        .iter()
        .filter(|i| i.is_live())
        .filter_map(|i| Some((i.id.clone(), i.logical.clone()?)))
        .collect();
    let kubeadm = obs.eks.as_ref().is_none_or(|e| !e.owned);
    let (lock, checks, reports, api) = tokio::join!(
        lock_holder(c, cluster),
        aws::instance_waits::status_checks(c, &live),
        async {
            if kubeadm && !nodes.is_empty() {
                aws::node_reports::read(c, cluster).await
            } else {
                Ok(Vec::new())
            }
        },
        api_nodes(c, cluster, &obs, api_server),
    );
    let checks = checks?;
    let reports = crate::core::progress::of_instances(reports?, &nodes);
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let missing = spec.map(|s| missing(s, &obs, now)).unwrap_or_default();
    Ok(crate::core::status::status(&Seen {
        cluster,
        region: &c.region,
        obs: &obs,
        checks: &checks,
        reports: &reports,
        lock: lock?,
        api,
        missing,
        now,
    }))
}

/// What `up` would create: the plan's create rows, and the workers its pools would launch.
fn missing(spec: &ClusterSpec, obs: &Observed, now: i64) -> Vec<String> {
    use crate::core::kinds::{Item, Plan as _, worker_pool::Drift, worker_pool::WorkerPool};
    let graph = crate::core::graph::build(spec);
    let plan = crate::core::plan::plan(spec, &graph, obs, now);
    let mut out: Vec<String> = plan
        .rows()
        .into_iter()
        .filter(|r| r.action == Action::Create && r.kind != WorkerPool::NAME)
        .map(|r| format!("{} {}", r.kind, r.id))
        .collect();
    for n in &plan.nodes {
        if let Item::WorkerPool(_, change) = &n.item {
            out.extend(change.drifts.iter().filter_map(|d| match d {
                Drift::Launch { logical, count, .. } => {
                    Some(format!("instance {logical} ({count} to launch)"))
                }
                _ => None,
            }));
        }
    }
    out
}

async fn lock_holder(c: &Clients, cluster: &str) -> Result<Option<String>, EngineError> {
    let name = aws::lock::parameter_name(cluster);
    Ok(aws::lock::read(c, &name).await?.map(|v| {
        serde_json::from_str::<crate::core::lock::Holder>(&v).map_or_else(
            |_| format!("{name} (not a provision lock)"),
            |h| h.describe(),
        )
    }))
}

/// The API server's nodes, when the cluster has an API to ask; `None` when it has none yet.
async fn api_nodes(
    c: &Clients,
    cluster: &str,
    obs: &Observed,
    api_server: Option<&str>,
) -> Option<Result<Vec<(String, bool)>, String>> {
    let access = crate::core::access::access(cluster, obs).ok()?;
    let server = api_server.unwrap_or(access.server()).to_string();
    let client = match &access {
        Access::Kubeadm { ca, .. } => ApiClient::kubeadm(ca),
        Access::Eks {
            server: endpoint,
            ca_base64,
        } => {
            let pem = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, ca_base64)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .unwrap_or_default();
            let host = endpoint
                .trim_start_matches("https://")
                .split(['/', ':'])
                .next()
                .map(str::to_string);
            let name = api_server.and(host);
            ApiClient::eks(&pem, name.as_deref(), cluster, &c.region).await
        }
    };
    let client = match client {
        Ok(cl) => cl,
        Err(e) => return Some(Err(e)),
    };
    Some(
        tokio::time::timeout(API_TIMEOUT, probe::nodes(&server, &client))
            .await
            .unwrap_or_else(|_| {
                Err(format!(
                    "{server} did not answer within {} s (closed to this host? give --api-server through a tunnel)",
                    API_TIMEOUT.as_secs()
                ))
            }),
    )
}
