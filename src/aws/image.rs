//! The image instances launch from (a lookup).

use super::error::api;
use super::kind::{Apply, Cx, Scope, Tx};
use super::{AwsError, Clients};
use crate::core::events::Progress;
use crate::core::kinds::image::{Image, ImageInfo};
use crate::core::kinds::{Action, Change, Inputs, NoDrift, NoState, Output, Plan};
use crate::core::spec::{AmiSource, Arch};

impl Apply for Image {
    async fn observe(_c: &Clients, _scope: &Scope<'_>) -> Result<NoState, AwsError> {
        Ok(NoState)
    }

    async fn apply(
        &self,
        cx: &Cx<'_>,
        id: &str,
        change: &Change<NoDrift>,
        _inputs: &Inputs,
    ) -> Result<Output, AwsError> {
        if change.action != Action::Read {
            cx.report.resource(
                id,
                Self::NAME,
                None,
                Progress::Skipped,
                Some("every instance exists".into()),
            );
            return Ok(Output::Nothing);
        }
        let img = lookup(cx.c, &self.source, self.arch, self.field).await?;
        cx.report
            .resource(id, Self::NAME, Some(&img.id), Progress::Read, None);
        Ok(Output::Image(img))
    }

    async fn delete(_tx: &Tx<'_>) -> Result<(), AwsError> {
        Ok(())
    }
}

/// Resolves the AMI (through SSM if asked) and checks it fits the instance architecture.
///
/// # Errors
/// When the parameter or image does not exist, or the architecture differs.
pub async fn lookup(
    c: &Clients,
    source: &AmiSource,
    arch: Arch,
    field: &str,
) -> Result<ImageInfo, AwsError> {
    let id = match source {
        AmiSource::Id(id) => id.clone(),
        AmiSource::SsmParameter(p) => {
            let out = c
                .ssm
                .get_parameter()
                .name(p)
                .send()
                .await
                .map_err(api(&format!("resolving {field} from SSM parameter"), p))?;
            out.parameter()
                .and_then(|x| x.value())
                .map(str::to_string)
                .ok_or_else(|| {
                    AwsError::unexpected(
                        &format!("resolving {field} from"),
                        p,
                        "the parameter has no value",
                    )
                })?
        }
    };
    let out = c
        .ec2
        .describe_images()
        .image_ids(&id)
        .send()
        .await
        .map_err(api(&format!("describing {field}"), &id))?;
    let img = out.images().first().ok_or_else(|| {
        AwsError::unexpected(
            &format!("describing {field}"),
            &id,
            "no such image in this region",
        )
    })?;
    let want = match arch {
        Arch::Amd64 => "x86_64",
        Arch::Arm64 => "arm64",
    };
    let have = img
        .architecture()
        .map(|a| a.as_str().to_string())
        .unwrap_or_default();
    if !have.is_empty() && have != want {
        return Err(AwsError::unexpected(
            &format!("checking {field}"),
            &id,
            format!("the image is {have} but the instance type needs {want}"),
        ));
    }
    Ok(ImageInfo {
        id,
        root_device: img.root_device_name().unwrap_or("/dev/sda1").to_string(),
    })
}
