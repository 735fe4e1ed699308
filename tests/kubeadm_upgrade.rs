//! A kubeadm cluster's version upgrade, against the emulator (SSM Run Command, extended in
//! `localstack/ssm_commands.py`) and a stand-in API server: the control plane upgraded in place
//! through SendCommand and GetCommandInvocation, then the workers replaced with nodes of the new
//! version; a downgrade and a skipped minor refused before any change; a failed command reported
//! with the end of its output; and no policy on the node role lets a worker read the bootstrap
//! secret.

mod common;

use common::{Cluster, kube_stand_in_for, sdk, tagged};
use provision::aws::Clients;

async fn tag(c: &Clients, instance: &str, key: &str, value: &str) {
    c.ec2
        .create_tags()
        .resources(instance)
        .tags(
            aws_sdk_ec2::types::Tag::builder()
                .key(key)
                .value(value)
                .build(),
        )
        .send()
        .await
        .unwrap();
}

async fn master(c: &Clients, cluster: &str) -> provision::core::kinds::instances::ObsInstance {
    Box::pin(tagged(c, cluster))
        .await
        .instances
        .into_iter()
        .find(|i| i.is_live() && i.logical.as_deref() == Some("master"))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upgrade_runs_kubeadm_on_the_control_plane_through_run_command_then_rolls_the_workers() {
    let cl = Cluster::new("kupgrade", 2, "");
    cl.edit(
        "cni = \"calico\"",
        "kubernetes_version = \"1.36\"\ncni = \"calico\"",
    );
    let up = cl.run(&["up", "-f", cl.spec_arg(), "--wait", "running"]);
    assert!(up.ok(), "{}", up.stderr);
    let c = sdk().await;
    let m = master(&c, &cl.name).await;
    assert_eq!(m.version.as_deref(), Some("1.36"));
    let old: Vec<String> = Box::pin(tagged(&c, &cl.name))
        .await
        .instances
        .iter()
        .filter(|i| i.is_live() && i.logical.as_deref() != Some("master"))
        .map(|i| i.id.clone())
        .collect();
    assert_eq!(old.len(), 2);

    // Lower, or two minors at once: refused before anything changes.
    cl.edit(
        "kubernetes_version = \"1.36\"",
        "kubernetes_version = \"1.35\"",
    );
    let lower = cl.run(&["up", "-f", cl.spec_arg()]);
    assert_eq!(lower.code, Some(1), "{}", lower.stderr);
    assert!(
        lower.stderr.contains("kubeadm cannot downgrade"),
        "{}",
        lower.stderr
    );
    assert_eq!(lower.mutating_calls(), Vec::<String>::new());
    cl.edit(
        "kubernetes_version = \"1.35\"",
        "kubernetes_version = \"1.36\"",
    );
    tag(&c, &m.id, "provision:kubernetes-version", "1.35").await;
    cl.edit(
        "kubernetes_version = \"1.36\"",
        "kubernetes_version = \"1.37\"",
    );
    let skip = cl.run(&["plan", "-f", cl.spec_arg()]);
    assert_eq!(skip.code, Some(1));
    assert!(
        skip.summary()["plan"].to_string().contains(
            "kubeadm upgrades one minor at a time; set kubeadm.kubernetes_version to \\\"1.36\\\""
        ),
        "{}",
        skip.summary()
    );
    tag(&c, &m.id, "provision:kubernetes-version", "1.36").await;

    // A command that fails on the node: its output's end is shown, the workers stay.
    let k = kube_stand_in_for(&c, &cl, 0).await;
    tag(
        &c,
        &m.id,
        "provision-test:command-fails",
        "E: Unable to locate package kubeadm",
    )
    .await;
    let failed = cl.run(&[
        "up",
        "-f",
        cl.spec_arg(),
        "--wait",
        "running",
        "--api-server",
        &k.url,
    ]);
    assert_eq!(failed.code, Some(1), "{}", failed.stderr);
    for part in [
        "Failed",
        "exit code 1",
        "E: Unable to locate package kubeadm",
        &format!("aws ssm start-session --target {}", m.id),
    ] {
        assert!(failed.stderr.contains(part), "{part}: {}", failed.stderr);
    }
    assert_eq!(failed.calls("EC2", "RunInstances"), 0, "no worker replaced");
    assert_eq!(master(&c, &cl.name).await.version.as_deref(), Some("1.36"));
    common::delete_tag(&c, &m.id, "provision-test:command-fails").await;

    // The plan: the control plane, then every worker.
    let plan = cl.run(&["plan", "-f", cl.spec_arg(), "--api-server", &k.url]);
    assert!(plan.ok(), "{}", plan.stderr);
    let rows = plan.summary()["plan"].to_string();
    assert!(rows.contains(&format!(
        "upgrade the control plane {} from Kubernetes 1.36 to 1.37",
        m.id
    )));
    for i in &old {
        assert!(rows.contains(&format!("replace {i} (workers-")), "{rows}");
        assert!(rows.contains("Kubernetes 1.36 → 1.37"), "{rows}");
    }

    let up = cl.run(&[
        "--trace-api-calls",
        "up",
        "-f",
        cl.spec_arg(),
        "--wait",
        "running",
        "--api-server",
        &k.url,
    ]);
    assert!(up.ok(), "{}", up.stderr);
    assert_eq!(up.calls("SSM", "SendCommand"), 1);
    let order = up.api_call_order();
    let sent = common::first_call(&order, "SendCommand");
    let followed = common::last_call(&order, "GetCommandInvocation");
    let launched = common::first_call(&order, "RunInstances");
    assert!(
        common::first_call(&order, "DescribeInstanceInformation") < sent
            && sent < followed
            && followed < launched,
        "the agent online, the command, its end, then the new workers: {order:?}"
    );
    // The command is the upgrade script for 1.37, through base64 to bash.
    let script = common::sent_script(&c, &m.id).await;
    assert!(script.contains("K8S_MINOR=\"v1.37\"") && script.contains("kubeadm upgrade apply -y"));

    assert_eq!(master(&c, &cl.name).await.version.as_deref(), Some("1.37"));
    let workers: Vec<_> = Box::pin(tagged(&c, &cl.name))
        .await
        .instances
        .into_iter()
        .filter(|i| i.is_live() && i.logical.as_deref() != Some("master"))
        .collect();
    assert_eq!(workers.len(), 2);
    assert!(
        workers
            .iter()
            .all(|i| !old.contains(&i.id) && i.version.as_deref() == Some("1.37"))
    );
    assert_eq!(
        k.state.lock().unwrap().deleted.len(),
        2,
        "both old workers drained"
    );

    let again = cl.run(&["up", "-f", cl.spec_arg(), "--api-server", &k.url]);
    assert!(again.ok(), "{}", again.stderr);
    assert_eq!(again.mutating_calls(), Vec::<String>::new());
    assert_eq!(again.calls("SSM", "SendCommand"), 0);
    cl.down();
}

/// Does one Allow statement let an instance other than the control plane read the parameter?
fn grants_a_worker(statement: &serde_json::Value, parameter_arn: &str, master_arn: &str) -> bool {
    let list = |v: &serde_json::Value| -> Vec<String> {
        match v {
            serde_json::Value::String(s) => vec![s.clone()],
            serde_json::Value::Array(a) => a
                .iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect(),
            _ => Vec::new(),
        }
    };
    let matches = |pattern: &str, text: &str| wildcard(pattern.as_bytes(), text.as_bytes());
    if statement["Effect"] != "Allow" {
        return false;
    }
    let reads = [
        "ssm:GetParameter",
        "ssm:GetParameters",
        "ssm:GetParametersByPath",
    ];
    let actions = list(&statement["Action"]);
    if !actions.iter().any(|a| {
        reads
            .iter()
            .any(|r| matches(&a.to_ascii_lowercase(), &r.to_ascii_lowercase()))
    }) {
        return false;
    }
    if !list(&statement["Resource"])
        .iter()
        .any(|r| matches(r, parameter_arn))
    {
        return false;
    }
    // Only when its condition pins the control plane's instance does it leave the workers out.
    let pinned = statement["Condition"]
        .as_object()
        .into_iter()
        .flat_map(|ops| ops.values())
        .filter_map(|keys| keys.get("ec2:SourceInstanceARN"))
        .any(|v| list(v) == [master_arn.to_string()]);
    !pinned
}

/// Whether `text` matches an IAM pattern (`*`, `?`).
fn wildcard(p: &[u8], t: &[u8]) -> bool {
    match (p.first(), t.first()) {
        (None, None) => true,
        (Some(b'*'), _) => wildcard(&p[1..], t) || (!t.is_empty() && wildcard(p, &t[1..])),
        (Some(b'?'), Some(_)) => wildcard(&p[1..], &t[1..]),
        (Some(a), Some(b)) if a == b => wildcard(&p[1..], &t[1..]),
        _ => false,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn no_policy_on_the_node_role_lets_a_worker_read_the_bootstrap_secret() {
    let cl = Cluster::new("secretread", 1, "");
    let up = cl.run(&["up", "-f", cl.spec_arg(), "--wait", "running"]);
    assert!(up.ok(), "{}", up.stderr);
    let c = sdk().await;
    let role = provision::core::tags::node_role_name(&cl.name, common::REGION);
    let account = "123456789012";
    let parameter_arn = format!(
        "arn:aws:ssm:{}:{account}:parameter/provision/{}/bootstrap",
        common::REGION,
        cl.name
    );
    let m = master(&c, &cl.name).await;
    let master_arn = format!("arn:aws:ec2:{}:{account}:instance/{}", common::REGION, m.id);

    // Every policy on the role: inline and attached managed ones.
    let mut documents = Vec::new();
    let inline = c
        .iam
        .list_role_policies()
        .role_name(&role)
        .send()
        .await
        .unwrap();
    let names = inline.policy_names().to_vec();
    assert!(
        names.iter().any(|n| n == "provision-ssm-agent"),
        "{names:?}"
    );
    for name in &names {
        documents.push((name.clone(), common::inline_policy(&c, &role, name).await));
    }
    for arn in common::role_policies(&c, &role).await {
        let p = c.iam.get_policy().policy_arn(&arn).send().await.unwrap();
        let version = p
            .policy()
            .unwrap()
            .default_version_id()
            .unwrap()
            .to_string();
        let v = c
            .iam
            .get_policy_version()
            .policy_arn(&arn)
            .version_id(version)
            .send()
            .await
            .unwrap();
        documents.push((
            arn,
            v.policy_version().unwrap().document().unwrap().to_string(),
        ));
    }
    let mut control_plane_reads = 0;
    for (name, doc) in &documents {
        let doc: serde_json::Value = serde_json::from_str(&common::url_decode(doc)).unwrap();
        let statements = match &doc["Statement"] {
            serde_json::Value::Array(a) => a.clone(),
            s => vec![s.clone()],
        };
        for s in &statements {
            assert!(
                !grants_a_worker(s, &parameter_arn, &master_arn),
                "{name} lets a worker read the bootstrap secret: {s}"
            );
            control_plane_reads +=
                usize::from(grants_a_worker(s, &parameter_arn, "arn:aws:ec2:other"));
        }
    }
    // The check can fail: the control plane's own read is found, and refused for any other ARN.
    assert_eq!(control_plane_reads, 1, "{documents:?}");
    let managed_core = serde_json::json!({"Effect": "Allow", "Action": ["ssm:GetParameter", "ssm:GetParameters"], "Resource": "*"});
    assert!(
        grants_a_worker(&managed_core, &parameter_arn, &master_arn),
        "AmazonSSMManagedInstanceCore's grant would be caught"
    );
    cl.down();
}
