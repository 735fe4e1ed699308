//! What Kubernetes made in the cluster's VPC: load balancers (the AWS Load Balancer Controller's
//! ELBv2 ones and the in-tree cloud provider's classic ones), their target groups and security
//! groups, and the network interfaces the VPC CNI leaves `available`. `down` removes them before
//! the cluster and the network, as eksctl does; none of them carries our tag, so they are found by
//! the tags Kubernetes puts on them, and only inside our VPC and subnets.

use crate::core::events::Progress;
use aws_sdk_ec2::types::Filter;

use super::error::{Code, api, gone_is_fine};
use super::kind::Tx;
use super::retry::retry;
use super::{AwsError, Clients, tag_value};
use crate::core::observed::{Leftovers, ObsLoadBalancer};
use crate::core::tags::{
    CLUSTER_TAG, ELBV2_CLUSTER_TAG, VPC_CNI_CLUSTER_TAG, kubernetes_cluster_tag,
};

/// Whether a (key, value) tag list says a Kubernetes controller of `cluster` made the resource.
/// `kubernetes.io/cluster/NAME = shared` marks something the cluster *uses* (a subnet, a group
/// someone made for it), not something it owns: only `owned` counts.
pub fn made_by_kubernetes<'a>(
    mut tags: impl Iterator<Item = (&'a str, &'a str)>,
    cluster: &str,
) -> bool {
    let k8s = kubernetes_cluster_tag(cluster);
    tags.any(|(k, v)| {
        (k == k8s && v == "owned")
            || (k == ELBV2_CLUSTER_TAG && v == cluster)
            || (k == VPC_CNI_CLUSTER_TAG && v == cluster)
    })
}

/// Finds what Kubernetes made in `vpcs` and `subnets` (a handful of calls, all in flight at once).
///
/// # Errors
/// The first Describe that fails.
pub async fn find(
    c: &Clients,
    cluster: &str,
    vpcs: &[String],
    subnets: &[String],
) -> Result<Leftovers, AwsError> {
    if vpcs.is_empty() {
        return Ok(Leftovers::default());
    }
    let (v2, classic, target_groups, security_groups, interfaces) = tokio::try_join!(
        elbv2_load_balancers(c, cluster, vpcs),
        classic_load_balancers(c, cluster, vpcs),
        target_groups(c, cluster, vpcs),
        security_groups(c, cluster, vpcs),
        interfaces(c, cluster, subnets),
    )?;
    let mut load_balancers = v2;
    load_balancers.extend(classic);
    Ok(Leftovers {
        load_balancers,
        target_groups,
        security_groups,
        interfaces,
        volumes: Vec::new(),
    })
}

/// ELBv2 resources (load balancers or target groups) among `arns` tagged for the cluster.
async fn elbv2_tagged(
    c: &Clients,
    cluster: &str,
    arns: Vec<String>,
) -> Result<Vec<String>, AwsError> {
    let mut out = Vec::new();
    // DescribeTags takes at most 20 ARNs.
    for chunk in arns.chunks(20) {
        let tags = c
            .elbv2
            .describe_tags()
            .set_resource_arns(Some(chunk.to_vec()))
            .send()
            .await
            .map_err(api("reading the tags of", "load balancers in the VPC"))?;
        for d in tags.tag_descriptions() {
            let kv = d
                .tags()
                .iter()
                .map(|t| (t.key().unwrap_or_default(), t.value().unwrap_or_default()));
            if made_by_kubernetes(kv, cluster) {
                out.extend(d.resource_arn().map(str::to_string));
            }
        }
    }
    Ok(out)
}

async fn elbv2_load_balancers(
    c: &Clients,
    cluster: &str,
    vpcs: &[String],
) -> Result<Vec<ObsLoadBalancer>, AwsError> {
    let all: Vec<_> = c
        .elbv2
        .describe_load_balancers()
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .map_err(api("listing", "ELBv2 load balancers"))?;
    let arns: Vec<String> = all
        .iter()
        .filter(|lb| lb.vpc_id().is_some_and(|v| vpcs.iter().any(|x| x == v)))
        .filter_map(|lb| lb.load_balancer_arn().map(str::to_string))
        .collect();
    Ok(elbv2_tagged(c, cluster, arns)
        .await?
        .into_iter()
        .map(|id| ObsLoadBalancer { id, classic: false })
        .collect())
}

