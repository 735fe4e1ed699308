//! Kubernetes manifests provision applies itself: the security baseline (namespaces, their
//! NetworkPolicies, RoleBindings to the built-in ClusterRoles). Rendered as JSON documents (valid
//! YAML), one list per file, so that they need no YAML library to write and `kubectl apply -f`
//! takes them as they are.

use serde_json::{Value, json};

use super::spec::{Binding, SecuritySpec, Subject};

/// The label provision puts on what it applies (so that it can be found, and pruned later).
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "provision");

fn labels() -> Value {
    json!({ MANAGED_BY.0: MANAGED_BY.1 })
}

/// A RoleBinding's name: `provision-ROLE-KIND-SLUG`, a valid Kubernetes name whatever the
/// subject's name is (IAM ARNs, e-mail addresses), unique per subject through a short hash.
pub fn binding_name(b: &Binding) -> String {
    use sha2::Digest as _;
    let (kind, name) = match &b.subject {
        Subject::User(n) => ("user", n),
        Subject::Group(n) => ("group", n),
    };
    let slug: String = name
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect::<String>()
        .split('-')
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join("-");
    let slug: String = slug
        .chars()
        .rev()
        .take(30)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    let slug = slug.trim_matches('-');
    let hash: String = sha2::Sha256::digest(name.as_bytes())
        .iter()
        .take(4)
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("provision-{}-{kind}-{slug}-{hash}", b.role.as_str())
}

/// The baseline as a `v1/List`: namespaces first, then per namespace the NetworkPolicies (when
/// `default_deny`), then the RoleBindings. `None` when the spec asks for nothing.
pub fn baseline(sec: &SecuritySpec) -> Option<Value> {
    let mut items = Vec::new();
    for ns in &sec.namespaces {
        items.push(json!({
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {
                "name": ns,
                "labels": {
                    MANAGED_BY.0: MANAGED_BY.1,
                    // Pod Security Admission: no privileged pods in the team namespaces.
                    "pod-security.kubernetes.io/enforce": "baseline",
                    "pod-security.kubernetes.io/warn": "restricted",
                },
            },
        }));
    }
    if sec.default_deny {
        for ns in &sec.namespaces {
            items.extend(network_policies(ns));
        }
    }
    for b in &sec.bindings {
        let (kind, name) = match &b.subject {
            Subject::User(n) => ("User", n),
            Subject::Group(n) => ("Group", n),
        };
        for ns in &b.namespaces {
            items.push(json!({
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": { "name": binding_name(b), "namespace": ns, "labels": labels() },
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": b.role.as_str(),
                },
                "subjects": [{ "apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": name }],
            }));
        }
    }
    (!items.is_empty()).then(|| json!({ "apiVersion": "v1", "kind": "List", "items": items }))
}

/// Deny all ingress to the namespace's pods except from pods of the same namespace, and let
/// them reach cluster DNS (which keeps working if an egress policy is added later).
fn network_policies(ns: &str) -> Vec<Value> {
    vec![
        json!({
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": { "name": "default-deny-ingress", "namespace": ns, "labels": labels() },
            "spec": { "podSelector": {}, "policyTypes": ["Ingress"] },
        }),
        json!({
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": { "name": "allow-same-namespace", "namespace": ns, "labels": labels() },
            "spec": {
                "podSelector": {},
                "policyTypes": ["Ingress"],
                "ingress": [{ "from": [{ "podSelector": {} }] }],
            },
        }),
        json!({
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": { "name": "allow-dns", "namespace": ns, "labels": labels() },
            "spec": {
                "podSelector": {},
                "policyTypes": ["Egress"],
                "egress": [{
                    "to": [{
                        "namespaceSelector": { "matchLabels": { "kubernetes.io/metadata.name": "kube-system" } },
                        "podSelector": { "matchLabels": { "k8s-app": "kube-dns" } },
                    }],
                    "ports": [{ "protocol": "UDP", "port": 53 }, { "protocol": "TCP", "port": 53 }],
                }],
            },
        }),
    ]
}

