//! A worker pool's changes, as its diff lists them: stopped instances started, launches per
//! zone, nodes removed (drained through the API server, their Node deleted, the instance
//! terminated), and stale nodes replaced in batches of the surge budget: launch, wait until
//! the new Nodes are Ready, then remove the old ones. Decides nothing: the order and the
//! instances are the plan's.

use std::time::Duration;

use futures::future::try_join_all;

use super::kind::{Apply, Cx, Scope, Tx};
use super::{AwsError, Clients};
use crate::core::events::Progress;
use crate::core::kinds::instances::{Instances, ObsInstance};
use crate::core::kinds::worker_pool::{Drift, Removal, WorkerPool, replacement_nonce};
use crate::core::kinds::{Change, Inputs, NoState, Output, Plan};

impl Apply for WorkerPool {
    async fn observe(_c: &Clients, _scope: &Scope<'_>) -> Result<NoState, AwsError> {
        // Its instances are the instances kind's (one DescribeInstances for both).
        Ok(NoState)
    }

    async fn apply(
        &self,
        cx: &Cx<'_>,
        id: &str,
        change: &Change<Drift>,
        inputs: &Inputs,
    ) -> Result<Output, AwsError> {
        let mut live: Vec<ObsInstance> = self.instances(id, cx.obs).into_iter().cloned().collect();
        let mut started = Vec::new();
        let mut launches = Vec::new();
        let mut removals = Vec::new();
        let mut replacements = Vec::new();
        for d in &change.drifts {
            match d {
                Drift::Start(ids) => started.extend(ids.iter().cloned()),
                Drift::Launch { logical, count, .. } => launches.push((logical.as_str(), *count)),
                Drift::Remove { instance, why, .. } => removals.push((instance.as_str(), *why)),
                Drift::Replace {
                    instance, logical, ..
                } => replacements.push((instance.as_str(), logical.as_str())),
            }
        }
        super::instances::start(cx.c, &started).await?;
        for i in &live {
            let (progress, note) = if started.contains(&i.id) {
                (Progress::Updated, Some("started".to_string()))
            } else {
                (Progress::Existing, None)
            };
            cx.report
                .resource(id, Self::NAME, Some(&i.id), progress, note);
        }
        let launched: Vec<ObsInstance> = try_join_all(launches.iter().map(|(logical, count)| {
            let have = count_in(&live, logical).to_string();
            async move { self.launch(cx, id, logical, *count, &have, inputs).await }
        }))
        .await?
        .into_iter()
        .flatten()
        .collect();
        let fresh: Vec<String> = launched
            .iter()
            .filter_map(|i| i.private_ip.clone())
            .collect();
        live.extend(launched);
        if removals.is_empty() && replacements.is_empty() {
            return Ok(Output::Instances(live));
        }
        let api = Api::connect(cx, self)?;
        // Nothing is drained before the nodes that take its place are Ready: those this run
        // launched (a subnet change, a pool moved), and those a stopped run launched.
        let mut ready: Vec<String> = fresh;
        if removals.iter().any(|(_, why)| *why == Removal::Replaced) {
            ready.extend(
                live.iter()
                    .filter(|i| {
                        self.stale(i).is_none() && !removals.iter().any(|(r, _)| *r == i.id)
                    })
                    .filter_map(|i| i.private_ip.clone()),
            );
        }
        ready.sort();
        ready.dedup();
        api.wait_ready(cx, id, &ready).await?;
        let budget = usize::try_from(self.max_surge.max(self.max_unavailable).max(1)).unwrap_or(1);
        for batch in removals.chunks(budget) {
            let ids: Vec<String> = batch.iter().map(|(i, _)| (*i).to_string()).collect();
            api.drain_all(cx, id, &live, &ids).await?;
            super::instances::terminate_now(cx.c, &ids).await?;
            live.retain(|i| !ids.contains(&i.id));
        }
        // Replacements: with a surge, the new nodes first; without one, the old ones first
        // (max_unavailable at a time). A drained node's instance is terminated while the next
        // batch launches (its Node is gone: it holds no place in the budget).
        let surge = self.max_surge > 0;
        let size = usize::try_from(if surge {
            self.max_surge
        } else {
            self.max_unavailable
        })
        .unwrap_or(1)
        .max(1);
        let mut drained: Vec<String> = Vec::new();
        for batch in replacements.chunks(size) {
            let ids: Vec<String> = batch.iter().map(|(i, _)| (*i).to_string()).collect();
            if !surge {
                api.drain_all(cx, id, &live, &ids).await?;
                live.retain(|i| !ids.contains(&i.id));
                drained.extend(ids.iter().cloned());
            }
            let mut zones: Vec<(&str, Vec<&str>)> = Vec::new();
            for (old, logical) in batch {
                match zones.iter_mut().find(|(l, _)| l == logical) {
                    Some((_, olds)) => olds.push(old),
                    None => zones.push((logical, vec![old])),
                }
            }
            let launches = try_join_all(zones.iter().map(|(logical, olds)| {
                let nonce = replacement_nonce(olds);
                let count = u32::try_from(olds.len()).unwrap_or(u32::MAX);
                async move { self.launch(cx, id, logical, count, &nonce, inputs).await }
            }));
            let doomed = std::mem::take(&mut drained);
            let (new, ()) =
                futures::try_join!(launches, super::instances::terminate_now(cx.c, &doomed))?;
            let new: Vec<ObsInstance> = new.into_iter().flatten().collect();
            let ips: Vec<String> = new.iter().filter_map(|i| i.private_ip.clone()).collect();
            api.wait_ready(cx, id, &ips).await?;
            // A Ready node's kubelet runs: its instance is running.
            live.extend(new.into_iter().map(|i| ObsInstance {
                state: "running".into(),
                ..i
            }));
            if surge {
                api.drain_all(cx, id, &live, &ids).await?;
                live.retain(|i| !ids.contains(&i.id));
                drained.extend(ids);
            }
        }
        super::instances::terminate_now(cx.c, &drained).await?;
        Ok(Output::Instances(live))
    }

