//! The observability add-ons on the emulator: instances, their security groups, role, secret and
//! user data, for a kubeadm cluster with everything on; and `down` leaving nothing.

mod common;

use common::{Cluster, sdk, tagged, user_data};

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
async fn rules(c: &provision::aws::Clients, group: &str) -> Vec<(i32, String)> {
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
    let sg = |logical: &str| {
        obs.security_groups
            .iter()
            .find(|g| g.logical.as_deref() == Some(logical))
            .unwrap_or_else(|| panic!("no {logical}"))
            .id
            .clone()
    };
    let (nodes, mon, log, tra) = (
        sg("sg-nodes"),
        sg("sg-monitoring"),
        sg("sg-logging"),
        sg("sg-tracing"),
    );
    let admin = "198.51.100.0/24".to_string();
    // UIs from the admin CIDRs only, ingest from the nodes only, node_exporter from Prometheus.
    assert_eq!(
        rules(&c, &mon).await,
        [
            (3000, admin.clone()),
            (9090, admin.clone()),
            (9100, mon.clone())
        ]
    );
    assert_eq!(
        rules(&c, &log).await,
        [
            (5601, admin.clone()),
            (9100, mon.clone()),
            (9200, nodes.clone())
        ]
    );
    assert_eq!(
        rules(&c, &tra).await,
        [
            (4317, nodes.clone()),
            (4318, nodes.clone()),
            (9100, mon.clone()),
            (16686, admin.clone())
        ]
    );
    assert!(
        rules(&c, &nodes).await.contains(&(9100, mon.clone())),
        "the nodes admit node_exporter scrapes from Prometheus"
    );

    // One instance each, IMDSv2 required, the add-ons' profile, user data that sees the cluster.
    let profile = obs
        .profile("addons-instance-profile")
        .expect("the add-ons' profile");
    assert!(profile.owned);
    let addons = s["addons"].as_array().unwrap();
    assert_eq!(addons.len(), 3);
    for a in addons {
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
            [sg(&format!("sg-{name}")).as_str()],
            "{name}: its own group only"
        );
        let ud = user_data(&c, id).await;
        assert!(ud.starts_with("#cloud-config"), "{name}");
        assert!(ud.contains("provision-fetch-secrets.py"), "{name}");
        assert!(
            !ud.contains("\"elastic_password\":"),
            "{name}: no password in user data"
        );
        let urls = a["urls"].as_object().unwrap();
        assert!(!urls.is_empty(), "{name}");
    }
    let mon_ud = user_data(
        &c,
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
    assert_eq!(s["addon_secret"], format!("/provision/{}/addons", cl.name));

    // The add-ons' role reads their passwords, nothing else of SSM.
    let role = obs.role("addons-role").unwrap();
    let policy = c
        .iam
        .get_role_policy()
        .role_name(&role.name)
        .policy_name("provision-addons-access")
        .send()
        .await
        .unwrap();
    let doc = urlencoding_decode(policy.policy_document());
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
    let v: serde_json::Value = serde_json::from_str(p.value().unwrap()).unwrap();
    assert_eq!(v["grafana_admin_password"].as_str().unwrap().len(), 24);
    assert!(
        !up.events.iter().any(|e| e
            .to_string()
            .contains(v["grafana_admin_password"].as_str().unwrap())),
        "no password in the output"
    );

    // Printed only when asked.
    let pw = cl.run(&["passwords", "-f", cl.spec_arg()]);
    assert!(pw.ok(), "{}", pw.stderr);
    assert_eq!(
        pw.summary()["grafana"]["password"],
        v["grafana_admin_password"]
    );
    assert_eq!(pw.summary()["elasticsearch"]["user"], "elastic");

    // The nodes run node_exporter; the control plane applies the security baseline.
    let master = obs.live_instances("master").next().unwrap().id.clone();
    let mud = user_data(&c, &master).await;
    assert!(mud.contains("prometheus-node-exporter"));
    assert!(mud.contains("/etc/provision/baseline.json") && mud.contains("encoding: gz+b64"));
    assert!(
        mud.contains("/etc/provision/log-shipper.json"),
        "the control plane installs Fluent Bit"
    );
    // ...and may read the add-ons' parameter for its password, from that instance only.
    let node_role = obs.role("node-role").unwrap();
    let ca = c
        .iam
        .get_role_policy()
        .role_name(&node_role.name)
        .policy_name("provision-ca-access")
        .send()
        .await
        .unwrap();
    let doc = urlencoding_decode(ca.policy_document());
    assert!(
        doc.contains(&format!("parameter/provision/{}/log-writer", cl.name)),
        "{doc}"
    );
    assert!(doc.contains(&format!("instance/{master}")), "{doc}");

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

fn urlencoding_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            out.push(
                u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap(), 16).unwrap(),
            );
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}
