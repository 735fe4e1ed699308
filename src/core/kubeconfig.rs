//! kubeconfig rendering and merging.
//!
//! `merge` adds or replaces one cluster, user and context named after the cluster and makes it
//! the current context, keeping every other entry (and unknown fields) of the existing file.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, thiserror::Error)]
pub enum KubeconfigError {
    #[error("the existing kubeconfig is not valid YAML: {0}")]
    Parse(String),
    #[error("rendering the kubeconfig: {0}")]
    Render(String),
}

/// The name kubectl checks the API server's certificate against (`tls-server-name`): kubeadm
/// always includes it, so the kubeconfig keeps working when the control plane's address changes
/// (a new public IP after stop/start) or is reached through a tunnel.
pub const API_SERVER_NAME: &str = "kubernetes";

/// The credentials and endpoint of one cluster.
#[derive(Debug, Clone)]
pub struct Entry<'a> {
    pub cluster: &'a str,
    pub server: &'a str,
    pub ca: CaData<'a>,
    pub user: User<'a>,
    /// The name the server's certificate is checked against, when it is not the server's host.
    pub tls_server_name: Option<&'a str>,
}

/// The cluster CA as the kubeconfig gets it.
#[derive(Debug, Clone, Copy)]
pub enum CaData<'a> {
    Pem(&'a str),
    /// Already base64 (what EKS's DescribeCluster returns); written as is, never parsed.
    Base64(&'a str),
}

/// How kubectl authenticates.
#[derive(Debug, Clone)]
pub enum User<'a> {
    /// A client certificate signed by the cluster CA (kubeadm clusters).
    ClientCert { cert_pem: &'a str, key_pem: &'a str },
    /// An exec plugin printing an ExecCredential (EKS: `provision token`).
    Exec { command: &'a str, args: Vec<String> },
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct KubeConfig {
    #[serde(rename = "apiVersion", default)]
    api_version: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    clusters: Vec<Named>,
    #[serde(default)]
    users: Vec<Named>,
    #[serde(default)]
    contexts: Vec<Named>,
    #[serde(rename = "current-context", default)]
    current_context: String,
    #[serde(flatten)]
    extra: BTreeMap<String, Value>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Named {
    name: String,
    #[serde(flatten)]
    rest: BTreeMap<String, Value>,
}

/// The user entry's name for a cluster.
pub fn user_name(cluster: &str) -> String {
    format!("{cluster}-admin")
}

/// Merges `entry` into `existing` (None or empty for a new file) and returns the new text.
///
/// # Errors
/// When the existing text is not a kubeconfig we can parse.
pub fn merge(existing: Option<&str>, entry: &Entry<'_>) -> Result<String, KubeconfigError> {
    let mut kc: KubeConfig = match existing.map(str::trim) {
        None | Some("") => KubeConfig::default(),
        Some(text) => {
            serde_saphyr::from_str(text).map_err(|e| KubeconfigError::Parse(e.to_string()))?
        }
    };
    kc.api_version = "v1".into();
    kc.kind = "Config".into();
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
    let user = user_name(entry.cluster);
    let ca = match entry.ca {
        CaData::Pem(pem) => b64(pem),
        CaData::Base64(data) => data.to_string(),
    };
    let mut cluster = serde_json::json!({"server": entry.server, "certificate-authority-data": ca});
    if let Some(name) = entry.tls_server_name {
        cluster["tls-server-name"] = name.into();
    }
    upsert(&mut kc.clusters, entry.cluster, "cluster", cluster);
    let credentials = match &entry.user {
        User::ClientCert { cert_pem, key_pem } => {
            serde_json::json!({"client-certificate-data": b64(cert_pem), "client-key-data": b64(key_pem)})
        }
        User::Exec { command, args } => serde_json::json!({"exec": {
            "apiVersion": "client.authentication.k8s.io/v1beta1",
            "command": command,
            "args": args,
            "interactiveMode": "Never",
            "provideClusterInfo": false,
        }}),
    };
    upsert(&mut kc.users, &user, "user", credentials);
    upsert(
        &mut kc.contexts,
        entry.cluster,
        "context",
        serde_json::json!({"cluster": entry.cluster, "user": user}),
    );
    kc.current_context = entry.cluster.to_string();
    serde_saphyr::to_string(&kc).map_err(|e| KubeconfigError::Render(e.to_string()))
}

fn upsert(list: &mut Vec<Named>, name: &str, key: &str, value: Value) {
    let named = Named {
        name: name.to_string(),
        rest: BTreeMap::from([(key.to_string(), value)]),
    };
    match list.iter_mut().find(|n| n.name == name) {
        Some(slot) => *slot = named,
        None => list.push(named),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(server: &str) -> Entry<'_> {
        Entry {
            cluster: "demo",
            server,
            ca: CaData::Pem("CA"),
            user: User::ClientCert {
                cert_pem: "CERT",
                key_pem: "KEY",
            },
            tls_server_name: Some(API_SERVER_NAME),
        }
    }

    #[test]
    fn exec_users_and_base64_ca_data_for_eks() {
        let e = Entry {
            cluster: "eks-demo",
            server: "https://ABC.gr7.us-west-2.eks.amazonaws.com",
            ca: CaData::Base64("bm90IGEgcGVt"),
            user: User::Exec {
                command: "provision",
                args: vec![
                    "token".into(),
                    "--cluster".into(),
                    "eks-demo".into(),
                    "--region".into(),
                    "us-west-2".into(),
                ],
            },
            tls_server_name: None,
        };
        let v: Value = serde_saphyr::from_str(&merge(None, &e).unwrap()).unwrap();
        assert_eq!(
            v["clusters"][0]["cluster"]["certificate-authority-data"], "bm90IGEgcGVt",
            "written as given, never parsed"
        );
        assert!(v["clusters"][0]["cluster"].get("tls-server-name").is_none());
        let exec = &v["users"][0]["user"]["exec"];
        assert_eq!(exec["apiVersion"], "client.authentication.k8s.io/v1beta1");
        assert_eq!(exec["command"], "provision");
        assert_eq!(exec["args"][0], "token");
        assert_eq!(exec["args"][2], "eks-demo");
    }

    #[test]
    fn new_file_has_one_context_and_it_is_current() {
        let text = merge(None, &entry("https://1.2.3.4:6443")).unwrap();
        let v: Value = serde_saphyr::from_str(&text).unwrap();
        assert_eq!(v["current-context"], "demo");
        assert_eq!(
            v["clusters"][0]["cluster"]["server"],
            "https://1.2.3.4:6443"
        );
        assert_eq!(v["users"][0]["name"], "demo-admin");
        assert_eq!(v["contexts"][0]["context"]["user"], "demo-admin");
    }

    #[test]
    fn merge_keeps_other_entries_and_replaces_ours() {
        let existing = r#"
apiVersion: v1
kind: Config
clusters:
- name: other
  cluster: {server: "https://other:443", insecure-skip-tls-verify: true}
- name: demo
  cluster: {server: "https://old:6443"}
users:
- name: other-user
  user: {token: abc}
contexts:
- name: other
  context: {cluster: other, user: other-user, namespace: kube-system}
current-context: other
preferences: {}
"#;
        let text = merge(Some(existing), &entry("https://5.6.7.8:6443")).unwrap();
        let v: Value = serde_saphyr::from_str(&text).unwrap();
        assert_eq!(v["clusters"].as_array().unwrap().len(), 2);
        assert_eq!(
            v["clusters"][0]["cluster"]["insecure-skip-tls-verify"],
            true
        );
        assert_eq!(
            v["clusters"][1]["cluster"]["server"],
            "https://5.6.7.8:6443"
        );
        assert_eq!(v["contexts"][0]["context"]["namespace"], "kube-system");
        assert_eq!(v["current-context"], "demo");
        assert!(v.get("preferences").is_some());
    }

    #[test]
    fn garbage_is_an_error_not_an_overwrite() {
        assert!(merge(Some("clusters: [unclosed"), &entry("https://x:6443")).is_err());
    }
}
