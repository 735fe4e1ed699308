//! The control plane's boot-time CA fetch (a python3 script in its user data) against a local
//! stand-in for IMDSv2 and the emulator's SSM: the script the instance would run, run here.

mod common;

use std::os::unix::fs::PermissionsExt as _;
use std::process::Command;

use provision::core::cloudinit;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// IMDSv2: a session token from PUT /latest/api/token, required on every GET.
async fn fake_imds() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        loop {
            let Ok((mut tcp, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let n = tcp.read(&mut buf).await.unwrap_or(0);
                let req = String::from_utf8_lossy(&buf[..n]).to_lowercase();
                let path = req.split_whitespace().nth(1).unwrap_or("").to_string();
                let (status, body) = if req.starts_with("put /latest/api/token")
                    && req.contains("x-aws-ec2-metadata-token-ttl-seconds")
                {
                    ("200 OK", "imds-session".to_string())
                } else if !req.contains("x-aws-ec2-metadata-token: imds-session") {
                    ("401 Unauthorized", String::new())
                } else {
                    match path.as_str() {
                        "/latest/meta-data/placement/region" => ("200 OK", "us-east-1".into()),
                        "/latest/meta-data/iam/security-credentials/" => ("200 OK", "node-role".into()),
                        "/latest/meta-data/iam/security-credentials/node-role" => {
                            ("200 OK", r#"{"Code":"Success","AccessKeyId":"test","SecretAccessKey":"test","Token":"session"}"#.into())
                        }
                        _ => ("404 Not Found", String::new()),
                    }
                };
                let resp = format!(
                    "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = tcp.write_all(resp.as_bytes()).await;
            });
        }
    });
    url
}

fn script(parameter: &str) -> String {
    cloudinit::FETCH_CA_SCRIPT.replace("__PARAMETER__", parameter)
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
    let imds = fake_imds().await;
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
    let imds = fake_imds().await;
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
    let imds = fake_imds().await;
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
