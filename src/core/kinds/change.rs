//! What the diff of one node says: the typed [`Change`] `up` executes and `plan` prints.

use std::fmt;

use super::{Kind, Observed};
use crate::core::graph::Graph;
use crate::core::spec::ClusterSpec;
use crate::core::tags::{CLUSTER_TAG, REGION_TAG};

/// What the diff of a node sees: the spec, the whole desired graph, what AWS reported and the
/// time (unix seconds; token ages depend on it).
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    pub spec: &'a ClusterSpec,
    pub graph: &'a Graph,
    pub obs: &'a Observed,
    pub now: i64,
}

/// What `up` does to one node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Make it.
    Create,
    /// Change it in place: the change's drifts say what.
    Update,
    /// Make a new one in place of one that cannot be used any more.
    Replace,
    /// Remove it (`down`, or a spare duplicate `up` found).
    Delete,
    /// Run a lookup.
    Read,
    /// Nothing to do, but something to say (the change's warnings).
    Warn,
    /// Nothing to do.
    Keep,
    /// `up` will not go ahead: the change's refusal says why, and nothing is changed.
    Refuse,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Update => "update",
            Action::Replace => "replace",
            Action::Delete => "delete",
            Action::Read => "read",
            Action::Warn => "warn",
            Action::Keep => "keep",
            Action::Refuse => "refuse",
        }
    }
}

/// Why `up` refuses to go ahead. Every refusal `up` can make is one of these, decided by a
/// diff, so `plan` shows it first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// A resource of our name exists without our cluster tag: someone else's.
    NotOurs {
        what: &'static str,
        name: String,
        cluster: String,
    },
    /// A global (IAM) object of ours, but the same cluster name's in another region.
    OtherRegion {
        what: &'static str,
        name: String,
        region: String,
    },
    /// AWS cannot make the change in place.
    Immutable { what: String },
    /// The resource is in a state nothing can continue from.
    State { what: String, state: String },
    /// The control plane is gone, workers remain and there is no snapshot to restore.
    ControlPlaneLost {
        cluster: String,
        workers: usize,
        /// Where this cluster's snapshots would be (`BUCKET/etcd/CLUSTER-ID/`), if the bucket
        /// exists.
        snapshots: Option<String>,
    },
    /// An EKS spec meets the instances of a kubeadm cluster of the same name.
    KindChanged { cluster: String, instances: usize },
    /// Several tagged VPCs hold resources.
    DuplicateVpcs {
        cluster: String,
        region: String,
        ids: Vec<String>,
    },
    /// An instance is stopping; it can be started once it has stopped.
    Stopping { node: String, instance: String },
    /// The stored bootstrap secret cannot be used.
    BadSecret { parameter: String, why: String },
    /// The spec asks for a lower version than runs.
    Downgrade {
        what: String,
        from: String,
        to: String,
    },
    /// An update EKS is running that is not a step of this upgrade.
    UpdateInProgress {
        what: String,
        id: String,
        kind: String,
    },
    /// EKS's upgrade insights report ERROR (`name (reason): recommendation` each).
    Insights {
        cluster: String,
        insights: Vec<String>,
    },
    /// An add-on is pinned to a version the minor it goes to cannot run.
    AddonPin {
        name: String,
        version: String,
        minor: String,
        compatible: Vec<String>,
    },
    /// EKS has no version of an add-on for a minor.
    AddonUnavailable { name: String, minor: String },
    /// A kubeadm control plane asked to go to an older version.
    KubeadmDowngrade { from: String, to: String },
    /// A kubeadm control plane asked to skip a minor.
    SkippedMinor {
        from: String,
        to: String,
        next: String,
    },
    /// Nodes must be drained but the API server does not answer.
    ApiUnreachable {
        pool: String,
        server: String,
        why: String,
    },
    /// An add-on pinned below the version it runs.
    AddonDowngrade {
        name: String,
        from: String,
        to: String,
    },
}

