//! EKS authentication tokens, as `aws eks get-token` and aws-iam-authenticator make them:
//! `k8s-aws-v1.` + base64url (no padding) of an STS GetCallerIdentity URL, presigned for 60 s
//! with the cluster name in the signed header `x-k8s-aws-id`. The EKS API server replays the
//! URL to STS to learn who the caller is, so neither the AWS CLI nor aws-iam-authenticator is
//! needed on the machine that runs kubectl.

use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_credential_types::provider::ProvideCredentials as _;
use aws_sigv4::http_request::{
    SignableBody, SignableRequest, SignatureLocation, SigningSettings, sign,
};
use aws_sigv4::sign::v4;
use base64::Engine as _;

use super::AwsError;

pub const TOKEN_PREFIX: &str = "k8s-aws-v1.";
/// How long STS accepts the presigned URL (EKS requires 60 s or less).
pub const PRESIGN_SECONDS: u64 = 60;
/// kubectl is told to come back before the API server stops accepting the token (15 min).
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(14 * 60);

/// The presigned GetCallerIdentity URL for `cluster`, signed with `creds` at `now`.
///
/// # Errors
/// When signing fails (bad region or cluster name characters).
pub fn presigned_url(
    creds: &Credentials,
    region: &str,
    cluster: &str,
    now: SystemTime,
) -> Result<String, AwsError> {
    let err = |m: String| AwsError::unexpected("signing an EKS token for", cluster, m);
    let suffix = if region.starts_with("cn-") {
        "amazonaws.com.cn"
    } else {
        "amazonaws.com"
    };
    let host = format!("sts.{region}.{suffix}");
    let base = format!("https://{host}/?Action=GetCallerIdentity&Version=2011-06-15");
    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(Duration::from_secs(PRESIGN_SECONDS));
    let identity = creds.clone().into();
    let params: aws_sigv4::http_request::SigningParams<'_> = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("sts")
        .time(now)
        .settings(settings)
        .build()
        .map_err(|e| err(e.to_string()))?
        .into();
    let headers = [("host", host.as_str()), ("x-k8s-aws-id", cluster)];
    let request = SignableRequest::new(
        "GET",
        base.as_str(),
        headers.into_iter(),
        SignableBody::Bytes(&[]),
    )
    .map_err(|e| err(e.to_string()))?;
    let (instructions, _) = sign(request, &params)
        .map_err(|e| err(e.to_string()))?
        .into_parts();
    let (_, query) = instructions.into_parts();
    let mut url = base;
    for (k, v) in query {
        url.push('&');
        url.push_str(k);
        url.push('=');
        url.push_str(&percent_encode(&v));
    }
    Ok(url)
}

/// The bearer token for a presigned URL.
pub fn token(url: &str) -> String {
    format!(
        "{TOKEN_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(url.as_bytes())
    )
}

/// A `client.authentication.k8s.io/v1beta1` ExecCredential carrying `token`.
pub fn exec_credential(token: &str, expires: SystemTime) -> serde_json::Value {
    let expires = time::OffsetDateTime::from(expires)
        .replace_nanosecond(0)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default();
    serde_json::json!({
        "kind": "ExecCredential",
        "apiVersion": "client.authentication.k8s.io/v1beta1",
        "spec": {},
        "status": {"expirationTimestamp": expires, "token": token},
    })
}

/// Resolves credentials the standard way (profile, SSO, environment, instance role).
///
/// # Errors
/// When no credentials can be found.
pub async fn load_credentials(cluster: &str, region: &str) -> Result<Credentials, AwsError> {
    let cfg = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(region.to_string()))
        .load()
        .await;
    let provider = cfg.credentials_provider().ok_or_else(|| {
        AwsError::unexpected(
            "finding credentials for",
            cluster,
            "no credentials provider is configured",
        )
    })?;
    provider.provide_credentials().await.map_err(|e| {
        AwsError::unexpected(
            "loading AWS credentials for",
            cluster,
            aws_sdk_sts::error::DisplayErrorContext(&e).to_string(),
        )
    })
}

