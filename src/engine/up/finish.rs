//! The end of `up`, once every node has run: one batched wait for the instances, the
//! kubeconfig, and with `--wait cluster` the API server and every node Ready.

use std::collections::HashMap;
use std::sync::Arc;

use super::{AddonReport, Run, UpOptions, UpReport, WaitFor};
use crate::aws;
use crate::core::graph::{self, MASTER};
use crate::core::kinds::Output;
use crate::core::kinds::instances::{ObsInstance, Role};
use crate::core::tags;
use crate::engine::EngineError;
use crate::kube::ProbeError;

/// Waits, writes the kubeconfig, probes; the report (its plan rows are the caller's).
pub(super) async fn finish(
    run: &Run,
    opts: &UpOptions,
    outputs: &HashMap<String, Arc<Output>>,
) -> Result<UpReport, EngineError> {
    let instances = instances(run, outputs);
    let report = UpReport {
        cluster: run.spec.name.clone(),
        kind: run.spec.kind().into(),
        region: run.spec.region.clone(),
        master_public_ip: None,
        master_private_ip: None,
        api_endpoint: None,
        kubeconfig: None,
        kubeconfig_context: opts.kubeconfig.as_ref().map(|_| run.spec.name.clone()),
        addons: Vec::new(),
        addon_secret: run
            .spec
            .addons
            .any()
            .then(|| tags::addons_parameter_name(&run.spec.name)),
        resources: Vec::new(),
        plan: Vec::new(),
        expires_at: run.plan.expires_at.map(crate::core::lock::unix_utc),
        lock: None,
    };
    let mut report = if run.spec.eks().is_some() {
        eks(run, opts, outputs, report).await?
    } else {
        kubeadm(run, opts, outputs, &instances, report).await?
    };
    if run.spec.eks().is_some() {
        let running = wait_instances(run, &instances, opts, false).await?;
        report.addons = addon_reports(&instances, &running);
    }
    report.resources = run.report.records();
    Ok(report)
}

/// Every instance the instance nodes launched or found, with its node and role.
fn instances(
    run: &Run,
    outputs: &HashMap<String, Arc<Output>>,
) -> Vec<(String, Role, ObsInstance)> {
    let mut out = Vec::new();
    for n in &run.plan.nodes {
        let role = match &n.item {
            crate::core::kinds::Item::Instances(d, _) => d.role,
            crate::core::kinds::Item::WorkerPool(..) => Role::Workers,
            _ => continue,
        };
        if let Some(Output::Instances(list)) = outputs.get(&n.id).map(|o| o.as_ref()) {
            out.extend(list.iter().map(|i| (n.id.clone(), role, i.clone())));
        }
    }
    out
}

/// One batched wait for the instances this run launched or found not running: until they run,
/// or with `status` until every instance has passed its status checks (polled directly: an
/// instance that is not running yet has not passed them). Then describes the control plane
/// and the add-ons, whose addresses are reported (the workers' are not).
async fn wait_instances(
    run: &Run,
    instances: &[(String, Role, ObsInstance)],
    opts: &UpOptions,
    status: bool,
) -> Result<HashMap<String, ObsInstance>, EngineError> {
    let c = &run.c;
    let waiting: Vec<String> = instances
        .iter()
        // Workers' addresses are not reported: running is enough.
        .filter(|(_, role, i)| {
            i.state != "running" || (*role != Role::Workers && i.public_ip.is_none())
        })
        .map(|(_, _, i)| i.id.clone())
        .collect();
    let mut running: HashMap<String, ObsInstance> = instances
        .iter()
        .map(|(_, _, i)| (i.id.clone(), i.clone()))
        .collect();
    let details: Vec<String> = instances
        .iter()
        .filter(|(_, role, i)| waiting.contains(&i.id) && *role != Role::Workers)
        .map(|(_, _, i)| i.id.clone())
        .collect();
    let described = if status {
        let all: Vec<String> = running.keys().cloned().collect();
        run.report.waiting(format!(
            "{} instance(s) to run and pass status checks",
            all.len()
        ));
        aws::instance_waits::wait_status_ok(c, &all, opts.instance_timeout).await?;
        aws::instance_waits::describe(c, &details).await?
    } else if waiting.is_empty() {
        Vec::new()
    } else {
        run.report
            .waiting(format!("{} instance(s) to run", waiting.len()));
        aws::instance_waits::wait_running(c, &waiting, &details, opts.instance_timeout).await?
    };
    for i in described {
        running.insert(i.id.clone(), i);
    }
    Ok(running)
}

