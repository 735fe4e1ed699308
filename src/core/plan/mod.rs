//! The plan: what `up` does to every node of the graph, decided here from (spec, observed,
//! time) and nowhere else. `plan` prints it; `up` executes it, node by node, and reports the same
//! rows; `plan --destroy` lists what `down` deletes, in the order it deletes it.

use super::graph::{self, Graph};
use super::kinds::{Action, Context, Doomed, Item, Observed, Refusal, Row};
use super::spec::ClusterSpec;
use super::teardown::{self, Step};

/// The change of one graph node, with what it depends on.
#[derive(Debug, Clone, PartialEq)]
pub struct Planned {
    pub id: String,
    pub deps: Vec<String>,
    pub item: Item,
}

/// A change to something AWS reported that is not a node of the graph.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Loose {
    /// An empty duplicate of the cluster's VPC (CreateVpc takes no client token): deleted first.
    SpareVpc { id: String },
    /// The instances of a kubeadm cluster of the same name, met by an EKS spec.
    KubeadmInstances { ids: Vec<String>, refusal: Refusal },
}

impl Loose {
    pub fn row(&self) -> Row {
        match self {
            Loose::SpareVpc { id } => Row {
                id: graph::VPC.into(),
                kind: "vpc",
                action: Action::Delete,
                aws_id: Some(id.clone()),
                changes: vec!["an empty duplicate of the cluster's VPC".into()],
                reason: None,
                warnings: Vec::new(),
            },
            Loose::KubeadmInstances { ids, refusal } => Row {
                id: graph::MASTER.into(),
                kind: "instance",
                action: Action::Refuse,
                aws_id: Some(ids.join(",")),
                changes: Vec::new(),
                reason: Some(refusal.to_string()),
                warnings: Vec::new(),
            },
        }
    }

    fn refusal(&self) -> Option<&Refusal> {
        match self {
            Loose::SpareVpc { .. } => None,
            Loose::KubeadmInstances { refusal, .. } => Some(refusal),
        }
    }
}

/// Everything `up` will do.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Done first, before any node.
    pub loose: Vec<Loose>,
    /// In the graph's (topological) order.
    pub nodes: Vec<Planned>,
    /// The cluster's expiry after this run: what the resources it creates are tagged with.
    pub expires_at: Option<i64>,
    /// Moving the expiry on what already exists: done after every node.
    pub retag: Option<expiry::Retag>,
}

impl Plan {
    /// Whether it takes nodes out, through the API server: then whether that answers is asked
    /// before the plan is final ([`Observed::api`]).
    pub fn drains(&self) -> bool {
        self.nodes.iter().any(|n| match &n.item {
            super::kinds::Item::WorkerPool(_, change) => change
                .drifts
                .iter()
                .any(super::kinds::worker_pool::Drift::drains),
            _ => false,
        })
    }

    /// The plan as `plan` prints it and `up` reports it.
    pub fn rows(&self) -> Vec<Row> {
        self.loose
            .iter()
            .map(Loose::row)
            .chain(self.nodes.iter().map(|n| n.item.row(&n.id)))
            .chain(self.retag.iter().map(expiry::Retag::row))
            .collect()
    }

    /// Why `up` will not go ahead: every refusal, with the row it is on.
    pub fn refusals(&self) -> Vec<Row> {
        self.rows()
            .into_iter()
            .filter(|r| r.action == Action::Refuse)
            .collect()
    }

    /// Whether `up` goes ahead.
    pub fn refused(&self) -> bool {
        self.loose.iter().any(|l| l.refusal().is_some())
            || self
                .nodes
                .iter()
                .any(|n| n.item.row(&n.id).action == Action::Refuse)
    }
}

/// The plan of `up` for `spec` against what AWS reported, at `now` (unix seconds).
pub fn plan(spec: &ClusterSpec, graph: &Graph, obs: &Observed, now: i64) -> Plan {
    let spare = super::kinds::vpc::spare_vpcs(obs);
    let mut seen = obs.clone();
    seen.vpcs.retain(|v| !spare.contains(&v.id));
    let mut loose: Vec<Loose> = spare.into_iter().map(|id| Loose::SpareVpc { id }).collect();
    if spec.eks().is_some() {
        let ids: Vec<String> = seen
            .instances
            .iter()
            .filter(|i| {
                i.is_live()
                    && i.logical
                        .as_deref()
                        .is_some_and(|l| l == graph::MASTER || graph::is_workers_id(l))
            })
            .map(|i| i.id.clone())
            .collect();
        if !ids.is_empty() {
            loose.push(Loose::KubeadmInstances {
                refusal: Refusal::KindChanged {
                    cluster: spec.name.clone(),
                    instances: ids.len(),
                },
                ids,
            });
        }
    }
    let cx = Context {
        spec,
        graph,
        obs: &seen,
        now,
    };
    let nodes = graph
        .nodes
        .iter()
        .map(|n| Planned {
            id: n.id.clone(),
            deps: n.deps.clone(),
            item: n.desired.plan(&n.id, &cx),
        })
        .collect();
    let (expires_at, retag) = expiry::plan(spec, &seen, now);
    Plan {
        loose,
        nodes,
        expires_at,
        retag,
    }
}

