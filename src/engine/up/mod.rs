//! `provision up`: take the lock, discover what exists, plan, and execute the plan: refuse
//! before any change if it refuses, else run its nodes concurrently where dependencies allow,
//! each with the outputs of its dependencies; then wait for the instances and the cluster and
//! write the kubeconfig (`finish`).
//!
//! Resume after a crash needs no local state: every resource is tagged at creation, so the
//! discovery at the start finds what an earlier run made, and the plan continues from there.

mod finish;

use crate::core::events::Progress;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::EngineError;
use super::dag::{self, Outcome};
use super::events::{EventSink, ResourceRecord};
use crate::aws::kind::{Cx, Limits, Report, Scope};
use crate::aws::{self, AwsError, Clients};
use crate::core::graph;
use crate::core::kinds::{Inputs, Observed, Output, Row};
use crate::core::plan::{Loose, Plan};
use crate::core::spec::ClusterSpec;

/// How far `up` waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub enum WaitFor {
    /// Instances are running (public IP known).
    Running,
    /// Instances also pass their EC2 status checks.
    Status,
    /// The API server answers /readyz and every node is Ready.
    Cluster,
}

/// Options of `up`.
#[derive(Debug, Clone)]
pub struct UpOptions {
    pub wait: WaitFor,
    pub concurrency: usize,
    /// Where to merge the kubeconfig; `None` skips writing it.
    pub kubeconfig: Option<std::path::PathBuf>,
    pub instance_timeout: Duration,
    pub cluster_timeout: Duration,
    /// How long an EKS cluster, and then its node group, may take to become ACTIVE.
    pub eks_timeout: Duration,
    /// Reach the API server through this URL (a tunnel or VPN) instead of the master's public
    /// address, for `--wait cluster` and for minting join tokens.
    pub api_server: Option<String>,
    /// How long to wait for another `up` or `down` of the cluster to finish.
    pub lock_timeout: Duration,
    /// How long a node's pods may take to leave it (PodDisruptionBudgets allowing).
    pub drain_timeout: Duration,
}

/// What `up` reports at the end.
#[derive(Debug, Clone, serde::Serialize)]
pub struct UpReport {
    pub cluster: String,
    pub kind: String,
    pub region: String,
    pub master_public_ip: Option<String>,
    pub master_private_ip: Option<String>,
    pub api_endpoint: Option<String>,
    pub kubeconfig: Option<String>,
    pub kubeconfig_context: Option<String>,
    /// The add-on instances and where to reach them.
    pub addons: Vec<AddonReport>,
    /// Where the add-ons' passwords are (never printed).
    pub addon_secret: Option<String>,
    pub resources: Vec<ResourceRecord>,
    /// The plan this run executed: the same rows `plan` prints for the same state.
    pub plan: Vec<Row>,
    /// The cluster lock this run held.
    pub lock: Option<super::lock::LockReport>,
    /// When `provision gc` may delete the cluster (`provision:expires-at`).
    pub expires_at: Option<String>,
}

/// One add-on instance in the summary.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AddonReport {
    pub name: String,
    pub instance_id: String,
    pub public_ip: Option<String>,
    pub private_ip: Option<String>,
    /// What -> URL (UIs on the public address, ingest endpoints on the private one).
    pub urls: std::collections::BTreeMap<String, String>,
}

/// Runs `up` for a validated spec.
///
/// # Errors
/// Discovery failures and refusals before any change; node failures after every independent
/// node has run.
pub async fn up(
    c: Clients,
    spec: ClusterSpec,
    opts: &UpOptions,
    events: EventSink,
) -> Result<UpReport, EngineError> {
    // Signals are received from before the lock is taken: none ends the run while it holds the
    // lock without releasing it.
    let mut signals = super::signals::listen();
    // Held from before discovery to after the last change: see `engine::lock`. Who we are is
    // asked at the same time (one round trip fewer before anything else can start) and said
    // before any change is made.
    let who = tokio::spawn({
        let c = c.clone();
        async move { aws::whoami(&c).await.cloned() }
    });
    // The images depend on nothing the lock or discovery finds: looked up beside them.
    aws::image::prefetch(&c, &graph::build(&spec));
    let acquire = super::lock::acquire(
        &c,
        &spec.name,
        &spec.region,
        "up",
        opts.lock_timeout,
        &events,
    );
    let lock = tokio::select! {
        l = acquire => l,
        signal = signals.recv() => Err(EngineError::Interrupted { signal, released: true }),
    };
    let lock = match lock {
        Ok(l) => l,
        Err(e) => {
            who.abort();
            return Err(e);
        }
    };
    let who = tokio::select! {
        w = who => w.unwrap_or_else(|e| Err(aws::AwsError::internal(e))).map_err(EngineError::from),
        signal = signals.recv() => Err(EngineError::Interrupted { signal, released: true }),
    };
    let caller = match who {
        Ok((account, arn)) => {
            events(crate::core::events::Event::Phase {
                phase: format!("account {account} ({arn}), region {}", spec.region),
            });
            arn
        }
        Err(e) => {
            let released = lock.release(&events).await;
            return Err(e.after_release(released));
        }
    };
    let result = tokio::select! {
        r = locked(c, spec, caller, opts, events.clone(), lock.lost()) => r,
        signal = signals.recv() => Err(EngineError::Interrupted { signal, released: true }),
    };
    let report = lock.report();
    let released = lock.release(&events).await;
    result
        .map_err(|e| e.after_release(released))
        .map(|r| UpReport {
            lock: Some(report),
            ..r
        })
}