/// What a change AWS cannot make in place asks the user to do.
pub const IMMUTABLE: &str = "cannot be changed in place (run `provision down`, then `up`)";

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::NotOurs {
                what,
                name,
                cluster,
            } => write!(
                f,
                "{what} {name} exists without the tag {CLUSTER_TAG}={cluster}: refusing to adopt it (it belongs to someone else; remove it or choose another cluster name)"
            ),
            Refusal::OtherRegion { what, name, region } => write!(
                f,
                "{what} {name} belongs to the cluster of this name in {region} (its tag {REGION_TAG}): refusing to adopt it; choose another cluster name, or work on that region's cluster"
            ),
            Refusal::Immutable { what } => write!(f, "{what}: {IMMUTABLE}"),
            Refusal::State { what, state } => write!(f, "{what} is {state}: {IMMUTABLE}"),
            Refusal::ControlPlaneLost {
                cluster,
                workers,
                snapshots,
            } => write!(
                f,
                "the control plane of {cluster} is gone but {workers} worker(s) remain, and {}: a new control plane would be a new, empty cluster; put a snapshot there, or run `provision down -f SPEC` and `provision up` again",
                match snapshots {
                    Some(at) => format!("s3://{at} holds no etcd snapshot of this cluster"),
                    None => "there is no etcd snapshot bucket".to_string(),
                }
            ),
            Refusal::KindChanged { cluster, instances } => write!(
                f,
                "{instances} instance(s) tagged {CLUSTER_TAG}={cluster} run: this cluster was made with kind = \"kubeadm\"; run `provision down` before making it an EKS cluster"
            ),
            Refusal::DuplicateVpcs {
                cluster,
                region,
                ids,
            } => write!(
                f,
                "{} VPCs carry {CLUSTER_TAG}={cluster} and hold resources ({}); run `provision down --name {cluster} --region {region}` and try again",
                ids.len(),
                ids.join(", ")
            ),
            Refusal::Stopping { node, instance } => write!(
                f,
                "{instance} ({node}) is stopping; re-run `provision up` once it has stopped"
            ),
            Refusal::BadSecret { parameter, why } => write!(
                f,
                "the bootstrap secret {parameter} cannot be used: {why}; run `provision down` to remove the cluster"
            ),
            Refusal::Downgrade { what, from, to } => write!(
                f,
                "{what} runs Kubernetes {from}, the spec says {to}: EKS cannot downgrade; set the version to {from} or later"
            ),
            Refusal::UpdateInProgress { what, id, kind } => write!(
                f,
                "{what} has an update in progress that is not a step of this upgrade ({kind} {id}): wait until it ends (aws eks describe-update --update-id {id}), then re-run"
            ),
            Refusal::Insights { cluster, insights } => write!(
                f,
                "EKS's upgrade insights for {cluster} report ERROR: {}; fix what they name, or run `provision up --force` to upgrade anyway",
                insights.join("; ")
            ),
            Refusal::AddonPin {
                name,
                version,
                minor,
                compatible,
            } => write!(
                f,
                "add-on {name} is pinned to {version}, which Kubernetes {minor} cannot run (its versions for {minor}: {}): change the pin in [eks] addons",
                if compatible.is_empty() {
                    "none".to_string()
                } else {
                    compatible.join(", ")
                }
            ),
            Refusal::AddonDowngrade { name, from, to } => write!(
                f,
                "add-on {name} runs {from}, the spec pins {to}: EKS cannot downgrade an add-on; pin {from} or later"
            ),
            Refusal::KubeadmDowngrade { from, to } => write!(
                f,
                "the control plane runs Kubernetes {from}, the spec says {to}: kubeadm cannot downgrade; set kubeadm.kubernetes_version to {from} or later"
            ),
            Refusal::SkippedMinor { from, to, next } => write!(
                f,
                "the control plane runs Kubernetes {from}, the spec says {to}: kubeadm upgrades one minor at a time; set kubeadm.kubernetes_version to \"{next}\", run `provision up`, then go on"
            ),
            Refusal::ApiUnreachable { pool, server, why } => write!(
                f,
                "worker pool {pool} has nodes to drain, which needs the API server, but {server} does not answer ({why}): run from an address in network.admin_cidrs, or give --api-server URL (a tunnel); nothing was changed"
            ),
            Refusal::AddonUnavailable { name, minor } => write!(
                f,
                "EKS has no version of the add-on {name} for Kubernetes {minor}: remove it from [eks] addons or choose another version"
            ),
        }
    }
}

