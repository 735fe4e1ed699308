//! Security group rules: least privilege, see ARCHITECTURE.md. Rules between two of our
//! groups go to one `ingress-rules` node, so that groups are created side by side.

use super::addons::{addon_ports, addon_sg_id};
use super::{Builder, EKS_CLUSTER_SG, SG_LINKS, SG_NODES};
use crate::core::cidr::Ipv4Net;
use crate::core::kinds::Desired;
use crate::core::kinds::ingress_rules::IngressRules;
use crate::core::spec::{Addon, ClusterSpec, Cni, Flavor};

/// The node_exporter port, open on every node and add-on instance to the monitoring group only.
pub const NODE_EXPORTER_PORT: u16 = 9100;

/// A security group's role in the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SgRole {
    /// On every node: node-to-node traffic through the group itself.
    Nodes,
    /// On the master only: the API server.
    ControlPlane,
    /// An add-on instance's own group.
    Addon,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    Tcp,
    Udp,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}

/// Where an ingress rule admits traffic from.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Source {
    Cidr(Ipv4Net),
    /// Another (or the same) security group, by logical id.
    Group(String),
}

/// One ingress rule.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Rule {
    pub protocol: Protocol,
    pub from_port: u16,
    pub to_port: u16,
    pub source: Source,
    pub description: &'static str,
}

impl std::fmt::Display for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}-{} ({})",
            self.protocol.as_str(),
            self.from_port,
            self.to_port,
            self.description
        )
    }
}

/// The security group rules for a spec (least privilege, see ARCHITECTURE.md).
pub fn rules(spec: &ClusterSpec, role: SgRole) -> Vec<Rule> {
    let admin = |port: u16, description: &'static str| {
        spec.network.admin_cidrs.iter().map(move |c| Rule {
            protocol: Protocol::Tcp,
            from_port: port,
            to_port: port,
            source: Source::Cidr(*c),
            description,
        })
    };
    let k = match &spec.flavor {
        Flavor::Kubeadm(k) => k,
        // EKS manages the node <-> control plane groups itself; ours is the additional group of
        // the control plane's network interfaces, reached from the admin CIDRs (over a VPN or
        // Direct Connect) only when the private endpoint is on.
        Flavor::Eks(e) => {
            return match role {
                SgRole::ControlPlane if e.endpoint_private_access => {
                    admin(443, "EKS private endpoint from admin CIDRs").collect()
                }
                _ => Vec::new(),
            };
        }
    };
    let group = |p, from, to, d| Rule {
        protocol: p,
        from_port: from,
        to_port: to,
        source: Source::Group(SG_NODES.into()),
        description: d,
    };
    let mut out = Vec::new();
    match role {
        SgRole::Nodes => {
            out.push(group(Protocol::Tcp, 10250, 10250, "kubelet API from nodes"));
            match k.cni {
                Cni::Calico => {
                    out.push(group(
                        Protocol::Udp,
                        4789,
                        4789,
                        "Calico VXLAN between nodes",
                    ));
                    out.push(group(Protocol::Tcp, 5473, 5473, "Calico Typha from nodes"));
                }
                Cni::Flannel => out.push(group(
                    Protocol::Udp,
                    8472,
                    8472,
                    "Flannel VXLAN between nodes",
                )),
            }
            if k.ssh {
                out.extend(admin(22, "SSH from admin CIDRs"));
            }
            if spec.addons.monitoring.is_some() {
                out.push(Rule {
                    protocol: Protocol::Tcp,
                    from_port: NODE_EXPORTER_PORT,
                    to_port: NODE_EXPORTER_PORT,
                    source: Source::Group(addon_sg_id(Addon::Monitoring)),
                    description: "node_exporter from Prometheus",
                });
            }
        }
        SgRole::ControlPlane => {
            out.push(group(
                Protocol::Tcp,
                6443,
                6443,
                "Kubernetes API from nodes",
            ));
            out.extend(admin(6443, "Kubernetes API from admin CIDRs"));
        }
        SgRole::Addon => {}
    }
    out
}

