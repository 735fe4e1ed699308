//! A stand-in Kubernetes API server for day-2 operations on a kubeadm cluster of the emulator:
//! mutual TLS with the cluster's CA (as the real one), a Ready Node for every running instance
//! of the cluster (named `ip-A-B-C-D` after its private address, as kubeadm
//! names Ubuntu nodes), and on each node a DaemonSet pod, a mirror pod and a `web-NODE` pod
//! behind a PodDisruptionBudget that refuses `refuse` evictions (429) before it allows them.
//! Serves Node lists and watches, cordon (PATCH), pod lists by node, evictions and Node deletion,
//! recording each call.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use provision::core::pki::Ca;

use tokio::io::AsyncWriteExt as _;

use super::{read_request, tls_acceptor, url_decode};

/// What the stand-in saw and holds.
#[derive(Debug, Default)]
pub struct KubeState {
    /// `METHOD PATH` of every request, in order (the eviction's body after a space; a watch of
    /// the Nodes as `WATCH /api/v1/nodes`).
    pub requests: Vec<String>,
    /// Nodes cordoned now (a PATCH setting `spec.unschedulable`, taken back by one unsetting it).
    pub cordoned: BTreeSet<String>,
    pub deleted: BTreeSet<String>,
    /// `NAMESPACE/NAME` of the pods evicted.
    pub evicted: BTreeSet<String>,
    /// Evictions of `web-` pods to refuse, as a PodDisruptionBudget does, and how many were.
    pub refuse: u32,
    pub refused: u32,
    /// Watches of the Nodes are refused (403), as for a role allowed only to list them.
    pub refuse_watch: bool,
    /// Watches from a resourceVersion are answered 410 Gone (an ERROR event), as from one the
    /// API server's watch cache no longer holds.
    pub expire_versions: bool,
    /// Watch windows end this soon, whatever `timeoutSeconds` asks (an API server may end them
    /// early).
    pub window_cap: Option<std::time::Duration>,
    /// The resourceVersion each watch asked for ("" for none), in order.
    pub watched_from: Vec<String>,
    /// The last resourceVersion given, and the Nodes as each saw them (what a watch from it
    /// starts from).
    pub revision: u64,
    pub versions:
        std::collections::HashMap<u64, std::collections::BTreeMap<String, serde_json::Value>>,
    /// Addresses taken out of `not_ready` when a watch of the Nodes is asked for: nodes that
    /// become Ready while the client watches, whatever the machine's speed.
    pub ready_at_watch: BTreeSet<String>,
    /// Private addresses whose nodes are not Ready.
    pub not_ready: BTreeSet<String>,
    /// The running instances' private addresses, as the last node list found them.
    pub ips: Vec<String>,
    /// A node is Ready this long after its instance was first seen running (a kubelet's join).
    pub ready_after: std::time::Duration,
    /// When each address was first seen running.
    pub first_seen: std::collections::HashMap<String, std::time::Instant>,
    /// At each cordon, how many nodes were still Ready and schedulable after it: what a rolling
    /// replacement must keep at its count (plus the control plane).
    pub in_service_at_cordon: Vec<usize>,
}

impl KubeState {
    /// The Nodes (name, InternalIP): the running instances' not deleted.
    fn nodes(&self) -> Vec<(String, String)> {
        self.ips
            .iter()
            .map(|ip| (node_name(ip), ip.clone()))
            .filter(|(n, _)| !self.deleted.contains(n))
            .collect()
    }

    /// Every Node's JSON, by name.
    pub(super) fn node_map(&self) -> std::collections::BTreeMap<String, serde_json::Value> {
        self.nodes()
            .iter()
            .map(|(n, ip)| (n.clone(), self.node_json(n, ip)))
            .collect()
    }

    /// A new resourceVersion for the Nodes as `map` has them.
    pub(super) fn record(
        &mut self,
        map: std::collections::BTreeMap<String, serde_json::Value>,
    ) -> u64 {
        self.revision += 1;
        self.versions.insert(self.revision, map);
        self.revision
    }

    fn node_json(&self, name: &str, ip: &str) -> serde_json::Value {
        serde_json::json!({
            "metadata": {"name": name},
            "spec": {"unschedulable": self.cordoned.contains(name)},
            "status": {
                "addresses": [{"type": "InternalIP", "address": ip}],
                "conditions": [{"type": "Ready", "status": if self.ready(ip) { "True" } else { "False" }}],
            },
        })
    }

