//! `up`, `plan` and `down` of the real binary against the AWS emulator (moto server): what a
//! first `up` makes, a second `up` and `plan` that change nothing, and `down` with its order,
//! its blockers and what it spares. (`up` again on a changed cluster: tests/kubeadm_day2.rs.)
//!
//! Each test makes its own cluster with a unique name and removes it; none depends on another.

mod common;

use std::collections::HashSet;
use std::os::unix::fs::PermissionsExt;

use aws_sdk_ec2::types::Filter;
use common::{Cluster, first_call, has_tag, last_call, sdk, tagged, user_data};
use provision::aws::Clients;
use provision::core::kinds::Observed;
use provision::core::tags::CLUSTER_TAG;

type Ec2Tag = aws_sdk_ec2::types::Tag;

#[tokio::test(flavor = "multi_thread")]
async fn up_creates_every_resource_as_specified() {
    let cl = Cluster::new("spec", 2, "");
    let run = cl.up();
    let c = sdk().await;
    let public_ip = check_summary(&cl, &run);
    let obs = tagged(&c, &cl.name).await;
    check_network(&obs);
    check_security_groups(&obs);
    check_iam_and_secret(&c, &cl, &obs).await;
    check_instances(&c, &cl, &obs).await;
    check_kubeconfig(&cl, &public_ip);
    cl.down();
}

/// The summary's fields later checks rely on; returns the control plane's public address.
fn check_summary(cl: &Cluster, run: &common::Run) -> String {
    let s = run.summary();
    assert_eq!(s["cluster"], cl.name.as_str());
    assert_eq!(s["kind"], "kubeadm");
    let public_ip = s["master_public_ip"].as_str().expect("master_public_ip");
    assert!(
        s["master_private_ip"]
            .as_str()
            .unwrap()
            .starts_with("10.40.")
    );
    assert_eq!(s["api_endpoint"], format!("https://{public_ip}:6443"));
    assert!(
        run.total_calls() <= 56,
        "default up made {} calls: {}",
        run.total_calls(),
        s["api_calls"]
    );
    public_ip.to_string()
}

fn check_network(obs: &Observed) {
    // VPC with DNS support and hostnames.
    assert_eq!(obs.vpcs.len(), 1);
    let vpc = &obs.vpcs[0];
    assert_eq!(vpc.cidr, "10.40.0.0/16");
    assert_eq!(
        (vpc.dns_support, vpc.dns_hostnames),
        (Some(true), Some(true))
    );

    // One public subnet per AZ, carved from the VPC.
    let mut subnets: Vec<_> = obs
        .subnets
        .iter()
        .map(|s| (s.cidr.clone(), s.az.clone(), s.map_public_ip))
        .collect();
    subnets.sort();
    assert_eq!(subnets.len(), 2);
    assert_eq!(subnets[0].0, "10.40.0.0/20");
    assert_eq!(subnets[1].0, "10.40.16.0/20");
    assert_ne!(subnets[0].1, subnets[1].1, "two availability zones");
    assert!(subnets.iter().all(|s| s.2), "public subnets map public IPs");

    // IGW attached, route table with the default route and both associations.
    assert_eq!(obs.igws.len(), 1);
    assert_eq!(obs.igws[0].attached_vpcs, vec![vpc.id.clone()]);
    assert_eq!(obs.route_tables.len(), 1);
    assert_eq!(
        obs.route_tables[0].default_route.as_deref(),
        Some(obs.igws[0].id.as_str())
    );
    let assoc: HashSet<&str> = obs.route_tables[0]
        .associations
        .iter()
        .map(|(_, s)| s.as_str())
        .collect();
    assert_eq!(assoc, obs.subnets.iter().map(|s| s.id.as_str()).collect());
}

