//! Validation of the add-ons and the security baseline.

use std::collections::BTreeMap;

use super::lexical::{check_instance_type, is_dns_label, is_image_tag, is_principal_arn};
use super::model::*;
use super::raw::*;
use super::validate::Validator;

impl Validator<'_> {
    pub(super) fn addons(&mut self, raw: &RawAddons) -> AddonsSpec {
        let mut out = AddonsSpec::default();
        for (addon, entry) in [
            (Addon::Monitoring, &raw.monitoring),
            (Addon::Logging, &raw.logging),
            (Addon::Tracing, &raw.tracing),
        ] {
            let Some(entry) = entry else { continue };
            let field = format!("addons.{}", addon.as_str());
            let table = match entry.get_ref() {
                RawAddon::On(false) => continue,
                RawAddon::On(true) => None,
                RawAddon::Table(t) if !t.enabled => continue,
                RawAddon::Table(t) => Some(t),
            };
            let instance_type = table
                .and_then(|t| t.instance_type.clone())
                .unwrap_or_else(|| addon.default_instance_type().to_string());
            let arch = match check_instance_type(&instance_type) {
                Ok(a) => a,
                Err(m) => {
                    let m = m.replace("kubeadm needs", "an add-on instance needs");
                    self.err(entry, &format!("{field}.instance_type"), m);
                    Arch::Amd64
                }
            };
            let volume_gb = table.and_then(|t| t.volume_gb).unwrap_or(30);
            if !(8..=16384).contains(&volume_gb) {
                self.err(
                    entry,
                    &format!("{field}.volume_gb"),
                    format!("{volume_gb} GiB: 8 to 16384"),
                );
            }
            let mut versions: BTreeMap<String, String> = addon
                .default_versions()
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            for (image, tag) in table.map(|t| &t.versions).into_iter().flatten() {
                if !versions.contains_key(image) {
                    let known: Vec<&str> =
                        addon.default_versions().iter().map(|(k, _)| *k).collect();
                    self.err(
                        entry,
                        &format!("{field}.versions.{image}"),
                        format!(
                            "unknown image `{image}`: {} runs {}",
                            addon.as_str(),
                            known.join(", ")
                        ),
                    );
                } else if !is_image_tag(tag) {
                    self.err(
                        entry,
                        &format!("{field}.versions.{image}"),
                        format!(
                            "`{tag}` is not a pinned image tag (e.g. 1.2.3 or v1.2.3; not `latest`)"
                        ),
                    );
                } else {
                    versions.insert(image.clone(), tag.clone());
                }
            }
            let spec = AddonSpec {
                instance_type,
                arch,
                volume_gb: volume_gb.clamp(8, 16384) as i32,
                versions,
            };
            match addon {
                Addon::Monitoring => out.monitoring = Some(spec),
                Addon::Logging => out.logging = Some(spec),
                Addon::Tracing => out.tracing = Some(spec),
            }
        }
        out
    }

    pub(super) fn security(
        &mut self,
        raw: &RawSecurity,
        enforces: Option<bool>,
        eks: bool,
    ) -> SecuritySpec {
        let mut namespaces = Vec::new();
        if let Some(ns) = &raw.namespaces {
            for (i, n) in ns.get_ref().iter().enumerate() {
                let field = format!("security.namespaces[{i}]");
                let name = n.get_ref();
                if !is_dns_label(name) {
                    self.err(n, &field, format!("`{name}` is not a Kubernetes namespace name (lower-case letters, digits and -, at most 63)"));
                } else if name.starts_with("kube-") || name == "default" {
                    self.err(n, &field, format!("`{name}` is a system namespace: the baseline is for your own namespaces"));
                } else if namespaces.contains(name) {
                    self.err(n, &field, format!("`{name}` is listed twice"));
                }
                namespaces.push(name.clone());
            }
        }
        let default_deny = match (&raw.default_deny, enforces) {
            (Some(d), Some(false)) if *d.get_ref() => {
                self.err(
                    d,
                    "security.default_deny",
                    "Flannel does not enforce NetworkPolicy, so a default-deny policy would protect nothing: use cni = \"calico\", or set default_deny = false",
                );
                false
            }
            (Some(d), _) => *d.get_ref(),
            (None, Some(e)) => e,
            (None, None) => false,
        };
        let default_deny_egress = match &raw.default_deny_egress {
            Some(d) if *d.get_ref() && !default_deny => {
                self.err(
                    d,
                    "security.default_deny_egress",
                    "goes with default_deny (and a CNI that enforces NetworkPolicy)",
                );
                false
            }
            Some(d) => *d.get_ref(),
            None => false,
        };
        if raw.default_deny.is_none() && enforces == Some(false) && !namespaces.is_empty() {
            self.warn(
                "security.default_deny",
                "Flannel does not enforce NetworkPolicy: the namespaces get no default-deny policy",
            );
        }
        let mut bindings = Vec::new();
        for (i, b) in raw.bindings.iter().enumerate() {
            let field = format!("security.bindings[{i}]");
            let r = b.get_ref();
            let subject = match (&r.user, &r.group) {
                (Some(u), None) => {
                    let name = u.get_ref();
                    if eks && !is_principal_arn(name) {
                        self.err(u, &format!("{field}.user"), format!("`{name}` is not an IAM user or role ARN: on EKS a binding becomes an access entry of that principal"));
                    } else if name.is_empty() || name.len() > 253 {
                        self.err(u, &format!("{field}.user"), "1 to 253 characters");
                    }
                    Some(Subject::User(name.clone()))
                }
                (None, Some(g)) => {
                    let name = g.get_ref();
                    if eks {
                        self.err(g, &format!("{field}.group"), "EKS access entries are per IAM principal: give `user` an IAM user or role ARN");
                    } else if name.is_empty() || name.len() > 253 || name.starts_with("system:") {
                        self.err(
                            g,
                            &format!("{field}.group"),
                            format!("`{name}`: 1 to 253 characters, not a system: group"),
                        );
                    }
                    Some(Subject::Group(name.clone()))
                }
                _ => {
                    self.err(b, &field, "give exactly one of `user` or `group`");
                    None
                }
            };
            let role = match r.role.get_ref().as_str() {
                "view" => Some(BindingRole::View),
                "edit" => Some(BindingRole::Edit),
                "admin" => Some(BindingRole::Admin),
                other => {
                    self.err(&r.role, &format!("{field}.role"), format!("unknown role `{other}`: expected view, edit or admin (the built-in ClusterRoles)"));
                    None
                }
            };
            let mut ns = Vec::new();
            if r.namespaces.get_ref().is_empty() {
                self.err(&r.namespaces, &format!("{field}.namespaces"), "at least one namespace: bindings are namespaced (cluster-wide access goes in [[eks.access]] or the admin kubeconfig)");
            }
            for n in r.namespaces.get_ref() {
                if !is_dns_label(n.get_ref()) {
                    self.err(
                        n,
                        &format!("{field}.namespaces"),
                        format!("`{}` is not a Kubernetes namespace name", n.get_ref()),
                    );
                }
                ns.push(n.get_ref().clone());
            }
            if let (Some(subject), Some(role)) = (subject, role) {
                bindings.push(Binding {
                    subject,
                    role,
                    namespaces: ns,
                });
            }
        }
        SecuritySpec {
            namespaces,
            default_deny,
            default_deny_egress,
            bindings,
        }
    }
}
