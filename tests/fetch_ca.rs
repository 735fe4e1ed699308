//! The control plane's boot-time CA fetch (a python3 script in its user data) against a local
//! stand-in for IMDSv2 and the emulator's SSM: the script the instance would run, run here.

mod common;

use std::os::unix::fs::PermissionsExt as _;
use std::process::Command;

use provision::core::cloudinit;

fn script(parameter: &str) -> String {
    cloudinit::NODE_SCRIPT.replace("__PARAMETER__", parameter)
}

fn run(script_text: &str, imds: &str, pki: &std::path::Path) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fetch-ca.py");
    std::fs::write(&path, script_text).unwrap();
    Command::new("python3")
        .arg(&path)
        .env("PROVISION_IMDS", imds)
        .env("PROVISION_SSM_ENDPOINT", common::emulator())
        .env("PROVISION_PKI_DIR", pki)
        .env("PROVISION_FETCH_RETRY_SECONDS", "0.01")
        .env("PROVISION_FETCH_DEADLINE_SECONDS", "1")
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_control_plane_fetches_the_ca_with_its_role() {
    let c = common::sdk().await;
    let name = format!("/provision/{}/bootstrap", common::unique("fetch"));
    let ca = provision::core::pki::generate_ca(time::OffsetDateTime::now_utc()).unwrap();
    let value = serde_json::json!({"version": 1, "cluster_id": "x", "ca_cert_pem": ca.cert_pem, "ca_key_pem": ca.key_pem, "token": "abcdef.0123456789abcdef"});
    c.ssm
        .put_parameter()
        .name(&name)
        .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
        .value(value.to_string())
        .send()
        .await
        .unwrap();
    let imds = common::fake_imds("i-0fetch").await;
    let pki = tempfile::tempdir().unwrap();

    let out = run(&script(&name), &imds, pki.path());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stdout.is_empty() && out.stderr.is_empty(),
        "the script prints nothing when it works"
    );
    assert_eq!(
        std::fs::read_to_string(pki.path().join("ca.key")).unwrap(),
        ca.key_pem
    );
    assert_eq!(
        std::fs::read_to_string(pki.path().join("ca.crt")).unwrap(),
        ca.cert_pem
    );
    let mode = std::fs::metadata(pki.path().join("ca.key"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    c.ssm.delete_parameter().name(&name).send().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_secret_fails_after_retrying_and_says_why() {
    let imds = common::fake_imds("i-0fetch").await;
    let pki = tempfile::tempdir().unwrap();
    let name = format!("/provision/{}/bootstrap", common::unique("nofetch"));
    let out = run(&script(&name), &imds, pki.path());
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("could not read") && err.contains(&name),
        "{err}"
    );
    assert!(err.contains("HTTP 400"), "{err}");
    assert!(!pki.path().join("ca.key").exists());
}

/// The add-on instances use the same script with an output file: every password of their
/// secret becomes a shell-quoted line of an env file only root can read.
#[tokio::test(flavor = "multi_thread")]
async fn the_add_ons_fetch_their_passwords_into_an_env_file() {
    let c = common::sdk().await;
    let name = format!("/provision/{}/addons", common::unique("fetch"));
    let value = serde_json::json!({"grafana_admin_password": "Abc123", "elastic_password": "x'y z", "kibana_system_password": "k", "fluent_bit_password": "f"});
    c.ssm
        .put_parameter()
        .name(&name)
        .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
        .value(value.to_string())
        .send()
        .await
        .unwrap();
    let imds = common::fake_imds("i-0fetch").await;
    let dir = tempfile::tempdir().unwrap();
    let env = dir.path().join("etc").join("secrets.env");
    let text = script(&name).replace("__OUTPUT__", env.to_str().unwrap());
    let out = run(&text, &imds, dir.path());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mode = std::fs::metadata(&env).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    // What the add-on script does with it: `set -a; . FILE`.
    let sourced = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "set -a; . '{}'; printf '%s|%s' \"$grafana_admin_password\" \"$elastic_password\"",
            env.display()
        ))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&sourced.stdout), "Abc123|x'y z");
    c.ssm.delete_parameter().name(&name).send().await.unwrap();
}
