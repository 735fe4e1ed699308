//! The CLI edge: arguments, progress on stderr, `--output json` on stdout, exit codes.
//!
//! Architecture invariant: this is the only module that knows about terminals, JSON output,
//! `anyhow` and process exit codes. Exit 0 ok, 2 bad spec or arguments, 1 anything else.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::aws::{self, CallCounter};
use crate::core::spec::{self, ClusterSpec, SpecError};
use crate::engine::down::DownOptions;
use crate::engine::up::{UpOptions, WaitFor};
use crate::engine::{Event, EventSink};

#[derive(Debug, Parser)]
#[command(
    name = "provision",
    version,
    about = "Kubernetes on AWS from one spec file, by direct AWS API calls"
)]
struct Cli {
    /// Output format: human progress on stderr, or JSON lines on stdout.
    #[arg(long, global = true, value_enum, default_value_t = Output::Human)]
    output: Output,
    /// Emit an event for every AWS API call (JSON output).
    #[arg(long, global = true, hide = true, env = "PROVISION_TRACE_API_CALLS")]
    trace_api_calls: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Output {
    Human,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create or resume the cluster described by the spec.
    Up(UpArgs),
    /// Show what `up` (or, with --destroy, `down`) would do; changes nothing.
    Plan(PlanArgs),
    /// Delete everything tagged with the cluster, in dependency order.
    Down(DownArgs),
    /// Check a spec without calling AWS.
    Validate(SpecArg),
    /// Print an EKS ExecCredential (a presigned STS token) for kubectl's exec plugin.
    Token(TokenArgs),
    /// Print the add-ons' generated passwords (Grafana, Elasticsearch, Kibana, Fluent Bit).
    Passwords(SpecArg),
    /// Remove the cluster lock whoever holds it (after a run was killed on another machine).
    Unlock(UnlockArgs),
}

#[derive(Debug, Args)]
struct UnlockArgs {
    /// The cluster spec; or give --name and --region.
    #[arg(short = 'f', long = "file", conflicts_with_all = ["name", "region"], required_unless_present_all = ["name", "region"])]
    file: Option<PathBuf>,
    #[arg(long, requires = "region")]
    name: Option<String>,
    #[arg(long, requires = "name")]
    region: Option<String>,
}

#[derive(Debug, Args)]
struct TokenArgs {
    /// The cluster's name, signed into the token.
    #[arg(long)]
    cluster: String,
    #[arg(long)]
    region: String,
}

#[derive(Debug, Args)]
struct SpecArg {
    /// The cluster spec (TOML).
    #[arg(short = 'f', long = "file")]
    file: PathBuf,
}

#[derive(Debug, Args)]
struct UpArgs {
    #[command(flatten)]
    spec: SpecArg,
    /// How far to wait: instances running, status checks passed, or the cluster Ready.
    #[arg(long, value_enum, default_value_t = WaitFor::Status)]
    wait: WaitFor,
    /// Kubeconfig to merge into (default: first of $KUBECONFIG, else ~/.kube/config).
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// Do not write a kubeconfig.
    #[arg(long, conflicts_with = "kubeconfig")]
    no_kubeconfig: bool,
    /// How many resources may be created at once.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=64))]
    concurrency: u16,
    /// Seconds to wait for instances to run (and pass status checks).
    #[arg(long, default_value_t = 900)]
    instance_timeout: u64,
    /// Reach the Kubernetes API through this URL (an SSH tunnel or VPN, e.g.
    /// https://127.0.0.1:6443) instead of the control plane's public IP, for --wait cluster and
    /// for minting join tokens. The kubeconfig keeps the public endpoint.
    #[arg(long, value_name = "URL")]
    api_server: Option<String>,
    /// Seconds to wait for the cluster with --wait cluster.
    #[arg(long, default_value_t = 1800)]
    cluster_timeout: u64,
    /// Seconds to wait for an EKS cluster, and then its node group, to become ACTIVE.
    #[arg(long, default_value_t = 1800)]
    eks_timeout: u64,
    /// Seconds to wait while another `up` or `down` of the cluster holds its lock (0: fail at once).
    #[arg(long, default_value_t = 1800)]
    lock_timeout: u64,
}

#[derive(Debug, Args)]
struct PlanArgs {
    #[command(flatten)]
    spec: SpecArg,
    /// Show what `down` would delete.
    #[arg(long)]
    destroy: bool,
}

#[derive(Debug, Args)]
struct DownArgs {
    /// The cluster spec; or give --name and --region.
    #[arg(short = 'f', long = "file", conflicts_with_all = ["name", "region"], required_unless_present_all = ["name", "region"])]
    file: Option<PathBuf>,
    /// Cluster name (with --region, no spec needed: the tags are enough).
    #[arg(long, requires = "region")]
    name: Option<String>,
    #[arg(long, requires = "name")]
    region: Option<String>,
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=64))]
    concurrency: u16,
    /// Seconds to wait for instances to terminate.
    #[arg(long, default_value_t = 900)]
    instance_timeout: u64,
    /// Seconds to wait for an EKS node group, and then the cluster, to be deleted.
    #[arg(long, default_value_t = 1800)]
    eks_timeout: u64,
    /// Seconds to wait while another `up` or `down` of the cluster holds its lock (0: fail at once).
    #[arg(long, default_value_t = 1800)]
    lock_timeout: u64,
}

