//! `provision up`: discover what exists, then create or repair every node of the graph,
//! concurrently where dependencies allow; wait for the instances; write the kubeconfig.
//!
//! Resume after a crash needs no local state: every resource is tagged at creation, so the
//! discovery at the start finds what an earlier run made, and the graph continues from there.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::EngineError;
use super::dag::{self, Outcome};
use super::events::{Event, EventSink, ResourceRecord, ms_since};
use crate::aws::lookup::Image;
use crate::aws::secret::Bootstrap;
use crate::aws::{self, AwsError, Clients};
use crate::core::cloudinit;
use crate::core::graph::{self, Desired, Graph, Kind};
use crate::core::pki::{self, Ca};
use crate::core::plan::{self, ObsInstance, Observed};
use crate::core::spec::ClusterSpec;
use crate::core::tags;

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
    /// The cluster lock this run held.
    pub lock: Option<super::lock::LockReport>,
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

/// The add-on instances among `running` (waited for), with their URLs.
fn addon_reports(ctx: &Ctx, running: &HashMap<String, ObsInstance>) -> Vec<AddonReport> {
    let o = ctx.out();
    ctx.spec
        .addons
        .enabled()
        .filter_map(|(a, _)| {
            let (_, i) = o.instances.iter().find(|(l, _)| l == a.as_str())?;
            let i = running.get(&i.id).unwrap_or(i);
            Some(AddonReport {
                name: a.as_str().into(),
                instance_id: i.id.clone(),
                public_ip: i.public_ip.clone(),
                private_ip: i.private_ip.clone(),
                urls: crate::core::addons::urls(a, i.public_ip.as_deref(), i.private_ip.as_deref())
                    .into_iter()
                    .collect(),
            })
        })
        .collect()
}

/// Waits (one batched wait) for the instances this run launched or found not running: until
/// they run, or with `status` until every instance has passed its status checks (polled
/// directly: an instance that is not running yet has not passed them). Then describes the
/// control plane and the add-ons, whose addresses are reported (the workers' are not).
async fn wait_instances(
    ctx: &Ctx,
    events: &EventSink,
    start: Instant,
    timeout: Duration,
    status: bool,
) -> Result<HashMap<String, ObsInstance>, EngineError> {
    let waiting: Vec<String> = ctx
        .out()
        .instances
        .iter()
        .filter(|(_, i)| i.state != "running" || i.public_ip.is_none())
        .map(|(_, i)| i.id.clone())
        .collect();
    let mut running: HashMap<String, ObsInstance> = ctx
        .out()
        .instances
        .iter()
        .map(|(_, i)| (i.id.clone(), i.clone()))
        .collect();
    let details: Vec<String> = ctx
        .out()
        .instances
        .iter()
        .filter(|(logical, i)| {
            waiting.contains(&i.id)
                && ctx.graph.get(logical).is_some_and(|n| {
                    matches!(
                        n.desired,
                        graph::Desired::Master { .. } | graph::Desired::AddonInstance { .. }
                    )
                })
        })
        .map(|(_, i)| i.id.clone())
        .collect();
    let described = if status {
        let all: Vec<String> = running.keys().cloned().collect();
        events(Event::Waiting {
            what: format!("{} instance(s) to run and pass status checks", all.len()),
            elapsed_ms: ms_since(start),
        });
        aws::instance::wait_status_ok(&ctx.c, &all, timeout).await?;
        aws::instance::describe(&ctx.c, &details).await?
    } else if waiting.is_empty() {
        Vec::new()
    } else {
        events(Event::Waiting {
            what: format!("{} instance(s) to run", waiting.len()),
            elapsed_ms: ms_since(start),
        });
        aws::instance::wait_running(&ctx.c, &waiting, &details, timeout).await?
    };
    for i in described {
        running.insert(i.id.clone(), i);
    }
    Ok(running)
}

struct Ctx {
    c: Clients,
    spec: ClusterSpec,
    graph: Graph,
    obs: Observed,
    events: EventSink,
    start: Instant,
    out: Mutex<Outputs>,
    api_server: Option<String>,
    eks_timeout: Duration,
}

#[derive(Default)]
struct Outputs {
    ids: HashMap<String, String>,
    azs: Vec<String>,
    bootstrap: Option<Bootstrap>,
    /// The node role's ARN (its partition and account scope the CA access policy).
    role_arn: Option<String>,
    /// Role ARNs by logical id.
    arns: HashMap<String, String>,
    /// The EKS cluster once it is ACTIVE.
    eks: Option<aws::eks::EksCluster>,
    /// This run created the EKS cluster (so it has no add-ons yet).
    eks_created: bool,
    /// The images looked up, by the logical id of their lookup node.
    images: HashMap<String, Image>,
    /// The token new workers join with (see the `join-token` node).
    join_token: Option<String>,
    master: Option<ObsInstance>,
    /// Instances launched by this run or found pending/running: waited for together.
    instances: Vec<(String, ObsInstance)>,
    records: Vec<ResourceRecord>,
}

impl Ctx {
    fn out(&self) -> std::sync::MutexGuard<'_, Outputs> {
        self.out
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn id(&self, logical: &str) -> Result<String, AwsError> {
        self.out().ids.get(logical).cloned().ok_or_else(|| {
            AwsError::unexpected(
                "looking up",
                logical,
                "no id recorded: internal error, please file a bug",
            )
        })
    }

    fn tags(&self, logical: &str, k8s: bool) -> Vec<(String, String)> {
        tags::tags_for(&self.spec.name, logical, k8s, &self.spec.tags)
    }

    fn emit(
        &self,
        id: &str,
        kind: Kind,
        aws_id: Option<&str>,
        action: &str,
        detail: Option<String>,
    ) {
        (self.events)(Event::Resource {
            id: id.to_string(),
            kind: kind.as_str().to_string(),
            aws_id: aws_id.map(str::to_string),
            action: action.to_string(),
            elapsed_ms: ms_since(self.start),
            detail,
        });
    }

    /// Records the final state of a node (and its AWS id for dependents).
    fn done(&self, id: &str, kind: Kind, aws_id: &str, action: &str, detail: Option<String>) {
        {
            let mut o = self.out();
            o.ids.insert(id.to_string(), aws_id.to_string());
            o.records.push(ResourceRecord {
                id: id.into(),
                aws_id: aws_id.into(),
                kind: kind.as_str().into(),
                action: action.into(),
            });
        }
        self.emit(id, kind, Some(aws_id), action, detail);
    }
}

/// Runs `up` for a validated spec.
///
/// # Errors
/// Discovery failures at once; node failures after every independent node has run.
pub async fn up(
    c: Clients,
    spec: ClusterSpec,
    opts: &UpOptions,
    events: EventSink,
) -> Result<UpReport, EngineError> {
    // Held from before discovery to after the last change: see `engine::lock`. Who we are is
    // asked at the same time (one round trip fewer before anything else can start) and said
    // before any change is made.
    let (who, lock) = tokio::join!(
        aws::whoami(&c),
        super::lock::acquire(
            &c,
            &spec.name,
            &spec.region,
            "up",
            opts.lock_timeout,
            &events,
        )
    );
    let lock = lock?;
    match who {
        Ok((account, arn)) => events(Event::Phase {
            phase: format!("account {account} ({arn}), region {}", spec.region),
        }),
        Err(e) => {
            lock.release(&events).await;
            return Err(e.into());
        }
    }
    let result = up_locked(c, spec, opts, events.clone(), lock.lost()).await;
    let report = lock.report();
    lock.release(&events).await;
    result.map(|r| UpReport {
        lock: Some(report),
        ..r
    })
}

/// The error of a step not started because another run took the cluster lock over.
pub(crate) fn lock_lost(cluster: &str) -> AwsError {
    AwsError::unexpected(
        "starting a step of",
        cluster,
        "the cluster lock was lost (another run took it over, or it was removed): not started",
    )
}

