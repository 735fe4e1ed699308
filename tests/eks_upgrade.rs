//! EKS version upgrades end to end: the real binary against the emulator (its `eks_updates.py`:
//! UpdateClusterVersion, UpdateAddon, UpdateNodegroupVersion, DescribeUpdate, ListUpdates,
//! DescribeAddonVersions, ListInsights). `plan` lists the steps, `up` runs them one minor at a
//! time, a pinned add-on stays where it is while compatible and is refused by name when not, a
//! downgrade is refused, and a second `up` changes nothing.

mod common;

use common::{Cluster, eks_cluster_of, nodegroup_of, sdk};
use provision::aws::Clients;

/// An EKS cluster at `version`, its node group updated two nodes at a time, CoreDNS pinned.
fn cluster(prefix: &str, version: &str, coredns: &str) -> Cluster {
    Cluster::eks(
        prefix,
        "availability_zones = 2",
        &format!(
            r#"version = "{version}"
addons = ["vpc-cni", {{ name = "coredns", version = "{coredns}" }}, "kube-proxy", "eks-pod-identity-agent"]
[eks.nodegroup]
instance_types = ["t3.large"]
min = 1
max = 4
desired = 2
max_unavailable = 2
"#
        ),
    )
}

async fn addon_version(c: &Clients, cluster: &str, name: &str) -> String {
    c.eks
        .describe_addon()
        .cluster_name(cluster)
        .addon_name(name)
        .send()
        .await
        .unwrap()
        .addon()
        .unwrap()
        .addon_version()
        .unwrap()
        .to_string()
}

/// How many updates EKS lists for the cluster (`None`), an add-on or a node group.
async fn updates(
    c: &Clients,
    cluster: &str,
    addon: Option<&str>,
    nodegroup: Option<&str>,
) -> usize {
    c.eks
        .list_updates()
        .name(cluster)
        .set_addon_name(addon.map(str::to_string))
        .set_nodegroup_name(nodegroup.map(str::to_string))
        .send()
        .await
        .unwrap()
        .update_ids()
        .len()
}

