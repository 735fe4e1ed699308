//! The validator's unit tests.

use super::lexical::check_instance_type;
use super::model::*;
use super::*;
use crate::core::cidr::Ipv4Net;

pub(crate) const GOOD: &str = r#"
name = "demo"
region = "us-east-1"
kind = "kubeadm"

[network]
vpc_cidr = "10.0.0.0/16"
availability_zones = 2
admin_cidrs = ["203.0.113.0/24"]

[kubeadm]
kubernetes_version = "1.36"
cni = "calico"
instance_type = "t3.medium"
workers = 2
"#;

#[test]
fn good_spec_validates_with_defaults() {
    let (spec, warnings) = parse("good.toml", GOOD).unwrap();
    assert!(warnings.is_empty());
    assert_eq!(spec.name, "demo");
    let subnets: Vec<String> = spec
        .network
        .subnet_cidrs
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(subnets, ["10.0.0.0/20", "10.0.16.0/20"]);
    assert!(spec.network.private_subnet_cidrs.is_empty());
    let k = spec.kubeadm().unwrap();
    assert_eq!(k.pod_cidr.to_string(), "192.168.0.0/16");
    assert_eq!(k.ami, AmiSource::SsmParameter(UBUNTU_2404_SSM_AMD64.into()));
    assert_eq!(k.arch, Arch::Amd64);
    assert_eq!(k.root_volume_gb, 30);
    assert!(!k.ssh);
}

const EKS: &str = r#"
name = "eks-demo"
region = "us-west-2"
kind = "eks"

[network]
vpc_cidr = "10.30.0.0/16"
admin_cidrs = ["203.0.113.0/24"]

[eks]
version = "1.35"

[eks.nodegroup]
instance_types = ["t3.large", "t3a.large"]
min = 1
max = 3
desired = 2
capacity_type = "SPOT"
labels = { "team" = "platform", "example.com/tier" = "web" }

[[eks.access]]
principal_arn = "arn:aws:iam::123456789012:role/platform-admins"
policy = "cluster-admin"

[[eks.access]]
principal_arn = "arn:aws:iam::123456789012:user/dev"
policy = "edit"
namespaces = ["team-a", "team-b"]
"#;

#[test]
fn a_good_eks_spec_validates_with_defaults() {
    let (spec, warnings) = parse("eks.toml", EKS).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(spec.kind(), "eks");
    assert_eq!(spec.instance_type(), "t3.large");
    let e = spec.eks().unwrap();
    assert_eq!(e.version, "1.35");
    assert!(e.endpoint_public_access && e.endpoint_private_access);
    assert_eq!(
        (
            e.nodegroups[0].min,
            e.nodegroups[0].max,
            e.nodegroups[0].desired
        ),
        (1, 3, 2)
    );
    assert!(e.nodegroups[0].spot);
    assert_eq!(e.nodegroups[0].name, "nodes");
    assert_eq!(e.addons, DEFAULT_EKS_ADDONS.map(String::from));
    assert_eq!(e.access.len(), 2);
    assert_eq!(e.access[1].namespaces, ["team-a", "team-b"]);
    assert!(spec.network.private_subnet_cidrs.is_empty());
}

#[test]
fn addons_and_the_security_baseline_parse_with_defaults() {
    let text = format!(
        "{GOOD}\n[addons]\nmonitoring = true\nlogging = {{ instance_type = \"m7i.large\", versions = {{ elasticsearch = \"9.1.0\" }} }}\ntracing = false\n[security]\nnamespaces = [\"team-a\", \"team-b\"]\n[[security.bindings]]\ngroup = \"devs\"\nrole = \"edit\"\nnamespaces = [\"team-a\"]\n"
    );
    let (spec, warnings) = parse("a.toml", &text).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    let m = spec.addons.monitoring.as_ref().unwrap();
    assert_eq!(m.instance_type, "t3.medium");
    assert_eq!(m.versions["prometheus"], "v3.7.3");
    let l = spec.addons.logging.as_ref().unwrap();
    assert_eq!(l.instance_type, "m7i.large");
    assert_eq!(l.versions["elasticsearch"], "9.1.0");
    assert_eq!(
        l.versions["kibana"], "9.2.1",
        "the others keep their defaults"
    );
    assert!(spec.addons.tracing.is_none());
    assert!(spec.security.default_deny, "Calico enforces NetworkPolicy");
    assert_eq!(spec.security.namespaces, ["team-a", "team-b"]);
    assert_eq!(
        spec.security.bindings[0].subject,
        Subject::Group("devs".into())
    );
    assert_eq!(spec.security.bindings[0].role, BindingRole::Edit);
}

