//! A set of EKS add-ons. Those the nodes need to become Ready (the pod network, kube-proxy,
//! pod identity) go before the node group; those that run as Deployments (CoreDNS, the EBS CSI
//! controller) after it, since they can only become ACTIVE once there are nodes.

use std::fmt;

use super::eks_cluster::listed;
use super::eks_upgrade::{pending, pin_refusal};
use super::{Change, Context, Doomed, Kind, NoState, Observed, Plan, Refusal};
use crate::core::latency::{Cost, Profile};
use crate::core::teardown::Step;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EksAddons {
    /// The cluster's and the VPC's nodes (the VPC's id scopes the client tokens).
    pub cluster: String,
    pub vpc: String,
    /// Each add-on with the node of the role its pods assume (EKS Pod Identity), if any.
    pub names: Vec<(String, Option<String>)>,
    /// The add-ons pinned to a version.
    pub pins: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Drift {
    /// CreateAddon, then wait until it is ACTIVE.
    Install(String),
    /// It is being created or updated: wait until it is ACTIVE.
    AwaitActive { name: String, status: String },
    /// UpdateAddon to its pinned version (an upgrade moves the pins itself).
    Pin {
        name: String,
        from: String,
        to: String,
    },
}

impl fmt::Display for Drift {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Drift::Install(a) => write!(f, "install {a}"),
            Drift::AwaitActive { name, status } => {
                write!(f, "wait until {name} is ACTIVE (now {status})")
            }
            Drift::Pin { name, from, to } => write!(f, "{name} {from} -> {to} (pinned)"),
        }
    }
}

impl Plan for EksAddons {
    const NAME: &'static str = "addons";
    const DELETE_AFTER: &'static [Step] = &[Step::Kind(Kind::Nodegroup)];
    // EKS reports them with the cluster.
    type Observed = NoState;
    type Drift = Drift;

    fn diff(&self, _id: &str, cx: &Context<'_>) -> Change<Drift> {
        let Some(e) = listed(cx.obs) else {
            return Change {
                drifts: self
                    .names
                    .iter()
                    .map(|(n, _)| Drift::Install(n.clone()))
                    .collect(),
                ..Change::create()
            };
        };
        let mut drifts = Vec::new();
        let mut warnings = Vec::new();
        let upgrading = pending(cx.spec.eks().map_or("", |s| s.version.as_str()), e);
        for (name, _) in &self.names {
            match e.addons.iter().find(|a| &a.name == name) {
                None => drifts.push(Drift::Install(name.clone())),
                Some(a) => match a.status.as_str() {
                    "ACTIVE" | "DEGRADED"
                        if !upgrading
                            && self
                                .pins
                                .get(name)
                                .is_some_and(|p| !a.version.is_empty() && p != &a.version) =>
                    {
                        let pin = &self.pins[name];
                        if let Some(why) = pin_refusal(e, name, &a.version, pin) {
                            return Change::refuse(Some(e.name.clone()), why);
                        }
                        drifts.push(Drift::Pin {
                            name: name.clone(),
                            from: a.version.clone(),
                            to: pin.clone(),
                        });
                    }
                    "ACTIVE" => {}
                    // Reported, not waited for: its pods lack nodes, for example.
                    "DEGRADED" => warnings.push(format!(
                        "add-on {name} is DEGRADED ({})",
                        a.issues.join("; ")
                    )),
                    "CREATING" | "UPDATING" => drifts.push(Drift::AwaitActive {
                        name: name.clone(),
                        status: a.status.clone(),
                    }),
                    other => {
                        return Change::refuse(
                            Some(e.name.clone()),
                            Refusal::State {
                                what: format!("the add-on {name}"),
                                state: format!("{other} ({})", a.issues.join("; ")),
                            },
                        );
                    }
                },
            }
        }
        let list: Vec<&str> = self.names.iter().map(|(n, _)| n.as_str()).collect();
        warnings
            .into_iter()
            .fold(Change::update(&list.join(","), drifts), Change::warn)
    }

    fn doomed(obs: &Observed) -> Vec<Doomed> {
        obs.eks
            .iter()
            .filter(|e| e.owned)
            .flat_map(|e| e.addons.iter())
            .map(|a| Doomed::new(Self::NAME, Some("addon"), &a.name))
            .collect()
    }

    // CreateAddon (in parallel), their creation, the DescribeAddon that sees them ACTIVE.
    fn cost(&self, p: &Profile) -> Cost {
        Cost::same(if self.names.is_empty() {
            0.0
        } else {
            2.0 * p.call + p.eks_addon
        })
    }
}
