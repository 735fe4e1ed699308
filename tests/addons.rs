//! The observability add-ons on the emulator: instances, their security groups, role, secret and
//! user data, for a kubeadm cluster with everything on; and `down` leaving nothing.

mod common;

use common::{Cluster, inline_policy, sdk, tagged, url_decode, user_data};
use provision::aws::Clients;
use provision::core::kinds::Observed;
use serde_json::Value;

const ALL_ON: &str = r#"
[addons]
monitoring = true
logging = true
tracing = { instance_type = "t3.medium" }

[security]
namespaces = ["team-a"]

[[security.bindings]]
group = "team-a-devs"
role = "edit"
namespaces = ["team-a"]
"#;

/// (protocol, from, to, source) of a group's ingress rules, sources as CIDRs or group ids.
async fn rules(c: &Clients, group: &str) -> Vec<(i32, String)> {
    let out = c
        .ec2
        .describe_security_groups()
        .group_ids(group)
        .send()
        .await
        .unwrap();
    let mut v = Vec::new();
    for p in out.security_groups()[0].ip_permissions() {
        let port = p.from_port().unwrap_or(-1);
        assert_eq!(p.from_port(), p.to_port(), "one port per rule");
        for r in p.ip_ranges() {
            v.push((port, r.cidr_ip().unwrap().to_string()));
        }
        for g in p.user_id_group_pairs() {
            v.push((port, g.group_id().unwrap().to_string()));
        }
    }
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread")]
async fn every_add_on_gets_its_instance_group_role_and_secret_and_down_removes_them() {
    let cl = Cluster::new("addons", 1, ALL_ON);
    let up = cl.up();
    let s = up.summary();
    let c = sdk().await;
    let obs = tagged(&c, &cl.name).await;
    check_rules(&c, &obs).await;

    // One instance each, IMDSv2 required, the add-ons' profile, user data that sees the cluster.
    let profile = obs
        .profile("addons-instance-profile")
        .expect("the add-ons' profile");
    assert!(profile.owned);
    let addons = s["addons"].as_array().unwrap();
    assert_eq!(addons.len(), 3);
    for a in addons {
        check_instance(&c, &obs, a).await;
    }
    check_monitoring_and_urls(&c, &cl, addons).await;
    assert_eq!(s["addon_secret"], format!("/provision/{}/addons", cl.name));

    let passwords = check_role_and_secret(&c, &cl, &obs, &up).await;

    // Printed only when asked.
    let pw = cl.run(&["passwords", "-f", cl.spec_arg()]);
    assert!(pw.ok(), "{}", pw.stderr);
    assert_eq!(
        pw.summary()["grafana"]["password"],
        passwords["grafana_admin_password"]
    );
    assert_eq!(pw.summary()["elasticsearch"]["user"], "elastic");

    check_control_plane(&c, &cl, &obs).await;

    // A second up changes nothing; down leaves nothing.
    let again = cl.up();
    assert_eq!(again.mutating_calls(), Vec::<String>::new());
    cl.down();
    let after = tagged(&c, &cl.name).await;
    assert!(after.is_empty(), "{after:?}");
    assert!(
        c.ssm
            .get_parameter()
            .name(format!("/provision/{}/addons", cl.name))
            .send()
            .await
            .is_err()
    );
}

/// The id of the cluster's security group `logical`.
fn sg(obs: &Observed, logical: &str) -> String {
    common::security_group(obs, logical).id.clone()
}

/// UIs from the admin CIDRs only, ingest from the nodes only, node_exporter from Prometheus.
async fn check_rules(c: &Clients, obs: &Observed) {
    let (nodes, mon, log, tra) = (
        sg(obs, "sg-nodes"),
        sg(obs, "sg-monitoring"),
        sg(obs, "sg-logging"),
        sg(obs, "sg-tracing"),
    );
    let admin = "198.51.100.0/24".to_string();
    assert_eq!(
        rules(c, &mon).await,
        [
            (3000, admin.clone()),
            (9090, admin.clone()),
            (9100, mon.clone())
        ]
    );
    assert_eq!(
        rules(c, &log).await,
        [
            (5601, admin.clone()),
            (9100, mon.clone()),
            (9200, nodes.clone())
        ]
    );
    assert_eq!(
        rules(c, &tra).await,
        [
            (4317, nodes.clone()),
            (4318, nodes.clone()),
            (9100, mon.clone()),
            (16686, admin.clone())
        ]
    );
    assert!(
        rules(c, &nodes).await.contains(&(9100, mon.clone())),
        "the nodes admit node_exporter scrapes from Prometheus"
    );
}

/// The add-on `a` (of the summary): IMDSv2 required, in its own group only, user data that
/// fetches its secrets and holds no password, and its URLs.
async fn check_instance(c: &Clients, obs: &Observed, a: &Value) {
    let name = a["name"].as_str().unwrap();
    let id = a["instance_id"].as_str().unwrap();
    let d = c
        .ec2
        .describe_instances()
        .instance_ids(id)
        .send()
        .await
        .unwrap();
    let i = &d.reservations()[0].instances()[0];
    assert_eq!(
        i.metadata_options()
            .unwrap()
            .http_tokens()
            .unwrap()
            .as_str(),
        "required",
        "{name}"
    );
    let groups: Vec<&str> = i
        .security_groups()
        .iter()
        .filter_map(|g| g.group_id())
        .collect();
    assert_eq!(
        groups,
        [sg(obs, &format!("sg-{name}")).as_str()],
        "{name}: its own group only"
    );
    let ud = user_data(c, id).await;
    assert!(ud.starts_with("#cloud-config"), "{name}");
    assert!(ud.contains("provision-fetch-secrets.py"), "{name}");
    assert!(
        !ud.contains("\"elastic_password\":"),
        "{name}: no password in user data"
    );
    let urls = a["urls"].as_object().unwrap();
    assert!(!urls.is_empty(), "{name}");
}

/// Prometheus discovers the cluster's instances by our tag; each UI has its URL.
async fn check_monitoring_and_urls(c: &Clients, cl: &Cluster, addons: &[Value]) {
    let mon_ud = user_data(
        c,
        addons.iter().find(|a| a["name"] == "monitoring").unwrap()["instance_id"]
            .as_str()
            .unwrap(),
    )
    .await;
    assert!(
        mon_ud.contains("tag:provision:cluster"),
        "Prometheus discovers by our tag"
    );
    assert!(mon_ud.contains(&format!("values: [\"{}\"]", cl.name)));
    let urls = |n: &str| addons.iter().find(|a| a["name"] == n).unwrap()["urls"].clone();
    assert!(
        urls("monitoring")["grafana"]
            .as_str()
            .unwrap()
            .ends_with(":3000")
    );
    assert!(
        urls("logging")["kibana"]
            .as_str()
            .unwrap()
            .ends_with(":5601")
    );
    assert!(
        urls("tracing")["otlp grpc (from the nodes)"]
            .as_str()
            .unwrap()
            .ends_with(":4317")
    );
}

/// The add-ons' role reads their passwords, nothing else of SSM; the passwords are a
/// SecureString and never in `up`'s output. Returns them.
async fn check_role_and_secret(
    c: &Clients,
    cl: &Cluster,
    obs: &Observed,
    up: &common::Run,
) -> Value {
    let role = obs.role("addons-role").unwrap();
    let doc = url_decode(&inline_policy(c, &role.name, "provision-addons-access").await);
    assert!(doc.contains("ec2:DescribeInstances"), "{doc}");
    assert!(
        doc.contains(&format!("parameter/provision/{}/addons", cl.name)),
        "{doc}"
    );
    let secret = c
        .ssm
        .get_parameter()
        .name(format!("/provision/{}/addons", cl.name))
        .with_decryption(true)
        .send()
        .await
        .unwrap();
    let p = secret.parameter().unwrap();
    assert_eq!(p.r#type().unwrap().as_str(), "SecureString");
    let v: Value = serde_json::from_str(p.value().unwrap()).unwrap();
    assert_eq!(v["grafana_admin_password"].as_str().unwrap().len(), 24);
    assert!(
        !up.events.iter().any(|e| e
            .to_string()
            .contains(v["grafana_admin_password"].as_str().unwrap())),
        "no password in the output"
    );
    v
}

/// The nodes run node_exporter; the control plane applies the security baseline, installs
/// Fluent Bit and may read the add-ons' parameter for its password, from that instance only.
async fn check_control_plane(c: &Clients, cl: &Cluster, obs: &Observed) {
    let master = obs.live_instances("master").next().unwrap().id.clone();
    let mud = user_data(c, &master).await;
    assert!(mud.contains("prometheus-node-exporter"));
    assert!(mud.contains("/etc/provision/baseline.json") && mud.contains("encoding: gz+b64"));
    assert!(
        mud.contains("/etc/provision/log-shipper.json"),
        "the control plane installs Fluent Bit"
    );
    // ...and may read the add-ons' parameter for its password, from that instance only.
    let node_role = obs.role("node-role").unwrap();
    let doc = url_decode(&inline_policy(c, &node_role.name, "provision-ca-access").await);
    assert!(
        doc.contains(&format!("parameter/provision/{}/log-writer", cl.name)),
        "{doc}"
    );
    assert!(doc.contains(&format!("instance/{master}")), "{doc}");
}