    fn ready(&self, ip: &str) -> bool {
        !self.not_ready.contains(ip)
            && self
                .first_seen
                .get(ip)
                .is_some_and(|t| t.elapsed() >= self.ready_after)
    }
}

pub struct KubeStandIn {
    pub url: String,
    pub state: Arc<Mutex<KubeState>>,
    /// The stand-in stops looking up instances once this is dropped.
    _alive: Arc<()>,
}

impl KubeStandIn {
    /// The requests that changed something, in order (`PATCH`, `POST`, `DELETE`).
    pub fn changes(&self) -> Vec<String> {
        self.state
            .lock()
            .unwrap()
            .requests
            .iter()
            .filter(|r| !r.starts_with("GET ") && !r.starts_with("WATCH "))
            .cloned()
            .collect()
    }
}

/// The node name kubeadm gives an Ubuntu instance at `ip`.
pub fn node_name(ip: &str) -> String {
    format!("ip-{}", ip.replace('.', "-"))
}

/// Starts the stand-in for `cluster`, whose CA is `ca` and whose instances `c` describes; the
/// first `refuse` evictions of `web-` pods are refused (429), as a PodDisruptionBudget allowing
/// no disruption does.
pub async fn kube_stand_in(
    ca: &Ca,
    cluster: &str,
    refuse: u32,
    c: provision::aws::Clients,
    follow: Option<String>,
) -> KubeStandIn {
    let state = Arc::new(Mutex::new(KubeState {
        refuse,
        ..Default::default()
    }));
    let acceptor = tls_acceptor(ca, true);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let cluster = cluster.to_string();
    // The Nodes follow the instances as a real API server's follow the kubelets: looked up
    // again and again (one DescribeInstances at a time) while the stand-in lives, so that a
    // request is answered at once.
    let alive = Arc::new(());
    let first = instance_ips(&c, &cluster).await;
    {
        let mut st = state.lock().unwrap();
        // The nodes there before the stand-in are Ready, whatever `ready_after` is set to.
        let now = std::time::Instant::now();
        let now = now
            .checked_sub(std::time::Duration::from_secs(3600))
            .unwrap_or(now);
        for ip in &first {
            st.first_seen.insert(ip.clone(), now);
        }
        st.ips = first;
    }
    // Following (the benchmark): the emulator's view of the kubelets (localstack/kubelets.py:
    // no AWS call, so the stand-in does not load the emulator provision is measured against),
    // every 5 ms, so that a Node is Ready within a few ms of its instance running. Otherwise the
    // instances are looked up when the Nodes are listed (the tests).
    if let Some(emulator) = follow.clone() {
        let (st, watch, cluster) = (state.clone(), Arc::downgrade(&alive), cluster.clone());
        tokio::spawn(async move {
            while watch.upgrade().is_some() {
                if let Some(ips) = running_ips(&emulator, &cluster).await {
                    seen(&st, ips);
                }
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
        });
    }
    let follow = follow.is_some();
    let (st, watch) = (state.clone(), Arc::downgrade(&alive));
    let (c, cluster) = (c.clone(), cluster.clone());
    tokio::spawn(async move {
        while watch.upgrade().is_some() {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let (acceptor, st, c, cluster, alive) = (
                acceptor.clone(),
                st.clone(),
                c.clone(),
                cluster.clone(),
                watch.clone(),
            );
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                // Keep-alive, as a real API server: requests until the client closes.
                loop {
                    let req = read_request(&mut tls).await;
                    // A watch looks the instances up in its own loop.
                    if !follow
                        && req.starts_with("GET /api/v1/nodes")
                        && super::kube_watch::Watch::of(&req).is_none()
                    {
                        seen(&st, instance_ips(&c, &cluster).await);
                    }
                    if req.is_empty() {
                        return;
                    }
                    if let Some(w) = super::kube_watch::Watch::of(&req) {
                        let refresh = (!follow).then_some((&c, cluster.as_str()));
                        if !w.serve(&mut tls, &st, refresh, &alive).await {
                            return;
                        }
                        continue;
                    }
                    let (status, body) = answer(&req, &st);
                    if !reply(&mut tls, status, &body).await {
                        return;
                    }
                }
            });
        }
    });
    KubeStandIn {
        url: format!("https://{addr}"),
        state,
        _alive: alive,
    }
}