/// An add-on's security group rules: its UIs from the admin CIDRs, its ingest ports from the
/// cluster's nodes (kubeadm: our node group; EKS: added once the cluster's own group exists, see
/// `eks_addon_ingress`), node_exporter from the monitoring group.
pub fn addon_rules(spec: &ClusterSpec, a: Addon) -> Vec<Rule> {
    let mut out = Vec::new();
    for (port, what, ui) in addon_ports(a) {
        if *ui {
            for c in &spec.network.admin_cidrs {
                out.push(Rule {
                    protocol: Protocol::Tcp,
                    from_port: *port,
                    to_port: *port,
                    source: Source::Cidr(*c),
                    description: what,
                });
            }
        } else if spec.kubeadm().is_some() {
            out.push(Rule {
                protocol: Protocol::Tcp,
                from_port: *port,
                to_port: *port,
                source: Source::Group(SG_NODES.into()),
                description: what,
            });
        }
    }
    if spec.addons.monitoring.is_some() {
        out.push(Rule {
            protocol: Protocol::Tcp,
            from_port: NODE_EXPORTER_PORT,
            to_port: NODE_EXPORTER_PORT,
            source: Source::Group(addon_sg_id(Addon::Monitoring)),
            description: "node_exporter from Prometheus",
        });
    }
    out
}

/// On EKS, the add-ons' ingest ports from the nodes (in the cluster's security group) and
/// node_exporter on the nodes from Prometheus.
pub fn eks_addon_ingress(spec: &ClusterSpec) -> Vec<(String, Rule)> {
    let mut out = Vec::new();
    for (a, _) in spec.addons.enabled() {
        for (port, what, ui) in addon_ports(a) {
            if !ui {
                out.push((
                    addon_sg_id(a),
                    Rule {
                        protocol: Protocol::Tcp,
                        from_port: *port,
                        to_port: *port,
                        source: Source::Group(EKS_CLUSTER_SG.into()),
                        description: what,
                    },
                ));
            }
        }
    }
    if spec.addons.monitoring.is_some() {
        out.push((
            EKS_CLUSTER_SG.into(),
            Rule {
                protocol: Protocol::Tcp,
                from_port: NODE_EXPORTER_PORT,
                to_port: NODE_EXPORTER_PORT,
                source: Source::Group(addon_sg_id(Addon::Monitoring)),
                description: "node_exporter from Prometheus",
            },
        ));
    }
    out
}

/// Moves every rule whose source is another of our groups out of its group into one
/// [`SG_LINKS`] node, so that the groups are created side by side instead of one after the
/// other (the nodes' group admits Prometheus, the add-ons' admit the nodes, the control plane's
/// admits the nodes): the groups depend on the VPC only, and what runs in them waits for the
/// links (created alongside the subnets and route table, so off the critical path).
pub(super) fn link_groups(b: &mut Builder) {
    let nodes = b.nodes_mut();
    let groups: Vec<String> = nodes
        .iter()
        .filter(|n| matches!(n.desired, Desired::SecurityGroup(_)))
        .map(|n| n.id.clone())
        .collect();
    let mut links: Vec<(String, Rule)> = Vec::new();
    for n in nodes.iter_mut() {
        let id = n.id.clone();
        if let Desired::SecurityGroup(g) = &mut n.desired {
            let (other, own): (Vec<Rule>, Vec<Rule>) =
                std::mem::take(&mut g.rules).into_iter().partition(
                    |r| matches!(&r.source, Source::Group(s) if *s != id && groups.contains(s)),
                );
            g.rules = own;
            links.extend(other.into_iter().map(|r| (id.clone(), r)));
            n.deps.retain(|d| !groups.contains(d));
        }
    }
    if links.is_empty() {
        return;
    }
    let mut deps: Vec<String> = Vec::new();
    for (g, r) in &links {
        let source = match &r.source {
            Source::Group(s) => Some(s),
            Source::Cidr(_) => None,
        };
        for id in std::iter::once(g).chain(source) {
            if !deps.contains(id) {
                deps.push(id.clone());
            }
        }
    }
    // What runs in a group (instances, the node group) starts with its rules in place: a
    // failure to authorize them stops the launch, as a failing group did.
    for n in nodes.iter_mut() {
        if !matches!(n.desired, Desired::SecurityGroup(_))
            && n.deps.iter().any(|d| deps.contains(d))
        {
            n.deps.push(SG_LINKS.to_string());
        }
    }
    let deps: Vec<&str> = deps.iter().map(String::as_str).collect();
    b.add(
        SG_LINKS,
        Desired::IngressRules(IngressRules { rules: links }),
        &deps,
    );
}
