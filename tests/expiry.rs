//! Expiring clusters: `ttl` in the spec and `up --ttl` tag everything a cluster owns with
//! `provision:expires-at` (and who made it, and when); `up --ttl` moves the expiry on what
//! exists; `provision gc` deletes the expired clusters of ours and nothing else.

mod common;

use common::{Cluster, REGION, sdk};
use provision::core::stamp::{self, parse_utc};

fn now() -> i64 {
    common::now()
}

/// The expiry on every resource of the cluster that takes tags: VPC, subnets, instances, the
/// node role and instance profile, the bootstrap secret.
async fn expiries(c: &provision::aws::Clients, cluster: &str) -> Vec<(String, Option<String>)> {
    let obs = common::tagged(c, cluster).await;
    let mut out = Vec::new();
    let vpcs = c
        .ec2
        .describe_vpcs()
        .vpc_ids(obs.vpcs[0].id.clone())
        .send()
        .await
        .unwrap();
    for v in vpcs.vpcs() {
        out.push((
            v.vpc_id().unwrap().to_string(),
            common::tag_value(v.tags(), stamp::EXPIRES_AT_TAG).map(str::to_string),
        ));
    }
    let subnets = c
        .ec2
        .describe_subnets()
        .set_subnet_ids(Some(obs.subnets.iter().map(|s| s.id.clone()).collect()))
        .send()
        .await
        .unwrap();
    for s in subnets.subnets() {
        out.push((
            s.subnet_id().unwrap().to_string(),
            common::tag_value(s.tags(), stamp::EXPIRES_AT_TAG).map(str::to_string),
        ));
    }
    let ids: Vec<String> = obs
        .instances
        .iter()
        .filter(|i| i.is_live())
        .map(|i| i.id.clone())
        .collect();
    let res = c
        .ec2
        .describe_instances()
        .set_instance_ids(Some(ids))
        .send()
        .await
        .unwrap();
    for i in res.reservations().iter().flat_map(|r| r.instances()) {
        out.push((
            i.instance_id().unwrap().to_string(),
            common::tag_value(i.tags(), stamp::EXPIRES_AT_TAG).map(str::to_string),
        ));
    }
    for r in obs.roles.iter().filter(|r| r.owned) {
        let role = c.iam.get_role().role_name(&r.name).send().await.unwrap();
        let tag = role
            .role()
            .unwrap()
            .tags()
            .iter()
            .find(|t| t.key() == stamp::EXPIRES_AT_TAG)
            .map(|t| t.value().to_string());
        out.push((r.name.clone(), tag));
    }
    for p in obs.profiles.iter().filter(|p| p.owned) {
        let got = c
            .iam
            .get_instance_profile()
            .instance_profile_name(&p.name)
            .send()
            .await
            .unwrap();
        let tag = got
            .instance_profile()
            .unwrap()
            .tags()
            .iter()
            .find(|t| t.key() == stamp::EXPIRES_AT_TAG)
            .map(|t| t.value().to_string());
        out.push((p.name.clone(), tag));
    }
    let secret = provision::core::tags::secret_parameter_name(cluster);
    let tags = c
        .ssm
        .list_tags_for_resource()
        .resource_type(aws_sdk_ssm::types::ResourceTypeForTagging::Parameter)
        .resource_id(&secret)
        .send()
        .await
        .unwrap();
    let tag = tags
        .tag_list()
        .iter()
        .find(|t| t.key() == stamp::EXPIRES_AT_TAG)
        .map(|t| t.value().to_string());
    out.push((secret, tag));
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn a_ttl_tags_everything_and_up_ttl_moves_it_on_what_exists() {
    let cl = Cluster::new("ttl", 1, "");
    cl.with_ttl("4h");
    let before = now();
    let up = cl.up();
    let expires = parse_utc(up.summary()["expires_at"].as_str().unwrap()).unwrap();
    assert!(
        (before + 4 * 3600..=now() + 4 * 3600).contains(&expires),
        "expiry {expires} is not 4h after the run"
    );
    let c = sdk().await;
    let first = expiries(&c, &cl.name).await;
    assert!(first.len() >= 8, "{first:?}");
    for (id, e) in &first {
        assert_eq!(
            e.as_deref().and_then(parse_utc),
            Some(expires),
            "{id} lacks the expiry"
        );
    }
    // Who and when, on the VPC (what `list` reads) and an instance.
    let obs = common::tagged(&c, &cl.name).await;
    let vpc = &obs.vpcs[0].stamp;
    assert!(
        vpc.created_by
            .as_deref()
            .is_some_and(|a| a.starts_with("arn:aws:")),
        "{vpc:?}"
    );
    assert!(
        vpc.created_at
            .is_some_and(|t| (before - 1..=now()).contains(&t)),
        "{vpc:?}"
    );
    let res = c
        .ec2
        .describe_instances()
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("tag:provision:cluster")
                .values(&cl.name)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let master = res
        .reservations()
        .iter()
        .flat_map(|r| r.instances())
        .find(|i| common::tag_value(i.tags(), "provision:resource") == Some("master"))
        .unwrap();
    assert!(common::tag_value(master.tags(), stamp::CREATED_BY_TAG).is_some());
    assert!(
        common::tag_value(master.tags(), stamp::VERSION_TAG).is_some_and(|v| v.starts_with("1."))
    );

    // The spec's TTL keeps the expiry: nothing to do on a second run.
    let plan = cl.run(&["plan", "-f", cl.spec_arg()]);
    assert_eq!(plan.code, Some(0), "{}", plan.stderr);
    assert!(
        plan.plan_ids("update").is_empty(),
        "{:?}",
        plan.summary()["plan"]
    );

    // `up --ttl 8h` moves it on everything that exists, and says so in its plan.
    let plan = cl.run(&["plan", "-f", cl.spec_arg(), "--ttl", "8h"]);
    assert_eq!(plan.plan_ids("update"), vec!["(cluster)".to_string()]);
    let before = now();
    let up = cl.run(&["up", "-f", cl.spec_arg(), "--ttl", "8h"]);
    assert!(up.ok(), "{}", up.stderr);
    assert_eq!(up.plan_ids("update"), vec!["(cluster)".to_string()]);
    let moved = parse_utc(up.summary()["expires_at"].as_str().unwrap()).unwrap();
    assert!((before + 8 * 3600..=now() + 8 * 3600).contains(&moved));
    let second = expiries(&c, &cl.name).await;
    assert_eq!(second.len(), first.len());
    for (id, e) in &second {
        assert_eq!(
            e.as_deref().and_then(parse_utc),
            Some(moved),
            "{id} kept the old expiry"
        );
    }
    // Only tagging calls: nothing else changed.
    let mutating = up.mutating_calls();
    assert!(!mutating.is_empty());
    assert!(mutating.iter().all(|m| m.contains("Tag")), "{mutating:?}");
    let again = cl.run(&["plan", "-f", cl.spec_arg()]);
    assert!(again.plan_ids("update").is_empty());
    cl.down();
}

#[test]
fn a_bad_ttl_is_refused_before_any_call() {
    let cl = Cluster::new("ttlbad", 1, "");
    let r = cl.run(&["up", "-f", cl.spec_arg(), "--ttl", "forever"]);
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    assert!(r.stderr.contains("--ttl"), "{}", r.stderr);
    assert!(r.stderr.contains("not a duration"), "{}", r.stderr);
    let _ = REGION;
}

/// Sets `provision:expires-at` on a VPC (the clock moved on, as far as `gc` can tell).
async fn expire_vpc(c: &provision::aws::Clients, vpc: &str, at: i64) {
    c.ec2
        .create_tags()
        .resources(vpc)
        .tags(
            aws_sdk_ec2::types::Tag::builder()
                .key(stamp::EXPIRES_AT_TAG)
                .value(provision::core::lock::unix_utc(at))
                .build(),
        )
        .send()
        .await
        .unwrap();
}

/// A VPC that looks like an expired cluster of ours but lacks `provision:cluster`.
async fn look_alike(c: &provision::aws::Clients, name: &str) -> String {
    use aws_sdk_ec2::types::{ResourceType, Tag, TagSpecification};
    let tag = |k: &str, v: &str| Tag::builder().key(k).value(v).build();
    c.ec2
        .create_vpc()
        .cidr_block("10.99.0.0/16")
        .tag_specifications(
            TagSpecification::builder()
                .resource_type(ResourceType::Vpc)
                .tags(tag("Name", &format!("{name}-vpc")))
                .tags(tag("provision:resource", "vpc"))
                .tags(tag("provision:cluster-of", name))
                .tags(tag(stamp::EXPIRES_AT_TAG, "2020-01-01T00:00:00Z"))
                .build(),
        )
        .send()
        .await
        .unwrap()
        .vpc()
        .unwrap()
        .vpc_id()
        .unwrap()
        .to_string()
}

async fn vpc_exists(c: &provision::aws::Clients, id: &str) -> bool {
    c.ec2
        .describe_vpcs()
        .vpc_ids(id)
        .send()
        .await
        .is_ok_and(|o| !o.vpcs().is_empty())
}

#[tokio::test(flavor = "multi_thread")]
async fn gc_deletes_exactly_the_expired_cluster() {
    // A region of its own: no other test's cluster is in the survey.
    const GC_REGION: &str = "eu-west-3";
    let c = provision::aws::clients_for_endpoint(GC_REGION, &common::emulator()).await;
    let make = |prefix: &str, ttl: Option<&str>| {
        let cl = Cluster::new(prefix, 1, "");
        cl.edit(
            &format!("region = \"{REGION}\""),
            &format!("region = \"{GC_REGION}\""),
        );
        if let Some(t) = ttl {
            cl.with_ttl(t);
        }
        cl
    };
    let expired = make("gcold", Some("1h"));
    let young = make("gcyoung", Some("4h"));
    let forever = make("gcnone", None);
    for cl in [&expired, &young, &forever] {
        cl.up_running();
    }
    let vpc_of = |obs: &provision::core::kinds::Observed| obs.vpcs[0].id.clone();
    let mut scope = provision::aws::kind::Scope::down(&expired.name, GC_REGION);
    scope.vpc_attributes = false;
    let old_vpc = vpc_of(&provision::aws::discover::observe(&c, &scope).await.unwrap());
    expire_vpc(&c, &old_vpc, now() - 60).await;
    let foreign = look_alike(&c, &expired.name).await;

    // `list` shows all three with their expiry.
    let list = young.run(&["list", "--region", GC_REGION]);
    assert_eq!(list.code, Some(0), "{}", list.stderr);
    let rows = list.summary()["clusters"].as_array().unwrap().clone();
    let row = |name: &str| rows.iter().find(|r| r["name"] == name).cloned();
    assert_eq!(row(&expired.name).unwrap()["expired"], true);
    assert_eq!(row(&young.name).unwrap()["expired"], false);
    assert!(row(&young.name).unwrap()["expires_at"].is_string());
    assert!(row(&forever.name).unwrap()["expires_at"].is_null());
    assert_eq!(row(&forever.name).unwrap()["nodes"], 2);
    assert_eq!(row(&forever.name).unwrap()["kind"], "kubeadm");
    assert!(
        row(&forever.name).unwrap()["created_by"]
            .as_str()
            .unwrap()
            .starts_with("arn:aws:")
    );
    assert_eq!(rows.len(), 3, "{rows:?}");

    // --dry-run names it and changes nothing.
    let dry = young.run(&["gc", "--region", GC_REGION, "--dry-run"]);
    assert_eq!(dry.code, Some(0), "{}", dry.stderr);
    let names: Vec<&str> = dry.summary()["expired"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, [expired.name.as_str()]);
    assert!(
        dry.mutating_calls().is_empty(),
        "{:?}",
        dry.mutating_calls()
    );
    assert!(vpc_exists(&c, &old_vpc).await);

    let gc = young.run(&["gc", "--region", GC_REGION]);
    assert_eq!(gc.code, Some(0), "{}", gc.stderr);
    let out = &gc.summary()["expired"][0];
    assert_eq!(out["name"], expired.name.as_str());
    assert_eq!(out["result"], "deleted");
    assert!(out["resources_deleted"].as_u64().unwrap() > 5);
    assert!(
        !vpc_exists(&c, &old_vpc).await,
        "the expired cluster's VPC is still there"
    );
    assert!(common::tagged(&c, &expired.name).await.is_empty());
    // The others, and the look-alike, are untouched.
    assert!(
        vpc_exists(&c, &foreign).await,
        "gc deleted a VPC without our cluster tag"
    );
    let list = young.run(&["list", "--region", GC_REGION]);
    let left: Vec<&str> = list.summary()["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    let mut want = vec![young.name.as_str(), forever.name.as_str()];
    want.sort();
    assert_eq!(left, want);
    for cl in [&young, &forever] {
        let r = cl.run(&["down", "-f", cl.spec_arg(), "--no-kubeconfig"]);
        assert!(r.ok(), "{}", r.stderr);
    }
    c.ec2.delete_vpc().vpc_id(&foreign).send().await.unwrap();
}

#[test]
fn gc_leaves_a_cluster_whose_expiry_moved_after_the_survey() {
    // Discovery and a whole `down` run in this process: with the stack the binary's main
    // thread has (a test thread's 2 MiB is too small for them in a debug build).
    std::thread::Builder::new()
        .stack_size(16 << 20)
        .spawn(|| {
            tokio::runtime::Runtime::new()
                .unwrap()
                .block_on(gc_leaves_a_cluster_whose_expiry_moved())
        })
        .unwrap()
        .join()
        .unwrap();
}

async fn gc_leaves_a_cluster_whose_expiry_moved() {
    // gc surveyed an expired cluster; an `up --ttl` moved its expiry before gc's `down` took
    // the lock: the expiry read again under the lock keeps the cluster.
    let cl = Cluster::new("gcmoved", 1, "");
    cl.with_ttl("4h");
    cl.up_running();
    let c = sdk().await;
    let vpc = common::tagged(&c, &cl.name).await.vpcs[0].id.clone();
    expire_vpc(&c, &vpc, now() - 60).await;
    let survey = now();
    let obs = common::tagged(&c, &cl.name).await;
    assert!(
        stamp::expired(provision::core::plan::expiry::latest(&obs), survey),
        "expired at the survey"
    );
    let r = cl.run(&[
        "up",
        "-f",
        cl.spec_arg(),
        "--no-kubeconfig",
        "--wait",
        "running",
        "--ttl",
        "2h",
    ]);
    assert!(r.ok(), "{}", r.stderr);
    let opts = provision::engine::down::DownOptions {
        cluster: cl.name.clone(),
        concurrency: 4,
        instance_timeout: std::time::Duration::from_secs(60),
        eks_timeout: std::time::Duration::from_secs(60),
        lock_timeout: std::time::Duration::from_secs(10),
        kubeconfig: None,
        teardown: provision::core::plan::Teardown::default(),
        only_expired_at: Some(survey),
    };
    let e = Box::pin(provision::engine::down::down(
        c.clone(),
        &opts,
        std::sync::Arc::new(|_| {}),
    ))
    .await
    .unwrap_err();
    assert!(
        matches!(
            e,
            provision::engine::EngineError::NotExpired {
                expires_at: Some(_),
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("left alone"), "{e}");
    assert!(!common::tagged(&c, &cl.name).await.is_empty());
    // And with the expiry passed at the time given, it goes.
    let opts = provision::engine::down::DownOptions {
        only_expired_at: Some(now() + 3 * 3600),
        ..opts
    };
    let deleted = provision::engine::down::down(c.clone(), &opts, std::sync::Arc::new(|_| {}))
        .await
        .unwrap()
        .resources
        .len();
    assert!(deleted > 5);
    assert!(common::tagged(&c, &cl.name).await.is_empty());
}
