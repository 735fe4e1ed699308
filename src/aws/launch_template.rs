//! The EKS node group's launch template: what makes managed nodes follow the house rules that
//! EKS's default template leaves open (IMDSv2 required, an encrypted root volume), as eksctl's
//! templates do. No instance tags: the nodes belong to the node group, not to our discovery.

use crate::core::events::Progress;
use aws_sdk_ec2::types::{
    LaunchTemplateBlockDeviceMappingRequest, LaunchTemplateEbsBlockDeviceRequest,
    LaunchTemplateHttpTokensState, LaunchTemplateInstanceMetadataEndpointState,
    LaunchTemplateInstanceMetadataOptionsRequest, RequestLaunchTemplateData, ResourceType,
    VolumeType,
};

use super::error::{Code, api, gone_is_fine};
use super::kind::{Apply, Cx, Scope, Tx};
use super::{AwsError, Clients, list_tagged, logical, tag_spec};
use crate::core::kinds::launch_template::{LaunchTemplate, ObsTemplate};
use crate::core::kinds::{Action, Change, Inputs, NoDrift, Output, Plan};

impl Apply for LaunchTemplate {
    async fn observe(c: &Clients, scope: &Scope<'_>) -> Result<Vec<ObsTemplate>, AwsError> {
        if !scope.eks() {
            return Ok(Vec::new());
        }
        let items = list_tagged!(
            c,
            describe_launch_templates,
            scope.cluster,
            "launch templates",
            tags
        );
        Ok(items
            .map(|t| ObsTemplate {
                id: t.launch_template_id().unwrap_or_default().into(),
                logical: logical(t.tags()),
                name: t.launch_template_name().unwrap_or_default().into(),
            })
            .collect())
    }

    async fn apply(
        &self,
        cx: &Cx<'_>,
        id: &str,
        change: &Change<NoDrift>,
        inputs: &Inputs,
    ) -> Result<Output, AwsError> {
        if let (Action::Keep, Some(t)) = (change.action, &change.aws_id) {
            cx.report
                .resource(id, Self::NAME, Some(t), Progress::Existing, None);
            return Ok(Output::Id(t.clone()));
        }
        cx.report.resource(
            id,
            Self::NAME,
            None,
            Progress::Creating,
            Some(self.name.clone()),
        );
        // The nodes' agents for the add-ons: node_exporter, Fluent Bit.
        let user_data = self.agents.render(inputs).map_err(|e| {
            AwsError::unexpected("preparing the user data of", &self.name, e.to_string())
        })?;
        let t = create(
            cx.c,
            &self.name,
            self.disk_gb,
            user_data.as_deref(),
            &cx.tags(id, false),
        )
        .await?;
        cx.report.resource(
            id,
            Self::NAME,
            Some(&t),
            Progress::Created,
            Some(format!(
                "IMDSv2 required, {} GiB encrypted gp3",
                self.disk_gb
            )),
        );
        Ok(Output::Id(t))
    }

    async fn delete(tx: &Tx<'_>) -> Result<(), AwsError> {
        for t in &tx.obs.launch_templates {
            tx.report
                .deleting(t.logical.as_deref(), Self::NAME, &t.id, delete(tx.c, &t.id))
                .await?;
        }
        Ok(())
    }
}

/// The root device of the EKS-optimized Amazon Linux 2023 images.
const ROOT_DEVICE: &str = "/dev/xvda";

/// The template's data: IMDSv2 only, with a hop limit of 2 (what EKS sets for AL2023 node
/// groups, so that the node's own containers reach it; Pod Identity needs no IMDS at all), and
/// an encrypted gp3 root volume of `disk_gb`.
pub fn data(disk_gb: u32, user_data: Option<&str>) -> RequestLaunchTemplateData {
    use base64::Engine as _;
    RequestLaunchTemplateData::builder()
        .set_user_data(user_data.map(|u| base64::engine::general_purpose::STANDARD.encode(u)))
        .metadata_options(
            LaunchTemplateInstanceMetadataOptionsRequest::builder()
                .http_tokens(LaunchTemplateHttpTokensState::Required)
                .http_put_response_hop_limit(2)
                .http_endpoint(LaunchTemplateInstanceMetadataEndpointState::Enabled)
                .build(),
        )
        .block_device_mappings(
            LaunchTemplateBlockDeviceMappingRequest::builder()
                .device_name(ROOT_DEVICE)
                .ebs(
                    LaunchTemplateEbsBlockDeviceRequest::builder()
                        .volume_size(i32::try_from(disk_gb).unwrap_or(20))
                        .volume_type(VolumeType::Gp3)
                        .encrypted(true)
                        .delete_on_termination(true)
                        .build(),
                )
                .build(),
        )
        .build()
}

/// Creates the template (tagged); returns its id.
///
/// # Errors
/// The AWS error of the call.
pub async fn create(
    c: &Clients,
    name: &str,
    disk_gb: u32,
    user_data: Option<&str>,
    tags: &[(String, String)],
) -> Result<String, AwsError> {
    let out = c
        .ec2
        .create_launch_template()
        .launch_template_name(name)
        .version_description("provision: IMDSv2 required, encrypted gp3 root volume")
        .launch_template_data(data(disk_gb, user_data))
        .tag_specifications(tag_spec(ResourceType::LaunchTemplate, tags))
        .send()
        .await
        .map_err(api("creating launch template", name))?;
    out.launch_template()
        .and_then(|t| t.launch_template_id())
        .map(str::to_string)
        .ok_or_else(|| {
            AwsError::unexpected("creating launch template", name, "no id in the answer")
        })
}

/// # Errors
/// The AWS error of the call (a missing template is fine).
pub async fn delete(c: &Clients, id: &str) -> Result<(), AwsError> {
    gone_is_fine(
        c.ec2
            .delete_launch_template()
            .launch_template_id(id)
            .send()
            .await
            .map_err(api("deleting launch template", id)),
        Code::InvalidLaunchTemplateIdNotFound,
    )
}