/// The cluster a spec-less command works on: from `-f SPEC`, or `--name` and `--region`.
fn target(
    file: Option<&std::path::Path>,
    name: Option<String>,
    region: Option<String>,
    out: &Printer,
) -> Result<(String, String), Failure> {
    match (file, name, region) {
        (Some(f), _, _) => {
            let spec = load_spec(f, out)?;
            Ok((spec.name, spec.region))
        }
        (None, Some(n), Some(r)) => {
            spec::check_cluster_name(&n).map_err(|m| Failure::Usage(format!("--name: {m}")))?;
            if !spec::is_region(&r) {
                return Err(Failure::Usage(format!(
                    "--region: `{r}` is not an AWS region name"
                )));
            }
            Ok((n, r))
        }
        _ => Err(Failure::Usage(
            "give -f SPEC, or --name and --region".into(),
        )),
    }
}

/// Errors at the edge, sorted by exit code.
enum Failure {
    /// Exit 2.
    Usage(String),
    /// Exit 1.
    Run(anyhow::Error),
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Failure::Run(e)
    }
}

impl From<crate::engine::EngineError> for Failure {
    fn from(e: crate::engine::EngineError) -> Self {
        Failure::Run(e.into())
    }
}

impl From<crate::aws::AwsError> for Failure {
    fn from(e: crate::aws::AwsError) -> Self {
        Failure::Run(e.into())
    }
}

/// Parses arguments, runs the command, prints, and returns the exit code.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("PROVISION_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(m)) => {
            eprintln!("error: {m}");
            ExitCode::from(2)
        }
        Err(Failure::Run(e)) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn load_spec(path: &Path, out: &Printer) -> Result<ClusterSpec, Failure> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Failure::Usage(format!("reading spec {}: {e}", path.display())))?;
    match spec::parse(&path.display().to_string(), &text) {
        Ok((spec, warnings)) => {
            for w in warnings {
                out.event(&Event::Warning {
                    message: format!("{}: {}: {}", path.display(), w.field, w.message),
                });
            }
            Ok(spec)
        }
        Err(e) => {
            out.spec_error(&e);
            Err(Failure::Usage(e.to_string()))
        }
    }
}