async fn up_locked(
    c: Clients,
    spec: ClusterSpec,
    opts: &UpOptions,
    events: EventSink,
    lost: Arc<std::sync::atomic::AtomicBool>,
) -> Result<UpReport, EngineError> {
    let start = Instant::now();
    events(Event::Phase {
        phase: "discover".into(),
    });
    let mut obs = aws::discover::observe(
        &c,
        &aws::discover::Scope {
            cluster: &spec.name,
            vpc_attributes: true,
            kind: Some(spec.kind()),
            leftovers: false,
            addons: spec.addons.any(),
        },
    )
    .await?;
    // CreateVpc takes no client token: an SDK retry after a lost answer, or two `up` runs at
    // once, can leave a second tagged VPC. An empty one is ours and is removed (after every
    // refusal below, so that a refused run changes nothing); two that hold resources are refused.
    let spare = plan::spare_vpcs(&obs);
    if obs.vpcs.len() - spare.len() > 1 {
        let ids: Vec<&str> = obs.vpcs.iter().map(|v| v.id.as_str()).collect();
        return Err(EngineError::Refused(format!(
            "{} VPCs carry provision:cluster={} and hold resources ({}); run `provision down --name {} --region {}` and try again",
            ids.len(),
            spec.name,
            ids.join(", "),
            spec.name,
            spec.region
        )));
    }
    obs.vpcs.retain(|v| !spare.contains(&v.id));
    // kubeadm's state (etcd, the cluster's certificates) lived on the old control plane, and
    // the workers point at its address: a new master would be a new, empty cluster.
    let orphans = obs
        .instances
        .iter()
        .filter(|i| {
            i.is_live()
                && i.logical
                    .as_deref()
                    .is_some_and(|l| l.starts_with("workers-"))
        })
        .count();
    if spec.eks().is_some() {
        let live = obs
            .instances
            .iter()
            .filter(|i| {
                i.is_live()
                    && i.logical
                        .as_deref()
                        .is_some_and(|l| l == graph::MASTER || l.starts_with("workers-"))
            })
            .count();
        if live > 0 {
            return Err(EngineError::Refused(format!(
                "{live} instance(s) tagged provision:cluster={} run: this cluster was made with kind = \"kubeadm\"; run `provision down` before making it an EKS cluster",
                spec.name
            )));
        }
    }
    if orphans > 0 && obs.live_instances(graph::MASTER).next().is_none() {
        return Err(EngineError::Refused(format!(
            "the control plane of {} is gone but {orphans} worker(s) remain; a new control plane would be a new, empty cluster: run `provision down -f SPEC` and `provision up` again",
            spec.name
        )));
    }
    let graph = graph::build(&spec);
    let diff = plan::diff(&graph, &obs);
    if let Some(bad) = diff.iter().find(|p| {
        p.changes
            .iter()
            .any(|c| c.contains("refusing to adopt") || c.contains(plan::IMMUTABLE))
    }) {
        return Err(EngineError::Refused(format!(
            "{} {}: {}",
            bad.kind.as_str(),
            bad.aws_id.clone().unwrap_or_default(),
            bad.changes.join("; ")
        )));
    }
    for item in diff.iter().flat_map(|p| {
        p.changes
            .iter()
            .filter(|c| c.contains("scale-in"))
            .map(move |c| format!("{}: {c}", p.id))
    }) {
        events(Event::Warning { message: item });
    }
    for id in &spare {
        events(Event::Warning {
            message: format!(
                "removing {id}: an empty duplicate VPC of this cluster (from an interrupted or concurrent run)"
            ),
        });
        aws::network::delete_vpc(&c, id).await?;
    }
    let ctx = Arc::new(Ctx {
        c,
        spec,
        graph,
        obs,
        events: events.clone(),
        start,
        out: Mutex::new(Outputs::default()),
        api_server: opts.api_server.clone(),
        eks_timeout: opts.eks_timeout,
    });

    events(Event::Phase {
        phase: "apply".into(),
    });
    let nodes: Vec<(String, Vec<String>)> = ctx
        .graph
        .nodes
        .iter()
        .map(|n| (n.id.clone(), n.deps.clone()))
        .collect();
    let total = nodes.len();
    let results = dag::execute(nodes, opts.concurrency, |id: String| {
        let ctx = ctx.clone();
        let lost = lost.clone();
        async move {
            if lost.load(std::sync::atomic::Ordering::SeqCst) {
                return Err((id, lock_lost(&ctx.spec.name)));
            }
            ensure(&ctx, &id).await.map_err(|e| (id, e))
        }
    })
    .await;
    let failures: Vec<String> = results
        .iter()
        .filter_map(|(id, o)| match o {
            Outcome::Done => None,
            Outcome::Failed((_, e)) => Some(format!("  {id}: {e}")),
            Outcome::Skipped(dep) => Some(format!("  {id}: not started because {dep} failed")),
        })
        .collect();
    if !failures.is_empty() {
        for (id, o) in &results {
            if let Outcome::Failed((_, e)) = o {
                let kind = ctx.graph.get(id).map_or(Kind::Instance, |n| n.kind);
                ctx.emit(id, kind, None, "failed", Some(e.to_string()));
            }
        }
        return Err(EngineError::Steps {
            failed: failures.len(),
            total,
            details: failures.join("\n")
                + &format!(
                    "\nwhat was created is tagged provision:cluster={}: re-run `provision up` to resume, or `provision down` to remove it",
                    ctx.spec.name
                ),
            remaining: Vec::new(),
        });
    }

    if ctx.spec.eks().is_some() {
        return finish_eks(&ctx, opts, &events, start).await;
    }

    // One batched wait for every instance that is not known to be running.
    events(Event::Phase {
        phase: "wait".into(),
    });
    let running = wait_instances(
        &ctx,
        &events,
        start,
        opts.instance_timeout,
        opts.wait >= WaitFor::Status,
    )
    .await?;
    let master = {
        let o = ctx.out();
        let m = o.master.clone().ok_or_else(|| {
            AwsError::unexpected(
                "finding",
                "the master",
                "no master instance recorded: internal error, please file a bug",
            )
        })?;
        running.get(&m.id).cloned().unwrap_or(m)
    };
    let endpoint_ip = master
        .public_ip
        .clone()
        .or_else(|| master.private_ip.clone());
    let api_endpoint = endpoint_ip.as_ref().map(|ip| format!("https://{ip}:6443"));
    let bootstrap = ctx.out().bootstrap.clone().ok_or_else(|| {
        AwsError::unexpected(
            "reading",
            "the bootstrap secret",
            "not loaded: internal error",
        )
    })?;
    let ca = Ca {
        cert_pem: bootstrap.ca_cert_pem.clone(),
        key_pem: bootstrap.ca_key_pem.clone(),
    };

    let mut kubeconfig = None;
    if let (Some(path), Some(server)) = (&opts.kubeconfig, &api_endpoint) {
        super::kubeconfig::write(path, &ctx.spec.name, server, &ca)?;
        kubeconfig = Some(path.display().to_string());
    }
    if opts.wait == WaitFor::Cluster {
        let server = opts
            .api_server
            .clone()
            .or_else(|| api_endpoint.clone())
            .ok_or_else(|| EngineError::Probe("the master has no IP address".into()))?;
        let want = 1 + ctx.spec.kubeadm().map_or(0, |k| k.workers as usize);
        super::probe::wait_cluster(&server, &ca, want, opts.cluster_timeout, &events, start)
            .await?;
    }
    let records = ctx.out().records.clone();
    Ok(UpReport {
        cluster: ctx.spec.name.clone(),
        kind: ctx.spec.kind().into(),
        region: ctx.spec.region.clone(),
        master_public_ip: master.public_ip.clone(),
        master_private_ip: master.private_ip.clone(),
        api_endpoint,
        kubeconfig,
        kubeconfig_context: opts.kubeconfig.as_ref().map(|_| ctx.spec.name.clone()),
        addons: addon_reports(&ctx, &running),
        addon_secret: ctx
            .spec
            .addons
            .any()
            .then(|| tags::addons_parameter_name(&ctx.spec.name)),
        resources: records,
        lock: None,
    })
}

