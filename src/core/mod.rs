//! The sans-IO core: everything here is pure and unit-tested.
//!
//! Architecture invariant: nothing in `core` depends on the AWS SDK, tokio, the file system or
//! the clock. Callers pass in what the outside world said (`Observed`) and the current time.

pub mod access;
pub mod addons;
pub mod cidr;
pub mod cloudinit;
pub mod events;
pub mod graph;
pub mod inventory;
pub mod kinds;
pub mod kubeconfig;
pub mod latency;
pub mod lock;
pub mod manifests;
pub mod observed;
pub mod pki;
pub mod plan;
pub mod progress;
pub mod spec;
pub mod stamp;
pub mod status;
pub mod tags;
pub mod teardown;
#[cfg(test)]
pub(crate) mod testing;
pub mod userdata;
