//! `--wait cluster`'s probe against a local TLS server that plays the API server: it presents
//! a certificate signed by the cluster CA and requires a client certificate signed by it too.

mod common;

use std::sync::Arc;

use common::{api_server, api_server_recording};
use std::time::{Duration, Instant};

use provision::core::pki::generate_ca;
use provision::engine::{Event, EventSink};
use provision::kube::probe::wait_cluster_every;

fn sink() -> (EventSink, Arc<std::sync::Mutex<Vec<Event>>>) {
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let s = seen.clone();
    (Arc::new(move |e| s.lock().unwrap().push(e)), seen)
}

#[tokio::test]
async fn ready_cluster_is_noticed() {
    let ca = generate_ca(time::OffsetDateTime::now_utc()).unwrap();
    let server = api_server(&ca, "ok", 3, 3).await;
    let (events, _) = sink();
    wait_cluster_every(
        &server,
        &ca,
        3,
        Duration::from_secs(5),
        Duration::from_millis(50),
        &events,
        Instant::now(),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn waits_until_every_node_is_ready_and_reports_progress() {
    let ca = generate_ca(time::OffsetDateTime::now_utc()).unwrap();
    let server = api_server(&ca, "ok", 2, 3).await;
    let (events, seen) = sink();
    let err = wait_cluster_every(
        &server,
        &ca,
        3,
        Duration::from_millis(300),
        Duration::from_millis(50),
        &events,
        Instant::now(),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("2 of 3 nodes Ready"), "{err}");
    assert!(
        seen.lock()
            .unwrap()
            .iter()
            .any(|e| matches!(e, Event::Waiting { what, .. } if what.contains("2 of 3")))
    );
}

#[tokio::test]
async fn readyz_not_ok_keeps_waiting() {
    let ca = generate_ca(time::OffsetDateTime::now_utc()).unwrap();
    let server = api_server(&ca, "[-]etcd failed", 3, 3).await;
    let (events, _) = sink();
    let err = wait_cluster_every(
        &server,
        &ca,
        3,
        Duration::from_millis(200),
        Duration::from_millis(50),
        &events,
        Instant::now(),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("/readyz"), "{err}");
}

#[tokio::test]
async fn a_server_from_another_ca_is_not_trusted() {
    let ours = generate_ca(time::OffsetDateTime::now_utc()).unwrap();
    let theirs = generate_ca(time::OffsetDateTime::now_utc()).unwrap();
    let server = api_server(&theirs, "ok", 3, 3).await;
    let (events, _) = sink();
    let err = wait_cluster_every(
        &server,
        &ours,
        3,
        Duration::from_millis(200),
        Duration::from_millis(50),
        &events,
        Instant::now(),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("TLS"), "{err}");
}

#[tokio::test]
async fn a_bootstrap_token_is_minted_through_the_api_server() {
    let ca = generate_ca(time::OffsetDateTime::now_utc()).unwrap();
    let (server, recorded) = api_server_recording(&ca, "ok", 1, 1).await;
    provision::kube::probe::create_bootstrap_token(
        &server,
        &ca,
        "abcdef.0123456789abcdef",
        "2026-11-26T05:00:00Z",
    )
    .await
    .unwrap();
    let reqs = recorded.lock().unwrap();
    assert_eq!(reqs.len(), 1);
    let (head, body) = reqs[0].split_once("\r\n\r\n").unwrap();
    assert!(
        head.starts_with("POST /api/v1/namespaces/kube-system/secrets"),
        "{head}"
    );
    let v: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(v["metadata"]["name"], "bootstrap-token-abcdef");
    assert_eq!(v["stringData"]["token-secret"], "0123456789abcdef");
    assert_eq!(v["stringData"]["expiration"], "2026-11-26T05:00:00Z");
}

#[tokio::test]
async fn minting_against_another_ca_fails_with_a_reason() {
    let ours = generate_ca(time::OffsetDateTime::now_utc()).unwrap();
    let theirs = generate_ca(time::OffsetDateTime::now_utc()).unwrap();
    let (server, recorded) = api_server_recording(&theirs, "ok", 1, 1).await;
    let err = provision::kube::probe::create_bootstrap_token(
        &server,
        &ours,
        "abcdef.0123456789abcdef",
        "2026-11-26T05:00:00Z",
    )
    .await
    .unwrap_err();
    assert!(err.contains("TLS"), "{err}");
    assert!(
        recorded.lock().unwrap().is_empty(),
        "nothing sent to an untrusted server"
    );
}

/// EKS: the endpoint's own certificate, no client certificate, and a fresh `k8s-aws-v1.` token
/// for every request.
#[tokio::test]
async fn eks_clusters_are_probed_with_a_bearer_token_per_request() {
    use provision::kube::probe::{ApiClient, wait_cluster_with};
    let ca = generate_ca(time::OffsetDateTime::now_utc()).unwrap();
    let (server, recorded) = common::api_server_bearer(&ca, 2, 2).await;
    let creds = aws_credential_types::Credentials::new("AKIDEXAMPLE", "secret", None, None, "test");
    let client = ApiClient::eks_with(&ca.cert_pem, None, creds, "us-east-1", "demo").unwrap();
    let (events, _) = sink();
    wait_cluster_with(
        &server,
        &client,
        2,
        Duration::from_secs(5),
        Duration::from_millis(50),
        &events,
        Instant::now(),
    )
    .await
    .unwrap();
    let reqs = recorded.lock().unwrap().clone();
    assert_eq!(reqs.len(), 2, "/readyz, then the nodes");
    let tokens: Vec<&str> = reqs
        .iter()
        .filter_map(|r| {
            r.lines().find_map(|l| {
                let (name, value) = l.split_once(": ")?;
                name.eq_ignore_ascii_case("authorization")
                    .then(|| value.strip_prefix("Bearer "))
                    .flatten()
            })
        })
        .collect();
    assert_eq!(tokens.len(), 2);
    assert!(
        tokens
            .iter()
            .all(|t| t.starts_with("k8s-aws-v1.") && !t.contains('='))
    );

    // Through a tunnel (--api-server https://127.0.0.1:PORT), the certificate is still checked
    // against the endpoint's name: the stand-in's names `kubernetes`, not `other.example`.
    let creds = aws_credential_types::Credentials::new("AKIDEXAMPLE", "secret", None, None, "test");
    let named = ApiClient::eks_with(
        &ca.cert_pem,
        Some("kubernetes"),
        creds.clone(),
        "us-east-1",
        "demo",
    )
    .unwrap();
    wait_cluster_with(
        &server,
        &named,
        2,
        Duration::from_secs(5),
        Duration::from_millis(50),
        &events,
        Instant::now(),
    )
    .await
    .unwrap();
    let wrong = ApiClient::eks_with(
        &ca.cert_pem,
        Some("other.example"),
        creds,
        "us-east-1",
        "demo",
    )
    .unwrap();
    let err = wait_cluster_with(
        &server,
        &wrong,
        2,
        Duration::from_millis(200),
        Duration::from_millis(50),
        &events,
        Instant::now(),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("TLS"), "{err}");

    // Without the token the stand-in answers 401, and the probe says so.
    let plain = ApiClient::kubeadm(&ca).unwrap();
    let err = wait_cluster_with(
        &server,
        &plain,
        2,
        Duration::from_millis(200),
        Duration::from_millis(50),
        &events,
        Instant::now(),
    )
    .await
    .unwrap_err();
    assert!(
        err.to_string().contains("401") || err.to_string().contains("TLS"),
        "{err}"
    );
}
