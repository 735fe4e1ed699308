//! An inline policy on one of our roles, scoped to the cluster's own names: the control plane's
//! read of the bootstrap secret (and only from its instance), the add-on instances' access, the
//! EKS nodes' read of the log writer's password. Deleted with its role.

use std::fmt;

use super::{Change, Context, Inputs, Missing, Plan};
use crate::core::graph::policies;
use crate::core::latency::{Cost, Profile};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InlinePolicy {
    /// The role's node, and its name.
    pub role: String,
    pub role_name: String,
    /// The policy's name on the role.
    pub name: String,
    pub document: Document,
}

/// What the policy allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Document {
    /// `ssm:GetParameter` on these parameters, only from the instance of node `instance` (the
    /// control plane): workers share the role and must not read the CA.
    /// With `snapshots`: also `s3:PutObject` and `s3:GetObject` on this cluster's snapshot
    /// prefix, from that instance only.
    InstanceReads {
        parameters: Vec<String>,
        instance: String,
        snapshots: Option<Snapshots>,
    },
    /// EC2 discovery for Prometheus, and the add-ons' passwords.
    Addons { parameter: String },
    /// The log writer's password (the EKS nodes' Fluent Bit).
    LogWriter { parameter: String },
    /// The kubeadm nodes' boot reports under `path`, each only its own.
    NodeReports { path: String, cluster: String },
    /// What the SSM agent needs for Run Command and Session Manager, and nothing of
    /// AmazonSSMManagedInstanceCore's `ssm:GetParameter(s)` on every parameter (which would let
    /// any node read the CA in the bootstrap secret).
    SsmAgent,
}

/// Where the control plane's etcd snapshots go: the bucket's node, and the bootstrap secret's
/// (whose cluster id names the prefix, `backup_bucket::snapshot_prefix`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshots {
    pub bucket: String,
    pub secret: String,
}

/// An inline policy as IAM reports it (decoded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObsPolicy {
    pub role: String,
    pub name: String,
    pub document: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Drift {
    /// The document differs from what it should be.
    Rewrite(Document),
}

impl fmt::Display for Drift {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Drift::Rewrite(Document::InstanceReads { .. }) => f.write_str(
                "scope it to the current control plane instance and this cluster's snapshots",
            ),
            Drift::Rewrite(_) => f.write_str("rewrite the policy document"),
        }
    }
}

impl Plan for InlinePolicy {
    const NAME: &'static str = "iam-policy";
    // Deleted with its role.
    type Observed = Vec<ObsPolicy>;
    type Drift = Drift;

    fn diff(&self, _id: &str, cx: &Context<'_>) -> Change<Drift> {
        let Some(have) = cx
            .obs
            .policies
            .iter()
            .find(|p| p.role == self.role_name && p.name == self.name)
        else {
            return Change::create();
        };
        let arn = super::iam_role::find(cx.obs, &self.role).map(|r| r.arn.as_str());
        let instance = match &self.document {
            Document::InstanceReads { instance, .. } => cx
                .obs
                .live_instances(instance)
                .next()
                .map(|i| i.id.as_str()),
            _ => None,
        };
        let snapshots = cx
            .obs
            .bucket
            .as_ref()
            .map(|b| b.name.as_str())
            .zip(cx.obs.cluster_id());
        let want = arn.and_then(|a| self.render(a, &cx.spec.region, instance, snapshots));
        let json = |d: &str| serde_json::from_str::<serde_json::Value>(d).ok();
        let same = want.is_some_and(|w| json(&w).is_some() && json(&w) == json(&have.document));
        let drifts = if same {
            Vec::new()
        } else {
            vec![Drift::Rewrite(self.document.clone())]
        };
        Change::update(&self.name, drifts)
    }

    // PutRolePolicy.
    fn cost(&self, p: &Profile) -> Cost {
        Cost::same(p.call)
    }
}

impl InlinePolicy {
    /// The document for a role ARN (its partition and account scope the resources) and, for
    /// [`Document::InstanceReads`], the instance (and the snapshots' bucket name and cluster
    /// id). `None` when the ARN is not a role's or the instance (or the snapshots' place, when
    /// it names one) is not known.
    pub fn render(
        &self,
        role_arn: &str,
        region: &str,
        instance: Option<&str>,
        snapshots: Option<(&str, &str)>,
    ) -> Option<String> {
        match &self.document {
            Document::InstanceReads {
                parameters,
                snapshots: wanted,
                ..
            } => {
                let p: Vec<&str> = parameters.iter().map(String::as_str).collect();
                let snapshots = match wanted {
                    Some(_) => Some(snapshots?),
                    None => None,
                };
                policies::instance_reads(role_arn, region, &p, instance?, snapshots)
            }
            Document::Addons { parameter } => policies::addons_access(role_arn, region, parameter),
            Document::LogWriter { parameter } => policies::log_writer(role_arn, region, parameter),
            Document::NodeReports { path, cluster } => {
                policies::node_reports(role_arn, region, path, cluster)
            }
            Document::SsmAgent => policies::ssm_agent(role_arn),
        }
    }

    /// The document from the outputs of the role (and the instance) this run produced.
    ///
    /// # Errors
    /// When a dependency gave no such output (a bug), or the role's ARN is not a role's.
    pub fn render_from(&self, inputs: &Inputs, region: &str) -> Result<String, Missing> {
        let (_, arn) = inputs.role(&self.role)?;
        let instance = match &self.document {
            Document::InstanceReads { instance, .. } => Some(
                inputs
                    .instances(instance)?
                    .first()
                    .map(|i| i.id.clone())
                    .ok_or_else(|| Missing {
                        node: instance.clone(),
                        wanted: "instance",
                    })?,
            ),
            _ => None,
        };
        let snapshots = match &self.document {
            Document::InstanceReads {
                snapshots: Some(s), ..
            } => Some((
                inputs.id(&s.bucket)?,
                inputs.bootstrap(&s.secret)?.cluster_id.as_str(),
            )),
            _ => None,
        };
        self.render(arn, region, instance.as_deref(), snapshots)
            .ok_or_else(|| Missing {
                node: self.role.clone(),
                wanted: "IAM role ARN",
            })
    }

    /// What the policy grants, for progress lines.
    pub fn describe(&self) -> String {
        match &self.document {
            Document::InstanceReads {
                parameters,
                instance,
                snapshots,
            } => format!(
                "ssm:GetParameter on {}{} from {instance} only",
                parameters.join(", "),
                if snapshots.is_some() {
                    ", s3:PutObject and s3:GetObject on the cluster's etcd snapshots"
                } else {
                    ""
                }
            ),
            Document::Addons { parameter } => {
                format!("ec2:DescribeInstances, ssm:GetParameter on {parameter}")
            }
            Document::LogWriter { parameter } => format!("ssm:GetParameter on {parameter}"),
            Document::NodeReports { path, .. } => {
                format!("ssm:PutParameter on {path}/*, each instance only its own report")
            }
            Document::SsmAgent => {
                "the SSM agent's registration, Run Command and Session Manager; no parameters"
                    .into()
            }
        }
    }
}
