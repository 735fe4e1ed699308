//! The cluster PKI: the CA provision generates, the kubeadm bootstrap token, the discovery hash
//! workers pin, and admin client certificates for the kubeconfig.
//!
//! The CA is ECDSA P-256: small enough for the bootstrap secret (SSM standard tier, 4 KB) and the
//! master's user data, and accepted by kubeadm (`encryptionAlgorithm: ECDSA-P256`).
//! Randomness comes from the OS (`getrandom`); time is passed in, so this module stays pure.

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PublicKeyData, SanType,
};
use sha2::{Digest, Sha256};
use time::{Duration, OffsetDateTime};

/// How long the CA is valid (kubeadm's default).
pub const CA_VALIDITY_DAYS: i64 = 3650;
/// How long an admin client certificate is valid (kubeadm's admin.conf default).
pub const CLIENT_VALIDITY_DAYS: i64 = 365;

#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("generating {what}: {source}")]
    Generate {
        what: &'static str,
        source: rcgen::Error,
    },
    #[error("reading the stored CA key: {0}")]
    LoadKey(rcgen::Error),
    #[error("no randomness from the operating system: {0}")]
    Random(String),
}

/// The cluster CA as PEM, as persisted in the bootstrap secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ca {
    pub cert_pem: String,
    pub key_pem: String,
}

/// Distinguished name and usages of the CA. They are rebuilt identically when the CA is loaded
/// back, which is all an [`Issuer`] needs to sign (subject DN + key).
fn ca_params(now: OffsetDateTime) -> CertificateParams {
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "kubernetes");
    p.distinguished_name = dn;
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::CrlSign,
    ];
    p.not_before = now - Duration::minutes(5);
    p.not_after = now + Duration::days(CA_VALIDITY_DAYS);
    p
}

