//! Validation of the `[eks]` table and its node group.

use std::collections::BTreeMap;

use toml::Spanned;

use super::lexical::{check_instance_type, is_dns_label, is_principal_arn};
use super::model::*;
use super::raw::*;
use super::validate::Validator;

impl Validator<'_> {
    pub(super) fn eks(
        &mut self,
        e: &RawEks,
        at: std::ops::Range<usize>,
        cluster: &str,
        net: Option<&NetworkSpec>,
    ) -> Option<EksSpec> {
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
        let nodegroups = self.nodegroups(e, at, cluster, net);
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
            nodegroups: nodegroups?,
            access,
            addons,
            addon_versions,
            skip_insights: false,
        })
    }

    /// `[[eks.nodegroups]]`, or the one `[eks.nodegroup]` (named `nodes`).
    fn nodegroups(
        &mut self,
        e: &RawEks,
        at: std::ops::Range<usize>,
        cluster: &str,
        net: Option<&NetworkSpec>,
    ) -> Option<Vec<NodegroupSpec>> {
        let private = net.is_some_and(|n| !n.private_subnet_cidrs.is_empty());
        match (&e.nodegroup, &e.nodegroups) {
            (Some(_), Some(many)) => {
                self.err(
                    many,
                    "eks.nodegroups",
                    "use [eks.nodegroup] (one group) or [[eks.nodegroups]], not both",
                );
                None
            }
            (None, None) => {
                self.push(at, "eks.nodegroups", "a node group is needed: [[eks.nodegroups]] with a name (or one [eks.nodegroup])".into());
                None
            }
            (Some(one), None) => {
                if let Some(n) = &one.get_ref().name {
                    self.err(n, "eks.nodegroup.name", format!("the one [eks.nodegroup] is named `{DEFAULT_NODEGROUP}`; name groups in [[eks.nodegroups]]"));
                }
                Some(vec![self.nodegroup(
                    one,
                    "eks.nodegroup",
                    DEFAULT_NODEGROUP,
                    private,
                )?])
            }
            (None, Some(many)) => {
                if many.get_ref().is_empty() || many.get_ref().len() > 30 {
                    self.err(many, "eks.nodegroups", "1 to 30 node groups");
                }
                let mut out: Vec<NodegroupSpec> = Vec::new();
                let mut ok = true;
                for (i, g) in many.get_ref().iter().enumerate() {
                    let field = format!("eks.nodegroups[{i}]");
                    let name = match &g.get_ref().name {
                        None => {
                            self.err(g, &format!("{field}.name"), "each node group needs a name");
                            ok = false;
                            continue;
                        }
                        Some(n) => n,
                    };
                    let text = name.get_ref();
                    if !is_nodegroup_name(text) {
                        self.err(name, &format!("{field}.name"), format!("`{text}` is not a node group name: 1 to 20 of a-z, 0-9 and -, starting with a letter, not ending in -NUMBERgb"));
                        ok = false;
                    } else if cluster.len() + text.len() + REPLACEMENT_SUFFIX > 63 {
                        // EKS names it CLUSTER-NAME, and a blue/green replacement adds a suffix.
                        self.err(name, &format!("{field}.name"), format!("`{text}` is too long for this cluster's name: EKS names the group `{cluster}-{text}` plus a 7-character suffix when it is replaced, at most 63 characters"));
                        ok = false;
                    } else if out.iter().any(|o| &o.name == text) {
                        self.err(
                            name,
                            &format!("{field}.name"),
                            format!("`{text}` is used twice"),
                        );
                        ok = false;
                    }
                    match self.nodegroup(g, &field, text, private) {
                        Some(spec) => out.push(spec),
                        None => ok = false,
                    }
                }
                ok.then_some(out)
            }
        }
    }

    pub(super) fn nodegroup(
        &mut self,
        ng: &Spanned<RawNodegroup>,
        field: &str,
        name: &str,
        private: bool,
    ) -> Option<NodegroupSpec> {
        let f = |x: &str| format!("{field}.{x}");
        let g = ng.get_ref();
        let types = g.instance_types.get_ref();
        if types.is_empty() || types.len() > 20 {
            self.err(
                &g.instance_types,
                &f("instance_types"),
                "1 to 20 instance types",
            );
        }
        let mut arch = None;
        for t in types {
            match check_instance_type(t.get_ref()) {
                Ok(a) if arch.is_some_and(|b| b != a) => {
                    self.err(t, &f("instance_types"), "a node group's instance types must share one architecture (x86_64 or arm64)");
                }
                Ok(a) => arch = Some(a),
                Err(m) => self.err(t, &f("instance_types"), m),
            }
        }
        let (min, max, desired) = (*g.min.get_ref(), *g.max.get_ref(), *g.desired.get_ref());
        if !(0..=1000).contains(&min) {
            self.err(&g.min, &f("min"), format!("{min}: 0 to 1000"));
        }
        if !(1..=1000).contains(&max) {
            self.err(&g.max, &f("max"), format!("{max}: 1 to 1000"));
        }
        if desired < min || desired > max {
            self.err(
                &g.desired,
                &f("desired"),
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
                    &f("capacity_type"),
                    format!("`{other}`: expected \"ON_DEMAND\" or \"SPOT\""),
                );
                false
            }
        };
        let disk = match &g.disk_size {
            None => i64::from(DEFAULT_DISK_GB),
            Some(d) => {
                let v = *d.get_ref();
                if !(20..=16384).contains(&v) {
                    self.err(d, &f("disk_size"), format!("{v} GiB: 20 to 16384"));
                }
                v.clamp(20, 16384)
            }
        };
        let labels = self
            .node_labels(&g.labels, field, false)
            .unwrap_or_default();
        let max_unavailable = match (&g.max_unavailable, &g.max_unavailable_percent) {
            (Some(_), Some(p)) => {
                self.err(
                    p,
                    &f("max_unavailable_percent"),
                    "set max_unavailable or max_unavailable_percent, not both",
                );
                None
            }
            (Some(n), None) => {
                let v = *n.get_ref();
                if !(1..=100).contains(&v) {
                    self.err(n, &f("max_unavailable"), format!("{v}: 1 to 100 nodes"));
                }
                u32::try_from(v.clamp(1, 100))
                    .ok()
                    .map(MaxUnavailable::Count)
            }
            (None, Some(p)) => {
                let v = *p.get_ref();
                if !(1..=100).contains(&v) {
                    self.err(p, &f("max_unavailable_percent"), format!("{v}%: 1 to 100"));
                }
                u32::try_from(v.clamp(1, 100))
                    .ok()
                    .map(MaxUnavailable::Percent)
            }
            (None, None) => None,
        };
        let taints = self
            .node_taints(&g.taints, ng.span(), field)
            .unwrap_or_default();
        let public = match g.subnets.as_ref().map(|s| (s, s.get_ref().as_str())) {
            None => !private,
            Some((_, "public")) => true,
            Some((_, "private")) if private => false,
            Some((s, "private")) => {
                self.err(
                    s,
                    &f("subnets"),
                    "the network has no private subnets (set network.private_subnets = true)",
                );
                false
            }
            Some((s, other)) => {
                self.err(
                    s,
                    &f("subnets"),
                    format!("`{other}`: expected \"public\" or \"private\""),
                );
                false
            }
        };
        let ok = (0..=1000).contains(&min)
            && (1..=1000).contains(&max)
            && (min..=max).contains(&desired);
        Some(NodegroupSpec {
            name: name.to_string(),
            instance_types: types.iter().map(|t| t.get_ref().clone()).collect(),
            arch: arch?,
            min: u32::try_from(min).ok().filter(|_| ok)?,
            max: u32::try_from(max).ok()?,
            desired: u32::try_from(desired).ok()?,
            spot,
            disk_size: u32::try_from(disk).ok()?,
            labels,
            max_unavailable,
            taints,
            public,
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

/// What `CLUSTER-NAME` may grow by: `-` between them and a replacement's `-xxxxxx`.
const REPLACEMENT_SUFFIX: usize = 8;

/// A node group's name in the spec: 1 to 20 of a-z, 0-9 and `-`, starting with a letter, and
/// not ending like a launch template's disk size (`-50gb`).
fn is_nodegroup_name(n: &str) -> bool {
    let disk_like = n
        .strip_suffix("gb")
        .and_then(|r| r.rsplit_once('-'))
        .is_some_and(|(_, d)| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()));
    !disk_like
        && (1..=20).contains(&n.len())
        && n.starts_with(|c: char| c.is_ascii_lowercase())
        && n.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !n.ends_with('-')
}
