//! The validator: every problem of a spec, located, before any AWS call. The top level,
//! the tags and the network are here; the flavours, add-ons and security baseline have files of
//! their own.

use std::collections::BTreeMap;

use toml::Spanned;

use super::error::{SpecIssue, SpecWarning};
use super::lexical::{check_cluster_name, is_region, line_col};
use super::model::*;
use super::raw::*;
use crate::core::cidr::Ipv4Net;

pub(super) struct Validator<'a> {
    pub(super) file: &'a str,
    pub(super) text: &'a str,
    pub(super) issues: Vec<SpecIssue>,
    pub(super) warnings: Vec<SpecWarning>,
}

impl Validator<'_> {
    pub(super) fn push(&mut self, span: std::ops::Range<usize>, field: &str, message: String) {
        let (line, column) = line_col(self.text, span.start);
        self.issues.push(SpecIssue {
            file: self.file.to_string(),
            line,
            column,
            field: field.to_string(),
            message,
        });
    }

    pub(super) fn err<T>(&mut self, at: &Spanned<T>, field: &str, message: impl Into<String>) {
        self.push(at.span(), field, message.into());
    }

    pub(super) fn warn(&mut self, field: &str, message: impl Into<String>) {
        self.warnings.push(SpecWarning {
            field: field.to_string(),
            message: message.into(),
        });
    }

    pub(super) fn cidr(&mut self, s: &Spanned<String>, field: &str) -> Option<Ipv4Net> {
        match s.get_ref().parse::<Ipv4Net>() {
            Ok(n) => Some(n),
            Err(e) => {
                self.err(s, field, e.to_string());
                None
            }
        }
    }

    pub(super) fn validate(&mut self, raw: RawSpec) -> Option<ClusterSpec> {
        let name = raw.name.get_ref().clone();
        if let Err(m) = check_cluster_name(&name) {
            self.err(&raw.name, "name", m);
        }
        let region = raw.region.get_ref().clone();
        if !is_region(&region) {
            self.err(
                &raw.region,
                "region",
                format!("`{region}` is not an AWS region name (e.g. us-east-1)"),
            );
        }
        match raw.kind.get_ref().as_str() {
            "kubeadm" | "eks" => {}
            other => self.err(
                &raw.kind,
                "kind",
                format!("unknown kind `{other}`: expected \"kubeadm\" or \"eks\""),
            ),
        }
        let tags = self.tags(&raw.tags);
        let ttl = raw
            .ttl
            .as_ref()
            .and_then(|t| match crate::core::stamp::parse_ttl(t.get_ref()) {
                Ok(seconds) => Some(crate::core::stamp::Ttl {
                    seconds,
                    from_now: false,
                }),
                Err(m) => {
                    self.err(t, "ttl", m);
                    None
                }
            });
        let network = self.network(raw.network.get_ref());
        let eks = match (&raw.eks, raw.kind.get_ref().as_str()) {
            (Some(e), "eks") => {
                self.eks(e.get_ref(), e.span(), raw.name.get_ref(), network.as_ref())
            }
            (Some(e), _) => {
                self.err(e, "eks", "the [eks] table goes with kind = \"eks\"");
                None
            }
            (None, "eks") => {
                self.push(
                    0..0,
                    "eks",
                    "missing table [eks], required when kind = \"eks\"".into(),
                );
                None
            }
            (None, _) => None,
        };
        if let (Some(k), "eks") = (&raw.kubeadm, raw.kind.get_ref().as_str()) {
            self.err(
                k,
                "kubeadm",
                "the [kubeadm] table goes with kind = \"kubeadm\"",
            );
        }
        let kubeadm = match &raw.kubeadm {
            Some(k) => self.kubeadm(k.get_ref(), k.span(), network.as_ref()),
            None => {
                if raw.kind.get_ref() == "kubeadm" {
                    self.push(
                        0..0,
                        "kubeadm",
                        "missing table [kubeadm], required when kind = \"kubeadm\"".into(),
                    );
                }
                None
            }
        };
        if let Some(p) = raw.network.get_ref().private_subnets.as_ref()
            && *p.get_ref()
            && raw.kind.get_ref() == "kubeadm"
        {
            self.err(
                    p,
                    "network.private_subnets",
                    "private subnets (behind a NAT gateway) are for kind = \"eks\"; kubeadm nodes live in the public subnets",
                );
        }
        let addons = match &raw.addons {
            Some(a) => self.addons(a.get_ref()),
            None => AddonsSpec::default(),
        };
        let enforces = match (raw.kind.get_ref().as_str(), &kubeadm) {
            // The VPC CNI's network policy agent is on (vpc-cni's enableNetworkPolicy).
            ("eks", _) => Some(true),
            (_, Some(k)) => Some(k.cni.enforces_network_policy()),
            _ => None,
        };
        let security = match &raw.security {
            Some(sec) => self.security(sec.get_ref(), enforces, raw.kind.get_ref() == "eks"),
            None => SecuritySpec::default(),
        };
        let mut eks = eks;
        if let Some(e) = eks.as_mut() {
            // On EKS, bindings are access entries scoped to their namespaces.
            for b in &security.bindings {
                if let Subject::User(arn) = &b.subject {
                    if e.access.iter().any(|a| &a.principal_arn == arn) {
                        let at = raw
                            .security
                            .as_ref()
                            .and_then(|sec| {
                                sec.get_ref().bindings.iter().find_map(|b| {
                                    b.get_ref().user.as_ref().filter(|u| u.get_ref() == arn)
                                })
                            })
                            .map_or(0..0, |u| u.span());
                        self.push(
                            at,
                            "security.bindings",
                            format!("`{arn}` is in both [[eks.access]] and [[security.bindings]]: list it once"),
                        );
                    } else {
                        e.access.push(AccessEntry {
                            principal_arn: arn.clone(),
                            policy: b.role.access_policy(),
                            namespaces: b.namespaces.clone(),
                        });
                    }
                }
            }
        }
        let flavor = match raw.kind.get_ref().as_str() {
            "eks" => Flavor::Eks(eks?),
            _ => Flavor::Kubeadm(kubeadm?),
        };
        Some(ClusterSpec {
            name,
            region,
            network: network?,
            flavor,
            addons,
            security,
            tags,
            ttl,
        })
    }

    pub(super) fn tags(
        &mut self,
        raw: &BTreeMap<String, Spanned<String>>,
    ) -> BTreeMap<String, String> {
        if raw.len() > 40 {
            self.push(0..0, "tags", format!("{} tags given; at most 40 (AWS allows 50 per resource and provision uses up to 10)", raw.len()));
        }
        let mut out = BTreeMap::new();
        for (k, v) in raw {
            let field = format!("tags.{k}");
            let lower = k.to_ascii_lowercase();
            if k.is_empty() || k.len() > 128 {
                self.err(v, &field, "tag keys are 1 to 128 characters");
            } else if lower.starts_with("aws:")
                || lower.starts_with("provision:")
                || lower.starts_with("kubernetes.io/cluster/")
                || lower == "name"
            {
                self.err(v, &field, format!("tag key `{k}` is reserved (aws:*, provision:*, kubernetes.io/cluster/*, Name)"));
            }
            if v.get_ref().len() > 256 {
                self.err(v, &field, "tag values are at most 256 characters");
            }
            out.insert(k.clone(), v.get_ref().clone());
        }
        out
    }

    pub(super) fn network(&mut self, n: &RawNetwork) -> Option<NetworkSpec> {
        let vpc = self.cidr(&n.vpc_cidr, "network.vpc_cidr");
        if let Some(vpc) = vpc
            && !(16..=28).contains(&vpc.prefix())
        {
            self.err(
                &n.vpc_cidr,
                "network.vpc_cidr",
                format!("`{vpc}`: AWS VPC blocks are /16 to /28"),
            );
        }
        let azs = match &n.availability_zones {
            None => 2,
            Some(a) => {
                let v = *a.get_ref();
                if !(2..=6).contains(&v) {
                    self.err(
                        a,
                        "network.availability_zones",
                        format!("{v} is out of range: 2 to 6 availability zones"),
                    );
                }
                v.clamp(2, 6) as usize
            }
        };
        let private = n.private_subnets.as_ref().is_some_and(|p| *p.get_ref());
        let carved = if private { 2 * azs } else { azs };
        let mut subnets = None;
        if let Some(vpc) = vpc.filter(|v| (16..=28).contains(&v.prefix())) {
            let (prefix, at) = match &n.subnet_prefix {
                None => ((vpc.prefix() + 4).min(28), None),
                Some(p) => (p.get_ref().clamp(&0, &32).to_owned() as u8, Some(p)),
            };
            if let Some(p) = at {
                let want = *p.get_ref();
                if !(16..=28).contains(&want) || want < i64::from(vpc.prefix()) {
                    self.err(p, "network.subnet_prefix", format!("/{want} does not fit: subnets are /16 to /28 and no larger than the VPC (/{})", vpc.prefix()));
                }
            }
            match vpc.carve(prefix, carved) {
                Some(s) => subnets = Some(s),
                None => {
                    let (span, field) = match (&n.subnet_prefix, &n.availability_zones) {
                        (Some(p), _) => (p.span(), "network.subnet_prefix"),
                        (None, Some(a)) => (a.span(), "network.availability_zones"),
                        (None, None) => (n.vpc_cidr.span(), "network.vpc_cidr"),
                    };
                    self.push(
                        span,
                        field,
                        format!("{carved} subnets of /{prefix} do not fit in {vpc}"),
                    );
                }
            }
        }
        let mut admin = Vec::new();
        if n.admin_cidrs.get_ref().is_empty() {
            self.err(
                &n.admin_cidrs,
                "network.admin_cidrs",
                "at least one CIDR is needed: the API server (6443) is reachable only from these",
            );
        }
        for (i, c) in n.admin_cidrs.get_ref().iter().enumerate() {
            let field = format!("network.admin_cidrs[{i}]");
            if let Some(net) = self.cidr(c, &field) {
                if admin.contains(&net) {
                    self.err(c, &field, format!("`{net}` is listed twice"));
                } else {
                    if net.is_anywhere() {
                        self.warn(&field, "0.0.0.0/0 opens the Kubernetes API (and SSH, if enabled) to the whole internet");
                    }
                    admin.push(net);
                }
            }
        }
        if !admin.iter().any(Ipv4Net::is_anywhere) && crate::core::cidr::cover_everything(&admin) {
            self.warn(
                "network.admin_cidrs",
                "together these CIDRs are every IPv4 address: they open the Kubernetes API (and SSH, if enabled) to the whole internet, as 0.0.0.0/0 would",
            );
        }
        let mut public: Vec<Ipv4Net> = subnets?;
        let private_cidrs = public.split_off(azs);
        Some(NetworkSpec {
            vpc_cidr: vpc?,
            subnet_cidrs: public,
            private_subnet_cidrs: private_cidrs,
            admin_cidrs: admin,
        })
    }
}