/// The end of an EKS `up`: the endpoint, a kubeconfig whose user runs `provision token`, and
/// with `--wait cluster`, the node group's nodes Ready.
async fn finish_eks(
    ctx: &Ctx,
    opts: &UpOptions,
    events: &EventSink,
    start: Instant,
) -> Result<UpReport, EngineError> {
    let cluster = ctx
        .out()
        .eks
        .clone()
        .ok_or_else(|| internal("the eks-cluster node ran"))?;
    let endpoint = cluster.endpoint.clone();
    let mut kubeconfig = None;
    if let (Some(path), Some(server)) = (&opts.kubeconfig, &endpoint) {
        let ca = cluster.ca_data.clone().unwrap_or_default();
        super::kubeconfig::write_exec(path, &ctx.spec.name, server, &ca, &ctx.spec.region)?;
        kubeconfig = Some(path.display().to_string());
    }
    if opts.wait == WaitFor::Cluster {
        let server = opts
            .api_server
            .clone()
            .or_else(|| endpoint.clone())
            .ok_or_else(|| EngineError::Probe("the EKS cluster reports no endpoint".into()))?;
        let ca_pem = cluster
            .ca_data
            .as_deref()
            .and_then(|b| {
                base64::Engine::decode(&base64::engine::general_purpose::STANDARD, b).ok()
            })
            .and_then(|b| String::from_utf8(b).ok())
            .filter(|p| p.contains("BEGIN CERTIFICATE"))
            .ok_or_else(|| {
                EngineError::Probe(
                    "the EKS cluster's certificateAuthority.data is not a PEM certificate".into(),
                )
            })?;
        // The certificate names the endpoint's host, also when --api-server tunnels to it.
        let host = endpoint
            .as_deref()
            .and_then(|e| e.strip_prefix("https://"))
            .map(|h| h.split(['/', ':']).next().unwrap_or(h).to_string());
        let client = super::probe::ApiClient::eks(
            &ca_pem,
            host.as_deref(),
            &ctx.spec.name,
            &ctx.spec.region,
        )
        .await
        .map_err(EngineError::Probe)?;
        let want = ctx.spec.eks().map_or(0, |e| e.nodegroup.desired as usize);
        super::probe::wait_cluster_with(
            &server,
            &client,
            want,
            opts.cluster_timeout,
            super::probe::POLL_INTERVAL,
            events,
            start,
        )
        .await?;
    }
    let running = wait_instances(ctx, events, start, opts.instance_timeout, false).await?;
    let records = ctx.out().records.clone();
    Ok(UpReport {
        addons: addon_reports(ctx, &running),
        addon_secret: ctx
            .spec
            .addons
            .any()
            .then(|| tags::addons_parameter_name(&ctx.spec.name)),
        cluster: ctx.spec.name.clone(),
        kind: ctx.spec.kind().into(),
        region: ctx.spec.region.clone(),
        master_public_ip: None,
        master_private_ip: None,
        api_endpoint: endpoint,
        kubeconfig,
        kubeconfig_context: opts.kubeconfig.as_ref().map(|_| ctx.spec.name.clone()),
        resources: records,
        lock: None,
    })
}

