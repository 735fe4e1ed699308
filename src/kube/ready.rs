//! New nodes' readiness, found by their private address: the Nodes are watched (as `kubectl
//! wait` does), so a node is seen Ready the moment the API server says so, with one request
//! open instead of a list of every Node at each poll.
//!
//! A watch window lasts at most [`WINDOW`] (under the client's read timeout) and the next one
//! resumes from the last resourceVersion seen; one that cannot resume (410 Gone, an error
//! event) starts again without a version, whose synthetic ADDED events give the whole state
//! again. Windows open at most once per [`READY_POLL`]. Where the Nodes cannot be watched (the
//! watch refused, or broken before its first event: a role allowed only to list, a proxy that
//! does not stream), the wait lists them every [`READY_POLL`] instead.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt as _;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, ListParams, WatchEvent, WatchParams};

use super::drain::api_error;
use super::probe::is_ready;
use crate::aws::{AwsError, Tuning};

/// The least time from one watch window's opening to the next's (AWS time, scaled by the tuning).
pub const READY_POLL: Duration = Duration::from_secs(2);
/// The longest watch window, in seconds (the API server ends it; the client's read timeout is
/// 15 s).
pub const WINDOW: u32 = 10;

/// The Node whose InternalIP is `ip`, if one registered.
///
/// # Errors
/// When the API server does not answer.
pub async fn node_for_ip(client: &kube::Client, ip: &str) -> Result<Option<String>, AwsError> {
    let nodes: Api<Node> = Api::all(client.clone());
    let list = nodes
        .list(&ListParams::default())
        .await
        .map_err(|e| api_error("listing", "the nodes", &e))?;
    Ok(list
        .items
        .iter()
        .find(|n| internal_ip(n).as_deref() == Some(ip))
        .and_then(|n| n.metadata.name.clone()))
}

/// Waits until a Ready Node has each of `ips` as its InternalIP; every Node seen, by InternalIP
/// (so that the nodes to drain next need no list of their own).
///
/// # Errors
/// When the API server does not answer the watch, or `max` passes (naming the addresses not
/// Ready).
pub async fn wait_ready(
    client: &kube::Client,
    tuning: &Tuning,
    ips: &[String],
    max: Duration,
) -> Result<Vec<(String, String)>, AwsError> {
    let api: Api<Node> = Api::all(client.clone());
    let deadline = tokio::time::Instant::now() + max;
    let mut nodes = BTreeMap::new();
    let watched = tokio::time::timeout_at(deadline, async {
        let (mut version, mut watching) = (String::new(), true);
        loop {
            let opened = tokio::time::Instant::now();
            if watching {
                let left = deadline.saturating_duration_since(opened);
                let window = WINDOW.min(
                    u32::try_from(left.as_secs())
                        .unwrap_or(WINDOW)
                        .saturating_add(1),
                );
                match watch(&api, window, &mut version, &mut nodes, ips).await {
                    Window::Ready => return Ok(()),
                    Window::Ended => {}
                    // A server, proxy or role that does not watch: lists from now on.
                    Window::Refused => watching = false,
                }
            }
            if !watching {
                let list = api
                    .list(&ListParams::default())
                    .await
                    .map_err(|e| api_error("listing", "the nodes", &e))?;
                nodes = by_name(list.items);
                if missing(&nodes, ips).is_empty() {
                    return Ok(());
                }
            }
            // One window (or list) per READY_POLL at most: no busy loop on a window that ends
            // at once.
            tokio::time::sleep_until(opened + tuning.scaled(READY_POLL)).await;
        }
    })
    .await;
    match watched {
        Ok(Ok(())) => Ok(nodes
            .values()
            .filter_map(|n| Some((internal_ip(n)?, n.metadata.name.clone()?)))
            .collect()),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(AwsError::Wait {
            resource: format!("the node(s) at {}", ips.join(", ")),
            state: "Ready".into(),
            message: format!(
                "still not Ready: {} after {} s (the limit)",
                missing(&nodes, ips).join(", "),
                max.as_secs()
            ),
        }),
    }
}

/// How a watch window ended.
enum Window {
    /// Every address has a Ready Node.
    Ready,
    /// The server ended it, or it cannot resume (the next starts again).
    Ended,
    /// No window at all, or one that broke before its first event.
    Refused,
}

/// One watch window from `version` (kept up to date, cleared when it cannot be resumed from),
/// its events applied to `nodes`, until every address of `ips` is Ready or the window ends.
async fn watch(
    api: &Api<Node>,
    window: u32,
    version: &mut String,
    nodes: &mut BTreeMap<String, Node>,
    ips: &[String],
) -> Window {
    let events = match api
        .watch(&WatchParams::default().timeout(window), version)
        .await
    {
        Ok(events) => events,
        Err(e) => {
            tracing::debug!(error = %e, "the nodes could not be watched");
            return Window::Refused;
        }
    };
    let mut events = std::pin::pin!(events);
    let mut any = false;
    while let Some(event) = events.next().await {
        match event {
            Ok(WatchEvent::Added(n) | WatchEvent::Modified(n)) => {
                *version = n.metadata.resource_version.clone().unwrap_or_default();
                if let Some(name) = n.metadata.name.clone() {
                    nodes.insert(name, n);
                }
            }
            Ok(WatchEvent::Deleted(n)) => {
                *version = n.metadata.resource_version.clone().unwrap_or_default();
                if let Some(name) = &n.metadata.name {
                    nodes.remove(name);
                }
            }
            Ok(WatchEvent::Bookmark(b)) => *version = b.metadata.resource_version,
            // Too old to resume from (410 Gone), or another error: the whole state again.
            Ok(WatchEvent::Error(e)) => {
                tracing::debug!(code = e.code, message = %e.message, "the node watch ended");
                version.clear();
                return Window::Ended;
            }
            Err(e) => {
                tracing::debug!(error = %e, "the node watch broke");
                version.clear();
                return if any { Window::Ended } else { Window::Refused };
            }
        }
        any = true;
        if missing(nodes, ips).is_empty() {
            return Window::Ready;
        }
    }
    Window::Ended
}

fn by_name(items: Vec<Node>) -> BTreeMap<String, Node> {
    items
        .into_iter()
        .filter_map(|n| Some((n.metadata.name.clone()?, n)))
        .collect()
}

/// The addresses of `ips` with no Ready Node.
fn missing<'a>(nodes: &BTreeMap<String, Node>, ips: &'a [String]) -> Vec<&'a str> {
    ips.iter()
        .filter(|ip| {
            !nodes
                .values()
                .any(|n| internal_ip(n).as_deref() == Some(ip.as_str()) && is_ready(n))
        })
        .map(String::as_str)
        .collect()
}

fn internal_ip(n: &Node) -> Option<String> {
    n.status
        .as_ref()?
        .addresses
        .as_ref()?
        .iter()
        .find(|a| a.type_ == "InternalIP")
        .map(|a| a.address.clone())
}
