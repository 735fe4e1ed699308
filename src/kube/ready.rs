//! New nodes' readiness, found by their private address: the Nodes are listed, then watched
//! from the list's resourceVersion (as `kubectl wait` and client-go's informers do), so a node
//! is seen Ready the moment the API server says so, with one request open instead of a list of
//! every Node at each poll.
//!
//! A watch window lasts at most [`WINDOW`] seconds (under the client's read timeout); the next
//! resumes from the last resourceVersion an event or bookmark carried. One that cannot resume
//! (410 Gone, an ERROR event) lists the Nodes again and watches from there. A window broken by
//! the connection or the server's trouble (429, 5xx) is opened again. Where the Nodes cannot be
//! watched (403, 404 or 405 to the watch, or a stream that never gave an event: a role allowed
//! only to list, a proxy that does not stream), they are listed every [`READY_POLL`] instead.
//! A window that carried nothing at all (not even a bookmark) is followed by a list, and a
//! list that fails for the server's trouble is made again. At most one window or list per
//! [`READY_POLL`] when they end early: never a busy loop.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt as _;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, ListParams, WatchEvent, WatchParams};

use super::probe::is_ready;
use super::{api_error, is_transient, message};
use crate::aws::{AwsError, Tuning};

/// The least time between two windows or lists that end early (AWS time, scaled by the tuning).
pub const READY_POLL: Duration = Duration::from_secs(2);
/// The longest watch window, in seconds (the API server ends it; the client's read timeout is
/// 15 s).
pub const WINDOW: u32 = 10;

/// The Node whose InternalIP is `ip`, if one registered.
///
/// # Errors
/// When the API server does not answer.
pub async fn node_for_ip(client: &kube::Client, ip: &str) -> Result<Option<String>, AwsError> {
    let api: Api<Node> = Api::all(client.clone());
    let (nodes, _) = list(&api).await.map_err(|(e, _)| e)?;
    Ok(nodes
        .values()
        .find(|n| internal_ip(n).as_deref() == Some(ip))
        .and_then(|n| n.metadata.name.clone()))
}

/// Waits until a Ready Node has each of `ips` as its InternalIP; every Node known then, by
/// InternalIP (so that the nodes to drain next need no list of their own).
///
/// # Errors
/// When the API server does not answer, or `max` passes (naming the addresses not Ready).
pub async fn wait_ready(
    client: &kube::Client,
    tuning: &Tuning,
    ips: &[String],
    max: Duration,
) -> Result<Vec<(String, String)>, AwsError> {
    let api: Api<Node> = Api::all(client.clone());
    let deadline = tokio::time::Instant::now() + max;
    // The first look whatever the deadline: nodes already Ready pass at once; a server that
    // does not answer it fails the wait at once.
    let (mut nodes, mut version) = list(&api).await.map_err(|(e, _)| e)?;
    let mut why = None;
    if !missing(&nodes, ips).is_empty() {
        let waited = tokio::time::timeout_at(deadline, async {
            let (mut watching, mut streamed) = (true, false);
            loop {
                let opened = tokio::time::Instant::now();
                match version.as_mut().filter(|_| watching) {
                    Some(v) => {
                        let left = deadline.saturating_duration_since(opened);
                        let window = WINDOW.min(
                            u32::try_from(left.as_secs())
                                .unwrap_or(WINDOW)
                                .saturating_add(1),
                        );
                        let seen = watch(&api, window, v, &mut nodes, ips, &mut streamed).await?;
                        match seen {
                            Window::Ready => return Ok::<(), AwsError>(()),
                            Window::Ended { quiet: false } => why = None,
                            // Nothing in a whole window (not even a bookmark): a list next, in
                            // case a proxy holds the stream without passing it on.
                            Window::Ended { quiet: true } => version = None,
                            Window::Broken(w) => why = Some(w),
                            Window::Expired(w) => {
                                why = Some(w);
                                version = None;
                            }
                            Window::Refused(w) => {
                                why = Some(format!("listing them instead: {w}"));
                                watching = false;
                            }
                        }
                    }
                    // The first list gave no version, a window could not resume, or the Nodes
                    // cannot be watched.
                    None => match list(&api).await {
                        Ok(listed) => {
                            (nodes, version) = listed;
                            if missing(&nodes, ips).is_empty() {
                                return Ok(());
                            }
                        }
                        // Asked again at the next poll, until the deadline.
                        Err((e, true)) => why = Some(e.to_string()),
                        Err((e, false)) => return Err(e),
                    },
                }
                tokio::time::sleep_until(opened + tuning.scaled(READY_POLL)).await;
            }
        })
        .await;
        match waited {
            Ok(done) => done?,
            Err(_) => {
                let watch = why
                    .map(|w| format!(" (the watch: {w})"))
                    .unwrap_or_default();
                return Err(AwsError::Wait {
                    resource: format!("the node(s) at {}", ips.join(", ")),
                    state: "Ready".into(),
                    message: format!(
                        "still not Ready: {} after {} s (the limit){watch}",
                        missing(&nodes, ips).join(", "),
                        max.as_secs()
                    ),
                });
            }
        }
    }
    Ok(nodes
        .values()
        .filter_map(|n| Some((internal_ip(n)?, n.metadata.name.clone()?)))
        .collect())
}

