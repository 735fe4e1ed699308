//! The EBS volumes a cluster's CSI driver made for persistent volume claims. They outlive the
//! cluster (`down` keeps them, names each, and deletes them only with `--delete-volumes`, also
//! once everything else is gone). `up` configures the driver (through the add-on's
//! configuration, `extraVolumeTags`) to put our ownership tag, `provision:cluster = NAME`, and
//! `kubernetes.io/cluster/NAME = owned` on every volume it makes. Volumes are found by both,
//! with the driver's own `ebs.csi.aws.com/cluster`: a volume of another cluster, even a
//! same-named one another tool made, or one the driver did not make, is never touched.

use aws_sdk_ec2::types::Filter;

use super::error::{Code, api, gone_is_fine};
use super::kind::Tx;
use super::retry::retry;
use super::{AwsError, Clients, tag_value};
use crate::core::observed::ObsVolume;
use crate::core::tags::{CLUSTER_TAG, kubernetes_cluster_tag};

/// The tag the EBS CSI driver puts on every volume it makes.
pub const CSI_TAG: &str = "ebs.csi.aws.com/cluster";
const CLAIM_NAMESPACE: &str = "kubernetes.io/created-for/pvc/namespace";
const CLAIM_NAME: &str = "kubernetes.io/created-for/pvc/name";

/// The add-on configuration that makes the driver tag its volumes with the cluster's name.
/// `controller.extraVolumeTags` is in the add-on's configuration schema (as
/// DescribeAddonConfiguration shows it); whether the driver's other Helm values, such as
/// `k8sTagClusterId`, are accepted there is not known here, so both tags go through it.
pub fn addon_configuration(cluster: &str) -> String {
    serde_json::json!({"controller": {"extraVolumeTags": {
        CLUSTER_TAG: cluster,
        kubernetes_cluster_tag(cluster): "owned",
    }}})
    .to_string()
}

/// The cluster's CSI volumes (one DescribeVolumes, by tag).
///
/// # Errors
/// The AWS error of the call.
pub async fn find(c: &Clients, cluster: &str) -> Result<Vec<ObsVolume>, AwsError> {
    let out = c
        .ec2
        .describe_volumes()
        .filters(
            Filter::builder()
                .name(format!("tag:{}", kubernetes_cluster_tag(cluster)))
                .values("owned")
                .build(),
        )
        .filters(
            Filter::builder()
                .name(format!("tag:{CSI_TAG}"))
                .values("true")
                .build(),
        )
        .filters(
            Filter::builder()
                .name(format!("tag:{CLUSTER_TAG}"))
                .values(cluster)
                .build(),
        )
        .send()
        .await
        .map_err(api("listing", "the EBS volumes of the cluster's claims"))?;
    Ok(out
        .volumes()
        .iter()
        .filter(|v| v.state().is_none_or(|s| s.as_str() != "deleted"))
        .map(|v| {
            let tags = v.tags();
            ObsVolume {
                id: v.volume_id().unwrap_or_default().to_string(),
                size_gb: v.size().unwrap_or_default(),
                claim: match (
                    tag_value(tags, CLAIM_NAMESPACE),
                    tag_value(tags, CLAIM_NAME),
                ) {
                    (Some(ns), Some(n)) => Some(format!("{ns}/{n}")),
                    (None, Some(n)) => Some(n.to_string()),
                    _ => None,
                },
            }
        })
        .collect())
}

/// Deletes the volumes, concurrently; one still attached (its node is going) is tried again
/// until the dependency deadline.
///
/// # Errors
/// The AWS error of a delete.
pub async fn delete(tx: &Tx<'_>, volumes: &[ObsVolume]) -> Result<(), AwsError> {
    let deletes = volumes.iter().map(|v| {
        tx.report.deleting(
            Some("(kubernetes)"),
            "volume",
            &v.id,
            retry(
                tx.c.tuning.dependency(),
                |e| *e.code() == Code::VolumeInUse,
                || async {
                    gone_is_fine(
                        tx.c.ec2
                            .delete_volume()
                            .volume_id(&v.id)
                            .send()
                            .await
                            .map(|_| ())
                            .map_err(api("deleting EBS volume", &v.describe())),
                        Code::InvalidVolumeNotFound,
                    )
                },
            ),
        )
    });
    futures::future::try_join_all(deletes).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_add_on_tags_volumes_with_our_tag_and_the_clusters() {
        let v: serde_json::Value =
            serde_json::from_str(&super::addon_configuration("demo")).unwrap();
        let tags = &v["controller"]["extraVolumeTags"];
        assert_eq!(tags["provision:cluster"], "demo");
        assert_eq!(tags["kubernetes.io/cluster/demo"], "owned");
        assert_eq!(v["controller"].as_object().unwrap().len(), 1);
    }
}
