//! Watching the kubeadm nodes boot (`up --wait cluster`): their SSM reports read at a fixed
//! rate, each change of phase said as it happens, and the first failure ending the wait with
//! the node, the phase, the command and its last lines, and the tail of the console output.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::EngineError;
use super::events::{Event, EventSink};
use crate::aws::{self, Clients};
use crate::core::progress::{self, NodeReport};

/// How often the reports are read (scaled by `PROVISION_TIME_SCALE`).
pub const EVERY: Duration = Duration::from_secs(10);

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// Says every change of the nodes' reports; returns only when a node reports a failure of a
/// step that started after `since` (unix seconds, less a minute for clocks): a failure left
/// from an earlier boot (a node fixed by hand, a re-run) is said once and does not end the wait.
/// `nodes`: instance id -> node name.
pub async fn watch(
    c: &Clients,
    cluster: &str,
    nodes: &BTreeMap<String, String>,
    sink: &EventSink,
    start: Instant,
    since: i64,
) -> EngineError {
    let mut seen: BTreeMap<String, NodeReport> = BTreeMap::new();
    let mut warned = false;
    let mut tick = tokio::time::interval(c.tuning.scaled(EVERY));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let reports = match aws::node_reports::read(c, cluster).await {
            Ok(r) => progress::of_instances(r, nodes),
            Err(e) => {
                if !warned {
                    sink(Event::Warning {
                        message: format!(
                            "cannot read the nodes' boot reports ({e}): waiting for the API server only"
                        ),
                    });
                    warned = true;
                }
                continue;
            }
        };
        for r in progress::changes(&seen, &reports) {
            sink(event(r, nodes, start));
            if r.state == progress::State::Failed && r.started < since - 60 {
                let node = nodes.get(&r.instance).map_or("a node", String::as_str);
                let first = r.failure(node).unwrap_or_default();
                sink(Event::Warning {
                    message: format!(
                        "{} (reported before this run: waiting for the cluster all the same)",
                        first.lines().next().unwrap_or_default()
                    ),
                });
            }
        }
        if let Some(failed) = reports
            .values()
            .find(|r| r.state == progress::State::Failed && r.started >= since - 60)
        {
            return failure(c, failed, nodes).await;
        }
        seen = reports;
    }
}

/// The event of one report.
pub fn event(r: &NodeReport, nodes: &BTreeMap<String, String>, start: Instant) -> Event {
    Event::Node {
        node: nodes.get(&r.instance).cloned().unwrap_or_default(),
        instance: r.instance.clone(),
        phase: r.phase.clone(),
        state: r.state,
        in_phase: r.elapsed(now()),
        elapsed_ms: u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX),
    }
}

/// The error of a failed report: its failure, and the console's last lines when EC2 has them.
pub async fn failure(c: &Clients, r: &NodeReport, nodes: &BTreeMap<String, String>) -> EngineError {
    let node = nodes.get(&r.instance).map_or("a node", String::as_str);
    let mut message = r.failure(node).unwrap_or_default();
    match aws::node_reports::console_tail(c, &r.instance, 15).await {
        Ok(Some(t)) => {
            message += "\n  the console's last lines:";
            for l in t.lines() {
                message += &format!("\n    {l}");
            }
        }
        Ok(None) => message += "\n  (no console output from EC2 yet)",
        Err(e) => message += &format!("\n  (the console output could not be read: {e})"),
    }
    EngineError::NodeFailed(message)
}
