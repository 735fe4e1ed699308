//! The stand-in API server's watch of the Nodes, as the API server streams one: chunked JSON
//! lines (ADDED, MODIFIED, DELETED, and BOOKMARK when asked for, each carrying a
//! resourceVersion), from the resourceVersion asked for (none: an ADDED event for each Node
//! first; one it no longer holds: an ERROR event, 410 Gone), until `timeoutSeconds` (or the
//! stand-in's cap) ends it. Changes are seen within 5 ms (the instances looked up again every
//! 50 ms when the stand-in does not follow the emulator; a bookmark after 50 ms of quiet); the
//! watch stops when the client has
//! closed the connection or the stand-in has gone.

use std::collections::BTreeMap;
use std::sync::{Mutex, Weak};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::AsyncWriteExt as _;

use super::kube_api::{KubeState, instance_ips, reply, seen};

/// How long a watch is quiet before a bookmark (when asked for): within the shortest
/// `window_cap` a test sets, so that a window carries one.
const BOOKMARK_EVERY: Duration = Duration::from_millis(50);

const FORBIDDEN: &str = r#"{"kind":"Status","apiVersion":"v1","status":"Failure","code":403,"reason":"Forbidden","message":"nodes is forbidden: cannot watch resource \"nodes\""}"#;

/// A watch request of the Nodes.
pub struct Watch {
    window: Duration,
    from: String,
    bookmarks: bool,
}

impl Watch {
    /// The watch `req` asks for, if it is one.
    pub fn of(req: &str) -> Option<Watch> {
        let target = req.lines().next()?.strip_prefix("GET /api/v1/nodes?")?;
        let target = target.split(' ').next()?;
        let query: Vec<(&str, &str)> = target
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .collect();
        let get = |k: &str| query.iter().find(|(q, _)| *q == k).map(|(_, v)| *v);
        (get("watch") == Some("true")).then(|| Watch {
            window: Duration::from_secs(
                get("timeoutSeconds")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(30),
            ),
            from: get("resourceVersion").unwrap_or_default().to_string(),
            bookmarks: get("allowWatchBookmarks") == Some("true"),
        })
    }

    /// Answers the watch on `tls`; whether the connection can serve another request.
    pub async fn serve<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
        &self,
        tls: &mut S,
        st: &Mutex<KubeState>,
        refresh: Option<(&provision::aws::Clients, &str)>,
        alive: &Weak<()>,
    ) -> bool {
        let (refused, start, window) = {
            let mut st = st.lock().unwrap();
            st.requests.push("WATCH /api/v1/nodes".into());
            st.watched_from.push(self.from.clone());
            for ip in std::mem::take(&mut st.ready_at_watch) {
                st.not_ready.remove(&ip);
            }
            let start = match self.from.as_str() {
                "" => Some(BTreeMap::new()),
                _ if st.expire_versions => None,
                v => v.parse().ok().and_then(|v| st.versions.get(&v).cloned()),
            };
            let window = st.window_cap.map_or(self.window, |c| c.min(self.window));
            (st.refuse_watch, start, window)
        };
        if refused {
            return reply(tls, "403 Forbidden", FORBIDDEN).await;
        }
        let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
        if tls.write_all(head.as_bytes()).await.is_err() {
            return false;
        }
        let Some(mut sent) = start else {
            let gone = json!({"type": "ERROR", "object": {"kind": "Status", "apiVersion": "v1",
                "status": "Failure", "code": 410, "reason": "Expired",
                "message": format!("too old resource version: {}", self.from)}});
            return chunk(tls, &format!("{gone}\n")).await && end(tls).await;
        };
        let (until, mut looked, mut quiet) =
            (Instant::now() + window, Instant::now(), Instant::now());
        while Instant::now() < until {
            if alive.upgrade().is_none() || closed(tls) {
                return false;
            }
            if let Some((c, cluster)) = refresh
                && looked.elapsed() >= Duration::from_millis(50)
            {
                seen(st, instance_ips(c, cluster).await);
                looked = Instant::now();
            }
            let mut lines = String::new();
            {
                let mut st = st.lock().unwrap();
                let now = st.node_map();
                if now != sent {
                    let rv = st.record(now.clone()).to_string();
                    let mut event = |kind: &str, node: &Value| {
                        let mut node = node.clone();
                        node["metadata"]["resourceVersion"] = rv.clone().into();
                        lines += &format!("{}\n", json!({"type": kind, "object": node}));
                    };
                    for (name, node) in &now {
                        match sent.get(name) {
                            None => event("ADDED", node),
                            Some(old) if old != node => event("MODIFIED", node),
                            Some(_) => {}
                        }
                    }
                    for (name, node) in &sent {
                        if !now.contains_key(name) {
                            event("DELETED", node);
                        }
                    }
                    sent = now;
                } else if self.bookmarks && quiet.elapsed() >= BOOKMARK_EVERY {
                    let rv = st.record(sent.clone()).to_string();
                    lines = format!(
                        "{}\n",
                        json!({"type": "BOOKMARK", "object": {"kind": "Node", "apiVersion": "v1",
                            "metadata": {"resourceVersion": rv}}})
                    );
                }
            }
            if !lines.is_empty() {
                if !chunk(tls, &lines).await {
                    return false;
                }
                quiet = Instant::now();
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        end(tls).await
    }
}

/// Whether the client closed the connection (it drops a watch it no longer needs): a read that
/// is ready at once with nothing (a client sends nothing while it reads a stream).
fn closed<S: tokio::io::AsyncRead + Unpin>(tls: &mut S) -> bool {
    use futures::FutureExt as _;
    use tokio::io::AsyncReadExt as _;
    let mut buf = [0u8; 1];
    matches!(tls.read(&mut buf).now_or_never(), Some(Ok(0) | Err(_)))
}

/// One chunk of a chunked body; whether it was written.
async fn chunk<S: tokio::io::AsyncWrite + Unpin>(tls: &mut S, data: &str) -> bool {
    let c = format!("{:x}\r\n{data}\r\n", data.len());
    tls.write_all(c.as_bytes()).await.is_ok() && tls.flush().await.is_ok()
}

/// The end of a chunked body; whether it was written.
async fn end<S: tokio::io::AsyncWrite + Unpin>(tls: &mut S) -> bool {
    tls.write_all(b"0\r\n\r\n").await.is_ok() && tls.flush().await.is_ok()
}
