use super::*;
use crate::core::kinds::eks_cluster::ObsAddon;
use crate::core::kinds::nodegroup::ObsNodegroup;

/// vpc-cni's default for 1.MINOR is v1.MINOR.0; each minor also runs its neighbours'.
fn catalog(
    minors: std::ops::RangeInclusive<u32>,
) -> BTreeMap<u32, BTreeMap<String, AddonVersions>> {
    minors
        .map(|m| {
            let per = ["vpc-cni", "coredns"]
                .iter()
                .map(|a| {
                    (
                        a.to_string(),
                        AddonVersions {
                            default: Some(format!("v1.{m}.0-eksbuild.1")),
                            compatible: (m - 1..=m + 1)
                                .map(|k| format!("v1.{k}.0-eksbuild.1"))
                                .collect(),
                        },
                    )
                })
                .collect();
            (m, per)
        })
        .collect()
}

fn cluster(version: &str, nodegroup: &str, addons: &str) -> ObsEks {
    ObsEks {
        name: "c".into(),
        arn: "arn:aws:eks:us-east-1:123456789012:cluster/c".into(),
        status: "ACTIVE".into(),
        version: version.into(),
        endpoint: None,
        ca_data: None,
        owned: true,
        addons: ["vpc-cni", "coredns"]
            .iter()
            .map(|a| ObsAddon {
                name: a.to_string(),
                status: "ACTIVE".into(),
                issues: vec![],
                version: addons.into(),
            })
            .collect(),
        access_entries: vec![],
        cluster_sg: None,
        nodegroups: vec![ObsNodegroup {
            name: "c-nodes".into(),
            logical: Some("nodegroup".into()),
            arn: String::new(),
            status: "ACTIVE".into(),
            min: 1,
            max: 3,
            desired: 2,
            owned: true,
            instance_types: vec!["t3.large".into()],
            spot: false,
            labels: Default::default(),
            issues: vec![],
            version: nodegroup.into(),
            release_version: String::new(),
            max_unavailable: None,
            taints: vec![],
            launch_template: None,
            subnets: vec![],
        }],
        stamp: Default::default(),
        platform_version: None,
        health: vec![],
        upgrade: ObsUpgrade {
            catalog: catalog(33..=36),
            insights: Some(vec![]),
            ..Default::default()
        },
    }
}

fn want(version: &str) -> EksUpgrade {
    EksUpgrade {
        cluster: "eks-cluster".into(),
        name: "c".into(),
        version: version.into(),
        addons: vec!["vpc-cni".into(), "coredns".into()],
        pins: BTreeMap::new(),
        nodegroups: vec![("nodegroup".into(), None)],
        force: false,
    }
}

fn shown(steps: &[Drift]) -> Vec<String> {
    steps.iter().map(ToString::to_string).collect()
}

#[test]
fn two_minors_go_one_at_a_time_control_plane_then_add_ons_then_node_groups() {
    let e = cluster("1.33", "1.33", "v1.33.0-eksbuild.1");
    let steps = steps(&want("1.35"), &e).unwrap();
    assert_eq!(
        shown(&steps),
        [
            "control plane 1.33 -> 1.34",
            "add-on coredns v1.33.0-eksbuild.1 -> v1.34.0-eksbuild.1 (for 1.34)",
            "add-on vpc-cni v1.33.0-eksbuild.1 -> v1.34.0-eksbuild.1 (for 1.34)",
            "node group c-nodes 1.33 -> 1.34",
            "control plane 1.34 -> 1.35",
            "add-on coredns v1.34.0-eksbuild.1 -> v1.35.0-eksbuild.1 (for 1.35)",
            "add-on vpc-cni v1.34.0-eksbuild.1 -> v1.35.0-eksbuild.1 (for 1.35)",
            "node group c-nodes 1.34 -> 1.35",
        ]
    );
    let phases: Vec<Phase> = steps.iter().map(Drift::phase).collect();
    assert_eq!(phases[1], Phase::Addons);
    assert_eq!(phases[3], Phase::Nodegroups);
}

#[test]
fn a_converged_cluster_has_nothing_to_do() {
    let e = cluster("1.35", "1.35", "v1.33.0-eksbuild.1");
    assert_eq!(steps(&want("1.35"), &e), Ok(vec![]));
    // An old add-on is not moved outside an upgrade (the default of a minor changes over time).
    assert_eq!(
        lookups("1.35", false, &BTreeMap::new(), &e),
        Lookups::default()
    );
}

#[test]
fn lowering_the_version_is_refused() {
    let e = cluster("1.35", "1.35", "v1.35.0-eksbuild.1");
    let why = steps(&want("1.34"), &e).unwrap_err();
    assert!(matches!(why, Refusal::Downgrade { .. }), "{why:?}");
    assert!(
        why.to_string()
            .contains("runs Kubernetes 1.35, the spec says 1.34"),
        "{why}"
    );
}