/// Creates or repairs one node.
async fn ensure(ctx: &Ctx, id: &str) -> Result<(), AwsError> {
    let node = ctx
        .graph
        .get(id)
        .ok_or_else(|| AwsError::unexpected("running", id, "unknown node"))?;
    let existing = ctx.obs.id_of(id, node.kind);
    let c = &ctx.c;
    match &node.desired {
        Desired::AvailabilityZones { .. } if !plan::zones_needed(&ctx.graph, &ctx.obs) => {
            ctx.emit(
                id,
                node.kind,
                None,
                "skipped",
                Some("every subnet exists".into()),
            );
        }
        Desired::Ami { .. } if !plan::image_needed(&ctx.graph, id, &ctx.obs) => {
            ctx.emit(
                id,
                node.kind,
                None,
                "skipped",
                Some("every instance exists".into()),
            );
        }
        Desired::AvailabilityZones { count } => {
            let azs = aws::lookup::availability_zones(c, *count, ctx.spec.instance_type()).await?;
            ctx.emit(id, node.kind, None, "read", Some(azs.join(", ")));
            ctx.out().azs = azs;
        }
        Desired::Ami { source, arch } => {
            let img = aws::lookup::image(c, source, *arch).await?;
            ctx.emit(id, node.kind, Some(&img.id), "read", None);
            ctx.out().images.insert(id.to_string(), img);
        }
        Desired::Vpc { cidr } => match existing {
            Some(vpc) => {
                let v = ctx
                    .obs
                    .vpcs
                    .iter()
                    .find(|v| v.id == vpc)
                    .ok_or_else(|| internal("observed"))?;
                let (support, hostnames) =
                    (v.dns_support == Some(false), v.dns_hostnames == Some(false));
                if support || hostnames {
                    aws::network::set_vpc_dns(c, &vpc, support, hostnames).await?;
                    ctx.done(
                        id,
                        node.kind,
                        &vpc,
                        "updated",
                        Some("DNS support and hostnames on".into()),
                    );
                } else {
                    ctx.done(id, node.kind, &vpc, "existing", None);
                }
            }
            None => {
                ctx.emit(id, node.kind, None, "creating", Some(cidr.to_string()));
                let vpc =
                    aws::network::create_vpc(c, &cidr.to_string(), &ctx.tags(id, true)).await?;
                ctx.done(id, node.kind, &vpc, "created", None);
            }
        },
        Desired::Subnet {
            index,
            cidr,
            public,
        } => match existing {
            Some(sn) => {
                let s = ctx
                    .obs
                    .subnets
                    .iter()
                    .find(|s| s.id == sn)
                    .ok_or_else(|| internal("observed"))?;
                if s.map_public_ip || !public {
                    ctx.done(id, node.kind, &sn, "existing", None);
                } else {
                    aws::network::set_map_public_ip(c, &sn).await?;
                    ctx.done(
                        id,
                        node.kind,
                        &sn,
                        "updated",
                        Some("public IPs on launch".into()),
                    );
                }
            }
            None => {
                let vpc = ctx.id(graph::VPC)?;
                let az = ctx.out().azs.get(*index).cloned().ok_or_else(|| {
                    AwsError::unexpected("creating", id, "no availability zone for this subnet")
                })?;
                ctx.emit(
                    id,
                    node.kind,
                    None,
                    "creating",
                    Some(format!("{cidr} in {az}")),
                );
                // What the AWS Load Balancer Controller and the cloud provider look for.
                let mut tags = ctx.tags(id, true);
                let role = if *public {
                    tags::ELB_ROLE_TAG
                } else {
                    tags::INTERNAL_ELB_ROLE_TAG
                };
                tags.push((role.to_string(), "1".to_string()));
                let sn =
                    aws::network::create_subnet(c, &vpc, &cidr.to_string(), &az, *public, &tags)
                        .await?;
                ctx.done(
                    id,
                    node.kind,
                    &sn,
                    "created",
                    Some(format!("{cidr} in {az}")),
                );
            }
        },
        Desired::InternetGateway => {
            let vpc = ctx.id(graph::VPC)?;
            match existing {
                Some(igw) => {
                    let g = ctx
                        .obs
                        .igws
                        .iter()
                        .find(|g| g.id == igw)
                        .ok_or_else(|| internal("observed"))?;
                    if g.attached_vpcs.contains(&vpc) {
                        ctx.done(id, node.kind, &igw, "existing", None);
                    } else {
                        aws::network::attach_igw(c, &igw, &vpc).await?;
                        ctx.done(
                            id,
                            node.kind,
                            &igw,
                            "updated",
                            Some(format!("attached to {vpc}")),
                        );
                    }
                }
                None => {
                    ctx.emit(id, node.kind, None, "creating", None);
                    let igw = aws::network::create_igw(c, &ctx.tags(id, true)).await?;
                    aws::network::attach_igw(c, &igw, &vpc).await?;
                    ctx.done(
                        id,
                        node.kind,
                        &igw,
                        "created",
                        Some(format!("attached to {vpc}")),
                    );
                }
            }
        }
        Desired::RouteTable { gateway, subnets } => {
            let vpc = ctx.id(graph::VPC)?;
            let igw = ctx.id(gateway)?;
            let subnet_ids: Vec<String> = subnets
                .iter()
                .map(|s| ctx.id(s))
                .collect::<Result<_, _>>()?;
            let (rt, created, route, assoc) = match &existing {
                Some(rt) => {
                    let r = ctx
                        .obs
                        .route_tables
                        .iter()
                        .find(|r| &r.id == rt)
                        .ok_or_else(|| internal("observed"))?;
                    (
                        rt.clone(),
                        false,
                        r.default_route.clone(),
                        r.associations
                            .iter()
                            .map(|(_, s)| s.clone())
                            .collect::<Vec<_>>(),
                    )
                }
                None => {
                    ctx.emit(id, node.kind, None, "creating", None);
                    (
                        aws::network::create_route_table(c, &vpc, &ctx.tags(id, true)).await?,
                        true,
                        None,
                        Vec::new(),
                    )
                }
            };
            let mut changed = Vec::new();
            match route.as_deref() {
                Some(r) if r == igw => {}
                Some(other) => {
                    aws::network::replace_default_route(c, &rt, &igw).await?;
                    changed.push(format!("default route moved from {other}"));
                }
                None => {
                    aws::network::create_default_route(c, &rt, &igw).await?;
                    changed.push("default route".to_string());
                }
            }
            let missing: Vec<&String> = subnet_ids.iter().filter(|s| !assoc.contains(s)).collect();
            let assoc_calls = missing.iter().map(|s| aws::network::associate(c, &rt, s));
            futures::future::try_join_all(assoc_calls).await?;
            if !missing.is_empty() {
                changed.push(format!("{} association(s)", missing.len()));
            }
            let action = if created {
                "created"
            } else if changed.is_empty() {
                "existing"
            } else {
                "updated"
            };
            ctx.done(
                id,
                node.kind,
                &rt,
                action,
                (!changed.is_empty()).then(|| changed.join(", ")),
            );
        }
        Desired::SecurityGroup {
            role,
            name,
            description,
            rules,
        } => {
            let vpc = ctx.id(graph::VPC)?;
            let (sg, created, observed_rules) = match &existing {
                Some(sg) => (
                    sg.clone(),
                    false,
                    ctx.obs
                        .security_groups
                        .iter()
                        .find(|g| &g.id == sg)
                        .map(|g| g.rules.clone())
                        .unwrap_or_default(),
                ),
                None => {
                    ctx.emit(id, node.kind, None, "creating", Some(name.clone()));
                    let k8s = *role == graph::SgRole::Nodes;
                    (
                        aws::security_group::create(c, &vpc, name, description, &ctx.tags(id, k8s))
                            .await?,
                        true,
                        Vec::new(),
                    )
                }
            };
            let mut groups = ctx.out().ids.clone();
            groups.insert(id.to_string(), sg.clone());
            let missing = plan::missing_rules(rules, &observed_rules, &groups);
            let n = missing.len();
            aws::security_group::authorize(c, &sg, &missing, &groups).await?;
            let action = if created {
                "created"
            } else if n > 0 {
                "updated"
            } else {
                "existing"
            };
            ctx.done(
                id,
                node.kind,
                &sg,
                action,
                (n > 0).then(|| format!("{n} ingress rule(s)")),
            );
        }
        Desired::Role {
            name,
            service,
            policies,
        } => {
            let (arn, action, detail) = match ctx.obs.role(id) {
                Some(r) if r.owned => {
                    let arns: Vec<String> = policies
                        .iter()
                        .map(|p| aws::eks::managed_policy_arn(&r.arn, p))
                        .collect();
                    let have = r.policies.clone().unwrap_or_default();
                    let missing = arns.iter().filter(|a| !have.contains(a)).count();
                    if missing > 0 {
                        aws::iam::attach_missing(c, name, &arns, &have).await?;
                        (
                            r.arn.clone(),
                            "updated",
                            Some(format!("{missing} policy(ies) attached")),
                        )
                    } else {
                        (r.arn.clone(), "existing", None)
                    }
                }
                Some(r) => {
                    return Err(AwsError::unexpected(
                        "adopting IAM role",
                        &r.name,
                        format!(
                            "it exists without the tag {}={}",
                            tags::CLUSTER_TAG,
                            ctx.spec.name
                        ),
                    ));
                }
                None => {
                    ctx.emit(id, node.kind, None, "creating", Some(name.clone()));
                    let description = format!("provision {}: {id}", ctx.spec.name);
                    let arn = aws::iam::create_service_role(
                        c,
                        name,
                        service,
                        &description,
                        &ctx.tags(id, false),
                    )
                    .await?;
                    if !policies.is_empty() {
                        let arns: Vec<String> = policies
                            .iter()
                            .map(|p| aws::eks::managed_policy_arn(&arn, p))
                            .collect();
                        aws::iam::attach_missing(c, name, &arns, &[]).await?;
                    }
                    let detail = (!policies.is_empty()).then(|| policies.join(", "));
                    (arn, "created", detail)
                }
            };
            {
                let mut o = ctx.out();
                if id == graph::NODE_ROLE {
                    o.role_arn = Some(arn.clone());
                }
                o.arns.insert(id.to_string(), arn);
            }
            ctx.done(id, node.kind, name, action, detail);
        }
        Desired::ElasticIp => match &existing {
            Some(a) => ctx.done(id, node.kind, a, "existing", None),
            None => {
                ctx.emit(id, node.kind, None, "creating", None);
                let a = aws::network::allocate_address(c, &ctx.tags(id, false)).await?;
                ctx.done(id, node.kind, &a, "created", None);
            }
        },
        Desired::NatGateway { subnet } => {
            if let Some(n) = &existing {
                let pending = ctx
                    .obs
                    .nat_gateways
                    .iter()
                    .any(|g| &g.id == n && g.state == "pending");
                if pending {
                    aws::network::wait_nat_available(c, n).await?;
                }
                ctx.done(id, node.kind, n, "existing", None);
            } else {
                let sn = ctx.id(subnet)?;
                let eip = ctx.id(graph::NAT_EIP)?;
                ctx.emit(id, node.kind, None, "creating", Some(format!("in {sn}")));
                // Same subnet and address: a retried or resumed create returns the same gateway.
                let token = tags::client_token(&[&ctx.spec.name, &sn, &eip]);
                let n =
                    aws::network::create_nat_gateway(c, &sn, &eip, &token, &ctx.tags(id, false))
                        .await?;
                ctx.done(id, node.kind, &n, "created", Some(format!("in {sn}")));
            }
        }
        Desired::EksCluster { name, version } => {
            ensure_eks_cluster(ctx, id, node.kind, name, version).await?;
        }
        Desired::AccessEntries { entries } => {
            let k = ctx
                .out()
                .eks
                .clone()
                .ok_or_else(|| internal("eks-cluster ran first"))?;
            // What discovery saw, if the cluster was ACTIVE then; else look now.
            let observed = ctx
                .obs
                .eks
                .as_ref()
                .filter(|e| e.owned && matches!(e.status.as_str(), "ACTIVE" | "UPDATING"))
                .map(|e| e.access_entries.clone());
            let changes = aws::eks::ensure_access_entries(
                c,
                &k.name,
                &k.arn,
                entries,
                observed.as_deref(),
                &ctx.tags(id, false),
            )
            .await?;
            let action = if changes.is_empty() {
                "existing"
            } else {
                "updated"
            };
            let detail = if changes.is_empty() {
                format!("{} entr(ies)", entries.len())
            } else {
                changes
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ")
            };
            ctx.done(id, node.kind, &k.name, action, Some(detail));
        }
        Desired::Addons { names } => {
            let k = ctx
                .out()
                .eks
                .clone()
                .ok_or_else(|| internal("eks-cluster ran first"))?;
            let want: Vec<aws::eks::AddonWant> = names
                .iter()
                .map(|(n, role)| {
                    let pod_identity = match role {
                        Some(r) => Some((
                            graph::EBS_CSI_SERVICE_ACCOUNT.to_string(),
                            ctx.out()
                                .arns
                                .get(r)
                                .cloned()
                                .ok_or_else(|| internal("the add-on's role ran first"))?,
                        )),
                        None => None,
                    };
                    Ok::<_, AwsError>(aws::eks::AddonWant {
                        name: n.clone(),
                        pod_identity,
                    })
                })
                .collect::<Result<_, _>>()?;
            // Observed by discovery; none on a cluster this run made; listed otherwise.
            let observed = ctx
                .obs
                .eks
                .as_ref()
                .filter(|e| e.owned && matches!(e.status.as_str(), "ACTIVE" | "UPDATING"))
                .map(|e| e.addons.clone());
            let have = match observed {
                Some(a) => Some(a),
                None if ctx.out().eks_created => Some(Vec::new()),
                None => None,
            };
            let list: Vec<&str> = names.iter().map(|(n, _)| n.as_str()).collect();
            if have
                .as_ref()
                .is_none_or(|h| list.iter().any(|n| !h.iter().any(|x| x == n)))
            {
                ctx.emit(id, node.kind, None, "creating", Some(list.join(", ")));
            }
            let vpc = ctx.id(graph::VPC)?;
            let made = aws::eks::ensure_addons(
                c,
                &k.name,
                &vpc,
                &want,
                have.as_deref(),
                &ctx.tags(id, false),
                Duration::from_secs(15 * 60),
            )
            .await?;
            for d in &made.degraded {
                (ctx.events)(Event::Warning {
                    message: format!("add-on {d}"),
                });
            }
            let action = if made.created.is_empty() {
                "existing"
            } else {
                "created"
            };
            ctx.done(id, node.kind, &list.join(","), action, None);
        }
        Desired::AddonSecret { parameter } => {
            let stored = match &ctx.obs.addon_secret {
                Some(s) if s.owned => true,
                Some(s) => {
                    return Err(AwsError::unexpected(
                        "adopting the add-ons' secret",
                        &s.name,
                        format!(
                            "it exists without the tag {}={}",
                            tags::CLUSTER_TAG,
                            ctx.spec.name
                        ),
                    ));
                }
                None => false,
            };
            let writer_missing = ctx.obs.log_writer_secret.as_ref().is_none_or(|s| !s.owned);
            // The passwords are read only when the log writer's parameter has to be made.
            let (all, action) = if !stored {
                ctx.emit(id, node.kind, None, "creating", Some(parameter.clone()));
                let pw = || {
                    pki::random_chars(24).map_err(|e| {
                        AwsError::unexpected("generating", "an add-on password", e.to_string())
                    })
                };
                let fresh = aws::secret::AddonSecrets {
                    grafana_admin_password: pw()?,
                    elastic_password: pw()?,
                    kibana_system_password: pw()?,
                    fluent_bit_password: pw()?,
                };
                let kept = aws::secret::put_json(
                    c,
                    parameter,
                    "provision: the add-ons' generated passwords",
                    &fresh,
                    &ctx.tags(id, false),
                )
                .await?;
                (Some(kept), "created")
            } else if writer_missing {
                let all = aws::secret::get_json::<aws::secret::AddonSecrets>(c, parameter).await?;
                (all, "existing")
            } else {
                (None, "existing")
            };
            // The log writer's password alone, for the nodes: they never see the others.
            if writer_missing {
                let all = all.ok_or_else(|| internal("the add-ons' secret is stored"))?;
                let writer = tags::log_writer_parameter_name(&ctx.spec.name);
                aws::secret::put_json(
                    c,
                    &writer,
                    "provision: the log writer's password (what the nodes may read)",
                    &serde_json::json!({ "fluent_bit_password": all.fluent_bit_password }),
                    &ctx.tags(id, false),
                )
                .await?;
            }
            ctx.done(id, node.kind, parameter, action, None);
        }
        Desired::AddonsAccess {
            role,
            policy,
            parameter,
        } => {
            let arn = ctx
                .out()
                .arns
                .get(graph::ADDONS_ROLE)
                .cloned()
                .unwrap_or_default();
            let doc = graph::addons_access_policy(&arn, &ctx.spec.region, parameter);
            ensure_inline_policy(
                ctx,
                id,
                node.kind,
                (role, policy),
                (&arn, doc),
                ctx.obs.addons_policy.as_deref(),
                format!("ec2:DescribeInstances, ssm:GetParameter on {parameter}"),
            )
            .await?;
        }
        Desired::NodeLogAccess {
            role,
            policy,
            parameter,
        } => {
            let arn = ctx
                .out()
                .arns
                .get(graph::NODE_ROLE)
                .cloned()
                .unwrap_or_default();
            let doc = graph::node_log_policy(&arn, &ctx.spec.region, parameter);
            ensure_inline_policy(
                ctx,
                id,
                node.kind,
                (role, policy),
                (&arn, doc),
                ctx.obs.node_log_policy.as_deref(),
                format!("ssm:GetParameter on {parameter}"),
            )
            .await?;
        }
        Desired::AddonInstance { addon, subnet } => {
            let live: Vec<ObsInstance> = ctx.obs.live_instances(id).cloned().collect();
            if let Some(i) = live.first() {
                let started = start_stopped(ctx, id, std::slice::from_ref(i)).await?;
                ctx.out().instances.push((id.to_string(), i.clone()));
                let action = if started == 0 { "existing" } else { "updated" };
                ctx.done(id, node.kind, &i.id, action, None);
                return Ok(());
            }
            let spec = ctx
                .spec
                .addons
                .get(*addon)
                .ok_or_else(|| internal("an add-on node without its spec"))?
                .clone();
            let image = ctx
                .out()
                .images
                .get(&graph::addon_ami_id(spec.arch))
                .cloned()
                .ok_or_else(|| internal("the add-on AMI node ran first"))?;
            let parameter = tags::addons_parameter_name(&ctx.spec.name);
            let user_data = crate::core::addons::cloud_config(
                *addon,
                &spec,
                &crate::core::addons::AddonInput {
                    cluster: &ctx.spec.name,
                    parameter: &parameter,
                },
            )
            .render();
            let sn = ctx.id(subnet)?;
            let sg = ctx.id(&graph::addon_sg_id(*addon))?;
            let profile = ctx.id(graph::ADDONS_PROFILE)?;
            let vpc = ctx.id(graph::VPC)?;
            ctx.emit(
                id,
                node.kind,
                None,
                "creating",
                Some(format!("{} in {sn}", spec.instance_type)),
            );
            let launched = aws::instance::run(
                c,
                &aws::instance::Launch {
                    logical: id,
                    count: 1,
                    image: &image.id,
                    root_device: &image.root_device,
                    instance_type: &spec.instance_type,
                    subnet: &sn,
                    security_groups: vec![sg],
                    instance_profile: &profile,
                    user_data: &user_data,
                    key_name: None,
                    volume_gb: spec.volume_gb,
                    tags: &ctx.tags(id, false),
                    client_token: tags::client_token(&[&ctx.spec.name, &vpc, id]),
                },
            )
            .await?;
            let i = launched.into_iter().next().ok_or_else(|| {
                AwsError::unexpected("launching", id, "RunInstances returned no instance")
            })?;
            ctx.out().instances.push((id.to_string(), i.clone()));
            ctx.done(id, node.kind, &i.id, "created", i.private_ip.clone());
        }
        Desired::IngressRules { rules } => {
            let groups = ctx.out().ids.clone();
            let mut targets: Vec<&String> = rules.iter().map(|(g, _)| g).collect();
            targets.sort_unstable();
            targets.dedup();
            let mut work = Vec::new();
            for target in targets {
                let Some(group) = groups.get(target) else {
                    ctx.emit(
                        id,
                        node.kind,
                        None,
                        "skipped",
                        Some(format!(
                            "{target} does not exist (the cluster reports no security group)"
                        )),
                    );
                    continue;
                };
                let wanted: Vec<graph::Rule> = rules
                    .iter()
                    .filter(|(g, _)| g == target)
                    .map(|(_, r)| r.clone())
                    .collect();
                let observed = ctx.obs.group_rules(target);
                let missing: Vec<graph::Rule> = plan::missing_rules(&wanted, &observed, &groups)
                    .into_iter()
                    .cloned()
                    .collect();
                if !missing.is_empty() {
                    work.push((group.clone(), missing));
                }
            }
            // One AuthorizeSecurityGroupIngress per group, all at once.
            let added: usize = work.iter().map(|(_, m)| m.len()).sum();
            futures::future::try_join_all(work.iter().map(|(group, missing)| {
                let groups = &groups;
                async move {
                    let missing: Vec<&graph::Rule> = missing.iter().collect();
                    aws::security_group::authorize(c, group, &missing, groups).await
                }
            }))
            .await?;
            let action = match added {
                0 => "existing",
                n if n == rules.len() => "created",
                _ => "updated",
            };
            ctx.done(
                id,
                node.kind,
                id,
                action,
                (added > 0).then(|| format!("{added} ingress rule(s)")),
            );
        }
        Desired::LaunchTemplate { name, disk_gb } => match &existing {
            Some(t) => ctx.done(id, node.kind, t, "existing", None),
            None => {
                ctx.emit(id, node.kind, None, "creating", Some(name.clone()));
                // With the monitoring add-on, the nodes run node_exporter.
                // The nodes' agents for the add-ons: node_exporter, Fluent Bit.
                let es = ctx
                    .out()
                    .instances
                    .iter()
                    .find(|(l, _)| l == "logging")
                    .and_then(|(_, i)| i.private_ip.clone());
                let parameter = tags::log_writer_parameter_name(&ctx.spec.name);
                let fluent_bit = ctx
                    .spec
                    .addons
                    .logging
                    .as_ref()
                    .and_then(|l| l.versions.get("fluent_bit").cloned())
                    .unwrap_or_default();
                let agents = crate::core::addons::NodeAgents {
                    node_exporter: ctx.spec.addons.monitoring.is_some(),
                    logging: match (&ctx.spec.addons.logging, &es) {
                        (Some(_), Some(es)) => Some(crate::core::addons::NodeLogging {
                            es_host: es,
                            fluent_bit_version: &fluent_bit,
                            parameter: &parameter,
                        }),
                        (Some(_), None) => {
                            return Err(AwsError::unexpected(
                                "creating",
                                name,
                                "the logging instance has no private IP yet",
                            ));
                        }
                        _ => None,
                    },
                };
                let user_data = agents.any().then(|| {
                    crate::core::addons::mime(
                        &crate::core::addons::eks_node_agents(&agents).render(),
                    )
                });
                let t = aws::launch_template::create(
                    c,
                    name,
                    *disk_gb,
                    user_data.as_deref(),
                    &ctx.tags(id, false),
                )
                .await?;
                ctx.done(
                    id,
                    node.kind,
                    &t,
                    "created",
                    Some(format!("IMDSv2 required, {disk_gb} GiB encrypted gp3")),
                );
            }
        },
        Desired::Nodegroup {
            name,
            subnets,
            scaling,
            labels,
            ..
        } => {
            ensure_nodegroup(ctx, id, node.kind, name, subnets, *scaling, labels).await?;
        }
        Desired::InstanceProfile { name, role } => {
            let role = ctx.id(role)?;
            match ctx.obs.profile(id) {
                Some(p) if !p.owned => {
                    return Err(AwsError::unexpected(
                        "adopting instance profile",
                        &p.name,
                        format!(
                            "it exists without the tag {}={}",
                            tags::CLUSTER_TAG,
                            ctx.spec.name
                        ),
                    ));
                }
                Some(p) if p.roles.contains(&role) => {
                    ctx.done(id, node.kind, &p.name, "existing", None)
                }
                Some(p) => {
                    aws::iam::add_role(c, &p.name, &role).await?;
                    ctx.done(
                        id,
                        node.kind,
                        &p.name,
                        "updated",
                        Some(format!("{role} added")),
                    );
                }
                None => {
                    ctx.emit(id, node.kind, None, "creating", Some(name.clone()));
                    aws::iam::create_instance_profile(c, name, &ctx.tags(id, false)).await?;
                    aws::iam::add_role(c, name, &role).await?;
                    ctx.done(id, node.kind, name, "created", None);
                }
            }
        }
        Desired::Secret { parameter } => {
            let found = match &ctx.obs.secret {
                Some(s) if s.owned => aws::secret::get(c, parameter).await?,
                Some(s) => {
                    return Err(AwsError::unexpected(
                        "adopting the bootstrap secret",
                        &s.name,
                        format!(
                            "it exists without the tag {}={}",
                            tags::CLUSTER_TAG,
                            ctx.spec.name
                        ),
                    ));
                }
                None => None,
            };
            let (b, action) = match found {
                Some(b) => (b, "existing"),
                None => {
                    ctx.emit(id, node.kind, None, "creating", Some(parameter.clone()));
                    let ca = pki::generate_ca(time::OffsetDateTime::now_utc()).map_err(|e| {
                        AwsError::unexpected("generating", "the cluster CA", e.to_string())
                    })?;
                    let fresh = Bootstrap {
                        token_created: Some(time::OffsetDateTime::now_utc().unix_timestamp()),
                        version: 1,
                        cluster_id: pki::random_chars(12).map_err(|e| {
                            AwsError::unexpected("generating", "the cluster id", e.to_string())
                        })?,
                        ca_cert_pem: ca.cert_pem,
                        ca_key_pem: ca.key_pem,
                        token: pki::generate_token().map_err(|e| {
                            AwsError::unexpected("generating", "the bootstrap token", e.to_string())
                        })?,
                    };
                    (
                        aws::secret::put(c, parameter, &fresh, &ctx.tags(id, false)).await?,
                        "created",
                    )
                }
            };
            if !pki::is_token(&b.token) {
                return Err(AwsError::unexpected(
                    "reading",
                    parameter,
                    "the stored bootstrap token is malformed",
                ));
            }
            ctx.out().bootstrap = Some(b);
            ctx.done(id, node.kind, parameter, action, None);
        }
        Desired::CaAccess {
            role,
            policy,
            parameter,
        } => {
            let arn = ctx.out().role_arn.clone().unwrap_or_default();
            let master = ctx.out().master.clone().map(|m| m.id).unwrap_or_default();
            let addons_parameter = tags::log_writer_parameter_name(&ctx.spec.name);
            let mut parameters = vec![parameter.as_str()];
            if ctx.spec.addons.logging.is_some() {
                parameters.push(&addons_parameter);
            }
            let doc = graph::ca_access_policy_for(&arn, &ctx.spec.region, &parameters, &master);
            ensure_inline_policy(
                ctx,
                id,
                node.kind,
                (role, policy),
                (&arn, doc),
                ctx.obs.ca_policy.as_deref(),
                format!(
                    "ssm:GetParameter on {} from {master} only",
                    parameters.join(", ")
                ),
            )
            .await?;
        }
        Desired::JoinToken => {
            let b = ctx
                .out()
                .bootstrap
                .clone()
                .ok_or_else(|| internal("secret node ran first"))?;
            let master_existed = ctx.obs.live_instances(graph::MASTER).next().is_some();
            let now = time::OffsetDateTime::now_utc();
            let token = if !master_existed
                || nothing_to_launch(ctx)
                || pki::token_usable(b.token_created, now.unix_timestamp())
            {
                // A new master runs `kubeadm init` with the stored token: fresh for 4 h.
                b.token.clone()
            } else {
                mint_join_token(ctx, &b, now).await?
            };
            ctx.out().join_token = Some(token);
        }
        Desired::Master { subnet } => {
            let live: Vec<ObsInstance> = ctx.obs.live_instances(id).cloned().collect();
            if let Some(m) = live.first() {
                let started = start_stopped(ctx, id, std::slice::from_ref(m)).await?;
                let mut o = ctx.out();
                o.master = Some(m.clone());
                o.instances.push((id.to_string(), m.clone()));
                drop(o);
                let action = if started == 0 { "existing" } else { "updated" };
                ctx.done(
                    id,
                    node.kind,
                    &m.id,
                    action,
                    (started > 0).then(|| "started".to_string()),
                );
                return Ok(());
            }
            let mut b = ctx
                .out()
                .bootstrap
                .clone()
                .ok_or_else(|| internal("secret node ran first"))?;
            // The new master's `kubeadm init` creates the stored token afresh: record when, so a
            // later run does not take it for expired (the secret may be older than this master).
            let now = time::OffsetDateTime::now_utc().unix_timestamp();
            if !pki::token_usable(b.token_created, now) {
                b.token_created = Some(now);
                aws::secret::update(
                    c,
                    &crate::core::tags::secret_parameter_name(&ctx.spec.name),
                    &b,
                )
                .await?;
                ctx.out().bootstrap = Some(b.clone());
            }
            let baseline = crate::core::manifests::baseline(&ctx.spec.security);
            // The log shipper goes to the logging instance's private address.
            let addons_parameter = tags::log_writer_parameter_name(&ctx.spec.name);
            let shipper = match &ctx.spec.addons.logging {
                Some(l) => {
                    let es = ctx
                        .out()
                        .instances
                        .iter()
                        .find(|(l, _)| l == "logging")
                        .and_then(|(_, i)| i.private_ip.clone())
                        .ok_or_else(|| {
                            AwsError::unexpected(
                                "launching",
                                id,
                                "the logging instance has no private IP yet",
                            )
                        })?;
                    let image = format!(
                        "cr.fluentbit.io/fluent/fluent-bit:{}",
                        l.versions.get("fluent_bit").map_or("", String::as_str)
                    );
                    Some(crate::core::manifests::log_shipper(&es, &image))
                }
                None => None,
            };
            let user_data = cloudinit::master(
                kubeadm_spec(ctx)?,
                &cloudinit::MasterInput {
                    cluster: &ctx.spec.name,
                    secret_parameter: &crate::core::tags::secret_parameter_name(&ctx.spec.name),
                    token: &b.token,
                    baseline: baseline.as_ref(),
                    log_shipper: shipper.as_ref().map(|m| (m, addons_parameter.as_str())),
                },
            );
            let user_data = if ctx.spec.addons.monitoring.is_some() {
                cloudinit::with_node_exporter(user_data)
            } else {
                user_data
            }
            .render();
            let launched = launch(
                ctx,
                id,
                subnet,
                1,
                &user_data,
                vec![ctx.id(graph::SG_NODES)?, ctx.id(graph::SG_CONTROL_PLANE)?],
                format!("{}-{id}", b.cluster_id),
            )
            .await?;
            let m = launched.into_iter().next().ok_or_else(|| {
                AwsError::unexpected("launching", id, "RunInstances returned no instance")
            })?;
            ctx.out().master = Some(m.clone());
            ctx.done(id, node.kind, &m.id, "created", m.private_ip.clone());
        }
        Desired::Workers { subnet, count } => {
            let live: Vec<ObsInstance> = ctx.obs.live_instances(id).cloned().collect();
            {
                let mut o = ctx.out();
                o.instances
                    .extend(live.iter().map(|i| (id.to_string(), i.clone())));
            }
            let have = live.len() as u32;
            start_stopped(ctx, id, &live).await?;
            for i in &live {
                if i.is_stopped() {
                    ctx.done(id, node.kind, &i.id, "updated", Some("started".into()));
                } else {
                    ctx.done(id, node.kind, &i.id, "existing", None);
                }
            }
            if have < *count {
                let b = ctx
                    .out()
                    .bootstrap
                    .clone()
                    .ok_or_else(|| internal("secret node ran first"))?;
                let join_token = ctx
                    .out()
                    .join_token
                    .clone()
                    .ok_or_else(|| internal("join-token node ran first"))?;
                let master_ip = ctx
                    .out()
                    .master
                    .as_ref()
                    .and_then(|m| m.private_ip.clone())
                    .ok_or_else(|| {
                        AwsError::unexpected("launching", id, "the master has no private IP yet")
                    })?;
                let ca = Ca {
                    cert_pem: b.ca_cert_pem.clone(),
                    key_pem: b.ca_key_pem.clone(),
                };
                let hash = ca.discovery_hash().map_err(|e| {
                    AwsError::unexpected("hashing", "the cluster CA", e.to_string())
                })?;
                let user_data = cloudinit::worker(
                    kubeadm_spec(ctx)?,
                    &cloudinit::WorkerInput {
                        master_private_ip: &master_ip,
                        token: &join_token,
                        ca_hash: &hash,
                    },
                );
                let user_data = if ctx.spec.addons.monitoring.is_some() {
                    cloudinit::with_node_exporter(user_data)
                } else {
                    user_data
                }
                .render();
                let n = (*count - have) as i32;
                let token = format!("{}-{id}-{have}", b.cluster_id);
                let launched = launch(
                    ctx,
                    id,
                    subnet,
                    n,
                    &user_data,
                    vec![ctx.id(graph::SG_NODES)?],
                    token,
                )
                .await?;
                for i in &launched {
                    ctx.done(id, node.kind, &i.id, "created", i.private_ip.clone());
                }
            }
        }
    }
    Ok(())
}

