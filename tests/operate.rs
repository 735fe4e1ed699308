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
    let r = cl.run(&[
        "up",
        "-f",
        cl.spec_arg(),
        "--no-kubeconfig",
        "--wait",
        "running",
    ]);
    assert!(r.ok(), "{}", r.stderr);
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
