//! The spec exactly as written: serde's view of the TOML, every value with its byte span
//! ([`toml::Spanned`]) so that validation can name the file and line of each problem.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

// Raw spec, exactly as written.

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSpec {
    pub(super) name: Spanned<String>,
    pub(super) region: Spanned<String>,
    pub(super) kind: Spanned<String>,
    pub(super) network: Spanned<RawNetwork>,
    pub(super) kubeadm: Option<Spanned<RawKubeadm>>,
    pub(super) eks: Option<Spanned<RawEks>>,
    pub(super) addons: Option<Spanned<RawAddons>>,
    pub(super) security: Option<Spanned<RawSecurity>>,
    #[serde(default)]
    pub(super) tags: BTreeMap<String, Spanned<String>>,
    pub(super) ttl: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAddons {
    pub(super) monitoring: Option<Spanned<RawAddon>>,
    pub(super) logging: Option<Spanned<RawAddon>>,
    pub(super) tracing: Option<Spanned<RawAddon>>,
}

/// `monitoring = true`, or a table.
#[derive(Debug)]
pub(super) enum RawAddon {
    On(bool),
    Table(RawAddonTable),
}

/// By hand rather than `#[serde(untagged)]`, whose only error is "data did not match any
/// variant": a table's own error (which key, what type) is kept.
impl<'de> Deserialize<'de> for RawAddon {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        match toml::Value::deserialize(d)? {
            toml::Value::Boolean(b) => Ok(RawAddon::On(b)),
            v @ toml::Value::Table(_) => v
                .try_into::<RawAddonTable>()
                .map(RawAddon::Table)
                .map_err(|e| D::Error::custom(format!("{e}").trim_end().replace('\n', " "))),
            other => Err(D::Error::custom(format!(
                "`true`, `false` or a table (enabled, instance_type, volume_gb, versions), not {} {}",
                if other.type_str().starts_with(['a', 'e', 'i', 'o', 'u']) {
                    "an"
                } else {
                    "a"
                },
                other.type_str()
            ))),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAddonTable {
    #[serde(default = "yes")]
    pub(super) enabled: bool,
    pub(super) instance_type: Option<String>,
    pub(super) volume_gb: Option<i64>,
    #[serde(default)]
    pub(super) versions: BTreeMap<String, String>,
}

pub(super) fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSecurity {
    pub(super) namespaces: Option<Spanned<Vec<Spanned<String>>>>,
    pub(super) default_deny: Option<Spanned<bool>>,
    pub(super) default_deny_egress: Option<Spanned<bool>>,
    #[serde(default)]
    pub(super) bindings: Vec<Spanned<RawBinding>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBinding {
    pub(super) user: Option<Spanned<String>>,
    pub(super) group: Option<Spanned<String>>,
    pub(super) role: Spanned<String>,
    pub(super) namespaces: Spanned<Vec<Spanned<String>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawEks {
    pub(super) version: Option<Spanned<String>>,
    pub(super) endpoint_public_access: Option<Spanned<bool>>,
    pub(super) endpoint_private_access: Option<Spanned<bool>>,
    pub(super) nodegroup: Option<Spanned<RawNodegroup>>,
    pub(super) nodegroups: Option<Spanned<Vec<Spanned<RawNodegroup>>>>,
    #[serde(default)]
    pub(super) access: Vec<Spanned<RawAccess>>,
    pub(super) addons: Option<Spanned<Vec<Spanned<RawEksAddon>>>>,
}

/// An `[eks] addons` entry: a name, or `{ name, version }` to pin the add-on's version.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum RawEksAddon {
    Name(String),
    Pinned(RawPinnedAddon),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPinnedAddon {
    pub(super) name: String,
    pub(super) version: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNodegroup {
    pub(super) name: Option<Spanned<String>>,
    pub(super) instance_types: Spanned<Vec<Spanned<String>>>,
    pub(super) min: Spanned<i64>,
    pub(super) max: Spanned<i64>,
    pub(super) desired: Spanned<i64>,
    pub(super) capacity_type: Option<Spanned<String>>,
    pub(super) disk_size: Option<Spanned<i64>>,
    #[serde(default)]
    pub(super) labels: BTreeMap<String, Spanned<String>>,
    pub(super) max_unavailable: Option<Spanned<i64>>,
    pub(super) max_unavailable_percent: Option<Spanned<i64>>,
    #[serde(default)]
    pub(super) taints: Vec<Spanned<RawTaint>>,
    pub(super) subnets: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPool {
    pub(super) name: Spanned<String>,
    pub(super) instance_type: Option<Spanned<String>>,
    pub(super) count: Spanned<i64>,
    #[serde(default)]
    pub(super) labels: BTreeMap<String, Spanned<String>>,
    #[serde(default)]
    pub(super) taints: Vec<Spanned<RawTaint>>,
    pub(super) spot: Option<Spanned<bool>>,
    pub(super) subnets: Option<Spanned<Vec<Spanned<i64>>>>,
    pub(super) max_surge: Option<Spanned<i64>>,
    pub(super) max_unavailable: Option<Spanned<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTaint {
    pub(super) key: String,
    pub(super) value: Option<String>,
    pub(super) effect: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAccess {
    pub(super) principal_arn: Spanned<String>,
    pub(super) policy: Spanned<String>,
    pub(super) namespaces: Option<Spanned<Vec<Spanned<String>>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNetwork {
    pub(super) vpc_cidr: Spanned<String>,
    pub(super) availability_zones: Option<Spanned<i64>>,
    pub(super) subnet_prefix: Option<Spanned<i64>>,
    pub(super) admin_cidrs: Spanned<Vec<Spanned<String>>>,
    pub(super) private_subnets: Option<Spanned<bool>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawKubeadm {
    pub(super) kubernetes_version: Option<Spanned<String>>,
    pub(super) cni: Spanned<String>,
    pub(super) instance_type: Spanned<String>,
    pub(super) workers: Option<Spanned<i64>>,
    #[serde(default)]
    pub(super) pools: Vec<Spanned<RawPool>>,
    pub(super) ami: Option<Spanned<String>>,
    pub(super) key_name: Option<Spanned<String>>,
    pub(super) ssh: Option<Spanned<bool>>,
    pub(super) pod_cidr: Option<Spanned<String>>,
    pub(super) root_volume_gb: Option<Spanned<i64>>,
    pub(super) etcd_backup_interval: Option<Spanned<String>>,
    pub(super) etcd_backup_days: Option<Spanned<i64>>,
}