/// Workers join an existing cluster whose bootstrap token has expired (or is about to): make a
/// new one on the API server with an admin certificate from our CA, and store it.
async fn mint_join_token(
    ctx: &Ctx,
    b: &Bootstrap,
    now: time::OffsetDateTime,
) -> Result<String, AwsError> {
    let master = ctx
        .obs
        .live_instances(graph::MASTER)
        .next()
        .ok_or_else(|| internal("checked by the caller"))?;
    let ip = master
        .public_ip
        .clone()
        .or_else(|| master.private_ip.clone())
        .unwrap_or_default();
    let server = ctx
        .api_server
        .clone()
        .unwrap_or_else(|| format!("https://{ip}:6443"));
    let token = pki::generate_token()
        .map_err(|e| AwsError::unexpected("generating", "a bootstrap token", e.to_string()))?;
    let expiration = (now + time::Duration::seconds(pki::TOKEN_TTL_SECS))
        .format(&time::format_description::well_known::Rfc3339)
        .map_err(|e| AwsError::unexpected("formatting", "the token expiry", e.to_string()))?;
    let ca = Ca {
        cert_pem: b.ca_cert_pem.clone(),
        key_pem: b.ca_key_pem.clone(),
    };
    ctx.emit(
        graph::JOIN_TOKEN,
        Kind::JoinToken,
        None,
        "creating",
        Some(format!("the stored token expired; minting one on {server}")),
    );
    super::probe::create_bootstrap_token(&server, &ca, &token, &expiration).await.map_err(|e| {
        AwsError::unexpected(
            "minting a bootstrap token for new workers on",
            &server,
            format!("{e} (the stored token has expired; the API server must be reachable from here, i.e. from network.admin_cidrs)"),
        )
    })?;
    let updated = Bootstrap {
        token: token.clone(),
        token_created: Some(now.unix_timestamp()),
        ..b.clone()
    };
    let name = crate::core::tags::secret_parameter_name(&ctx.spec.name);
    aws::secret::update(&ctx.c, &name, &updated).await?;
    ctx.out().bootstrap = Some(updated);
    ctx.emit(graph::JOIN_TOKEN, Kind::JoinToken, None, "created", None);
    Ok(token)
}

