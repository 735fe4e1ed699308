//! The AWS side of a kind: find what exists (`observe`), execute the change the plan decided
//! (`apply`), delete what `down` found (`delete`). Every kind registered in
//! `core::kinds::with_kinds!` implements [`Apply`]; one that does not, does not compile.
//!
//! Architecture invariant: `apply` executes the [`Change`] it is given and decides nothing:
//! what to create, repair or refuse was decided by the kind's diff in `core`. What it learns
//! (ids, addresses) it returns as an [`Output`] for the nodes that depend on it.

use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{AwsError, Clients};
use crate::core::events::{Event, EventSink, Progress, ResourceRecord};
use crate::core::graph::Graph;
use crate::core::kinds::{Change, Inputs, Kind, Observed, Output, Plan};
use crate::core::spec::ClusterSpec;
use crate::core::tags;

/// The AWS side of one kind.
pub trait Apply: Plan + Sync {
    /// What exists of this kind for the cluster (one batched, tag-filtered Describe where the
    /// API allows; names derived from the cluster otherwise).
    fn observe(
        c: &Clients,
        scope: &Scope<'_>,
    ) -> impl Future<Output = Result<Self::Observed, AwsError>> + Send;

    /// Executes `change` for node `id`, with the outputs of its dependencies.
    fn apply(
        &self,
        cx: &Cx<'_>,
        id: &str,
        change: &Change<Self::Drift>,
        inputs: &Inputs,
    ) -> impl Future<Output = Result<Output, AwsError>> + Send;

    /// Deletes every resource of this kind `down` found (`Plan::doomed`).
    fn delete(tx: &Tx<'_>) -> impl Future<Output = Result<(), AwsError>> + Send;
}

/// What discovery looks for.
#[derive(Debug)]
pub struct Scope<'a> {
    pub cluster: &'a str,
    pub region: &'a str,
    /// `Some(kubeadm)` or `Some(eks)`: only that flavour's IAM, SSM and EKS objects; `None`
    /// (`down`, which has no spec): every flavour's.
    pub flavor: Option<Flavor>,
    /// Also read the VPC's DNS attributes (`up` and `plan` need them, `down` not).
    pub vpc_attributes: bool,
    /// Also look for what Kubernetes made in the VPC (`down`, `plan --destroy`).
    pub leftovers: bool,
    /// Look for the add-ons' role, profile and secrets (always when `flavor` is `None`).
    pub addons: bool,
    /// Read the bootstrap secret's content (`up` and `plan`: token ages, the CA).
    pub secret_content: bool,
    /// The kinds the graph has (`up` and `plan`); `None` (`down`): every kind.
    pub kinds: Option<std::collections::BTreeSet<Kind>>,
    /// The EKS version the spec asks for, `up --force`, and the pinned add-ons (what an upgrade
    /// or a pin must look up).
    pub eks_version: Option<(
        &'a str,
        bool,
        &'a std::collections::BTreeMap<String, String>,
    )>,
    /// The subnets whose reservations to read (those the graph reserves an address in).
    pub reserving: Vec<String>,
    warnings: Mutex<Vec<String>>,
}

/// Which flavour's objects to look for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    Kubeadm,
    Eks,
}

impl<'a> Scope<'a> {
    /// What `up` and `plan` look for: the spec's flavour and the kinds of its graph.
    pub fn up(spec: &'a ClusterSpec, graph: &Graph) -> Scope<'a> {
        Scope {
            cluster: &spec.name,
            region: &spec.region,
            flavor: Some(if spec.eks().is_some() {
                Flavor::Eks
            } else {
                Flavor::Kubeadm
            }),
            vpc_attributes: true,
            leftovers: false,
            addons: spec.addons.any(),
            secret_content: true,
            kinds: Some(graph.nodes.iter().map(|n| n.desired.kind()).collect()),
            eks_version: spec
                .eks()
                .map(|e| (e.version.as_str(), e.skip_insights, &e.addon_versions)),
            reserving: graph
                .nodes
                .iter()
                .filter(|n| {
                    matches!(&n.desired, crate::core::kinds::Desired::Subnet(s) if s.reserve.is_some())
                })
                .map(|n| n.id.clone())
                .collect(),
            warnings: Mutex::new(Vec::new()),
        }
    }

    /// What `down` and `plan --destroy` look for: everything of every flavour.
    pub fn down(cluster: &'a str, region: &'a str) -> Scope<'a> {
        Scope {
            cluster,
            region,
            flavor: None,
            vpc_attributes: false,
            leftovers: true,
            addons: true,
            secret_content: false,
            kinds: None,
            eks_version: None,
            reserving: Vec::new(),
            warnings: Mutex::new(Vec::new()),
        }
    }

    pub fn kubeadm(&self) -> bool {
        self.flavor != Some(Flavor::Eks)
    }

    pub fn eks(&self) -> bool {
        self.flavor != Some(Flavor::Kubeadm)
    }

