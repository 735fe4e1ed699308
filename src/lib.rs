//! provision: builds Kubernetes infrastructure on AWS by calling the AWS APIs directly.
//!
//! The crate has four layers with hard boundaries (see ARCHITECTURE.md):
//! - [`core`]: sans-IO. Spec, validation, the desired resource graph, plan/diff,
//!   cloud-init, PKI and kubeconfig rendering. No SDK, no tokio, no clock.
//! - [`aws`]: the AWS layer. SDK clients, one module per resource kind, retries, tagging.
//! - [`engine`]: runs the graph on tokio (concurrency, retries, events) for `up`, `down` and `plan`.
//! - [`cli`]: clap, progress on stderr, `--output json` on stdout, exit codes.

pub mod aws;
pub mod cli;
pub mod core;
pub mod engine;