/// The add-on instances, with their URLs.
fn addon_reports(
    instances: &[(String, Role, ObsInstance)],
    running: &HashMap<String, ObsInstance>,
) -> Vec<AddonReport> {
    instances
        .iter()
        .filter_map(|(_, role, i)| {
            let Role::Addon(a) = role else { return None };
            let i = running.get(&i.id).unwrap_or(i);
            Some(AddonReport {
                name: a.as_str().into(),
                instance_id: i.id.clone(),
                public_ip: i.public_ip.clone(),
                private_ip: i.private_ip.clone(),
                urls: crate::core::addons::urls(
                    *a,
                    i.public_ip.as_deref(),
                    i.private_ip.as_deref(),
                )
                .into_iter()
                .collect(),
            })
        })
        .collect()
}

async fn kubeadm(
    run: &Run,
    opts: &UpOptions,
    outputs: &HashMap<String, Arc<Output>>,
    instances: &[(String, Role, ObsInstance)],
    mut report: UpReport,
) -> Result<UpReport, EngineError> {
    run.report.phase("wait");
    let running = wait_instances(run, instances, opts, opts.wait >= WaitFor::Status).await?;
    let master = instances
        .iter()
        .find(|(id, _, _)| id == MASTER)
        .map(|(_, _, m)| running.get(&m.id).cloned().unwrap_or_else(|| m.clone()))
        .ok_or_else(|| aws::AwsError::internal("the master node ran"))?;
    let bootstrap = match outputs.get(graph::SECRET).map(|o| o.as_ref()) {
        Some(Output::Bootstrap(b)) => b.clone(),
        _ => return Err(aws::AwsError::internal("the bootstrap secret was loaded").into()),
    };
    let ca = bootstrap.ca();
    // The Elastic IP, once associated (its node is the graph's last): the instance's public
    // address as described before the association may already be gone.
    let address = match outputs.get(graph::MASTER_EIP).map(|o| o.as_ref()) {
        Some(Output::Address { ip, .. }) => Some(ip.clone()),
        _ => None,
    };
    let master_public_ip = address.or_else(|| master.public_ip.clone());
    let endpoint_ip = master_public_ip
        .clone()
        .or_else(|| master.private_ip.clone());
    let api_endpoint = endpoint_ip.as_ref().map(|ip| format!("https://{ip}:6443"));
    if let (Some(path), Some(server)) = (&opts.kubeconfig, &api_endpoint) {
        super::super::kubeconfig::write(path, &run.spec.name, server, &ca)
            .map_err(|e| kept(e, &run.spec.name))?;
        report.kubeconfig = Some(path.display().to_string());
    }
    if opts.wait == WaitFor::Cluster {
        let server = opts
            .api_server
            .clone()
            .or_else(|| api_endpoint.clone())
            .ok_or_else(|| ProbeError("the master has no IP address".into()))?;
        let want = 1 + run.spec.kubeadm().map_or(0, |k| k.workers() as usize);
        // Each node's boot phase as it reports it; the first failure ends the wait.
        let nodes: std::collections::BTreeMap<String, String> = instances
            .iter()
            .filter(|(_, role, _)| !matches!(role, Role::Addon(_)))
            // A worker by its zone's id (`workers-0`), as its instance is tagged.
            .map(|(id, _, i)| {
                (
                    i.id.clone(),
                    i.logical.clone().unwrap_or_else(|| id.clone()),
                )
            })
            .collect();
        tokio::select! {
            r = crate::kube::probe::wait_cluster(
                &server,
                &ca,
                want,
                opts.cluster_timeout,
                run.report.sink(),
                run.report.start(),
            ) => r?,
            e = crate::engine::nodes::watch(
                &run.c,
                &run.spec.name,
                &nodes,
                run.report.sink(),
                run.report.start(),
                run.stamp.at,
            ) => {
                return Err(match e {
                    EngineError::NodeFailed(m) => EngineError::NodeFailed(format!(
                        "{m}\nthe cluster is kept: fix the cause and run `provision up` again (a node that failed is not replaced by itself), or `provision down`"
                    )),
                    e => e,
                });
            }
        }
    }
    report.master_public_ip = master_public_ip;
    report.master_private_ip = master.private_ip.clone();
    report.api_endpoint = api_endpoint;
    report.addons = addon_reports(instances, &running);
    Ok(report)
}

