//! The planner's tests, data-driven: a converged cluster (what AWS reports after `up`), one
//! change to it per case, and the row the plan must hold for it. Adding a case is adding a row.

use super::cases::{CASES, demo, eks, eks_full, kubeadm_with_addons, role};
use super::converged::{NOW, converged};
use super::*;
use crate::core::graph;
use crate::core::graph::tests::{demo_spec, eks_spec};
use crate::core::kinds::eks_cluster::ObsAccessEntry;
use crate::core::kinds::security_group::ObsSg;
use crate::core::kinds::subnet::ObsSubnet;
use crate::core::kinds::vpc::ObsVpc;
use crate::core::spec::ClusterSpec;

fn rows(spec: &ClusterSpec, obs: &Observed) -> Vec<Row> {
    plan(spec, &graph::build(spec), obs, NOW).rows()
}

#[test]
fn a_converged_cluster_plans_to_keep_everything() {
    for spec in [
        demo_spec(3, 2),
        kubeadm_with_addons(),
        eks_spec(""),
        eks_full(),
    ] {
        let r = rows(&spec, &converged(&spec));
        let moving: Vec<&Row> = r.iter().filter(|r| r.action != Action::Keep).collect();
        assert!(moving.is_empty(), "{}: {moving:#?}", spec.kind());
        assert!(converged(&spec).instances.iter().all(|i| i.is_live()));
    }
}

#[test]
fn an_empty_account_means_create_everything_and_read_the_lookups() {
    for spec in [demo_spec(3, 2), kubeadm_with_addons(), eks_full()] {
        for r in rows(&spec, &Observed::default()) {
            let want = match r.kind {
                "availability-zones" | "ami" => Action::Read,
                // New workers join with the token the new control plane makes.
                "join-token" => Action::Read,
                // A new EKS cluster is made at the spec's version: nothing to upgrade.
                "eks-upgrade" | "nodegroup-retire" | "control-plane-upgrade" => Action::Keep,
                _ => Action::Create,
            };
            assert_eq!(r.action, want, "{} {}", r.id, r.kind);
            assert!(r.reason.is_none() && r.warnings.is_empty(), "{r:?}");
        }
    }
}

#[test]
fn every_drift_warning_and_refusal_gives_its_row() {
    for case in CASES.iter().chain(super::cases_kubeadm::KUBEADM_DAY2) {
        let spec = (case.spec)();
        let mut obs = converged(&spec);
        (case.change)(&mut obs);
        let all = rows(&spec, &obs);
        let row = all
            .iter()
            .find(|r| r.id == case.id && r.action == case.action)
            .unwrap_or_else(|| {
                panic!(
                    "{}: no {} row for {}: {:#?}",
                    case.what,
                    case.action.as_str(),
                    case.id,
                    all.iter()
                        .filter(|r| r.action != Action::Keep)
                        .collect::<Vec<_>>()
                )
            });
        let text: Vec<&String> = row
            .changes
            .iter()
            .chain(&row.warnings)
            .chain(&row.reason)
            .collect();
        assert!(
            case.says.is_empty() || text.iter().any(|t| t.contains(case.says)),
            "{}: {row:#?}",
            case.what
        );
        let plan = plan(&spec, &graph::build(&spec), &obs, NOW);
        assert_eq!(
            plan.refused(),
            case.action == Action::Refuse,
            "{}: a refusal, and only a refusal, stops up",
            case.what
        );
        // Exactly this change moves (a refusal may come with the consequences of its state).
        if case.action != Action::Refuse {
            let others: Vec<&Row> = all
                .iter()
                .filter(|r| r.action != Action::Keep && r.id != case.id)
                .filter(|r| !case.also.contains(&r.id.as_str()))
                .collect();
            assert!(others.is_empty(), "{}: {others:#?}", case.what);
        }
    }
}

#[test]
fn an_empty_duplicate_vpc_is_deleted_first_and_the_rest_planned_without_it() {
    let spec = demo();
    let mut obs = converged(&spec);
    let mut dup = obs.vpcs[0].clone();
    dup.id = "vpc-0dup".into();
    obs.vpcs.push(dup);
    let p = plan(&spec, &graph::build(&spec), &obs, NOW);
    assert_eq!(
        p.loose,
        [Loose::SpareVpc {
            id: "vpc-0dup".into()
        }]
    );
    let r = p.rows();
    assert_eq!(
        (r[0].action, r[0].aws_id.as_deref()),
        (Action::Delete, Some("vpc-0dup"))
    );
    assert!(r[1..].iter().all(|r| r.action == Action::Keep), "{r:#?}");
    assert!(!p.refused());
}