/// How a watch window ended, when not with every address Ready.
#[derive(Debug)]
enum Window {
    /// Every address has a Ready Node.
    Ready,
    /// The server ended it: the next resumes (`quiet`: it carried nothing at all).
    Ended { quiet: bool },
    /// The connection broke, or the server was in trouble: the next resumes.
    Broken(String),
    /// It cannot be resumed (410 Gone, an ERROR event): list again.
    Expired(String),
    /// The Nodes cannot be watched: list them instead.
    Refused(String),
}

/// One watch window from `version` (moved along by the events and bookmarks), its events
/// applied to `nodes`, until every address of `ips` is Ready or the window ends; `streamed`
/// tells whether any window of the wait ever gave an event.
///
/// # Errors
/// What the API server answers that no other window would change (401, 400, ...).
async fn watch(
    api: &Api<Node>,
    window: u32,
    version: &mut String,
    nodes: &mut BTreeMap<String, Node>,
    ips: &[String],
    streamed: &mut bool,
) -> Result<Window, AwsError> {
    let events = match api
        .watch(&WatchParams::default().timeout(window), version)
        .await
    {
        Ok(events) => events,
        Err(kube::Error::Api(s)) if matches!(s.code, 403..=405) => {
            return Ok(Window::Refused(s.message.clone()));
        }
        Err(kube::Error::Api(s)) if s.code == 410 => return Ok(Window::Expired(s.message.clone())),
        Err(e) if is_transient(&e) => return Ok(Window::Broken(message(&e))),
        Err(e) => return Err(api_error("watching", "the nodes", &e)),
    };
    let mut events = std::pin::pin!(events);
    let mut quiet = true;
    while let Some(event) = events.next().await {
        quiet = false;
        let (name, node) = match event {
            Ok(WatchEvent::Added(n) | WatchEvent::Modified(n)) => {
                (n.metadata.name.clone(), Some(n))
            }
            Ok(WatchEvent::Deleted(n)) => (n.metadata.name.clone(), None),
            Ok(WatchEvent::Bookmark(b)) => {
                *version = b.metadata.resource_version;
                *streamed = true;
                continue;
            }
            Ok(WatchEvent::Error(s)) => {
                return Ok(Window::Expired(format!("{} ({})", s.message, s.code)));
            }
            // The connection broke while reading.
            Err(e @ kube::Error::ReadEvents(_)) => return Ok(Window::Broken(message(&e))),
            // A stream that never gave an event (a line that is no event: a proxy's answer).
            Err(e) if !*streamed && !is_transient(&e) => return Ok(Window::Refused(message(&e))),
            Err(e) => return Ok(Window::Broken(message(&e))),
        };
        *streamed = true;
        let at = node
            .as_ref()
            .and_then(|n| n.metadata.resource_version.clone());
        if let Some(at) = at {
            *version = at;
        }
        if let Some(name) = name {
            match node {
                Some(n) => nodes.insert(name, n),
                None => nodes.remove(&name),
            };
        }
        if missing(nodes, ips).is_empty() {
            return Ok(Window::Ready);
        }
    }
    Ok(Window::Ended { quiet })
}

/// Every Node by name, and the list's resourceVersion (to watch from); an error says whether
/// it is worth asking again (the server's trouble, no answer).
async fn list(
    api: &Api<Node>,
) -> Result<(BTreeMap<String, Node>, Option<String>), (AwsError, bool)> {
    let list = api
        .list(&ListParams::default())
        .await
        .map_err(|e| (api_error("listing", "the nodes", &e), is_transient(&e)))?;
    let version = list.metadata.resource_version.filter(|v| !v.is_empty());
    let nodes = list
        .items
        .into_iter()
        .filter_map(|n| Some((n.metadata.name.clone()?, n)))
        .collect();
    Ok((nodes, version))
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
