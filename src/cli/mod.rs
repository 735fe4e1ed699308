//! The CLI edge: arguments, progress on stderr, `--output json` on stdout, exit codes.
//!
//! Architecture invariant: this is the only module that knows about terminals, JSON output,
//! `anyhow`, the process environment (read once here, passed down) and exit codes. Exit 0 ok,
//! 2 bad spec or arguments, 1 anything else (`plan`: 1 when `up` would refuse).

mod args;
mod commands;
mod operate;
mod printer;

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;

use crate::aws::{self, CallCounter, Clients, Tuning};
use crate::core::spec::{self, ClusterSpec};
use crate::engine::{Event, EventSink};
use args::{Cli, Command, Output};
use printer::Printer;

/// Errors at the edge, sorted by exit code.
pub(crate) enum Failure {
    /// Exit 2.
    Usage(String),
    /// Exit 1.
    Run(anyhow::Error),
    /// Stopped by a signal: 130 or 143.
    Signal(u8, String),
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Failure::Run(e)
    }
}

impl From<crate::engine::EngineError> for Failure {
    fn from(e: crate::engine::EngineError) -> Self {
        match e {
            crate::engine::EngineError::Interrupted { signal, .. } => {
                Failure::Signal(signal.exit_code(), e.to_string())
            }
            e => Failure::Run(e.into()),
        }
    }
}

impl From<crate::aws::AwsError> for Failure {
    fn from(e: crate::aws::AwsError) -> Self {
        Failure::Run(e.into())
    }
}

/// What every command works with.
pub(crate) struct Edge {
    pub out: Arc<Printer>,
    pub calls: CallCounter,
    pub sink: EventSink,
    pub tuning: Tuning,
}

impl Edge {
    /// SDK clients for `region`, counting calls, with the knobs read from the environment.
    async fn clients(&self, region: &str) -> Clients {
        aws::clients(region, self.calls.clone(), self.tuning).await
    }

    fn api_calls(&self) -> serde_json::Value {
        serde_json::json!({
            "total": self.calls.total(),
            "attempts": self.calls.attempts(),
            "by_operation": self.calls.by_operation(),
        })
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
                // The SDK's credential chain warns with a Debug dump of every provider it tried;
                // a run without credentials fails with our own one-line error instead. The
                // Kubernetes client logs every failed connection as an error: `status` and the
                // waits say themselves, in one line, why the API server could not be asked.
                .unwrap_or_else(|_| {
                    tracing_subscriber::EnvFilter::new("warn,aws_config=error,kube_client=off")
                }),
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
        Ok(code) => code,
        Err(Failure::Usage(m)) => {
            eprintln!("error: {}", printer::terminal_safe(&m));
            ExitCode::from(2)
        }
        // Our own message only: it names what we were doing, to which resource, and AWS's
        // code; the SDK's error behind it (kept as the source) is for debug logs.
        Err(Failure::Run(e)) => {
            tracing::debug!(error = ?e, "the error's whole chain");
            eprintln!("error: {}", printer::terminal_safe(&e.to_string()));
            ExitCode::from(1)
        }
        Err(Failure::Signal(code, m)) => {
            eprintln!("error: {}", printer::terminal_safe(&m));
            ExitCode::from(code)
        }
    }
}

async fn run(cli: Cli) -> Result<ExitCode, Failure> {
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
    let sink: EventSink = {
        let out = out.clone();
        Arc::new(move |e: Event| out.event(&e))
    };
    let edge = Edge {
        out,
        calls: CallCounter::new(hook),
        sink,
        tuning: Tuning::from_env(|k| std::env::var(k).ok()),
    };
    let watch = tokio::spawn(unanswered_calls(
        edge.calls.clone(),
        edge.sink.clone(),
        edge.tuning.call_timeout,
    ));
    let result = dispatch(&edge, cli.command).await;
    watch.abort();
    result
}

/// Says which call is waiting for an answer, 5 s after it was sent (or half the attempt's
/// time, when that is shorter) and every 15 s after that:
/// an endpoint that accepts and never answers is named while it happens, not only when the
/// call's time is up.
async fn unanswered_calls(calls: CallCounter, sink: EventSink, attempt_timeout: Duration) {
    let mut said: std::collections::HashMap<u64, Duration> = std::collections::HashMap::new();
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let after = Duration::from_secs(5).min(attempt_timeout / 2);
        // An attempt cannot outlive its timeout: anything older was cancelled from outside.
        for (id, info, age) in calls.unanswered(after, attempt_timeout + Duration::from_secs(5)) {
            if said
                .get(&id)
                .is_none_or(|last| age >= *last + Duration::from_secs(15))
            {
                sink(Event::Waiting {
                    what: format!(
                        "an answer from {} {} at {} (an attempt is given up after {} s)",
                        info.service.to_uppercase(),
                        info.operation,
                        info.endpoint,
                        attempt_timeout.as_secs()
                    ),
                    elapsed_ms: u64::try_from(age.as_millis()).unwrap_or(u64::MAX),
                });
                said.insert(id, age);
            }
        }
    }
}

async fn dispatch(edge: &Edge, command: Command) -> Result<ExitCode, Failure> {
    match command {
        Command::Token(a) => commands::token(a).await,
        Command::Passwords(a) => commands::passwords(edge, a).await,
        Command::Validate(a) => commands::validate(edge, a),
        Command::Plan(a) => commands::plan(edge, a).await,
        Command::Up(a) => commands::up(edge, a).await,
        Command::Unlock(a) => commands::unlock(edge, a).await,
        Command::Down(a) => commands::down(edge, a).await,
        Command::List(a) => operate::list(edge, a).await,
        Command::Gc(a) => operate::gc(edge, a).await,
        Command::Kubeconfig(a) => operate::kubeconfig(edge, a).await,
        Command::Status(a) => operate::status(edge, a).await,
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

/// The cluster a spec-less command works on: from `-f SPEC`, or `--name` and `--region`.
fn target(
    file: Option<&Path>,
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
