//! The image instances launch from (a lookup). `up` starts the lookup beside the lock and
//! discovery ([`prefetch`]: it depends on nothing they find), so that the first launch does
//! not wait for two more calls in a row; the node, when the plan reads the image, takes the
//! result ([`resolve`]). An `up` that launches nothing makes those two reads for nothing.

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
        let img = resolve(cx.c, &self.source, self.arch, self.field).await?;
        cx.report
            .resource(id, Self::NAME, Some(&img.id), Progress::Read, None);
        Ok(Output::Image(img))
    }

    async fn delete(_tx: &Tx<'_>) -> Result<(), AwsError> {
        Ok(())
    }
}

/// The images of a run, each looked up once: a prefetch's success, or `None` when it failed
/// (the node then looks again and reports its own error).
#[derive(Debug, Default)]
pub struct Cache(std::sync::Mutex<std::collections::HashMap<(AmiSource, Arch), Cell>>);

type Cell = std::sync::Arc<tokio::sync::OnceCell<Option<ImageInfo>>>;

impl Cache {
    fn cell(
        &self,
        source: &AmiSource,
        arch: Arch,
    ) -> std::sync::Arc<tokio::sync::OnceCell<Option<ImageInfo>>> {
        let mut m = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        m.entry((source.clone(), arch)).or_default().clone()
    }
}

/// Starts looking up every image of `graph` in the background (see the module's comment).
pub fn prefetch(c: &Clients, graph: &crate::core::graph::Graph) {
    for n in &graph.nodes {
        if let crate::core::kinds::Desired::Image(img) = &n.desired {
            let (c, img) = (c.clone(), img.clone());
            tokio::spawn(async move {
                let cell = c.images.cell(&img.source, img.arch);
                cell.get_or_init(|| async {
                    lookup(&c, &img.source, img.arch, img.field).await.ok()
                })
                .await;
            });
        }
    }
}

/// The image, from the prefetch when it succeeded (waiting for it while in flight), else
/// looked up now.
pub async fn resolve(
    c: &Clients,
    source: &AmiSource,
    arch: Arch,
    field: &str,
) -> Result<ImageInfo, AwsError> {
    let cell = c.images.cell(source, arch);
    // Set already: returned at once (a failed prefetch's `None` is looked up again below).
    let mut failed = None;
    let got = cell
        .get_or_init(|| async {
            match lookup(c, source, arch, field).await {
                Ok(img) => Some(img),
                Err(e) => {
                    failed = Some(e);
                    None
                }
            }
        })
        .await;
    match (got, failed) {
        (Some(img), _) => Ok(img.clone()),
        (None, Some(e)) => Err(e),
        (None, None) => lookup(c, source, arch, field).await,
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
