//! Finding everything a cluster owns: one batched, tag-filtered Describe per resource type,
//! all in flight at once, plus the IAM and SSM objects whose names derive from the cluster.

use aws_sdk_ec2::types::Filter;

use super::error::{api, is_access_denied};
use super::{AwsError, Clients, cluster_filter, tag_value};
use crate::core::graph;
use crate::core::plan::{
    ObsAddress, ObsEks, ObsIam, ObsIgw, ObsInstance, ObsNat, ObsNodegroup, ObsProfile,
    ObsRouteTable, ObsRule, ObsSecret, ObsSg, ObsSubnet, ObsTemplate, ObsVpc, Observed,
};
use crate::core::tags::{CLUSTER_TAG, RESOURCE_TAG, node_role_name, role_name};

/// What to look up besides the tagged EC2 resources.
#[derive(Debug, Clone)]
pub struct Scope<'a> {
    pub cluster: &'a str,
    /// Also read the VPC's DNS attributes (two more calls; `up` and `plan` need them, `down` not).
    pub vpc_attributes: bool,
    /// `Some("kubeadm")` or `Some("eks")`: only that flavour's IAM, SSM and EKS objects; `None`
    /// (for `down`, which has no spec): every flavour's.
    pub kind: Option<&'a str>,
    /// Also look for what Kubernetes made in the VPC (`down`, `plan --destroy`).
    pub leftovers: bool,
    /// Look for the add-ons' role, profile and secret (always when `kind` is `None`).
    pub addons: bool,
}

impl Scope<'_> {
    fn kubeadm(&self) -> bool {
        self.kind.is_none_or(|k| k == "kubeadm")
    }

    fn eks(&self) -> bool {
        self.kind.is_none_or(|k| k == "eks")
    }

    fn addons(&self) -> bool {
        self.addons || self.kind.is_none()
    }
}

/// The roles whose names derive from the cluster, by logical id, for a scope.
fn role_names(scope: &Scope<'_>, region: &str) -> Vec<(&'static str, String)> {
    let mut out = vec![(graph::NODE_ROLE, node_role_name(scope.cluster, region))];
    if scope.eks() {
        out.push((
            graph::CLUSTER_ROLE,
            role_name(scope.cluster, region, "cluster"),
        ));
        out.push((
            graph::EBS_CSI_ROLE,
            role_name(scope.cluster, region, "ebs-csi"),
        ));
    }
    if scope.addons() {
        out.push((
            graph::ADDONS_ROLE,
            role_name(scope.cluster, region, "addons"),
        ));
    }
    out
}