    /// Whether to look for resources of kind `k`: the graph has a node of it, or this is
    /// `down`'s scope. (Kinds `up` may have to clean up after, such as instances of another
    /// flavour, are looked for by flavour instead.)
    pub fn wants(&self, k: Kind) -> bool {
        self.kinds.as_ref().is_none_or(|kinds| kinds.contains(&k))
    }

    pub fn with_addons(&self) -> bool {
        self.addons || self.flavor.is_none()
    }

    /// A lookup that could not be made, for the user to see.
    pub fn warn(&self, message: String) {
        self.warnings
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(message);
    }

    pub(crate) fn take_warnings(&self) -> Vec<String> {
        std::mem::take(
            &mut *self
                .warnings
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }
}

/// How long `up` and `down` wait for what takes time.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Instances to run (and pass status checks), or to terminate.
    pub instances: Duration,
    /// An EKS cluster, node group or add-on to become ACTIVE, or to be deleted.
    pub eks: Duration,
    /// Reach the API server through this URL (a tunnel or VPN) instead of the control plane's
    /// public address.
    pub api_server: Option<String>,
    /// A node's pods to leave it (PodDisruptionBudgets allowing).
    pub drain: Duration,
    /// New workers to register and be Ready.
    pub nodes: Duration,
}

/// What `apply` works with: the clients, the spec, what discovery saw, the run's report.
pub struct Cx<'a> {
    pub c: &'a Clients,
    pub spec: &'a ClusterSpec,
    pub obs: &'a Observed,
    pub report: &'a Report,
    pub limits: &'a Limits,
    /// Who runs `up`, when, and the cluster's expiry: on everything it creates.
    pub stamp: &'a crate::core::stamp::RunStamp,
}

impl Cx<'_> {
    /// The tags of node `id`'s resources (`kubernetes`: also `kubernetes.io/cluster/NAME`),
    /// with this run's stamp.
    pub fn tags(&self, id: &str, kubernetes: bool) -> Vec<(String, String)> {
        let mut t = tags::tags_for(&self.spec.name, id, kubernetes, &self.spec.tags);
        t.extend(self.stamp.tags());
        t
    }
}

/// What `delete` works with.
pub struct Tx<'a> {
    pub c: &'a Clients,
    pub cluster: &'a str,
    pub obs: &'a Observed,
    pub report: &'a Report,
    pub limits: &'a Limits,
}

/// The run's events, stamped with the time since it started, and the resources the summary
/// lists (collected as they are reported, not a place where nodes look anything up).
pub struct Report {
    sink: EventSink,
    start: Instant,
    records: Mutex<Vec<ResourceRecord>>,
}

impl Report {
    pub fn new(sink: EventSink, start: Instant) -> Report {
        Report {
            sink,
            start,
            records: Mutex::new(Vec::new()),
        }
    }

    /// When the run started (for waits that report their own progress).
    pub fn start(&self) -> Instant {
        self.start
    }

    pub fn elapsed_ms(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Something happened to node `id`'s resource. `created`, `updated`, `existing` and
    /// `deleted` go into the summary.
    pub fn resource(
        &self,
        id: &str,
        kind: &str,
        aws_id: Option<&str>,
        action: Progress,
        detail: Option<String>,
    ) {
        if let (Some(aws), true) = (aws_id, action.is_outcome()) {
            self.records
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(ResourceRecord {
                    id: id.into(),
                    aws_id: aws.into(),
                    kind: kind.into(),
                    action,
                });
        }
        (self.sink)(Event::Resource {
            id: id.into(),
            kind: kind.into(),
            aws_id: aws_id.map(str::to_string),
            action,
            elapsed_ms: self.elapsed_ms(),
            detail,
        });
    }

    /// Reports `deleting`, runs `delete`, then reports `deleted` (or nothing more if it fails:
    /// the failure is the step's).
    ///
    /// # Errors
    /// The delete's error.
    pub async fn deleting<F>(
        &self,
        id: Option<&str>,
        kind: &str,
        aws_id: &str,
        delete: F,
    ) -> Result<(), AwsError>
    where
        F: Future<Output = Result<(), AwsError>>,
    {
        let id = id.unwrap_or("(untracked)");
        self.resource(id, kind, Some(aws_id), Progress::Deleting, None);
        delete.await?;
        self.resource(id, kind, Some(aws_id), Progress::Deleted, None);
        Ok(())
    }

    pub fn waiting(&self, what: String) {
        (self.sink)(Event::Waiting {
            what,
            elapsed_ms: self.elapsed_ms(),
        });
    }

    pub fn warning(&self, message: String) {
        (self.sink)(Event::Warning { message });
    }

    pub fn phase(&self, phase: &str) {
        (self.sink)(Event::Phase {
            phase: phase.into(),
        });
    }

    pub fn sink(&self) -> &EventSink {
        &self.sink
    }

    /// The resources reported so far.
    pub fn records(&self) -> Vec<ResourceRecord> {
        self.records
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}
