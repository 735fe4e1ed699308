//! `provision gc`: `down` for every cluster of ours whose expiry has passed, clusters at once up
//! to a bound, each under its own lock and with its expiry read again under that lock (an
//! `up --ttl` in the meantime keeps it). A cluster without an expiry tag is never touched.

use futures::StreamExt as _;

use super::EngineError;
use super::down::{DownOptions, DownReport};
use super::events::EventSink;
use crate::aws::{AwsError, Clients};
use crate::core::inventory::{self, ClusterSummary};

/// What became of one expired cluster.
#[derive(Debug)]
pub struct Outcome {
    pub cluster: ClusterSummary,
    /// `None` with `dry_run`.
    pub result: Option<Result<DownReport, EngineError>>,
}

/// What `gc` found and did.
#[derive(Debug, Default)]
pub struct GcReport {
    /// Every cluster of ours it saw.
    pub seen: Vec<ClusterSummary>,
    /// The expired ones.
    pub expired: Vec<Outcome>,
    /// Regions whose survey failed.
    pub failed_regions: Vec<(String, AwsError)>,
}

/// Finds the expired clusters in the regions of `clients` and, unless `dry_run`, runs `down`
/// for each (`template` gives the timeouts; its cluster name is replaced).
pub async fn gc(
    clients: &[Clients],
    template: &DownOptions,
    clusters_at_once: usize,
    dry_run: bool,
    now: i64,
    events: EventSink,
) -> GcReport {
    let (seen, failed_regions) = super::list::list(clients).await;
    let due: Vec<ClusterSummary> = inventory::due(&seen, now).into_iter().cloned().collect();
    let expired = if dry_run {
        due.into_iter()
            .map(|cluster| Outcome {
                cluster,
                result: None,
            })
            .collect()
    } else {
        futures::stream::iter(due)
            .map(|cluster| {
                let events = events.clone();
                async move {
                    let Some(c) = clients.iter().find(|c| c.region == cluster.region) else {
                        let e = AwsError::internal(format!("no clients for {}", cluster.region));
                        return Outcome {
                            cluster,
                            result: Some(Err(e.into())),
                        };
                    };
                    let opts = DownOptions {
                        cluster: cluster.name.clone(),
                        only_expired_at: Some(now),
                        ..template.clone()
                    };
                    let result = super::down::down(c.clone(), &opts, events).await;
                    Outcome {
                        cluster,
                        result: Some(result),
                    }
                }
            })
            .buffer_unordered(clusters_at_once.max(1))
            .collect()
            .await
    };
    GcReport {
        seen,
        expired,
        failed_regions,
    }
}
