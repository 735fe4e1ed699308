//! IAM is global to the account: a cluster and its namesake in another region have IAM
//! objects of their own, and neither adopts nor deletes the other's, even where their names
//! meet (`as1` once stood for ap-south-1, ap-southeast-1 and af-south-1).

mod common;

use common::{Cluster, REGION, sdk};

/// `cl`'s spec, for the same cluster name in `region`, in a directory of its own.
fn namesake(cl: &Cluster, region: &str) -> Cluster {
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("cluster.toml");
    let text = std::fs::read_to_string(&cl.spec).unwrap();
    let text = text.replace(
        &format!("region = \"{REGION}\""),
        &format!("region = \"{region}\""),
    );
    assert!(text.contains(region));
    std::fs::write(&spec, text).unwrap();
    Cluster {
        name: cl.name.clone(),
        dir,
        spec,
    }
}

/// The role's tags, or None when there is no such role.
async fn role_tags(c: &provision::aws::Clients, name: &str) -> Option<Vec<(String, String)>> {
    let out = c.iam.get_role().role_name(name).send().await.ok()?;
    Some(
        out.role()?
            .tags()
            .iter()
            .map(|t| (t.key().to_string(), t.value().to_string()))
            .collect(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_namesake_in_another_region_neither_adopts_nor_deletes_our_iam() {
    let base = Cluster::new("iam-rg", 1, "");
    let south = namesake(&base, "ap-south-1");
    let southeast = namesake(&base, "ap-southeast-1");
    let name = &base.name;
    let c = sdk().await;

    south.up();
    southeast.up();
    let (ours, theirs) = (
        format!("provision-{name}-aps1-node"),
        format!("provision-{name}-apse1-node"),
    );
    for (role, region) in [(&ours, "ap-south-1"), (&theirs, "ap-southeast-1")] {
        let tags = role_tags(&c, role)
            .await
            .unwrap_or_else(|| panic!("{role} exists"));
        assert!(
            tags.contains(&("provision:region".into(), region.into())),
            "{role}: {tags:?}"
        );
    }
    southeast.down();
    assert!(
        role_tags(&c, &theirs).await.is_none(),
        "its own role is gone"
    );
    assert!(
        role_tags(&c, &ours).await.is_some(),
        "the other region's down left ours alone"
    );

    // A role of ap-south-1's cluster under the name ap-southeast-1's would use (what the old
    // names made): plan and up refuse to adopt it, naming the region, and down keeps it.
    c.iam
        .create_role()
        .role_name(&theirs)
        .assume_role_policy_document(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#,
        )
        .tags(aws_sdk_iam::types::Tag::builder().key("provision:cluster").value(name).build().unwrap())
        .tags(aws_sdk_iam::types::Tag::builder().key("provision:region").value("ap-south-1").build().unwrap())
        .send()
        .await
        .unwrap();
    for cmd in ["plan", "up"] {
        let r = southeast.run(&[cmd, "-f", southeast.spec_arg()]);
        assert_eq!(r.code, Some(1), "{cmd}: {}", r.stderr);
        let want = format!("IAM role {theirs} belongs to the cluster of this name in ap-south-1");
        let refused = r.summary()["plan"].as_array().unwrap().iter().any(|row| {
            row["action"] == "refuse" && row["reason"].as_str().unwrap_or("").contains(&want)
        });
        assert!(refused, "{cmd}: {}", r.stderr);
        assert_eq!(
            r.mutating_calls(),
            Vec::<String>::new(),
            "{cmd} changed nothing"
        );
    }
    southeast.down();
    assert!(
        role_tags(&c, &theirs).await.is_some(),
        "down keeps another region's role"
    );

    south.down();
    assert!(role_tags(&c, &ours).await.is_none());
    c.iam.delete_role().role_name(&theirs).send().await.unwrap();
}
