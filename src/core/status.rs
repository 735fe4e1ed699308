//! `provision status`: every part of a cluster found by tag with its state, and whether the
//! cluster is healthy, decided here from what was seen (discovery, status checks, the nodes'
//! boot reports, the lock, the API server's nodes, and the plan's missing parts when a spec
//! was given).

use std::collections::BTreeMap;

use super::kinds::{Kind, Observed};
use super::progress::{NodeReport, State};

/// What `status` looked at.
#[derive(Debug)]
pub struct Seen<'a> {
    pub cluster: &'a str,
    pub region: &'a str,
    pub obs: &'a Observed,
    /// EC2 status checks by instance id.
    pub checks: &'a BTreeMap<String, String>,
    /// The nodes' boot reports by instance id.
    pub reports: &'a BTreeMap<String, NodeReport>,
    /// Who holds the lock, for people.
    pub lock: Option<String>,
    /// The API server's nodes (name, Ready), or why it could not be asked; `None`: not asked.
    pub api: Option<Result<Vec<(String, bool)>, String>>,
    /// `kind id` of what `up` would create (with a spec).
    pub missing: Vec<String>,
    pub now: i64,
}

/// One part of the cluster.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Part {
    pub kind: &'static str,
    /// Its logical id (`master`, `workers-0`, `vpc`).
    pub id: String,
    pub aws_id: String,
    pub state: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// A node as the API server lists it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ApiNode {
    pub name: String,
    pub ready: bool,
}

/// The cluster's state.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Status {
    pub cluster: String,
    pub region: String,
    pub kind: &'static str,
    pub healthy: bool,
    /// Why it is not healthy, one line each.
    pub problems: Vec<String>,
    pub parts: Vec<Part>,
    pub nodes: Option<Vec<ApiNode>>,
    /// Why the API server could not be asked (not a problem: it may be closed to this host).
    pub api_unreachable: Option<String>,
    pub lock: Option<String>,
    pub created_by: Option<String>,
    pub created_at: Option<String>,
    pub expires_at: Option<String>,
}

fn instance_detail(
    i: &super::kinds::instances::ObsInstance,
    check: Option<&String>,
    report: Option<&NodeReport>,
    now: i64,
) -> String {
    let mut d = vec![format!(
        "status checks {}",
        check.map_or("-", String::as_str)
    )];
    if let Some(v) = &i.version {
        d.push(format!("launched for {v}"));
    }
    if let Some(ip) = i.public_ip.as_ref().or(i.private_ip.as_ref()) {
        d.push(ip.clone());
    }
    if let Some(r) = report {
        let state = match r.state {
            State::Running => "running",
            State::Failed => "FAILED",
            State::Done => "done",
        };
        d.push(format!("boot: {} {state} {}", r.phase, r.elapsed(now)));
    }
    d.join(", ")
}

/// The snapshots' line, and a problem when a control plane that has run for an hour has none,
/// or none for a day (the longest interval).
fn backups(
    b: &super::kinds::backup_bucket::ObsBucket,
    obs: &Observed,
    now: i64,
) -> (String, Option<String>) {
    const HOUR: i64 = 3600;
    // This cluster's (when its secret was read), else every control plane's of the name.
    let mine: Vec<_> = match obs.cluster_id() {
        Some(id) => b.of(id).collect(),
        None => b.all().collect(),
    };
    let newest = mine.iter().copied().max_by_key(|s| (s.at, &s.key));
    let detail = match newest {
        Some(n) => format!(
            "{} snapshot(s), the newest of {} ({} ago)",
            mine.len(),
            n.time(),
            super::stamp::format_duration(now - n.at)
        ),
        None => "no etcd snapshot yet".to_string(),
    };
    let running_since = obs
        .instances
        .iter()
        .filter(|i| i.state == "running" && i.logical.as_deref() == Some(super::graph::MASTER))
        .filter_map(|i| i.launched_at)
        .min();
    let problem = match (running_since, newest) {
        (Some(t), None) if now - t > HOUR => Some(format!(
            "no etcd snapshot in s3://{} although the control plane has run for {}: check its provision-etcd-backup timer (aws ssm start-session)",
            b.name,
            super::stamp::format_duration(now - t)
        )),
        (Some(t), Some(n)) if now - t > 24 * HOUR && now - n.at > 24 * HOUR => Some(format!(
            "the newest etcd snapshot in s3://{} is {} old: check the control plane's provision-etcd-backup timer",
            b.name,
            super::stamp::format_duration(now - n.at)
        )),
        _ => None,
    };
    (detail, problem)
}