/// Starts the stopped instances among `instances` (one call); they are then waited for with the
/// rest. An instance still stopping cannot be started yet.
async fn start_stopped(ctx: &Ctx, id: &str, instances: &[ObsInstance]) -> Result<usize, AwsError> {
    if let Some(i) = instances.iter().find(|i| i.state == "stopping") {
        return Err(AwsError::unexpected(
            "starting",
            &i.id,
            format!("{id} is stopping; re-run `provision up` once it has stopped"),
        ));
    }
    let stopped: Vec<String> = instances
        .iter()
        .filter(|i| i.state == "stopped")
        .map(|i| i.id.clone())
        .collect();
    aws::instance::start(&ctx.c, &stopped).await?;
    Ok(stopped.len())
}

fn kubeadm_spec(ctx: &Ctx) -> Result<&crate::core::spec::KubeadmSpec, AwsError> {
    ctx.spec
        .kubeadm()
        .ok_or_else(|| internal("a kubeadm node in an EKS graph"))
}

/// Progress of a long EKS wait, with the elapsed time, as `Waiting` events.
fn progress(ctx: &Ctx, what: String) -> impl Fn(&str) + Send + Sync + '_ {
    move |state: &str| {
        (ctx.events)(Event::Waiting {
            what: format!("{what}: {state}"),
            elapsed_ms: ms_since(ctx.start),
        });
    }
}