async fn target_groups(
    c: &Clients,
    cluster: &str,
    vpcs: &[String],
) -> Result<Vec<String>, AwsError> {
    let all: Vec<_> = c
        .elbv2
        .describe_target_groups()
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .map_err(api("listing", "ELBv2 target groups"))?;
    let arns: Vec<String> = all
        .iter()
        .filter(|t| t.vpc_id().is_some_and(|v| vpcs.iter().any(|x| x == v)))
        .filter_map(|t| t.target_group_arn().map(str::to_string))
        .collect();
    elbv2_tagged(c, cluster, arns).await
}

async fn classic_load_balancers(
    c: &Clients,
    cluster: &str,
    vpcs: &[String],
) -> Result<Vec<ObsLoadBalancer>, AwsError> {
    let all: Vec<_> = c
        .elb
        .describe_load_balancers()
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .map_err(api("listing", "classic load balancers"))?;
    let names: Vec<String> = all
        .iter()
        .filter(|lb| lb.vpc_id().is_some_and(|v| vpcs.iter().any(|x| x == v)))
        .filter_map(|lb| lb.load_balancer_name().map(str::to_string))
        .collect();
    let mut out = Vec::new();
    for chunk in names.chunks(20) {
        let tags = c
            .elb
            .describe_tags()
            .set_load_balancer_names(Some(chunk.to_vec()))
            .send()
            .await
            .map_err(api(
                "reading the tags of",
                "classic load balancers in the VPC",
            ))?;
        for d in tags.tag_descriptions() {
            let kv = d
                .tags()
                .iter()
                .map(|t| (t.key(), t.value().unwrap_or_default()));
            if made_by_kubernetes(kv, cluster) {
                out.extend(d.load_balancer_name().map(|id| ObsLoadBalancer {
                    id: id.to_string(),
                    classic: true,
                }));
            }
        }
    }
    Ok(out)
}

fn vpc_filter(vpcs: &[String]) -> Filter {
    Filter::builder()
        .name("vpc-id")
        .set_values(Some(vpcs.to_vec()))
        .build()
}

/// Security groups a controller made for load balancers. Ours (provision:cluster) are deleted
/// by their own step; EKS's cluster security group (`aws:eks:cluster-name`) goes with the cluster.
async fn security_groups(
    c: &Clients,
    cluster: &str,
    vpcs: &[String],
) -> Result<Vec<String>, AwsError> {
    let all: Vec<_> = c
        .ec2
        .describe_security_groups()
        .filters(vpc_filter(vpcs))
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .map_err(api("listing", "security groups in the VPC"))?;
    Ok(all
        .iter()
        .filter(|g| {
            let tags = g.tags();
            tag_value(tags, CLUSTER_TAG).is_none()
                && tag_value(tags, "aws:eks:cluster-name").is_none()
                && made_by_kubernetes(
                    tags.iter()
                        .map(|t| (t.key().unwrap_or_default(), t.value().unwrap_or_default())),
                    cluster,
                )
        })
        .filter_map(|g| g.group_id().map(str::to_string))
        .collect())
}

/// `available` interfaces in our subnets that the VPC CNI (or another controller of this
/// cluster) made: tagged for the cluster, or described `aws-K8S-…` as the CNI names them.
async fn interfaces(
    c: &Clients,
    cluster: &str,
    subnets: &[String],
) -> Result<Vec<String>, AwsError> {
    if subnets.is_empty() {
        return Ok(Vec::new());
    }
    let out = c
        .ec2
        .describe_network_interfaces()
        .filters(
            Filter::builder()
                .name("subnet-id")
                .set_values(Some(subnets.to_vec()))
                .build(),
        )
        .filters(Filter::builder().name("status").values("available").build())
        .send()
        .await
        .map_err(api(
            "listing",
            "available network interfaces in the subnets",
        ))?;
    Ok(out
        .network_interfaces()
        .iter()
        .filter(|n| {
            let tags = n.tag_set();
            tag_value(tags, CLUSTER_TAG).is_none()
                && (made_by_kubernetes(
                    tags.iter()
                        .map(|t| (t.key().unwrap_or_default(), t.value().unwrap_or_default())),
                    cluster,
                ) || n.description().is_some_and(|d| d.starts_with("aws-K8S-")))
        })
        .filter_map(|n| n.network_interface_id().map(str::to_string))
        .collect())
}

fn still_in_use(e: &AwsError) -> bool {
    matches!(
        e.code(),
        Code::DependencyViolation | Code::ResourceInUse | Code::InvalidNetworkInterfaceInUse
    )
}

