//! One region's survey for `list` and `gc`: the VPCs and live instances carrying
//! `provision:cluster` (one tag-filtered Describe each, at once), EKS ListClusters with a
//! DescribeCluster per cluster (EKS has no tag filter), and the EKS clusters' managed nodes.

use aws_sdk_ec2::types::Filter;
use futures::StreamExt as _;

use super::error::api;
use super::{AwsError, Clients, stamp_of, tag_value};
use crate::core::inventory::{SeenEks, SeenInstance, SeenVpc, Survey};
use crate::core::stamp::{Stamp, VERSION_TAG};
use crate::core::tags::{CLUSTER_TAG, RESOURCE_TAG};

const LIVE: [&str; 4] = ["pending", "running", "stopping", "stopped"];

fn filter(name: &str, values: &[&str]) -> Filter {
    Filter::builder()
        .name(name)
        .set_values(Some(values.iter().map(|v| v.to_string()).collect()))
        .build()
}

/// What the region holds of ours.
///
/// # Errors
/// The first listing that failed.
pub async fn survey(c: &Clients) -> Result<Survey, AwsError> {
    let region = c.region.clone();
    let (vpcs, instances, eks) = tokio::try_join!(
        async {
            let items: Vec<_> = c
                .ec2
                .describe_vpcs()
                .filters(filter("tag-key", &[CLUSTER_TAG]))
                .into_paginator()
                .items()
                .send()
                .try_collect()
                .await
                .map_err(api("listing", &format!("the VPCs of {region}")))?;
            Ok::<_, AwsError>(
                items
                    .iter()
                    .filter_map(|v| {
                        Some(SeenVpc {
                            cluster: tag_value(v.tags(), CLUSTER_TAG)?.to_string(),
                            id: v.vpc_id()?.to_string(),
                            stamp: stamp_of(v.tags()),
                        })
                    })
                    .collect::<Vec<_>>(),
            )
        },
        instances(c, filter("tag-key", &[CLUSTER_TAG]), &region),
        eks_clusters(c),
    )?;
    let mut instances = instances;
    let names: Vec<&str> = eks.iter().map(|e| e.cluster.as_str()).collect();
    if !names.is_empty() {
        instances.extend(instances_of_eks(c, &names, &region).await?);
    }
    Ok(Survey {
        vpcs,
        instances,
        eks,
    })
}

/// The live instances matching `f` (one paginated DescribeInstances).
async fn live(
    c: &Clients,
    f: Filter,
    what: &str,
) -> Result<Vec<aws_sdk_ec2::types::Instance>, AwsError> {
    let res: Vec<_> = c
        .ec2
        .describe_instances()
        .filters(f)
        .filters(filter("instance-state-name", &LIVE))
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .map_err(api("listing", what))?;
    Ok(res.iter().flat_map(|r| r.instances()).cloned().collect())
}

async fn instances(c: &Clients, f: Filter, region: &str) -> Result<Vec<SeenInstance>, AwsError> {
    let found = live(c, f, &format!("the instances of {region}")).await?;
    Ok(found
        .iter()
        .filter_map(|i| {
            Some(SeenInstance {
                cluster: tag_value(i.tags(), CLUSTER_TAG)?.to_string(),
                logical: tag_value(i.tags(), RESOURCE_TAG).map(str::to_string),
                version: tag_value(i.tags(), VERSION_TAG).map(str::to_string),
            })
        })
        .collect())
}

/// The managed nodes of our EKS clusters (EKS tags them `eks:cluster-name`).
async fn instances_of_eks(
    c: &Clients,
    names: &[&str],
    region: &str,
) -> Result<Vec<SeenInstance>, AwsError> {
    let found = live(
        c,
        filter("tag:eks:cluster-name", names),
        &format!("the EKS nodes of {region}"),
    )
    .await?;
    Ok(found
        .iter()
        // Ours already counted by their cluster tag.
        .filter(|i| tag_value(i.tags(), CLUSTER_TAG).is_none())
        .filter_map(|i| {
            Some(SeenInstance {
                cluster: tag_value(i.tags(), "eks:cluster-name")?.to_string(),
                logical: None,
                version: None,
            })
        })
        .collect())
}

/// The EKS clusters carrying our cluster tag.
async fn eks_clusters(c: &Clients) -> Result<Vec<SeenEks>, AwsError> {
    let names: Vec<String> = c
        .eks
        .list_clusters()
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .map_err(api("listing", &format!("the EKS clusters of {}", c.region)))?;
    // At most 8 at once; a cluster deleted between the list and its describe is skipped.
    let described: Vec<Option<aws_sdk_eks::types::Cluster>> =
        futures::stream::iter(names.iter().map(|n| async move {
            match c
                .eks
                .describe_cluster()
                .name(n)
                .send()
                .await
                .map_err(api("describing EKS cluster", n))
            {
                Ok(out) => Ok(out.cluster().cloned()),
                Err(e) if *e.code() == super::error::Code::ResourceNotFoundException => Ok(None),
                Err(e) => Err(e),
            }
        }))
        .buffer_unordered(8)
        .collect::<Vec<Result<_, AwsError>>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()?;
    Ok(described
        .into_iter()
        .flatten()
        .filter_map(|e| {
            let tags = e.tags()?;
            let cluster = tags.get(CLUSTER_TAG)?.clone();
            // Ours only when the tag names this cluster (not a look-alike's).
            if Some(cluster.as_str()) != e.name() {
                return None;
            }
            Some(SeenEks {
                cluster,
                version: e.version().unwrap_or_default().to_string(),
                status: e
                    .status()
                    .map(|s| s.as_str().to_string())
                    .unwrap_or_default(),
                stamp: Stamp::from_tags(tags.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
            })
        })
        .collect())
}

/// The regions enabled for the account (DescribeRegions), for `--all-regions`.
///
/// # Errors
/// The AWS error of the call.
pub async fn regions(c: &Clients) -> Result<Vec<String>, AwsError> {
    let out = c
        .ec2
        .describe_regions()
        .send()
        .await
        .map_err(api("listing", "the account's regions"))?;
    let mut names: Vec<String> = out
        .regions()
        .iter()
        .filter_map(|r| r.region_name().map(str::to_string))
        .collect();
    names.sort();
    Ok(names)
}
