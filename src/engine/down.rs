//! `provision down`: find everything tagged with the cluster and delete it, step by step in
//! teardown order (`core::teardown`), each step its kind's `delete`.
//!
//! Needs no spec and no local state: the cluster name and region are enough. DependencyViolation
//! is retried with backoff; when `down` gives up it names the network interfaces that block.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::EngineError;
use super::dag::{self, Outcome};
use super::events::{Event, EventSink, ResourceRecord};
use crate::aws::kind::{Limits, Report, Scope, Tx};
use crate::aws::{self, AwsError, Clients};
use crate::core::kinds::Observed;
use crate::core::teardown::{self, Step};

/// Options of `down`.
#[derive(Debug, Clone)]
pub struct DownOptions {
    pub cluster: String,
    pub concurrency: usize,
    pub instance_timeout: Duration,
    /// How long the node group, and then the cluster, may take to be deleted.
    pub eks_timeout: Duration,
    /// How long to wait for another `up` or `down` of the cluster to finish.
    pub lock_timeout: Duration,
    /// The kubeconfig to take the cluster's entries out of.
    pub kubeconfig: Option<std::path::PathBuf>,
    /// Also delete the EBS volumes the cluster's CSI driver made for claims; keep the etcd
    /// snapshots' bucket.
    pub teardown: crate::core::plan::Teardown,
    /// `gc`: delete only if the cluster's expiry, read again under the lock, is at or before
    /// this time (unix seconds): an `up --ttl` since the survey keeps the cluster.
    pub only_expired_at: Option<i64>,
}

/// What `down` reports.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DownReport {
    pub cluster: String,
    pub region: String,
    pub resources: Vec<ResourceRecord>,
    /// The cluster lock this run held.
    pub lock: Option<super::lock::LockReport>,
    /// The kubeconfig the cluster's entries were taken out of.
    pub kubeconfig: Option<String>,
}

/// Deletes everything the cluster owns.
///
/// # Errors
/// Discovery failures at once; failed steps after every independent step has run, with the
/// resources that remain.
pub async fn down(
    c: Clients,
    opts: &DownOptions,
    events: EventSink,
) -> Result<DownReport, EngineError> {
    // Held from before discovery to after the last deletion: see `engine::lock`. The lock's
    // parameter is the last thing `down` removes.
    let region = c.region.clone();
    // Signals are received from before the lock is taken (see `up`).
    let mut signals = super::signals::listen();
    let lock = tokio::select! {
        l = super::lock::acquire(
            &c,
            &opts.cluster,
            &region,
            "down",
            opts.lock_timeout,
            &events,
        ) => l?,
        signal = signals.recv() => return Err(EngineError::Interrupted { signal, released: true }),
    };
    let result = tokio::select! {
        r = locked(c, opts, events.clone(), lock.lost()) => r,
        signal = signals.recv() => Err(EngineError::Interrupted { signal, released: true }),
    };
    let report = lock.report();
    let released = lock.release(&events).await;
    let mut result = result.map_err(|e| e.after_release(released))?;
    result.lock = Some(report);
    // The cluster's context, cluster and user (for kubeadm a one-year admin key of a CA that
    // is gone) go too, as eksctl's delete does, when this run deleted the cluster (a `down` in
    // the wrong region, which finds nothing, leaves a live cluster's entries alone); a
    // kubeconfig that cannot be changed is said, not a failure of `down`.
    if let Some(path) = opts
        .kubeconfig
        .as_ref()
        .filter(|_| !result.resources.is_empty())
    {
        match super::kubeconfig::forget(path, &opts.cluster) {
            Ok(true) => result.kubeconfig = Some(path.display().to_string()),
            Ok(false) => {}
            Err(e) => events(Event::Warning {
                message: format!("the cluster is gone, but its kubeconfig entries stay: {e}"),
            }),
        }
    }
    Ok(result)
}

/// What every step's task shares.
struct Run {
    c: Clients,
    cluster: String,
    obs: Observed,
    report: Report,
    limits: Limits,
}

impl Run {
    fn tx(&self) -> Tx<'_> {
        Tx {
            c: &self.c,
            cluster: &self.cluster,
            obs: &self.obs,
            report: &self.report,
            limits: &self.limits,
        }
    }
}

