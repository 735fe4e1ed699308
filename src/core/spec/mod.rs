//! The cluster spec: the TOML a user writes, and its validation into a [`ClusterSpec`].
//!
//! Parsing keeps the byte span of every value ([`toml::Spanned`]) so that every error names the
//! field *and* the file and line it came from. Validation runs completely before any AWS call
//! and reports every problem it finds, not only the first.

/// The default Ubuntu 24.04 LTS image, resolved from Canonical's public SSM parameter.
pub const UBUNTU_2404_SSM_AMD64: &str =
    "/aws/service/canonical/ubuntu/server/24.04/stable/current/amd64/hvm/ebs-gp3/ami-id";
pub const UBUNTU_2404_SSM_ARM64: &str =
    "/aws/service/canonical/ubuntu/server/24.04/stable/current/arm64/hvm/ebs-gp3/ami-id";

/// The Kubernetes minors this release knows how to bootstrap (kubeadm config `v1beta4`).
pub const SUPPORTED_MINORS: std::ops::RangeInclusive<u32> = 31..=37;
pub const DEFAULT_KUBERNETES_VERSION: &str = "1.37";
pub const DEFAULT_SERVICE_CIDR: &str = "10.96.0.0/12";
/// How often the kubeadm control plane saves etcd (seconds), and how long snapshots are kept.
pub const DEFAULT_ETCD_BACKUP_INTERVAL: u32 = 15 * 60;
pub const DEFAULT_ETCD_BACKUP_DAYS: u32 = 7;

mod addons;
mod eks;
mod error;
mod kubeadm;
mod lexical;
mod model;
mod pools;
mod raw;
#[cfg(test)]
mod tests;
mod validate;

pub use error::{SpecError, SpecIssue, SpecWarning};
pub use lexical::{check_cluster_name, is_region, line_col};
pub(crate) use lexical::{is_dns_label, version_parts};
pub use model::*;

use lexical::field_for_parse_error;
use raw::RawSpec;
use validate::Validator;

/// Parses and validates a spec. `file` is only used in messages.
///
/// # Errors
/// A [`SpecError`] listing every problem, each with its field, line and column.
pub fn parse(file: &str, text: &str) -> Result<(ClusterSpec, Vec<SpecWarning>), SpecError> {
    let mut v = Validator {
        file,
        text,
        issues: Vec::new(),
        warnings: Vec::new(),
    };
    let raw: RawSpec = match toml::from_str(text) {
        Ok(raw) => raw,
        Err(e) => {
            let span = e.span().unwrap_or(0..0);
            let field = field_for_parse_error(text, span.start, e.message());
            v.push(span, &field, e.message().trim().to_string());
            return Err(SpecError { issues: v.issues });
        }
    };
    // Where a refusal of user data that would not fit points: what makes documents big.
    let (fit_span, fit_field) = match (&raw.security, &raw.addons) {
        (Some(s), _) => (s.span(), "security"),
        (None, Some(a)) => (a.span(), "addons"),
        (None, None) => (raw.kind.span(), "kind"),
    };
    let spec = v.validate(raw);
    match spec {
        Some(spec) if v.issues.is_empty() => {
            for o in crate::core::userdata::oversize(&crate::core::graph::build(&spec)) {
                v.push(
                    fit_span.clone(),
                    fit_field,
                    format!(
                        "the user data of `{}` would be {} bytes compressed ({} as text), over \
                         EC2's limit of {}: name fewer namespaces or bindings, or turn an \
                         add-on off",
                        o.node,
                        o.bytes,
                        o.text_bytes,
                        crate::core::cloudinit::USER_DATA_LIMIT
                    ),
                );
            }
            if v.issues.is_empty() {
                Ok((spec, v.warnings))
            } else {
                Err(SpecError { issues: v.issues })
            }
        }
        _ => Err(SpecError { issues: v.issues }),
    }
}