/// The EKS cluster: adopted if it is ours, created otherwise, then waited ACTIVE.
async fn ensure_eks_cluster(
    ctx: &Ctx,
    id: &str,
    kind: Kind,
    name: &str,
    version: &str,
) -> Result<(), AwsError> {
    let c = &ctx.c;
    let e = ctx
        .spec
        .eks()
        .ok_or_else(|| internal("an EKS node in a kubeadm graph"))?;
    let action = match &ctx.obs.eks {
        Some(k) if !k.owned => {
            return Err(AwsError::unexpected(
                "adopting EKS cluster",
                name,
                format!(
                    "it exists without the tag {}={}",
                    tags::CLUSTER_TAG,
                    ctx.spec.name
                ),
            ));
        }
        Some(k) if k.status == "ACTIVE" => "existing",
        Some(k) => {
            ctx.emit(id, kind, Some(name), "waiting", Some(k.status.clone()));
            "existing"
        }
        None => {
            let mut subnets: Vec<String> = (0..ctx.spec.network.subnet_cidrs.len())
                .map(|i| ctx.id(&graph::subnet_id(i)))
                .collect::<Result<_, _>>()?;
            for i in 0..ctx.spec.network.private_subnet_cidrs.len() {
                subnets.push(ctx.id(&graph::private_subnet_id(i))?);
            }
            let role_arn = ctx
                .out()
                .arns
                .get(graph::CLUSTER_ROLE)
                .cloned()
                .ok_or_else(|| internal("cluster-role ran first"))?;
            let vpc = ctx.id(graph::VPC)?;
            ctx.emit(
                id,
                kind,
                None,
                "creating",
                Some(format!("Kubernetes {version}")),
            );
            let input = aws::eks::ClusterInput {
                name,
                version,
                role_arn: &role_arn,
                subnet_ids: subnets,
                security_group_ids: vec![ctx.id(graph::SG_CONTROL_PLANE)?],
                endpoint_public_access: e.endpoint_public_access,
                endpoint_private_access: e.endpoint_private_access,
                public_access_cidrs: ctx
                    .spec
                    .network
                    .admin_cidrs
                    .iter()
                    .map(ToString::to_string)
                    .collect(),
                tags: &ctx.tags(id, false),
                // A new VPC is a new cluster: a token from an earlier cluster of this name
                // (deleted since) must not answer for it.
                client_token: tags::client_token(&[name, &vpc, "cluster"]),
            };
            aws::eks::create_cluster(c, &input).await?;
            ctx.out().eks_created = true;
            "created"
        }
    };
    let known_active = ctx
        .obs
        .eks
        .as_ref()
        .filter(|k| k.owned && k.status == "ACTIVE");
    let active = match known_active {
        // Discovery just described it: no second DescribeCluster.
        Some(k) => aws::eks::EksCluster {
            name: k.name.clone(),
            arn: k.arn.clone(),
            status: k.status.clone(),
            endpoint: k.endpoint.clone(),
            ca_data: k.ca_data.clone(),
            version: Some(k.version.clone()),
            cluster_sg: k.cluster_sg.as_ref().map(|g| g.id.clone()),
            tags: Default::default(),
        },
        None => {
            aws::eks::wait_cluster_active_with(
                c,
                name,
                aws::eks::POLL_INTERVAL,
                ctx.eks_timeout,
                &progress(ctx, format!("EKS cluster {name}")),
            )
            .await?
        }
    };
    let detail = active.endpoint.clone();
    if let Some(sg) = &active.cluster_sg {
        ctx.out()
            .ids
            .insert(graph::EKS_CLUSTER_SG.into(), sg.clone());
    }
    ctx.out().eks = Some(active);
    ctx.done(id, kind, name, action, detail);
    Ok(())
}

