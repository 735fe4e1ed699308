//! `up` again on a kubeadm cluster that exists: scaling out (reusing the bootstrap token or
//! minting a new one), stopped instances started, a duplicate VPC removed; and what it refuses
//! before any change (a role of our name it does not own, a lost control plane, a new VPC CIDR).

mod common;

use common::{Cluster, read_bootstrap, sdk, tagged, user_data};
use provision::aws::Clients;

type Ec2Tag = aws_sdk_ec2::types::Tag;

#[tokio::test(flavor = "multi_thread")]
async fn an_untagged_role_of_our_name_is_neither_adopted_nor_deleted() {
    let cl = Cluster::new("squat", 1, "");
    let c = sdk().await;
    let role = provision::core::tags::node_role_name(&cl.name, common::REGION);
    common::untagged_role(&c, &role).await;

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
    assert!(down.warnings().iter().any(|w| w.contains(&role)));
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
    let stored = read_bootstrap(&c, &param).await;
    let token = stored["token"].as_str().unwrap().to_string();

    // 2 -> 3 workers while the token is fresh: one more worker, joining with the stored token.
    cl.edit("workers = 2", "workers = 3");
    a_fresh_token_is_reused(&c, &cl, &token).await;

    // Age the token past its useful life, then ask for a fourth worker: provision must mint a
    // new token on the API server before it launches. First with the API unreachable (the
    // emulator's master has none; --api-server points at a closed local port): `up` stops
    // before launching and says why.
    age_the_token(&c, &param, &stored).await;
    cl.edit("workers = 3", "workers = 4");
    an_unreachable_api_server_stops_up(&c, &cl, &param, &token).await;

    // Then through a stand-in API server that trusts the cluster CA: the token is minted there,
    // stored, and the new worker joins with it.
    a_stand_in_api_server_mints_the_token(&c, &cl, &param, &stored, &token).await;
    cl.down();
}

/// `up` to one more worker (the third) than the cluster has, while `token` is fresh.
async fn a_fresh_token_is_reused(c: &Clients, cl: &Cluster, token: &str) {
    let up = cl.up();
    assert_eq!(up.calls("EC2", "RunInstances"), 1);
    let obs = tagged(c, &cl.name).await;
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
        found |= user_data(c, &i.id)
            .await
            .contains(&format!("token: \"{token}\""));
    }
    assert!(found, "workers join with the stored token");
}

/// Stores `stored` again with its token made five hours ago.
async fn age_the_token(c: &Clients, param: &str, stored: &serde_json::Value) {
    let mut aged = stored.clone();
    aged["token_created"] =
        serde_json::json!(time::OffsetDateTime::now_utc().unix_timestamp() - 5 * 3600);
    c.ssm
        .put_parameter()
        .name(param)
        .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
        .value(aged.to_string())
        .overwrite(true)
        .send()
        .await
        .unwrap();
}

async fn an_unreachable_api_server_stops_up(c: &Clients, cl: &Cluster, param: &str, token: &str) {
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
        read_bootstrap(c, param).await["token"],
        token,
        "the stored token is only replaced once the new one exists"
    );
}

async fn a_stand_in_api_server_mints_the_token(
    c: &Clients,
    cl: &Cluster,
    param: &str,
    stored: &serde_json::Value,
    token: &str,
) {
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
    let minted = read_bootstrap(c, param).await["token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(minted, token);
    let posted = recorded.lock().unwrap().clone();
    assert_eq!(posted.len(), 1);
    assert!(posted[0].contains(&format!(
        "bootstrap-token-{}",
        minted.split('.').next().unwrap()
    )));
    let obs = tagged(c, &cl.name).await;
    let mut joined = 0;
    for i in obs
        .instances
        .iter()
        .filter(|i| i.logical.as_deref() == Some("workers-1") && i.is_live())
    {
        joined += usize::from(
            user_data(c, &i.id)
                .await
                .contains(&format!("token: \"{minted}\"")),
        );
    }
    assert_eq!(joined, 1, "the fourth worker joins with the minted token");
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
    let updates = plan.plan_ids("update");
    assert_eq!(
        updates,
        ["master", "workers"],
        "plan says the stopped instances will be started"
    );

    let up = cl.up();
    assert_eq!(up.calls("EC2", "RunInstances"), 0, "nothing replaced");
    assert_eq!(
        up.calls("EC2", "StartInstances"),
        2,
        "one call for the control plane, one for the worker pool"
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
    assert!(up.warnings().iter().any(|w| w.contains(&dup)));
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
    common::terminate_the_control_plane(&c, &cl.name).await;
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
    cl.edit("10.40.0.0/16", "10.41.0.0/16");
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