/// The cluster's running instances' addresses, as the emulator's `running-ips` tells them (one
/// HTTP/1.0 GET); None when it did not answer.
async fn running_ips(emulator: &str, cluster: &str) -> Option<Vec<String>> {
    use tokio::io::AsyncReadExt as _;
    let host = emulator.trim_start_matches("http://").trim_end_matches('/');
    let mut tcp = tokio::net::TcpStream::connect(host).await.ok()?;
    let req = format!(
        "GET /moto-api/provision/running-ips?cluster={cluster}&region={} HTTP/1.0\r\nHost: {host}\r\n\r\n",
        super::REGION
    );
    tcp.write_all(req.as_bytes()).await.ok()?;
    let mut resp = String::new();
    tcp.read_to_string(&mut resp).await.ok()?;
    let (head, body) = resp.split_once("\r\n\r\n")?;
    head.lines()
        .next()
        .is_some_and(|status| status.split(' ').nth(1) == Some("200"))
        .then(|| serde_json::from_str(body).ok())
        .flatten()
}

/// Records the running instances' addresses, and when each was first seen.
pub(super) fn seen(st: &Mutex<KubeState>, ips: Vec<String>) {
    let mut st = st.lock().unwrap();
    for ip in &ips {
        st.first_seen
            .entry(ip.clone())
            .or_insert_with(std::time::Instant::now);
    }
    st.ips = ips;
}

/// The private addresses of the cluster's running instances.
pub(super) async fn instance_ips(c: &provision::aws::Clients, cluster: &str) -> Vec<String> {
    let out = c
        .ec2
        .describe_instances()
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("tag:provision:cluster")
                .values(cluster)
                .build(),
        )
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("instance-state-name")
                .values("running")
                .build(),
        )
        .send()
        .await
        .unwrap();
    out.reservations()
        .iter()
        .flat_map(|r| r.instances())
        .filter_map(|i| i.private_ip_address().map(str::to_string))
        .collect()
}

fn answer(req: &str, st: &Mutex<KubeState>) -> (&'static str, String) {
    let line = req.lines().next().unwrap_or_default();
    let mut parts = line.split(' ');
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let body = req.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    let mut st = st.lock().unwrap();
    st.requests.push(if method == "POST" {
        format!("{method} {path} {body}")
    } else {
        format!("{method} {path}")
    });
    let nodes = st.nodes();
    let status = |code: u16, reason: &str, message: &str| {
        serde_json::json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
            "code": code, "reason": reason, "message": message})
        .to_string()
    };
    match (method, path) {
        ("GET", "/readyz") => ("200 OK", "ok".into()),
        ("GET", "/api/v1/nodes") => {
            let map = st.node_map();
            let rv = st.record(map.clone()).to_string();
            let items: Vec<_> = map
                .into_values()
                .map(|mut n| {
                    n["metadata"]["resourceVersion"] = rv.clone().into();
                    n
                })
                .collect();
            (
                "200 OK",
                serde_json::json!({"apiVersion": "v1", "kind": "NodeList", "metadata": {"resourceVersion": rv}, "items": items})
                    .to_string(),
            )
        }
        ("GET", "/api/v1/pods") => {
            let selector = url_decode(
                query
                    .split('&')
                    .find_map(|kv| kv.strip_prefix("fieldSelector="))
                    .unwrap_or(""),
            );
            let node = selector.strip_prefix("spec.nodeName=").unwrap_or("");
            let items: Vec<_> = pods(node)
                .into_iter()
                .filter(|p| {
                    let m = &p["metadata"];
                    !st.evicted.contains(&format!(
                        "{}/{}",
                        m["namespace"].as_str().unwrap(),
                        m["name"].as_str().unwrap()
                    ))
                })
                .collect();
            (
                "200 OK",
                serde_json::json!({"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": items})
                    .to_string(),
            )
        }
        ("PATCH", p) if p.starts_with("/api/v1/nodes/") => {
            let name = &p["/api/v1/nodes/".len()..];
            let unschedulable = !body.contains("\"unschedulable\":false");
            match nodes.iter().find(|(n, _)| n == name) {
                Some((n, ip)) => {
                    if unschedulable {
                        st.cordoned.insert(n.clone());
                        let in_service = nodes
                            .iter()
                            .filter(|(m, ip)| !st.cordoned.contains(m) && st.ready(ip))
                            .count();
                        st.in_service_at_cordon.push(in_service);
                    } else {
                        st.cordoned.remove(n);
                    }
                    ("200 OK", st.node_json(n, ip).to_string())
                }
                None => ("404 Not Found", status(404, "NotFound", "node not found")),
            }
        }
        ("DELETE", p) if p.starts_with("/api/v1/nodes/") => {
            let name = p["/api/v1/nodes/".len()..].to_string();
            match nodes.iter().find(|(n, _)| *n == name) {
                Some((n, ip)) => {
                    let json = st.node_json(n, ip).to_string();
                    st.deleted.insert(name);
                    ("200 OK", json)
                }
                None => ("404 Not Found", status(404, "NotFound", "node not found")),
            }
        }
        ("POST", p) if p.ends_with("/eviction") => {
            let rest = p.trim_start_matches("/api/v1/namespaces/");
            let (ns, rest) = rest.split_once("/pods/").unwrap_or(("", ""));
            let name = rest.trim_end_matches("/eviction");
            if name.starts_with("web-") && st.refused < st.refuse {
                st.refused += 1;
                return (
                    "429 Too Many Requests",
                    status(
                        429,
                        "TooManyRequests",
                        "Cannot evict pod as it would violate the pod's disruption budget.",
                    ),
                );
            }
            st.evicted.insert(format!("{ns}/{name}"));
            (
                "201 Created",
                serde_json::json!({"kind": "Status", "apiVersion": "v1", "status": "Success", "code": 201})
                    .to_string(),
            )
        }
        _ => (
            "404 Not Found",
            status(404, "NotFound", "not served by the stand-in"),
        ),
    }
}

