//! provision: builds Kubernetes infrastructure on AWS by calling the AWS APIs directly.
//!
//! The crate has five layers with hard boundaries (see ARCHITECTURE.md):
//! - [`core`]: sans-IO. Spec, validation, the desired resource graph, the resource kinds and
//!   their diffs (the plan), user data, PKI and kubeconfig rendering. No SDK, no tokio, no clock.
//! - [`aws`]: the AWS layer. SDK clients, one module per resource kind (observe, apply a planned
//!   change, delete), retries, polling, tagging.
//! - [`kube`]: the Kubernetes API (readiness, bootstrap tokens).
//! - [`engine`]: executes the plan on tokio (ordering, concurrency, the lock, typed outputs from
//!   node to node) for `up`, `down` and `plan`.
//! - [`cli`]: clap, progress on stderr, `--output json` on stdout, exit codes.

pub mod aws;
pub mod cli;
pub mod core;
pub mod engine;
pub mod kube;
