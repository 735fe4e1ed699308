//! `provision down`: find everything tagged with the cluster and delete it in dependency order.
//!
//! Needs no spec and no local state: the cluster name and region are enough. DependencyViolation
//! is retried with backoff; when `down` gives up it names the network interfaces that block.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::EngineError;
use super::dag::{self, Outcome};
use super::events::{Event, EventSink, ResourceRecord, ms_since};
use crate::aws::retry::{Backoff, is_dependency_violation, retry};
use crate::aws::{self, AwsError, Clients};
use crate::core::graph::{Kind, TeardownStep, teardown_order};
use crate::core::plan::{Leftovers, Observed, destroy_items};
use crate::core::tags;

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
}

/// What `down` reports.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DownReport {
    pub cluster: String,
    pub region: String,
    pub resources: Vec<ResourceRecord>,
    /// The cluster lock this run held.
    pub lock: Option<super::lock::LockReport>,
}

struct Ctx {
    c: Clients,
    obs: Observed,
    events: EventSink,
    start: Instant,
    records: Mutex<Vec<ResourceRecord>>,
}

impl Ctx {
    fn emit(&self, logical: &Option<String>, kind: Kind, aws_id: &str, action: &str) {
        (self.events)(Event::Resource {
            id: logical.clone().unwrap_or_else(|| "(untracked)".into()),
            kind: kind.as_str().into(),
            aws_id: Some(aws_id.into()),
            action: action.into(),
            elapsed_ms: ms_since(self.start),
            detail: None,
        });
        if action == "deleted" {
            self.records
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(ResourceRecord {
                    id: logical.clone().unwrap_or_else(|| "(untracked)".into()),
                    aws_id: aws_id.into(),
                    kind: kind.as_str().into(),
                    action: "deleted".into(),
                });
        }
    }
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
    let region = c
        .ec2
        .config()
        .region()
        .map_or_else(|| "REGION".to_string(), ToString::to_string);
    let lock = super::lock::acquire(
        &c,
        &opts.cluster,
        &region,
        "down",
        opts.lock_timeout,
        &events,
    )
    .await?;
    let result = down_locked(c, opts, events.clone(), lock.lost()).await;
    let report = lock.report();
    lock.release(&events).await;
    result.map(|r| DownReport {
        lock: Some(report),
        ..r
    })
}

async fn down_locked(
    c: Clients,
    opts: &DownOptions,
    events: EventSink,
    lost: Arc<std::sync::atomic::AtomicBool>,
) -> Result<DownReport, EngineError> {
    let start = Instant::now();
    events(Event::Phase {
        phase: "discover".into(),
    });
    let obs = aws::discover::observe(
        &c,
        &aws::discover::Scope {
            cluster: &opts.cluster,
            vpc_attributes: false,
            kind: None,
            leftovers: true,
            addons: true,
        },
    )
    .await?;
    let mut foreign: Vec<(&str, &String)> = obs
        .roles
        .iter()
        .filter(|r| !r.owned)
        .map(|r| ("IAM role", &r.name))
        .collect();
    foreign.extend(
        obs.profiles
            .iter()
            .filter(|p| !p.owned)
            .map(|p| ("instance profile", &p.name)),
    );
    foreign.extend(
        obs.eks
            .as_ref()
            .filter(|e| !e.owned)
            .map(|e| ("EKS cluster", &e.name)),
    );
    for w in &obs.warnings {
        events(Event::Warning { message: w.clone() });
    }
    for (what, name) in foreign {
        {
            events(Event::Warning {
                message: format!(
                    "{what} {name} is not tagged {}={}: left alone",
                    tags::CLUSTER_TAG,
                    opts.cluster
                ),
            });
        }
    }
    let region = c.region.clone();
    let items = destroy_items(&obs);
    // The second sweep of what Kubernetes made runs whenever there was an EKS cluster.
    let eks = obs.eks.as_ref().is_some_and(|e| e.owned);
    let steps: Vec<(TeardownStep, Vec<TeardownStep>)> = teardown_order()
        .into_iter()
        .filter(|(s, _)| {
            items.iter().any(|(t, _)| t == s) || (eks && *s == TeardownStep::NetworkInterfaces)
        })
        .collect();
    let ctx = Arc::new(Ctx {
        c,
        obs,
        events: events.clone(),
        start,
        records: Mutex::new(Vec::new()),
    });
    events(Event::Phase {
        phase: "delete".into(),
    });
    let total = steps.len();
    let timeout = opts.instance_timeout;
    let eks_timeout = opts.eks_timeout;
    let cluster = opts.cluster.clone();
    let results = dag::execute(steps, opts.concurrency, |step: TeardownStep| {
        let ctx = ctx.clone();
        let cluster = cluster.clone();
        let lost = lost.clone();
        async move {
            if lost.load(std::sync::atomic::Ordering::SeqCst) {
                return Err(super::up::lock_lost(&cluster));
            }
            run_step(&ctx, &cluster, step, timeout, eks_timeout).await
        }
    })
    .await;
    let failures: Vec<String> = results
        .iter()
        .filter_map(|(s, o)| match o {
            Outcome::Done => None,
            Outcome::Failed(e) => Some(format!("  {s}: {e}")),
            Outcome::Skipped(dep) => Some(format!("  {s}: not started because {dep} failed")),
        })
        .collect();
    let records = ctx
        .records
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    if !failures.is_empty() {
        let deleted: std::collections::HashSet<&str> =
            records.iter().map(|r| r.aws_id.as_str()).collect();
        let remaining: Vec<String> = items
            .iter()
            .filter_map(|(_, i)| {
                i.aws_id
                    .clone()
                    .filter(|id| !deleted.contains(id.as_str()))
                    .map(|id| format!("{} {id}", i.kind.as_str()))
            })
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
    })
}