/// A node's pods: a DaemonSet's, a mirror pod, and a ReplicaSet's behind a PDB.
fn pods(node: &str) -> Vec<serde_json::Value> {
    let pod = |ns: &str, name: String, meta: serde_json::Value| {
        let mut m = serde_json::json!({"namespace": ns, "name": name});
        m.as_object_mut()
            .unwrap()
            .extend(meta.as_object().unwrap().clone());
        serde_json::json!({"metadata": m, "spec": {"nodeName": node, "containers": []}, "status": {"phase": "Running"}})
    };
    let owner = |kind: &str| serde_json::json!({"ownerReferences": [{"apiVersion": "apps/v1", "kind": kind, "name": "x", "uid": "u", "controller": true}]});
    vec![
        pod(
            "kube-system",
            format!("calico-node-{node}"),
            owner("DaemonSet"),
        ),
        pod(
            "kube-system",
            format!("static-{node}"),
            serde_json::json!({"annotations": {"kubernetes.io/config.mirror": "m"}}),
        ),
        pod("default", format!("web-{node}"), owner("ReplicaSet")),
    ]
}

/// The stand-in for `cl`, with the CA of its bootstrap secret (read through `c`); `follow`:
/// see [`kube_stand_in`].
pub async fn kube_stand_in_for(
    c: &provision::aws::Clients,
    cl: &super::Cluster,
    refuse: u32,
) -> KubeStandIn {
    stand_in_for(c, cl, refuse, None).await
}

/// [`kube_stand_in_for`], following the instances of the emulator at `emulator` in the
/// background (for the benchmark).
pub async fn kube_stand_in_following(
    c: &provision::aws::Clients,
    cl: &super::Cluster,
    emulator: &str,
) -> KubeStandIn {
    stand_in_for(c, cl, 0, Some(emulator.to_string())).await
}

async fn stand_in_for(
    c: &provision::aws::Clients,
    cl: &super::Cluster,
    refuse: u32,
    follow: Option<String>,
) -> KubeStandIn {
    let b = super::read_bootstrap(c, &format!("/provision/{}/bootstrap", cl.name)).await;
    let ca = Ca {
        cert_pem: b["ca_cert_pem"].as_str().unwrap().into(),
        key_pem: b["ca_key_pem"].as_str().unwrap().into(),
    };
    kube_stand_in(&ca, &cl.name, refuse, c.clone(), follow).await
}

/// One answer on a kept-alive connection (Content-Length); whether it was written.
pub(super) async fn reply<S: tokio::io::AsyncWrite + Unpin>(
    tls: &mut S,
    status: &str,
    body: &str,
) -> bool {
    let resp = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    tls.write_all(resp.as_bytes()).await.is_ok() && tls.flush().await.is_ok()
}
