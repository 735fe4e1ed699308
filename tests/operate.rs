//! Operating running clusters: `kubeconfig` writes (or prints) a context without changing
//! anything on AWS; `status` reports every part found by tag, with exit 0 healthy, 1 degraded.

mod common;

use base64::Engine as _;
use common::{Cluster, REGION, eks_cluster, sdk};

fn yaml(text: &str) -> serde_json::Value {
    serde_saphyr::from_str(text).unwrap()
}

fn b64(s: &serde_json::Value) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(s.as_str().unwrap())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn kubeconfig_signs_a_new_admin_certificate_with_the_clusters_ca_and_changes_nothing() {
    let cl = Cluster::new("kcfg", 1, "");
    let r = cl.up_running();
    let endpoint = r.summary()["api_endpoint"].as_str().unwrap().to_string();
    let path = cl.dir.path().join("exported");
    let k = cl.run(&[
        "kubeconfig",
        "--name",
        &cl.name,
        "--region",
        REGION,
        "--kubeconfig",
        path.to_str().unwrap(),
    ]);
    assert!(k.ok(), "{}", k.stderr);
    assert!(k.mutating_calls().is_empty(), "{:?}", k.mutating_calls());
    assert_eq!(k.summary()["kind"], "kubeadm");
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let v = yaml(&std::fs::read_to_string(&path).unwrap());
    assert_eq!(v["current-context"], cl.name.as_str());
    let cluster = &v["clusters"][0]["cluster"];
    assert_eq!(cluster["server"], endpoint.as_str());
    // The CA is the one in the cluster's secret, and the new client certificate chains to it.
    let c = sdk().await;
    let secret: serde_json::Value =
        provision::aws::ssm::get_json(&c, &provision::core::tags::secret_parameter_name(&cl.name))
            .await
            .unwrap()
            .unwrap();
    let ca = b64(&cluster["certificate-authority-data"]);
    assert_eq!(
        String::from_utf8(ca.clone()).unwrap(),
        secret["ca_cert_pem"].as_str().unwrap()
    );
    let cert = b64(&v["users"][0]["user"]["client-certificate-data"]);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ca.pem"), &ca).unwrap();
    std::fs::write(dir.path().join("cert.pem"), &cert).unwrap();
    let verify = std::process::Command::new("openssl")
        .args(["verify", "-CAfile", "ca.pem", "cert.pem"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stderr)
    );
    let subject = std::process::Command::new("openssl")
        .args(["x509", "-noout", "-subject", "-in", "cert.pem"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let subject = String::from_utf8_lossy(&subject.stdout).to_string();
    assert!(subject.contains("kubeadm:cluster-admins"), "{subject}");

    // --print: the same context on stdout, no file.
    let p = cl.run(&["kubeconfig", "-f", cl.spec_arg(), "--print"]);
    assert!(p.ok(), "{}", p.stderr);
    let printed = yaml(p.summary()["text"].as_str().unwrap());
    assert_eq!(
        printed["clusters"][0]["cluster"]["server"],
        endpoint.as_str()
    );
    assert!(!cl.kubeconfig().exists());
    cl.down();
    // Gone: a one-line error, exit 1.
    let gone = cl.run(&["kubeconfig", "-f", cl.spec_arg(), "--print"]);
    assert_eq!(gone.code, Some(1));
    assert!(gone.stderr.contains("no cluster"), "{}", gone.stderr);
}

#[tokio::test(flavor = "multi_thread")]
async fn kubeconfig_of_an_eks_cluster_runs_provision_token() {
    let cl = eks_cluster("kcfgeks", "");
    let r = cl.run(&["up", "-f", cl.spec_arg(), "--no-kubeconfig"]);
    assert!(r.ok(), "{}", r.stderr);
    let k = cl.run(&["kubeconfig", "-f", cl.spec_arg()]);
    assert!(k.ok(), "{}", k.stderr);
    assert!(k.mutating_calls().is_empty(), "{:?}", k.mutating_calls());
    let v = yaml(&std::fs::read_to_string(cl.kubeconfig()).unwrap());
    let exec = &v["users"][0]["user"]["exec"];
    let args: Vec<&str> = exec["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(
        args,
        ["token", "--cluster", cl.name.as_str(), "--region", REGION]
    );
    assert_eq!(
        v["clusters"][0]["cluster"]["server"],
        r.summary()["api_endpoint"]
    );
    cl.down();
}

#[test]
fn kubeconfig_refuses_bad_input_before_any_call() {
    let cl = Cluster::new("kcfgbad", 1, "");
    let r = cl.run(&["kubeconfig", "--name", "Bad_Name!", "--region", REGION]);
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    assert!(r.stderr.contains("--name"), "{}", r.stderr);
    let r = cl.run(&["kubeconfig", "--name", "ok", "--region", "mars-1"]);
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    let dir = cl.dir.path().to_str().unwrap().to_string();
    let r = cl.run(&["kubeconfig", "-f", cl.spec_arg(), "--kubeconfig", &dir]);
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    assert!(r.stderr.contains("directory"), "{}", r.stderr);
}

async fn cluster_ca(c: &provision::aws::Clients, cluster: &str) -> provision::core::pki::Ca {
    let b: provision::core::kinds::bootstrap_secret::Bootstrap =
        provision::aws::ssm::get_json(c, &provision::core::tags::secret_parameter_name(cluster))
            .await
            .unwrap()
            .unwrap();
    b.ca()
}

#[tokio::test(flavor = "multi_thread")]
async fn status_reports_every_part_and_says_what_is_degraded() {
    let cl = Cluster::new("status", 1, "");
    cl.with_ttl("2h");
    cl.up_running();
    let c = sdk().await;
    let ca = cluster_ca(&c, &cl.name).await;

    // Healthy: every part present and running, the API's two nodes Ready.
    let api = common::api_server(&ca, "ok", 2, 2).await;
    let st = cl.run(&["status", "-f", cl.spec_arg(), "--api-server", &api]);
    assert_eq!(
        st.code,
        Some(0),
        "{}\n{:?}",
        st.stderr,
        st.summary()["problems"]
    );
    let s = st.summary();
    assert_eq!(s["healthy"], true);
    assert_eq!(s["kind"], "kubeadm");
    assert!(s["expires_at"].is_string());
    assert!(s["created_by"].as_str().unwrap().starts_with("arn:aws:"));
    assert_eq!(s["nodes"].as_array().unwrap().len(), 2);
    let parts = s["parts"].as_array().unwrap();
    let kinds: Vec<&str> = parts.iter().map(|p| p["kind"].as_str().unwrap()).collect();
    for k in [
        "vpc",
        "subnet",
        "security-group",
        "instance",
        "iam-role",
        "secret",
        "elastic-ip",
    ] {
        assert!(kinds.contains(&k), "no {k} in {kinds:?}");
    }
    let master = parts.iter().find(|p| p["id"] == "master").unwrap();
    assert_eq!(master["state"], "running");
    assert!(
        master["detail"]
            .as_str()
            .unwrap()
            .contains("launched for 1."),
        "{master}"
    );
    assert!(st.mutating_calls().is_empty(), "{:?}", st.mutating_calls());
    assert_eq!(st.calls("SSM", "PutParameter"), 0, "status takes no lock");

    // The API says a node is NotReady: degraded, exit 1, one line saying which.
    let api = common::api_server(&ca, "ok", 1, 2).await;
    let st = cl.run(&["status", "-f", cl.spec_arg(), "--api-server", &api]);
    assert_eq!(st.code, Some(1));
    assert!(
        st.summary()["problems"][0]
            .as_str()
            .unwrap()
            .contains("1 of 2 nodes NotReady")
    );

    // A node reported a failed boot step; a worker is stopped; the spec wants one more worker.
    let obs = common::tagged(&c, &cl.name).await;
    let worker = obs
        .instances
        .iter()
        .find(|i| i.logical.as_deref() == Some("workers-0"))
        .unwrap()
        .id
        .clone();
    let master_id = obs
        .instances
        .iter()
        .find(|i| i.logical.as_deref() == Some("master"))
        .unwrap()
        .id
        .clone();
    let report = serde_json::json!({"instance": master_id, "phase": "cni", "state": "failed", "started": 1, "command": "/usr/local/sbin/provision-init.sh", "exit_code": 1, "output": "calico: timeout"});
    common::put_report(&c, &cl.name, &master_id, &report).await;
    c.ec2
        .stop_instances()
        .instance_ids(&worker)
        .send()
        .await
        .unwrap();
    cl.edit("workers = 1", "workers = 2");
    let st = cl.run(&["status", "-f", cl.spec_arg(), "--api-server", &api]);
    assert_eq!(st.code, Some(1));
    let problems = st.summary()["problems"].to_string();
    for want in [
        "failed in phase cni",
        "(workers-0) is stopped",
        "missing: instance",
    ] {
        assert!(problems.contains(want), "no {want} in {problems}");
    }
    let master = st.summary()["parts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == "master")
        .cloned()
        .unwrap();
    assert!(
        master["detail"]
            .as_str()
            .unwrap()
            .contains("boot: cni FAILED"),
        "{master}"
    );
    // Human output: the verdict first.
    let human = std::process::Command::new(env!("CARGO_BIN_EXE_provision"))
        .args([
            "status",
            "--name",
            &cl.name,
            "--region",
            REGION,
            "--api-server",
            &api,
        ])
        .envs(
            cl.command(&[])
                .get_envs()
                .filter_map(|(k, v)| Some((k.to_owned(), v?.to_owned()))),
        )
        .output()
        .unwrap();
    assert_eq!(human.status.code(), Some(1));
    let text = String::from_utf8_lossy(&human.stdout);
    assert!(
        text.starts_with(&format!(
            "cluster {} (kubeadm, {REGION}): DEGRADED",
            cl.name
        )),
        "{text}"
    );
    cl.edit("workers = 2", "workers = 1");
    cl.down();
    // Gone: exit 1, saying so.
    let st = cl.run(&["status", "-f", cl.spec_arg()]);
    assert_eq!(st.code, Some(1));
    assert!(
        st.summary()["problems"]
            .to_string()
            .contains("no such cluster")
    );
}

#[test]
fn status_refuses_bad_input_before_any_call() {
    let cl = Cluster::new("statusbad", 1, "");
    let r = cl.run(&["status", "--name", "ok", "--region", "nowhere"]);
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    let r = cl.run(&["status", "-f", cl.spec_arg(), "--api-server", "http://x"]);
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    assert!(r.stderr.contains("--api-server"));
}
