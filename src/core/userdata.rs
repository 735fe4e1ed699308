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
    /// etcd snapshots to the cluster's bucket (and, for a new control plane of a lost one, the
    /// snapshot to restore first).
    pub backups: Option<EtcdBackups>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdBackups {
    /// The bucket's node.
    pub bucket: String,
    /// Seconds between snapshots.
    pub interval: u32,
    /// The key of the snapshot to restore before `kubeadm init` (`instances::Drift::Restore`).
    pub restore: Option<String>,
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
    /// The cluster's name (where the node reports its boot).
    pub cluster: String,
    /// The nodes of the control plane, the join token and the bootstrap secret.
    pub master: String,
    pub token: String,
    pub secret: String,
    pub node_exporter: bool,
    /// The pool's labels and taints, set when the node registers.
    pub labels: std::collections::BTreeMap<String, String>,
    pub taints: Vec<crate::core::spec::Taint>,
}

/// An add-on instance.
#[derive(Debug, Clone, PartialEq)]
pub struct AddonDoc {
    pub addon: Addon,
    pub spec: AddonSpec,
    pub cluster: String,
    pub region: String,
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
    /// The control plane's document that restores snapshot `key` before `kubeadm init`.
    #[must_use]
    pub fn restoring(&self, key: &str) -> UserData {
        let mut doc = self.clone();
        if let UserData::Master(MasterDoc {
            backups: Some(b), ..
        }) = &mut doc
        {
            b.restore = Some(key.to_string());
        }
        doc
    }

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
                    region: &a.region,
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
        let bucket = match &self.backups {
            Some(b) => Some(inputs.id(&b.bucket)?),
            None => None,
        };
        let prefix = super::kinds::backup_bucket::snapshot_prefix(&b.cluster_id);
        let backups =
            self.backups
                .as_ref()
                .zip(bucket)
                .map(|(b, bucket)| cloudinit::EtcdBackupInput {
                    bucket,
                    prefix: &prefix,
                    interval: b.interval,
                    restore: b.restore.as_deref(),
                });
        let doc = cloudinit::master(
            &self.kubeadm,
            &MasterInput {
                backups,
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
                cluster: &self.cluster,
                master_private_ip: &master,
                token,
                ca_hash: &hash,
                labels: &self.labels,
                taints: &self.taints,
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

/// What EC2 is sent for an instance: the document gzip-compressed as a whole. cloud-init
/// decompresses gzip user data before reading it, and EC2's 16 KB limit
/// ([`cloudinit::USER_DATA_LIMIT`]) counts these bytes, a fraction of the text.
pub fn pack(text: &str) -> Vec<u8> {
    cloudinit::gzip(text)
}

/// An instance whose user data would not fit EC2's limit, however its dependencies turn out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Oversize {
    /// The instance node.
    pub node: String,
    /// The packed size, and the text's.
    pub bytes: usize,
    pub text_bytes: usize,
}

/// The instances of `graph` whose user data, rendered with the largest values their
/// dependencies can give (addresses, token, CA hash), would be over EC2's limit once packed.
/// Pure: `validate` and `plan` call it before any AWS call.
pub fn oversize(graph: &super::graph::Graph) -> Vec<Oversize> {
    graph
        .nodes
        .iter()
        .filter_map(|n| {
            let i = match &n.desired {
                super::kinds::Desired::Instances(i) => i,
                // Every zone of a pool boots the same document.
                super::kinds::Desired::WorkerPool(p) => &p.zones.first()?.1,
                _ => return None,
            };
            let text = worst_case_text(&i.user_data)?;
            let bytes = pack(&text).len();
            (bytes > cloudinit::USER_DATA_LIMIT).then(|| Oversize {
                node: n.id.clone(),
                bytes,
                text_bytes: text.len(),
            })
        })
        .collect()
}

/// The document at its largest: a control plane that restores a snapshot, with the longest
/// values its dependencies can give.
fn worst_case_text(doc: &UserData) -> Option<String> {
    let doc = doc.restoring(&super::kinds::backup_bucket::longest_key());
    doc.render(&worst_case_inputs(&doc)).ok()
}

/// The longest values the document's dependencies can give: IPv4 addresses of 15 characters,
/// a bootstrap token, a real CA (its hash is what workers get).
fn worst_case_inputs(doc: &UserData) -> Inputs {
    use super::kinds::instances::ObsInstance;
    use super::kinds::output::Output;
    use std::sync::Arc;
    const IP: &str = "255.255.255.255";
    let instance = || {
        Output::Instances(vec![ObsInstance {
            id: "i-0123456789abcdef0".into(),
            logical: None,
            state: "running".into(),
            subnet_id: None,
            private_ip: Some(IP.into()),
            public_ip: Some(IP.into()),
            version: None,
            ..Default::default()
        }])
    };
    let bootstrap = || {
        let ca = super::pki::generate_ca(time::OffsetDateTime::UNIX_EPOCH).unwrap_or_else(|_| {
            super::pki::Ca {
                cert_pem: String::new(),
                key_pem: String::new(),
            }
        });
        Output::Bootstrap(super::kinds::bootstrap_secret::Bootstrap {
            version: 1,
            cluster_id: "0".repeat(super::kinds::bootstrap_secret::CLUSTER_ID_LEN),
            ca_cert_pem: ca.cert_pem,
            ca_key_pem: ca.key_pem,
            token: "abcdef.0123456789abcdef".into(),
            token_created: None,
        })
    };
    let mut by_id: Vec<(String, Output)> = Vec::new();
    match doc {
        UserData::Master(m) => {
            by_id.push((m.secret.clone(), bootstrap()));
            if let Some(l) = &m.log_shipper {
                by_id.push((l.logging.clone(), instance()));
            }
            if let Some(b) = &m.backups {
                // S3's longest bucket name.
                by_id.push((b.bucket.clone(), Output::Id("b".repeat(63))));
            }
            for a in &m.addresses {
                by_id.push((
                    a.clone(),
                    Output::Address {
                        allocation: "eipalloc-0123456789abcdef0".into(),
                        ip: IP.into(),
                    },
                ));
            }
        }
        UserData::Worker(w) => {
            by_id.push((w.secret.clone(), bootstrap()));
            by_id.push((w.master.clone(), instance()));
            by_id.push((
                w.token.clone(),
                Output::Token("abcdef.0123456789abcdef".into()),
            ));
        }
        UserData::Addon(_) => {}
    }
    Inputs::new(by_id.into_iter().map(|(k, v)| (k, Arc::new(v))).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::graph;
    use crate::core::kinds::Desired;

    /// A kubeadm cluster with every add-on and a baseline of `namespaces` namespaces and
    /// `bindings` bindings, each binding naming every namespace (the largest manifests).
    fn spec_text(namespaces: usize, bindings: usize) -> String {
        let ns: Vec<String> = (0..namespaces)
            .map(|i| format!("\"team-{i:02}\""))
            .collect();
        let ns = ns.join(", ");
        let mut s = format!(
            "name = \"big\"\nregion = \"us-east-1\"\nkind = \"kubeadm\"\n\
             [network]\nvpc_cidr = \"10.0.0.0/16\"\navailability_zones = 3\n\
             admin_cidrs = [\"203.0.113.0/24\"]\n\
             [kubeadm]\ncni = \"calico\"\ninstance_type = \"t3.medium\"\nworkers = 3\n\
             [addons]\nmonitoring = true\nlogging = true\ntracing = true\n\
             [security]\nnamespaces = [{ns}]\ndefault_deny_egress = true\n"
        );
        for i in 0..bindings {
            s.push_str(&format!(
                "[[security.bindings]]\ngroup = \"group-{i:02}-with-a-long-name\"\nrole = \"edit\"\nnamespaces = [{ns}]\n"
            ));
        }
        s
    }

    /// Each instance of the graph: its id, its document with the worst-case inputs, packed.
    fn packed(spec: &crate::core::spec::ClusterSpec) -> Vec<(String, String, Vec<u8>)> {
        graph::build(spec)
            .nodes
            .iter()
            .filter_map(|n| match &n.desired {
                Desired::Instances(i) => Some((n.id.clone(), i)),
                Desired::WorkerPool(p) => Some((n.id.clone(), &p.zones.first()?.1)),
                _ => None,
            })
            .map(|(id, i)| {
                let text = worst_case_text(&i.user_data).expect("renders");
                let bytes = pack(&text);
                (id, text, bytes)
            })
            .collect()
    }

    /// The graph of `text`, with no size check (validation would refuse what is measured).
    fn unchecked(text: &str) -> crate::core::spec::ClusterSpec {
        let mut spec = crate::core::spec::parse("full.toml", &spec_text(0, 0))
            .unwrap()
            .0;
        let big = toml::from_str::<toml::Value>(text).unwrap();
        let sec = &big["security"];
        spec.security.namespaces = sec["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect();
        spec.security.default_deny_egress = true;
        spec.security.bindings = (0..sec
            .get("bindings")
            .map_or(0, |b| b.as_array().unwrap().len()))
            .map(|i| crate::core::spec::Binding {
                subject: crate::core::spec::Subject::Group(format!(
                    "group-{i:02}-with-a-long-name"
                )),
                role: crate::core::spec::BindingRole::Edit,
                namespaces: spec.security.namespaces.clone(),
            })
            .collect();
        spec
    }

    /// cloud-init itself (its user-data processor, run by the interpreter its own command
    /// uses) reads the packed control plane document back as the cloud-config it was.
    #[test]
    fn packed_user_data_is_what_cloud_init_reads() {
        let spec = crate::core::spec::parse("big.toml", &spec_text(2, 2))
            .unwrap()
            .0;
        let (_, text, bytes) = packed(&spec)
            .into_iter()
            .find(|(id, ..)| id == "master")
            .unwrap();
        assert_eq!(&bytes[..2], &[0x1f, 0x8b], "gzip magic");
        let ci = crate::core::testing::tool("cloud-init");
        let shebang = std::fs::read_to_string(&ci).unwrap();
        let python = shebang
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("#!"))
            .map(|l| l.split_whitespace().next().unwrap().to_string())
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let blob = dir.path().join("user-data");
        std::fs::write(&blob, &bytes).unwrap();
        let out = std::process::Command::new(python)
            .arg("-c")
            .arg(
                "import sys\n\
                 from cloudinit import helpers, user_data\n\
                 msg = user_data.UserDataProcessor(helpers.Paths({})).process(open(sys.argv[1], 'rb').read())\n\
                 parts = [p for p in msg.walk() if not p.is_multipart()]\n\
                 assert [p.get_content_type() for p in parts] == ['text/cloud-config'], parts\n\
                 sys.stdout.buffer.write(parts[0].get_payload(decode=True))\n",
            )
            .arg(&blob)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(String::from_utf8(out.stdout).unwrap(), text);
    }

    /// The control plane gets node_exporter with the monitoring add-on, as `up` launches it:
    /// the size check measures what is really sent.
    #[test]
    fn the_measured_control_plane_document_has_every_part_up_sends() {
        let spec = crate::core::spec::parse("big.toml", &spec_text(2, 2))
            .unwrap()
            .0;
        let all = packed(&spec);
        let (_, master, _) = all.iter().find(|(id, ..)| id == "master").unwrap();
        for part in [
            "node_exporter",
            "fluent-bit",
            "kubeadm init",
            "255.255.255.255",
        ] {
            assert!(master.contains(part), "{part}");
        }
        let (_, worker, _) = all.iter().find(|(id, ..)| id == "workers").unwrap();
        assert!(worker.contains("node_exporter") && worker.contains("sha256:"));
    }

    /// 30 namespaces and 30 bindings with every add-on: each document fits once packed, or
    /// validation refuses the spec naming the document, its size and what to trim.
    #[test]
    fn thirty_namespaces_and_bindings_with_every_add_on_fit_or_are_refused() {
        let mut refused = 0;
        for (n, b) in [(19, 19), (30, 30), (150, 150)] {
            let text = spec_text(n, b);
            let over: Vec<(String, usize, usize)> = packed(&unchecked(&text))
                .into_iter()
                .map(|(id, t, bytes)| (id, bytes.len(), t.len()))
                .filter(|(_, bytes, _)| *bytes > cloudinit::USER_DATA_LIMIT)
                .collect();
            match crate::core::spec::parse("big.toml", &text) {
                Ok(_) => assert!(over.is_empty(), "{n}/{b}: accepted but {over:?}"),
                Err(e) => {
                    refused += 1;
                    assert!(
                        !over.is_empty(),
                        "{n}/{b}: refused but everything fits: {e}"
                    );
                    for (id, bytes, text_bytes) in &over {
                        let issue = e
                            .issues
                            .iter()
                            .find(|i| i.message.contains(&format!("`{id}`")))
                            .unwrap_or_else(|| panic!("{n}/{b}: {id} not named in {e}"));
                        assert_eq!(issue.field, "security");
                        assert!(issue.line > 1, "{issue}");
                        assert!(
                            issue.message.contains(&format!(
                                "{bytes} bytes compressed ({text_bytes} as text)"
                            )),
                            "{issue}"
                        );
                    }
                }
            }
        }
        // The check can refuse: 150 namespaces and 150 bindings are 22,500 RoleBindings.
        assert_eq!(refused, 1);
    }
}