/// What `down` may delete beyond the cluster's own resources.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Teardown {
    /// The CSI driver's claim volumes (`down --delete-volumes`).
    pub delete_volumes: bool,
    /// Keep the etcd snapshots' bucket (`down --keep-backups`).
    pub keep_backups: bool,
}

/// Everything `down` deletes, with its step, in the order `down` deletes it: the CSI driver's
/// volumes only with `delete_volumes`, the etcd snapshots' bucket unless `keep_backups`.
pub fn destroy(obs: &Observed, t: Teardown) -> Vec<(Step, Doomed)> {
    let mut out: Vec<(Step, Doomed)> = obs.leftovers.doomed();
    if t.delete_volumes {
        for v in &obs.leftovers.volumes {
            out.push((
                Step::Volumes,
                Doomed::new("volume", Some("(kubernetes)"), &v.id),
            ));
        }
    }
    for k in super::kinds::Kind::ALL {
        if t.keep_backups && *k == super::kinds::Kind::BackupBucket {
            continue;
        }
        out.extend(k.doomed(obs).into_iter().map(|d| (Step::Kind(*k), d)));
    }
    let order: Vec<Step> = teardown::order().into_iter().map(|(s, _)| s).collect();
    out.sort_by_key(|(s, _)| order.iter().position(|o| o == s));
    out
}

/// What `down` leaves, as `plan --destroy` lists it and `down` warns of it: the CSI driver's
/// volumes (data: kept unless `delete_volumes`), and IAM objects and an EKS cluster of our
/// names that are not ours. One row each, `keep`, with the reason as its warning.
pub fn kept(obs: &Observed, cluster: &str, region: &str, t: Teardown) -> Vec<Row> {
    let row = |kind: &'static str, aws_id: &str, warning: String| Row {
        id: "(left alone)".into(),
        kind,
        action: Action::Keep,
        aws_id: Some(aws_id.to_string()),
        changes: Vec::new(),
        reason: None,
        warnings: vec![warning],
    };
    let mut out = Vec::new();
    if !t.delete_volumes {
        for v in &obs.leftovers.volumes {
            out.push(row(
                "volume",
                &v.id,
                format!(
                    "EBS volume {} of a persistent volume claim is kept (it holds data and bills until deleted): `provision down --name {cluster} --region {region} --delete-volumes` deletes it, also once the cluster is gone",
                    v.describe()
                ),
            ));
        }
    }
    let not_ours = |what: &str, name: &str, other_region: Option<&String>| match other_region {
        Some(r) => format!("{what} {name} belongs to the cluster of this name in {r}: left alone"),
        None => format!(
            "{what} {name} is not tagged {}={cluster}: left alone",
            super::tags::CLUSTER_TAG
        ),
    };
    if let Some(b) = obs.bucket.as_ref() {
        if !b.owned {
            out.push(row(
                "s3-bucket",
                &b.name,
                not_ours("S3 bucket", &b.name, None),
            ));
        } else if t.keep_backups {
            out.push(row(
                "s3-bucket",
                &b.name,
                super::kinds::backup_bucket::kept_note(b, cluster, region),
            ));
        }
    }
    for r in obs.roles.iter().filter(|r| !r.owned) {
        out.push(row(
            "iam-role",
            &r.name,
            not_ours("IAM role", &r.name, r.other_region.as_ref()),
        ));
    }
    for p in obs.profiles.iter().filter(|p| !p.owned) {
        out.push(row(
            "instance-profile",
            &p.name,
            not_ours("instance profile", &p.name, p.other_region.as_ref()),
        ));
    }
    if let Some(e) = obs.eks.as_ref().filter(|e| !e.owned) {
        out.push(row(
            "eks-cluster",
            &e.name,
            not_ours("EKS cluster", &e.name, None),
        ));
    }
    out
}

pub mod expiry;

#[cfg(test)]
mod cases;
#[cfg(test)]
mod cases_kubeadm;
#[cfg(test)]
mod converged;
#[cfg(test)]
mod tests;
