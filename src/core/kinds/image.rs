//! The image instances launch from: an AMI id, or one resolved through an SSM parameter
//! (Canonical's Ubuntu images), checked against the instances' architecture. A lookup, needed
//! only while an instance node that uses it has instances to launch.

use super::{Change, Context, Desired, NoDrift, NoState, Plan};
use crate::core::latency::{Cost, Profile};
use crate::core::spec::{AmiSource, Arch};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    pub source: AmiSource,
    pub arch: Arch,
    /// What the spec calls it, for messages (`kubeadm.ami`).
    pub field: &'static str,
}

/// A resolved image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageInfo {
    pub id: String,
    pub root_device: String,
}

impl Plan for Image {
    const NAME: &'static str = "ami";
    type Observed = NoState;
    type Drift = NoDrift;

    fn diff(&self, id: &str, cx: &Context<'_>) -> Change<NoDrift> {
        let needed = cx.graph.nodes.iter().any(|n| {
            n.deps.iter().any(|d| d == id)
                && match &n.desired {
                    Desired::Instances(i) => i.needs_launch(&n.id, cx.obs),
                    Desired::WorkerPool(p) => p.needs_launch(&n.id, cx),
                    _ => false,
                }
        });
        if needed {
            Change::read()
        } else {
            Change::keep(None)
        }
    }

    // The SSM image parameter, then DescribeImages.
    fn cost(&self, p: &Profile) -> Cost {
        Cost::same(2.0 * p.call)
    }
}
