//! A latency model of AWS, for the benchmark's yardstick: the shortest time any client could
//! take to create the graph, given how long each call and each state change takes.
//!
//! Each node costs the API calls it must make one after another on a fresh create (calls made in
//! parallel count once) times the per-call latency, plus what AWS takes to make it ready, plus
//! the one poll that sees it ready. The critical path is the longest chain of such costs through
//! the graph, plus what every `up` does before and after the graph: the lock (with the identity
//! check alongside), one round of discovery, and the lock's release. Perfect polling is assumed
//! (readiness noticed the instant it happens), so the yardstick is strict.
//!
//! The durations are those of the emulator's latency profile (`localstack/emulator.py`), read
//! from the same environment variables.

use super::graph::Graph;

// [`Graph::critical_path`] sums one cost per node; here a node has two (see [`Cost`]).

/// Seconds each thing takes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Profile {
    pub call: f64,
    pub ec2_boot: f64,
    pub ec2_status: f64,
    pub eks_cluster: f64,
    pub eks_nodegroup: f64,
    pub eks_addon: f64,
    pub nat: f64,
    /// UpdateClusterVersion until Successful.
    pub eks_cluster_update: f64,
    /// UpdateNodegroupVersion: its start, then each batch of `maxUnavailable` nodes.
    pub eks_nodegroup_update: f64,
    pub eks_nodegroup_update_batch: f64,
    /// How far `up` waits for instances.
    pub wait: InstanceWait,
}

impl Profile {
    /// The emulator's `scaled` profile: AWS's durations at 1/60, 50 ms per call.
    pub const SCALED: Profile = Profile {
        call: 0.050,
        ec2_boot: 0.67,
        ec2_status: 2.0,
        eks_cluster: 9.0,
        eks_nodegroup: 3.5,
        eks_addon: 0.5,
        nat: 1.5,
        eks_cluster_update: 8.0,
        eks_nodegroup_update: 1.0,
        eks_nodegroup_update_batch: 3.0,
        wait: InstanceWait::Status,
    };

    /// The profile the emulator runs with these environment variables
    /// (`PROVISION_EMULATOR_PROFILE`, `PROVISION_EMULATOR_CALL_MS`, `..._EC2_BOOT`, ...).
    pub fn from_env(var: impl Fn(&str) -> Option<String>) -> Profile {
        let base = if var("PROVISION_EMULATOR_PROFILE").as_deref() == Some("scaled") {
            Profile::SCALED
        } else {
            Profile {
                call: 0.0,
                ec2_boot: 0.0,
                ec2_status: 0.0,
                eks_cluster: 0.0,
                eks_nodegroup: 0.0,
                eks_addon: 0.0,
                nat: 0.0,
                eks_cluster_update: 0.0,
                eks_nodegroup_update: 0.0,
                eks_nodegroup_update_batch: 0.0,
                wait: InstanceWait::Status,
            }
        };
        let get = |name: &str, default: f64| {
            var(&format!("PROVISION_EMULATOR_{name}"))
                .and_then(|v| v.trim().parse::<f64>().ok())
                .unwrap_or(default)
        };
        Profile {
            call: get("CALL_MS", base.call * 1000.0) / 1000.0,
            ec2_boot: get("EC2_BOOT", base.ec2_boot),
            ec2_status: get("EC2_STATUS", base.ec2_status),
            eks_cluster: get("EKS_CLUSTER", base.eks_cluster),
            eks_nodegroup: get("EKS_NODEGROUP", base.eks_nodegroup),
            eks_addon: get("EKS_ADDON", base.eks_addon),
            nat: get("NAT", base.nat),
            eks_cluster_update: get("EKS_CLUSTER_UPDATE", base.eks_cluster_update),
            eks_nodegroup_update: get("EKS_NODEGROUP_UPDATE", base.eks_nodegroup_update),
            eks_nodegroup_update_batch: get(
                "EKS_NODEGROUP_UPDATE_BATCH",
                base.eks_nodegroup_update_batch,
            ),
            wait: base.wait,
        }
    }
}

