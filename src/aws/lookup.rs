//! Read-only lookups: availability zones and the node image.

use aws_sdk_ec2::types::Filter;

use super::error::api;
use super::{AwsError, Clients};
use crate::core::spec::{AmiSource, Arch};

/// The first `count` zones of the region, in name order, that offer `instance_type` (not every
/// zone offers every type: us-east-1e has no t3, for example).
///
/// # Errors
/// When fewer zones offer the type, or the call fails.
pub async fn availability_zones(
    c: &Clients,
    count: usize,
    instance_type: &str,
) -> Result<Vec<String>, AwsError> {
    let offers = c
        .ec2
        .describe_instance_type_offerings()
        .location_type(aws_sdk_ec2::types::LocationType::AvailabilityZone)
        .filters(
            Filter::builder()
                .name("instance-type")
                .values(instance_type)
                .build(),
        )
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .map_err(api(
            "listing the availability zones that offer kubeadm.instance_type in",
            &c.region,
        ))?;
    let mut names: Vec<String> = offers
        .iter()
        .filter_map(|o| o.location().map(str::to_string))
        .collect();
    names.sort();
    names.dedup();
    if names.len() < count {
        return Err(AwsError::unexpected(
            "choosing availability zones in",
            &c.region,
            format!(
                "network.availability_zones = {count}, but only {} zone(s) offer {instance_type}: {}",
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
