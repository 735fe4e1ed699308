//! The plan is the program: for the same state, `up` executes exactly the rows `plan` printed
//! (drift repairs and refusals alike), and a plan after `up` keeps everything.

mod common;

use common::{Cluster, REGION, Run, sdk, tagged};
use provision::aws::Clients;
use provision::core::kinds::Observed;
use serde_json::Value;

/// The rows a run's summary carries: `plan`'s, or those `up` executed (or refused).
fn rows(run: &Run) -> Vec<Value> {
    run.summary()["plan"]
        .as_array()
        .unwrap_or_else(|| panic!("no plan rows; stderr:\n{}", run.stderr))
        .clone()
}

/// (id, action) of every row that is not `keep` (nor a read).
fn changes(rows: &[Value]) -> Vec<(String, String)> {
    rows.iter()
        .filter(|r| !["keep", "read"].contains(&r["action"].as_str().unwrap()))
        .map(|r| {
            (
                r["id"].as_str().unwrap().to_string(),
                r["action"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn row<'a>(rows: &'a [Value], id: &str) -> &'a Value {
    rows.iter()
        .find(|r| r["id"] == id)
        .unwrap_or_else(|| panic!("no row {id} in {rows:?}"))
}

fn drifts(rows: &[Value], id: &str) -> Vec<String> {
    row(rows, id)["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect()
}

/// Plans, then runs `up`, and checks that `up` executed what `plan` printed; then that a
/// second plan keeps everything and a second `up` changes nothing. Returns the rows.
fn plan_then_up(cl: &Cluster) -> Vec<Value> {
    let plan = cl.run(&["plan", "-f", cl.spec_arg()]);
    assert!(plan.ok(), "{}", plan.stderr);
    let planned = rows(&plan);
    let up = cl.up();
    assert_eq!(rows(&up), planned, "up's plan is the plan's");
    executed_exactly(&up, &planned);
    let again = cl.run(&["plan", "-f", cl.spec_arg()]);
    assert!(again.ok(), "{}", again.stderr);
    assert_eq!(
        changes(&rows(&again)),
        Vec::<(String, String)>::new(),
        "after up the plan keeps everything"
    );
    let idle = cl.up();
    assert_eq!(
        idle.mutating_calls(),
        Vec::<String>::new(),
        "and up, with nothing to do, changes nothing"
    );
    planned
}

/// What `up` did, from its resources (what each kind's apply reported, not the plan): a
/// create or update for every row that makes one and for no other row.
fn executed_exactly(up: &Run, planned: &[Value]) {
    let done = up.actions_of("resources");
    let did = |id: &str, what: &[&str]| {
        done.iter()
            .any(|(i, a)| i == id && what.contains(&a.as_str()))
    };
    let mut wrong = Vec::new();
    for r in planned {
        let id = r["id"].as_str().unwrap();
        let ok = match r["action"].as_str().unwrap() {
            "create" => did(id, &["created"]),
            "update" | "replace" => did(id, &["updated", "created"]),
            _ => !did(id, &["created", "updated", "deleted"]),
        };
        if !ok {
            wrong.push(format!("{id}: planned {}", r["action"]));
        }
    }
    let ids: Vec<&str> = planned.iter().map(|r| r["id"].as_str().unwrap()).collect();
    for (id, a) in &done {
        if !ids.contains(&id.as_str()) {
            wrong.push(format!("{id}: {a} without a row"));
        }
    }
    assert!(
        wrong.is_empty(),
        "up did other than its plan: {wrong:?}\n{done:?}"
    );
}

/// Plans and runs `up` on a state `up` refuses: both exit 1 with the same rows, and `up`
/// changes nothing. Returns the refused rows' ids.
fn refused_alike(cl: &Cluster) -> Vec<String> {
    let plan = cl.run(&["plan", "-f", cl.spec_arg()]);
    assert_eq!(
        plan.code,
        Some(1),
        "plan exits 1 on a refusal:\n{}",
        plan.stderr
    );
    let up = cl.run(&["up", "-f", cl.spec_arg()]);
    assert_eq!(up.code, Some(1), "{}", up.stderr);
    assert_eq!(rows(&up), rows(&plan), "up refuses the rows plan printed");
    assert_eq!(
        up.mutating_calls(),
        Vec::<String>::new(),
        "refused before any change"
    );
    let refused: Vec<String> = rows(&plan)
        .iter()
        .filter(|r| r["action"] == "refuse")
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();
    for id in &refused {
        let reason = row(&rows(&plan), id)["reason"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(
            up.stderr.contains(&reason),
            "up names {id}'s refusal: {}",
            up.stderr
        );
    }
    refused
}

#[tokio::test(flavor = "multi_thread")]
async fn up_repairs_exactly_the_drift_plan_shows_on_a_kubeadm_cluster() {
    let cl = Cluster::new("drift", 2, "");
    cl.up();
    let c = sdk().await;
    let obs = tagged(&c, &cl.name).await;
    drift_the_network(&c, &obs).await;
    drift_the_security_groups(&c, &obs).await;
    let master = drift_iam_and_instances(&c, &cl, &obs).await;

    let planned = plan_then_up(&cl);
    assert_eq!(
        changes(&planned),
        [
            ("vpc", "update"),
            ("subnet-0", "update"),
            ("route-table", "update"),
            ("sg-control-plane", "update"),
            ("node-instance-profile", "update"),
            ("sg-links", "create"),
            ("master", "update"),
            ("ca-access", "update"),
            ("workers", "update"),
        ]
        .map(|(i, a)| (i.to_string(), a.to_string())),
        "every drift is planned, nothing else"
    );
    assert_eq!(drifts(&planned, "vpc"), ["enable DNS hostnames"]);
    assert_eq!(drifts(&planned, "route-table").len(), 2, "{planned:?}");
    assert_eq!(drifts(&planned, "master").len(), 1, "start it: {planned:?}");

    let after = tagged(&c, &cl.name).await;
    assert_eq!(
        after.live_instances("master").next().unwrap().id,
        master,
        "the control plane was started, not replaced"
    );
    assert_eq!(
        after.live_instances("workers-1").count(),
        1,
        "the lost worker is back"
    );
    cl.down();
}

/// DNS hostnames off, subnet-0 no longer mapping public addresses, the default route gone and
/// subnet-1 no longer associated.
async fn drift_the_network(c: &Clients, obs: &Observed) {
    let vpc = obs.vpcs[0].id.clone();
    let subnet0 = common::subnet(obs, "subnet-0").id.clone();
    let subnet1 = common::subnet(obs, "subnet-1").id.clone();
    let ec2 = &c.ec2;
    ec2.modify_vpc_attribute()
        .vpc_id(&vpc)
        .enable_dns_hostnames(
            aws_sdk_ec2::types::AttributeBooleanValue::builder()
                .value(false)
                .build(),
        )
        .send()
        .await
        .unwrap();
    ec2.modify_subnet_attribute()
        .subnet_id(&subnet0)
        .map_public_ip_on_launch(
            aws_sdk_ec2::types::AttributeBooleanValue::builder()
                .value(false)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let rt = &obs.route_tables[0];
    ec2.delete_route()
        .route_table_id(&rt.id)
        .destination_cidr_block("0.0.0.0/0")
        .send()
        .await
        .unwrap();
    let association = rt
        .associations
        .iter()
        .find(|(_, s)| *s == subnet1)
        .map(|(a, _)| a.clone())
        .expect("subnet-1 is associated");
    ec2.disassociate_route_table()
        .association_id(association)
        .send()
        .await
        .unwrap();
}

/// One of the control plane's own rules (the admins' 6443) and one link rule (the nodes'
/// traffic to the control plane) revoked.
async fn drift_the_security_groups(c: &Clients, obs: &Observed) {
    let cp = common::security_group(obs, "sg-control-plane").id.clone();
    let nodes = common::security_group(obs, "sg-nodes").id.clone();
    let ec2 = &c.ec2;
    // Moto matches a revoked range with its description, as it was authorised.
    ec2.revoke_security_group_ingress()
        .group_id(&cp)
        .ip_permissions(
            aws_sdk_ec2::types::IpPermission::builder()
                .ip_protocol("tcp")
                .from_port(6443)
                .to_port(6443)
                .ip_ranges(
                    aws_sdk_ec2::types::IpRange::builder()
                        .cidr_ip("198.51.100.0/24")
                        .description("Kubernetes API from admin CIDRs")
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    let groups = ec2
        .describe_security_groups()
        .group_ids(&cp)
        .send()
        .await
        .unwrap();
    let link = groups.security_groups()[0]
        .ip_permissions()
        .iter()
        .find_map(|p| {
            let pair = p
                .user_id_group_pairs()
                .iter()
                .find(|g| g.group_id() == Some(nodes.as_str()))?;
            Some(
                aws_sdk_ec2::types::IpPermission::builder()
                    .set_ip_protocol(p.ip_protocol().map(str::to_string))
                    .set_from_port(p.from_port())
                    .set_to_port(p.to_port())
                    .user_id_group_pairs(pair.clone())
                    .build(),
            )
        })
        .expect("a rule from the nodes' group");
    ec2.revoke_security_group_ingress()
        .group_id(&cp)
        .ip_permissions(link)
        .send()
        .await
        .unwrap();
}

/// The node role out of its profile, the CA policy widened, the control plane stopped and a
/// worker terminated. Returns the control plane's instance id.
async fn drift_iam_and_instances(c: &Clients, cl: &Cluster, obs: &Observed) -> String {
    let role = provision::core::tags::node_role_name(&cl.name, REGION);
    c.iam
        .remove_role_from_instance_profile()
        .instance_profile_name(&role)
        .role_name(&role)
        .send()
        .await
        .unwrap();
    c.iam
        .put_role_policy()
        .role_name(&role)
        .policy_name("provision-ca-access")
        .policy_document(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ssm:GetParameter","Resource":"*"}]}"#)
        .send()
        .await
        .unwrap();
    let master = obs.live_instances("master").next().unwrap().id.clone();
    c.ec2
        .stop_instances()
        .instance_ids(&master)
        .send()
        .await
        .unwrap();
    let worker = obs.live_instances("workers-1").next().unwrap().id.clone();
    c.ec2
        .terminate_instances()
        .instance_ids(&worker)
        .send()
        .await
        .unwrap();
    master
}

#[tokio::test(flavor = "multi_thread")]
async fn refusals_are_the_same_in_plan_and_up_and_change_nothing() {
    // Someone else's role and bootstrap parameter of our names, before the first up.
    let cl = Cluster::new("refuse", 1, "");
    let c = sdk().await;
    let role = provision::core::tags::node_role_name(&cl.name, REGION);
    common::untagged_role(&c, &role).await;
    let parameter = provision::core::tags::secret_parameter_name(&cl.name);
    c.ssm
        .put_parameter()
        .name(&parameter)
        .value("not ours")
        .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
        .send()
        .await
        .unwrap();
    assert_eq!(refused_alike(&cl), ["node-role", "bootstrap-secret"]);
    c.iam.delete_role().role_name(&role).send().await.unwrap();
    c.ssm
        .delete_parameter()
        .name(&parameter)
        .send()
        .await
        .unwrap();
    cl.up();

    // A new CIDR and a lost control plane at once: both refused, in one plan.
    common::terminate_the_control_plane(&c, &cl.name).await;
    cl.edit("10.40.0.0/16", "10.41.0.0/16");
    assert_eq!(
        refused_alike(&cl),
        ["vpc", "subnet-0", "subnet-1", "master"],
        "the subnets' CIDRs follow the VPC's"
    );

    // The same name as an EKS cluster while the kubeadm instances run.
    cl.edit("10.41.0.0/16", "10.40.0.0/16");
    let spec = std::fs::read_to_string(&cl.spec).unwrap();
    let kubeadm = spec.find("[kubeadm]").unwrap();
    std::fs::write(
        &cl.spec,
        format!(
            "{}[eks]\nversion = \"1.35\"\n[eks.nodegroup]\ninstance_types = [\"t3.large\"]\nmin = 1\nmax = 2\ndesired = 1\n",
            spec[..kubeadm].replace("kind = \"kubeadm\"", "kind = \"eks\"")
        ),
    )
    .unwrap();
    assert_eq!(
        refused_alike(&cl),
        ["master"],
        "the kubeadm instances are in the way"
    );
    std::fs::write(&cl.spec, spec).unwrap();
    cl.down();
}

const EKS: &str = r#"version = "1.35"

[eks.nodegroup]
instance_types = ["t3.large"]
min = 1
max = 3
desired = 2

[[eks.access]]
principal_arn = "arn:aws:iam::123456789012:role/platform-admins"
policy = "edit"
namespaces = ["team-a"]
"#;

#[tokio::test(flavor = "multi_thread")]
async fn up_repairs_exactly_the_drift_plan_shows_on_an_eks_cluster() {
    let cl = Cluster::eks("eks-drift", "availability_zones = 2", EKS);
    cl.up();
    let c = sdk().await;
    let nodegroup = format!("{}-nodes", cl.name);
    c.eks
        .update_nodegroup_config()
        .cluster_name(&cl.name)
        .nodegroup_name(&nodegroup)
        .scaling_config(
            aws_sdk_eks::types::NodegroupScalingConfig::builder()
                .min_size(1)
                .max_size(3)
                .desired_size(1)
                .build(),
        )
        .send()
        .await
        .unwrap();
    c.eks
        .delete_addon()
        .cluster_name(&cl.name)
        .addon_name("coredns")
        .send()
        .await
        .unwrap();
    let admins = "arn:aws:iam::123456789012:role/platform-admins";
    c.eks
        .disassociate_access_policy()
        .cluster_name(&cl.name)
        .principal_arn(admins)
        .policy_arn("arn:aws:eks::aws:cluster-access-policy/AmazonEKSEditPolicy")
        .send()
        .await
        .unwrap();
    let role = provision::core::tags::role_name(&cl.name, REGION, "cluster");
    c.iam
        .detach_role_policy()
        .role_name(&role)
        .policy_arn("arn:aws:iam::aws:policy/AmazonEKSClusterPolicy")
        .send()
        .await
        .unwrap();

    let planned = plan_then_up(&cl);
    assert_eq!(
        changes(&planned),
        [
            ("cluster-role", "update"),
            ("access-entries", "update"),
            ("nodegroup", "update"),
            ("addons", "update"),
        ]
        .map(|(i, a)| (i.to_string(), a.to_string())),
        "every drift is planned, nothing else"
    );
    assert_eq!(drifts(&planned, "addons"), ["install coredns"]);
    let ng = common::nodegroup_of(&c, &cl.name).await;
    assert_eq!(ng.scaling_config().unwrap().desired_size(), Some(2));

    // A new instance type cannot be applied to a node group in place: a new group is made
    // beside it (blue/green), and the old one deleted once the new one is ACTIVE.
    cl.edit(
        r#"instance_types = ["t3.large"]"#,
        r#"instance_types = ["m6i.large"]"#,
    );
    let plan = cl.run(&["plan", "-f", cl.spec_arg()]);
    assert!(plan.ok(), "{}", plan.stderr);
    assert_eq!(
        changes(&plan.summary()["plan"].as_array().unwrap().clone()),
        [("nodegroup", "replace"), ("nodegroup-retire", "delete")]
            .map(|(i, a)| (i.to_string(), a.to_string())),
    );
    let up = cl.up();
    let events: Vec<(String, String)> = up
        .events
        .iter()
        .filter(|e| e["event"] == "resource")
        .map(|e| {
            (
                e["id"].as_str().unwrap_or_default().to_string(),
                e["action"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    let created = events
        .iter()
        .position(|e| *e == ("nodegroup".to_string(), "created".to_string()))
        .unwrap_or_else(|| panic!("{events:?}"));
    let deleting = events
        .iter()
        .position(|e| *e == ("nodegroup-retire".to_string(), "deleting".to_string()))
        .unwrap_or_else(|| panic!("{events:?}"));
    assert!(
        created < deleting,
        "the old group goes after the new one is ACTIVE: {events:?}"
    );
    let groups = c
        .eks
        .list_nodegroups()
        .cluster_name(&cl.name)
        .send()
        .await
        .unwrap()
        .nodegroups
        .unwrap_or_default();
    assert_eq!(groups.len(), 1, "{groups:?}");
    assert!(
        groups[0].starts_with(&format!("{nodegroup}-")),
        "{groups:?}"
    );
    let new = c
        .eks
        .describe_nodegroup()
        .cluster_name(&cl.name)
        .nodegroup_name(&groups[0])
        .send()
        .await
        .unwrap();
    assert_eq!(new.nodegroup().unwrap().instance_types(), ["m6i.large"]);
    let idle = cl.up();
    assert_eq!(idle.mutating_calls(), Vec::<String>::new());
    cl.down();
}