#[test]
fn a_control_plane_update_in_progress_is_followed_not_started_again() {
    let mut e = cluster("1.33", "1.33", "v1.33.0-eksbuild.1");
    e.status = "UPDATING".into();
    e.upgrade.updates = vec![ObsUpdate {
        id: "u-1".into(),
        target: Target::Cluster,
        kind: "VersionUpdate".into(),
        status: "InProgress".into(),
        to: Some("1.34".into()),
        errors: vec![],
    }];
    let s = shown(&steps(&want("1.35"), &e).unwrap());
    assert_eq!(
        s[0],
        "follow the update u-1 of the control plane in progress (to 1.34)"
    );
    assert_eq!(
        s.iter().filter(|s| s.starts_with("control plane")).count(),
        1,
        "{s:?}"
    );
    assert_eq!(s[4], "control plane 1.34 -> 1.35");
}

#[test]
fn a_run_killed_after_the_control_plane_catches_up_the_add_ons_and_node_groups() {
    let e = cluster("1.34", "1.33", "v1.33.0-eksbuild.1");
    let s = shown(&steps(&want("1.35"), &e).unwrap());
    assert_eq!(
        s[0],
        "add-on coredns v1.33.0-eksbuild.1 -> v1.34.0-eksbuild.1 (for 1.34)"
    );
    assert_eq!(s[2], "node group c-nodes 1.33 -> 1.34");
    assert_eq!(s[3], "control plane 1.34 -> 1.35");
    assert_eq!(s.len(), 7);
}

#[test]
fn a_node_group_update_in_progress_is_followed() {
    let mut e = cluster("1.35", "1.34", "v1.35.0-eksbuild.1");
    e.nodegroups[0].status = "UPDATING".into();
    e.upgrade.updates = vec![ObsUpdate {
        id: "u-2".into(),
        target: Target::Nodegroup("c-nodes".into()),
        kind: "VersionUpdate".into(),
        status: "InProgress".into(),
        to: Some("1.35".into()),
        errors: vec![],
    }];
    assert_eq!(
        shown(&steps(&want("1.35"), &e).unwrap()),
        ["follow the update u-2 of node group c-nodes in progress (to 1.35)"]
    );
}

#[test]
fn a_node_group_configuration_update_is_waited_for_then_its_version_updated() {
    let mut e = cluster("1.35", "1.34", "v1.35.0-eksbuild.1");
    e.upgrade.updates = vec![ObsUpdate {
        id: "u-4".into(),
        target: Target::Nodegroup("c-nodes".into()),
        kind: "ConfigUpdate".into(),
        status: "InProgress".into(),
        to: None,
        errors: vec![],
    }];
    assert_eq!(
        shown(&steps(&want("1.35"), &e).unwrap()),
        [
            "follow the update u-4 of node group c-nodes in progress",
            "node group c-nodes 1.34 -> 1.35"
        ]
    );
}

#[test]
fn an_update_that_is_not_a_step_is_refused_naming_it() {
    let mut e = cluster("1.34", "1.34", "v1.34.0-eksbuild.1");
    e.upgrade.updates = vec![ObsUpdate {
        id: "u-3".into(),
        target: Target::Cluster,
        kind: "EndpointAccessUpdate".into(),
        status: "InProgress".into(),
        to: None,
        errors: vec![],
    }];
    let why = steps(&want("1.35"), &e).unwrap_err();
    assert!(
        why.to_string()
            .contains("the control plane has an update in progress"),
        "{why}"
    );
    assert!(
        why.to_string().contains("EndpointAccessUpdate u-3"),
        "{why}"
    );
    // Without an upgrade to make, an update in progress is the cluster diff's to wait for.
    assert_eq!(steps(&want("1.34"), &e), Ok(vec![]));
}

#[test]
fn insights_in_error_refuse_unless_forced() {
    let mut e = cluster("1.34", "1.34", "v1.34.0-eksbuild.1");
    e.upgrade.insights = Some(vec![ObsInsight {
        id: "ins-1".into(),
        name: "Kubelet version skew".into(),
        reason: "nodes two minors behind".into(),
        recommendation: "upgrade the nodes first".into(),
    }]);
    let why = steps(&want("1.35"), &e).unwrap_err();
    assert!(
        why.to_string()
            .contains("Kubelet version skew (nodes two minors behind): upgrade the nodes first"),
        "{why}"
    );
    assert!(why.to_string().contains("--force"), "{why}");
    let forced = EksUpgrade {
        force: true,
        ..want("1.35")
    };
    assert_eq!(steps(&forced, &e).unwrap().len(), 4);
    assert!(!lookups("1.35", true, &BTreeMap::new(), &e).insights);
    assert!(lookups("1.35", false, &BTreeMap::new(), &e).insights);
}

