//! Validation of the `[eks]` table and its node group.

use std::collections::BTreeMap;

use toml::Spanned;

use super::lexical::{check_instance_type, is_dns_label, is_label_key, is_principal_arn};
use super::model::*;
use super::raw::*;
use super::validate::Validator;

impl Validator<'_> {
    pub(super) fn eks(&mut self, e: &RawEks, net: Option<&NetworkSpec>) -> Option<EksSpec> {
        let version = match &e.version {
            None => Some(DEFAULT_EKS_VERSION.to_string()),
            Some(v) => {
                let t = v.get_ref();
                let minor = t
                    .strip_prefix("1.")
                    .and_then(|m| m.parse::<u32>().ok())
                    .filter(|m| EKS_MINORS.contains(m));
                if minor.is_none() || t.matches('.').count() != 1 {
                    self.err(v, "eks.version", format!("`{t}` is not an EKS version this release supports: 1.{} to 1.{} (minor only, e.g. \"{DEFAULT_EKS_VERSION}\")", EKS_MINORS.start(), EKS_MINORS.end()));
                }
                minor.map(|m| format!("1.{m}"))
            }
        };
        let public = e
            .endpoint_public_access
            .as_ref()
            .is_none_or(|b| *b.get_ref());
        // On by default: the nodes reach the API server inside the VPC. With the private
        // endpoint off they would go through the public one, which admits only admin_cidrs.
        let private = e
            .endpoint_private_access
            .as_ref()
            .is_none_or(|b| *b.get_ref());
        let world_open = net.is_some_and(|n| crate::core::cidr::cover_everything(&n.admin_cidrs));
        if let Some(p) = e.endpoint_private_access.as_ref().filter(|_| !private)
            && public
            && !world_open
        {
            self.err(
                p,
                "eks.endpoint_private_access",
                "the nodes could not reach the API server: the public endpoint admits only network.admin_cidrs; keep the private endpoint on (the default)",
            );
        }
        if !public && !private {
            let span = e.endpoint_public_access.as_ref().map_or(0..0, |b| b.span());
            self.push(
                span,
                "eks.endpoint_public_access",
                "the API endpoint must be public, private or both".into(),
            );
        }
        if public && net.is_some_and(|n| crate::core::cidr::cover_everything(&n.admin_cidrs)) {
            self.warn(
                "eks.endpoint_public_access",
                "the public API endpoint will accept 0.0.0.0/0 (network.admin_cidrs)",
            );
        }
        let nodegroup = self.nodegroup(&e.nodegroup);
        let mut access = Vec::new();
        let mut principals = Vec::new();
        for (i, a) in e.access.iter().enumerate() {
            let a = a.get_ref();
            let field = format!("eks.access[{i}]");
            let arn = a.principal_arn.get_ref();
            if !is_principal_arn(arn) {
                self.err(&a.principal_arn, &format!("{field}.principal_arn"), format!("`{arn}` is not an IAM role or user ARN (arn:aws:iam::123456789012:role/NAME)"));
            } else if principals.contains(arn) {
                self.err(
                    &a.principal_arn,
                    &format!("{field}.principal_arn"),
                    format!("`{arn}` is listed twice"),
                );
            }
            principals.push(arn.clone());
            let policy = match a.policy.get_ref().as_str() {
                "cluster-admin" => Some(AccessPolicy::ClusterAdmin),
                "admin" => Some(AccessPolicy::Admin),
                "edit" => Some(AccessPolicy::Edit),
                "view" => Some(AccessPolicy::View),
                other => {
                    self.err(
                        &a.policy,
                        &format!("{field}.policy"),
                        format!(
                            "unknown policy `{other}`: expected cluster-admin, admin, edit or view"
                        ),
                    );
                    None
                }
            };
            let mut namespaces = Vec::new();
            if let Some(ns) = &a.namespaces {
                if ns.get_ref().is_empty() {
                    self.err(
                        ns,
                        &format!("{field}.namespaces"),
                        "an empty list: leave namespaces out for cluster-wide access",
                    );
                }
                for n in ns.get_ref() {
                    if !is_dns_label(n.get_ref()) {
                        self.err(
                            n,
                            &format!("{field}.namespaces"),
                            format!("`{}` is not a Kubernetes namespace name", n.get_ref()),
                        );
                    }
                    namespaces.push(n.get_ref().clone());
                }
            }
            if let Some(policy) = policy {
                access.push(AccessEntry {
                    principal_arn: arn.clone(),
                    policy,
                    namespaces,
                });
            }
        }
        let mut addon_versions = BTreeMap::new();
        let addons = match &e.addons {
            None => DEFAULT_EKS_ADDONS.iter().map(|a| a.to_string()).collect(),
            Some(list) => {
                let mut out: Vec<String> = Vec::new();
                for a in list.get_ref() {
                    let (name, version) = match a.get_ref() {
                        RawEksAddon::Name(n) => (n, None),
                        RawEksAddon::Pinned(p) => (&p.name, Some(&p.version)),
                    };
                    if !is_dns_label(name) {
                        self.err(
                            a,
                            "eks.addons",
                            format!("`{name}` is not an EKS add-on name"),
                        );
                    } else if out.contains(name) {
                        self.err(a, "eks.addons", format!("`{name}` is listed twice"));
                    } else {
                        out.push(name.clone());
                    }
                    if let Some(v) = version {
                        if is_addon_version(v) {
                            addon_versions.insert(name.clone(), v.clone());
                        } else {
                            self.err(a, "eks.addons", format!("`{v}` (add-on {name}) is not an EKS add-on version, such as \"v1.19.2-eksbuild.1\""));
                        }
                    }
                }
                out
            }
        };
        Some(EksSpec {
            version: version?,
            endpoint_public_access: public,
            endpoint_private_access: private,
            nodegroup: nodegroup?,
            access,
            addons,
            addon_versions,
            skip_insights: false,
        })
    }

    pub(super) fn nodegroup(&mut self, ng: &Spanned<RawNodegroup>) -> Option<NodegroupSpec> {
        let g = ng.get_ref();
        let types = g.instance_types.get_ref();
        if types.is_empty() || types.len() > 20 {
            self.err(
                &g.instance_types,
                "eks.nodegroup.instance_types",
                "1 to 20 instance types",
            );
        }
        let mut arch = None;
        for t in types {
            match check_instance_type(t.get_ref()) {
                Ok(a) if arch.is_some_and(|b| b != a) => {
                    self.err(t, "eks.nodegroup.instance_types", "a node group's instance types must share one architecture (x86_64 or arm64)");
                }
                Ok(a) => arch = Some(a),
                Err(m) => self.err(t, "eks.nodegroup.instance_types", m),
            }
        }
        let (min, max, desired) = (*g.min.get_ref(), *g.max.get_ref(), *g.desired.get_ref());
        if !(0..=1000).contains(&min) {
            self.err(&g.min, "eks.nodegroup.min", format!("{min}: 0 to 1000"));
        }
        if !(1..=1000).contains(&max) {
            self.err(&g.max, "eks.nodegroup.max", format!("{max}: 1 to 1000"));
        }
        if desired < min || desired > max {
            self.err(
                &g.desired,
                "eks.nodegroup.desired",
                format!("{desired} is not between min ({min}) and max ({max})"),
            );
        }
        let spot = match g.capacity_type.as_ref().map(|c| c.get_ref().as_str()) {
            None | Some("ON_DEMAND") => false,
            Some("SPOT") => true,
            Some(other) => {
                let c = g.capacity_type.as_ref().expect("some");
                self.err(
                    c,
                    "eks.nodegroup.capacity_type",
                    format!("`{other}`: expected \"ON_DEMAND\" or \"SPOT\""),
                );
                false
            }
        };
        let disk = match &g.disk_size {
            None => 20,
            Some(d) => {
                let v = *d.get_ref();
                if !(20..=16384).contains(&v) {
                    self.err(
                        d,
                        "eks.nodegroup.disk_size",
                        format!("{v} GiB: 20 to 16384"),
                    );
                }
                v.clamp(20, 16384)
            }
        };
        let mut labels = BTreeMap::new();
        for (k, v) in &g.labels {
            if !is_label_key(k) {
                self.err(
                    v,
                    &format!("eks.nodegroup.labels.{k}"),
                    format!("`{k}` is not a Kubernetes label key"),
                );
            }
            let val = v.get_ref();
            if val.len() > 63
                || !val
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            {
                self.err(v, &format!("eks.nodegroup.labels.{k}"), format!("`{val}` is not a Kubernetes label value (63 characters of A-Z a-z 0-9 - _ .)"));
            }
            labels.insert(k.clone(), val.clone());
        }
        let max_unavailable = match (&g.max_unavailable, &g.max_unavailable_percent) {
            (Some(_), Some(p)) => {
                self.err(
                    p,
                    "eks.nodegroup.max_unavailable_percent",
                    "set max_unavailable or max_unavailable_percent, not both",
                );
                None
            }
            (Some(n), None) => {
                let v = *n.get_ref();
                if !(1..=100).contains(&v) {
                    self.err(
                        n,
                        "eks.nodegroup.max_unavailable",
                        format!("{v}: 1 to 100 nodes"),
                    );
                }
                u32::try_from(v.clamp(1, 100))
                    .ok()
                    .map(MaxUnavailable::Count)
            }
            (None, Some(p)) => {
                let v = *p.get_ref();
                if !(1..=100).contains(&v) {
                    self.err(
                        p,
                        "eks.nodegroup.max_unavailable_percent",
                        format!("{v}%: 1 to 100"),
                    );
                }
                u32::try_from(v.clamp(1, 100))
                    .ok()
                    .map(MaxUnavailable::Percent)
            }
            (None, None) => None,
        };
        let ok = (0..=1000).contains(&min)
            && (1..=1000).contains(&max)
            && (min..=max).contains(&desired);
        Some(NodegroupSpec {
            instance_types: types.iter().map(|t| t.get_ref().clone()).collect(),
            arch: arch?,
            min: u32::try_from(min).ok().filter(|_| ok)?,
            max: u32::try_from(max).ok()?,
            desired: u32::try_from(desired).ok()?,
            spot,
            disk_size: u32::try_from(disk).ok()?,
            labels,
            max_unavailable,
        })
    }
}

/// An EKS add-on version: `v` then dotted numbers, then an optional `-suffix`
/// (`v1.19.2-eksbuild.1`).
fn is_addon_version(v: &str) -> bool {
    let Some(rest) = v.strip_prefix('v') else {
        return false;
    };
    let (numbers, suffix) = rest.split_once('-').unwrap_or((rest, ""));
    !numbers.is_empty()
        && numbers
            .split('.')
            .all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        && v.len() <= 100
        && suffix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}
