//! What Kubernetes controllers made in the cluster's VPC: not a kind of ours (nothing `up`
//! makes), found by `down` and `plan --destroy` through the tags the controllers set.

/// Whether the API server answered, asked only when the plan must drain nodes (so that a run
/// that cannot reach it refuses before changing anything).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiReach {
    Reachable { server: String },
    Unreachable { server: String, why: String },
}

/// A load balancer a Kubernetes controller made in our VPC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObsLoadBalancer {
    /// The ARN (ELBv2) or name (classic).
    pub id: String,
    pub classic: bool,
}

/// What Kubernetes controllers made in the cluster's VPC, found by their tags
/// (`kubernetes.io/cluster/NAME`, `elbv2.k8s.aws/cluster = NAME`, the VPC CNI's).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Leftovers {
    pub load_balancers: Vec<ObsLoadBalancer>,
    /// ELBv2 target group ARNs.
    pub target_groups: Vec<String>,
    /// Security group ids (never ours: those carry provision:cluster).
    pub security_groups: Vec<String>,
    /// `available` network interfaces in our subnets that the VPC CNI made.
    pub interfaces: Vec<String>,
    /// EBS volumes the cluster's CSI driver made for persistent volume claims: data, which
    /// `down` keeps unless told to delete them (not in [`Leftovers::is_empty`] nor
    /// [`Leftovers::doomed`]).
    pub volumes: Vec<ObsVolume>,
}

/// A volume of the cluster's EBS CSI driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObsVolume {
    pub id: String,
    pub size_gb: i32,
    /// `NAMESPACE/NAME` of the claim it was made for, from its tags.
    pub claim: Option<String>,
}

impl ObsVolume {
    /// `vol-… (10 GiB, claim team-a/data)`.
    pub fn describe(&self) -> String {
        match &self.claim {
            Some(c) => format!("{} ({} GiB, claim {c})", self.id, self.size_gb),
            None => format!("{} ({} GiB)", self.id, self.size_gb),
        }
    }
}

impl Leftovers {
    pub fn is_empty(&self) -> bool {
        self.load_balancers.is_empty()
            && self.target_groups.is_empty()
            && self.security_groups.is_empty()
            && self.interfaces.is_empty()
    }

    /// What `plan --destroy` lists of them: (step, row), load balancers and their groups in the
    /// first sweep, interfaces in the second.
    pub fn doomed(&self) -> Vec<(super::teardown::Step, super::kinds::Doomed)> {
        use super::kinds::Doomed;
        use super::teardown::Step;
        let k8s = Some("(kubernetes)");
        let mut out = Vec::new();
        for lb in &self.load_balancers {
            out.push((Step::Kubernetes, Doomed::new("load-balancer", k8s, &lb.id)));
        }
        for tg in &self.target_groups {
            out.push((Step::Kubernetes, Doomed::new("target-group", k8s, tg)));
        }
        for g in &self.security_groups {
            out.push((Step::Kubernetes, Doomed::new("security-group", k8s, g)));
        }
        for n in &self.interfaces {
            out.push((Step::Interfaces, Doomed::new("network-interface", k8s, n)));
        }
        out
    }
}