/// 6443 only from the admin CIDR and the node group; no 22; no 0.0.0.0/0.
fn check_security_groups(obs: &Observed) {
    let groups = obs.group_ids();
    let nodes_sg = &groups["sg-nodes"];
    let cp = common::security_group(obs, "sg-control-plane");
    let cp_rules = common::rules_of(cp);
    let mut want = vec![
        (6443, "198.51.100.0/24".to_string()),
        (6443, nodes_sg.clone()),
    ];
    want.sort();
    assert_eq!(cp_rules, want);
    let nodes = obs
        .security_groups
        .iter()
        .find(|g| &g.id == nodes_sg)
        .unwrap();
    assert!(
        nodes.rules.iter().all(|r| &r.source == nodes_sg),
        "node rules only from the node group: {:?}",
        nodes.rules
    );
    let ports: HashSet<(String, i32)> = nodes
        .rules
        .iter()
        .map(|r| (r.protocol.clone(), r.from_port))
        .collect();
    assert_eq!(
        ports,
        HashSet::from([
            ("tcp".into(), 10250),
            ("udp".into(), 4789),
            ("tcp".into(), 5473)
        ])
    );
    assert!(
        obs.security_groups
            .iter()
            .flat_map(|g| &g.rules)
            .all(|r| r.source != "0.0.0.0/0" && r.from_port != 22)
    );
}

async fn check_iam_and_secret(c: &Clients, cl: &Cluster, obs: &Observed) {
    // IAM: role in the profile, both tagged.
    let role = obs.role("node-role").unwrap();
    assert!(role.owned);
    let profile = obs.profile("node-instance-profile").unwrap();
    assert!(profile.owned);
    assert_eq!(profile.roles, vec![role.name.clone()]);

    // The bootstrap secret is a SecureString.
    let p = c
        .ssm
        .get_parameter()
        .name(format!("/provision/{}/bootstrap", cl.name))
        .send()
        .await
        .unwrap();
    assert_eq!(
        p.parameter().unwrap().r#type(),
        Some(&aws_sdk_ssm::types::ParameterType::SecureString)
    );
}

