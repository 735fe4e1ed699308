//! EC2 instances of one role (the control plane, the workers of one subnet, an add-on),
//! launched in one call, IMDSv2 required, with an encrypted root volume. A stopped instance is
//! started again, never replaced (a new control plane would be a new, empty cluster).

use std::fmt;

use super::{Change, Context, Doomed, Observed, Plan, Refusal};
use crate::core::latency::{Cost, InstanceWait, Profile};
use crate::core::spec::Addon;
use crate::core::teardown::Step;
use crate::core::userdata::UserData;

/// What the instances are for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The kubeadm control plane (one instance).
    Master,
    /// kubeadm workers.
    Workers,
    /// An add-on's instance.
    Addon(Addon),
}

/// Everything a launch needs: the ids it names are the nodes whose outputs give them.
#[derive(Debug, Clone, PartialEq)]
pub struct Instances {
    pub role: Role,
    pub count: u32,
    pub subnet: String,
    pub groups: Vec<String>,
    pub profile: String,
    /// The image lookup's node.
    pub image: String,
    pub instance_type: String,
    pub volume_gb: i32,
    pub key_name: Option<String>,
    /// The nodes whose outputs scope the launch's client token: the bootstrap secret (its
    /// cluster id) for kubeadm nodes, else the VPC.
    pub token_scope: TokenScope,
    /// Whether the Kubernetes cloud integrations own them (`kubernetes.io/cluster/NAME`).
    pub kubernetes_owned: bool,
    /// A Spot instance (a one-time request, terminated on interruption).
    pub spot: bool,
    /// Tags beyond the cluster's (a worker's pool and launch hash).
    pub tags: Vec<(String, String)>,
    /// A fixed private address (the control plane's: the workers know it, and a control plane
    /// restored from a snapshot takes it over).
    pub private_ip: Option<String>,
    pub user_data: UserData,
}

/// What makes a launch's client token unique to this incarnation of the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenScope {
    /// The bootstrap secret's node: its random cluster id.
    ClusterId(String),
    /// The VPC's node: its id.
    Vpc(String),
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObsInstance {
    pub id: String,
    pub logical: Option<String>,
    pub state: String,
    pub subnet_id: Option<String>,
    pub private_ip: Option<String>,
    pub public_ip: Option<String>,
    /// The Kubernetes version it was launched for (its tag; kubeadm nodes).
    pub version: Option<String>,
    /// The hash of what a worker was launched with (its tag; see `worker_pool::launch_hash`).
    pub launch_hash: Option<String>,
    pub instance_type: Option<String>,
    /// Seconds since the epoch.
    pub launched_at: Option<i64>,
    /// How often it saves etcd, as launched (its tag; the kubeadm control plane).
    pub backup_interval: Option<String>,
}

impl ObsInstance {
    /// Not terminated or on its way there: it counts towards the desired number.
    pub fn is_live(&self) -> bool {
        matches!(
            self.state.as_str(),
            "pending" | "running" | "stopping" | "stopped"
        )
    }

    pub fn is_stopped(&self) -> bool {
        matches!(self.state.as_str(), "stopping" | "stopped")
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Drift {
    /// Start these stopped instances.
    Start(Vec<String>),
    /// Launch `count` more (there are `have`).
    Launch { count: u32, have: u32 },
    /// A new control plane in place of a lost one: restore etcd from this snapshot first.
    Restore { key: String, time: String },
}

impl fmt::Display for Drift {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Drift::Start(ids) => write!(f, "start {} stopped instance(s)", ids.len()),
            Drift::Restore { key, time } => {
                write!(f, "restore from the snapshot of {time} ({key})")
            }
            Drift::Launch { count, have } => {
                write!(
                    f,
                    "launch {count} more (have {have}, want {})",
                    have + count
                )
            }
        }
    }
}

impl Plan for Instances {
    const NAME: &'static str = "instance";
    const TAGS: Option<super::TagFamily> = Some(super::TagFamily::Ec2);
    const DELETE_AFTER: &'static [Step] = &[Step::Kubernetes];
    type Observed = Vec<ObsInstance>;
    type Drift = Drift;

