//! A kubeadm worker pool: its instances across its availability zones (one launch per zone),
//! scaled in by draining its newest nodes, and replaced within its surge budget when what they
//! were launched with changed (their launch hash).
//!
//! The diff is the whole decision, made again from the instances' tags on every run: an
//! instance carries its pool's zone id (`workers-1`, `workers-gpu-0`) and the hash of what it
//! was launched with, so a run killed in the middle of a replacement finds the new nodes beside
//! the old ones and goes on removing the old ones (no second replacement, no node lost).

use std::fmt;

use super::instances::{Instances, ObsInstance};
use super::{Change, Context, Observed, Plan, Refusal};
use crate::core::latency::{Cost, Profile};
use crate::core::observed::ApiReach;
use crate::core::spec::{KubeadmSpec, PoolSpec};
use crate::core::teardown::Step;

/// The desired pool.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerPool {
    /// Its name in the spec.
    pub name: String,
    /// One launch per zone: the instances' logical id (`NODE-ZONE`) and what it launches, with
    /// the zone's share of the count.
    pub zones: Vec<(String, Instances)>,
    /// What the pool's nodes are launched with, hashed ([`launch_hash`]).
    pub launch_hash: String,
    pub instance_type: String,
    /// The Kubernetes version its nodes join with.
    pub version: String,
    pub max_surge: u32,
    pub max_unavailable: u32,
    /// The control plane's node (its address reaches the API server).
    pub master: String,
    /// The bootstrap secret's node (its CA signs the admin certificate that drains).
    pub secret: String,
    /// Every pool node of the spec, on the first pool only: it also takes out the workers of
    /// pools the spec no longer has (empty on the others).
    pub adopts_for: Vec<String>,
}

/// Why a node is taken out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removal {
    /// The pool's count went down: its newest nodes go.
    ScaleIn,
    /// A replacement already runs beside it (a run was stopped between the two).
    Replaced,
    /// Its zone is no longer one of the pool's subnets.
    ZoneDropped,
    /// Its pool is no longer in the spec.
    PoolDropped,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Drift {
    /// Start these stopped instances.
    Start(Vec<String>),
    /// Launch `count` more in the zone whose instances are `logical` (there are `have`).
    Launch {
        logical: String,
        count: u32,
        have: u32,
    },
    /// Drain the node, delete it and terminate the instance.
    Remove {
        instance: String,
        logical: String,
        why: Removal,
    },
    /// Launch a new node in its zone, wait until it is Ready, then remove this one.
    Replace {
        instance: String,
        logical: String,
        why: String,
    },
}

impl Drift {
    /// Whether it takes a node out, which needs the API server (to drain it).
    pub fn drains(&self) -> bool {
        matches!(self, Drift::Remove { .. } | Drift::Replace { .. })
    }
}

impl fmt::Display for Drift {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Drift::Start(ids) => write!(f, "start {} stopped instance(s)", ids.len()),
            Drift::Launch {
                logical,
                count,
                have,
            } => write!(
                f,
                "launch {count} in {logical} (have {have}, want {})",
                have + count
            ),
            Drift::Remove {
                instance,
                logical,
                why,
            } => {
                let why = match why {
                    Removal::ScaleIn => "scale-in, newest first",
                    Removal::Replaced => "its replacement runs",
                    Removal::ZoneDropped => "its subnet left the pool",
                    Removal::PoolDropped => "its pool left the spec",
                };
                write!(f, "drain and remove {instance} ({logical}: {why})")
            }
            Drift::Replace {
                instance,
                logical,
                why,
            } => write!(f, "replace {instance} ({logical}: {why})"),
        }
    }
}

impl Plan for WorkerPool {
    const NAME: &'static str = "worker-pool";
    // Its instances are the instances kind's: `down` terminates them with the others.
    const DELETE_AFTER: &'static [Step] = &[Step::Kubernetes];
    type Observed = super::NoState;
    type Drift = Drift;

