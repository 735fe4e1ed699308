//! The EKS cluster, in API authentication mode, its public endpoint open to the admin CIDRs
//! only.

use std::fmt;

use super::security_group::ObsSg;
use super::{Change, Context, Doomed, Kind, Observed, Plan, Refusal};
use crate::core::latency::{Cost, Profile};
use crate::core::teardown::Step;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EksCluster {
    pub name: String,
    pub version: String,
    /// The nodes of the cluster role, our additional security group, the VPC and every subnet.
    pub role: String,
    pub security_group: String,
    pub vpc: String,
    pub subnets: Vec<String>,
    pub endpoint_public_access: bool,
    pub endpoint_private_access: bool,
    pub public_access_cidrs: Vec<String>,
}

/// An add-on as EKS reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObsAddon {
    pub name: String,
    pub status: String,
    /// EKS's health issues (why it is DEGRADED or failed).
    pub issues: Vec<String>,
    /// Its version (`v1.19.2-eksbuild.1`); empty when not described (`down`).
    pub version: String,
}

/// An EKS access entry as observed: its principal, whether we made it, its access policies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObsAccessEntry {
    pub principal: String,
    /// Carries our cluster tag (the cluster creator's entry, which EKS makes, does not).
    pub owned: bool,
    /// (policy ARN, namespaces; empty: cluster-wide)
    pub policies: Vec<(String, Vec<String>)>,
}

/// The EKS cluster of the cluster's name, as found (owned or not). Its add-ons, access entries
/// and security group are looked up only when it is ours and ACTIVE (or UPDATING).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObsEks {
    pub name: String,
    pub arn: String,
    pub status: String,
    pub version: String,
    pub endpoint: Option<String>,
    /// Base64, as EKS reports it.
    pub ca_data: Option<String>,
    /// Carries our cluster tag.
    pub owned: bool,
    pub addons: Vec<ObsAddon>,
    pub access_entries: Vec<ObsAccessEntry>,
    /// The security group EKS made for the cluster, with its rules.
    pub cluster_sg: Option<ObsSg>,
    /// The cluster's node groups (ours carry our cluster tag).
    pub nodegroups: Vec<super::nodegroup::ObsNodegroup>,
    /// Who made it, when, the cluster's expiry.
    pub stamp: crate::core::stamp::Stamp,
    pub platform_version: Option<String>,
    /// EKS's health issues (`CODE: message`).
    pub health: Vec<String>,
    /// Updates in progress, and what an upgrade reads (see [`super::eks_upgrade`]).
    pub upgrade: super::eks_upgrade::ObsUpgrade,
}

impl ObsEks {
    /// Whether its add-ons and access entries were looked up (it is ours and usable).
    pub fn listed(&self) -> bool {
        self.owned && matches!(self.status.as_str(), "ACTIVE" | "UPDATING")
    }
}

/// What dependents learn about the cluster once it is ACTIVE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EksInfo {
    pub name: String,
    pub arn: String,
    pub endpoint: Option<String>,
    /// Base64, as EKS reports it (not parsed: the emulator's is not a PEM).
    pub ca_data: Option<String>,
    pub version: Option<String>,
    /// The security group EKS made for the cluster (the managed nodes are in it).
    pub cluster_sg: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Drift {
    /// It is being created or updated: wait until it is ACTIVE.
    AwaitActive { status: String },
}

impl fmt::Display for Drift {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Drift::AwaitActive { status } => write!(f, "wait until ACTIVE (now {status})"),
        }
    }
}

impl Plan for EksCluster {
    const NAME: &'static str = "eks-cluster";
    const TAGS: Option<super::TagFamily> = Some(super::TagFamily::Eks);
    const DELETE_AFTER: &'static [Step] = &[
        Step::Kind(Kind::Nodegroup),
        Step::Kind(Kind::EksAddons),
        Step::Kind(Kind::AccessEntries),
    ];
    type Observed = Option<ObsEks>;
    type Drift = Drift;

    fn diff(&self, _id: &str, cx: &Context<'_>) -> Change<Drift> {
        let Some(e) = &cx.obs.eks else {
            return Change::create();
        };
        let aws_id = Some(e.name.clone());
        if !e.owned {
            return Change::refuse(
                aws_id,
                Refusal::NotOurs {
                    what: "EKS cluster",
                    name: e.name.clone(),
                    cluster: cx.spec.name.clone(),
                },
            );
        }
        let drifts = match e.status.as_str() {
            "ACTIVE" => Vec::new(),
            "CREATING" | "UPDATING" => vec![Drift::AwaitActive {
                status: e.status.clone(),
            }],
            other => {
                return Change::refuse(
                    aws_id,
                    Refusal::State {
                        what: format!("the EKS cluster {}", e.name),
                        state: other.to_string(),
                    },
                );
            }
        };
        // A version below the spec's is the upgrade's (`eks_upgrade`).
        Change::update(&e.name, drifts)
    }

    fn doomed(obs: &Observed) -> Vec<Doomed> {
        obs.eks
            .iter()
            .filter(|e| e.owned)
            .map(|e| Doomed::new(Self::NAME, Some(crate::core::graph::EKS_CLUSTER), &e.name))
            .collect()
    }

    // CreateCluster, its creation, the DescribeCluster that sees it ACTIVE.
    fn cost(&self, p: &Profile) -> Cost {
        Cost::same(2.0 * p.call + p.eks_cluster)
    }
}

/// The observed cluster when it is ours and its add-ons and entries were listed.
pub fn listed(obs: &Observed) -> Option<&ObsEks> {
    obs.eks.as_ref().filter(|e| e.listed())
}

/// The AWS partition of a region (`aws-cn` in China, `aws-us-gov` in GovCloud).
pub fn partition(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else {
        "aws"
    }
}
