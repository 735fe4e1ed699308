//! The Kubernetes API: the readiness probe of `--wait cluster` and the bootstrap tokens of the
//! join-token kind.

pub mod drain;
pub mod join_token;
pub mod probe;
pub mod ready;

/// Waiting for the cluster failed: what was last seen, in one line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ProbeError(pub String);