/// Describes everything tagged with the cluster.
///
/// # Errors
/// The first Describe that fails.
pub async fn observe(c: &Clients, scope: &Scope<'_>) -> Result<Observed, AwsError> {
    let cluster = scope.cluster;
    let role_name = node_role_name(cluster, &c.region);
    let names = role_names(scope, &c.region);
    let kubeadm = scope.kubeadm();
    let eks = scope.eks();
    let (
        vpcs,
        subnets,
        igws,
        route_tables,
        security_groups,
        instances,
        roles,
        (node_profile, secret, ca_policy),
        (addons_profile, addon_secret, addons_policy, log_writer_secret),
        (addresses, nat_gateways, launch_templates),
        (eks_cluster, nodegroup, eks_denied),
        node_log_policy,
    ) = tokio::try_join!(
        vpcs(c, cluster),
        subnets(c, cluster),
        igws(c, cluster),
        route_tables(c, cluster),
        security_groups(c, cluster),
        instances(c, cluster),
        roles(c, cluster, &names, scope.kind == Some("eks")),
        async {
            if !kubeadm {
                return Ok((None, None, None));
            }
            tokio::try_join!(
                super::iam::get_instance_profile(c, &role_name, cluster),
                secret(c, cluster),
                super::iam::get_role_policy(c, &role_name, graph::CA_ACCESS_POLICY),
            )
        },
        async {
            if !scope.addons() {
                return Ok((None, None, None, None));
            }
            let name = role_name_for(cluster, &c.region, "addons");
            let parameter = crate::core::tags::addons_parameter_name(cluster);
            let writer = crate::core::tags::log_writer_parameter_name(cluster);
            tokio::try_join!(
                super::iam::get_instance_profile(c, &name, cluster),
                named_secret(c, cluster, &parameter),
                super::iam::get_role_policy(c, &name, graph::ADDONS_ACCESS_POLICY),
                named_secret(c, cluster, &writer),
            )
        },
        async {
            if !eks {
                return Ok((Vec::new(), Vec::new(), Vec::new()));
            }
            tokio::try_join!(
                addresses(c, cluster),
                nat_gateways(c, cluster),
                launch_templates(c, cluster)
            )
        },
        async {
            if !eks {
                return Ok((None, None, None));
            }
            eks_cluster(c, cluster, scope.kind.is_none()).await
        },
        async {
            if !(eks && scope.addons()) {
                return Ok(None);
            }
            super::iam::get_role_policy(c, &role_name, graph::NODE_LOG_POLICY).await
        },
    )?;
    let mut obs = Observed {
        vpcs,
        subnets,
        igws,
        route_tables,
        security_groups,
        instances,
        roles,
        profiles: [
            node_profile.map(|mut p| {
                p.logical = graph::NODE_PROFILE.into();
                p
            }),
            addons_profile.map(|mut p| {
                p.logical = graph::ADDONS_PROFILE.into();
                p
            }),
        ]
        .into_iter()
        .flatten()
        .collect(),
        secret,
        addon_secret,
        log_writer_secret,
        addons_policy,
        node_log_policy,
        ca_policy,
        addresses,
        nat_gateways,
        eks: eks_cluster,
        nodegroup,
        launch_templates,
        leftovers: Default::default(),
        warnings: Vec::new(),
    };
    if let Some(e) = eks_denied {
        // Roles only an EKS cluster of ours has: there may well be a cluster we cannot see, and
        // deleting its roles and network under it would leave it broken and still billed.
        if obs.roles.iter().any(|r| {
            r.owned && (r.logical == graph::CLUSTER_ROLE || r.logical == graph::EBS_CSI_ROLE)
        }) {
            return Err(AwsError::unexpected(
                "looking for the EKS cluster",
                cluster,
                format!(
                    "{e}; its IAM roles exist, so it may too: `down` needs eks:DescribeCluster (and the other EKS permissions) to remove it"
                ),
            ));
        }
        obs.warnings.push(format!(
            "could not look for an EKS cluster named {cluster} ({e}); if there is one, delete it first"
        ));
    }
    if scope.vpc_attributes {
        for v in &mut obs.vpcs {
            let (support, hostnames) = super::network::vpc_dns_attributes(c, &v.id).await?;
            v.dns_support = Some(support);
            v.dns_hostnames = Some(hostnames);
        }
    }
    if scope.leftovers {
        let vpcs: Vec<String> = obs.vpcs.iter().map(|v| v.id.clone()).collect();
        let subnets: Vec<String> = obs.subnets.iter().map(|s| s.id.clone()).collect();
        match super::leftovers::find(c, cluster, &vpcs, &subnets).await {
            Ok(l) => obs.leftovers = l,
            Err(e) if is_access_denied(&e) => obs.warnings.push(format!(
                "could not look for load balancers Kubernetes made in the VPC ({e}); if there are any, the VPC's deletion will name them"
            )),
            Err(e) => return Err(e),
        }
    }
    Ok(obs)
}