async fn locked(
    c: Clients,
    opts: &DownOptions,
    events: EventSink,
    lost: Arc<AtomicBool>,
) -> Result<DownReport, EngineError> {
    let report = Report::new(events.clone(), Instant::now());
    report.phase("discover");
    let region = c.region.clone();
    let obs = aws::discover::observe(&c, &Scope::down(&opts.cluster, &region)).await?;
    for w in &obs.warnings {
        report.warning(w.clone());
    }
    if let Some(now) = opts.only_expired_at {
        let expires_at = crate::core::plan::expiry::latest(&obs);
        if !crate::core::stamp::expired(expires_at, now) {
            return Err(EngineError::NotExpired {
                cluster: opts.cluster.clone(),
                expires_at,
            });
        }
    }
    for row in crate::core::plan::kept(&obs, &opts.cluster, &region, opts.teardown) {
        for w in row.warnings {
            report.warning(w);
        }
    }
    let doomed = crate::core::plan::destroy(&obs, opts.teardown);
    // The second sweep of what Kubernetes made runs whenever there was an EKS cluster.
    let eks = obs.eks.as_ref().is_some_and(|e| e.owned);
    let steps: Vec<(Step, Vec<Step>)> = teardown::order()
        .into_iter()
        .filter(|(s, _)| doomed.iter().any(|(t, _)| t == s) || (eks && *s == Step::Interfaces))
        .collect();
    let run = Arc::new(Run {
        c,
        cluster: opts.cluster.clone(),
        obs,
        report,
        limits: Limits {
            instances: opts.instance_timeout,
            eks: opts.eks_timeout,
            api_server: None,
            drain: opts.instance_timeout,
            nodes: opts.instance_timeout,
        },
    });
    run.report.phase("delete");
    let total = steps.len();
    let results = dag::execute(steps, opts.concurrency, |step: Step, _| {
        let run = run.clone();
        let lost = lost.clone();
        async move {
            if lost.load(Ordering::SeqCst) {
                return Err(super::lock::lost(&run.cluster));
            }
            run_step(&run, step).await
        }
    })
    .await;
    let failures: Vec<String> = results
        .iter()
        .filter_map(|(s, o)| match o {
            Outcome::Done(_) => None,
            Outcome::Failed(e) => Some(format!("  {s}: {e}")),
            Outcome::Skipped(dep) => Some(format!("  {s}: not started because {dep} failed")),
        })
        .collect();
    let records = run.report.records();
    if !failures.is_empty() {
        let deleted: std::collections::HashSet<&str> =
            records.iter().map(|r| r.aws_id.as_str()).collect();
        let remaining: Vec<String> = doomed
            .iter()
            .filter(|(_, d)| !deleted.contains(d.aws_id.as_str()))
            .map(|(_, d)| format!("{} {}", d.kind, d.aws_id))
            .collect();
        return Err(EngineError::Steps {
            failed: failures.len(),
            total,
            details: format!(
                "{}\nstill there: {}\nre-run `provision down --name {} --region {region}` once the blocker is gone",
                failures.join("\n"),
                remaining.join(", "),
                opts.cluster
            ),
            remaining,
        });
    }
    Ok(DownReport {
        cluster: opts.cluster.clone(),
        region,
        resources: records,
        lock: None,
        kubeconfig: None,
    })
}

async fn run_step(run: &Run, step: Step) -> Result<(), AwsError> {
    let tx = run.tx();
    match step {
        Step::Kubernetes => {
            // Interfaces go in the second sweep, after the nodes and the cluster.
            let mut first = run.obs.leftovers.clone();
            first.interfaces.clear();
            aws::leftovers::sweep(&tx, &first).await
        }
        Step::Interfaces => {
            // A second look, now that the nodes and the cluster are gone: controllers may have
            // made load balancers after the discovery, and the VPC CNI's interfaces become
            // `available` as the nodes terminate.
            let vpcs: Vec<String> = run.obs.vpcs.iter().map(|v| v.id.clone()).collect();
            let subnets: Vec<String> = run.obs.subnets.iter().map(|s| s.id.clone()).collect();
            match aws::leftovers::find(&run.c, &run.cluster, &vpcs, &subnets).await {
                Ok(again) => aws::leftovers::sweep(&tx, &again).await,
                Err(e) if e.code().is_access_denied() => {
                    run.report.warning(format!(
                        "could not look again for what Kubernetes made in the VPC ({e}); if anything is left, the VPC's deletion will name it"
                    ));
                    Ok(())
                }
                Err(e) => Err(e),
            }
        }
        Step::Volumes => aws::volumes::delete(&tx, &run.obs.leftovers.volumes).await,
        Step::Kind(k) => super::registry::delete(k, &tx).await,
    }
}