    fn diff(&self, id: &str, cx: &Context<'_>) -> Change<Drift> {
        let live = self.instances(id, cx.obs);
        if let Some(i) = live.iter().find(|i| i.state == "stopping") {
            return Change::refuse(
                Some(ids(&live)),
                Refusal::Stopping {
                    node: id.to_string(),
                    instance: i.id.clone(),
                },
            );
        }
        let drifts = self.drifts(id, &live);
        if live.is_empty() {
            // A pool of 0 with nothing to launch has nothing to make.
            return if drifts.is_empty() {
                Change::keep(None)
            } else {
                Change {
                    drifts,
                    ..Change::create()
                }
            };
        }
        if drifts.iter().any(Drift::drains)
            && let Some(ApiReach::Unreachable { server, why }) = &cx.obs.api
        {
            return Change::refuse(
                Some(ids(&live)),
                Refusal::ApiUnreachable {
                    pool: self.name.clone(),
                    server: server.clone(),
                    why: why.clone(),
                },
            );
        }
        Change::update(&ids(&live), drifts)
    }

    // As the instances kind: one RunInstances per zone, then boot.
    fn cost(&self, p: &Profile) -> Cost {
        self.zones
            .first()
            .map_or(Cost::same(p.call), |(_, z)| z.cost(p))
    }
}

impl WorkerPool {
    /// Every change the pool needs, zone by zone: starts, launches, removals (stale nodes
    /// first, then the newest), replacements.
    fn drifts(&self, id: &str, live: &[&ObsInstance]) -> Vec<Drift> {
        let mut drifts = Vec::new();
        let stopped: Vec<String> = live
            .iter()
            .filter(|i| i.state == "stopped")
            .map(|i| i.id.clone())
            .collect();
        if !stopped.is_empty() {
            drifts.push(Drift::Start(stopped));
        }
        let mut zones: Vec<(String, u32)> = self
            .zones
            .iter()
            .map(|(l, z)| (l.clone(), z.count))
            .collect();
        // Zones the pool left: their instances go.
        for i in live {
            if let Some(l) = &i.logical
                && !zones.iter().any(|(z, _)| z == l)
            {
                zones.push((l.clone(), 0));
            }
        }
        for (logical, want) in &zones {
            let mut here: Vec<&ObsInstance> = live
                .iter()
                .copied()
                .filter(|i| i.logical.as_deref() == Some(logical.as_str()))
                .collect();
            // Oldest first.
            here.sort_by(|a, b| (a.launched_at, &a.id).cmp(&(b.launched_at, &b.id)));
            let (mut stale, mut current): (Vec<&ObsInstance>, Vec<&ObsInstance>) =
                here.iter().partition(|i| self.stale(i).is_some());
            let have = here.len() as u32;
            let dropped = !self.zones.iter().any(|(z, _)| z == logical);
            let mut excess = have.saturating_sub(*want);
            // Stale ones first (oldest first), then the newest of the current ones.
            while excess > 0 {
                let (i, took_stale) = if stale.is_empty() {
                    (current.pop().expect("excess counts them"), false)
                } else {
                    (stale.remove(0), true)
                };
                let why = if !in_pool(id, logical) {
                    Removal::PoolDropped
                } else if dropped {
                    Removal::ZoneDropped
                } else if took_stale && !current.is_empty() {
                    Removal::Replaced
                } else {
                    Removal::ScaleIn
                };
                drifts.push(Drift::Remove {
                    instance: i.id.clone(),
                    logical: logical.clone(),
                    why,
                });
                excess -= 1;
            }
            for i in stale {
                drifts.push(Drift::Replace {
                    instance: i.id.clone(),
                    logical: logical.clone(),
                    why: self.stale(i).unwrap_or_default(),
                });
            }
            if have < *want {
                drifts.push(Drift::Launch {
                    logical: logical.clone(),
                    count: want - have,
                    have,
                });
            }
        }
        drifts
    }

    /// Why an instance no longer matches the pool (`None`: it does). One launched before launch
    /// hashes were recorded is judged by what it shows: its instance type and version.
    pub fn stale(&self, i: &ObsInstance) -> Option<String> {
        let mut why = Vec::new();
        if let Some(t) = i
            .instance_type
            .as_deref()
            .filter(|t| *t != self.instance_type)
        {
            why.push(format!("instance type {t} → {}", self.instance_type));
        }
        if let Some(v) = i.version.as_deref().filter(|v| *v != self.version) {
            why.push(format!("Kubernetes {v} → {}", self.version));
        }
        match i.launch_hash.as_deref() {
            Some(h) if h != self.launch_hash && why.is_empty() => why.push(format!(
                "launched with another image, labels, taints, spot, volume or bootstrap document (hash {h} → {})",
                self.launch_hash
            )),
            _ => {}
        }
        (!why.is_empty()).then(|| why.join(", "))
    }

