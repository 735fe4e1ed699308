//! How to reach a running cluster's API, from what discovery saw (`kubeconfig`, `status`):
//! the kubeadm control plane's fixed address (else its public, else its private IP) with the
//! CA from the bootstrap secret, or the EKS endpoint with the CA EKS reports.

use super::graph;
use super::kinds::Observed;
use super::pki::Ca;

/// The API server and what proves it.
#[derive(Debug, Clone)]
pub enum Access {
    Kubeadm {
        server: String,
        ca: Ca,
    },
    Eks {
        server: String,
        /// Base64 PEM, as EKS reports it.
        ca_base64: String,
    },
}

impl Access {
    pub fn server(&self) -> &str {
        match self {
            Access::Kubeadm { server, .. } | Access::Eks { server, .. } => server,
        }
    }
}

/// The API of `cluster`, or why there is none to reach (one line, saying what to do).
///
/// # Errors
/// What is missing: no cluster, a control plane that is not running, a secret not read.
pub fn access(cluster: &str, obs: &Observed) -> Result<Access, String> {
    if let Some(e) = obs.eks.as_ref().filter(|e| e.owned) {
        let server = e.endpoint.clone().ok_or_else(|| {
            format!(
                "EKS cluster {cluster} has no endpoint yet (status {}): run `provision up` or wait",
                e.status
            )
        })?;
        let ca_base64 = e.ca_data.clone().ok_or_else(|| {
            format!(
                "EKS cluster {cluster} reports no CA yet (status {})",
                e.status
            )
        })?;
        return Ok(Access::Eks { server, ca_base64 });
    }
    let master = obs
        .instances
        .iter()
        .find(|i| i.is_live() && i.logical.as_deref() == Some(graph::MASTER));
    let Some(master) = master else {
        return Err(format!(
            "no cluster {cluster} with a control plane here: check the name and region (`provision list --region R`), or run `provision up`"
        ));
    };
    let address = obs
        .addresses
        .iter()
        .find(|a| {
            a.logical.as_deref() == Some(graph::MASTER_EIP)
                && a.instance_id.as_deref() == Some(master.id.as_str())
        })
        .map(|a| a.public_ip.clone());
    let ip = address
        .or_else(|| master.public_ip.clone())
        .or_else(|| master.private_ip.clone())
        .ok_or_else(|| {
            format!(
                "the control plane {} of {cluster} has no IP address (state {})",
                master.id, master.state
            )
        })?;
    let secret = obs
        .secret
        .as_ref()
        .filter(|s| s.owned)
        .ok_or_else(|| format!("the bootstrap secret of {cluster} is missing: the CA is gone, and with it admin access; `provision down` and `up` make a new cluster"))?;
    let b = secret.content.as_ref().ok_or_else(|| {
        format!(
            "the bootstrap secret {} of {cluster} could not be read{}",
            secret.name,
            secret
                .unreadable
                .as_deref()
                .map(|w| format!(": {w}"))
                .unwrap_or_default()
        )
    })?;
    Ok(Access::Kubeadm {
        server: format!("https://{ip}:6443"),
        ca: b.ca(),
    })
}
