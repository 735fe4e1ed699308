//! Looking at a running cluster without changing it (`kubeconfig`, `status`): the same
//! discovery as `down` (everything tagged, of every flavour), with the bootstrap secret read and
//! no search for what Kubernetes made.

use super::EngineError;
use crate::aws::kind::Scope;
use crate::aws::{self, Clients};
use crate::core::kinds::Observed;

/// Everything tagged with `cluster` in the clients' region.
///
/// # Errors
/// When a lookup fails.
pub async fn observe(c: &Clients, cluster: &str) -> Result<Observed, EngineError> {
    let mut scope = Scope::down(cluster, &c.region);
    scope.leftovers = false;
    scope.secret_content = true;
    Ok(aws::discover::observe(c, &scope).await?)
}
