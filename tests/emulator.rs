//! `up`, `plan` and `down` of the real binary against the AWS emulator (moto server).
//!
//! Each test makes its own cluster with a unique name and removes it; none depends on another.

mod common;

use std::collections::HashSet;
use std::os::unix::fs::PermissionsExt;

use aws_sdk_ec2::types::Filter;
use common::{Cluster, sdk, tagged, user_data};
use provision::core::tags::CLUSTER_TAG;

type Ec2Tag = aws_sdk_ec2::types::Tag;

fn has_tag(tags: &[Ec2Tag], key: &str, value: &str) -> bool {
    tags.iter()
        .any(|t| t.key() == Some(key) && t.value() == Some(value))
}

#[tokio::test(flavor = "multi_thread")]
async fn up_creates_every_resource_as_specified() {
    let cl = Cluster::new("spec", 2, "");
    let run = cl.up();
    let c = sdk().await;
    let s = run.summary();

    // Summary: the fields later checks rely on.
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
        run.total_calls() <= 48,
        "default up made {} calls: {}",
        run.total_calls(),
        s["api_calls"]
    );

    // VPC with DNS support and hostnames.
    let obs = tagged(&c, &cl.name).await;
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

    // Security groups: 6443 only from the admin CIDR and the node group; no 22; no 0.0.0.0/0.
    let groups = obs.group_ids();
    let nodes_sg = &groups["sg-nodes"];
    let cp = obs
        .security_groups
        .iter()
        .find(|g| g.logical.as_deref() == Some("sg-control-plane"))
        .unwrap();
    let mut cp_rules: Vec<(i32, String)> = cp
        .rules
        .iter()
        .map(|r| (r.from_port, r.source.clone()))
        .collect();
    cp_rules.sort();
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

    // Instances: 1 master + 2 workers, one per subnet, IMDSv2 required with hop limit 1,
    // encrypted root volume, tags set at creation.
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
        let ud = user_data(&c, i.instance_id().unwrap()).await;
        assert!(ud.starts_with("#cloud-config\n"));
        assert!(
            !ud.contains("PRIVATE KEY"),
            "no private key in any user data"
        );
        if logical == "master" {
            assert!(ud.contains("kind: InitConfiguration") && ud.contains("provision-fetch-ca.py"));
            // Only this instance may read the CA from SSM: the node role's inline policy.
            let p = c
                .iam
                .get_role_policy()
                .role_name(&role.name)
                .policy_name("provision-ca-access")
                .send()
                .await
                .unwrap();
            let doc = p.policy_document();
            let doc = if doc.starts_with('{') {
                doc.to_string()
            } else {
                doc.replace("%22", "\"")
                    .replace("%3A", ":")
                    .replace("%2F", "/")
                    .replace("%7B", "{")
                    .replace("%7D", "}")
                    .replace("%2C", ",")
                    .replace("%5B", "[")
                    .replace("%5D", "]")
                    .replace("%20", " ")
            };
            let v: serde_json::Value =
                serde_json::from_str(&doc).unwrap_or_else(|e| panic!("{e}: {doc}"));
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
                format!(
                    "arn:aws:ec2:us-east-1:123456789012:instance/{}",
                    i.instance_id().unwrap()
                )
            );
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

    // kubeconfig: merged, context named after the cluster, mode 0600.
    let kc = cl.kubeconfig();
    assert_eq!(
        std::fs::metadata(&kc).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let text = std::fs::read_to_string(&kc).unwrap();
    assert!(text.contains(&format!("current-context: {}", cl.name)));
    assert!(text.contains(&format!("server: https://{public_ip}:6443")));

    cl.down();
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
    let actions = |r: &common::Run| -> Vec<(String, String)> {
        r.summary()["plan"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p["id"].as_str().unwrap().to_string(),
                    p["action"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
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
    assert_eq!(d.len(), 14, "{d:?}");
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
    let foreign = c
        .ec2
        .run_instances()
        .image_id("ami-785db401")
        .instance_type(aws_sdk_ec2::types::InstanceType::T3Micro)
        .min_count(1)
        .max_count(1)
        .send()
        .await
        .unwrap();
    let foreign_id = foreign.instances()[0].instance_id().unwrap().to_string();
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
    assert_eq!(down.summary()["resources"].as_array().unwrap().len(), 14);
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
    // An AMI id of the right form that does not exist: the network, IAM and secret are made,
    // then the AMI lookup fails and no instance is launched.
    let cl = Cluster::new("partial", 2, "ami = \"ami-0123456789abcdef0\"");
    let up = cl.run(&["up", "-f", cl.spec_arg()]);
    assert_eq!(up.code, Some(1), "{}", up.stderr);
    assert!(
        up.stderr.contains("kubeadm.ami"),
        "the error names the field: {}",
        up.stderr
    );
    assert!(up.stderr.contains("re-run `provision up`"), "{}", up.stderr);
    let c = sdk().await;
    let obs = tagged(&c, &cl.name).await;
    assert_eq!(obs.vpcs.len(), 1, "the network was made before the failure");
    assert!(obs.instances.is_empty());
    cl.down();
    assert!(tagged(&c, &cl.name).await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn teardown_order_follows_dependencies() {
    let cl = Cluster::new("order", 2, "");
    cl.up();
    let run = cl.run(&["--trace-api-calls", "down", "-f", cl.spec_arg()]);
    assert!(run.ok(), "{}", run.stderr);
    let calls: Vec<String> = run
        .events
        .iter()
        .filter(|e| e["event"] == "api_call")
        .map(|e| e["operation"].as_str().unwrap().to_string())
        .collect();
    let first = |op: &str| {
        calls
            .iter()
            .position(|c| c == op)
            .unwrap_or_else(|| panic!("no {op} in {calls:?}"))
    };
    let last = |op: &str| calls.iter().rposition(|c| c == op).unwrap();
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
    let subnet = obs
        .subnets
        .iter()
        .find(|s| s.logical.as_deref() == Some("subnet-0"))
        .unwrap()
        .id
        .clone();
    // Someone else's instance in our subnet: AWS would refuse to delete the subnet.
    let squatter = c
        .ec2
        .run_instances()
        .image_id("ami-785db401")
        .instance_type(aws_sdk_ec2::types::InstanceType::T3Micro)
        .subnet_id(&subnet)
        .min_count(1)
        .max_count(1)
        .send()
        .await
        .unwrap();
    let squatter = squatter.instances()[0].instance_id().unwrap().to_string();

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

#[tokio::test(flavor = "multi_thread")]
async fn an_untagged_role_of_our_name_is_neither_adopted_nor_deleted() {
    let cl = Cluster::new("squat", 1, "");
    let c = sdk().await;
    let role = provision::core::tags::node_role_name(&cl.name, common::REGION);
    c.iam
        .create_role()
        .role_name(&role)
        .assume_role_policy_document(r#"{"Version":"2012-10-17","Statement":[]}"#)
        .send()
        .await
        .unwrap();

    let up = cl.run(&["up", "-f", cl.spec_arg()]);
    assert_eq!(up.code, Some(1));
    assert!(
        up.stderr.contains(&role) && up.stderr.contains("without"),
        "{}",
        up.stderr
    );
    assert_eq!(
        up.mutating_calls(),
        Vec::<String>::new(),
        "refused before creating anything"
    );

    let down = cl.run(&["down", "-f", cl.spec_arg()]);
    assert!(down.ok(), "{}", down.stderr);
    assert!(
        down.events
            .iter()
            .any(|e| e["event"] == "warning" && e["message"].as_str().unwrap().contains(&role))
    );
    assert!(
        c.iam.get_role().role_name(&role).send().await.is_ok(),
        "someone else's role survives down"
    );
    c.iam.delete_role().role_name(&role).send().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn scale_out_reuses_a_valid_token_and_mints_a_new_one_when_it_expired() {
    let cl = Cluster::new("scale", 2, "");
    cl.up();
    let c = sdk().await;
    let param = format!("/provision/{}/bootstrap", cl.name);
    let read = || async {
        let p = c
            .ssm
            .get_parameter()
            .name(&param)
            .with_decryption(true)
            .send()
            .await
            .unwrap();
        serde_json::from_str::<serde_json::Value>(p.parameter().unwrap().value().unwrap()).unwrap()
    };
    let stored = read().await;
    let token = stored["token"].as_str().unwrap().to_string();

    // 2 -> 3 workers while the token is fresh: one more worker, joining with the stored token.
    std::fs::write(
        &cl.spec,
        std::fs::read_to_string(&cl.spec)
            .unwrap()
            .replace("workers = 2", "workers = 3"),
    )
    .unwrap();
    let up = cl.up();
    assert_eq!(up.calls("EC2", "RunInstances"), 1);
    let obs = tagged(&c, &cl.name).await;
    let newest = obs
        .instances
        .iter()
        .filter(|i| i.logical.as_deref() == Some("workers-0"))
        .count();
    assert_eq!(newest, 2, "the third worker goes to subnet-0");
    let mut found = false;
    for i in obs
        .instances
        .iter()
        .filter(|i| i.logical.as_deref() == Some("workers-0"))
    {
        found |= user_data(&c, &i.id)
            .await
            .contains(&format!("token: \"{token}\""));
    }
    assert!(found, "workers join with the stored token");

    // Age the token past its useful life, then ask for a fourth worker: provision must mint a
    // new token on the API server before it launches. First with the API unreachable (the
    // emulator's master has none; --api-server points at a closed local port): `up` stops
    // before launching and says why.
    let mut aged = stored.clone();
    aged["token_created"] =
        serde_json::json!(time::OffsetDateTime::now_utc().unix_timestamp() - 5 * 3600);
    c.ssm
        .put_parameter()
        .name(&param)
        .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
        .value(aged.to_string())
        .overwrite(true)
        .send()
        .await
        .unwrap();
    std::fs::write(
        &cl.spec,
        std::fs::read_to_string(&cl.spec)
            .unwrap()
            .replace("workers = 3", "workers = 4"),
    )
    .unwrap();
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let up = cl.run(&[
        "up",
        "-f",
        cl.spec_arg(),
        "--wait",
        "running",
        "--api-server",
        &format!("https://{closed}"),
    ]);
    assert_eq!(up.code, Some(1), "{}", up.stderr);
    assert!(
        up.stderr.contains("minting a bootstrap token"),
        "{}",
        up.stderr
    );
    assert_eq!(
        up.calls("EC2", "RunInstances"),
        0,
        "no worker launched with an expired token"
    );
    assert_eq!(
        read().await["token"],
        token.as_str(),
        "the stored token is only replaced once the new one exists"
    );

    // Then through a stand-in API server that trusts the cluster CA: the token is minted there,
    // stored, and the new worker joins with it.
    let ca = provision::core::pki::Ca {
        cert_pem: stored["ca_cert_pem"].as_str().unwrap().into(),
        key_pem: stored["ca_key_pem"].as_str().unwrap().into(),
    };
    let (api, recorded) = common::api_server_recording(&ca, "ok", 4, 4).await;
    let up = cl.run(&[
        "up",
        "-f",
        cl.spec_arg(),
        "--wait",
        "running",
        "--api-server",
        &api,
    ]);
    assert!(up.ok(), "{}", up.stderr);
    assert_eq!(up.calls("EC2", "RunInstances"), 1);
    let minted = read().await["token"].as_str().unwrap().to_string();
    assert_ne!(minted, token);
    let posted = recorded.lock().unwrap().clone();
    assert_eq!(posted.len(), 1);
    assert!(posted[0].contains(&format!(
        "bootstrap-token-{}",
        minted.split('.').next().unwrap()
    )));
    let obs = tagged(&c, &cl.name).await;
    let mut joined = 0;
    for i in obs
        .instances
        .iter()
        .filter(|i| i.logical.as_deref() == Some("workers-1") && i.is_live())
    {
        joined += usize::from(
            user_data(&c, &i.id)
                .await
                .contains(&format!("token: \"{minted}\"")),
        );
    }
    assert_eq!(joined, 1, "the fourth worker joins with the minted token");
    cl.down();
}

#[tokio::test(flavor = "multi_thread")]
async fn stopped_instances_are_started_not_replaced() {
    let cl = Cluster::new("stopped", 2, "");
    cl.up();
    let c = sdk().await;
    let obs = tagged(&c, &cl.name).await;
    let ids: Vec<String> = obs
        .instances
        .iter()
        .filter(|i| i.is_live())
        .map(|i| i.id.clone())
        .collect();
    c.ec2
        .stop_instances()
        .set_instance_ids(Some(ids.clone()))
        .send()
        .await
        .unwrap();
    let plan = cl.run(&["plan", "-f", cl.spec_arg()]);
    let updates: Vec<&str> = plan.summary()["plan"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["action"] == "update")
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        updates,
        ["master", "workers-0", "workers-1"],
        "plan says the stopped instances will be started"
    );

    let up = cl.up();
    assert_eq!(up.calls("EC2", "RunInstances"), 0, "nothing replaced");
    assert_eq!(
        up.calls("EC2", "StartInstances"),
        3,
        "one call per node group"
    );
    let after = tagged(&c, &cl.name).await;
    let mut running: Vec<String> = after
        .instances
        .iter()
        .filter(|i| i.state == "running")
        .map(|i| i.id.clone())
        .collect();
    running.sort();
    let mut want = ids.clone();
    want.sort();
    assert_eq!(running, want);
    cl.down();
}

#[tokio::test(flavor = "multi_thread")]
async fn an_empty_duplicate_vpc_from_a_lost_answer_is_removed() {
    let cl = Cluster::new("dupvpc", 1, "");
    cl.up();
    let c = sdk().await;
    // What a retried CreateVpc whose first answer was lost leaves: a second VPC with our tags.
    let tags = provision::core::tags::tags_for(&cl.name, "vpc", true, &Default::default());
    let spec = aws_sdk_ec2::types::TagSpecification::builder()
        .resource_type(aws_sdk_ec2::types::ResourceType::Vpc)
        .set_tags(Some(
            tags.iter()
                .map(|(k, v)| Ec2Tag::builder().key(k).value(v).build())
                .collect(),
        ))
        .build();
    let dup = c
        .ec2
        .create_vpc()
        .cidr_block("10.40.0.0/16")
        .tag_specifications(spec)
        .send()
        .await
        .unwrap();
    let dup = dup.vpc().unwrap().vpc_id().unwrap().to_string();

    let plan = cl.run(&["plan", "-f", cl.spec_arg()]);
    let deletes: Vec<&serde_json::Value> = plan.summary()["plan"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["action"] == "delete")
        .collect();
    assert_eq!(deletes.len(), 1);
    assert_eq!(
        deletes[0]["aws_id"],
        dup.as_str(),
        "plan shows the duplicate going"
    );
    let up = cl.up();
    assert!(
        up.events
            .iter()
            .any(|e| e["event"] == "warning" && e["message"].as_str().unwrap().contains(&dup))
    );
    assert_eq!(up.mutating_calls(), ["EC2:DeleteVpc"]);
    let obs = tagged(&c, &cl.name).await;
    assert_eq!(obs.vpcs.len(), 1);
    assert_ne!(obs.vpcs[0].id, dup);
    cl.down();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lost_control_plane_is_not_silently_replaced() {
    let cl = Cluster::new("nomaster", 1, "");
    cl.up();
    let c = sdk().await;
    let obs = tagged(&c, &cl.name).await;
    let master = obs.live_instances("master").next().unwrap().id.clone();
    c.ec2
        .terminate_instances()
        .instance_ids(&master)
        .send()
        .await
        .unwrap();
    let up = cl.run(&["up", "-f", cl.spec_arg()]);
    assert_eq!(up.code, Some(1));
    assert!(
        up.stderr.contains("control plane") && up.stderr.contains("provision down"),
        "{}",
        up.stderr
    );
    assert_eq!(up.mutating_calls(), Vec::<String>::new());
    cl.down();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_changed_vpc_cidr_is_refused_before_any_change() {
    let cl = Cluster::new("cidr", 1, "");
    cl.up();
    std::fs::write(
        &cl.spec,
        std::fs::read_to_string(&cl.spec)
            .unwrap()
            .replace("10.40.0.0/16", "10.41.0.0/16"),
    )
    .unwrap();
    let plan = cl.run(&["plan", "-f", cl.spec_arg()]);
    assert_eq!(plan.code, Some(1), "plan shows the refusal and exits 1");
    let vpc = plan.summary()["plan"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == "vpc")
        .unwrap()
        .clone();
    assert_eq!(vpc["action"], "refuse");
    assert!(
        vpc["reason"]
            .as_str()
            .unwrap()
            .contains("cannot be changed in place"),
        "{vpc}"
    );
    let up = cl.run(&["up", "-f", cl.spec_arg()]);
    assert_eq!(up.code, Some(1));
    assert!(
        up.stderr.contains("cannot be changed in place"),
        "{}",
        up.stderr
    );
    assert_eq!(up.mutating_calls(), Vec::<String>::new());
    cl.down();
}
