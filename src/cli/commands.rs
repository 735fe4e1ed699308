//! One function per command: turn the arguments into options, call the engine, print.

use std::process::ExitCode;
use std::time::Duration;

use super::args::{DownArgs, PlanArgs, SpecArg, TokenArgs, UnlockArgs, UpArgs};
use super::{Edge, Failure, load_spec, target};
use crate::aws;
use crate::core::kinds::{Action, Row};
use crate::core::spec;
use crate::engine::down::DownOptions;
use crate::engine::up::{UpOptions, UpReport, WaitFor};
use crate::engine::{EngineError, Event};

pub(super) async fn token(a: TokenArgs) -> Result<ExitCode, Failure> {
    if a.cluster.is_empty()
        || !a
            .cluster
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(Failure::Usage(format!(
            "--cluster: `{}` is not a cluster name",
            a.cluster
        )));
    }
    if !spec::is_region(&a.region) {
        return Err(Failure::Usage(format!(
            "--region: `{}` is not an AWS region name",
            a.region
        )));
    }
    let cred = aws::token::exec_credential_for(&a.cluster, &a.region).await?;
    println!("{cred}");
    Ok(ExitCode::SUCCESS)
}

pub(super) async fn passwords(edge: &Edge, a: SpecArg) -> Result<ExitCode, Failure> {
    let out = &edge.out;
    let spec = load_spec(&a.file, out)?;
    let c = edge.clients(&spec.region).await;
    let name = crate::core::tags::addons_parameter_name(&spec.name);
    // Only a parameter of ours: never print someone else's secret of the same name.
    match aws::ssm::owner_tag(&c, &name).await? {
        Some(Some(owner)) if owner == spec.name => {}
        Some(_) => {
            return Err(Failure::Run(anyhow::anyhow!(
                "{name} exists without the tag {}={}: not printing it",
                crate::core::tags::CLUSTER_TAG,
                spec.name
            )));
        }
        None => {
            return Err(Failure::Run(anyhow::anyhow!(
                "{name} does not exist: the cluster has no add-ons (or `up` has not run)"
            )));
        }
    }
    let p: crate::core::kinds::addon_secret::AddonPasswords = aws::ssm::get_json(&c, &name)
        .await?
        .ok_or_else(|| Failure::Run(anyhow::anyhow!("{name} does not exist")))?;
    if out.json {
        out.summary(serde_json::json!({
            "event": "summary", "command": "passwords", "cluster": spec.name, "parameter": name,
            "grafana": {"user": "admin", "password": p.grafana_admin_password},
            "elasticsearch": {"user": "elastic", "password": p.elastic_password},
            "kibana_system": {"user": "kibana_system", "password": p.kibana_system_password},
            "fluent_bit": {"user": "fluent_bit", "password": p.fluent_bit_password},
        }));
    } else {
        eprintln!(
            "the add-ons' passwords of {} (from {name}): keep them out of logs",
            spec.name
        );
        println!("grafana        admin          {}", p.grafana_admin_password);
        println!("elasticsearch  elastic        {}", p.elastic_password);
        println!("kibana         kibana_system  {}", p.kibana_system_password);
        println!("fluent bit     fluent_bit     {}", p.fluent_bit_password);
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) fn validate(edge: &Edge, a: SpecArg) -> Result<ExitCode, Failure> {
    let out = &edge.out;
    let spec = load_spec(&a.file, out)?;
    out.summary(serde_json::json!({"event": "summary", "command": "validate", "cluster": spec.name, "kind": spec.kind(), "valid": true}));
    if !out.json {
        let nodes = match &spec.flavor {
            spec::Flavor::Kubeadm(k) => format!("{} workers", k.workers()),
            spec::Flavor::Eks(e) => format!(
                "EKS {}, node groups {} (min/max/desired)",
                e.version,
                e.nodegroups
                    .iter()
                    .map(|g| format!("{} {}/{}/{}", g.name, g.min, g.max, g.desired))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        println!(
            "{}: valid ({nodes}, {} availability zones)",
            a.file.display(),
            spec.network.subnet_cidrs.len()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `--force` skips EKS's upgrade insights.
fn with_force(spec: &mut spec::ClusterSpec, force: bool) {
    if let spec::Flavor::Eks(e) = &mut spec.flavor {
        e.skip_insights = force;
    }
}

/// `--ttl` replaces the spec's `ttl`, counted from now.
fn with_ttl(spec: &mut spec::ClusterSpec, ttl: Option<i64>) {
    if let Some(seconds) = ttl {
        spec.ttl = Some(crate::core::stamp::Ttl {
            seconds,
            from_now: true,
        });
    }
}

/// Prints a plan's rows for people: one line each, then the counts.
fn print_rows(rows: &[Row]) {
    for r in rows {
        let sign = match r.action {
            Action::Create => "+",
            Action::Update => "~",
            Action::Replace => "±",
            Action::Delete => "-",
            Action::Read => "<",
            Action::Refuse => "!",
            Action::Warn => "?",
            Action::Keep => " ",
        };
        let mut notes = r.changes.clone();
        notes.extend(r.warnings.iter().map(|w| format!("warning: {w}")));
        notes.extend(r.reason.iter().map(|w| format!("refused: {w}")));
        let notes = if notes.is_empty() {
            String::new()
        } else {
            format!("  ({})", notes.join("; "))
        };
        let line = format!(
            "{sign} {:<22} {:<17} {:<8} {}{notes}",
            r.id,
            r.kind,
            r.action.as_str(),
            r.aws_id.clone().unwrap_or_default()
        );
        println!("{}", super::printer::terminal_safe(&line));
    }
    let count = |a: Action| rows.iter().filter(|r| r.action == a).count();
    let mut line = format!(
        "plan: {} to create, {} to update, {} to replace, {} unchanged, {} to delete",
        count(Action::Create),
        count(Action::Update),
        count(Action::Replace),
        count(Action::Keep) + count(Action::Warn),
        count(Action::Delete)
    );
    if count(Action::Refuse) > 0 {
        line += &format!(
            "; up refuses ({} refusal(s)) and would change nothing",
            count(Action::Refuse)
        );
    }
    println!("{line}");
}

pub(super) async fn plan(edge: &Edge, a: PlanArgs) -> Result<ExitCode, Failure> {
    let out = &edge.out;
    let mut spec = load_spec(&a.spec.file, out)?;
    with_ttl(&mut spec, a.ttl);
    with_force(&mut spec, a.force);
    let c = edge.clients(&spec.region).await;
    let command = if a.destroy { "plan-destroy" } else { "plan" };
    let planned = if a.destroy {
        crate::engine::plan::plan_down(&c, &spec.name).await
    } else {
        crate::engine::plan::plan_up(&c, &spec, a.api_server.as_deref()).await
    };
    let (rows, warnings) = match planned {
        Ok(p) => p,
        Err(e) => {
            out.summary(serde_json::json!({
                "event": "summary", "command": command, "cluster": spec.name, "kind": spec.kind(),
                "ok": false, "error": e.to_string(), "api_calls": edge.api_calls(),
            }));
            return Err(e.into());
        }
    };
    for message in warnings {
        out.event(&Event::Warning { message });
    }
    if !out.json {
        print_rows(&rows);
    }
    let refused = rows.iter().any(|r| r.action == Action::Refuse);
    out.summary(serde_json::json!({
        "event": "summary", "command": command, "cluster": spec.name, "kind": spec.kind(),
        "ok": true, "plan": rows, "refused": refused, "api_calls": edge.api_calls(),
    }));
    Ok(if refused {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

pub(super) async fn up(edge: &Edge, a: UpArgs) -> Result<ExitCode, Failure> {
    let out = &edge.out;
    let mut spec = load_spec(&a.spec.file, out)?;
    with_ttl(&mut spec, a.ttl);
    with_force(&mut spec, a.force);
    if let Some(url) = &a.api_server
        && (!url.starts_with("https://") || url.len() <= "https://".len())
    {
        return Err(Failure::Usage(format!(
            "--api-server: `{url}` is not an https:// URL"
        )));
    }
    let kubeconfig = if a.no_kubeconfig {
        None
    } else {
        Some(
            a.kubeconfig
                .clone()
                .or_else(crate::engine::kubeconfig::default_path)
                .ok_or_else(|| {
                    Failure::Usage("no kubeconfig path: set --kubeconfig or HOME".into())
                })?,
        )
    };
    // Read and checked before anything changes on AWS: what the write at the end would refuse.
    if let Some(p) = &kubeconfig {
        crate::engine::kubeconfig::check(p)
            .map_err(|e| Failure::Usage(format!("--kubeconfig: {e}")))?;
    }
    let c = edge.clients(&spec.region).await;
    let opts = UpOptions {
        wait: a.wait,
        concurrency: usize::from(a.concurrency),
        kubeconfig,
        instance_timeout: Duration::from_secs(a.instance_timeout),
        cluster_timeout: Duration::from_secs(a.cluster_timeout),
        eks_timeout: Duration::from_secs(a.eks_timeout),
        lock_timeout: Duration::from_secs(a.lock_timeout),
        api_server: a.api_server.clone(),
        drain_timeout: Duration::from_secs(a.drain_timeout),
    };
    let (name, kind) = (spec.name.clone(), spec.kind());
    let report = match crate::engine::up::up(c, spec, &opts, edge.sink.clone()).await {
        Ok(r) => r,
        Err(e) => {
            let rows = match &e {
                EngineError::Refused { rows } => rows.clone(),
                _ => Vec::new(),
            };
            out.summary(serde_json::json!({
                "event": "summary", "command": "up", "cluster": name, "kind": kind, "ok": false,
                "error": e.to_string(), "plan": rows, "api_calls": edge.api_calls(),
            }));
            return Err(e.into());
        }
    };
    if !out.json {
        print_up(&report, a.wait, edge.calls.total());
    }
    let mut v = serde_json::to_value(&report).map_err(|e| Failure::Run(e.into()))?;
    v["event"] = "summary".into();
    v["command"] = "up".into();
    v["ok"] = true.into();
    v["api_calls"] = edge.api_calls();
    out.summary(v);
    Ok(ExitCode::SUCCESS)
}

/// What `up` made, for people.
fn print_up(report: &UpReport, wait: WaitFor, calls: u64) {
    let created = report
        .resources
        .iter()
        .filter(|r| r.action == crate::core::events::Progress::Created)
        .count();
    println!(
        "cluster {} is up ({} resources, {created} created)",
        report.cluster,
        report.resources.len()
    );
    let eks = report.kind == "eks";
    if !eks {
        println!(
            "  control plane   {} (private {})",
            report.master_public_ip.as_deref().unwrap_or("-"),
            report.master_private_ip.as_deref().unwrap_or("-")
        );
    }
    println!(
        "  API endpoint    {}",
        report.api_endpoint.as_deref().unwrap_or("-")
    );
    if let Some(k) = &report.kubeconfig {
        println!("  kubeconfig      {k} (context {})", report.cluster);
        if eks {
            println!(
                "  credentials     `provision token --cluster {} --region {}` (kubectl runs it)",
                report.cluster, report.region
            );
        }
    }
    for addon in &report.addons {
        for (what, url) in &addon.urls {
            println!("  {:<32} {url}", format!("{} {what}", addon.name));
        }
    }
    if let Some(p) = &report.addon_secret {
        println!(
            "  passwords       `provision passwords -f SPEC` (kept in the SSM SecureString {p}); the Grafana user is admin"
        );
    }
    if wait < WaitFor::Cluster && !eks {
        println!(
            "  the nodes bootstrap themselves; `kubectl get nodes` shows them Ready in a few minutes (or use --wait cluster)"
        );
    }
    if let Some(e) = &report.expires_at {
        println!("  expires         {e} (then `provision gc` deletes it; `up --ttl` extends it)");
    }
    println!("  API calls       {calls}");
}

pub(super) async fn unlock(edge: &Edge, a: UnlockArgs) -> Result<ExitCode, Failure> {
    let t = a.target;
    let (name, region) = target(t.file.as_deref(), t.name, t.region, &edge.out)?;
    let c = edge.clients(&region).await;
    let removed = crate::engine::lock::force_unlock(&c, &name).await?;
    match &removed {
        Some(h) => eprintln!("removed the lock of {name}, held by {}", h.describe()),
        None => eprintln!("{name} is not locked"),
    }
    edge.out.summary(serde_json::json!({
        "event": "summary", "command": "unlock", "cluster": name, "ok": true,
        "removed": removed.as_ref().map(crate::core::lock::Holder::describe),
        "api_calls": edge.api_calls(),
    }));
    Ok(ExitCode::SUCCESS)
}

pub(super) async fn down(edge: &Edge, a: DownArgs) -> Result<ExitCode, Failure> {
    let out = &edge.out;
    let t = a.target;
    let (name, region) = target(t.file.as_deref(), t.name, t.region, out)?;
    let kubeconfig = if a.no_kubeconfig {
        None
    } else {
        a.kubeconfig
            .clone()
            .or_else(crate::engine::kubeconfig::default_path)
    };
    let c = edge.clients(&region).await;
    let opts = DownOptions {
        kubeconfig,
        teardown: crate::core::plan::Teardown {
            delete_volumes: a.delete_volumes,
            keep_backups: a.keep_backups,
        },
        only_expired_at: None,
        cluster: name.clone(),
        concurrency: usize::from(a.concurrency),
        instance_timeout: Duration::from_secs(a.instance_timeout),
        eks_timeout: Duration::from_secs(a.eks_timeout),
        lock_timeout: Duration::from_secs(a.lock_timeout),
    };
    let report = match crate::engine::down::down(c, &opts, edge.sink.clone()).await {
        Ok(r) => r,
        Err(e) => {
            let remaining = match &e {
                EngineError::Steps { remaining, .. } => remaining.clone(),
                _ => Vec::new(),
            };
            out.summary(serde_json::json!({
                "event": "summary", "command": "down", "cluster": name, "ok": false,
                "error": e.to_string(), "remaining": remaining, "api_calls": edge.api_calls(),
            }));
            return Err(e.into());
        }
    };
    if !out.json {
        if report.resources.is_empty() {
            println!("nothing tagged provision:cluster={name} in {region}: nothing to delete");
        } else {
            println!(
                "cluster {name} is down ({} resources deleted, {} API calls)",
                report.resources.len(),
                edge.calls.total()
            );
        }
        if let Some(k) = &report.kubeconfig {
            println!("  its context, cluster and user are gone from {k}");
        }
    }
    let mut v = serde_json::to_value(&report).map_err(|e| Failure::Run(e.into()))?;
    v["event"] = "summary".into();
    v["command"] = "down".into();
    use crate::core::kinds::{Plan as _, eks_cluster::EksCluster, nodegroup::Nodegroup};
    // What was deleted says what the cluster was (a resumed `down` may find only part of it).
    let eks = report
        .resources
        .iter()
        .any(|r| [EksCluster::NAME, Nodegroup::NAME].contains(&r.kind.as_str()));
    v["kind"] = if eks { "eks" } else { "kubeadm" }.into();
    v["ok"] = true.into();
    v["api_calls"] = edge.api_calls();
    out.summary(v);
    Ok(ExitCode::SUCCESS)
}