    async fn delete(_tx: &Tx<'_>) -> Result<(), AwsError> {
        // The instances kind terminates every instance of the cluster.
        Ok(())
    }
}

impl WorkerPool {
    /// Launches `count` in the zone whose instances are `logical` (`nonce`: see
    /// `Instances::launch`).
    async fn launch(
        &self,
        cx: &Cx<'_>,
        id: &str,
        logical: &str,
        count: u32,
        nonce: &str,
        inputs: &Inputs,
    ) -> Result<Vec<ObsInstance>, AwsError> {
        let zone: &Instances = self
            .zones
            .iter()
            .find(|(l, _)| l == logical)
            .map(|(_, z)| z)
            .ok_or_else(|| AwsError::internal("a launch names one of the pool's zones"))?;
        let launched = zone.launch(cx, logical, count, nonce, inputs).await?;
        for i in &launched {
            cx.report.resource(
                id,
                Self::NAME,
                Some(&i.id),
                Progress::Created,
                Some(format!(
                    "{logical} {}",
                    i.private_ip.as_deref().unwrap_or("")
                )),
            );
        }
        Ok(launched)
    }
}

fn count_in(live: &[ObsInstance], logical: &str) -> usize {
    live.iter()
        .filter(|i| i.logical.as_deref() == Some(logical))
        .count()
}

/// The API server, reached with an admin certificate from the cluster's CA.
struct Api {
    client: kube::Client,
    drain: Duration,
    nodes: Duration,
    /// Node names by InternalIP, as the last wait for new nodes saw them.
    known: std::sync::Mutex<std::collections::HashMap<String, String>>,
}

impl Api {
    /// The API server at the control plane's address (its Elastic IP), or `--api-server`.
    fn connect(cx: &Cx<'_>, pool: &WorkerPool) -> Result<Api, AwsError> {
        let (server, ca) = match crate::core::access::access(&cx.spec.name, cx.obs) {
            Ok(crate::core::access::Access::Kubeadm { server, ca }) => (server, ca),
            Ok(crate::core::access::Access::Eks { .. }) => {
                return Err(AwsError::internal(
                    "a worker pool belongs to a kubeadm cluster",
                ));
            }
            Err(why) => {
                return Err(AwsError::unexpected(
                    "reaching the API server of",
                    &pool.name,
                    why,
                ));
            }
        };
        let server = cx.limits.api_server.clone().unwrap_or(server);
        let client = crate::kube::probe::ApiClient::kubeadm(&ca)
            .and_then(|a| a.connect(&server))
            .map_err(|e| AwsError::unexpected("connecting to the API server at", &server, e))?;
        Ok(Api {
            client,
            drain: cx.limits.drain,
            nodes: cx.limits.nodes,
            known: Default::default(),
        })
    }

    /// Drains the instances' nodes at once; every drain runs to its end (one that gives up
    /// uncordons its node), then the first error is returned.
    async fn drain_all(
        &self,
        cx: &Cx<'_>,
        id: &str,
        live: &[ObsInstance],
        ids: &[String],
    ) -> Result<(), AwsError> {
        let results =
            futures::future::join_all(ids.iter().map(|i| self.drain_out(cx, id, live, i))).await;
        results.into_iter().collect()
    }

    async fn wait_ready(&self, cx: &Cx<'_>, id: &str, ips: &[String]) -> Result<(), AwsError> {
        if ips.is_empty() {
            return Ok(());
        }
        cx.report.resource(
            id,
            WorkerPool::NAME,
            None,
            Progress::Waiting,
            Some(format!("{} new node(s) to be Ready", ips.len())),
        );
        let nodes =
            crate::kube::ready::wait_ready(&self.client, &cx.c.tuning, ips, self.nodes).await?;
        self.known
            .lock()
            .map_err(|_| AwsError::internal("the node names' lock"))?
            .extend(nodes);
        Ok(())
    }

    /// Drains the instance's Node (if it registered) and deletes it; the instance is terminated
    /// by the caller.
    async fn drain_out(
        &self,
        cx: &Cx<'_>,
        id: &str,
        live: &[ObsInstance],
        instance: &str,
    ) -> Result<(), AwsError> {
        let ip = live
            .iter()
            .find(|i| i.id == instance)
            .and_then(|i| i.private_ip.clone());
        let known = ip
            .as_ref()
            .and_then(|ip| self.known.lock().ok().and_then(|k| k.get(ip).cloned()));
        let node = match (&ip, known) {
            (_, Some(n)) => Some(n),
            (Some(ip), None) => crate::kube::ready::node_for_ip(&self.client, ip).await?,
            (None, None) => None,
        };
        cx.report.resource(
            id,
            WorkerPool::NAME,
            Some(instance),
            Progress::Deleting,
            Some(match &node {
                Some(n) => format!("draining {n}"),
                None => "no Node registered".into(),
            }),
        );
        if let Some(n) = &node {
            crate::kube::drain::drain(&self.client, &cx.c.tuning, n, self.drain).await?;
        }
        cx.report.resource(
            id,
            WorkerPool::NAME,
            Some(instance),
            Progress::Deleted,
            Some(match node {
                Some(n) => format!("{n} drained and deleted; terminating the instance"),
                None => "terminating the instance".into(),
            }),
        );
        Ok(())
    }
}