/// What every node's task shares.
pub(crate) struct Run {
    pub c: Clients,
    pub spec: ClusterSpec,
    pub obs: Observed,
    pub plan: Plan,
    pub report: Report,
    pub limits: Limits,
    pub stamp: crate::core::stamp::RunStamp,
}

impl Run {
    fn cx(&self) -> Cx<'_> {
        Cx {
            c: &self.c,
            spec: &self.spec,
            obs: &self.obs,
            report: &self.report,
            limits: &self.limits,
            stamp: &self.stamp,
        }
    }
}

async fn locked(
    c: Clients,
    spec: ClusterSpec,
    caller: String,
    opts: &UpOptions,
    events: EventSink,
    lost: Arc<AtomicBool>,
) -> Result<UpReport, EngineError> {
    let report = Report::new(events, Instant::now());
    report.phase("discover");
    let graph = graph::build(&spec);
    let mut obs = aws::discover::observe(&c, &Scope::up(&spec, &graph)).await?;
    for w in &obs.warnings {
        report.warning(w.clone());
    }
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let plan =
        crate::engine::plan::decide(&spec, &graph, &mut obs, now, opts.api_server.as_deref()).await;
    let rows = plan.rows();
    if plan.refused() {
        return Err(EngineError::Refused { rows });
    }
    for r in &rows {
        for w in &r.warnings {
            report.warning(format!("{}: {w}", r.id));
        }
    }
    for l in &plan.loose {
        if let Loose::SpareVpc { id } = l {
            report.warning(format!(
                "removing {id}: an empty duplicate VPC of this cluster (from an interrupted or concurrent run)"
            ));
            aws::vpc::delete(&c, id).await?;
        }
    }
    let stamp = crate::core::stamp::RunStamp {
        by: caller,
        at: now,
        expires_at: plan.expires_at,
    };
    let run = Arc::new(Run {
        c,
        spec,
        obs,
        plan,
        stamp,
        report,
        limits: Limits {
            instances: opts.instance_timeout,
            eks: opts.eks_timeout,
            api_server: opts.api_server.clone(),
            drain: opts.drain_timeout,
            nodes: opts.cluster_timeout,
        },
    });
    run.report.phase("apply");
    // Before the nodes: it touches only what exists, and an `up --ttl` whose nodes fail still
    // moves the expiry (what it asked for).
    if let Some(r) = &run.plan.retag {
        aws::retag::retag(&run.c, r).await?;
        let row = r.row();
        run.report.resource(
            &row.id,
            row.kind,
            None,
            Progress::Updated,
            row.changes.first().cloned(),
        );
    }
    let outputs = execute(&run, opts.concurrency, lost).await?;
    let mut up = finish::finish(&run, opts, &outputs).await?;
    up.plan = rows;
    Ok(up)
}

/// Runs the plan's nodes; every node's output, by id, once all have run.
async fn execute(
    run: &Arc<Run>,
    concurrency: usize,
    lost: Arc<AtomicBool>,
) -> Result<HashMap<String, Arc<Output>>, EngineError> {
    let nodes: Vec<(String, Vec<String>)> = run
        .plan
        .nodes
        .iter()
        .map(|n| (n.id.clone(), n.deps.clone()))
        .collect();
    let total = nodes.len();
    let results = dag::execute(nodes, concurrency, |id: String, inputs| {
        let run = run.clone();
        let lost = lost.clone();
        async move {
            if lost.load(Ordering::SeqCst) {
                return Err(super::lock::lost(&run.spec.name));
            }
            let node = run
                .plan
                .nodes
                .iter()
                .find(|n| n.id == id)
                .ok_or_else(|| AwsError::internal(format!("no planned node {id}")))?;
            super::registry::apply(&node.item, &run.cx(), &id, &Inputs::new(inputs)).await
        }
    })
    .await;
    let mut failures = Vec::new();
    let mut outputs = HashMap::new();
    for (id, o) in results {
        match o {
            Outcome::Done(out) => {
                outputs.insert(id, out);
            }
            Outcome::Failed(e) => {
                let kind = run
                    .plan
                    .nodes
                    .iter()
                    .find(|n| n.id == id)
                    .map_or("node", |n| n.item.kind().as_str());
                run.report
                    .resource(&id, kind, None, Progress::Failed, Some(e.to_string()));
                failures.push(format!("  {id}: {e}"));
            }
            Outcome::Skipped(dep) => {
                failures.push(format!("  {id}: not started because {dep} failed"))
            }
        }
    }
    if failures.is_empty() {
        return Ok(outputs);
    }
    Err(EngineError::Steps {
        failed: failures.len(),
        total,
        details: failures.join("\n")
            + &format!(
                "\nwhat was created is tagged provision:cluster={}: re-run `provision up` to resume, or `provision down` to remove it",
                run.spec.name
            ),
        remaining: Vec::new(),
    })
}