#[test]
fn spare_vpcs_are_the_empty_duplicates() {
    use crate::core::kinds::vpc::spare_vpcs;
    let vpc = |id: &str| ObsVpc {
        id: id.into(),
        logical: Some("vpc".into()),
        cidr: "10.0.0.0/16".into(),
        dns_support: None,
        dns_hostnames: None,
        stamp: Default::default(),
    };
    let mut obs = Observed {
        vpcs: vec![vpc("vpc-b"), vpc("vpc-a")],
        ..Observed::default()
    };
    assert_eq!(
        spare_vpcs(&obs),
        ["vpc-b"],
        "both empty: keep the first by id"
    );
    obs.subnets.push(ObsSubnet {
        id: "s".into(),
        logical: None,
        vpc_id: "vpc-b".into(),
        cidr: String::new(),
        az: String::new(),
        map_public_ip: true,
        reserved: Vec::new(),
    });
    assert_eq!(spare_vpcs(&obs), ["vpc-a"], "keep the one in use");
    obs.security_groups.push(ObsSg {
        id: "g".into(),
        logical: None,
        vpc_id: "vpc-a".into(),
        rules: vec![],
    });
    assert!(spare_vpcs(&obs).is_empty(), "both in use: nothing is spare");
    assert!(spare_vpcs(&Observed::default()).is_empty(), "no VPC at all");
}

#[test]
fn zones_are_looked_up_while_any_subnet_public_or_private_is_missing() {
    // Found by the crash benchmark: an `up` killed after the public subnets but before the
    // private ones skipped the lookup on resume, and the private subnets had no zone.
    let spec = eks_spec("private_subnets = true");
    let mut obs = converged(&spec);
    obs.subnets
        .retain(|s| !s.logical.as_deref().unwrap().starts_with("private-"));
    let azs = rows(&spec, &obs)
        .into_iter()
        .find(|r| r.id == graph::AZS)
        .unwrap();
    assert_eq!(azs.action, Action::Read);
}

#[test]
fn access_entries_converge_on_the_spec() {
    use crate::core::kinds::access_entries::{AccessChange, access_changes, access_policy_arn};
    use crate::core::spec::{AccessEntry, AccessPolicy};
    let arn = "arn:aws:eks:us-east-1:1:cluster/e";
    let pol = |p: AccessPolicy| access_policy_arn(arn, p);
    let want = vec![
        AccessEntry {
            principal_arn: "arn:aws:iam::1:role/a".into(),
            policy: AccessPolicy::View,
            namespaces: vec![],
        },
        AccessEntry {
            principal_arn: "arn:aws:iam::1:role/b".into(),
            policy: AccessPolicy::Edit,
            namespaces: vec!["x".into(), "y".into()],
        },
        AccessEntry {
            principal_arn: "arn:aws:iam::1:role/new".into(),
            policy: AccessPolicy::Admin,
            namespaces: vec![],
        },
    ];
    let obs = vec![
        // a: was admin, is now view: view granted, admin revoked.
        ObsAccessEntry {
            principal: "arn:aws:iam::1:role/a".into(),
            owned: true,
            policies: vec![(pol(AccessPolicy::Admin), vec![])],
        },
        // b: right policy, scope in another order: nothing to do.
        ObsAccessEntry {
            principal: "arn:aws:iam::1:role/b".into(),
            owned: true,
            policies: vec![(pol(AccessPolicy::Edit), vec!["y".into(), "x".into()])],
        },
        // ours, gone from the spec: removed.
        ObsAccessEntry {
            principal: "arn:aws:iam::1:role/old".into(),
            owned: true,
            policies: vec![],
        },
        // the creator's, not ours: left alone.
        ObsAccessEntry {
            principal: "arn:aws:iam::1:user/creator".into(),
            owned: false,
            policies: vec![(pol(AccessPolicy::ClusterAdmin), vec![])],
        },
    ];
    assert_eq!(
        access_changes(arn, &want, &obs),
        [
            AccessChange::Associate {
                principal: "arn:aws:iam::1:role/a".into(),
                policy_arn: pol(AccessPolicy::View),
                namespaces: vec![]
            },
            AccessChange::Disassociate {
                principal: "arn:aws:iam::1:role/a".into(),
                policy_arn: pol(AccessPolicy::Admin)
            },
            AccessChange::Create {
                principal: "arn:aws:iam::1:role/new".into(),
                policy_arn: pol(AccessPolicy::Admin),
                namespaces: vec![]
            },
            AccessChange::Delete {
                principal: "arn:aws:iam::1:role/old".into()
            },
        ]
    );
    // The spec names the creator's principal with another policy: added, the creator's
    // cluster-admin kept.
    let creator = vec![AccessEntry {
        principal_arn: "arn:aws:iam::1:user/creator".into(),
        policy: AccessPolicy::View,
        namespaces: vec![],
    }];
    let c = access_changes(arn, &creator, &obs[3..4]);
    assert_eq!(c.len(), 1, "{c:?}");
    assert!(matches!(c[0], AccessChange::Associate { .. }));
    assert_eq!(
        access_policy_arn("arn:aws-cn:eks:cn-north-1:1:cluster/e", AccessPolicy::Edit),
        "arn:aws-cn:eks::aws:cluster-access-policy/AmazonEKSEditPolicy"
    );
}