/// The changes of the plan's row `id`.
fn changes(run: &common::Run, id: &str) -> Vec<String> {
    run.summary()["plan"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == id)
        .unwrap_or_else(|| panic!("no {id} row"))["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn two_minors_up_one_at_a_time_with_add_ons_and_node_group_and_a_second_up_changes_nothing() {
    // CoreDNS pinned to 1.34's default, which 1.33, 1.34 and 1.35 all run.
    let cl = cluster("upg", "1.33", "v1.12.0-eksbuild.1");
    let c = sdk().await;
    cl.up();
    let ng = format!("{}-nodes", cl.name);
    assert_eq!(eks_cluster_of(&c, &cl.name).await.version(), Some("1.33"));
    assert_eq!(nodegroup_of(&c, &cl.name).await.version(), Some("1.33"));
    assert_eq!(
        addon_version(&c, &cl.name, "vpc-cni").await,
        "v1.19.0-eksbuild.1"
    );
    assert_eq!(
        addon_version(&c, &cl.name, "coredns").await,
        "v1.12.0-eksbuild.1"
    );
    let config = nodegroup_of(&c, &cl.name).await;
    assert_eq!(
        config.update_config().and_then(|u| u.max_unavailable()),
        Some(2),
        "max_unavailable goes into CreateNodegroup's updateConfig"
    );

    cl.edit("version = \"1.33\"", "version = \"1.35\"");
    let plan = cl.run(&["plan", "-f", cl.spec_arg()]);
    assert!(plan.ok(), "{}", plan.stderr);
    assert_eq!(
        changes(&plan, "eks-upgrade"),
        [
            "control plane 1.33 -> 1.34",
            "add-on eks-pod-identity-agent v1.3.0-eksbuild.1 -> v1.4.0-eksbuild.1 (for 1.34)",
            "add-on kube-proxy v1.33.0-eksbuild.1 -> v1.34.0-eksbuild.1 (for 1.34)",
            "add-on vpc-cni v1.19.0-eksbuild.1 -> v1.20.0-eksbuild.1 (for 1.34)",
            format!("node group {ng} 1.33 -> 1.34").as_str(),
            "control plane 1.34 -> 1.35",
            "add-on eks-pod-identity-agent v1.4.0-eksbuild.1 -> v1.5.0-eksbuild.1 (for 1.35)",
            "add-on kube-proxy v1.34.0-eksbuild.1 -> v1.35.0-eksbuild.1 (for 1.35)",
            "add-on vpc-cni v1.20.0-eksbuild.1 -> v1.21.0-eksbuild.1 (for 1.35)",
            format!("node group {ng} 1.34 -> 1.35").as_str(),
        ]
    );
    assert!(
        plan.mutating_calls().is_empty(),
        "{:?}",
        plan.mutating_calls()
    );

    let up = cl.up();
    assert_eq!(up.calls("EKS", "UpdateClusterVersion"), 2);
    assert_eq!(up.calls("EKS", "UpdateNodegroupVersion"), 2);
    assert_eq!(up.calls("EKS", "UpdateAddon"), 6);
    // Its node group and add-ons run the new minor's versions; the pin is kept.
    assert_eq!(eks_cluster_of(&c, &cl.name).await.version(), Some("1.35"));
    let group = nodegroup_of(&c, &cl.name).await;
    assert_eq!(group.version(), Some("1.35"));
    assert_eq!(group.release_version(), Some("1.35.0-20261201"));
    assert_eq!(
        addon_version(&c, &cl.name, "vpc-cni").await,
        "v1.21.0-eksbuild.1"
    );
    assert_eq!(
        addon_version(&c, &cl.name, "kube-proxy").await,
        "v1.35.0-eksbuild.1"
    );
    assert_eq!(
        addon_version(&c, &cl.name, "coredns").await,
        "v1.12.0-eksbuild.1"
    );
    // One update per step, as EKS lists them.
    assert_eq!(updates(&c, &cl.name, None, None).await, 2);
    assert_eq!(updates(&c, &cl.name, None, Some(&ng)).await, 2);
    assert_eq!(updates(&c, &cl.name, Some("vpc-cni"), None).await, 2);
    assert_eq!(updates(&c, &cl.name, Some("coredns"), None).await, 0);

    let again = cl.up();
    assert!(
        again.mutating_calls().is_empty(),
        "{:?}",
        again.mutating_calls()
    );
    assert_eq!(
        again.calls("EKS", "DescribeAddonVersions"),
        0,
        "no upgrade, no catalog"
    );
    assert_eq!(again.calls("EKS", "ListInsights"), 0);

    // Lowering the version is refused before anything changes.
    cl.edit("version = \"1.35\"", "version = \"1.34\"");
    let down_version = cl.run(&["up", "-f", cl.spec_arg()]);
    assert!(!down_version.ok());
    assert!(
        down_version.stderr.contains("EKS cannot downgrade"),
        "{}",
        down_version.stderr
    );
    assert!(down_version.mutating_calls().is_empty());
    cl.down();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pin_the_target_minor_cannot_run_refuses_the_upgrade_naming_it() {
    // 1.33's CoreDNS, which 1.34 still runs but 1.35 does not.
    let cl = cluster("upg-pin", "1.33", "v1.11.0-eksbuild.1");
    let c = sdk().await;
    cl.up();
    cl.edit("version = \"1.33\"", "version = \"1.35\"");
    let up = cl.run(&["up", "-f", cl.spec_arg()]);
    assert!(!up.ok());
    assert!(
        up.stderr.contains(
            "add-on coredns is pinned to v1.11.0-eksbuild.1, which Kubernetes 1.35 cannot run"
        ),
        "{}",
        up.stderr
    );
    assert!(up.mutating_calls().is_empty(), "{:?}", up.mutating_calls());
    assert_eq!(eks_cluster_of(&c, &cl.name).await.version(), Some("1.33"));
    // Moving the pin lets it go; the pin itself is applied by UpdateAddon outside an upgrade too.
    cl.edit("version = \"1.35\"", "version = \"1.33\"");
    cl.edit("v1.11.0-eksbuild.1", "v1.12.0-eksbuild.1");
    let pin = cl.up();
    assert_eq!(pin.calls("EKS", "UpdateAddon"), 1);
    assert!(
        pin.actions()
            .contains(&("addons".to_string(), "updated".to_string())),
        "{:?}",
        pin.actions()
    );
    assert_eq!(
        pin.calls("EKS", "DescribeAddonVersions"),
        1,
        "the pin checked against 1.33's versions"
    );
    assert_eq!(
        addon_version(&c, &cl.name, "coredns").await,
        "v1.12.0-eksbuild.1"
    );
    // Back down is refused: EKS does not downgrade add-ons.
    cl.edit("v1.12.0-eksbuild.1", "v1.11.0-eksbuild.1");
    let back = cl.run(&["up", "-f", cl.spec_arg()]);
    assert!(!back.ok());
    assert!(
        back.stderr.contains("EKS cannot downgrade an add-on"),
        "{}",
        back.stderr
    );
    assert!(
        back.mutating_calls().is_empty(),
        "{:?}",
        back.mutating_calls()
    );
    cl.down();
}
