//! The clusters of ours in a region, from what one survey of it saw (`list`, `gc`): each
//! cluster's name, kind, version, age, node count, who made it and its expiry.
//!
//! Architecture invariant: a cluster is ours when a VPC or an EKS cluster carries
//! `provision:cluster`; what `gc` may delete is decided here ([`due`]) from the expiry tag
//! alone, never from a name.

use std::collections::BTreeMap;

use super::stamp::{self, Stamp};

/// A VPC with our cluster tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenVpc {
    pub cluster: String,
    pub id: String,
    pub stamp: Stamp,
}

/// A live (pending, running, stopping or stopped) instance with our cluster tag, or an EKS
/// managed node (tagged `eks:cluster-name`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenInstance {
    pub cluster: String,
    /// Its logical id (`master`, `workers-N`, an add-on's name); `None` for an EKS node.
    pub logical: Option<String>,
    /// The Kubernetes version it was launched for (kubeadm nodes).
    pub version: Option<String>,
}

/// An EKS cluster with our cluster tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenEks {
    pub cluster: String,
    pub version: String,
    pub status: String,
    pub stamp: Stamp,
}

/// What one region's survey saw.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Survey {
    pub vpcs: Vec<SeenVpc>,
    pub instances: Vec<SeenInstance>,
    pub eks: Vec<SeenEks>,
}

/// One cluster of ours, as `list` prints it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ClusterSummary {
    pub name: String,
    pub region: String,
    /// `kubeadm` or `eks`.
    pub kind: &'static str,
    pub version: Option<String>,
    /// EKS: the cluster's status; kubeadm: `running` when a control plane instance lives,
    /// else `partial`.
    pub status: String,
    /// Kubernetes nodes (not add-on instances).
    pub nodes: usize,
    pub created_by: Option<String>,
    /// Unix seconds.
    pub created_at: Option<i64>,
    pub expires_at: Option<i64>,
}

impl ClusterSummary {
    /// `3h12m` from `created_at` to `now`.
    pub fn age(&self, now: i64) -> Option<String> {
        self.created_at.map(|t| stamp::format_duration(now - t))
    }

    /// `in 2h`, `3m ago` (expired), or `-`.
    pub fn expiry(&self, now: i64) -> String {
        match self.expires_at {
            None => "-".into(),
            Some(e) if e <= now => format!("expired {} ago", stamp::format_duration(now - e)),
            Some(e) => format!("in {}", stamp::format_duration(e - now)),
        }
    }
}

/// The clusters a survey of `region` saw, by name.
pub fn clusters(region: &str, s: &Survey) -> Vec<ClusterSummary> {
    let mut out: BTreeMap<String, ClusterSummary> = BTreeMap::new();
    fn entry<'a>(
        out: &'a mut BTreeMap<String, ClusterSummary>,
        region: &str,
        name: &str,
        st: &Stamp,
    ) -> &'a mut ClusterSummary {
        let c = out
            .entry(name.to_string())
            .or_insert_with(|| ClusterSummary {
                name: name.to_string(),
                region: region.to_string(),
                kind: "kubeadm",
                version: None,
                status: "partial".into(),
                nodes: 0,
                created_by: None,
                created_at: None,
                expires_at: None,
            });
        c.created_by = c.created_by.take().or_else(|| st.created_by.clone());
        c.created_at = c.created_at.or(st.created_at);
        c.expires_at = c.expires_at.or(st.expires_at);
        c
    }
    for v in &s.vpcs {
        entry(&mut out, region, &v.cluster, &v.stamp);
    }
    for e in &s.eks {
        let c = entry(&mut out, region, &e.cluster, &e.stamp);
        c.kind = "eks";
        c.version = Some(e.version.clone());
        c.status = e.status.clone();
    }
    for i in &s.instances {
        // Instances alone do not make a cluster (a VPC or an EKS cluster does); add-on
        // instances are not nodes.
        let Some(c) = out.get_mut(&i.cluster) else {
            continue;
        };
        let node = match i.logical.as_deref() {
            None => true,
            Some(l) => l == super::graph::MASTER || super::graph::is_workers_id(l),
        };
        if !node {
            continue;
        }
        c.nodes += 1;
        if i.logical.as_deref() == Some(super::graph::MASTER) {
            if c.kind == "kubeadm" {
                c.status = "running".into();
            }
            if c.version.is_none() {
                c.version = i.version.clone();
            }
        }
    }
    out.into_values().collect()
}

/// The clusters `gc` deletes at `now`: those whose expiry has passed. One without an expiry
/// tag is never due.
pub fn due(clusters: &[ClusterSummary], now: i64) -> Vec<&ClusterSummary> {
    clusters
        .iter()
        .filter(|c| stamp::expired(c.expires_at, now))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(expires: Option<i64>) -> Stamp {
        Stamp {
            created_by: Some("arn:aws:iam::1:user/ci".into()),
            created_at: Some(1000),
            expires_at: expires,
        }
    }

    fn survey() -> Survey {
        let vpc = |c: &str, e| SeenVpc {
            cluster: c.into(),
            id: format!("vpc-{c}"),
            stamp: stamp(e),
        };
        let node = |c: &str, l: Option<&str>| SeenInstance {
            cluster: c.into(),
            logical: l.map(str::to_string),
            version: Some("1.36.2".into()),
        };
        Survey {
            vpcs: vec![
                vpc("old", Some(2000)),
                vpc("young", Some(9000)),
                vpc("forever", None),
                vpc("e", Some(1500)),
            ],
            instances: vec![
                node("old", Some("master")),
                node("old", Some("workers-0")),
                node("old", Some("monitoring")),
                node("e", None),
                node("e", None),
                node("stray", Some("master")),
            ],
            eks: vec![SeenEks {
                cluster: "e".into(),
                version: "1.35".into(),
                status: "ACTIVE".into(),
                stamp: stamp(Some(1500)),
            }],
        }
    }

    #[test]
    fn clusters_are_summed_up_from_vpcs_eks_clusters_and_instances() {
        let c = clusters("us-east-1", &survey());
        let names: Vec<&str> = c.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["e", "forever", "old", "young"]);
        let old = &c[2];
        assert_eq!(
            (old.kind, old.nodes, old.status.as_str()),
            ("kubeadm", 2, "running")
        );
        assert_eq!(old.version.as_deref(), Some("1.36.2"));
        let e = &c[0];
        assert_eq!(
            (e.kind, e.nodes, e.version.as_deref()),
            ("eks", 2, Some("1.35"))
        );
        assert_eq!(c[1].status, "partial");
        assert_eq!(old.age(4600).as_deref(), Some("1h"));
        assert_eq!(old.expiry(1000), "in 16m40s");
        assert_eq!(old.expiry(2060), "expired 1m ago");
        assert_eq!(c[1].expiry(0), "-");
    }

    #[test]
    fn only_clusters_whose_expiry_passed_are_due() {
        let c = clusters("us-east-1", &survey());
        let due: Vec<&str> = due(&c, 2000).iter().map(|c| c.name.as_str()).collect();
        assert_eq!(due, ["e", "old"]);
        assert!(super::due(&c, 1499).is_empty());
    }
}
