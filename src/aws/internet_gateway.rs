//! The internet gateway.

use crate::core::events::Progress;
use aws_sdk_ec2::types::ResourceType;

use super::error::{Code, api, gone_is_fine};
use super::kind::{Apply, Cx, Scope, Tx};
use super::retry::{Backoff, is_eventual_not_found, retry};
use super::{AwsError, Clients, list_tagged, logical, tag_spec};
use crate::core::kinds::internet_gateway::{Drift, InternetGateway, ObsIgw};
use crate::core::kinds::{Action, Change, Inputs, Output, Plan};

impl Apply for InternetGateway {
    async fn observe(c: &Clients, scope: &Scope<'_>) -> Result<Vec<ObsIgw>, AwsError> {
        let items = list_tagged!(
            c,
            describe_internet_gateways,
            scope.cluster,
            "internet gateways",
            tags
        );
        Ok(items
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

    async fn apply(
        &self,
        cx: &Cx<'_>,
        id: &str,
        change: &Change<Drift>,
        inputs: &Inputs,
    ) -> Result<Output, AwsError> {
        let vpc = inputs.id(&self.vpc)?;
        if let (Action::Update | Action::Keep, Some(igw)) = (change.action, &change.aws_id) {
            if change.drifts.contains(&Drift::Attach) {
                attach(cx.c, igw, vpc).await?;
                cx.report.resource(
                    id,
                    Self::NAME,
                    Some(igw),
                    Progress::Updated,
                    Some(format!("attached to {vpc}")),
                );
            } else {
                cx.report
                    .resource(id, Self::NAME, Some(igw), Progress::Existing, None);
            }
            return Ok(Output::Id(igw.clone()));
        }
        cx.report
            .resource(id, Self::NAME, None, Progress::Creating, None);
        let igw = create(cx.c, &cx.tags(id, true)).await?;
        attach(cx.c, &igw, vpc).await?;
        cx.report.resource(
            id,
            Self::NAME,
            Some(&igw),
            Progress::Created,
            Some(format!("attached to {vpc}")),
        );
        Ok(Output::Id(igw))
    }

    async fn delete(tx: &Tx<'_>) -> Result<(), AwsError> {
        for g in &tx.obs.igws {
            let vpc = g.attached_vpcs.first().cloned().unwrap_or_default();
            let blocked = super::interfaces::delete_with_blockers(tx.c, "vpc-id", &vpc, || {
                delete(tx.c, &g.id, &g.attached_vpcs)
            });
            tx.report
                .deleting(g.logical.as_deref(), Self::NAME, &g.id, blocked)
                .await?;
        }
        Ok(())
    }
}

/// # Errors
/// The AWS error of the failing call.
pub async fn create(c: &Clients, tags: &[(String, String)]) -> Result<String, AwsError> {
    let out = c
        .ec2
        .create_internet_gateway()
        .tag_specifications(tag_spec(ResourceType::InternetGateway, tags))
        .send()
        .await
        .map_err(api("creating", "internet gateway"))?;
    out.internet_gateway()
        .and_then(|g| g.internet_gateway_id())
        .map(str::to_string)
        .ok_or_else(|| AwsError::unexpected("creating", "internet gateway", "no id in the answer"))
}

/// # Errors
/// The AWS error of the failing call.
pub async fn attach(c: &Clients, igw: &str, vpc: &str) -> Result<(), AwsError> {
    let r = retry(Backoff::EVENTUAL, is_eventual_not_found, || async {
        c.ec2
            .attach_internet_gateway()
            .internet_gateway_id(igw)
            .vpc_id(vpc)
            .send()
            .await
            .map_err(api("attaching", &format!("{igw} to {vpc}")))
    })
    .await;
    match r {
        Ok(_) => Ok(()),
        // An attach the SDK sent again after a lost answer: the first one took (AWS names the
        // VPC the gateway is attached to; another VPC is a real conflict).
        Err(e) if *e.code() == Code::ResourceAlreadyAssociated && e.message().contains(vpc) => {
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// Detaches the gateway from every VPC, then deletes it.
///
/// # Errors
/// The AWS error of the failing call.
pub async fn delete(c: &Clients, igw: &str, vpcs: &[String]) -> Result<(), AwsError> {
    for vpc in vpcs {
        let r = c
            .ec2
            .detach_internet_gateway()
            .internet_gateway_id(igw)
            .vpc_id(vpc)
            .send()
            .await
            .map_err(api("detaching", &format!("{igw} from {vpc}")));
        gone_is_fine(r, Code::GatewayNotAttached)?;
    }
    gone_is_fine(
        c.ec2
            .delete_internet_gateway()
            .internet_gateway_id(igw)
            .send()
            .await
            .map_err(api("deleting", igw)),
        Code::InvalidInternetGatewayIdNotFound,
    )
}