/// The roles of `names` that exist (with their attached policies when `policies`).
async fn roles(
    c: &Clients,
    cluster: &str,
    names: &[(&'static str, String)],
    policies: bool,
) -> Result<Vec<ObsIam>, AwsError> {
    let found = futures::future::try_join_all(names.iter().map(|(logical, name)| async move {
        let Some(mut r) = super::iam::get_role(c, name, cluster).await? else {
            return Ok::<_, AwsError>(None);
        };
        r.logical = logical.to_string();
        if policies && r.owned {
            r.policies = Some(super::iam::attached_policies(c, name).await?);
        }
        Ok(Some(r))
    }))
    .await?;
    Ok(found.into_iter().flatten().collect())
}

async fn addresses(c: &Clients, cluster: &str) -> Result<Vec<ObsAddress>, AwsError> {
    let out = c
        .ec2
        .describe_addresses()
        .filters(cluster_filter(cluster))
        .send()
        .await
        .map_err(api("listing", "Elastic IPs"))?;
    Ok(out
        .addresses()
        .iter()
        .filter(|a| owned(a.tags(), cluster))
        .map(|a| ObsAddress {
            allocation_id: a.allocation_id().unwrap_or_default().into(),
            logical: logical(a.tags()),
            public_ip: a.public_ip().unwrap_or_default().into(),
            association_id: a.association_id().map(str::to_string),
        })
        .collect())
}

async fn nat_gateways(c: &Clients, cluster: &str) -> Result<Vec<ObsNat>, AwsError> {
    let items = c
        .ec2
        .describe_nat_gateways()
        .filter(cluster_filter(cluster))
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .map_err(api("listing", "NAT gateways"))?;
    Ok(items
        .into_iter()
        .filter(|n| owned(n.tags(), cluster))
        .map(|n| ObsNat {
            id: n.nat_gateway_id().unwrap_or_default().into(),
            logical: logical(n.tags()),
            state: n
                .state()
                .map(|s| s.as_str().to_string())
                .unwrap_or_default(),
            subnet_id: n.subnet_id().unwrap_or_default().into(),
            interfaces: n
                .nat_gateway_addresses()
                .iter()
                .filter_map(|a| a.network_interface_id().map(str::to_string))
                .collect(),
        })
        .collect())
}

/// The EKS cluster of the cluster's name and, if it exists, its add-ons, access entries and
/// our node group (three calls in flight at once).
async fn eks_cluster(
    c: &Clients,
    cluster: &str,
    tolerate_denied: bool,
) -> Result<(Option<ObsEks>, Option<ObsNodegroup>, Option<String>), AwsError> {
    let found = match super::eks::describe_cluster(c, cluster).await {
        Ok(f) => f,
        // `down` of a kubeadm cluster by someone without EKS permissions. Only DescribeCluster:
        // a denial after the cluster is found is an error.
        Err(e) if tolerate_denied && is_access_denied(&e) => {
            return Ok((None, None, Some(e.to_string())));
        }
        Err(e) => return Err(e),
    };
    let Some(e) = found else {
        return Ok((None, None, None));
    };
    let owned = e.tags.get(CLUSTER_TAG).map(String::as_str) == Some(cluster);
    let mut obs = ObsEks {
        name: e.name.clone(),
        arn: e.arn.clone(),
        status: e.status.clone(),
        version: e.version.clone().unwrap_or_default(),
        endpoint: e.endpoint.clone(),
        ca_data: e.ca_data.clone(),
        owned,
        addons: Vec::new(),
        access_entries: Vec::new(),
        cluster_sg: None,
    };
    // Add-ons, access entries and node groups exist only on a cluster that has become ACTIVE;
    // while it is CREATING, `up` waits and then looks itself.
    if !owned || !matches!(e.status.as_str(), "ACTIVE" | "UPDATING") {
        return Ok((Some(obs), None, None));
    }
    let ng_name = graph::nodegroup_name(cluster);
    let (addons, entries, ng, cluster_sg) = tokio::try_join!(
        super::eks::list_addons(c, cluster),
        super::eks::observe_access(c, cluster, cluster),
        super::eks::describe_nodegroup(c, cluster, &ng_name),
        async {
            match &e.cluster_sg {
                Some(id) => group_by_id(c, id).await,
                None => Ok(None),
            }
        },
    )?;
    obs.addons = addons;
    obs.access_entries = entries;
    obs.cluster_sg = cluster_sg;
    let ng = ng.map(|n| ObsNodegroup {
        owned: n.tags.get(CLUSTER_TAG).map(String::as_str) == Some(cluster),
        name: n.name,
        status: n.status,
        min: n.min.unwrap_or_default().max(0) as u32,
        max: n.max.unwrap_or_default().max(0) as u32,
        desired: n.desired.unwrap_or_default().max(0) as u32,
        instance_types: n.instance_types,
        spot: n.spot,
        labels: n.labels.into_iter().collect(),
        issues: n.issues,
    });
    Ok((Some(obs), ng, None))
}

/// Every item of a tag-filtered, paginated EC2 Describe (one call per page).
macro_rules! list_tagged {
    ($c:expr, $op:ident, $cluster:expr, $what:expr) => {
        $c.ec2
            .$op()
            .filters(cluster_filter($cluster))
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(api("listing", $what))?
    };
}

/// Whether an EC2 tag list carries our cluster tag. The tag filter already asked for it; this
/// checks again on our side, so that `down` never acts on an answer that ignored the filter (the
/// emulator ignores it for NAT gateways).
fn owned(tags: &[aws_sdk_ec2::types::Tag], cluster: &str) -> bool {
    tag_value(tags, CLUSTER_TAG) == Some(cluster)
}

fn logical(tags: &[aws_sdk_ec2::types::Tag]) -> Option<String> {
    tag_value(tags, RESOURCE_TAG).map(str::to_string)
}

async fn vpcs(c: &Clients, cluster: &str) -> Result<Vec<ObsVpc>, AwsError> {
    let items = list_tagged!(c, describe_vpcs, cluster, "VPCs");
    Ok(items
        .into_iter()
        .filter(|v| owned(v.tags(), cluster))
        .map(|v| ObsVpc {
            id: v.vpc_id().unwrap_or_default().into(),
            logical: logical(v.tags()),
            cidr: v.cidr_block().unwrap_or_default().into(),
            dns_support: None,
            dns_hostnames: None,
        })
        .collect())
}

async fn subnets(c: &Clients, cluster: &str) -> Result<Vec<ObsSubnet>, AwsError> {
    let items = list_tagged!(c, describe_subnets, cluster, "subnets");
    Ok(items
        .into_iter()
        .filter(|s| owned(s.tags(), cluster))
        .map(|s| ObsSubnet {
            id: s.subnet_id().unwrap_or_default().into(),
            logical: logical(s.tags()),
            vpc_id: s.vpc_id().unwrap_or_default().into(),
            cidr: s.cidr_block().unwrap_or_default().into(),
            az: s.availability_zone().unwrap_or_default().into(),
            map_public_ip: s.map_public_ip_on_launch().unwrap_or(false),
        })
        .collect())
}

async fn igws(c: &Clients, cluster: &str) -> Result<Vec<ObsIgw>, AwsError> {
    let items = list_tagged!(c, describe_internet_gateways, cluster, "internet gateways");
    Ok(items
        .into_iter()
        .filter(|g| owned(g.tags(), cluster))
        .map(|g| ObsIgw {
            id: g.internet_gateway_id().unwrap_or_default().into(),
            logical: logical(g.tags()),
            attached_vpcs: g
                .attachments()
                .iter()
                .filter_map(|a| a.vpc_id().map(str::to_string))
                .collect(),
        })
        .collect())
}

async fn route_tables(c: &Clients, cluster: &str) -> Result<Vec<ObsRouteTable>, AwsError> {
    let items = list_tagged!(c, describe_route_tables, cluster, "route tables");
    Ok(items
        .into_iter()
        .filter(|r| owned(r.tags(), cluster))
        .map(|r| ObsRouteTable {
            id: r.route_table_id().unwrap_or_default().into(),
            logical: logical(r.tags()),
            vpc_id: r.vpc_id().unwrap_or_default().into(),
            default_route: r
                .routes()
                .iter()
                .find(|x| x.destination_cidr_block() == Some("0.0.0.0/0"))
                .and_then(|x| x.gateway_id().or(x.nat_gateway_id()).map(str::to_string)),
            associations: r
                .associations()
                .iter()
                .filter(|a| !a.main().unwrap_or(false))
                .filter_map(|a| {
                    Some((
                        a.route_table_association_id()?.to_string(),
                        a.subnet_id()?.to_string(),
                    ))
                })
                .collect(),
        })
        .collect())
}

/// One security group by id (the EKS cluster's, which is not ours), with its rules.
async fn group_by_id(c: &Clients, id: &str) -> Result<Option<ObsSg>, AwsError> {
    let out = c
        .ec2
        .describe_security_groups()
        .group_ids(id)
        .send()
        .await
        .map_err(api("describing", id));
    Ok(super::error::absent_if(out, "InvalidGroup.NotFound")?
        .and_then(|o| o.security_groups().first().map(obs_sg)))
}

async fn security_groups(c: &Clients, cluster: &str) -> Result<Vec<ObsSg>, AwsError> {
    let items = list_tagged!(c, describe_security_groups, cluster, "security groups");
    Ok(items
        .iter()
        .filter(|g| owned(g.tags(), cluster))
        .map(obs_sg)
        .collect())
}

fn obs_sg(g: &aws_sdk_ec2::types::SecurityGroup) -> ObsSg {
    {
        {
            let mut rules = Vec::new();
            for p in g.ip_permissions() {
                let proto = p.ip_protocol().unwrap_or_default().to_string();
                let (from, to) = (p.from_port().unwrap_or(-1), p.to_port().unwrap_or(-1));
                for r in p.ip_ranges() {
                    rules.push(ObsRule {
                        protocol: proto.clone(),
                        from_port: from,
                        to_port: to,
                        source: r.cidr_ip().unwrap_or_default().into(),
                    });
                }
                for r in p.user_id_group_pairs() {
                    rules.push(ObsRule {
                        protocol: proto.clone(),
                        from_port: from,
                        to_port: to,
                        source: r.group_id().unwrap_or_default().into(),
                    });
                }
            }
            ObsSg {
                id: g.group_id().unwrap_or_default().into(),
                logical: logical(g.tags()),
                vpc_id: g.vpc_id().unwrap_or_default().into(),
                rules,
            }
        }
    }
}

async fn instances(c: &Clients, cluster: &str) -> Result<Vec<ObsInstance>, AwsError> {
    let states = Filter::builder()
        .name("instance-state-name")
        .set_values(Some(
            [
                "pending",
                "running",
                "stopping",
                "stopped",
                "shutting-down",
                "terminated",
            ]
            .map(String::from)
            .to_vec(),
        ))
        .build();
    let pages = c
        .ec2
        .describe_instances()
        .filters(cluster_filter(cluster))
        .filters(states)
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await;
    let reservations = pages.map_err(api("listing", "instances"))?;
    Ok(reservations
        .iter()
        .flat_map(|r| r.instances())
        .filter(|i| owned(i.tags(), cluster))
        .map(obs_instance)
        .collect())
}

pub(crate) fn obs_instance(i: &aws_sdk_ec2::types::Instance) -> ObsInstance {
    ObsInstance {
        id: i.instance_id().unwrap_or_default().into(),
        logical: logical(i.tags()),
        state: i
            .state()
            .and_then(|s| s.name())
            .map(|n| n.as_str().to_string())
            .unwrap_or_default(),
        subnet_id: i.subnet_id().map(str::to_string),
        private_ip: i.private_ip_address().map(str::to_string),
        public_ip: i.public_ip_address().map(str::to_string),
    }
}

fn role_name_for(cluster: &str, region: &str, suffix: &str) -> String {
    role_name(cluster, region, suffix)
}

async fn secret(c: &Clients, cluster: &str) -> Result<Option<ObsSecret>, AwsError> {
    named_secret(
        c,
        cluster,
        &crate::core::tags::secret_parameter_name(cluster),
    )
    .await
}

/// An SSM parameter of ours, found by name, with whether it carries our tag.
async fn named_secret(
    c: &Clients,
    cluster: &str,
    name: &str,
) -> Result<Option<ObsSecret>, AwsError> {
    let name = name.to_string();
    Ok(super::secret::owner_tag(c, &name)
        .await?
        .map(|owner| ObsSecret {
            owned: owner.as_deref() == Some(cluster),
            name,
        }))
}

/// IAM tag lists → whether the cluster tag is ours.
pub(crate) fn iam_owned(tags: &[aws_sdk_iam::types::Tag], cluster: &str) -> bool {
    tags.iter()
        .any(|t| t.key() == CLUSTER_TAG && t.value() == cluster)
}

pub(crate) fn obs_role(r: &aws_sdk_iam::types::Role, cluster: &str) -> ObsIam {
    ObsIam {
        logical: String::new(),
        policies: None,
        name: r.role_name().into(),
        arn: r.arn().into(),
        owned: iam_owned(r.tags(), cluster),
    }
}

pub(crate) fn obs_profile(p: &aws_sdk_iam::types::InstanceProfile, cluster: &str) -> ObsProfile {
    ObsProfile {
        logical: String::new(),
        name: p.instance_profile_name().into(),
        arn: p.arn().into(),
        roles: p
            .roles()
            .iter()
            .map(|r| r.role_name().to_string())
            .collect(),
        owned: iam_owned(p.tags(), cluster),
    }
}

async fn launch_templates(c: &Clients, cluster: &str) -> Result<Vec<ObsTemplate>, AwsError> {
    let items = list_tagged!(c, describe_launch_templates, cluster, "launch templates");
    Ok(items
        .into_iter()
        .filter(|t| owned(t.tags(), cluster))
        .map(|t| ObsTemplate {
            id: t.launch_template_id().unwrap_or_default().into(),
            logical: logical(t.tags()),
            name: t.launch_template_name().unwrap_or_default().into(),
        })
        .collect())
}