/// The end of an EKS `up`: the endpoint, a kubeconfig whose user runs `provision token`, and
/// with `--wait cluster`, the node group's nodes Ready.
async fn eks(
    run: &Run,
    opts: &UpOptions,
    outputs: &HashMap<String, Arc<Output>>,
    mut report: UpReport,
) -> Result<UpReport, EngineError> {
    let cluster = match outputs.get(graph::EKS_CLUSTER).map(|o| o.as_ref()) {
        Some(Output::Eks(e)) => e.clone(),
        _ => return Err(aws::AwsError::internal("the eks-cluster node ran").into()),
    };
    let endpoint = cluster.endpoint.clone();
    if let (Some(path), Some(server)) = (&opts.kubeconfig, &endpoint) {
        let ca = cluster.ca_data.clone().unwrap_or_default();
        let (command, warning) = super::super::kubeconfig::exec_command();
        if let Some(message) = warning {
            (run.report.sink())(crate::core::events::Event::Warning { message });
        }
        super::super::kubeconfig::write_exec(
            path,
            &run.spec.name,
            server,
            &ca,
            &run.spec.region,
            &command,
            super::super::kubeconfig::profile().as_deref(),
        )
        .map_err(|e| kept(e, &run.spec.name))?;
        report.kubeconfig = Some(path.display().to_string());
    }
    if opts.wait == WaitFor::Cluster {
        let server = opts
            .api_server
            .clone()
            .or_else(|| endpoint.clone())
            .ok_or_else(|| ProbeError("the EKS cluster reports no endpoint".into()))?;
        let ca_pem = cluster
            .ca_data
            .as_deref()
            .and_then(|b| {
                base64::Engine::decode(&base64::engine::general_purpose::STANDARD, b).ok()
            })
            .and_then(|b| String::from_utf8(b).ok())
            .filter(|p| p.contains("BEGIN CERTIFICATE"))
            .ok_or_else(|| {
                ProbeError(
                    "the EKS cluster's certificateAuthority.data is not a PEM certificate".into(),
                )
            })?;
        // The certificate names the endpoint's host, also when --api-server tunnels to it.
        let host = endpoint
            .as_deref()
            .and_then(|e| e.strip_prefix("https://"))
            .map(|h| h.split(['/', ':']).next().unwrap_or(h).to_string());
        let client = crate::kube::probe::ApiClient::eks(
            &ca_pem,
            host.as_deref(),
            &run.spec.name,
            &run.spec.region,
        )
        .await
        .map_err(ProbeError)?;
        let want = run
            .plan
            .nodes
            .iter()
            .find_map(|n| match &n.item {
                crate::core::kinds::Item::Nodegroup(g, _) => Some(g.spec.desired as usize),
                _ => None,
            })
            .unwrap_or(0);
        crate::kube::probe::wait_cluster_with(
            &server,
            &client,
            want,
            opts.cluster_timeout,
            crate::kube::probe::POLL_INTERVAL,
            run.report.sink(),
            run.report.start(),
        )
        .await?;
    }
    report.api_endpoint = endpoint;
    Ok(report)
}

/// A kubeconfig that could not be written at the end of a run: the cluster stays, and the
/// message says how to get its kubeconfig.
fn kept(e: EngineError, cluster: &str) -> EngineError {
    match e {
        EngineError::Kubeconfig { path, message } => EngineError::Kubeconfig {
            path,
            message: format!(
                "{message}; cluster {cluster} is up and kept: run `provision up` again with a writable --kubeconfig to write it (nothing else changes)"
            ),
        },
        other => other,
    }
}