/// Retries a delete while AWS reports DependencyViolation; on giving up, names what blocks.
async fn delete_with_blockers<F, Fut>(
    ctx: &Ctx,
    eni_filter: &str,
    id: &str,
    op: F,
) -> Result<(), AwsError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), AwsError>>,
{
    match retry(Backoff::dependency(), is_dependency_violation, op).await {
        Ok(()) => Ok(()),
        Err(e @ AwsError::Deadline { .. }) => {
            let blockers = aws::network::interfaces(&ctx.c, eni_filter, id)
                .await
                .unwrap_or_default();
            if blockers.is_empty() {
                Err(e)
            } else {
                let names: Vec<String> = blockers.iter().map(ToString::to_string).collect();
                Err(AwsError::unexpected(
                    "deleting",
                    id,
                    format!("{} (blocked by {})", e, names.join("; ")),
                ))
            }
        }
        Err(e) => Err(e),
    }
}

/// Deletes what Kubernetes made: load balancers, then their target groups, then their security
/// groups (after the rules that admit them), then interfaces.
async fn sweep(ctx: &Ctx, cluster: &str, l: &Leftovers) -> Result<(), AwsError> {
    let c = &ctx.c;
    let k8s = Some("(kubernetes)".to_string());
    let lbs = l.load_balancers.iter().map(|lb| async {
        ctx.emit(&k8s, Kind::LoadBalancer, &lb.id, "deleting");
        aws::leftovers::delete_load_balancer(c, lb).await?;
        ctx.emit(&k8s, Kind::LoadBalancer, &lb.id, "deleted");
        Ok::<_, AwsError>(())
    });
    futures::future::try_join_all(lbs).await?;
    let tgs = l.target_groups.iter().map(|tg| async {
        ctx.emit(&k8s, Kind::TargetGroup, tg, "deleting");
        aws::leftovers::delete_target_group(c, tg).await?;
        ctx.emit(&k8s, Kind::TargetGroup, tg, "deleted");
        Ok::<_, AwsError>(())
    });
    futures::future::try_join_all(tgs).await?;
    let vpcs: Vec<String> = ctx.obs.vpcs.iter().map(|v| v.id.clone()).collect();
    for g in &l.security_groups {
        ctx.emit(&k8s, Kind::SecurityGroup, g, "deleting");
        match aws::leftovers::delete_security_group(c, cluster, &vpcs, g).await {
            Err(e @ AwsError::Deadline { .. }) => {
                let mut blockers: Vec<String> = aws::network::interfaces(c, "group-id", g)
                    .await
                    .unwrap_or_default()
                    .iter()
                    .map(ToString::to_string)
                    .collect();
                blockers.extend(
                    aws::leftovers::referencing_groups(c, &vpcs, g)
                        .await
                        .unwrap_or_default()
                        .into_iter()
                        .map(|r| format!("a rule of security group {r} (not this cluster's)")),
                );
                if blockers.is_empty() {
                    blockers.push("nothing provision can see".into());
                }
                return Err(AwsError::unexpected(
                    "deleting the Kubernetes-made security group",
                    g,
                    format!("{e} (blocked by {})", blockers.join("; ")),
                ));
            }
            r => r?,
        }
        ctx.emit(&k8s, Kind::SecurityGroup, g, "deleted");
    }
    for n in &l.interfaces {
        ctx.emit(&k8s, Kind::NetworkInterface, n, "deleting");
        aws::leftovers::delete_interface(c, n).await?;
        ctx.emit(&k8s, Kind::NetworkInterface, n, "deleted");
    }
    Ok(())
}