/// Generates a new self-signed cluster CA.
///
/// # Errors
/// When key generation or signing fails.
pub fn generate_ca(now: OffsetDateTime) -> Result<Ca, PkiError> {
    let key = KeyPair::generate().map_err(|source| PkiError::Generate {
        what: "the CA key",
        source,
    })?;
    let cert = ca_params(now)
        .self_signed(&key)
        .map_err(|source| PkiError::Generate {
            what: "the CA certificate",
            source,
        })?;
    Ok(Ca {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

impl Ca {
    /// `sha256:<hex>` over the CA certificate's SubjectPublicKeyInfo: kubeadm's `caCertHashes`.
    ///
    /// # Errors
    /// When the stored key does not parse.
    pub fn discovery_hash(&self) -> Result<String, PkiError> {
        let key = KeyPair::from_pem(&self.key_pem).map_err(PkiError::LoadKey)?;
        Ok(format!(
            "sha256:{}",
            hex(&Sha256::digest(key.subject_public_key_info()))
        ))
    }

    /// Signs a client certificate for `common_name` in `organization` (a Kubernetes group).
    ///
    /// # Errors
    /// When the CA key does not parse or signing fails.
    pub fn client_cert(
        &self,
        common_name: &str,
        organization: &str,
        now: OffsetDateTime,
    ) -> Result<(String, String), PkiError> {
        let ca_key = KeyPair::from_pem(&self.key_pem).map_err(PkiError::LoadKey)?;
        let issuer = Issuer::new(ca_params(now), ca_key);
        let key = KeyPair::generate().map_err(|source| PkiError::Generate {
            what: "a client key",
            source,
        })?;
        let mut p = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, organization);
        dn.push(DnType::CommonName, common_name);
        p.distinguished_name = dn;
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        p.not_before = now - Duration::minutes(5);
        p.not_after = now + Duration::days(CLIENT_VALIDITY_DAYS);
        let cert = p
            .signed_by(&key, &issuer)
            .map_err(|source| PkiError::Generate {
                what: "a client certificate",
                source,
            })?;
        Ok((cert.pem(), key.serialize_pem()))
    }

    /// Signs a server certificate for the given IP addresses (used by the readiness-probe tests).
    ///
    /// # Errors
    /// When the CA key does not parse or signing fails.
    pub fn server_cert(
        &self,
        ips: &[std::net::IpAddr],
        now: OffsetDateTime,
    ) -> Result<(String, String), PkiError> {
        let ca_key = KeyPair::from_pem(&self.key_pem).map_err(PkiError::LoadKey)?;
        let issuer = Issuer::new(ca_params(now), ca_key);
        let key = KeyPair::generate().map_err(|source| PkiError::Generate {
            what: "a server key",
            source,
        })?;
        let mut p = CertificateParams::default();
        p.distinguished_name
            .push(DnType::CommonName, "kube-apiserver");
        // Like kubeadm's apiserver certificate: the `kubernetes` name plus the addresses.
        p.subject_alt_names = std::iter::once(SanType::DnsName("kubernetes".try_into().map_err(
            |source| PkiError::Generate {
                what: "a server name",
                source,
            },
        )?))
        .chain(ips.iter().map(|ip| SanType::IpAddress(*ip)))
        .collect();
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        p.not_before = now - Duration::minutes(5);
        p.not_after = now + Duration::days(1);
        let cert = p
            .signed_by(&key, &issuer)
            .map_err(|source| PkiError::Generate {
                what: "a server certificate",
                source,
            })?;
        Ok((cert.pem(), key.serialize_pem()))
    }
}

/// A kubeadm bootstrap token, `[a-z0-9]{6}.[a-z0-9]{16}`, from the OS CSPRNG.
///
/// # Errors
/// When the OS has no randomness to give.
pub fn generate_token() -> Result<String, PkiError> {
    Ok(format!("{}.{}", random_chars(6)?, random_chars(16)?))
}

/// A random lower-case id (used for the cluster id that scopes idempotency tokens).
///
/// # Errors
/// When the OS has no randomness to give.
pub fn random_chars(n: usize) -> Result<String, PkiError> {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut out = String::with_capacity(n);
    let mut buf = [0u8; 64];
    while out.len() < n {
        getrandom::fill(&mut buf).map_err(|e| PkiError::Random(e.to_string()))?;
        // Rejection sampling keeps the distribution uniform: 252 = 7 * 36.
        for b in buf.iter().filter(|b| **b < 252) {
            if out.len() == n {
                break;
            }
            out.push(ALPHABET[usize::from(*b % 36)] as char);
        }
    }
    Ok(out)
}

/// Seconds a bootstrap token lives (kubeadm `ttl` of the initial token and of minted ones).
pub const TOKEN_TTL_SECS: i64 = 4 * 3600;
/// A token with less than this left is not handed to a new worker: boot and join take minutes.
pub const TOKEN_MIN_LEFT_SECS: i64 = 45 * 60;

/// Whether a token created at `created` (unix seconds; unknown for old secrets) can still be
/// given to a worker launched at `now`.
pub fn token_usable(created: Option<i64>, now: i64) -> bool {
    created.is_some_and(|c| c + TOKEN_TTL_SECS - now >= TOKEN_MIN_LEFT_SECS)
}

/// The `kube-system` Secret that makes `token` a bootstrap token (what `kubeadm token create`
/// makes), valid until `expiration` (RFC 3339).
pub fn bootstrap_token_secret(token: &str, expiration: &str) -> serde_json::Value {
    let (id, secret) = token.split_once('.').unwrap_or((token, ""));
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": format!("bootstrap-token-{id}"), "namespace": "kube-system"},
        "type": "bootstrap.kubernetes.io/token",
        "stringData": {
            "description": "minted by provision for joining workers",
            "token-id": id,
            "token-secret": secret,
            "expiration": expiration,
            "usage-bootstrap-authentication": "true",
            "usage-bootstrap-signing": "true",
            "auth-extra-groups": "system:bootstrappers:kubeadm:default-node-token",
        },
    })
}

