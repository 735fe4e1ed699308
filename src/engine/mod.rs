//! The engine: runs the resource graph on tokio for `up`, `down` and `plan`.
//!
//! Architecture invariant: the engine decides *when* things happen (concurrency, ordering,
//! waiting, retries across resources) and reports what happens as [`Event`]s; *what* a resource
//! should be comes from `core`, and *how* to talk to AWS from `aws`. It never prints: the CLI
//! edge turns events into human or JSON output.

pub mod dag;
pub mod down;
pub mod events;
pub mod kubeconfig;
pub mod lock;
pub mod plan;
pub mod probe;
pub mod up;

pub use events::{Event, EventSink, ResourceRecord};

use crate::aws::AwsError;

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
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Pki(#[from] crate::core::pki::PkiError),
    #[error("writing the kubeconfig {path}: {message}")]
    Kubeconfig { path: String, message: String },
    #[error("waiting for the cluster: {0}")]
    Probe(String),
}