#[test]
fn destroy_lists_what_kubernetes_made_first_and_the_secret_last() {
    let spec = kubeadm_with_addons();
    let mut obs = converged(&spec);
    obs.leftovers
        .load_balancers
        .push(crate::core::observed::ObsLoadBalancer {
            id: "arn:lb".into(),
            classic: false,
        });
    let items = destroy(&obs, Teardown::default());
    assert_eq!(
        items.first().map(|(_, d)| d.aws_id.as_str()),
        Some("arn:lb")
    );
    assert_eq!(
        items.last().map(|(_, d)| d.id.as_str()),
        Some(graph::SECRET)
    );
    let position = |kind: &str| items.iter().position(|(_, d)| d.kind == kind).unwrap();
    assert!(position("instance") < position("security-group"));
    assert!(position("subnet") < position("vpc"));
    assert!(position("iam-role") < position("secret"));
    // Someone else's role of our name is not ours to delete.
    role(&mut obs, graph::ADDONS_ROLE).owned = false;
    assert!(
        !destroy(&obs, Teardown::default())
            .iter()
            .any(|(_, d)| d.id == graph::ADDONS_ROLE)
    );
    assert!(!obs.is_empty());
    assert!(Observed::default().is_empty());
}

#[test]
fn destroy_lists_the_eks_objects_only_when_the_cluster_is_ours() {
    let spec = eks_full();
    let mut obs = converged(&spec);
    let kinds = |obs: &Observed| -> Vec<&'static str> {
        destroy(obs, Teardown::default())
            .into_iter()
            .map(|(_, d)| d.kind)
            .collect()
    };
    for k in [
        "eks-cluster",
        "nodegroup",
        "addons",
        "access-entries",
        "nat-gateway",
        "elastic-ip",
    ] {
        assert!(kinds(&obs).contains(&k), "{k}");
    }
    eks(&mut obs).owned = false;
    for k in ["eks-cluster", "nodegroup", "addons", "access-entries"] {
        assert!(!kinds(&obs).contains(&k), "{k} of someone else's cluster");
    }
}

#[test]
fn down_deletes_the_snapshots_bucket_after_the_instances_unless_told_to_keep_it() {
    let spec = demo();
    let obs = converged(&spec);
    let order = |t| -> Vec<&'static str> { destroy(&obs, t).iter().map(|(_, d)| d.kind).collect() };
    let all = order(Teardown::default());
    let bucket = all.iter().position(|k| *k == "s3-bucket").expect("deleted");
    let last_instance = all.iter().rposition(|k| *k == "instance").unwrap();
    assert!(bucket > last_instance, "{all:?}");
    let keep = Teardown {
        keep_backups: true,
        ..Teardown::default()
    };
    assert!(!order(keep).contains(&"s3-bucket"));
    let said: Vec<String> = kept(&obs, "demo", "us-east-1", keep)
        .into_iter()
        .flat_map(|r| r.warnings)
        .collect();
    assert!(
        said.iter().any(|w| w
            .contains("etcd snapshots are kept in s3://provision-demo-use1-123456789012/etcd/")),
        "{said:?}"
    );
    assert!(
        kept(&obs, "demo", "us-east-1", Teardown::default())
            .iter()
            .all(|r| r.kind != "s3-bucket")
    );
}