#[test]
fn the_security_baseline_is_checked_field_by_field() {
    let flannel = GOOD.replace("cni = \"calico\"", "cni = \"flannel\"");
    let cases = [
        (
            format!("{flannel}\n[security]\nnamespaces = [\"a\"]\ndefault_deny = true\n"),
            "security.default_deny",
        ),
        (
            format!("{GOOD}\n[security]\nnamespaces = [\"kube-system\"]\n"),
            "security.namespaces[0]",
        ),
        (
            format!("{GOOD}\n[security]\nnamespaces = [\"Team_A\"]\n"),
            "security.namespaces[0]",
        ),
        (
            format!(
                "{GOOD}\n[[security.bindings]]\nuser = \"a\"\ngroup = \"b\"\nrole = \"edit\"\nnamespaces = [\"x\"]\n"
            ),
            "security.bindings[0]",
        ),
        (
            format!(
                "{GOOD}\n[[security.bindings]]\nuser = \"a\"\nrole = \"owner\"\nnamespaces = [\"x\"]\n"
            ),
            "security.bindings[0].role",
        ),
        (
            format!(
                "{GOOD}\n[[security.bindings]]\nuser = \"a\"\nrole = \"view\"\nnamespaces = []\n"
            ),
            "security.bindings[0].namespaces",
        ),
        (
            format!("{GOOD}\n[addons]\nmonitoring = {{ versions = {{ grafana = \"latest\" }} }}\n"),
            "addons.monitoring.versions.grafana",
        ),
        (
            format!("{GOOD}\n[addons]\nmonitoring = {{ versions = {{ loki = \"3.0.0\" }} }}\n"),
            "addons.monitoring.versions.loki",
        ),
        (
            format!("{GOOD}\n[addons]\ntracing = {{ instance_type = \"t3.micro\" }}\n"),
            "addons.tracing.instance_type",
        ),
    ];
    for (text, field) in cases {
        let err = parse("s.toml", &text).unwrap_err();
        assert!(err.fields().contains(&field), "{field}: {err}");
    }
    let egress_alone = format!(
        "{GOOD}\n[security]\nnamespaces = [\"a\"]\ndefault_deny = false\ndefault_deny_egress = true\n"
    );
    let err = parse("s.toml", &egress_alone).unwrap_err();
    assert_eq!(err.fields(), ["security.default_deny_egress"], "{err}");
    let (spec, _) = parse(
        "s.toml",
        &format!("{GOOD}\n[security]\nnamespaces = [\"a\"]\ndefault_deny_egress = true\n"),
    )
    .unwrap();
    assert!(spec.security.default_deny && spec.security.default_deny_egress);
    // Flannel without an explicit default_deny: no policies, and a warning.
    let (spec, warnings) = parse(
        "s.toml",
        &format!("{flannel}\n[security]\nnamespaces = [\"a\"]\n"),
    )
    .unwrap();
    assert!(!spec.security.default_deny);
    assert_eq!(warnings[0].field, "security.default_deny");
}

#[test]
fn on_eks_bindings_become_namespaced_access_entries() {
    let text = format!(
        "{EKS}\n[[security.bindings]]\nuser = \"arn:aws:iam::123456789012:role/team-a\"\nrole = \"admin\"\nnamespaces = [\"team-a\"]\n"
    );
    let (spec, _) = parse("e.toml", &text).unwrap();
    let e = spec.eks().unwrap();
    let a = e
        .access
        .iter()
        .find(|a| a.principal_arn.ends_with("role/team-a"))
        .unwrap();
    assert_eq!(a.policy, AccessPolicy::Admin);
    assert_eq!(a.namespaces, ["team-a"]);
    assert!(spec.security.default_deny, "the VPC CNI enforces policy");
    let group = format!(
        "{EKS}\n[[security.bindings]]\ngroup = \"devs\"\nrole = \"view\"\nnamespaces = [\"x\"]\n"
    );
    let err = parse("e.toml", &group).unwrap_err();
    assert!(
        err.fields().contains(&"security.bindings[0].group"),
        "{err}"
    );
    let dup = format!(
        "{EKS}\n[[security.bindings]]\nuser = \"arn:aws:iam::123456789012:user/dev\"\nrole = \"view\"\nnamespaces = [\"x\"]\n"
    );
    let err = parse("e.toml", &dup).unwrap_err();
    assert!(err.fields().contains(&"security.bindings"), "{err}");
    assert!(err.issues.iter().all(|i| i.line > 1), "located: {err}");
}

#[test]
fn private_subnets_are_carved_after_the_public_ones() {
    let text = EKS.replace(
        "admin_cidrs = [\"203.0.113.0/24\"]",
        "admin_cidrs = [\"203.0.113.0/24\"]\nprivate_subnets = true",
    );
    let (spec, _) = parse("eks.toml", &text).unwrap();
    let s = |v: &[Ipv4Net]| v.iter().map(ToString::to_string).collect::<Vec<_>>();
    assert_eq!(
        s(&spec.network.subnet_cidrs),
        ["10.30.0.0/20", "10.30.16.0/20"]
    );
    assert_eq!(
        s(&spec.network.private_subnet_cidrs),
        ["10.30.32.0/20", "10.30.48.0/20"]
    );
    let err = parse(
        "k.toml",
        &GOOD.replace("[network]", "[network]\nprivate_subnets = true"),
    )
    .unwrap_err();
    assert_eq!(err.fields(), ["network.private_subnets"], "{err}");
}