    fn diff(&self, id: &str, cx: &Context<'_>) -> Change<Drift> {
        let live: Vec<&ObsInstance> = cx.obs.live_instances(id).collect();
        if let Some(i) = live.iter().find(|i| i.state == "stopping") {
            return Change::refuse(
                Some(ids(&live)),
                Refusal::Stopping {
                    node: id.to_string(),
                    instance: i.id.clone(),
                },
            );
        }
        if live.is_empty() {
            if self.role == Role::Master {
                return self.lost_master(cx);
            }
            return Change::create();
        }
        let have = live.len() as u32;
        let stopped: Vec<String> = live
            .iter()
            .filter(|i| i.state == "stopped")
            .map(|i| i.id.clone())
            .collect();
        let mut drifts = Vec::new();
        if !stopped.is_empty() {
            drifts.push(Drift::Start(stopped));
        }
        if have < self.count {
            drifts.push(Drift::Launch {
                count: self.count - have,
                have,
            });
        }
        let mut change = Change::update(&ids(&live), drifts);
        if have > self.count {
            change = change.warn(format!(
                "{} more than the spec's {}; scale-in is not done by up",
                have - self.count,
                self.count
            ));
        }
        change
    }

    fn doomed(obs: &Observed) -> Vec<Doomed> {
        obs.instances
            .iter()
            .filter(|i| i.state != "terminated")
            .map(|i| Doomed::new(Self::NAME, i.logical.as_deref(), &i.id))
            .collect()
    }

    // RunInstances; then boot and the DescribeInstances that sees it running, or with status
    // checks their time and the one DescribeInstanceStatus that sees them pass (a client need
    // not see `running` first).
    fn cost(&self, p: &Profile) -> Cost {
        let ready = match p.wait {
            InstanceWait::Running => 2.0 * p.call + p.ec2_boot,
            InstanceWait::Status => 2.0 * p.call + p.ec2_boot + p.ec2_status,
        };
        Cost {
            launch: p.call,
            ready,
        }
    }
}

impl Instances {
    /// No control plane: the cluster's state (etcd) lived on the old one. A new one restores
    /// this cluster's newest snapshot, at the old one's address, whenever there is one (also
    /// with no worker left: the data is the cluster); without one, it is a new cluster, refused
    /// while workers that belonged to the old one remain.
    fn lost_master(&self, cx: &Context<'_>) -> Change<Drift> {
        let bucket = cx.obs.bucket.as_ref().filter(|b| b.owned);
        // Only this cluster's snapshots (its id, from the bootstrap secret).
        let cluster_id = cx.obs.cluster_id();
        if let Some(s) = bucket.zip(cluster_id).and_then(|(b, id)| b.newest(id)) {
            return Change {
                drifts: vec![Drift::Restore {
                    key: s.key.clone(),
                    time: s.time(),
                }],
                ..Change::create()
            };
        }
        let workers = cx
            .obs
            .instances
            .iter()
            .filter(|i| i.is_live() && i.logical.as_deref().is_some_and(is_worker))
            .count();
        if workers == 0 {
            return Change::create();
        }
        Change::refuse(
            None,
            Refusal::ControlPlaneLost {
                cluster: cx.spec.name.clone(),
                workers,
                snapshots: bucket.map(|b| match cluster_id {
                    Some(id) => format!("{}/{}", b.name, super::backup_bucket::snapshot_prefix(id)),
                    None => format!(
                        "{}/{} (whose are this cluster's is unknown: its bootstrap secret could not be read)",
                        b.name,
                        super::backup_bucket::SNAPSHOT_PREFIX
                    ),
                }),
            },
        )
    }
    /// Whether node `id` still has instances to launch.
    pub fn needs_launch(&self, id: &str, obs: &Observed) -> bool {
        (obs.live_instances(id).count() as u32) < self.count
    }
}

/// Whether a logical id is one of the kubeadm workers' nodes.
pub fn is_worker(logical: &str) -> bool {
    logical.starts_with("workers-")
}

fn ids(live: &[&ObsInstance]) -> String {
    live.iter()
        .map(|i| i.id.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

impl Observed {
    /// The live instances that stand for node `id`.
    pub fn live_instances<'a>(&'a self, id: &'a str) -> impl Iterator<Item = &'a ObsInstance> + 'a {
        self.instances
            .iter()
            .filter(move |i| i.is_live() && i.logical.as_deref() == Some(id))
    }
}
