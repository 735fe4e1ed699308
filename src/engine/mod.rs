//! The engine: runs the plan on tokio for `up`, the teardown steps for `down`, discovery and the
//! plan for `plan`.
//!
//! Architecture invariant: the engine decides *when* things happen (concurrency, ordering, the
//! lock, waiting for the cluster) and executes the plan `core` decided, passing each node the
//! typed outputs of its dependencies; *what* changes comes from `core`, and *how* to talk to AWS
//! from `aws` (and to Kubernetes from `kube`). It never prints: it reports [`Event`]s to a sink
//! the CLI provides.

pub mod dag;
pub mod down;
pub mod events;
pub mod gc;
pub mod inspect;
pub mod kubeconfig;
pub mod list;
pub mod lock;
pub mod nodes;
pub mod plan;
pub(crate) mod registry;
pub mod signals;
pub mod status;
pub mod up;

pub use events::{Event, EventSink, ResourceRecord};

use crate::aws::AwsError;
use crate::core::kinds::Row;

/// Errors of an engine run.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Aws(#[from] AwsError),
    #[error("{failed} of {total} steps failed:\n{details}")]
    Steps {
        failed: usize,
        total: usize,
        details: String,
        remaining: Vec<String>,
    },
    /// The plan refuses: nothing was changed. The rows are the whole plan.
    #[error("{}", refusals(.rows))]
    Refused { rows: Vec<Row> },
    /// The cluster lock could not be taken (or removed).
    #[error("{0}")]
    Lock(String),
    #[error(transparent)]
    Pki(#[from] crate::core::pki::PkiError),
    #[error("writing the kubeconfig {path}: {message}")]
    Kubeconfig { path: String, message: String },
    /// SIGINT or SIGTERM: the steps in flight were stopped; the lock released unless said.
    #[error("stopped by {}: the steps in flight were stopped{}; what was made is tagged: run the same command again to continue", .signal.name(), if *.released { " and the cluster lock released" } else { " (the cluster lock could not be released: see the warning)" })]
    Interrupted {
        signal: signals::Signal,
        released: bool,
    },
    #[error("waiting for the cluster: {0}")]
    Probe(#[from] crate::kube::ProbeError),
    /// A node reported a failed boot step: the wait ends at once.
    #[error("{0}")]
    NodeFailed(String),
    /// `gc` found the cluster's expiry moved (or gone) once it held the lock: nothing deleted.
    #[error("{cluster} is not expired any more ({}): left alone", match .expires_at { Some(e) => format!("it expires {}", crate::core::lock::unix_utc(*e)), None => "it has no expiry".into() })]
    NotExpired {
        cluster: String,
        expires_at: Option<i64>,
    },
}

impl EngineError {
    /// An interruption, saying whether the lock was then released; any other error as it is.
    pub(crate) fn after_release(self, released: bool) -> EngineError {
        match self {
            EngineError::Interrupted { signal, .. } => {
                EngineError::Interrupted { signal, released }
            }
            e => e,
        }
    }
}

/// The refusals of a plan, one line each.
fn refusals(rows: &[Row]) -> String {
    let lines: Vec<String> = rows
        .iter()
        .filter_map(|r| {
            r.reason.as_ref().map(|why| {
                let aws = r
                    .aws_id
                    .as_deref()
                    .map(|a| format!(" {a}"))
                    .unwrap_or_default();
                format!("{} ({}{aws}): {why}", r.id, r.kind)
            })
        })
        .collect();
    format!("up refuses, and changed nothing:\n  {}", lines.join("\n  "))
}
