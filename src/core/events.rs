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
        /// creating, created, existing, updated, deleting, deleted, failed
        action: String,
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
    /// created, existing, updated or deleted
    pub action: String,
}
