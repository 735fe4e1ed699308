//! Node bootstrap progress: what each kubeadm node reports of its boot through SSM
//! (`/provision/NAME/nodes/INSTANCE-ID`, written by the node's `provision-node.py step`), and
//! what `up --wait cluster` and `status` make of the reports.
//!
//! Architecture invariant: a report is the node's word about itself; it is shown only for an
//! instance of the cluster (by the name's instance id), and a failed report ends the wait.

use std::collections::BTreeMap;

/// The path under which the nodes of `cluster` report.
pub fn nodes_path(cluster: &str) -> String {
    format!("/provision/{cluster}/nodes")
}

/// The phases a kubeadm node goes through, in order.
pub const PHASES: &[&str] = &[
    "prepare",
    "fetch-ca",
    "kubeadm-init",
    "cni",
    "kubeadm-join",
    "ready",
];

/// Where a node is in a phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Running,
    Failed,
    Done,
}

/// One node's latest report, as the node writes it (JSON).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
pub struct NodeReport {
    pub instance: String,
    pub phase: String,
    pub state: State,
    /// When the phase started (unix seconds, the node's clock).
    pub started: i64,
    /// When the node's first report was written: its boot, near enough.
    #[serde(default)]
    pub boot: Option<i64>,
    /// On failure: the command, its exit code and its last lines of output.
    #[serde(default)]
    pub command: Option<String>,
    #[serde(default)]
    pub exit_code: Option<i32>,
    #[serde(default)]
    pub output: Option<String>,
}

impl NodeReport {
    /// A parameter's value, when it is a report of the instance its name says.
    pub fn parse(name: &str, value: &str) -> Option<NodeReport> {
        let r: NodeReport = serde_json::from_str(value).ok()?;
        (name.rsplit('/').next() == Some(r.instance.as_str())).then_some(r)
    }

    /// `1m12s` in the current phase at `now`.
    pub fn elapsed(&self, now: i64) -> String {
        super::stamp::format_duration((now - self.started).max(0))
    }

    /// The failure, for people: the node, phase, command and exit code, then the last lines.
    pub fn failure(&self, node: &str) -> Option<String> {
        (self.state == State::Failed).then(|| {
            let mut s = format!(
                "{node} ({}) failed in phase {}: `{}` exited {}",
                self.instance,
                self.phase,
                self.command.as_deref().unwrap_or("?"),
                self.exit_code.map_or("?".to_string(), |c| c.to_string())
            );
            if let Some(o) = self.output.as_deref().filter(|o| !o.trim().is_empty()) {
                s += "; its last lines:\n";
                for l in o.lines() {
                    s += &format!("    {l}\n");
                }
            }
            s.trim_end().to_string()
        })
    }
}

/// What changed between two reads of the reports, by instance: the reports that are new or
/// moved to another phase or state.
pub fn changes<'a>(
    before: &BTreeMap<String, NodeReport>,
    now: &'a BTreeMap<String, NodeReport>,
) -> Vec<&'a NodeReport> {
    now.values()
        .filter(|r| {
            before
                .get(&r.instance)
                .is_none_or(|b| (b.phase.as_str(), b.state) != (r.phase.as_str(), r.state))
        })
        .collect()
}

/// The reports of the cluster's instances (`instances`: id -> node name), by instance; reports
/// of other ids (an old instance, or anything else under the path) are left out.
pub fn of_instances(
    reports: Vec<NodeReport>,
    instances: &BTreeMap<String, String>,
) -> BTreeMap<String, NodeReport> {
    reports
        .into_iter()
        .filter(|r| instances.contains_key(&r.instance))
        .map(|r| (r.instance.clone(), r))
        .collect()
}

/// The last `n` lines of a console output.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(i: &str, phase: &str, state: State) -> NodeReport {
        NodeReport {
            instance: i.into(),
            phase: phase.into(),
            state,
            started: 100,
            boot: Some(90),
            command: None,
            exit_code: None,
            output: None,
        }
    }

    #[test]
    fn a_report_counts_only_under_its_own_instance_id() {
        let v = serde_json::to_string(&report("i-1", "prepare", State::Running)).unwrap();
        assert!(NodeReport::parse("/provision/c/nodes/i-1", &v).is_some());
        assert!(NodeReport::parse("/provision/c/nodes/i-2", &v).is_none());
        assert!(NodeReport::parse("/provision/c/nodes/i-1", "not json").is_none());
    }

    #[test]
    fn changes_are_new_reports_and_moves() {
        let a: BTreeMap<_, _> =
            [("i-1".to_string(), report("i-1", "prepare", State::Running))].into();
        let b: BTreeMap<_, _> = [
            (
                "i-1".to_string(),
                report("i-1", "kubeadm-init", State::Running),
            ),
            ("i-2".to_string(), report("i-2", "prepare", State::Running)),
        ]
        .into();
        assert_eq!(changes(&a, &b).len(), 2);
        assert!(changes(&b, &b).is_empty());
    }

    #[test]
    fn a_failure_names_the_node_phase_command_and_last_lines() {
        let mut r = report("i-1", "kubeadm-init", State::Failed);
        r.command = Some("/usr/local/sbin/provision-init.sh".into());
        r.exit_code = Some(1);
        r.output = Some("[init] pulling images\nerror: port 6443 in use".into());
        let f = r.failure("master").unwrap();
        assert!(f.starts_with("master (i-1) failed in phase kubeadm-init: `/usr/local/sbin/provision-init.sh` exited 1"), "{f}");
        assert!(f.ends_with("    error: port 6443 in use"), "{f}");
        assert!(report("i-1", "ready", State::Done).failure("m").is_none());
        assert_eq!(r.elapsed(172), "1m12s");
    }

    #[test]
    fn only_the_clusters_instances_count() {
        let ids: BTreeMap<String, String> = [("i-1".to_string(), "master".to_string())].into();
        let got = of_instances(
            vec![
                report("i-1", "ready", State::Done),
                report("i-9", "ready", State::Done),
            ],
            &ids,
        );
        assert_eq!(got.keys().collect::<Vec<_>>(), ["i-1"]);
    }

    #[test]
    fn tails_are_the_last_lines() {
        assert_eq!(tail("a\nb\nc\n", 2), "b\nc");
        assert_eq!(tail("a", 5), "a");
    }
}
