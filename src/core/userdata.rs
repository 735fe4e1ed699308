//! User data, assembled from what a node's desired state says and what its dependencies
//! produced (the bootstrap secret, the control plane's address, the logging instance's). The
//! documents themselves are rendered by `cloudinit` (kubeadm nodes) and `addons` (add-on
//! instances, the EKS nodes' agents).

use super::addons::{self, AddonInput, NodeAgents, NodeLogging};
use super::cloudinit::{self, MasterInput, WorkerInput};
use super::kinds::{Inputs, Missing};
use super::spec::{Addon, AddonSpec, KubeadmSpec};

/// Which document an instance boots with.
#[derive(Debug, Clone, PartialEq)]
pub enum UserData {
    Master(MasterDoc),
    Worker(WorkerDoc),
    Addon(AddonDoc),
}

/// The control plane: `kubeadm init` with our CA (fetched at boot) and the stored token.
#[derive(Debug, Clone, PartialEq)]
pub struct MasterDoc {
    pub kubeadm: KubeadmSpec,
    pub cluster: String,
    /// The bootstrap secret's node and parameter.
    pub secret: String,
    pub secret_parameter: String,
    /// The security baseline's manifests, applied after the CNI.
    pub baseline: Option<serde_json::Value>,
    pub log_shipper: Option<LogShipper>,
    pub node_exporter: bool,
    /// The nodes whose Elastic IPs the API server's certificate names (the control plane's
    /// fixed public address).
    pub addresses: Vec<String>,
}

/// With the logging add-on, the control plane installs Fluent Bit, pointed at the logging
/// instance's private address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogShipper {
    /// The logging instance's node.
    pub logging: String,
    pub fluent_bit_version: String,
    /// The log writer's parameter (the Fluent Bit password).
    pub parameter: String,
}

/// A worker: `kubeadm join` at the control plane's private address.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerDoc {
    pub kubeadm: KubeadmSpec,
    /// The nodes of the control plane, the join token and the bootstrap secret.
    pub master: String,
    pub token: String,
    pub secret: String,
    pub node_exporter: bool,
}

/// An add-on instance.
#[derive(Debug, Clone, PartialEq)]
pub struct AddonDoc {
    pub addon: Addon,
    pub spec: AddonSpec,
    pub cluster: String,
    /// The add-ons' parameter (passwords).
    pub parameter: String,
}

/// What the EKS nodes run for the add-ons (the launch template's cloud-config part).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeAgentsDoc {
    pub node_exporter: bool,
    pub logging: Option<LogShipper>,
}

/// Why user data could not be assembled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UserDataError {
    #[error(transparent)]
    Missing(#[from] Missing),
    /// An instance this one needs has no address yet.
    #[error("{node} has no private IP address yet")]
    NoAddress { node: String },
    /// AWS gave an address that is not one.
    #[error("{node}'s address `{address}` is not an IP address")]
    BadAddress { node: String, address: String },
    #[error("hashing the cluster CA: {0}")]
    Ca(String),
}

/// The private address of the first instance of node `id`.
fn private_ip(inputs: &Inputs, id: &str) -> Result<String, UserDataError> {
    inputs
        .instances(id)?
        .first()
        .and_then(|i| i.private_ip.clone())
        .ok_or_else(|| UserDataError::NoAddress {
            node: id.to_string(),
        })
}

impl UserData {
    /// The document, rendered with the outputs of the instance node's dependencies.
    ///
    /// # Errors
    /// When a dependency gave no such output, or an instance has no address yet.
    pub fn render(&self, inputs: &Inputs) -> Result<String, UserDataError> {
        match self {
            UserData::Master(m) => m.render(inputs),
            UserData::Worker(w) => w.render(inputs),
            UserData::Addon(a) => Ok(addons::cloud_config(
                a.addon,
                &a.spec,
                &AddonInput {
                    cluster: &a.cluster,
                    parameter: &a.parameter,
                },
            )
            .render()),
        }
    }
}

impl MasterDoc {
    fn render(&self, inputs: &Inputs) -> Result<String, UserDataError> {
        let b = inputs.bootstrap(&self.secret)?;
        let shipper = match &self.log_shipper {
            Some(l) => {
                let es = private_ip(inputs, &l.logging)?;
                let image = format!("cr.fluentbit.io/fluent/fluent-bit:{}", l.fluent_bit_version);
                Some((
                    super::manifests::log_shipper(&es, &image),
                    l.parameter.as_str(),
                ))
            }
            None => None,
        };
        let public = self
            .addresses
            .iter()
            .map(|id| {
                let (_, ip) = inputs.address(id)?;
                ip.parse().map_err(|_| UserDataError::BadAddress {
                    node: id.clone(),
                    address: ip.to_string(),
                })
            })
            .collect::<Result<Vec<std::net::IpAddr>, UserDataError>>()?;
        let doc = cloudinit::master(
            &self.kubeadm,
            &MasterInput {
                public_addresses: &public,
                cluster: &self.cluster,
                secret_parameter: &self.secret_parameter,
                token: &b.token,
                baseline: self.baseline.as_ref(),
                log_shipper: shipper.as_ref().map(|(m, p)| (m, *p)),
            },
        );
        Ok(if self.node_exporter {
            cloudinit::with_node_exporter(doc)
        } else {
            doc
        }
        .render())
    }
}

impl WorkerDoc {
    fn render(&self, inputs: &Inputs) -> Result<String, UserDataError> {
        let master = private_ip(inputs, &self.master)?;
        let token = inputs.token(&self.token)?;
        let hash = inputs
            .bootstrap(&self.secret)?
            .ca()
            .discovery_hash()
            .map_err(|e| UserDataError::Ca(e.to_string()))?;
        let doc = cloudinit::worker(
            &self.kubeadm,
            &WorkerInput {
                master_private_ip: &master,
                token,
                ca_hash: &hash,
            },
        );
        Ok(if self.node_exporter {
            cloudinit::with_node_exporter(doc)
        } else {
            doc
        }
        .render())
    }
}

impl NodeAgentsDoc {
    /// The launch template's user data: `None` when the nodes run no agent.
    ///
    /// # Errors
    /// When the logging instance gave no address.
    pub fn render(&self, inputs: &Inputs) -> Result<Option<String>, UserDataError> {
        let es = match &self.logging {
            Some(l) => Some(private_ip(inputs, &l.logging)?),
            None => None,
        };
        let agents = NodeAgents {
            node_exporter: self.node_exporter,
            logging: match (&self.logging, &es) {
                (Some(l), Some(es)) => Some(NodeLogging {
                    es_host: es,
                    fluent_bit_version: &l.fluent_bit_version,
                    parameter: &l.parameter,
                }),
                _ => None,
            },
        };
        Ok(agents
            .any()
            .then(|| addons::mime(&addons::eks_node_agents(&agents).render())))
    }
}
