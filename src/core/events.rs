//! Progress events: how the engine and the AWS layer tell the outside what they do. The CLI
//! edge turns them into human lines or JSON; nothing below it prints.

use std::sync::Arc;

use serde::Serialize;

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// A phase of the run begins.
    Phase {
        phase: String,
    },
    /// Something happened to one resource.
    Resource {
        id: String,
        kind: String,
        aws_id: Option<String>,
        action: Progress,
        elapsed_ms: u64,
        #[serde(skip_serializing_if = "Option::is_none")]
        detail: Option<String>,
    },
    /// Still waiting for something (sent periodically).
    Waiting {
        what: String,
        elapsed_ms: u64,
    },
    Warning {
        message: String,
    },
    /// A kubeadm node reported a new boot phase (or a failure) through SSM.
    Node {
        /// Its node in the graph (`master`, `workers-0`).
        node: String,
        instance: String,
        phase: String,
        state: crate::core::progress::State,
        /// Time in the phase, as the node's clock says.
        in_phase: String,
        elapsed_ms: u64,
    },
    /// One AWS API operation (only with `--trace-api-calls`).
    ApiCall {
        service: String,
        operation: String,
    },
}

/// Receives events; must be cheap and must not block.
pub type EventSink = Arc<dyn Fn(Event) + Send + Sync>;

/// A resource in the final summary.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ResourceRecord {
    pub id: String,
    pub aws_id: String,
    pub kind: String,
    /// Created, existing, updated or deleted.
    pub action: Progress,
}

/// What happened to a resource, as events and the summary name it.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Progress {
    /// Looked up (an image, the zones): nothing to make.
    Read,
    Creating,
    Created,
    Updating,
    Updated,
    /// Found as wanted: nothing done.
    Existing,
    Deleting,
    Deleted,
    Skipped,
    Started,
    Waiting,
    Failed,
}

impl Progress {
    pub fn as_str(self) -> &'static str {
        match self {
            Progress::Read => "read",
            Progress::Creating => "creating",
            Progress::Created => "created",
            Progress::Updating => "updating",
            Progress::Updated => "updated",
            Progress::Existing => "existing",
            Progress::Deleting => "deleting",
            Progress::Deleted => "deleted",
            Progress::Skipped => "skipped",
            Progress::Started => "started",
            Progress::Waiting => "waiting",
            Progress::Failed => "failed",
        }
    }

    /// An outcome the summary lists (not a step on the way).
    pub fn is_outcome(self) -> bool {
        matches!(
            self,
            Progress::Created | Progress::Updated | Progress::Existing | Progress::Deleted
        )
    }
}

impl std::fmt::Display for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
