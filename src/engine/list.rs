//! `provision list`: the regions' surveys at once, each one region's few tag-filtered calls.

use futures::future::join_all;

use crate::aws::{self, AwsError, Clients};
use crate::core::inventory::{self, ClusterSummary};

/// Every cluster of ours in the regions of `clients`, by region then name; and the regions
/// whose survey failed, with why (the others are still listed).
pub async fn list(clients: &[Clients]) -> (Vec<ClusterSummary>, Vec<(String, AwsError)>) {
    let surveys = join_all(
        clients
            .iter()
            .map(|c| async move { (c.region.clone(), aws::inventory::survey(c).await) }),
    )
    .await;
    let mut clusters = Vec::new();
    let mut failed = Vec::new();
    for (region, s) in surveys {
        match s {
            Ok(s) => clusters.extend(inventory::clusters(&region, &s)),
            Err(e) => failed.push((region, e)),
        }
    }
    clusters.sort_by(|a, b| (&a.region, &a.name).cmp(&(&b.region, &b.name)));
    (clusters, failed)
}
