//! Finding everything a cluster owns: every kind's `observe`, all in flight at once (one
//! batched, tag-filtered Describe per EC2 resource type; the IAM, SSM and EKS objects whose
//! names derive from the cluster), then what Kubernetes made in the VPC when asked.

use super::kind::{Apply, Scope};
use super::{AwsError, Clients};
use crate::core::kinds::Observed;

macro_rules! observe_all {
    ($($K:ident $m:ident $field:ident,)*) => {
        /// Describes everything of the cluster that `scope` asks for.
        ///
        /// # Errors
        /// The first Describe that fails.
        pub async fn observe(c: &Clients, scope: &Scope<'_>) -> Result<Observed, AwsError> {
            // Each on the heap: together they would make this future too large for a stack.
            let kinds = async {
                tokio::try_join!(
                    $(Box::pin(<crate::core::kinds::$m::$K as Apply>::observe(c, scope)),)*
                )
            };
            // The nodes' boot reports: `down` deletes them with the bootstrap secret.
            let reports = async {
                if scope.kubeadm() && scope.kinds.is_none() {
                    super::node_reports::owned(c, scope.cluster).await
                } else {
                    Ok(Vec::new())
                }
            };
            let (($($field,)*), reports) = tokio::try_join!(kinds, reports)?;
            let mut obs = Observed {
                $($field,)*
                leftovers: Default::default(),
                reports,
                warnings: Vec::new(),
                api: None,
            };
            if scope.leftovers {
                let vpcs: Vec<String> = obs.vpcs.iter().map(|v| v.id.clone()).collect();
                let subnets: Vec<String> = obs.subnets.iter().map(|s| s.id.clone()).collect();
                // The claim volumes outlive the VPC: looked for even when nothing else is left.
                let (found, volumes) = tokio::join!(
                    super::leftovers::find(c, scope.cluster, &vpcs, &subnets),
                    super::volumes::find(c, scope.cluster),
                );
                match found {
                    Ok(l) => obs.leftovers = l,
                    Err(e) if e.code().is_access_denied() => scope.warn(format!(
                        "could not look for load balancers Kubernetes made in the VPC ({e}); if there are any, the VPC's deletion will name them"
                    )),
                    Err(e) => return Err(e),
                }
                match volumes {
                    Ok(v) => obs.leftovers.volumes = v,
                    Err(e) if e.code().is_access_denied() => scope.warn(format!(
                        "could not look for the EBS volumes of the cluster's claims ({e}); any there are stay"
                    )),
                    Err(e) => return Err(e),
                }
            }
            obs.warnings = scope.take_warnings();
            Ok(obs)
        }
    };
}
crate::core::kinds::with_kinds!(observe_all);
