//! `provision token`: what kubectl's exec plugin runs for EKS clusters.

use std::process::Command;

use base64::Engine as _;

fn token(args: &[&str], with_creds: bool) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_provision"));
    cmd.arg("token")
        .args(args)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("AWS_PROFILE")
        .env("HOME", "/nonexistent");
    if with_creds {
        cmd.env("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
            .env("AWS_SECRET_ACCESS_KEY", "secret")
            .env("AWS_SESSION_TOKEN", "session");
    } else {
        cmd.env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .env_remove("AWS_SESSION_TOKEN");
    }
    cmd.output().unwrap()
}

#[test]
fn prints_an_exec_credential_with_a_presigned_sts_token() {
    let out = token(&["--cluster", "demo", "--region", "eu-central-1"], true);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["apiVersion"], "client.authentication.k8s.io/v1beta1");
    assert_eq!(v["kind"], "ExecCredential");
    let t = v["status"]["token"].as_str().unwrap();
    let url = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(t.strip_prefix("k8s-aws-v1.").unwrap())
        .unwrap();
    let url = String::from_utf8(url).unwrap();
    assert!(
        url.starts_with(
            "https://sts.eu-central-1.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15&"
        ),
        "{url}"
    );
    assert!(
        url.contains("X-Amz-Expires=60") && url.contains("X-Amz-SignedHeaders=host%3Bx-k8s-aws-id"),
        "{url}"
    );
    assert!(url.contains("X-Amz-Security-Token=session"), "{url}");
    assert!(
        v["status"]["expirationTimestamp"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );
}

#[test]
fn bad_arguments_exit_2_and_missing_credentials_exit_1() {
    assert_eq!(token(&["--cluster", "demo"], true).status.code(), Some(2));
    assert_eq!(
        token(&["--cluster", "demo", "--region", "moon"], true)
            .status
            .code(),
        Some(2)
    );
    let out = token(&["--cluster", "demo", "--region", "us-east-1"], false);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("credentials"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