/// Whether a string is a well-formed bootstrap token.
pub fn is_token(s: &str) -> bool {
    let ok = |p: &str, n: usize| {
        p.len() == n
            && p.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    };
    s.split_once('.')
        .is_some_and(|(a, b)| ok(a, 6) && ok(b, 16))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn now() -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_790_000_000).unwrap()
    }

    #[test]
    fn token_usable_until_45_minutes_before_expiry() {
        let now = 1_790_000_000;
        assert!(token_usable(Some(now), now));
        assert!(
            token_usable(Some(now - 3 * 3600 + 15 * 60), now),
            "1 h left"
        );
        assert!(
            !token_usable(Some(now - 3 * 3600 - 20 * 60), now),
            "40 min left"
        );
        assert!(!token_usable(None, now), "unknown age: mint a new one");
    }

    #[test]
    fn minted_token_secret_has_the_fields_kubeadm_join_needs() {
        let s = bootstrap_token_secret("abcdef.0123456789abcdef", "2026-11-26T04:00:00Z");
        assert_eq!(s["metadata"]["name"], "bootstrap-token-abcdef");
        assert_eq!(s["type"], "bootstrap.kubernetes.io/token");
        assert_eq!(s["stringData"]["token-id"], "abcdef");
        assert_eq!(s["stringData"]["token-secret"], "0123456789abcdef");
        assert_eq!(s["stringData"]["usage-bootstrap-authentication"], "true");
        assert_eq!(
            s["stringData"]["auth-extra-groups"],
            "system:bootstrappers:kubeadm:default-node-token"
        );
    }

    #[test]
    fn token_has_kubeadm_format_and_differs() {
        let a = generate_token().unwrap();
        let b = generate_token().unwrap();
        assert!(is_token(&a), "{a}");
        assert_ne!(a, b);
        assert!(!is_token("abcdef.0123456789abcde"));
        assert!(!is_token("ABCDEF.0123456789abcdef"));
    }

    /// The join hash must equal openssl's SHA-256 of the CA certificate's SPKI.
    #[test]
    fn discovery_hash_matches_openssl() {
        let ca = generate_ca(now()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let crt = dir.path().join("ca.crt");
        std::fs::write(&crt, &ca.cert_pem).unwrap();
        let script = format!(
            "openssl x509 -pubkey -noout -in {} | openssl pkey -pubin -outform der | openssl dgst -sha256 -hex",
            crt.display()
        );
        crate::core::testing::tool("openssl");
        let out = Command::new("sh")
            .arg("-c")
            .arg(&script)
            .output()
            .expect("sh runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8(out.stdout).unwrap();
        let openssl_hex = stdout.trim().rsplit(' ').next().unwrap();
        assert_eq!(
            ca.discovery_hash().unwrap(),
            format!("sha256:{openssl_hex}")
        );
        assert_ne!(
            openssl_hex,
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    /// A client certificate signed by a CA loaded back from PEM verifies against that CA.
    #[test]
    fn client_cert_verifies_against_reloaded_ca() {
        let ca = generate_ca(now()).unwrap();
        let reloaded = Ca {
            cert_pem: ca.cert_pem.clone(),
            key_pem: ca.key_pem.clone(),
        };
        let (cert, key) = reloaded
            .client_cert(
                "provision-admin",
                "kubeadm:cluster-admins",
                OffsetDateTime::now_utc(),
            )
            .unwrap();
        assert!(key.contains("PRIVATE KEY"));
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.crt"), &ca.cert_pem).unwrap();
        std::fs::write(dir.path().join("client.crt"), &cert).unwrap();
        let out = Command::new(crate::core::testing::tool("openssl"))
            .args(["verify", "-CAfile"])
            .arg(dir.path().join("ca.crt"))
            .arg(dir.path().join("client.crt"))
            .output()
            .expect("openssl is installed");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
        let subject = Command::new(crate::core::testing::tool("openssl"))
            .args(["x509", "-noout", "-subject", "-in"])
            .arg(dir.path().join("client.crt"))
            .output()
            .unwrap();
        let subject = String::from_utf8_lossy(&subject.stdout).to_string();
        assert!(
            subject.contains("O = kubeadm:cluster-admins")
                && subject.contains("CN = provision-admin"),
            "{subject}"
        );
    }
}
