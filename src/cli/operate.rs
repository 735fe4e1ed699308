//! The commands that look after running clusters: `list` and `gc`.

use std::process::ExitCode;
use std::time::Duration;

use super::args::{GcArgs, RegionsArgs};
use super::printer::terminal_safe;
use super::{Edge, Failure};
use crate::aws::{self, Clients};
use crate::core::inventory::ClusterSummary;
use crate::core::lock::unix_utc;
use crate::core::spec;
use crate::engine::down::DownOptions;

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// Clients for each region asked for: checked before any call, `--all-regions` through
/// DescribeRegions.
async fn region_clients(edge: &Edge, a: &RegionsArgs) -> Result<Vec<Clients>, Failure> {
    for r in &a.regions {
        if !spec::is_region(r) {
            return Err(Failure::Usage(format!(
                "--region: `{r}` is not an AWS region name"
            )));
        }
    }
    let mut regions = a.regions.clone();
    if a.all_regions {
        let home = std::env::var("AWS_REGION")
            .ok()
            .filter(|r| spec::is_region(r))
            .unwrap_or_else(|| "us-east-1".into());
        regions = aws::inventory::regions(&edge.clients(&home).await).await?;
    }
    regions.sort();
    regions.dedup();
    let mut out = Vec::new();
    for r in regions {
        out.push(edge.clients(&r).await);
    }
    Ok(out)
}

fn summary_json(c: &ClusterSummary, now: i64) -> serde_json::Value {
    serde_json::json!({
        "name": c.name, "region": c.region, "kind": c.kind, "version": c.version,
        "status": c.status, "nodes": c.nodes, "created_by": c.created_by,
        "created_at": c.created_at.map(unix_utc), "age": c.age(now),
        "expires_at": c.expires_at.map(unix_utc),
        "expired": crate::core::stamp::expired(c.expires_at, now),
    })
}

fn print_table(clusters: &[ClusterSummary], now: i64) {
    println!(
        "{:<28} {:<14} {:<8} {:<9} {:<10} {:>5}  {:<8} {:<22} CREATED BY",
        "NAME", "REGION", "KIND", "VERSION", "STATUS", "NODES", "AGE", "EXPIRES"
    );
    for c in clusters {
        let line = format!(
            "{:<28} {:<14} {:<8} {:<9} {:<10} {:>5}  {:<8} {:<22} {}",
            c.name,
            c.region,
            c.kind,
            c.version.as_deref().unwrap_or("-"),
            c.status,
            c.nodes,
            c.age(now).unwrap_or_else(|| "-".into()),
            c.expiry(now),
            c.created_by.as_deref().unwrap_or("-")
        );
        println!("{}", terminal_safe(&line));
    }
}