#[test]
fn a_pin_is_kept_when_compatible_and_refused_naming_it_when_not() {
    let e = cluster("1.34", "1.34", "v1.34.0-eksbuild.1");
    let mut w = want("1.35");
    w.pins.insert("coredns".into(), "v1.34.0-eksbuild.1".into());
    let s = shown(&steps(&w, &e).unwrap());
    assert!(!s.iter().any(|s| s.contains("coredns")), "{s:?}");
    assert!(s.iter().any(|s| s.contains("vpc-cni")), "{s:?}");
    // Pinned to 1.33's, which 1.34 still runs and 1.35 does not.
    let old = cluster("1.34", "1.34", "v1.33.0-eksbuild.1");
    w.pins.insert("coredns".into(), "v1.33.0-eksbuild.1".into());
    let why = steps(&w, &old).unwrap_err();
    assert!(
        why.to_string()
            .contains("coredns is pinned to v1.33.0-eksbuild.1, which Kubernetes 1.35 cannot run"),
        "{why}"
    );
    assert!(why.to_string().contains("v1.36.0-eksbuild.1"), "{why}");
}

#[test]
fn an_add_on_newer_than_the_default_is_kept_and_one_without_a_version_refused() {
    let e = cluster("1.34", "1.34", "v1.35.0-eksbuild.1");
    let s = shown(&steps(&want("1.35"), &e).unwrap());
    assert_eq!(
        s,
        [
            "control plane 1.34 -> 1.35",
            "node group c-nodes 1.34 -> 1.35"
        ]
    );
    let mut e = e;
    e.upgrade.catalog.get_mut(&35).unwrap().remove("coredns");
    let why = steps(&want("1.35"), &e).unwrap_err();
    assert!(
        why.to_string()
            .contains("no version of the add-on coredns for Kubernetes 1.35"),
        "{why}"
    );
}

#[test]
fn the_update_config_is_set_before_the_first_version_update_only() {
    let e = cluster("1.33", "1.33", "v1.33.0-eksbuild.1");
    let mut w = want("1.35");
    w.nodegroups[0].1 = Some(MaxUnavailable::Percent(50));
    let s = shown(&steps(&w, &e).unwrap());
    assert_eq!(
        s[3],
        "node group c-nodes 1.33 -> 1.34 (at most 50% unavailable)"
    );
    assert_eq!(s[7], "node group c-nodes 1.34 -> 1.35");
}

#[test]
fn the_catalog_and_insights_are_looked_up_only_for_a_pending_upgrade() {
    let e = cluster("1.33", "1.33", "v1.33.0-eksbuild.1");
    assert_eq!(
        lookups("1.35", false, &BTreeMap::new(), &e),
        Lookups {
            minors: vec![33, 34, 35],
            insights: true
        }
    );
    let behind = cluster("1.35", "1.34", "v1.35.0-eksbuild.1");
    assert_eq!(
        lookups("1.35", false, &BTreeMap::new(), &behind),
        Lookups {
            minors: vec![35],
            insights: false
        }
    );
}

#[test]
fn add_on_versions_order_by_their_numbers() {
    use std::cmp::Ordering::*;
    assert_eq!(
        compare("v1.19.10-eksbuild.1", "v1.19.2-eksbuild.3"),
        Greater
    );
    assert_eq!(compare("v1.19.2-eksbuild.1", "v1.19.2-eksbuild.2"), Less);
    assert_eq!(compare("v1.19.2-eksbuild.1", "v1.19.2-eksbuild.1"), Equal);
    assert_eq!(minor("1.35"), Some(35));
    assert_eq!(minor("v1.35"), None);
}

#[test]
fn a_pin_below_what_runs_is_refused_in_and_outside_an_upgrade() {
    let e = cluster("1.34", "1.34", "v1.34.0-eksbuild.1");
    let mut w = want("1.35");
    w.pins.insert("coredns".into(), "v1.33.0-eksbuild.1".into());
    let why = steps(&w, &e).unwrap_err();
    assert!(matches!(why, Refusal::AddonDowngrade { .. }), "{why:?}");
    assert!(
        why.to_string().contains("EKS cannot downgrade an add-on"),
        "{why}"
    );
    // Outside an upgrade: the running minor's catalog is read, and the pin checked against it.
    let mut pins = BTreeMap::new();
    pins.insert("coredns".to_string(), "v1.36.0-eksbuild.1".to_string());
    assert_eq!(
        lookups("1.34", false, &pins, &e),
        Lookups {
            minors: vec![34],
            insights: false
        }
    );
    assert_eq!(
        pin_refusal(&e, "coredns", "v1.34.0-eksbuild.1", "v1.35.0-eksbuild.1"),
        None
    );
    let far = pin_refusal(&e, "coredns", "v1.34.0-eksbuild.1", "v1.36.0-eksbuild.1").unwrap();
    assert!(
        far.to_string().contains("which Kubernetes 1.34 cannot run"),
        "{far}"
    );
    assert!(matches!(
        pin_refusal(&e, "coredns", "v1.34.0-eksbuild.1", "v1.33.0-eksbuild.1"),
        Some(Refusal::AddonDowngrade { .. })
    ));
}