/// Deletes a load balancer (gone at once for the API; its interfaces take a while).
///
/// # Errors
/// The AWS error of the Delete.
pub async fn delete_load_balancer(c: &Clients, lb: &ObsLoadBalancer) -> Result<(), AwsError> {
    if lb.classic {
        c.elb
            .delete_load_balancer()
            .load_balancer_name(&lb.id)
            .send()
            .await
            .map_err(api("deleting load balancer", &lb.id))?;
    } else {
        let r = c
            .elbv2
            .delete_load_balancer()
            .load_balancer_arn(&lb.id)
            .send()
            .await
            .map_err(api("deleting load balancer", &lb.id));
        gone_is_fine(r, Code::LoadBalancerNotFound)?;
    }
    Ok(())
}

/// Deletes a target group, retrying while a listener of a load balancer being deleted still
/// uses it.
///
/// # Errors
/// The AWS error of the Delete, or the deadline.
pub async fn delete_target_group(c: &Clients, arn: &str) -> Result<(), AwsError> {
    retry(c.tuning.dependency(), still_in_use, || async {
        let r = c
            .elbv2
            .delete_target_group()
            .target_group_arn(arn)
            .send()
            .await
            .map_err(api("deleting target group", arn));
        gone_is_fine(r, Code::TargetGroupNotFound)
    })
    .await
}

/// Removes the rules of `groups` in `vpcs` that admit traffic from `sg` (the in-tree cloud
/// provider adds one to the nodes' group for each load balancer), then deletes `sg`, retrying
/// while the load balancer's interfaces are released.
///
/// # Errors
/// The AWS error of a call, or the deadline.
pub async fn delete_security_group(
    c: &Clients,
    cluster: &str,
    vpcs: &[String],
    sg: &str,
) -> Result<(), AwsError> {
    let referencing: Vec<_> = c
        .ec2
        .describe_security_groups()
        .filters(vpc_filter(vpcs))
        .filters(
            Filter::builder()
                .name("ip-permission.group-id")
                .values(sg)
                .build(),
        )
        .send()
        .await
        .map_err(api("finding the rules that reference", sg))?
        .security_groups()
        .to_vec();
    for g in &referencing {
        let tags = g.tags();
        let ours_or_clusters = tag_value(tags, CLUSTER_TAG) == Some(cluster)
            || made_by_kubernetes(
                tags.iter()
                    .map(|t| (t.key().unwrap_or_default(), t.value().unwrap_or_default())),
                cluster,
            );
        let Some(id) = g.group_id().filter(|_| ours_or_clusters) else {
            continue;
        };
        let perms: Vec<_> = g
            .ip_permissions()
            .iter()
            .filter(|p| {
                p.user_id_group_pairs()
                    .iter()
                    .any(|pair| pair.group_id() == Some(sg))
            })
            .map(|p| {
                let pairs = p
                    .user_id_group_pairs()
                    .iter()
                    .filter(|pair| pair.group_id() == Some(sg))
                    .cloned()
                    .collect();
                aws_sdk_ec2::types::IpPermission::builder()
                    .set_ip_protocol(p.ip_protocol().map(str::to_string))
                    .set_from_port(p.from_port())
                    .set_to_port(p.to_port())
                    .set_user_id_group_pairs(Some(pairs))
                    .build()
            })
            .collect();
        if !perms.is_empty() {
            c.ec2
                .revoke_security_group_ingress()
                .group_id(id)
                .set_ip_permissions(Some(perms))
                .send()
                .await
                .map_err(api(
                    "removing the rules that reference",
                    &format!("{sg} from {id}"),
                ))?;
        }
    }
    retry(c.tuning.dependency(), still_in_use, || {
        super::security_group::delete(c, sg)
    })
    .await
}

/// The security groups in `vpcs` whose rules still admit `sg` (what holds it when its
/// deletion keeps failing).
///
/// # Errors
/// The AWS error of the Describe.
pub async fn referencing_groups(
    c: &Clients,
    vpcs: &[String],
    sg: &str,
) -> Result<Vec<String>, AwsError> {
    let out = c
        .ec2
        .describe_security_groups()
        .filters(vpc_filter(vpcs))
        .filters(
            Filter::builder()
                .name("ip-permission.group-id")
                .values(sg)
                .build(),
        )
        .send()
        .await
        .map_err(api("finding the rules that reference", sg))?;
    Ok(out
        .security_groups()
        .iter()
        .filter_map(|g| g.group_id().map(str::to_string))
        .collect())
}