/// Returns an ExecCredential for `cluster`, signed with the standard chain's credentials.
///
/// # Errors
/// When no credentials can be found, or signing fails.
pub async fn exec_credential_for(
    cluster: &str,
    region: &str,
) -> Result<serde_json::Value, AwsError> {
    let creds = load_credentials(cluster, region).await?;
    let now = SystemTime::now();
    let url = presigned_url(&creds, region, cluster, now)?;
    Ok(exec_credential(&token(&url), now + TOKEN_LIFETIME))
}

/// RFC 3986 unreserved characters stay, everything else is %XX (what SigV4 query values need).
fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds(session: Option<&str>) -> Credentials {
        Credentials::new(
            "AKIDEXAMPLE",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            session.map(str::to_string),
            None,
            "test",
        )
    }

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn query(url: &str) -> Vec<(String, String)> {
        url.split_once('?')
            .unwrap()
            .1
            .split('&')
            .map(|kv| kv.split_once('=').unwrap())
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn token_is_the_prefixed_base64url_of_a_presigned_sts_url() {
        let url = presigned_url(&creds(None), "eu-west-1", "demo", at(1_790_000_000)).unwrap();
        let t = token(&url);
        assert!(t.starts_with("k8s-aws-v1."));
        let body = t.strip_prefix(TOKEN_PREFIX).unwrap();
        assert!(
            !body.contains('=') && !body.contains('+') && !body.contains('/'),
            "base64url without padding: {body}"
        );
        let decoded = String::from_utf8(
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(body)
                .unwrap(),
        )
        .unwrap();
        assert_eq!(decoded, url);
        assert!(url.starts_with(
            "https://sts.eu-west-1.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15&"
        ));
        let q = query(&url);
        let get = |k: &str| {
            q.iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.as_str())
                .unwrap_or_else(|| panic!("no {k} in {url}"))
        };
        assert_eq!(get("X-Amz-Algorithm"), "AWS4-HMAC-SHA256");
        assert_eq!(get("X-Amz-Expires"), "60");
        assert_eq!(
            get("X-Amz-SignedHeaders"),
            "host%3Bx-k8s-aws-id",
            "the cluster name header is signed"
        );
        assert_eq!(
            get("X-Amz-Credential"),
            "AKIDEXAMPLE%2F20260921%2Feu-west-1%2Fsts%2Faws4_request"
        );
        assert_eq!(get("X-Amz-Date"), "20260921T141320Z");
        assert_eq!(get("X-Amz-Signature").len(), 64);
    }

    #[test]
    fn the_signature_covers_the_cluster_name_and_the_session_token_is_carried() {
        let a = presigned_url(&creds(None), "us-east-1", "one", at(1_790_000_000)).unwrap();
        let b = presigned_url(&creds(None), "us-east-1", "two", at(1_790_000_000)).unwrap();
        let sig = |u: &str| {
            query(u)
                .into_iter()
                .find(|(k, _)| k == "X-Amz-Signature")
                .unwrap()
                .1
        };
        assert_ne!(
            sig(&a),
            sig(&b),
            "a token for one cluster is no good for another"
        );
        let s = presigned_url(
            &creds(Some("SESSION/TOKEN+1")),
            "us-east-1",
            "one",
            at(1_790_000_000),
        )
        .unwrap();
        assert!(
            s.contains("X-Amz-Security-Token=SESSION%2FTOKEN%2B1"),
            "{s}"
        );
    }

    /// An independent SigV4 implementation (the control plane's fetch script, itself checked
    /// against AWS's test-suite vectors) recomputes the signature the way STS will.
    #[test]
    fn sts_would_accept_the_signature() {
        let url =
            presigned_url(&creds(Some("tok")), "us-east-1", "demo", at(1_790_000_000)).unwrap();
        let mut q = query(&url);
        let sig = q
            .iter()
            .position(|(k, _)| k == "X-Amz-Signature")
            .map(|i| q.remove(i).1)
            .unwrap();
        q.sort();
        let canonical_query: Vec<String> = q.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let out = crate::core::cloudinit::run_fetch_script_python(&format!(
            r#"
creds = {{"AccessKeyId": "AKIDEXAMPLE", "SecretAccessKey": "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"}}
h = {{"host": "sts.us-east-1.amazonaws.com", "x-k8s-aws-id": "demo"}}
print(m.authorization("GET", "sts.us-east-1.amazonaws.com", "/", "{}", h, b"", creds, "us-east-1", "sts", "20260921T141320Z").rsplit("=", 1)[1])
"#,
            canonical_query.join("&")
        ));
        assert_eq!(out.trim(), sig);
    }

    /// The control plane's fetch script signs its SSM request (POST, JSON body, session token)
    /// exactly as the SDK's own signer does.
    #[test]
    fn fetch_script_signs_ssm_requests_like_the_sdk() {
        let identity = creds(Some("session-token")).into();
        let params: aws_sigv4::http_request::SigningParams<'_> = v4::SigningParams::builder()
            .identity(&identity)
            .region("us-east-1")
            .name("ssm")
            .time(at(1_790_000_000))
            .settings(SigningSettings::default())
            .build()
            .unwrap()
            .into();
        let body = br#"{"Name": "/provision/demo/bootstrap", "WithDecryption": true}"#;
        let headers = [
            ("content-type", "application/x-amz-json-1.1"),
            ("host", "ssm.us-east-1.amazonaws.com"),
            ("x-amz-target", "AmazonSSM.GetParameter"),
        ];
        let req = SignableRequest::new(
            "POST",
            "https://ssm.us-east-1.amazonaws.com/",
            headers.into_iter(),
            SignableBody::Bytes(body),
        )
        .unwrap();
        let (instructions, sdk_signature) = sign(req, &params).unwrap().into_parts();
        let signed: Vec<String> = instructions.headers().map(|(k, _)| k.to_string()).collect();
        assert!(
            signed.iter().any(|h| h == "x-amz-security-token"),
            "{signed:?}"
        );

        let auth = crate::core::cloudinit::run_fetch_script_python(
            r#"
creds = {"AccessKeyId": "AKIDEXAMPLE", "SecretAccessKey": "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "Token": "session-token"}
h = {"Content-Type": "application/x-amz-json-1.1", "Host": "ssm.us-east-1.amazonaws.com", "X-Amz-Date": "20260921T141320Z",
      "X-Amz-Target": "AmazonSSM.GetParameter", "X-Amz-Security-Token": "session-token"}
body = b'{"Name": "/provision/demo/bootstrap", "WithDecryption": true}'
print(m.authorization("POST", "ssm.us-east-1.amazonaws.com", "/", "", h, body, creds, "us-east-1", "ssm", "20260921T141320Z"))
"#,
        );
        assert!(
            auth.contains(
                "SignedHeaders=content-type;host;x-amz-date;x-amz-security-token;x-amz-target"
            ),
            "{auth}"
        );
        assert_eq!(auth.trim().rsplit('=').next().unwrap(), sdk_signature);
    }

    #[test]
    fn exec_credential_has_the_v1beta1_shape() {
        let v = exec_credential("k8s-aws-v1.abc", at(1_790_000_000) + TOKEN_LIFETIME);
        assert_eq!(v["kind"], "ExecCredential");
        assert_eq!(v["apiVersion"], "client.authentication.k8s.io/v1beta1");
        assert_eq!(v["status"]["token"], "k8s-aws-v1.abc");
        assert_eq!(v["status"]["expirationTimestamp"], "2026-09-21T14:27:20Z");
    }
}
