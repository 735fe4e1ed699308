//! Route tables, their default route and their subnet associations.

use super::error::{Code, api, gone_is_fine};
use super::kind::{Apply, Cx, Scope, Tx};
use super::retry::{Backoff, is_eventual_not_found, retry};
use super::{AwsError, Clients, list_tagged, logical, tag_spec};
use crate::core::events::Progress;
use crate::core::kinds::route_table::{Drift, ObsRouteTable, RouteTable};
use crate::core::kinds::{Action, Change, Inputs, Output, Plan};
use aws_sdk_ec2::types::ResourceType;

impl Apply for RouteTable {
    async fn observe(c: &Clients, scope: &Scope<'_>) -> Result<Vec<ObsRouteTable>, AwsError> {
        let items = list_tagged!(
            c,
            describe_route_tables,
            scope.cluster,
            "route tables",
            tags
        );
        Ok(items
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

    async fn apply(
        &self,
        cx: &Cx<'_>,
        id: &str,
        change: &Change<Drift>,
        inputs: &Inputs,
    ) -> Result<Output, AwsError> {
        let c = cx.c;
        let gateway = inputs.id(&self.gateway)?;
        let (rt, route, associate): (String, Option<Option<String>>, Vec<String>) =
            match (change.action, &change.aws_id) {
                (Action::Update | Action::Keep, Some(rt)) => {
                    let mut route = None;
                    let mut associate = Vec::new();
                    for d in &change.drifts {
                        match d {
                            Drift::DefaultRoute { from } => route = Some(from.clone()),
                            Drift::Associate(s) => associate.extend(s.iter().cloned()),
                        }
                    }
                    (rt.clone(), route, associate)
                }
                _ => {
                    cx.report
                        .resource(id, Self::NAME, None, Progress::Creating, None);
                    let vpc = inputs.id(&self.vpc)?;
                    let rt = create(c, vpc, &cx.tags(id, true)).await?;
                    (rt, Some(None), self.subnets.clone())
                }
            };
        let mut changed = Vec::new();
        match route {
            Some(Some(other)) => {
                replace_default_route(c, &rt, gateway).await?;
                changed.push(format!("default route moved from {other}"));
            }
            Some(None) => {
                create_default_route(c, &rt, gateway).await?;
                changed.push("default route".to_string());
            }
            None => {}
        }
        let subnets: Vec<&str> = associate
            .iter()
            .map(|s| inputs.id(s))
            .collect::<Result<_, _>>()?;
        futures::future::try_join_all(subnets.iter().map(|s| associate_subnet(c, &rt, s))).await?;
        if !subnets.is_empty() {
            changed.push(format!("{} association(s)", subnets.len()));
        }
        let action = match change.action {
            Action::Create => Progress::Created,
            _ if changed.is_empty() => Progress::Existing,
            _ => Progress::Updated,
        };
        cx.report.resource(
            id,
            Self::NAME,
            Some(&rt),
            action,
            (!changed.is_empty()).then(|| changed.join(", ")),
        );
        Ok(Output::Id(rt))
    }

    async fn delete(tx: &Tx<'_>) -> Result<(), AwsError> {
        for r in &tx.obs.route_tables {
            tx.report
                .deleting(
                    r.logical.as_deref(),
                    Self::NAME,
                    &r.id,
                    delete(tx.c, &r.id, &r.associations),
                )
                .await?;
        }
        Ok(())
    }
}

/// # Errors
/// The AWS error of the failing call.
pub async fn create(c: &Clients, vpc: &str, tags: &[(String, String)]) -> Result<String, AwsError> {
    let out = retry(Backoff::EVENTUAL, is_eventual_not_found, || async {
        c.ec2
            .create_route_table()
            .vpc_id(vpc)
            .tag_specifications(tag_spec(ResourceType::RouteTable, tags))
            .send()
            .await
            .map_err(api("creating", &format!("route table in {vpc}")))
    })
    .await?;
    out.route_table()
        .and_then(|r| r.route_table_id())
        .map(str::to_string)
        .ok_or_else(|| AwsError::unexpected("creating", "route table", "no id in the answer"))
}

fn is_nat(gateway: &str) -> bool {
    gateway.starts_with("nat-")
}

/// # Errors
/// The AWS error of the failing call.
pub async fn create_default_route(c: &Clients, rt: &str, gateway: &str) -> Result<(), AwsError> {
    retry(Backoff::EVENTUAL, is_eventual_not_found, || async {
        let req = c
            .ec2
            .create_route()
            .route_table_id(rt)
            .destination_cidr_block("0.0.0.0/0");
        let req = if is_nat(gateway) {
            req.nat_gateway_id(gateway)
        } else {
            req.gateway_id(gateway)
        };
        req.send()
            .await
            .map_err(api("adding the default route to", rt))
    })
    .await?;
    Ok(())
}

/// Points an existing 0.0.0.0/0 route (to another target, or a blackhole) at the gateway.
///
/// # Errors
/// The AWS error of the failing call.
pub async fn replace_default_route(c: &Clients, rt: &str, gateway: &str) -> Result<(), AwsError> {
    let req = c
        .ec2
        .replace_route()
        .route_table_id(rt)
        .destination_cidr_block("0.0.0.0/0");
    let req = if is_nat(gateway) {
        req.nat_gateway_id(gateway)
    } else {
        req.gateway_id(gateway)
    };
    req.send()
        .await
        .map_err(api("replacing the default route of", rt))?;
    Ok(())
}

/// # Errors
/// The AWS error of the failing call.
pub async fn associate_subnet(c: &Clients, rt: &str, subnet: &str) -> Result<(), AwsError> {
    retry(Backoff::EVENTUAL, is_eventual_not_found, || async {
        c.ec2
            .associate_route_table()
            .route_table_id(rt)
            .subnet_id(subnet)
            .send()
            .await
            .map_err(api("associating", &format!("{rt} with {subnet}")))
    })
    .await?;
    Ok(())
}

/// Removes a route table's subnet associations, then the table (its routes go with it).
///
/// # Errors
/// The AWS error of the failing call.
pub async fn delete(
    c: &Clients,
    rt: &str,
    associations: &[(String, String)],
) -> Result<(), AwsError> {
    for (assoc, subnet) in associations {
        let r = c
            .ec2
            .disassociate_route_table()
            .association_id(assoc)
            .send()
            .await
            .map_err(api("disassociating", &format!("{rt} from {subnet}")));
        gone_is_fine(r, Code::InvalidAssociationIdNotFound)?;
    }
    gone_is_fine(
        c.ec2
            .delete_route_table()
            .route_table_id(rt)
            .send()
            .await
            .map_err(api("deleting", rt)),
        Code::InvalidRouteTableIdNotFound,
    )
}