async fn run(cli: Cli) -> Result<(), Failure> {
    let out = Arc::new(Printer {
        json: cli.output == Output::Json,
    });
    let hook: Option<aws::calls::CallHook> = cli.trace_api_calls.then(|| {
        let out = out.clone();
        Arc::new(move |s: &str, o: &str| {
            out.event(&Event::ApiCall {
                service: s.into(),
                operation: o.into(),
            })
        }) as aws::calls::CallHook
    });
    let calls = CallCounter::new(hook);
    let sink: EventSink = {
        let out = out.clone();
        Arc::new(move |e: Event| out.event(&e))
    };
    match cli.command {
        Command::Token(a) => {
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
        }
        Command::Passwords(a) => {
            let spec = load_spec(&a.file, &out)?;
            let c = aws::clients(&spec.region, calls.clone()).await;
            let name = crate::core::tags::addons_parameter_name(&spec.name);
            // Only a parameter of ours: never print someone else's secret of the same name.
            match aws::secret::owner_tag(&c, &name).await? {
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
            let p: aws::secret::AddonSecrets = aws::secret::get_json(&c, &name)
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
        }
        Command::Validate(a) => {
            let spec = load_spec(&a.file, &out)?;
            out.summary(serde_json::json!({"event": "summary", "command": "validate", "cluster": spec.name, "kind": spec.kind(), "valid": true}));
            if !out.json {
                let nodes = match &spec.flavor {
                    spec::Flavor::Kubeadm(k) => format!("{} workers", k.workers),
                    spec::Flavor::Eks(e) => format!(
                        "EKS {}, node group {}/{}/{} (min/max/desired)",
                        e.version, e.nodegroup.min, e.nodegroup.max, e.nodegroup.desired
                    ),
                };
                println!(
                    "{}: valid ({nodes}, {} availability zones)",
                    a.file.display(),
                    spec.network.subnet_cidrs.len()
                );
            }
        }
        Command::Plan(a) => {
            let spec = load_spec(&a.spec.file, &out)?;
            let c = aws::clients(&spec.region, calls.clone()).await;
            let items = if a.destroy {
                let (items, warnings) = crate::engine::plan::plan_down(&c, &spec.name).await?;
                for message in warnings {
                    out.event(&Event::Warning { message });
                }
                items
            } else {
                crate::engine::plan::plan_up(&c, &spec).await?
            };
            let rows: Vec<serde_json::Value> = items
                .iter()
                .map(|i| serde_json::json!({"id": i.id, "kind": i.kind.as_str(), "action": i.action.as_str(), "aws_id": i.aws_id, "changes": i.changes}))
                .collect();
            if !out.json {
                for i in &items {
                    let sign = match i.action.as_str() {
                        "create" => "+",
                        "update" => "~",
                        "delete" => "-",
                        "read" => "<",
                        _ => " ",
                    };
                    let changes = if i.changes.is_empty() {
                        String::new()
                    } else {
                        format!("  ({})", i.changes.join("; "))
                    };
                    println!(
                        "{sign} {:<22} {:<17} {:<8} {}{changes}",
                        i.id,
                        i.kind.as_str(),
                        i.action.as_str(),
                        i.aws_id.clone().unwrap_or_default()
                    );
                }
                let count = |a: &str| items.iter().filter(|i| i.action.as_str() == a).count();
                println!(
                    "plan: {} to create, {} to update, {} unchanged, {} to delete",
                    count("create"),
                    count("update"),
                    count("keep"),
                    count("delete")
                );
            }
            out.summary(serde_json::json!({
                "event": "summary", "command": if a.destroy { "plan-destroy" } else { "plan" },
                "cluster": spec.name, "kind": spec.kind(), "plan": rows, "api_calls": api_calls(&calls),
            }));
        }
        Command::Up(a) => {
            let spec = load_spec(&a.spec.file, &out)?;
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
            let c = aws::clients(&spec.region, calls.clone()).await;
            let opts = UpOptions {
                wait: a.wait,
                concurrency: usize::from(a.concurrency),
                kubeconfig,
                instance_timeout: Duration::from_secs(a.instance_timeout),
                cluster_timeout: Duration::from_secs(a.cluster_timeout),
                eks_timeout: Duration::from_secs(a.eks_timeout),
                lock_timeout: Duration::from_secs(a.lock_timeout),
                api_server: a.api_server.clone(),
            };
            let name = spec.name.clone();
            let kind = spec.kind();
            let report = match crate::engine::up::up(c, spec, &opts, sink).await {
                Ok(r) => r,
                Err(e) => {
                    out.summary(serde_json::json!({
                        "event": "summary", "command": "up", "cluster": name, "kind": kind, "ok": false,
                        "error": e.to_string(), "api_calls": api_calls(&calls),
                    }));
                    return Err(e.into());
                }
            };
            if !out.json {
                let created = report
                    .resources
                    .iter()
                    .filter(|r| r.action == "created")
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
                if a.wait < WaitFor::Cluster && !eks {
                    println!(
                        "  the nodes bootstrap themselves; `kubectl get nodes` shows them Ready in a few minutes (or use --wait cluster)"
                    );
                }
                println!("  API calls       {}", calls.total());
            }
            let mut v = serde_json::to_value(&report).map_err(|e| Failure::Run(e.into()))?;
            v["event"] = "summary".into();
            v["command"] = "up".into();
            v["ok"] = true.into();
            v["api_calls"] = api_calls(&calls);
            out.summary(v);
        }
        Command::Unlock(a) => {
            let (name, region) = target(a.file.as_deref(), a.name, a.region, &out)?;
            let c = aws::clients(&region, calls.clone()).await;
            let removed = crate::engine::lock::force_unlock(&c, &name).await?;
            match &removed {
                Some(h) => eprintln!("removed the lock of {name}, held by {}", h.describe()),
                None => eprintln!("{name} is not locked"),
            }
            out.summary(serde_json::json!({
                "event": "summary", "command": "unlock", "cluster": name, "ok": true,
                "removed": removed.as_ref().map(crate::core::lock::Holder::describe),
                "api_calls": api_calls(&calls),
            }));
        }
        Command::Down(a) => {
            let (name, region) = target(a.file.as_deref(), a.name, a.region, &out)?;
            let c = aws::clients(&region, calls.clone()).await;
            let opts = DownOptions {
                cluster: name.clone(),
                concurrency: usize::from(a.concurrency),
                instance_timeout: Duration::from_secs(a.instance_timeout),
                eks_timeout: Duration::from_secs(a.eks_timeout),
                lock_timeout: Duration::from_secs(a.lock_timeout),
            };
            let result = crate::engine::down::down(c, &opts, sink).await;
            let report = match result {
                Ok(r) => r,
                Err(e) => {
                    let remaining = match &e {
                        crate::engine::EngineError::Steps { remaining, .. } => remaining.clone(),
                        _ => Vec::new(),
                    };
                    out.summary(serde_json::json!({
                        "event": "summary", "command": "down", "cluster": name, "ok": false,
                        "error": e.to_string(), "remaining": remaining, "api_calls": api_calls(&calls),
                    }));
                    return Err(e.into());
                }
            };
            if !out.json {
                if report.resources.is_empty() {
                    println!(
                        "nothing tagged provision:cluster={name} in {region}: nothing to delete"
                    );
                } else {
                    println!(
                        "cluster {name} is down ({} resources deleted, {} API calls)",
                        report.resources.len(),
                        calls.total()
                    );
                }
            }
            let mut v = serde_json::to_value(&report).map_err(|e| Failure::Run(e.into()))?;
            v["event"] = "summary".into();
            v["command"] = "down".into();
            let eks = report.resources.iter().any(|r| r.kind == "eks-cluster");
            v["kind"] = if eks { "eks" } else { "kubeadm" }.into();
            v["ok"] = true.into();
            v["api_calls"] = api_calls(&calls);
            out.summary(v);
        }
    }
    Ok(())
}

fn api_calls(calls: &CallCounter) -> serde_json::Value {
    serde_json::json!({"total": calls.total(), "attempts": calls.attempts(), "by_operation": calls.by_operation()})
}

/// Turns events into output: human lines on stderr or JSON lines on stdout.
struct Printer {
    json: bool,
}

impl Printer {
    fn json_line(&self, v: &serde_json::Value) {
        use std::io::Write as _;
        let mut stdout = std::io::stdout().lock();
        let _ = writeln!(stdout, "{v}");
        let _ = stdout.flush();
    }

    fn event(&self, e: &Event) {
        if self.json {
            if let Ok(v) = serde_json::to_value(e) {
                self.json_line(&v);
            }
            return;
        }
        match e {
            Event::Phase { phase } => eprintln!("==> {phase}"),
            Event::Resource {
                id,
                kind,
                aws_id,
                action,
                elapsed_ms,
                detail,
            } => {
                let detail = detail
                    .as_ref()
                    .map(|d| format!(" ({d})"))
                    .unwrap_or_default();
                eprintln!(
                    "  {:>7.1}s  {action:<9} {kind:<17} {id:<22} {}{detail}",
                    *elapsed_ms as f64 / 1000.0,
                    aws_id.as_deref().unwrap_or("")
                );
            }
            Event::Waiting { what, elapsed_ms } => {
                eprintln!("  {:>7.1}s  waiting   {what}", *elapsed_ms as f64 / 1000.0)
            }
            Event::Warning { message } => eprintln!("warning: {message}"),
            Event::ApiCall { service, operation } => eprintln!("  api {service}:{operation}"),
        }
    }

    fn spec_error(&self, e: &SpecError) {
        if self.json {
            let issues: Vec<serde_json::Value> = e
                .issues
                .iter()
                .map(|i| serde_json::json!({"file": i.file, "line": i.line, "column": i.column, "field": i.field, "message": i.message}))
                .collect();
            self.json_line(
                &serde_json::json!({"event": "error", "kind": "spec", "issues": issues}),
            );
        }
    }

    fn summary(&self, v: serde_json::Value) {
        if self.json {
            self.json_line(&v);
        }
    }
}