/// The cluster's status from what was seen.
pub fn status(s: &Seen<'_>) -> Status {
    let obs = s.obs;
    let eks = obs.eks.as_ref().filter(|e| e.owned);
    let mut problems = Vec::new();
    let mut parts = Vec::new();
    for k in Kind::ALL {
        for d in k.doomed(obs) {
            let mut part = Part {
                kind: d.kind,
                id: d.id.clone(),
                aws_id: d.aws_id.clone(),
                state: "present".into(),
                detail: None,
            };
            match k {
                Kind::Instances => {
                    if let Some(i) = obs.instances.iter().find(|i| i.id == d.aws_id) {
                        part.state = i.state.clone();
                        let check = s.checks.get(&i.id);
                        let report = s.reports.get(&i.id);
                        let mut detail = instance_detail(i, check, report, s.now);
                        if let Some(a) = super::spec::Addon::ALL
                            .into_iter()
                            .find(|a| a.as_str() == d.id)
                        {
                            for (what, url) in super::addons::urls(
                                a,
                                i.public_ip.as_deref(),
                                i.private_ip.as_deref(),
                            ) {
                                detail += &format!(", {what} {url}");
                            }
                        }
                        part.detail = Some(detail);
                        if i.state != "running" {
                            problems.push(format!("instance {} ({}) is {}", i.id, d.id, i.state));
                        } else if check.is_some_and(|c| c == "impaired") {
                            problems.push(format!(
                                "instance {} ({}) fails its EC2 status checks",
                                i.id, d.id
                            ));
                        }
                        if let Some(f) = report.and_then(|r| r.failure(&d.id)) {
                            problems.push(f.lines().next().unwrap_or_default().to_string());
                        }
                    }
                }
                Kind::EksCluster => {
                    if let Some(e) = eks {
                        part.state = e.status.clone();
                        let mut detail = format!(
                            "version {}, platform {}",
                            e.version,
                            e.platform_version.as_deref().unwrap_or("-")
                        );
                        if !e.health.is_empty() {
                            detail += &format!(", health: {}", e.health.join("; "));
                            problems.push(format!(
                                "EKS cluster {}: {}",
                                e.name,
                                e.health.join("; ")
                            ));
                        }
                        if e.status != "ACTIVE" {
                            problems.push(format!("EKS cluster {} is {}", e.name, e.status));
                        }
                        part.detail = Some(detail);
                    }
                }
                Kind::Nodegroup => {
                    if let Some(g) = eks
                        .into_iter()
                        .flat_map(|e| e.nodegroups.iter())
                        .find(|g| g.name == d.aws_id)
                    {
                        part.state = g.status.clone();
                        let mut detail = format!(
                            "Kubernetes {}, min {} desired {} max {}, {}{}",
                            g.version,
                            g.min,
                            g.desired,
                            g.max,
                            g.instance_types.join(","),
                            if g.spot { " (spot)" } else { "" }
                        );
                        if !g.issues.is_empty() {
                            detail += &format!(", health: {}", g.issues.join("; "));
                            problems.push(format!(
                                "node group {}: {}",
                                g.name,
                                g.issues.join("; ")
                            ));
                        }
                        if g.status != "ACTIVE" {
                            problems.push(format!("node group {} is {}", g.name, g.status));
                        }
                        part.detail = Some(detail);
                    }
                }
                Kind::BackupBucket => {
                    if let Some(b) = obs.bucket.as_ref() {
                        let (detail, problem) = backups(b, obs, s.now);
                        part.detail = Some(detail);
                        problems.extend(problem);
                    }
                }
                _ => {}
            }
            parts.push(part);
        }
    }
    if parts.is_empty() {
        problems.push(format!(
            "nothing tagged {}={} in {}: no such cluster here",
            super::tags::CLUSTER_TAG,
            s.cluster,
            s.region
        ));
    } else if eks.is_none()
        && !obs
            .instances
            .iter()
            .any(|i| i.is_live() && i.logical.as_deref() == Some(super::graph::MASTER))
    {
        problems.push(
            "no control plane: neither an EKS cluster nor a kubeadm control plane instance".into(),
        );
    }
    for m in &s.missing {
        problems.push(format!("missing: {m} (`provision up` makes it)"));
    }
    let (nodes, api_unreachable) = match &s.api {
        Some(Ok(list)) => {
            let not_ready: Vec<&str> = list
                .iter()
                .filter(|(_, r)| !r)
                .map(|(n, _)| n.as_str())
                .collect();
            if !not_ready.is_empty() {
                problems.push(format!(
                    "{} of {} nodes NotReady: {}",
                    not_ready.len(),
                    list.len(),
                    not_ready.join(", ")
                ));
            }
            (
                Some(
                    list.iter()
                        .map(|(name, ready)| ApiNode {
                            name: name.clone(),
                            ready: *ready,
                        })
                        .collect(),
                ),
                None,
            )
        }
        Some(Err(e)) => (None, Some(e.clone())),
        None => (None, None),
    };
    let stamp = obs
        .vpcs
        .first()
        .map(|v| v.stamp.clone())
        .or_else(|| eks.map(|e| e.stamp.clone()))
        .unwrap_or_default();
    let utc = super::lock::unix_utc;
    Status {
        cluster: s.cluster.to_string(),
        region: s.region.to_string(),
        kind: if eks.is_some() { "eks" } else { "kubeadm" },
        healthy: problems.is_empty(),
        problems,
        parts,
        nodes,
        api_unreachable,
        lock: s.lock.clone(),
        created_by: stamp.created_by,
        created_at: stamp.created_at.map(utc),
        expires_at: super::plan::expiry::observed(obs).map(utc),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::kinds::instances::ObsInstance;

    fn instance(id: &str, logical: &str, state: &str) -> ObsInstance {
        ObsInstance {
            id: id.into(),
            logical: Some(logical.into()),
            state: state.into(),
            subnet_id: None,
            private_ip: Some("10.0.0.5".into()),
            public_ip: None,
            version: Some("1.36.2".into()),
            ..Default::default()
        }
    }

    fn seen<'a>(
        obs: &'a Observed,
        checks: &'a BTreeMap<String, String>,
        reports: &'a BTreeMap<String, NodeReport>,
    ) -> Seen<'a> {
        Seen {
            cluster: "c",
            region: "us-east-1",
            obs,
            checks,
            reports,
            lock: None,
            api: None,
            missing: Vec::new(),
            now: 200,
        }
    }

    #[test]
    fn a_running_cluster_with_passing_checks_is_healthy() {
        let obs = Observed {
            instances: vec![
                instance("i-1", "master", "running"),
                instance("i-2", "workers-0", "running"),
            ],
            ..Observed::default()
        };
        let checks: BTreeMap<String, String> =
            [("i-1".into(), "ok".into()), ("i-2".into(), "ok".into())].into();
        let st = status(&seen(&obs, &checks, &BTreeMap::new()));
        assert!(st.healthy, "{:?}", st.problems);
        assert_eq!(st.parts.len(), 2);
        assert!(
            st.parts[0]
                .detail
                .as_deref()
                .unwrap()
                .contains("launched for 1.36.2")
        );
    }

    #[test]
    fn stopped_impaired_failed_notready_and_missing_parts_are_problems() {
        let obs = Observed {
            instances: vec![
                instance("i-1", "master", "running"),
                instance("i-2", "workers-0", "stopped"),
                instance("i-3", "workers-1", "running"),
            ],
            ..Observed::default()
        };
        let checks: BTreeMap<String, String> = [("i-3".into(), "impaired".into())].into();
        let failed = NodeReport {
            instance: "i-1".into(),
            phase: "kubeadm-init".into(),
            state: State::Failed,
            started: 100,
            boot: None,
            command: Some("init.sh".into()),
            exit_code: Some(2),
            output: Some("boom".into()),
        };
        let reports: BTreeMap<String, NodeReport> = [("i-1".into(), failed)].into();
        let mut s = seen(&obs, &checks, &reports);
        s.api = Some(Ok(vec![("a".into(), true), ("b".into(), false)]));
        s.missing = vec!["instance workers-2".into()];
        let st = status(&s);
        assert!(!st.healthy);
        let all = st.problems.join("\n");
        for want in [
            "i-2 (workers-0) is stopped",
            "i-3 (workers-1) fails its EC2 status checks",
            "failed in phase kubeadm-init",
            "1 of 2 nodes NotReady: b",
            "missing: instance workers-2",
        ] {
            assert!(all.contains(want), "no {want} in {all}");
        }
    }

    #[test]
    fn etcd_snapshots_are_shown_and_their_absence_is_a_problem_after_an_hour() {
        use crate::core::kinds::backup_bucket::{ObsBucket, Snapshot};
        const DAY: i64 = 86_400;
        let now = 10 * DAY;
        let mut master = instance("i-1", "master", "running");
        let mut obs = Observed {
            bucket: Some(ObsBucket {
                name: "provision-c-use1-1".into(),
                owned: true,
                ..ObsBucket::default()
            }),
            ..Observed::default()
        };
        let problems = |obs: &Observed| {
            let (checks, reports) = (BTreeMap::new(), BTreeMap::new());
            let mut s = seen(obs, &checks, &reports);
            s.now = now;
            let st = status(&s);
            let part = st.parts.iter().find(|p| p.kind == "s3-bucket").cloned();
            (
                part.and_then(|p| p.detail).unwrap_or_default(),
                st.problems.join("\n"),
            )
        };
        // A control plane 10 minutes old: none yet, no problem.
        master.launched_at = Some(now - 600);
        obs.instances = vec![master.clone()];
        let (detail, said) = problems(&obs);
        assert_eq!(detail, "no etcd snapshot yet");
        assert!(!said.contains("snapshot"), "{said}");
        // Two hours: a problem.
        obs.instances[0].launched_at = Some(now - 7200);
        assert!(
            problems(&obs)
                .1
                .contains("no etcd snapshot in s3://provision-c-use1-1")
        );
        // A snapshot 15 minutes old: shown, healthy.
        obs.bucket.as_mut().unwrap().snapshots.push(Snapshot {
            key: "etcd/abcdefghijkl/20261205T201500Z.tar.gz".into(),
            at: now - 900,
            bytes: 1,
        });
        let (detail, said) = problems(&obs);
        assert!(
            detail.starts_with("1 snapshot(s), the newest of"),
            "{detail}"
        );
        assert!(detail.ends_with("(15m ago)"), "{detail}");
        assert!(!said.contains("snapshot"), "{said}");
        // Two days old, on a control plane that has run for three: a problem.
        obs.bucket.as_mut().unwrap().snapshots[0].at = now - 2 * DAY;
        obs.instances[0].launched_at = Some(now - 3 * DAY);
        assert!(
            problems(&obs)
                .1
                .contains("the newest etcd snapshot in s3://provision-c-use1-1 is 2d old")
        );
    }

    #[test]
    fn nothing_found_is_a_problem_and_an_unreachable_api_is_not() {
        let obs = Observed::default();
        let (checks, reports) = (BTreeMap::new(), BTreeMap::new());
        let mut s = seen(&obs, &checks, &reports);
        s.api = Some(Err("timed out".into()));
        let st = status(&s);
        assert_eq!(st.problems.len(), 1, "{:?}", st.problems);
        assert!(st.problems[0].contains("no such cluster"));
        assert_eq!(st.api_unreachable.as_deref(), Some("timed out"));
    }
}