#[test]
fn eks_tables_are_validated_field_by_field() {
    let cases = [
        ("version = \"1.35\"", "version = \"1.20\"", "eks.version"),
        ("min = 1", "min = 4", "eks.nodegroup.desired"),
        (
            "capacity_type = \"SPOT\"",
            "capacity_type = \"spot\"",
            "eks.nodegroup.capacity_type",
        ),
        (
            "[\"t3.large\", \"t3a.large\"]",
            "[\"t3.large\", \"m7g.large\"]",
            "eks.nodegroup.instance_types",
        ),
        (
            "policy = \"edit\"",
            "policy = \"owner\"",
            "eks.access[1].policy",
        ),
        (
            "role/platform-admins",
            "group/platform-admins",
            "eks.access[0].principal_arn",
        ),
        ("\"team-b\"]", "\"Team_B\"]", "eks.access[1].namespaces"),
        (
            "\"team\" = \"platform\"",
            "\"-team\" = \"platform\"",
            "eks.nodegroup.labels.-team",
        ),
        (
            "version = \"1.35\"",
            "version = \"1.35\"\nendpoint_public_access = false\nendpoint_private_access = false",
            "eks.endpoint_public_access",
        ),
        (
            "version = \"1.35\"",
            "version = \"1.35\"\nendpoint_private_access = false",
            "eks.endpoint_private_access",
        ),
    ];
    for (from, to, field) in cases {
        assert!(EKS.contains(from), "{from}");
        let err = parse("eks.toml", &EKS.replacen(from, to, 1)).unwrap_err();
        assert!(err.fields().contains(&field), "{to}: {err}");
    }
    let err = parse(
        "eks.toml",
        &EKS.replace("[eks.nodegroup]", "[eks.nodegroupz]"),
    )
    .unwrap_err();
    assert!(err.issues[0].message.contains("nodegroupz"), "{err}");
}

#[test]
fn tables_must_match_the_kind() {
    let err = parse("k.toml", &format!("{GOOD}\n[eks]\n[eks.nodegroup]\ninstance_types = [\"t3.large\"]\nmin = 1\nmax = 1\ndesired = 1\n")).unwrap_err();
    assert_eq!(err.fields(), ["eks"], "{err}");
}

#[test]
fn instance_type_arch() {
    assert_eq!(check_instance_type("t4g.medium"), Ok(Arch::Arm64));
    assert_eq!(check_instance_type("m7gd.large"), Ok(Arch::Arm64));
    assert_eq!(check_instance_type("g4dn.xlarge"), Ok(Arch::Amd64));
    assert_eq!(check_instance_type("m7i-flex.large"), Ok(Arch::Amd64));
    assert!(check_instance_type("t3.micro").is_err());
    assert!(check_instance_type("t2.small").is_err());
    assert!(check_instance_type("t3.small").is_ok());
    assert!(check_instance_type("medium").is_err());
}

#[test]
fn world_open_admin_cidr_is_a_warning() {
    let text = GOOD.replace("203.0.113.0/24", "0.0.0.0/0");
    let (_, warnings) = parse("w.toml", &text).unwrap();
    assert_eq!(warnings.len(), 1);
    assert_eq!(warnings[0].field, "network.admin_cidrs[0]");
}

#[test]
fn line_and_column() {
    assert_eq!(line_col("a\nbc\nd", 3), (2, 2));
    assert_eq!(line_col("abc", 0), (1, 1));
}

#[test]
fn workers_are_one_pool_named_workers_and_pools_take_their_defaults() {
    let (spec, _) = parse("good.toml", GOOD).unwrap();
    let k = spec.kubeadm().unwrap();
    assert_eq!(k.pools.len(), 1);
    let p = &k.pools[0];
    assert_eq!(
        (p.name.as_str(), p.count, p.instance_type.as_str()),
        (DEFAULT_POOL, 2, "t3.medium")
    );
    assert_eq!(
        (p.zones.clone(), p.max_surge, p.max_unavailable),
        (vec![0, 1], 1, 0)
    );
    assert!(!p.spot && p.labels.is_empty() && p.taints.is_empty());

    let text = GOOD.replace(
        "workers = 2\n",
        "[[kubeadm.pools]]\nname = \"general\"\ncount = 3\n\n[[kubeadm.pools]]\nname = \"gpu\"\ninstance_type = \"g5.xlarge\"\ncount = 0\nspot = true\nsubnets = [1]\nmax_surge = 0\nmax_unavailable = 2\ntaints = [{ key = \"gpu\", effect = \"NoSchedule\" }]\n",
    );
    let (spec, _) = parse("pools.toml", &text).unwrap();
    let k = spec.kubeadm().unwrap();
    assert_eq!(k.workers(), 3);
    let gpu = &k.pools[1];
    assert_eq!(gpu.instance_type, "g5.xlarge");
    assert_eq!(
        (gpu.zones.clone(), gpu.max_surge, gpu.max_unavailable),
        (vec![1], 0, 2)
    );
    assert!(gpu.spot);
    assert_eq!(
        gpu.taints[0].effect, "NO_SCHEDULE",
        "Kubernetes' spelling is kept as EKS's"
    );
    assert_eq!(
        k.pools[0].instance_type, "t3.medium",
        "the control plane's type by default"
    );
}
