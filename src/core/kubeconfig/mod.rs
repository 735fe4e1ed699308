//! kubeconfig rendering and merging.
//!
//! `merge` adds or replaces one cluster, user and context named after the cluster and makes it
//! the current context; `remove` takes them out again. Every other entry, and every value in it,
//! is kept as written ([`yaml`]: scalars keep their text, so strings stay strings).

pub mod yaml;

use base64::Engine as _;
use yaml::Node;

#[derive(Debug, thiserror::Error)]
pub enum KubeconfigError {
    #[error("it is not valid YAML: {0}")]
    Parse(#[from] yaml::YamlError),
    #[error("it is not a kubeconfig: {0}")]
    Shape(String),
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
    /// An exec plugin printing an ExecCredential (EKS: `provision token`), with the environment
    /// it needs (the AWS profile `up` ran with, as `aws eks update-kubeconfig` records it).
    Exec {
        command: &'a str,
        args: Vec<String>,
        env: Vec<(String, String)>,
    },
}

/// The user entry's name for a cluster.
pub fn user_name(cluster: &str) -> String {
    format!("{cluster}-admin")
}

/// The kubeconfig in `text` (a new one for None or an empty text), checked: a mapping whose
/// `clusters`, `users` and `contexts` are lists (or null, as `kubectl config view` writes them).
///
/// # Errors
/// When the text is not YAML or not a kubeconfig.
pub fn parse(text: Option<&str>) -> Result<Node, KubeconfigError> {
    let mut root = match text {
        None => None,
        Some(t) => yaml::parse(t)?,
    }
    .filter(|n| !n.is_null())
    .unwrap_or_else(|| Node::Map(Vec::new()));
    if !matches!(root, Node::Map(_)) {
        return Err(KubeconfigError::Shape(
            "the top level is not a mapping".into(),
        ));
    }
    for key in ["clusters", "users", "contexts"] {
        if root.seq_mut(key).is_none() {
            return Err(KubeconfigError::Shape(format!("`{key}` is not a list")));
        }
    }
    Ok(root)
}

/// Merges `entry` into `existing` (None or empty for a new file) and returns the new text.
///
/// # Errors
/// When the existing text is not a kubeconfig we can parse.
pub fn merge(existing: Option<&str>, entry: &Entry<'_>) -> Result<String, KubeconfigError> {
    let mut kc = parse(existing)?;
    kc.set("apiVersion", Node::string("v1"));
    kc.set("kind", Node::string("Config"));
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
    let user = user_name(entry.cluster);
    let ca = match entry.ca {
        CaData::Pem(pem) => b64(pem),
        CaData::Base64(data) => data.to_string(),
    };
    let mut cluster = vec![
        (Node::string("server"), Node::string(entry.server)),
        (
            Node::string("certificate-authority-data"),
            Node::string(&ca),
        ),
    ];
    if let Some(name) = entry.tls_server_name {
        cluster.push((Node::string("tls-server-name"), Node::string(name)));
    }
    upsert(
        &mut kc,
        "clusters",
        entry.cluster,
        "cluster",
        Node::Map(cluster),
    );
    let credentials = match &entry.user {
        User::ClientCert { cert_pem, key_pem } => vec![
            (
                Node::string("client-certificate-data"),
                Node::string(&b64(cert_pem)),
            ),
            (Node::string("client-key-data"), Node::string(&b64(key_pem))),
        ],
        User::Exec { command, args, env } => {
            let mut exec = vec![
                (
                    Node::string("apiVersion"),
                    Node::string("client.authentication.k8s.io/v1beta1"),
                ),
                (Node::string("command"), Node::string(command)),
                (
                    Node::string("args"),
                    Node::Seq(args.iter().map(|a| Node::string(a)).collect()),
                ),
            ];
            if !env.is_empty() {
                let vars = env
                    .iter()
                    .map(|(k, v)| {
                        Node::Map(vec![
                            (Node::string("name"), Node::string(k)),
                            (Node::string("value"), Node::string(v)),
                        ])
                    })
                    .collect();
                exec.push((Node::string("env"), Node::Seq(vars)));
            }
            exec.push((Node::string("interactiveMode"), Node::string("Never")));
            exec.push((Node::string("provideClusterInfo"), Node::plain("false")));
            vec![(Node::string("exec"), Node::Map(exec))]
        }
    };
    upsert(&mut kc, "users", &user, "user", Node::Map(credentials));
    upsert(
        &mut kc,
        "contexts",
        entry.cluster,
        "context",
        Node::Map(vec![
            (Node::string("cluster"), Node::string(entry.cluster)),
            (Node::string("user"), Node::string(&user)),
        ]),
    );
    kc.set("current-context", Node::string(entry.cluster));
    Ok(yaml::render(&kc))
}

/// Takes the cluster's context, cluster and user out of `existing`, when the context is the one
/// `merge` wrote (named after the cluster, naming its cluster and user); resets
/// `current-context` when it named it. None when there was nothing of ours.
///
/// # Errors
/// When the existing text is not a kubeconfig we can parse.
pub fn remove(existing: &str, cluster: &str) -> Result<Option<String>, KubeconfigError> {
    let mut kc = parse(Some(existing))?;
    let user = user_name(cluster);
    let ours = |n: &Node| {
        n.get("name").and_then(Node::text) == Some(cluster)
            && n.get("context")
                .and_then(|c| c.get("cluster"))
                .and_then(Node::text)
                == Some(cluster)
            && n.get("context")
                .and_then(|c| c.get("user"))
                .and_then(Node::text)
                == Some(&user)
    };
    let contexts = kc.seq_mut("contexts").expect("checked by parse");
    let before = contexts.len();
    contexts.retain(|n| !ours(n));
    if contexts.len() == before {
        return Ok(None);
    }
    for (key, name) in [("clusters", cluster), ("users", user.as_str())] {
        kc.seq_mut(key)
            .expect("checked by parse")
            .retain(|n| n.get("name").and_then(Node::text) != Some(name));
    }
    if kc.get("current-context").and_then(Node::text) == Some(cluster) {
        kc.set("current-context", Node::string(""));
    }
    Ok(Some(yaml::render(&kc)))
}

fn upsert(kc: &mut Node, list: &str, name: &str, key: &str, value: Node) {
    let named = Node::Map(vec![
        (Node::string("name"), Node::string(name)),
        (Node::string(key), value),
    ]);
    let items = kc.seq_mut(list).expect("checked by parse");
    match items
        .iter_mut()
        .find(|n| n.get("name").and_then(Node::text) == Some(name))
    {
        Some(slot) => *slot = named,
        None => items.push(named),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

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
                env: vec![("AWS_PROFILE".into(), "team".into())],
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
        assert_eq!(exec["env"][0]["name"], "AWS_PROFILE");
        assert_eq!(exec["env"][0]["value"], "team");
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
        assert!(merge(Some("- a\n- b\n"), &entry("https://x:6443")).is_err());
        assert!(merge(Some("clusters: 3\n"), &entry("https://x:6443")).is_err());
        assert!(merge(Some("clusters: [unclosed"), &entry("https://x:6443")).is_err());
    }

    /// What the adversarial run found: other entries' values rewritten (`0x1F` became 31,
    /// `0777` became 777.0) and kubectl's own `clusters: null` refused.
    #[test]
    fn other_entries_keep_their_values_and_null_lists_are_accepted() {
        let existing = "apiVersion: v1\nkind: Config\nclusters: null\nusers:\n- name: u\n  user:\n    token: 0x1F\ncontexts:\n- name: c\n  context:\n    cluster: x\n    user: u\n    namespace: 0777\ncurrent-context: c\npreferences: {}\n";
        let text = merge(Some(existing), &entry("https://5.6.7.8:6443")).unwrap();
        assert!(text.contains("    token: 0x1F\n"), "{text}");
        assert!(text.contains("    namespace: 0777\n"), "{text}");
        let v: Value = serde_saphyr::from_str(&text).unwrap();
        assert_eq!(v["clusters"][0]["name"], "demo");
        assert_eq!(v["current-context"], "demo");
    }

    #[test]
    fn remove_takes_out_only_our_entries_and_resets_the_current_context() {
        let other = "apiVersion: v1\nclusters:\n- name: other\n  cluster:\n    server: https://o\nusers:\n- name: ou\n  user:\n    token: 0x1F\ncontexts:\n- name: other\n  context:\n    cluster: other\n    user: ou\n";
        let merged = merge(Some(other), &entry("https://5.6.7.8:6443")).unwrap();
        let left = remove(&merged, "demo").unwrap().expect("ours was there");
        let v: Value = serde_saphyr::from_str(&left).unwrap();
        assert_eq!(v["clusters"].as_array().unwrap().len(), 1);
        assert_eq!(v["users"][0]["name"], "ou");
        assert_eq!(v["contexts"][0]["name"], "other");
        assert_eq!(v["current-context"], "");
        assert!(left.contains("token: 0x1F"));
        assert_eq!(remove(&left, "demo").unwrap(), None, "nothing of ours left");
        // A context of that name the user made (another cluster, another user) stays.
        let theirs = other.replace("- name: other\n  context", "- name: demo\n  context");
        assert_eq!(remove(&theirs, "demo").unwrap(), None);
    }
}