/// What `up` does to one node: its action, the AWS id of what exists, the drifts an update
/// repairs (typed by kind), why it refuses, and what it warns about.
#[derive(Debug, Clone, PartialEq)]
pub struct Change<D> {
    pub action: Action,
    pub aws_id: Option<String>,
    pub drifts: Vec<D>,
    pub refusal: Option<Refusal>,
    pub warnings: Vec<String>,
}

impl<D: fmt::Display> Change<D> {
    fn with(action: Action, aws_id: Option<String>) -> Change<D> {
        Change {
            action,
            aws_id,
            drifts: Vec::new(),
            refusal: None,
            warnings: Vec::new(),
        }
    }

    pub fn create() -> Change<D> {
        Change::with(Action::Create, None)
    }

    /// A new one in place of `old`, which cannot be used any more.
    pub fn replace(old: &str) -> Change<D> {
        Change::with(Action::Replace, Some(old.to_string()))
    }

    /// A lookup to run.
    pub fn read() -> Change<D> {
        Change::with(Action::Read, None)
    }

    pub fn keep(aws_id: Option<String>) -> Change<D> {
        Change::with(Action::Keep, aws_id)
    }

    /// An existing resource with `drifts` to repair (none: kept as it is).
    pub fn update(aws_id: &str, drifts: Vec<D>) -> Change<D> {
        let action = if drifts.is_empty() {
            Action::Keep
        } else {
            Action::Update
        };
        Change {
            drifts,
            ..Change::with(action, Some(aws_id.to_string()))
        }
    }

    pub fn refuse(aws_id: Option<String>, why: Refusal) -> Change<D> {
        Change {
            refusal: Some(why),
            ..Change::with(Action::Refuse, aws_id)
        }
    }

    /// Adds a warning; a change with nothing else to do becomes [`Action::Warn`].
    pub fn warn(mut self, message: impl Into<String>) -> Change<D> {
        self.warnings.push(message.into());
        if self.action == Action::Keep {
            self.action = Action::Warn;
        }
        self
    }

    /// The change as `plan` prints it.
    pub fn row(&self, id: &str, kind: Kind) -> Row {
        Row {
            id: id.to_string(),
            kind: kind.as_str(),
            action: self.action,
            aws_id: self.aws_id.clone(),
            changes: self.drifts.iter().map(ToString::to_string).collect(),
            reason: self.refusal.as_ref().map(ToString::to_string),
            warnings: self.warnings.clone(),
        }
    }
}

/// One line of a plan, as `plan` prints it and `up` reports what it executed (the same rows,
/// from the same [`Change`]s).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Row {
    pub id: String,
    pub kind: &'static str,
    pub action: Action,
    pub aws_id: Option<String>,
    /// The drifts an update repairs.
    pub changes: Vec<String>,
    /// Why `up` refuses.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// Something `down` deletes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Doomed {
    /// The logical id it carries, or `(untracked)` / `(kubernetes)`.
    pub id: String,
    pub kind: &'static str,
    pub aws_id: String,
}

impl Doomed {
    pub fn new(kind: &'static str, logical: Option<&str>, aws_id: &str) -> Doomed {
        Doomed {
            id: logical.unwrap_or("(untracked)").to_string(),
            kind,
            aws_id: aws_id.to_string(),
        }
    }

    /// The row `plan --destroy` prints.
    pub fn row(&self) -> Row {
        Row {
            id: self.id.clone(),
            kind: self.kind,
            action: Action::Delete,
            aws_id: Some(self.aws_id.clone()),
            changes: Vec::new(),
            reason: None,
            warnings: Vec::new(),
        }
    }
}