/// Offline checks of a manifest list: every item has apiVersion, kind and a valid name (and
/// namespace), names are unique per kind and namespace. Returns the problems found.
pub fn check(list: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let Some(items) = list["items"].as_array() else {
        return vec!["not a List with items".into()];
    };
    for (i, item) in items.iter().enumerate() {
        let kind = item["kind"].as_str().unwrap_or_default();
        if item["apiVersion"].as_str().is_none_or(str::is_empty) || kind.is_empty() {
            problems.push(format!("item {i}: apiVersion and kind are required"));
        }
        let name = item["metadata"]["name"].as_str().unwrap_or_default();
        let valid = match kind {
            // Namespaces are DNS labels; the others DNS subdomains.
            "Namespace" => is_dns_label(name),
            _ => is_dns_subdomain(name),
        };
        if !valid {
            problems.push(format!("item {i} ({kind}): `{name}` is not a valid name"));
        }
        let ns = item["metadata"]["namespace"].as_str();
        if kind != "Namespace" && !ns.is_some_and(is_dns_label) {
            problems.push(format!("item {i} ({kind} {name}): no valid namespace"));
        }
        if !seen.insert((
            kind.to_string(),
            ns.unwrap_or_default().to_string(),
            name.to_string(),
        )) {
            problems.push(format!("item {i}: {kind} {name} appears twice"));
        }
        if kind == "RoleBinding"
            && !matches!(
                item["roleRef"]["name"].as_str(),
                Some("view" | "edit" | "admin")
            )
        {
            problems.push(format!("item {i}: roleRef is not a built-in ClusterRole"));
        }
    }
    problems
}

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns_label)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::spec::{BindingRole, SecuritySpec};

    fn spec() -> SecuritySpec {
        SecuritySpec {
            namespaces: vec!["team-a".into(), "team-b".into()],
            default_deny: true,
            bindings: vec![
                Binding {
                    subject: Subject::Group("Team A Devs".into()),
                    role: BindingRole::Edit,
                    namespaces: vec!["team-a".into()],
                },
                Binding {
                    subject: Subject::User("arn:aws:iam::123456789012:role/Auditor_Role".into()),
                    role: BindingRole::View,
                    namespaces: vec!["team-a".into(), "team-b".into()],
                },
            ],
        }
    }

    #[test]
    fn the_baseline_is_well_formed_and_complete() {
        let list = baseline(&spec()).unwrap();
        assert_eq!(check(&list), Vec::<String>::new());
        let items = list["items"].as_array().unwrap();
        let count = |k: &str| items.iter().filter(|i| i["kind"] == k).count();
        assert_eq!(count("Namespace"), 2);
        assert_eq!(count("NetworkPolicy"), 6, "three per namespace");
        assert_eq!(count("RoleBinding"), 3, "one per binding and namespace");
        let deny = items
            .iter()
            .find(|i| {
                i["metadata"]["name"] == "default-deny-ingress"
                    && i["metadata"]["namespace"] == "team-b"
            })
            .unwrap();
        assert_eq!(deny["spec"]["podSelector"], json!({}));
        assert_eq!(deny["spec"]["policyTypes"], json!(["Ingress"]));
        let rb = items.iter().find(|i| i["kind"] == "RoleBinding").unwrap();
        assert_eq!(rb["roleRef"]["name"], "edit");
        assert_eq!(rb["subjects"][0]["kind"], "Group");
        assert_eq!(
            rb["subjects"][0]["name"], "Team A Devs",
            "the subject keeps its real name"
        );
        // JSON is YAML: the file kubectl reads parses as YAML to the same document.
        let text = serde_json::to_string_pretty(&list).unwrap();
        let back: Value = serde_saphyr::from_str(&text).unwrap();
        assert_eq!(back, list);
    }

    #[test]
    fn no_policies_without_default_deny_and_nothing_for_an_empty_spec() {
        let mut s = spec();
        s.default_deny = false;
        let list = baseline(&s).unwrap();
        assert!(
            !list["items"]
                .as_array()
                .unwrap()
                .iter()
                .any(|i| i["kind"] == "NetworkPolicy")
        );
        assert!(baseline(&SecuritySpec::default()).is_none());
    }

    #[test]
    fn binding_names_are_valid_and_distinct() {
        let s = spec();
        let a = binding_name(&s.bindings[0]);
        let b = binding_name(&s.bindings[1]);
        assert_ne!(a, b);
        for n in [&a, &b] {
            assert!(is_dns_subdomain(n) && n.len() <= 63, "{n}");
        }
        assert!(a.starts_with("provision-edit-group-team-a-devs-"), "{a}");
    }

    #[test]
    fn check_finds_broken_manifests() {
        let bad = json!({"items": [
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "Bad_Name"}},
            {"kind": "RoleBinding", "metadata": {"name": "x", "namespace": "a"}, "roleRef": {"name": "cluster-admin"}},
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ok"}},
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ok"}},
        ]});
        let p = check(&bad);
        assert_eq!(p.len(), 4, "{p:?}");
    }
}
