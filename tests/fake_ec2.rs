//! The AWS layer's RunInstances path against a scripted fake EC2 endpoint: the SDK speaks real
//! HTTP to a local server that answers from a script, so error paths that the emulator cannot
//! produce (IAM propagation, spent client tokens) are exercised through the real SDK.

use std::sync::{Arc, Mutex};

use provision::aws::instances::{Launch, run};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// Answers each request with the next scripted (status, body) and records the form fields.
async fn fake_ec2(script: Vec<(u16, String)>) -> (String, Arc<Mutex<Vec<Vec<(String, String)>>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    tokio::spawn(async move {
        let mut script = script.into_iter();
        loop {
            let Ok((mut tcp, _)) = listener.accept().await else {
                return;
            };
            let mut buf = Vec::new();
            let mut chunk = [0u8; 8192];
            let body = loop {
                let n = tcp.read(&mut chunk).await.unwrap();
                buf.extend_from_slice(&chunk[..n]);
                let text = String::from_utf8_lossy(&buf).to_string();
                if let Some((head, body)) = text.split_once("\r\n\r\n") {
                    let len: usize = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse().unwrap())
                        })
                        .unwrap_or(0);
                    if body.len() >= len {
                        break body.to_string();
                    }
                }
            };
            let form: Vec<(String, String)> = body
                .split('&')
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.to_string(), urldecode(v)))
                .collect();
            s.lock().unwrap().push(form);
            let (status, reply) = script.next().unwrap_or((500, "<Response/>".into()));
            let resp = format!(
                "HTTP/1.1 {status} X\r\nContent-Type: text/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{reply}",
                reply.len()
            );
            tcp.write_all(resp.as_bytes()).await.unwrap();
        }
    });
    (url, seen)
}

fn urldecode(s: &str) -> String {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                out.push(
                    u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap(), 16).unwrap(),
                );
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).unwrap()
}

fn error(code: &str, message: &str) -> (u16, String) {
    (
        400,
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Errors><Error><Code>{code}</Code><Message>{message}</Message></Error></Errors><RequestID>r</RequestID></Response>"
        ),
    )
}

fn launched(id: &str) -> (u16, String) {
    (
        200,
        format!(
            "<RunInstancesResponse xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\"><requestId>r</requestId><reservationId>r-1</reservationId><instancesSet><item><instanceId>{id}</instanceId><privateIpAddress>10.0.0.5</privateIpAddress><instanceState><code>0</code><name>pending</name></instanceState></item></instancesSet></RunInstancesResponse>"
        ),
    )
}

fn launch<'a>(tags: &'a [(String, String)]) -> Launch<'a> {
    Launch {
        logical: "master",
        count: 1,
        image: "ami-12345678",
        root_device: "/dev/sda1",
        instance_type: "t3.medium",
        subnet: "subnet-1",
        security_groups: vec!["sg-1".into()],
        instance_profile: "provision-x-use1-node",
        user_data: b"#cloud-config\n",
        key_name: None,
        volume_gb: 30,
        tags,
        client_token: "abc123-master".into(),
        spot: false,
        private_ip: None,
    }
}

fn field<'a>(form: &'a [(String, String)], key: &str) -> Option<&'a str> {
    form.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

#[tokio::test]
async fn a_new_instance_profile_is_retried_until_ec2_sees_it() {
    let (url, seen) = fake_ec2(vec![
        error("InvalidParameterValue", "Value (provision-x-use1-node) for parameter iamInstanceProfile.name is invalid. Invalid IAM Instance Profile name"),
        launched("i-0aaa"),
    ])
    .await;
    let c = provision::aws::clients_for_endpoint("us-east-1", &url).await;
    let tags = vec![("provision:cluster".to_string(), "x".to_string())];
    let got = run(&c, &launch(&tags)).await.unwrap();
    assert_eq!(got[0].id, "i-0aaa");
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 2, "one retry after the propagation error");
    // Same client token on the retry: a launch that did happen is not repeated.
    assert_eq!(
        field(&seen[0], "ClientToken"),
        field(&seen[1], "ClientToken")
    );
    // What every launch carries: IMDSv2 required, hop limit 1, encrypted root, tags at creation.
    let f = &seen[0];
    assert_eq!(field(f, "MetadataOptions.HttpTokens"), Some("required"));
    assert_eq!(
        field(f, "MetadataOptions.HttpPutResponseHopLimit"),
        Some("1")
    );
    assert_eq!(field(f, "BlockDeviceMapping.1.Ebs.Encrypted"), Some("true"));
    assert_eq!(
        field(f, "TagSpecification.1.ResourceType"),
        Some("instance")
    );
    assert_eq!(
        field(f, "TagSpecification.1.Tag.1.Key"),
        Some("provision:cluster")
    );
}

#[tokio::test]
async fn a_spot_pool_asks_for_one_time_spot_instances_and_others_do_not() {
    let (url, seen) = fake_ec2(vec![launched("i-0ccc"), launched("i-0ddd")]).await;
    let c = provision::aws::clients_for_endpoint("us-east-1", &url).await;
    let tags = vec![];
    let spot = Launch {
        spot: true,
        ..launch(&tags)
    };
    run(&c, &spot).await.unwrap();
    run(&c, &launch(&tags)).await.unwrap();
    let seen = seen.lock().unwrap();
    assert_eq!(
        field(&seen[0], "InstanceMarketOptions.MarketType"),
        Some("spot")
    );
    assert_eq!(
        field(
            &seen[0],
            "InstanceMarketOptions.SpotOptions.SpotInstanceType"
        ),
        Some("one-time")
    );
    assert_eq!(
        field(
            &seen[0],
            "InstanceMarketOptions.SpotOptions.InstanceInterruptionBehavior"
        ),
        Some("terminate")
    );
    assert_eq!(field(&seen[1], "InstanceMarketOptions.MarketType"), None);
}

#[tokio::test]
async fn a_spent_client_token_is_replaced_once() {
    let (url, seen) = fake_ec2(vec![
        error(
            "IdempotentInstanceTerminated",
            "The client token has already been used by a terminated instance",
        ),
        launched("i-0bbb"),
    ])
    .await;
    let c = provision::aws::clients_for_endpoint("us-east-1", &url).await;
    let tags = vec![];
    let got = run(&c, &launch(&tags)).await.unwrap();
    assert_eq!(got[0].id, "i-0bbb");
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 2);
    assert_eq!(field(&seen[0], "ClientToken"), Some("abc123-master"));
    let second = field(&seen[1], "ClientToken").unwrap();
    assert!(
        second.starts_with("abc123-master-") && second.len() == "abc123-master-".len() + 8,
        "{second}"
    );
}

#[tokio::test]
async fn other_errors_fail_at_once_with_code_and_resource() {
    let (url, seen) = fake_ec2(vec![
        error(
            "InsufficientInstanceCapacity",
            "We currently do not have sufficient t3.medium capacity",
        ),
        launched("i-0ccc"),
    ])
    .await;
    let c = provision::aws::clients_for_endpoint("us-east-1", &url).await;
    let tags = vec![];
    let err = run(&c, &launch(&tags)).await.unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("InsufficientInstanceCapacity") && msg.contains("master"),
        "{msg}"
    );
    assert_eq!(seen.lock().unwrap().len(), 1, "not retried");
}
