//! The EBS volumes a cluster's CSI driver made for claims outlive it: `plan --destroy` lists
//! them, `down` keeps and names them, `down --delete-volumes` deletes them (also once the
//! cluster is gone), and a volume of another cluster is never touched.

mod common;

use common::{Cluster, REGION, sdk};

/// A volume as the EBS CSI driver makes it for `cluster`'s claim `ns/name`, with provision's
/// ownership tag when `ours` (the driver's configuration that `up` sets).
async fn csi_volume(
    c: &provision::aws::Clients,
    cluster: &str,
    claim: &str,
    gb: i32,
    ours: bool,
) -> String {
    use aws_sdk_ec2::types::{ResourceType, Tag, TagSpecification};
    let (ns, name) = claim.split_once('/').unwrap();
    let tag = |k: &str, v: &str| Tag::builder().key(k).value(v).build();
    let mut tags = vec![
        tag("ebs.csi.aws.com/cluster", "true"),
        tag(&format!("kubernetes.io/cluster/{cluster}"), "owned"),
        tag("CSIVolumeName", "pvc-0123"),
        tag("kubernetes.io/created-for/pvc/namespace", ns),
        tag("kubernetes.io/created-for/pvc/name", name),
    ];
    if ours {
        tags.push(tag("provision:cluster", cluster));
    }
    c.ec2
        .create_volume()
        .availability_zone(format!("{REGION}a"))
        .size(gb)
        .tag_specifications(
            TagSpecification::builder()
                .resource_type(ResourceType::Volume)
                .set_tags(Some(tags))
                .build(),
        )
        .send()
        .await
        .unwrap()
        .volume_id()
        .unwrap()
        .to_string()
}

async fn exists(c: &provision::aws::Clients, id: &str) -> bool {
    c.ec2
        .describe_volumes()
        .volume_ids(id)
        .send()
        .await
        .is_ok_and(|o| !o.volumes().is_empty())
}

#[tokio::test(flavor = "multi_thread")]
async fn claim_volumes_are_listed_kept_by_down_and_deleted_only_when_asked() {
    let cl = Cluster::new("vols", 1, "");
    let other = Cluster::new("vols-other", 1, "");
    let c = sdk().await;
    cl.up();
    let ours = csi_volume(&c, &cl.name, "team-a/data", 10, true).await;
    let theirs = csi_volume(&c, &other.name, "team-b/data", 20, true).await;
    // The same cluster name's, made by another tool: the driver's tags, not ours.
    let namesake = csi_volume(&c, &cl.name, "team-c/data", 30, false).await;

    let plan = cl.run(&["plan", "--destroy", "-f", cl.spec_arg()]);
    assert!(plan.ok(), "{}", plan.stderr);
    let rows = plan.summary()["plan"].as_array().unwrap().clone();
    let row = rows
        .iter()
        .find(|r| r["aws_id"] == ours.as_str())
        .unwrap_or_else(|| panic!("the volume is listed: {rows:?}"));
    assert_eq!(row["action"], "keep");
    let why = row["warnings"][0].as_str().unwrap();
    assert!(
        why.contains("10 GiB")
            && why.contains("claim team-a/data")
            && why.contains("--delete-volumes"),
        "{why}"
    );
    assert!(
        rows.iter()
            .all(|r| r["aws_id"] != theirs.as_str() && r["aws_id"] != namesake.as_str())
    );

    let down = cl.down();
    assert!(
        down.warnings()
            .iter()
            .any(|w| w.contains(&ours) && w.contains("kept")),
        "{:?}",
        down.warnings()
    );
    assert!(exists(&c, &ours).await, "kept by default");

    // The cluster is gone; its volume is found by its tags and deleted when asked.
    let gone = cl.run(&[
        "down",
        "--name",
        &cl.name,
        "--region",
        REGION,
        "--delete-volumes",
    ]);
    assert!(gone.ok(), "{}", gone.stderr);
    assert_eq!(gone.calls("EC2", "DeleteVolume"), 1);
    assert!(!exists(&c, &ours).await, "deleted");
    assert!(
        exists(&c, &theirs).await,
        "another cluster's volume is never touched"
    );
    assert!(
        exists(&c, &namesake).await,
        "nor a same-named cluster's volume another tool made"
    );
    for v in [&theirs, &namesake] {
        c.ec2.delete_volume().volume_id(v).send().await.unwrap();
    }
}