/// Deletes an `available` interface.
///
/// # Errors
/// The AWS error of the Delete.
pub async fn delete_interface(c: &Clients, eni: &str) -> Result<(), AwsError> {
    let r = c
        .ec2
        .delete_network_interface()
        .network_interface_id(eni)
        .send()
        .await
        .map_err(api("deleting network interface", eni));
    gone_is_fine(r, Code::InvalidNetworkInterfaceIdNotFound)
}

/// Deletes what Kubernetes made: load balancers, then their target groups, then their security
/// groups (after the rules that admit them), then interfaces.
///
/// # Errors
/// The first delete that fails, naming what blocks a security group when it stays in use.
pub async fn sweep(tx: &Tx<'_>, l: &Leftovers) -> Result<(), AwsError> {
    let (c, cluster) = (tx.c, tx.cluster);
    let k8s = "(kubernetes)";
    let lbs = l.load_balancers.iter().map(|lb| async {
        tx.report
            .resource(k8s, "load-balancer", Some(&lb.id), Progress::Deleting, None);
        delete_load_balancer(c, lb).await?;
        tx.report
            .resource(k8s, "load-balancer", Some(&lb.id), Progress::Deleted, None);
        Ok::<_, AwsError>(())
    });
    futures::future::try_join_all(lbs).await?;
    let tgs = l.target_groups.iter().map(|tg| async {
        tx.report
            .resource(k8s, "target-group", Some(tg), Progress::Deleting, None);
        delete_target_group(c, tg).await?;
        tx.report
            .resource(k8s, "target-group", Some(tg), Progress::Deleted, None);
        Ok::<_, AwsError>(())
    });
    futures::future::try_join_all(tgs).await?;
    let vpcs: Vec<String> = tx.obs.vpcs.iter().map(|v| v.id.clone()).collect();
    for g in &l.security_groups {
        tx.report
            .resource(k8s, "security-group", Some(g), Progress::Deleting, None);
        match delete_security_group(c, cluster, &vpcs, g).await {
            Err(e @ AwsError::Deadline { .. }) => {
                let mut blockers: Vec<String> = super::interfaces::find(c, "group-id", g)
                    .await
                    .unwrap_or_default()
                    .iter()
                    .map(ToString::to_string)
                    .collect();
                blockers.extend(
                    referencing_groups(c, &vpcs, g)
                        .await
                        .unwrap_or_default()
                        .into_iter()
                        .map(|r| format!("a rule of security group {r} (not this cluster's)")),
                );
                if blockers.is_empty() {
                    blockers.push("nothing provision can see".into());
                }
                return Err(AwsError::unexpected(
                    "deleting the Kubernetes-made security group",
                    g,
                    format!("{e} (blocked by {})", blockers.join("; ")),
                ));
            }
            r => r?,
        }
        tx.report
            .resource(k8s, "security-group", Some(g), Progress::Deleted, None);
    }
    for n in &l.interfaces {
        tx.report
            .resource(k8s, "network-interface", Some(n), Progress::Deleting, None);
        delete_interface(c, n).await?;
        tx.report
            .resource(k8s, "network-interface", Some(n), Progress::Deleted, None);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubernetes_tags_of_this_cluster_only() {
        let t = |k: &'static str, v: &'static str| vec![(k, v)];
        assert!(made_by_kubernetes(
            t("kubernetes.io/cluster/demo", "owned").into_iter(),
            "demo"
        ));
        assert!(made_by_kubernetes(
            t("elbv2.k8s.aws/cluster", "demo").into_iter(),
            "demo"
        ));
        assert!(made_by_kubernetes(
            t("cluster.k8s.amazonaws.com/name", "demo").into_iter(),
            "demo"
        ));
        assert!(!made_by_kubernetes(
            t("kubernetes.io/cluster/demo2", "owned").into_iter(),
            "demo"
        ));
        assert!(!made_by_kubernetes(
            t("elbv2.k8s.aws/cluster", "other").into_iter(),
            "demo"
        ));
        assert!(!made_by_kubernetes(t("team", "demo").into_iter(), "demo"));
        assert!(
            !made_by_kubernetes(
                t("kubernetes.io/cluster/demo", "shared").into_iter(),
                "demo"
            ),
            "shared is used, not owned"
        );
    }
}
