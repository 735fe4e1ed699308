//! The order `down` deletes in: one step per kind (each kind says which steps go before its
//! own, `Plan::DELETE_AFTER`), and the two sweeps of what Kubernetes made in the VPC.
//!
//! What Kubernetes made goes first (load balancers hold addresses and interfaces in our
//! subnets), then the node group, add-ons, access entries and the EKS cluster; instances go
//! before anything they sit in; the VPC after everything inside it; the bootstrap secret last,
//! so that a `down` that fails halfway still leaves `up` able to resume with the same CA.

use super::kinds::Kind;

/// One step of `down`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Step {
    /// What Kubernetes made in the VPC: load balancers, their target groups and security groups.
    Kubernetes,
    /// A second look once the nodes and the cluster are gone: `available` interfaces the VPC CNI
    /// left in our subnets, and load balancers made after the first look.
    Interfaces,
    /// The EBS volumes the CSI driver made for claims, with `down --delete-volumes` only: once
    /// the nodes they were attached to are gone.
    Volumes,
    /// Every resource of one kind.
    Kind(Kind),
}

impl Step {
    /// The steps that must finish before this one, directly.
    pub fn after(self) -> &'static [Step] {
        match self {
            Step::Kubernetes => &[],
            Step::Interfaces => &[Step::Kind(Kind::EksCluster), Step::Kind(Kind::Instances)],
            Step::Volumes => &[
                Step::Kind(Kind::Nodegroup),
                Step::Kind(Kind::EksCluster),
                Step::Kind(Kind::Instances),
            ],
            Step::Kind(k) => k.delete_after(),
        }
    }

    pub fn name(self) -> String {
        match self {
            Step::Kubernetes => "kubernetes-load-balancers".to_string(),
            Step::Interfaces => "network-interfaces".to_string(),
            Step::Volumes => "ebs-volumes".to_string(),
            Step::Kind(k) => format!("{}s", k.as_str()),
        }
    }

    /// Every step there is.
    pub fn all() -> Vec<Step> {
        let mut out = vec![Step::Kubernetes, Step::Interfaces, Step::Volumes];
        out.extend(Kind::ALL.iter().map(|k| Step::Kind(*k)));
        out
    }
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name())
    }
}

/// Every step with all the steps that must finish before it, transitively (so that a step with
/// nothing to delete, left out, keeps the order of the others), in an order where every step
/// comes after those it waits for.
pub fn order() -> Vec<(Step, Vec<Step>)> {
    let mut out: Vec<(Step, Vec<Step>)> = Vec::new();
    let mut placed: Vec<Step> = Vec::new();
    let all = Step::all();
    while placed.len() < all.len() {
        let before = placed.len();
        for s in &all {
            if !placed.contains(s) && s.after().iter().all(|d| placed.contains(d)) {
                let mut deps: Vec<Step> = Vec::new();
                for d in s.after() {
                    if !deps.contains(d) {
                        deps.push(*d);
                    }
                    let transitive = out
                        .iter()
                        .find(|(t, _)| t == d)
                        .map(|(_, v)| v.clone())
                        .unwrap_or_default();
                    for t in transitive {
                        if !deps.contains(&t) {
                            deps.push(t);
                        }
                    }
                }
                deps.sort();
                out.push((*s, deps));
                placed.push(*s);
            }
        }
        // A cycle would be a bug in a kind's DELETE_AFTER: place the rest as they are.
        if placed.len() == before {
            for s in &all {
                if !placed.contains(s) {
                    out.push((*s, s.after().to_vec()));
                    placed.push(*s);
                }
            }
        }
    }
    out
}

/// Where a step falls in [`order`].
pub fn position(step: Step) -> usize {
    order()
        .iter()
        .position(|(s, _)| *s == step)
        .unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deps(s: Step) -> Vec<Step> {
        order().into_iter().find(|(t, _)| *t == s).unwrap().1
    }

    #[test]
    fn teardown_waits_for_instances_and_deletes_the_secret_last() {
        use Kind::*;
        let k = Step::Kind;
        assert!(deps(k(SecurityGroup)).contains(&k(Instances)));
        assert!(deps(k(Subnet)).contains(&k(Instances)));
        assert!(deps(k(Vpc)).contains(&k(Subnet)));
        assert!(deps(k(BootstrapSecret)).contains(&k(Vpc)));
        assert!(deps(k(BootstrapSecret)).contains(&k(AddonSecret)));
        // Transitive: the IGW waits for the load balancers even when there is no EKS cluster.
        assert!(deps(k(InternetGateway)).contains(&Step::Kubernetes));
        assert!(deps(k(EksCluster)).contains(&k(Nodegroup)));
        assert!(deps(k(IamRole)).contains(&k(EksCluster)));
        assert!(deps(k(ElasticIp)).contains(&k(NatGateway)));
        // The control plane's address is released once its instance is gone, and before the
        // internet gateway (AWS refuses to detach a gateway while a mapped address remains).
        assert!(deps(k(ElasticIp)).contains(&k(Instances)));
        assert!(deps(k(InternetGateway)).contains(&k(ElasticIp)));
        assert!(deps(Step::Interfaces).contains(&k(EksCluster)));
        let order = order();
        assert_eq!(order.len(), Step::all().len());
        for (i, (s, d)) in order.iter().enumerate() {
            assert!(!d.contains(s), "{s} waits for itself");
            for dep in d {
                assert!(
                    order[..i].iter().any(|(t, _)| t == dep),
                    "{s} comes before {dep}"
                );
            }
        }
        assert_eq!(order.last().map(|(s, _)| *s), Some(k(BootstrapSecret)));
    }
}