/// The managed node group: created, scaled to the spec, or waited for.
async fn ensure_nodegroup(
    ctx: &Ctx,
    id: &str,
    kind: Kind,
    name: &str,
    subnets: &[String],
    scaling: (u32, u32, u32),
    labels: &std::collections::BTreeMap<String, String>,
) -> Result<(), AwsError> {
    let c = &ctx.c;
    let e = ctx
        .spec
        .eks()
        .ok_or_else(|| internal("an EKS node in a kubeadm graph"))?;
    let cluster = ctx.spec.name.as_str();
    let report = progress(ctx, format!("EKS node group {name}"));
    // A node group this run creates must become ACTIVE; one that exists may be DEGRADED.
    let wait = |accept_degraded: bool| {
        aws::eks::wait_nodegroup_active_with(
            c,
            cluster,
            name,
            aws::eks::POLL_INTERVAL,
            ctx.eks_timeout,
            accept_degraded,
            &report,
        )
    };
    match &ctx.obs.nodegroup {
        Some(g) if !g.owned => Err(AwsError::unexpected(
            "adopting EKS node group",
            name,
            format!(
                "it exists without the tag {}={}",
                tags::CLUSTER_TAG,
                ctx.spec.name
            ),
        )),
        Some(g) => {
            if matches!(g.status.as_str(), "CREATING" | "UPDATING") {
                wait(true).await?;
            }
            if g.status == "DEGRADED" {
                (ctx.events)(Event::Warning {
                    message: format!("node group {name} is DEGRADED: {}", g.issues.join("; ")),
                });
            }
            let rescale = ((g.min, g.max, g.desired) != scaling).then_some(scaling);
            let (add, remove) = plan::label_changes(labels, &g.labels);
            let mut detail = Vec::new();
            if rescale.is_some() {
                detail.push(format!(
                    "min/max/desired {}/{}/{} -> {}/{}/{}",
                    g.min, g.max, g.desired, scaling.0, scaling.1, scaling.2
                ));
            }
            if !add.is_empty() || !remove.is_empty() {
                detail.push(format!("labels: set {add:?}, remove {remove:?}"));
            }
            if detail.is_empty() {
                ctx.done(id, kind, name, "existing", None);
            } else {
                let detail = detail.join(", ");
                ctx.emit(id, kind, Some(name), "updating", Some(detail.clone()));
                aws::eks::update_nodegroup(
                    c,
                    cluster,
                    name,
                    rescale,
                    (add, remove),
                    ctx.eks_timeout,
                )
                .await?;
                ctx.done(id, kind, name, "updated", Some(detail));
            }
            Ok(())
        }
        None => {
            let subnet_ids: Vec<String> = subnets
                .iter()
                .map(|s| ctx.id(s))
                .collect::<Result<_, _>>()?;
            let role = ctx
                .out()
                .arns
                .get(graph::NODE_ROLE)
                .cloned()
                .ok_or_else(|| internal("node-role ran first"))?;
            let detail = format!(
                "{} x {} ({}..{})",
                scaling.2,
                e.nodegroup.instance_types.join("/"),
                scaling.0,
                scaling.1
            );
            ctx.emit(id, kind, None, "creating", Some(detail.clone()));
            let vpc = ctx.id(graph::VPC)?;
            aws::eks::create_nodegroup(
                c,
                &aws::eks::NodegroupInput {
                    cluster,
                    name,
                    spec: &e.nodegroup,
                    node_role_arn: &role,
                    subnet_ids,
                    launch_template: Some(ctx.id(graph::NODE_TEMPLATE)?),
                    tags: &ctx.tags(id, false),
                    client_token: tags::client_token(&[cluster, name, &vpc]),
                },
            )
            .await?;
            wait(false).await?;
            ctx.done(id, kind, name, "created", Some(detail));
            Ok(())
        }
    }
}

/// Puts an inline role policy unless the observed document is the same (compared as JSON).
async fn ensure_inline_policy(
    ctx: &Ctx,
    id: &str,
    kind: Kind,
    (role, policy): (&str, &str),
    (arn, doc): (&str, Option<String>),
    observed: Option<&str>,
    detail: String,
) -> Result<(), AwsError> {
    let doc = doc.ok_or_else(|| {
        AwsError::unexpected(
            "scoping the access of",
            role,
            format!("`{arn}` is not an IAM role ARN"),
        )
    })?;
    let json = |d: &str| serde_json::from_str::<serde_json::Value>(d).ok();
    if observed.and_then(json).is_some() && observed.and_then(json) == json(&doc) {
        ctx.done(id, kind, policy, "existing", None);
        return Ok(());
    }
    aws::iam::put_role_policy(&ctx.c, role, policy, &doc).await?;
    let action = if observed.is_some() {
        "updated"
    } else {
        "created"
    };
    ctx.done(id, kind, policy, action, Some(detail));
    Ok(())
}

/// A broken internal invariant: an error that asks for a bug report, never a panic.
fn internal(what: &str) -> AwsError {
    AwsError::unexpected(
        "provisioning",
        "the cluster",
        format!("internal error ({what}): please file a bug with this message"),
    )
}

/// Whether the master and every worker group already have their instances.
fn nothing_to_launch(ctx: &Ctx) -> bool {
    !ctx.graph.nodes.iter().any(|n| {
        matches!(n.desired, Desired::Master { .. } | Desired::Workers { .. })
            && plan::needs_launch(n, &ctx.obs)
    })
}

async fn launch(
    ctx: &Ctx,
    id: &str,
    subnet_logical: &str,
    count: i32,
    user_data: &str,
    sgs: Vec<String>,
    client_token: String,
) -> Result<Vec<ObsInstance>, AwsError> {
    let k = ctx
        .spec
        .kubeadm()
        .ok_or_else(|| internal("launching instances outside kubeadm"))?;
    let image = ctx
        .out()
        .images
        .get(graph::AMI)
        .cloned()
        .ok_or_else(|| internal("ami node ran first"))?;
    let subnet = ctx.id(subnet_logical)?;
    let profile = ctx.id(graph::NODE_PROFILE)?;
    let tags = ctx.tags(id, true);
    ctx.emit(
        id,
        Kind::Instance,
        None,
        "creating",
        Some(format!("{count} x {} in {subnet}", k.instance_type)),
    );
    let launched = aws::instance::run(
        &ctx.c,
        &aws::instance::Launch {
            logical: id,
            count,
            image: &image.id,
            root_device: &image.root_device,
            instance_type: &k.instance_type,
            subnet: &subnet,
            security_groups: sgs,
            instance_profile: &profile,
            user_data,
            key_name: k.key_name.as_deref(),
            volume_gb: k.root_volume_gb,
            tags: &tags,
            client_token,
        },
    )
    .await?;
    ctx.out()
        .instances
        .extend(launched.iter().map(|i| (id.to_string(), i.clone())));
    Ok(launched)
}
