//! Taking a node out through the API, as `kubectl drain --ignore-daemonsets
//! --delete-emptydir-data --force` does (and kops): cordon it, evict every pod through the Eviction API (a
//! PodDisruptionBudget that refuses, 429, is asked again every 5 s until the deadline, and the
//! evicted pods are looked for at once, then each second until they are gone;
//! DaemonSet and mirror pods are skipped, finished pods do not count), wait until they are gone,
//! then delete the Node.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, ListParams};

use super::{api_error, is_status, is_transient, message};
use crate::aws::poll::{Seen, until};
use crate::aws::{AwsError, Tuning};

/// How long a refused eviction (429) waits before it is asked again, as `kubectl drain`.
pub const EVICT_RETRY: Duration = Duration::from_secs(5);
/// How often a drain looks whether the evicted pods are gone (`kubectl drain` polls each 1 s).
pub const GONE_POLL: Duration = Duration::from_secs(1);
/// Cordons `node`, evicts its pods until none is left, then deletes the Node; a node already
/// gone is done. When `max` passes first, the node is uncordoned and the error names the pods
/// that would not leave and why.
///
/// # Errors
/// An API error other than a refused eviction, or the deadline.
pub async fn drain(
    client: &kube::Client,
    tuning: &Tuning,
    node: &str,
    max: Duration,
) -> Result<(), AwsError> {
    let nodes: Api<Node> = Api::all(client.clone());
    match nodes.cordon(node).await {
        Ok(_) => {}
        Err(e) if is_status(&e, 404) => return Ok(()),
        Err(e) => return Err(api_error("cordoning", node, &e)),
    }
    let pods: Api<Pod> = Api::all(client.clone());
    let what = format!("node {node}");
    // A pod whose eviction was refused is asked again only after EVICT_RETRY; meanwhile the
    // others are looked at every GONE_POLL.
    let refused: std::sync::Mutex<
        std::collections::HashMap<String, (tokio::time::Instant, String)>,
    > = Default::default();
    let retry = tuning.scaled(EVICT_RETRY);
    let drained = until(tuning, GONE_POLL, max, &what, "drained", || async {
        // A pass that evicted something looks again at once (as `kubectl drain`, whose wait for
        // the evicted pods checks before its first interval): pods that leave quickly cost no
        // GONE_POLL.
        let mut first = true;
        loop {
            let list = match pods
                .list(&ListParams::default().fields(&format!("spec.nodeName={node}")))
                .await
            {
                Ok(list) => list,
                // Asked again at the next poll, until the deadline.
                Err(e) if is_transient(&e) => {
                    return Ok(Seen::Pending(format!(
                        "the pods could not be listed: {}",
                        message(&e)
                    )));
                }
                Err(e) => return Err(api_error("listing the pods of", node, &e)),
            };
            let mut staying = Vec::new();
            let mut evicted = false;
            for p in list.items.iter().filter(|p| must_leave(p)) {
                let (ns, name) = (
                    p.metadata.namespace.clone().unwrap_or_default(),
                    p.metadata.name.clone().unwrap_or_default(),
                );
                let pod = format!("{ns}/{name}");
                if p.metadata.deletion_timestamp.is_some() {
                    staying.push(format!("{pod} (terminating)"));
                    continue;
                }
                let waiting = refused
                    .lock()
                    .map_err(|_| AwsError::internal("the drain's lock"))?
                    .get(&pod)
                    .filter(|(at, _)| at.elapsed() < retry)
                    .map(|(_, why)| why.clone());
                if let Some(why) = waiting {
                    staying.push(format!("{pod} ({why})"));
                    continue;
                }
                match evict(client, &ns, &name).await {
                    Ok(()) => {
                        evicted = true;
                        staying.push(format!("{pod} (evicted, terminating)"));
                    }
                    Err(e) if is_status(&e, 404) => {}
                    // A PodDisruptionBudget's refusal, or the API server's own trouble: asked
                    // again after EVICT_RETRY, until the deadline.
                    Err(e) if is_transient(&e) => {
                        let why = message(&e);
                        staying.push(format!("{pod} ({why})"));
                        refused
                            .lock()
                            .map_err(|_| AwsError::internal("the drain's lock"))?
                            .insert(pod, (tokio::time::Instant::now(), why));
                    }
                    Err(e) => return Err(api_error("evicting", &pod, &e)),
                }
            }
            if staying.is_empty() {
                return Ok(Seen::Ready(()));
            }
            if !(first && evicted) {
                return Ok(Seen::Pending(format!(
                    "{} pod(s) not gone: {}",
                    staying.len(),
                    staying.join(", ")
                )));
            }
            first = false;
        }
    })
    .await;
    if let Err(e) = drained {
        // Back in service until the next run drains it again (best effort: the error is the
        // drain's).
        if let Err(u) = nodes.uncordon(node).await {
            tracing::debug!(error = %u, node, "uncordoning after a failed drain");
        }
        return Err(e);
    }
    match nodes.delete(node, &DeleteParams::default()).await {
        Ok(_) => Ok(()),
        Err(e) if is_status(&e, 404) => Ok(()),
        Err(e) => Err(api_error("deleting the node", node, &e)),
    }
}

/// What `kubectl drain --ignore-daemonsets` evicts: not a DaemonSet's pod, not a mirror
/// (static) pod, not one that finished.
pub fn must_leave(p: &Pod) -> bool {
    let daemon = p
        .metadata
        .owner_references
        .iter()
        .flatten()
        .any(|o| o.kind == "DaemonSet" && o.controller == Some(true));
    let mirror = p
        .metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key("kubernetes.io/config.mirror"));
    let finished = p
        .status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .is_some_and(|ph| ph == "Succeeded" || ph == "Failed");
    !daemon && !mirror && !finished
}

/// POSTs a policy/v1 Eviction (built here: kube-rs's `evict` sends `delete_options`, which is
/// not the Eviction's field name).
async fn evict(client: &kube::Client, ns: &str, name: &str) -> Result<(), kube::Error> {
    let body = serde_json::json!({
        "apiVersion": "policy/v1",
        "kind": "Eviction",
        "metadata": { "name": name, "namespace": ns },
    });
    let req = http::Request::post(format!("/api/v1/namespaces/{ns}/pods/{name}/eviction"))
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(serde_json::to_vec(&body).unwrap_or_default())
        .map_err(kube::Error::HttpError)?;
    client.request::<serde_json::Value>(req).await.map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(json: serde_json::Value) -> Pod {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn daemonset_mirror_and_finished_pods_stay() {
        let plain = pod(serde_json::json!({"metadata": {"name": "web"}}));
        let daemon = pod(
            serde_json::json!({"metadata": {"name": "cni", "ownerReferences": [
            {"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "calico", "uid": "u", "controller": true}]}}),
        );
        let mirror = pod(serde_json::json!({"metadata": {"name": "etcd",
            "annotations": {"kubernetes.io/config.mirror": "x"}}}));
        let done =
            pod(serde_json::json!({"metadata": {"name": "job"}, "status": {"phase": "Succeeded"}}));
        let owned = pod(
            serde_json::json!({"metadata": {"name": "rs", "ownerReferences": [
            {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web", "uid": "u", "controller": true}]}}),
        );
        assert!(must_leave(&plain));
        assert!(must_leave(&owned));
        assert!(!must_leave(&daemon));
        assert!(!must_leave(&mirror));
        assert!(!must_leave(&done));
    }
}