/// How far `up` waits for instances, which sets what an instance node costs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstanceWait {
    /// Running (EKS add-on instances; `--wait running`).
    Running,
    /// Running and status checks passed (kubeadm's default `--wait status`).
    Status,
}

/// What a fresh create of a node costs (seconds): its dependents can start after `launch`; it
/// is done after `ready`. They differ for instances only: nothing waits for an instance to boot
/// but the end of `up`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cost {
    pub launch: f64,
    pub ready: f64,
}

impl Cost {
    pub fn same(secs: f64) -> Cost {
        Cost {
            launch: secs,
            ready: secs,
        }
    }
}

/// Calls every `up` makes outside the graph, one after another: the lock's PutParameter (with
/// GetCallerIdentity alongside), one round of discovery (its Describes run in parallel), and at
/// the end the lock's DeleteParameter.
pub const FIXED_CALLS: f64 = 3.0;

/// The critical path of `graph` under `p`: its length in seconds (with [`FIXED_CALLS`]) and the
/// chain of (node, seconds it adds).
pub fn critical_path(graph: &Graph, p: &Profile, wait: InstanceWait) -> (f64, Vec<(String, f64)>) {
    use std::collections::HashMap;
    let p = &Profile { wait, ..*p };
    // (time its dependents may start, time it is done, the dependency it waited for last)
    let mut at: HashMap<&str, (f64, f64, Option<&str>)> = HashMap::new();
    for n in &graph.nodes {
        let (start, via) = n
            .deps
            .iter()
            .filter_map(|d| at.get(d.as_str()).map(|t| (t.0, Some(d.as_str()))))
            .fold((0.0, None), |best, x| if x.0 > best.0 { x } else { best });
        let Cost { launch, ready } = n.desired.cost(p);
        at.insert(&n.id, (start + launch, start + ready, via));
    }
    let Some((last, &(_, end, _))) = at.iter().max_by(|a, b| a.1.1.total_cmp(&b.1.1)) else {
        return (FIXED_CALLS * p.call, Vec::new());
    };
    let mut chain = Vec::new();
    let mut cur = Some(*last);
    let mut after = end;
    while let Some(id) = cur {
        let (launched, done, via) = at[id];
        let before = via.map_or(0.0, |d| at[d].0);
        let reached = if chain.is_empty() { done } else { launched };
        chain.push((id.to_string(), after.min(reached) - before));
        after = before;
        cur = via;
    }
    chain.reverse();
    (end + FIXED_CALLS * p.call, chain)
}

/// Calls an EKS upgrade's `up` makes one after another outside its steps: the lock (with the
/// identity alongside), discovery's four rounds (DescribeCluster; the lists of add-ons, node
/// groups and access entries; each one's Describe; the add-on catalog and the insights), and
/// the lock's release.
pub const UPGRADE_FIXED_CALLS: f64 = 6.0;

/// The yardstick of an EKS upgrade by `minors` minors under `p`: per minor, the control plane's
/// update, then the add-ons' (at once), then the node groups' (at once, so the slowest; each
/// `(desired, nodes per batch)`), each step its Update call, EKS's duration and the
/// DescribeUpdate that sees it Successful; plus [`UPGRADE_FIXED_CALLS`].
pub fn upgrade_path(p: &Profile, minors: u32, groups: &[(u32, u32)], addons: bool) -> f64 {
    let step = |secs: f64| 2.0 * p.call + secs;
    let slowest = groups
        .iter()
        .map(|&(desired, batch)| {
            let batches = desired.div_ceil(batch.max(1));
            step(p.eks_nodegroup_update + f64::from(batches) * p.eks_nodegroup_update_batch)
        })
        .fold(0.0, f64::max);
    let addons = if addons { step(p.eks_addon) } else { 0.0 };
    f64::from(minors) * (step(p.eks_cluster_update) + addons + slowest)
        + UPGRADE_FIXED_CALLS * p.call
}

