//! Read-only lookups: availability zones and the node image.

use aws_sdk_ec2::types::Filter;

use super::error::api;
use super::{AwsError, Clients};
use crate::core::spec::{AmiSource, Arch};

/// The first `count` available zones of the region, in name order.
///
/// # Errors
/// When the region has fewer zones, or the call fails.
pub async fn availability_zones(c: &Clients, count: usize) -> Result<Vec<String>, AwsError> {
    let out = c
        .ec2
        .describe_availability_zones()
        .filters(Filter::builder().name("state").values("available").build())
        .filters(
            Filter::builder()
                .name("zone-type")
                .values("availability-zone")
                .build(),
        )
        .send()
        .await
        .map_err(api("listing availability zones of", &c.region))?;
    let mut names: Vec<String> = out
        .availability_zones()
        .iter()
        .filter_map(|z| z.zone_name().map(str::to_string))
        .collect();
    names.sort();
    if names.len() < count {
        return Err(AwsError::unexpected(
            "choosing availability zones in",
            &c.region,
            format!(
                "network.availability_zones = {count}, but the region has {} available: {}",
                names.len(),
                names.join(", ")
            ),
        ));
    }
    names.truncate(count);
    Ok(names)
}

/// A resolved image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    pub id: String,
    pub root_device: String,
}

/// Resolves the AMI (through SSM if asked) and checks it fits the instance architecture.
///
/// # Errors
/// When the parameter or image does not exist, or the architecture differs.
pub async fn image(c: &Clients, source: &AmiSource, arch: Arch) -> Result<Image, AwsError> {
    let id = match source {
        AmiSource::Id(id) => id.clone(),
        AmiSource::SsmParameter(p) => {
            let out = c
                .ssm
                .get_parameter()
                .name(p)
                .send()
                .await
                .map_err(api("resolving kubeadm.ami from SSM parameter", p))?;
            out.parameter()
                .and_then(|x| x.value())
                .map(str::to_string)
                .ok_or_else(|| {
                    AwsError::unexpected(
                        "resolving kubeadm.ami from",
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
        .map_err(api("describing kubeadm.ami", &id))?;
    let img = out.images().first().ok_or_else(|| {
        AwsError::unexpected(
            "describing kubeadm.ami",
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
            "checking kubeadm.ami",
            &id,
            format!("the image is {have} but kubeadm.instance_type needs {want}"),
        ));
    }
    Ok(Image {
        id,
        root_device: img.root_device_name().unwrap_or("/dev/sda1").to_string(),
    })
}