pub(super) async fn list(edge: &Edge, a: RegionsArgs) -> Result<ExitCode, Failure> {
    let clients = region_clients(edge, &a).await?;
    let (clusters, failed) = crate::engine::list::list(&clients).await;
    let now = now();
    for (region, e) in &failed {
        eprintln!("error: {}", terminal_safe(&format!("{region}: {e}")));
    }
    if !edge.out.json {
        if clusters.is_empty() {
            println!(
                "no clusters of provision in {}",
                clients
                    .iter()
                    .map(|c| c.region.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        } else {
            print_table(&clusters, now);
        }
    }
    edge.out.summary(serde_json::json!({
        "event": "summary", "command": "list", "ok": failed.is_empty(),
        "regions": clients.iter().map(|c| c.region.clone()).collect::<Vec<_>>(),
        "clusters": clusters.iter().map(|c| summary_json(c, now)).collect::<Vec<_>>(),
        "failed_regions": failed.iter().map(|(r, e)| serde_json::json!({"region": r, "error": e.to_string()})).collect::<Vec<_>>(),
        "api_calls": edge.api_calls(),
    }));
    Ok(if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

pub(super) async fn gc(edge: &Edge, a: GcArgs) -> Result<ExitCode, Failure> {
    let clients = region_clients(edge, &a.regions).await?;
    let template = DownOptions {
        cluster: String::new(),
        concurrency: usize::from(a.concurrency),
        instance_timeout: Duration::from_secs(a.instance_timeout),
        eks_timeout: Duration::from_secs(a.eks_timeout),
        lock_timeout: Duration::from_secs(a.lock_timeout),
        // gc runs where the clusters' kubeconfigs are not (a scheduled job).
        kubeconfig: None,
        // Data is never deleted by a sweep: `down` names the volumes it keeps.
        teardown: crate::core::plan::Teardown::default(),
        only_expired_at: None,
    };
    let now = now();
    let report = crate::engine::gc::gc(
        &clients,
        &template,
        usize::from(a.clusters_at_once),
        a.dry_run,
        now,
        edge.sink.clone(),
    )
    .await;
    for (region, e) in &report.failed_regions {
        eprintln!("error: {}", terminal_safe(&format!("{region}: {e}")));
    }
    let mut rows = Vec::new();
    let mut failures = report.failed_regions.len();
    for o in &report.expired {
        let c = &o.cluster;
        let (state, detail, resources) = match &o.result {
            None => ("expired", "would be deleted (--dry-run)".to_string(), 0),
            Some(Ok(r)) => (
                "deleted",
                format!("{} resources deleted", r.resources.len()),
                r.resources.len(),
            ),
            Some(Err(crate::engine::EngineError::NotExpired { .. })) => (
                "kept",
                o.result
                    .as_ref()
                    .and_then(|r| r.as_ref().err())
                    .map(ToString::to_string)
                    .unwrap_or_default(),
                0,
            ),
            Some(Err(e)) => {
                failures += 1;
                ("failed", e.to_string(), 0)
            }
        };
        if !edge.out.json {
            let line = format!(
                "{:<8} {} ({}, {}, expired {}): {detail}",
                state,
                c.name,
                c.region,
                c.kind,
                c.expires_at.map(unix_utc).unwrap_or_default()
            );
            println!("{}", terminal_safe(&line));
        }
        rows.push(serde_json::json!({
            "name": c.name, "region": c.region, "kind": c.kind,
            "expires_at": c.expires_at.map(unix_utc), "result": state, "detail": detail,
            "resources_deleted": resources,
        }));
    }
    let kept = report.seen.len() - report.expired.len();
    if !edge.out.json {
        println!(
            "gc: {} expired of {} clusters seen in {}; {kept} not expired or without a ttl, left alone",
            report.expired.len(),
            report.seen.len(),
            clients
                .iter()
                .map(|c| c.region.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    edge.out.summary(serde_json::json!({
        "event": "summary", "command": "gc", "ok": failures == 0, "dry_run": a.dry_run,
        "regions": clients.iter().map(|c| c.region.clone()).collect::<Vec<_>>(),
        "seen": report.seen.len(), "expired": rows,
        "failed_regions": report.failed_regions.iter().map(|(r, e)| serde_json::json!({"region": r, "error": e.to_string()})).collect::<Vec<_>>(),
        "api_calls": edge.api_calls(),
    }));
    Ok(if failures == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

pub(super) async fn kubeconfig(
    edge: &Edge,
    a: super::args::KubeconfigArgs,
) -> Result<ExitCode, Failure> {
    use crate::core::access::Access;
    use crate::engine::kubeconfig as kc;
    let t = a.target;
    let (name, region) = super::target(t.file.as_deref(), t.name, t.region, &edge.out)?;
    let path = if a.print {
        None
    } else {
        let p = a
            .kubeconfig
            .clone()
            .or_else(kc::default_path)
            .ok_or_else(|| Failure::Usage("no kubeconfig path: set --kubeconfig or HOME".into()))?;
        kc::check(&p).map_err(|e| Failure::Usage(format!("--kubeconfig: {e}")))?;
        Some(p)
    };
    let c = edge.clients(&region).await;
    let obs = crate::engine::inspect::observe(&c, &name).await?;
    let access = crate::core::access::access(&name, &obs)
        .map_err(|m| Failure::Run(anyhow::anyhow!("{m}")))?;
    let (command, warning) = kc::exec_command();
    let profile = kc::profile();
    let text = match (&access, &path) {
        (Access::Kubeadm { server, ca }, Some(p)) => {
            kc::write(p, &name, server, ca)?;
            None
        }
        (Access::Kubeadm { server, ca }, None) => Some(kc::render(&name, server, ca)?),
        (Access::Eks { server, ca_base64 }, p) => {
            if let Some(message) = warning.filter(|_| p.is_some()) {
                edge.out.event(&crate::engine::Event::Warning { message });
            }
            match p {
                Some(p) => {
                    kc::write_exec(
                        p,
                        &name,
                        server,
                        ca_base64,
                        &region,
                        &command,
                        profile.as_deref(),
                    )?;
                    None
                }
                None => Some(kc::render_exec(
                    &name,
                    server,
                    ca_base64,
                    &region,
                    &command,
                    profile.as_deref(),
                )?),
            }
        }
    };
    let kind = match access {
        Access::Kubeadm { .. } => "kubeadm",
        Access::Eks { .. } => "eks",
    };
    if !edge.out.json {
        match (&text, &path) {
            (Some(t), _) => print!("{t}"),
            (None, Some(p)) => println!(
                "context {name} ({kind}, {}) written to {} (mode 0600)",
                access.server(),
                p.display()
            ),
            (None, None) => {}
        }
    }
    edge.out.summary(serde_json::json!({
        "event": "summary", "command": "kubeconfig", "ok": true, "cluster": name,
        "region": region, "kind": kind, "server": access.server(),
        "kubeconfig": path.as_ref().map(|p| p.display().to_string()),
        "context": name, "text": text, "api_calls": edge.api_calls(),
    }));
    Ok(ExitCode::SUCCESS)
}

pub(super) async fn status(edge: &Edge, a: super::args::StatusArgs) -> Result<ExitCode, Failure> {
    if let Some(url) = &a.api_server
        && (!url.starts_with("https://") || url.len() <= "https://".len())
    {
        return Err(Failure::Usage(format!(
            "--api-server: `{url}` is not an https:// URL"
        )));
    }
    let t = a.target;
    let spec = match &t.file {
        Some(f) => Some(super::load_spec(f, &edge.out)?),
        None => None,
    };
    let (name, region) = match &spec {
        Some(s) => (s.name.clone(), s.region.clone()),
        None => super::target(None, t.name, t.region, &edge.out)?,
    };
    let c = edge.clients(&region).await;
    let st =
        crate::engine::status::status(&c, &name, spec.as_ref(), a.api_server.as_deref()).await?;
    if !edge.out.json {
        print_status(&st);
    }
    let mut v = serde_json::to_value(&st).map_err(|e| Failure::Run(e.into()))?;
    v["event"] = "summary".into();
    v["command"] = "status".into();
    v["ok"] = true.into();
    v["api_calls"] = edge.api_calls();
    edge.out.summary(v);
    Ok(if st.healthy {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn print_status(st: &crate::core::status::Status) {
    let say = |s: String| println!("{}", terminal_safe(&s));
    say(format!(
        "cluster {} ({}, {}): {}",
        st.cluster,
        st.kind,
        st.region,
        if st.healthy { "healthy" } else { "DEGRADED" }
    ));
    if let Some(by) = &st.created_by {
        say(format!(
            "  made by {by} at {}",
            st.created_at.as_deref().unwrap_or("-")
        ));
    }
    if let Some(e) = &st.expires_at {
        say(format!(
            "  expires {e} (`provision gc` deletes it after that)"
        ));
    }
    if let Some(l) = &st.lock {
        say(format!("  locked by {l}"));
    }
    for p in &st.parts {
        say(format!(
            "  {:<17} {:<22} {:<30} {:<10} {}",
            p.kind,
            p.id,
            p.aws_id,
            p.state,
            p.detail.as_deref().unwrap_or("")
        ));
    }
    match (&st.nodes, &st.api_unreachable) {
        (Some(nodes), _) => {
            let ready = nodes.iter().filter(|n| n.ready).count();
            say(format!(
                "  nodes (from the API): {ready} Ready of {}",
                nodes.len()
            ));
            for n in nodes.iter().filter(|n| !n.ready) {
                say(format!("    {} NotReady", n.name));
            }
        }
        (None, Some(why)) => say(format!("  nodes: the API server could not be asked: {why}")),
        (None, None) => {}
    }
    for p in &st.problems {
        say(format!("  problem: {p}"));
    }
}