/// The yardstick of a rolling replacement of `workers` nodes, `surge` at a time, under `p`: per
/// round the launch (RunInstances), the boot until the new Node is Ready, and the
/// TerminateInstances of the nodes it replaces (the drain through the API server counted as
/// instant); plus [`FIXED_CALLS`] and the image lookup (two calls) before the first launch.
pub fn roll_path(p: &Profile, workers: u32, surge: u32) -> f64 {
    let rounds = workers.div_ceil(surge.max(1));
    f64::from(rounds) * (2.0 * p.call + p.ec2_boot) + (FIXED_CALLS + 2.0) * p.call
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph(toml: &str) -> Graph {
        let (spec, _) = crate::core::spec::parse("t.toml", toml).unwrap();
        crate::core::graph::build(&spec)
    }

    #[test]
    fn an_upgrade_path_is_per_minor_the_control_plane_then_the_add_ons_then_the_slowest_group() {
        let p = Profile::SCALED;
        // Two minors; groups of 2 nodes one at a time (1 + 2 x 3 s) and 4 nodes 4 at a time.
        let secs = upgrade_path(&p, 2, &[(2, 1), (4, 4)], true);
        let per_minor = (0.1 + 8.0) + (0.1 + 0.5) + (0.1 + 7.0);
        assert!(
            (secs - (2.0 * per_minor + 6.0 * 0.05)).abs() < 1e-9,
            "{secs}"
        );
        assert!(upgrade_path(&p, 1, &[], false) < 8.5);
    }

    #[test]
    fn a_rolling_replacement_takes_one_boot_per_round_of_the_surge() {
        let p = Profile::SCALED;
        let round = 2.0 * 0.05 + 0.67;
        assert!((roll_path(&p, 6, 1) - (6.0 * round + 5.0 * 0.05)).abs() < 1e-9);
        assert!((roll_path(&p, 6, 3) - (2.0 * round + 5.0 * 0.05)).abs() < 1e-9);
        assert!((roll_path(&p, 7, 3) - roll_path(&p, 9, 3)).abs() < 1e-9);
    }

    #[test]
    fn the_profile_comes_from_the_emulators_variables() {
        let env = |k: &str| match k {
            "PROVISION_EMULATOR_PROFILE" => Some("scaled".to_string()),
            "PROVISION_EMULATOR_CALL_MS" => Some("20".to_string()),
            _ => None,
        };
        let p = Profile::from_env(env);
        assert!((p.call - 0.020).abs() < 1e-9);
        assert!((p.eks_cluster - 9.0).abs() < 1e-9);
        assert_eq!(Profile::from_env(|_| None).eks_cluster, 0.0);
    }

    #[test]
    fn the_kubeadm_path_runs_through_the_network_to_the_workers_and_their_checks() {
        let g = graph(include_str!("../../config/demo.toml"));
        let (len, chain) = critical_path(&g, &Profile::SCALED, InstanceWait::Status);
        let ids: Vec<&str> = chain.iter().map(|(id, _)| id.as_str()).collect();
        // The read-only lookups first (nothing is made before they pass), then the network.
        assert!(["availability-zones", "ami"].contains(&ids[0]), "{ids:?}");
        assert_eq!(ids[1], "vpc", "{ids:?}");
        assert!(ids.last().unwrap().starts_with("workers"), "{ids:?}");
        // At least boot and status checks, and never less than the chain's own costs.
        let sum: f64 = chain.iter().map(|(_, c)| c).sum();
        assert!(
            len > 0.67 + 2.0 && (len - sum - FIXED_CALLS * 0.05).abs() < 1e-9,
            "{len} {chain:?}"
        );
    }

    #[test]
    fn the_eks_path_holds_the_cluster_and_the_node_group() {
        let g = graph(include_str!("../../config/eks.toml"));
        let (len, chain) = critical_path(&g, &Profile::SCALED, InstanceWait::Running);
        let ids: Vec<&str> = chain.iter().map(|(id, _)| id.as_str()).collect();
        assert!(
            ids.contains(&"eks-cluster") && ids.contains(&"nodegroup"),
            "{ids:?}"
        );
        assert!(len > 9.0 + 3.5, "{len}");
    }
}