    /// Whether the pool has nodes to launch (its image is looked up then).
    pub fn needs_launch(&self, id: &str, cx: &Context<'_>) -> bool {
        self.diff(id, cx)
            .drifts
            .iter()
            .any(|d| matches!(d, Drift::Launch { .. } | Drift::Replace { .. }))
    }
}

/// What a pool's nodes are launched with, as 12 hex digits of a SHA-256: a node whose tag
/// differs is replaced. The image is the spec's (an AMI id or the SSM parameter that names
/// one): a new image behind the same parameter does not roll the pool; pin an AMI id for that.
pub fn launch_hash(k: &KubeadmSpec, pool: &PoolSpec) -> String {
    let taints: Vec<String> = pool
        .taints
        .iter()
        .map(|t| {
            format!(
                "{}={}:{}",
                t.key,
                t.value.as_deref().unwrap_or(""),
                t.effect
            )
        })
        .collect();
    let labels: Vec<String> = pool
        .labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let text = [
        format!("type={}", pool.instance_type),
        match &k.ami {
            crate::core::spec::AmiSource::Id(id) => format!("image={id}"),
            crate::core::spec::AmiSource::SsmParameter(p) => format!("image=ssm:{p}"),
        },
        format!("version={}", k.version),
        format!(
            "document={}",
            crate::core::cloudinit::WORKER_DOCUMENT_VERSION
        ),
        format!("labels={}", labels.join(",")),
        format!("taints={}", taints.join(",")),
        format!("spot={}", pool.spot),
        format!("volume={}", k.root_volume_gb),
        format!("key={}", k.key_name.as_deref().unwrap_or("")),
    ]
    .join("\n");
    short_hash(&text)
}

/// 12 hex digits of a SHA-256.
fn short_hash(text: &str) -> String {
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(text.as_bytes());
    digest[..6].iter().map(|b| format!("{b:02x}")).collect()
}

/// What makes the client token of the launch that replaces `old` (instance ids) its own: a
/// resumed run that makes the same launch again gets the same instances back from EC2.
pub fn replacement_nonce(old: &[&str]) -> String {
    format!("r{}", short_hash(&old.join(",")))
}

impl WorkerPool {
    /// The pool's instances that are not terminated or on their way there (for the first pool,
    /// also the workers no pool of the spec claims).
    pub fn instances<'a>(&self, id: &str, obs: &'a Observed) -> Vec<&'a ObsInstance> {
        obs.instances
            .iter()
            .filter(|i| i.is_live() && i.logical.as_deref().is_some_and(|l| self.claims(id, l)))
            .collect()
    }

    fn claims(&self, id: &str, logical: &str) -> bool {
        in_pool(id, logical)
            || (!self.adopts_for.is_empty()
                && crate::core::graph::is_workers_id(logical)
                && !self.adopts_for.iter().any(|p| in_pool(p, logical)))
    }
}

/// Whether an instance's logical id is one of pool node `pool`'s zones (`POOL-N`).
pub fn in_pool(pool: &str, logical: &str) -> bool {
    logical
        .strip_prefix(pool)
        .and_then(|r| r.strip_prefix('-'))
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

fn ids(live: &[&ObsInstance]) -> String {
    live.iter()
        .map(|i| i.id.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replacements_client_token_is_its_own_and_the_same_when_made_again() {
        let a = replacement_nonce(&["i-0aaa"]);
        assert_eq!(a, replacement_nonce(&["i-0aaa"]));
        assert_ne!(a, replacement_nonce(&["i-0bbb"]));
        assert_ne!(a, replacement_nonce(&["i-0aaa", "i-0bbb"]));
        // cluster id (12) - logical id (at most 31) - nonce: within EC2's 64 characters.
        assert!(12 + 1 + 31 + 1 + a.len() <= 64, "{a}");
    }

    #[test]
    fn only_a_pools_own_zone_ids_are_its() {
        assert!(in_pool("workers", "workers-0"));
        assert!(in_pool("workers-gpu", "workers-gpu-12"));
        assert!(!in_pool("workers", "workers-gpu-0"));
        assert!(!in_pool("workers-gpu", "workers-gpu-2-0"));
        assert!(!in_pool("workers", "workers-"));
    }
}