/// 1 master + 2 workers, one per subnet, IMDSv2 required with hop limit 1, encrypted root
/// volume, tags set at creation.
async fn check_instances(c: &Clients, cl: &Cluster, obs: &Observed) {
    let role = obs.role("node-role").unwrap();
    let out = c
        .ec2
        .describe_instances()
        .filters(
            Filter::builder()
                .name(format!("tag:{CLUSTER_TAG}"))
                .values(&cl.name)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let instances: Vec<_> = out
        .reservations()
        .iter()
        .flat_map(|r| r.instances())
        .collect();
    assert_eq!(instances.len(), 3);
    let mut worker_subnets = HashSet::new();
    for i in &instances {
        let md = i.metadata_options().unwrap();
        assert_eq!(
            md.http_tokens(),
            Some(&aws_sdk_ec2::types::HttpTokensState::Required)
        );
        assert_eq!(md.http_put_response_hop_limit(), Some(1));
        assert!(has_tag(i.tags(), CLUSTER_TAG, &cl.name));
        assert!(has_tag(
            i.tags(),
            &format!("kubernetes.io/cluster/{}", cl.name),
            "owned"
        ));
        let logical = i
            .tags()
            .iter()
            .find(|t| t.key() == Some("provision:resource"))
            .and_then(|t| t.value())
            .unwrap();
        let ud = user_data(c, i.instance_id().unwrap()).await;
        assert!(ud.starts_with("#cloud-config\n"));
        assert!(
            !ud.contains("PRIVATE KEY"),
            "no private key in any user data"
        );
        if logical == "master" {
            assert!(ud.contains("kind: InitConfiguration") && ud.contains("provision-node.py"));
            check_ca_access(c, cl, &role.name, i.instance_id().unwrap()).await;
        } else {
            assert!(ud.contains("kind: JoinConfiguration") && ud.contains("caCertHashes"));
            assert!(
                !ud.contains("PRIVATE KEY"),
                "no private key in worker user data"
            );
            worker_subnets.insert(i.subnet_id().unwrap().to_string());
        }
        let vol = i
            .block_device_mappings()
            .first()
            .and_then(|b| b.ebs())
            .and_then(|e| e.volume_id())
            .unwrap();
        let v = c
            .ec2
            .describe_volumes()
            .volume_ids(vol)
            .send()
            .await
            .unwrap();
        assert_eq!(v.volumes()[0].encrypted(), Some(true));
    }
    assert_eq!(worker_subnets.len(), 2, "workers spread over both subnets");
}

/// Only the control plane `master` may read the CA from SSM: the node role's inline policy.
async fn check_ca_access(c: &Clients, cl: &Cluster, role: &str, master: &str) {
    let doc = common::url_decode(&common::inline_policy(c, role, "provision-ca-access").await);
    let v: serde_json::Value = serde_json::from_str(&doc).unwrap_or_else(|e| panic!("{e}: {doc}"));
    let st = &v["Statement"][0];
    assert_eq!(st["Action"], "ssm:GetParameter");
    assert_eq!(
        st["Resource"],
        format!(
            "arn:aws:ssm:us-east-1:123456789012:parameter/provision/{}/bootstrap",
            cl.name
        )
    );
    assert_eq!(
        st["Condition"]["StringEquals"]["ec2:SourceInstanceARN"],
        format!("arn:aws:ec2:us-east-1:123456789012:instance/{master}")
    );
}

/// Merged, context named after the cluster, mode 0600.
fn check_kubeconfig(cl: &Cluster, public_ip: &str) {
    let kc = cl.kubeconfig();
    assert_eq!(
        std::fs::metadata(&kc).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let text = std::fs::read_to_string(&kc).unwrap();
    assert!(text.contains(&format!("current-context: {}", cl.name)));
    assert!(text.contains(&format!("server: https://{public_ip}:6443")));
}

#[tokio::test(flavor = "multi_thread")]
async fn second_up_creates_nothing() {
    let cl = Cluster::new("again", 2, "");
    let first = cl.up();
    let second = cl.up();
    let created: Vec<_> = second
        .actions()
        .into_iter()
        .filter(|(_, a)| a != "existing")
        .collect();
    assert!(created.is_empty(), "second up changed: {created:?}");
    assert_eq!(second.mutating_calls(), Vec::<String>::new());
    assert_eq!(
        first.summary()["master_public_ip"],
        second.summary()["master_public_ip"]
    );
    assert!(second.total_calls() < first.total_calls());
    cl.down();
}

#[tokio::test(flavor = "multi_thread")]
async fn plan_before_and_after_up_and_for_destroy() {
    let cl = Cluster::new("plan", 2, "");
    let actions = |r: &common::Run| r.actions_of("plan");
    let before = cl.run(&["plan", "-f", cl.spec_arg()]);
    assert!(before.ok(), "{}", before.stderr);
    assert_eq!(
        before.mutating_calls(),
        Vec::<String>::new(),
        "plan changes nothing"
    );
    for (id, a) in actions(&before) {
        let want = if ["ami", "availability-zones", "join-token"].contains(&id.as_str()) {
            "read"
        } else if id == "control-plane-upgrade" {
            // A control plane made now is made at the spec's version.
            "keep"
        } else {
            "create"
        };
        assert_eq!(a, want, "{id}");
    }
    assert!(actions(&before).len() >= 14);
    let c = sdk().await;
    assert!(
        tagged(&c, &cl.name).await.is_empty(),
        "plan created something"
    );

    cl.up();
    let after = cl.run(&["plan", "-f", cl.spec_arg()]);
    for (id, a) in actions(&after) {
        assert_eq!(a, "keep", "{id}: lookups too, since nothing needs them");
    }
    let destroy = cl.run(&["plan", "--destroy", "-f", cl.spec_arg()]);
    assert_eq!(destroy.mutating_calls(), Vec::<String>::new());
    let d = actions(&destroy);
    assert_eq!(d.len(), 15, "{d:?}");
    assert!(d.iter().all(|(_, a)| a == "delete"));
    assert_eq!(
        d.first().map(|(id, _)| id.as_str()),
        Some("master"),
        "instances first"
    );
    assert_eq!(
        d.last().map(|(id, _)| id.as_str()),
        Some("bootstrap-secret"),
        "secret last"
    );
    cl.down();
    let gone = cl.run(&["plan", "--destroy", "-f", cl.spec_arg()]);
    assert!(actions(&gone).is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn down_removes_everything_and_spares_foreign_resources() {
    let c = sdk().await;
    // A foreign, untagged instance in the same account (default VPC) and a VPC tagged for
    // another cluster.
    let foreign_id = foreign_instance(&c, None).await;
    let other = Cluster::new("other", 1, "");
    let other_vpc = c
        .ec2
        .create_vpc()
        .cidr_block("10.99.0.0/16")
        .tag_specifications(
            aws_sdk_ec2::types::TagSpecification::builder()
                .resource_type(aws_sdk_ec2::types::ResourceType::Vpc)
                .tags(
                    Ec2Tag::builder()
                        .key(CLUSTER_TAG)
                        .value(&other.name)
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    let other_vpc = other_vpc.vpc().unwrap().vpc_id().unwrap().to_string();

    let cl = Cluster::new("down", 2, "");
    cl.up();
    // `down` needs no spec: name and region are enough.
    let down = cl.run(&["down", "--name", &cl.name, "--region", common::REGION]);
    assert!(down.ok(), "{}", down.stderr);
    assert_eq!(down.summary()["resources"].as_array().unwrap().len(), 15);
    let obs = tagged(&c, &cl.name).await;
    assert!(obs.is_empty(), "left behind: {obs:?}");
    assert!(obs.roles.is_empty() && obs.profiles.is_empty() && obs.secret.is_none());

    let f = c
        .ec2
        .describe_instances()
        .instance_ids(&foreign_id)
        .send()
        .await
        .unwrap();
    let state = f.reservations()[0].instances()[0]
        .state()
        .unwrap()
        .name()
        .unwrap()
        .clone();
    assert_eq!(
        state,
        aws_sdk_ec2::types::InstanceStateName::Running,
        "foreign instance untouched"
    );
    assert_eq!(
        c.ec2
            .describe_vpcs()
            .vpc_ids(&other_vpc)
            .send()
            .await
            .unwrap()
            .vpcs()
            .len(),
        1,
        "other cluster's VPC untouched"
    );

    // A second down finds nothing and succeeds.
    let again = cl.run(&["down", "--name", &cl.name, "--region", common::REGION]);
    assert!(again.ok());
    assert_eq!(again.mutating_calls(), Vec::<String>::new());

    c.ec2
        .terminate_instances()
        .instance_ids(&foreign_id)
        .send()
        .await
        .unwrap();
    c.ec2.delete_vpc().vpc_id(&other_vpc).send().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn down_after_a_partial_up_removes_what_was_made() {
    // An AMI id of the right form that does not exist fails on the lookup, before anything is
    // made, naming the field.
    let bad = Cluster::new("bad-ami", 2, "ami = \"ami-0123456789abcdef0\"");
    let up = bad.run(&["up", "-f", bad.spec_arg()]);
    assert_eq!(up.code, Some(1), "{}", up.stderr);
    assert!(
        up.stderr.contains("kubeadm.ami"),
        "the error names the field: {}",
        up.stderr
    );
    assert_eq!(up.mutating_calls(), Vec::<String>::new(), "nothing made");

    // A run killed (SIGKILL: no chance to clean up) once the network exists: down removes
    // what it made.
    let cl = Cluster::new("partial", 2, "");
    let mut child = common::spawn_until(
        &mut cl.command(&["up", "-f", cl.spec_arg()]),
        &["\"kind\":\"vpc\"", "\"created\""],
    );
    child.kill().unwrap();
    child.wait().unwrap();
    let c = sdk().await;
    let obs = tagged(&c, &cl.name).await;
    assert_eq!(obs.vpcs.len(), 1, "the network was made before the kill");
    cl.run(&["unlock", "-f", cl.spec_arg()]);
    cl.down();
    assert!(tagged(&c, &cl.name).await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn teardown_order_follows_dependencies() {
    let cl = Cluster::new("order", 2, "");
    cl.up();
    let run = cl.run(&["--trace-api-calls", "down", "-f", cl.spec_arg()]);
    assert!(run.ok(), "{}", run.stderr);
    let calls = run.api_call_order();
    let first = |op: &str| first_call(&calls, op);
    let last = |op: &str| last_call(&calls, op);
    let terminated = first("TerminateInstances");
    for op in [
        "DeleteSecurityGroup",
        "DeleteSubnet",
        "DetachInternetGateway",
        "DeleteVpc",
        "RemoveRoleFromInstanceProfile",
    ] {
        assert!(
            first(op) > terminated,
            "{op} before TerminateInstances: {calls:?}"
        );
    }
    // The instance wait (DescribeInstances polls) completes before anything that needs the ENIs gone.
    assert!(
        calls[terminated..first("DeleteSecurityGroup")]
            .iter()
            .any(|c| c == "DescribeInstances")
    );
    for op in [
        "DeleteSecurityGroup",
        "DeleteSubnet",
        "DeleteInternetGateway",
        "DeleteRouteTable",
        "DisassociateRouteTable",
    ] {
        assert!(
            last(op) < first("DeleteVpc"),
            "{op} after DeleteVpc: {calls:?}"
        );
    }
    assert!(last("DisassociateRouteTable") < first("DeleteSubnet"));
    assert!(first("DetachInternetGateway") < first("DeleteInternetGateway"));
    assert!(last("RemoveRoleFromInstanceProfile") < first("DeleteInstanceProfile"));
    assert!(first("DeleteInstanceProfile") < first("DeleteRole"));
    assert_eq!(
        calls.last().map(String::as_str),
        Some("DeleteParameter"),
        "the secret goes last: {calls:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn down_names_the_resource_that_blocks_it() {
    let cl = Cluster::new("blocked", 1, "");
    cl.up();
    let c = sdk().await;
    let obs = tagged(&c, &cl.name).await;
    let subnet = common::subnet(&obs, "subnet-0").id.clone();
    // Someone else's instance in our subnet: AWS would refuse to delete the subnet.
    let squatter = foreign_instance(&c, Some(&subnet)).await;

    let down = cl.run(&["down", "-f", cl.spec_arg()]);
    assert_eq!(down.code, Some(1));
    assert!(
        down.stderr.contains(&squatter),
        "the blocker is named: {}",
        down.stderr
    );
    assert!(down.stderr.contains(&subnet));
    let left = tagged(&c, &cl.name).await;
    assert_eq!(left.vpcs.len(), 1, "the VPC stays while it is blocked");
    assert!(left.secret.is_some(), "the secret stays so `up` can resume");
    let remaining = down.summary()["remaining"].as_array().unwrap();
    assert!(
        remaining
            .iter()
            .any(|r| r.as_str().unwrap().contains(&subnet))
    );
    let f = c
        .ec2
        .describe_instances()
        .instance_ids(&squatter)
        .send()
        .await
        .unwrap();
    assert_eq!(
        f.reservations()[0].instances()[0].state().unwrap().name(),
        Some(&aws_sdk_ec2::types::InstanceStateName::Running)
    );

    c.ec2
        .terminate_instances()
        .instance_ids(&squatter)
        .send()
        .await
        .unwrap();
    cl.down();
    assert!(tagged(&c, &cl.name).await.is_empty());
}

// Crash-resume (up killed at any moment) is tests/crash.rs, on an emulator with latency.

/// An untagged instance of nobody's, in `subnet` (else the default VPC). Returns its id.
async fn foreign_instance(c: &Clients, subnet: Option<&str>) -> String {
    let out = c
        .ec2
        .run_instances()
        .image_id("ami-785db401")
        .instance_type(aws_sdk_ec2::types::InstanceType::T3Micro)
        .set_subnet_id(subnet.map(str::to_string))
        .min_count(1)
        .max_count(1)
        .send()
        .await
        .unwrap();
    out.instances()[0].instance_id().unwrap().to_string()
}