async fn run_step(
    ctx: &Ctx,
    cluster: &str,
    step: TeardownStep,
    timeout: Duration,
    eks_timeout: Duration,
) -> Result<(), AwsError> {
    let c = &ctx.c;
    match step {
        TeardownStep::KubernetesLoadBalancers => {
            let mut first = ctx.obs.leftovers.clone();
            // Interfaces go in the second sweep, after the nodes and the cluster.
            first.interfaces.clear();
            sweep(ctx, cluster, &first).await?;
        }
        TeardownStep::Nodegroups => {
            if let Some(g) = ctx.obs.nodegroup.as_ref().filter(|g| g.owned) {
                let logical = Some(crate::core::graph::NODEGROUP.to_string());
                ctx.emit(&logical, Kind::Nodegroup, &g.name, "deleting");
                aws::eks::delete_nodegroup(c, cluster, &g.name, eks_timeout).await?;
                ctx.emit(&logical, Kind::Nodegroup, &g.name, "deleted");
            }
        }
        TeardownStep::LaunchTemplates => {
            for t in &ctx.obs.launch_templates {
                ctx.emit(&t.logical, Kind::LaunchTemplate, &t.id, "deleting");
                aws::launch_template::delete(c, &t.id).await?;
                ctx.emit(&t.logical, Kind::LaunchTemplate, &t.id, "deleted");
            }
        }
        TeardownStep::Addons => {
            if let Some(e) = ctx.obs.eks.as_ref().filter(|e| e.owned) {
                let logical = Some("addon".to_string());
                for a in &e.addons {
                    ctx.emit(&logical, Kind::Addons, a, "deleting");
                }
                aws::eks::delete_addons(c, &e.name, &e.addons, eks_timeout).await?;
                for a in &e.addons {
                    ctx.emit(&logical, Kind::Addons, a, "deleted");
                }
            }
        }
        TeardownStep::AccessEntries => {
            if let Some(e) = ctx.obs.eks.as_ref().filter(|e| e.owned) {
                let logical = Some("access-entry".to_string());
                // Ours only: the creator's entry goes with the cluster.
                let ours: Vec<String> = e
                    .access_entries
                    .iter()
                    .filter(|p| p.owned)
                    .map(|p| p.principal.clone())
                    .collect();
                for p in &ours {
                    ctx.emit(&logical, Kind::AccessEntries, p, "deleting");
                }
                aws::eks::delete_access_entries(c, &e.name, &ours).await?;
                for p in &ours {
                    ctx.emit(&logical, Kind::AccessEntries, p, "deleted");
                }
            }
        }
        TeardownStep::EksClusters => {
            if let Some(e) = ctx.obs.eks.as_ref().filter(|e| e.owned) {
                let logical = Some(crate::core::graph::EKS_CLUSTER.to_string());
                // EKS deletes the cluster's own security group with it, which it cannot while
                // our groups' rules name it (or its rules name ours): take those out first.
                if let Some(cg) = &e.cluster_sg {
                    let ours: Vec<&str> = ctx
                        .obs
                        .security_groups
                        .iter()
                        .map(|g| g.id.as_str())
                        .collect();
                    for g in &ctx.obs.security_groups {
                        let naming: Vec<_> = g
                            .rules
                            .iter()
                            .filter(|r| r.source == cg.id)
                            .cloned()
                            .collect();
                        aws::security_group::revoke(c, &g.id, &naming).await?;
                    }
                    let naming_ours: Vec<_> = cg
                        .rules
                        .iter()
                        .filter(|r| ours.contains(&r.source.as_str()))
                        .cloned()
                        .collect();
                    aws::security_group::revoke(c, &cg.id, &naming_ours).await?;
                }
                ctx.emit(&logical, Kind::EksCluster, &e.name, "deleting");
                retry(
                    Backoff::dependency(),
                    |err| err.code() == "ResourceInUseException",
                    || aws::eks::delete_cluster(c, &e.name, eks_timeout),
                )
                .await?;
                ctx.emit(&logical, Kind::EksCluster, &e.name, "deleted");
            }
        }
        TeardownStep::NetworkInterfaces => {
            // A second look, now that the nodes and the cluster are gone: controllers may have
            // made load balancers after the discovery, and the VPC CNI's interfaces become
            // `available` as the nodes terminate.
            let vpcs: Vec<String> = ctx.obs.vpcs.iter().map(|v| v.id.clone()).collect();
            let subnets: Vec<String> = ctx.obs.subnets.iter().map(|s| s.id.clone()).collect();
            match aws::leftovers::find(c, cluster, &vpcs, &subnets).await {
                Ok(again) => sweep(ctx, cluster, &again).await?,
                Err(e) if aws::error::is_access_denied(&e) => (ctx.events)(Event::Warning {
                    message: format!(
                        "could not look again for what Kubernetes made in the VPC ({e}); if anything is left, the VPC's deletion will name it"
                    ),
                }),
                Err(e) => return Err(e),
            }
        }
        TeardownStep::NatGateways => {
            let deletes = ctx
                .obs
                .nat_gateways
                .iter()
                .filter(|n| crate::core::plan::nat_is_live(&n.state))
                .map(|n| async move {
                    ctx.emit(&n.logical, Kind::NatGateway, &n.id, "deleting");
                    aws::network::delete_nat_gateway(c, &n.id).await?;
                    ctx.emit(&n.logical, Kind::NatGateway, &n.id, "deleted");
                    Ok::<_, AwsError>(())
                });
            futures::future::try_join_all(deletes).await?;
        }
        TeardownStep::ElasticIps => {
            for a in &ctx.obs.addresses {
                ctx.emit(&a.logical, Kind::ElasticIp, &a.allocation_id, "deleting");
                // The NAT gateway's deletion frees the address a little after it reports deleted.
                retry(
                    Backoff::dependency(),
                    |e| matches!(e.code(), "InvalidIPAddress.InUse" | "AuthFailure"),
                    || aws::network::release_address(c, &a.allocation_id),
                )
                .await?;
                ctx.emit(&a.logical, Kind::ElasticIp, &a.allocation_id, "deleted");
            }
        }
        TeardownStep::Instances => {
            let live: Vec<_> = ctx
                .obs
                .instances
                .iter()
                .filter(|i| i.state != "terminated")
                .collect();
            let ids: Vec<String> = live.iter().map(|i| i.id.clone()).collect();
            for i in &live {
                ctx.emit(&i.logical, Kind::Instance, &i.id, "deleting");
            }
            aws::instance::terminate(c, &ids, timeout).await?;
            for i in &live {
                ctx.emit(&i.logical, Kind::Instance, &i.id, "deleted");
            }
        }
        TeardownStep::SecurityGroups => {
            // A group that another remaining group's rules name goes after that group: delete,
            // round by round, the groups nothing left references.
            let mut remaining = ctx.obs.security_groups.clone();
            while !remaining.is_empty() {
                let referenced = |g: &crate::core::plan::ObsSg| {
                    remaining
                        .iter()
                        .any(|o| o.id != g.id && o.rules.iter().any(|r| r.source == g.id))
                };
                let mut round: Vec<crate::core::plan::ObsSg> = remaining
                    .iter()
                    .filter(|g| !referenced(g))
                    .cloned()
                    .collect();
                if round.is_empty() {
                    // A cycle (not one provision makes): try them all; AWS names the blocker.
                    round = remaining.clone();
                }
                for g in &round {
                    ctx.emit(&g.logical, Kind::SecurityGroup, &g.id, "deleting");
                    delete_with_blockers(ctx, "group-id", &g.id, || {
                        aws::security_group::delete(c, &g.id)
                    })
                    .await?;
                    ctx.emit(&g.logical, Kind::SecurityGroup, &g.id, "deleted");
                }
                remaining.retain(|g| !round.iter().any(|r| r.id == g.id));
            }
        }
        TeardownStep::RouteTables => {
            for r in &ctx.obs.route_tables {
                ctx.emit(&r.logical, Kind::RouteTable, &r.id, "deleting");
                aws::network::delete_route_table(c, &r.id, &r.associations).await?;
                ctx.emit(&r.logical, Kind::RouteTable, &r.id, "deleted");
            }
        }
        TeardownStep::InternetGateways => {
            for g in &ctx.obs.igws {
                ctx.emit(&g.logical, Kind::InternetGateway, &g.id, "deleting");
                let vpc = g.attached_vpcs.first().cloned().unwrap_or_default();
                delete_with_blockers(ctx, "vpc-id", &vpc, || {
                    aws::network::delete_igw(c, &g.id, &g.attached_vpcs)
                })
                .await?;
                ctx.emit(&g.logical, Kind::InternetGateway, &g.id, "deleted");
            }
        }
        TeardownStep::Subnets => {
            // Interfaces in our subnets that are not our (terminated) instances' belong to
            // someone else: AWS would refuse the delete (the emulator would not), so wait for
            // them to go and name them if they stay.
            let ours: std::collections::HashSet<&str> =
                ctx.obs.instances.iter().map(|i| i.id.as_str()).collect();
            // Our NAT gateways' interfaces go with the gateways (deleted before this step).
            let nat_enis: std::collections::HashSet<&str> = ctx
                .obs
                .nat_gateways
                .iter()
                .flat_map(|n| n.interfaces.iter().map(String::as_str))
                .collect();
            for s in &ctx.obs.subnets {
                retry(Backoff::dependency(), is_dependency_violation, || async {
                    let foreign: Vec<aws::network::Interface> = aws::network::interfaces(c, "subnet-id", &s.id)
                        .await?
                        .into_iter()
                        .filter(|n| n.instance.as_deref().is_none_or(|i| !ours.contains(i)))
                        .filter(|n| !nat_enis.contains(n.id.as_str()))
                        .collect();
                    // An interface of a terminated instance is on its way out (AWS deletes it; the
                    // delete below retries DependencyViolation until it has).
                    let attached: Vec<String> = foreign.iter().filter_map(|n| n.instance.clone()).collect();
                    let gone = aws::instance::terminated(c, &attached).await?;
                    let left: Vec<String> = foreign
                        .iter()
                        .filter(|n| n.instance.as_ref().is_none_or(|i| !gone.contains(i)))
                        .map(ToString::to_string)
                        .collect();
                    if left.is_empty() {
                        Ok(())
                    } else {
                        Err(AwsError::Api {
                            doing: "deleting".into(),
                            resource: s.id.clone(),
                            code: "DependencyViolation".into(),
                            message: format!("network interfaces provision does not own are still in the subnet: {}", left.join("; ")),
                        })
                    }
                })
                .await?;
            }
            let deletes = ctx.obs.subnets.iter().map(|s| async move {
                ctx.emit(&s.logical, Kind::Subnet, &s.id, "deleting");
                delete_with_blockers(ctx, "subnet-id", &s.id, || {
                    aws::network::delete_subnet(c, &s.id)
                })
                .await?;
                ctx.emit(&s.logical, Kind::Subnet, &s.id, "deleted");
                Ok::<_, AwsError>(())
            });
            futures::future::try_join_all(deletes).await?;
        }
        TeardownStep::Vpcs => {
            for v in &ctx.obs.vpcs {
                ctx.emit(&v.logical, Kind::Vpc, &v.id, "deleting");
                delete_with_blockers(ctx, "vpc-id", &v.id, || aws::network::delete_vpc(c, &v.id))
                    .await?;
                ctx.emit(&v.logical, Kind::Vpc, &v.id, "deleted");
            }
        }
        TeardownStep::InstanceProfiles => {
            for p in ctx.obs.profiles.iter().filter(|p| p.owned) {
                let logical = Some(p.logical.clone());
                ctx.emit(&logical, Kind::InstanceProfile, &p.name, "deleting");
                aws::iam::delete_instance_profile(c, p).await?;
                ctx.emit(&logical, Kind::InstanceProfile, &p.name, "deleted");
            }
        }
        TeardownStep::Roles => {
            let deletes = ctx
                .obs
                .roles
                .iter()
                .filter(|r| r.owned)
                .map(|r| async move {
                    let logical = Some(r.logical.clone());
                    ctx.emit(&logical, Kind::IamRole, &r.name, "deleting");
                    retry(Backoff::dependency(), is_dependency_violation, || {
                        aws::iam::delete_role(c, &r.name)
                    })
                    .await?;
                    ctx.emit(&logical, Kind::IamRole, &r.name, "deleted");
                    Ok::<_, AwsError>(())
                });
            futures::future::try_join_all(deletes).await?;
        }
        TeardownStep::Secrets => {
            for (logical, sec) in [
                (crate::core::graph::SECRET, &ctx.obs.secret),
                (crate::core::graph::ADDONS_SECRET, &ctx.obs.addon_secret),
                (
                    crate::core::graph::ADDONS_SECRET,
                    &ctx.obs.log_writer_secret,
                ),
            ] {
                if let Some(s) = sec.as_ref().filter(|s| s.owned) {
                    let logical = Some(logical.to_string());
                    ctx.emit(&logical, Kind::Secret, &s.name, "deleting");
                    aws::secret::delete(c, &s.name).await?;
                    ctx.emit(&logical, Kind::Secret, &s.name, "deleted");
                }
            }
        }
    }
    Ok(())
}
