//! Several EKS node groups end to end, on the emulator: `[[eks.nodegroups]]` makes each (with
//! its taints, labels and updateConfig), a group added to the spec is created, one removed is
//! deleted after the others are ACTIVE, a capacity-type change replaces a group blue/green,
//! `plan` shows each, and `down` deletes them all.

mod common;

use common::{Cluster, sdk};
use provision::aws::Clients;

const WEB: &str = r#"
[[eks.nodegroups]]
name = "web"
instance_types = ["t3.large"]
min = 1
max = 4
desired = 2
max_unavailable_percent = 50
labels = { "example.com/pool" = "web" }
"#;

const BATCH: &str = r#"
[[eks.nodegroups]]
name = "batch"
instance_types = ["m7g.large"]
min = 0
max = 3
desired = 1
disk_size = 40
taints = [{ key = "example.com/batch", value = "true", effect = "NO_SCHEDULE" }]
"#;

const GPU: &str = r#"
[[eks.nodegroups]]
name = "gpu"
instance_types = ["g5.xlarge"]
min = 0
max = 2
desired = 1
"#;

async fn groups(c: &Clients, cluster: &str) -> Vec<aws_sdk_eks::types::Nodegroup> {
    let mut names = c
        .eks
        .list_nodegroups()
        .cluster_name(cluster)
        .send()
        .await
        .unwrap()
        .nodegroups
        .unwrap_or_default();
    names.sort();
    let mut out = Vec::new();
    for n in names {
        let g = c
            .eks
            .describe_nodegroup()
            .cluster_name(cluster)
            .nodegroup_name(&n)
            .send()
            .await
            .unwrap();
        out.push(g.nodegroup().unwrap().clone());
    }
    out
}

fn rows(run: &common::Run) -> Vec<(String, String)> {
    run.actions_of("plan")
        .into_iter()
        .filter(|(_, a)| !["keep", "read"].contains(&a.as_str()))
        .collect()
}

fn pair(id: &str, action: &str) -> (String, String) {
    (id.to_string(), action.to_string())
}

#[tokio::test(flavor = "multi_thread")]
async fn node_groups_are_made_added_retired_and_replaced_blue_green() {
    let cl = Cluster::eks(
        "ngs",
        "availability_zones = 2",
        &format!("version = \"1.35\"\n{WEB}{BATCH}"),
    );
    let c = sdk().await;
    let up = cl.up();
    assert_eq!(up.calls("EKS", "CreateNodegroup"), 2);
    let made = groups(&c, &cl.name).await;
    let names: Vec<&str> = made.iter().filter_map(|g| g.nodegroup_name()).collect();
    assert_eq!(
        names,
        [format!("{}-batch", cl.name), format!("{}-web", cl.name)]
    );
    let (batch, web) = (&made[0], &made[1]);
    assert_eq!(
        web.update_config()
            .and_then(|u| u.max_unavailable_percentage()),
        Some(50)
    );
    assert_eq!(
        web.labels()
            .unwrap()
            .get("example.com/pool")
            .map(String::as_str),
        Some("web")
    );
    let taint = &batch.taints()[0];
    assert_eq!(
        (
            taint.key(),
            taint.value(),
            taint.effect().map(|e| e.as_str())
        ),
        (Some("example.com/batch"), Some("true"), Some("NO_SCHEDULE"))
    );
    assert_eq!(batch.instance_types(), ["m7g.large"]);
    for g in &made {
        assert_eq!(
            g.tags().unwrap().get("provision:cluster"),
            Some(&cl.name),
            "tagged in the call that created it"
        );
    }

    // Add one, remove one: plan shows both, up makes the new one before deleting the old.
    cl.edit(BATCH, GPU);
    let plan = cl.run(&["plan", "-f", cl.spec_arg()]);
    assert!(plan.ok(), "{}", plan.stderr);
    assert_eq!(
        rows(&plan),
        [
            pair("node-launch-template-gpu", "create"),
            pair("nodegroup-gpu", "create"),
            pair("nodegroup-retire", "delete"),
        ]
    );
    let up = cl.up();
    assert_eq!(up.calls("EKS", "CreateNodegroup"), 1);
    assert_eq!(up.calls("EKS", "DeleteNodegroup"), 1);
    let names: Vec<String> = groups(&c, &cl.name)
        .await
        .iter()
        .filter_map(|g| g.nodegroup_name().map(str::to_string))
        .collect();
    assert_eq!(
        names,
        [format!("{}-gpu", cl.name), format!("{}-web", cl.name)]
    );
    let templates: Vec<String> = common::tagged(&c, &cl.name)
        .await
        .launch_templates
        .iter()
        .filter_map(|t| t.logical.clone())
        .collect();
    assert!(
        !templates.contains(&"node-launch-template-batch".to_string()),
        "the removed group's launch template goes with it: {templates:?}"
    );

    // A new capacity type: a new web group beside the old one, which then goes.
    cl.edit(
        "name = \"web\"\n",
        "name = \"web\"\ncapacity_type = \"SPOT\"\n",
    );
    let plan = cl.run(&["plan", "-f", cl.spec_arg()]);
    assert_eq!(
        rows(&plan),
        [
            pair("nodegroup-web", "replace"),
            pair("nodegroup-retire", "delete")
        ]
    );
    cl.up();
    let after = groups(&c, &cl.name).await;
    let web: Vec<_> = after
        .iter()
        .filter(|g| {
            g.nodegroup_name()
                .is_some_and(|n| n.starts_with(&format!("{}-web", cl.name)))
        })
        .collect();
    assert_eq!(web.len(), 1, "the old web group is gone");
    assert_ne!(
        web[0].nodegroup_name(),
        Some(format!("{}-web", cl.name).as_str())
    );
    assert_eq!(web[0].capacity_type().map(|c| c.as_str()), Some("SPOT"));
    let idle = cl.up();
    assert!(
        idle.mutating_calls().is_empty(),
        "{:?}",
        idle.mutating_calls()
    );

    cl.down();
    assert!(common::tagged(&c, &cl.name).await.is_empty());
}
