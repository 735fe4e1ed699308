//! What a user sees when an endpoint answers with something that is not AWS (an HTML 404 from a
//! proxy or the wrong host): one line naming the service, the operation, the HTTP status, the
//! endpoint and what to check, in human and JSON output; never the SDK's Debug dump.

mod common;

use common::Cluster;

/// Answers every request with an HTML 404, on a thread (the binary is a child process).
fn html_endpoint() -> String {
    let body = "<html><head><title>404 Not Found</title></head><body><h1>Not Found</h1><p>The requested URL was not found on this server.</p></body></html>";
    common::fixed_endpoint(format!(
        "HTTP/1.1 404 Not Found\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    ))
}

/// The error lines of a run's stderr (human output).
fn error_lines(stderr: &str) -> Vec<&str> {
    stderr.lines().filter(|l| l.starts_with("error:")).collect()
}

/// What a Debug dump of the SDK's error carries and a user must never see.
fn assert_no_dump(text: &str) {
    for internal in [
        "SdkBody",
        "HttpResponse",
        "Headers {",
        "extensions",
        "ErrorMetadata",
        "Unhandled",
        "<html>",
        "source:",
    ] {
        assert!(!text.contains(internal), "`{internal}` leaked:\n{text}");
    }
}

const EKS: &str =
    "[eks.nodegroup]\ninstance_types = [\"t3.large\"]\nmin = 1\nmax = 2\ndesired = 1\n";

#[tokio::test(flavor = "multi_thread")]
async fn an_eks_call_answered_with_html_is_one_line_naming_the_call_status_and_endpoint() {
    let html = html_endpoint();
    let cl = Cluster::eks("html", "", EKS);
    for output in ["human", "json"] {
        for command in ["plan", "up"] {
            let out = cl
                .command(&[command, "-f", cl.spec_arg()])
                .args(["--output", output])
                .env("AWS_ENDPOINT_URL_EKS", &html)
                .output()
                .unwrap();
            let run = common::Run::from_output(out);
            assert_eq!(run.code, Some(1), "{command} {output}: {}", run.stderr);
            let lines = error_lines(&run.stderr);
            assert_eq!(lines.len(), 1, "{command}: one error line:\n{}", run.stderr);
            let line = lines[0];
            for want in [
                "EKS DescribeCluster",
                "HTTP 404",
                &html,
                "check the endpoint",
            ] {
                assert!(line.contains(want), "{command}: `{want}` missing: {line}");
            }
            assert!(line.len() < 400, "{command}: one short line: {line}");
            assert_no_dump(&run.stderr);
            if output == "json" {
                let summary = run.summary();
                assert_eq!(summary["ok"], false);
                let error = summary["error"].as_str().unwrap_or_default();
                assert!(
                    error.contains("HTTP 404") && !error.contains('\n'),
                    "{error}"
                );
                assert_no_dump(&summary.to_string());
            }
        }
    }
    // Nothing was made: the failure came from discovery, before any change.
    let c = common::sdk().await;
    assert!(common::tagged(&c, &cl.name).await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn every_service_answered_with_html_fails_up_and_down_in_one_line() {
    let html = html_endpoint();
    let cl = Cluster::new("html-all", 1, "");
    for args in [
        vec!["up", "-f", cl.spec_arg()],
        vec!["down", "-f", cl.spec_arg()],
        vec!["plan", "-f", cl.spec_arg()],
    ] {
        let out = cl
            .command(&args)
            .args(["--output", "human"])
            .env("AWS_ENDPOINT_URL", &html)
            .output()
            .unwrap();
        let run = common::Run::from_output(out);
        assert_eq!(run.code, Some(1), "{args:?}: {}", run.stderr);
        let lines = error_lines(&run.stderr);
        assert_eq!(lines.len(), 1, "{args:?}:\n{}", run.stderr);
        assert!(
            lines[0].contains("HTTP 404") && lines[0].contains(&html),
            "{args:?}: {}",
            lines[0]
        );
        assert_no_dump(&run.stderr);
    }
}

/// A refused connection and a name that does not resolve: one line each, naming the call and
/// the cause the operating system gave.
#[test]
fn unreachable_endpoints_fail_in_one_line_naming_the_cause() {
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let cl = Cluster::new("unreach", 1, "");
    for (endpoint, cause) in [
        (closed.as_str(), "Connection refused"),
        ("http://nonexistent.invalid", "lookup"),
    ] {
        let out = cl
            .command(&["plan", "-f", cl.spec_arg()])
            .args(["--output", "human"])
            .env("AWS_ENDPOINT_URL", endpoint)
            .output()
            .unwrap();
        let run = common::Run::from_output(out);
        assert_eq!(run.code, Some(1), "{endpoint}: {}", run.stderr);
        let lines = error_lines(&run.stderr);
        assert_eq!(lines.len(), 1, "{endpoint}:\n{}", run.stderr);
        assert!(
            lines[0].contains("could not reach") && lines[0].contains(cause),
            "{endpoint}: {}",
            lines[0]
        );
        assert_no_dump(&run.stderr);
    }
}

/// An instance type no zone offers fails on the read-only lookup, before anything is made.
#[test]
fn an_instance_type_no_zone_offers_fails_before_anything_is_made() {
    let cl = Cluster::new("zz9", 1, "");
    cl.edit(
        "instance_type = \"t3.medium\"",
        "instance_type = \"zz9.large\"",
    );
    let run = cl.run(&["up", "-f", cl.spec_arg()]);
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert!(run.stderr.contains("zz9.large"), "{}", run.stderr);
    assert_eq!(run.mutating_calls(), Vec::<String>::new(), "{}", run.stderr);
}

/// An endpoint that accepts and never answers: the run says which call it is waiting for while
/// it waits, and gives up within the calls' bound (four attempts' time) in one line.
#[test]
fn a_silent_endpoint_is_named_while_waited_for_and_the_wait_is_bounded() {
    let silent = common::silent_endpoint();
    let cl = Cluster::new("silent", 1, "");
    let start = std::time::Instant::now();
    let out = cl
        .command(&["plan", "-f", cl.spec_arg()])
        .env("AWS_ENDPOINT_URL", &silent)
        .env("PROVISION_CALL_TIMEOUT", "2")
        .output()
        .unwrap();
    let took = start.elapsed();
    let run = common::Run::from_output(out);
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert!(took.as_secs() < 30, "bounded: {took:?}");
    let waiting: Vec<&serde_json::Value> = run
        .events
        .iter()
        .filter(|e| e["event"] == "waiting")
        .collect();
    assert!(
        waiting.iter().any(|e| {
            let what = e["what"].as_str().unwrap_or_default();
            what.contains("an answer from EC2") && what.contains(&silent)
        }),
        "{:?}",
        run.events
    );
    let lines = error_lines(&run.stderr);
    assert_eq!(lines.len(), 1, "{}", run.stderr);
    assert!(lines[0].contains("timed out"), "{}", lines[0]);
    assert_no_dump(&run.stderr);
}
