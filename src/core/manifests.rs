//! Kubernetes manifests provision applies itself: the security baseline (namespaces, their
//! NetworkPolicies, RoleBindings to the built-in ClusterRoles). Rendered as JSON documents (valid
//! YAML), one list per file, so that they need no YAML library to write and `kubectl apply -f`
//! takes them as they are.

use serde_json::{Value, json};

use super::spec::{Binding, SecuritySpec, Subject, is_dns_label};

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
            if sec.default_deny_egress {
                items.extend(egress_policies(ns));
            }
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

/// Deny all ingress to the namespace's pods except from pods of the same namespace. Egress stays
/// open, DNS included: an egress policy (even one allowing only DNS) would cut the pods off from
/// each other, Services, the API server and the internet.
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
    ]
}

/// With `default_deny_egress`: deny egress too, then allow DNS (CoreDNS in kube-system) and
/// the namespace's own pods. Anything else (the API server, other namespaces, the internet)
/// needs a policy of the team's own.
fn egress_policies(ns: &str) -> Vec<Value> {
    vec![
        json!({
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": { "name": "default-deny-egress", "namespace": ns, "labels": labels() },
            "spec": { "podSelector": {}, "policyTypes": ["Egress"] },
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
        json!({
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": { "name": "allow-same-namespace-egress", "namespace": ns, "labels": labels() },
            "spec": {
                "podSelector": {},
                "policyTypes": ["Egress"],
                "egress": [{ "to": [{ "podSelector": {} }] }],
            },
        }),
    ]
}

/// The namespace of the log shipper.
pub const LOGGING_NAMESPACE: &str = "provision-logging";
/// The Secret (in [`LOGGING_NAMESPACE`]) with the Fluent Bit user's Elasticsearch password; the
/// control plane makes it at boot from the add-ons' SSM parameter.
pub const LOG_SHIPPER_SECRET: &str = "fluent-bit-elasticsearch";

/// Fluent Bit's configuration: container logs (with Kubernetes metadata) and the systemd
/// journal (kubelet, containerd), to the logging add-on's Elasticsearch as the `fluent_bit` user.
pub fn fluent_bit_config(es_host: &str) -> String {
    format!(
        r#"[SERVICE]
    Flush         5
    Log_Level     info
    Parsers_File  /fluent-bit/etc/parsers.conf
    HTTP_Server   Off

[INPUT]
    Name              tail
    Tag               kube.*
    Path              /var/log/containers/*.log
    multiline.parser  cri
    DB                /var/fluent-bit/state/tail.db
    Mem_Buf_Limit     32MB
    Skip_Long_Lines   On

[INPUT]
    Name            systemd
    Tag             host.*
    Path            /var/log/journal
    DB              /var/fluent-bit/state/journal.db
    Read_From_Tail  On

[FILTER]
    Name       kubernetes
    Match      kube.*
    Merge_Log  On
    Keep_Log   Off

[OUTPUT]
    Name                es
    Match               *
    Host                {es_host}
    Port                9200
    HTTP_User           fluent_bit
    HTTP_Passwd         ${{ES_PASSWORD}}
    Logstash_Format     On
    Logstash_Prefix     logstash
    Suppress_Type_Name  On
    Replace_Dots        On
    Retry_Limit         False
"#
    )
}

/// The log shipper: Fluent Bit as a DaemonSet on every node (control plane included), with the
/// read-only RBAC its Kubernetes filter needs.
pub fn log_shipper(es_host: &str, image: &str) -> Value {
    let ns = LOGGING_NAMESPACE;
    let name = "fluent-bit";
    let items = vec![
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns, "labels": {
            MANAGED_BY.0: MANAGED_BY.1,
            // It reads host paths: privileged for Pod Security Admission.
            "pod-security.kubernetes.io/enforce": "privileged",
        }}}),
        json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name, "namespace": ns, "labels": labels()}}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "provision-fluent-bit", "labels": labels()},
            "rules": [{"apiGroups": [""], "resources": ["pods", "namespaces"], "verbs": ["get", "list", "watch"]}]}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": "provision-fluent-bit", "labels": labels()},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "provision-fluent-bit"},
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": ns}]}),
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": ns, "labels": labels()},
            "data": {"fluent-bit.conf": fluent_bit_config(es_host)}}),
        json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": name, "namespace": ns, "labels": labels()},
        "spec": {
            "selector": {"matchLabels": {"app.kubernetes.io/name": name}},
            "template": {
                "metadata": {"labels": {"app.kubernetes.io/name": name}},
                "spec": {
                    "serviceAccountName": name,
                    "tolerations": [{"operator": "Exists"}],
                    "priorityClassName": "system-node-critical",
                    "containers": [{
                        "name": name,
                        "image": image,
                        "args": ["--config=/fluent-bit/etc/conf/fluent-bit.conf"],
                        "env": [{"name": "ES_PASSWORD", "valueFrom": {"secretKeyRef": {"name": LOG_SHIPPER_SECRET, "key": "password"}}}],
                        "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}},
                        "volumeMounts": [
                            {"name": "config", "mountPath": "/fluent-bit/etc/conf"},
                            {"name": "varlog", "mountPath": "/var/log", "readOnly": true},
                            {"name": "state", "mountPath": "/var/fluent-bit/state"},
                        ],
                    }],
                    "volumes": [
                        {"name": "config", "configMap": {"name": name}},
                        {"name": "varlog", "hostPath": {"path": "/var/log"}},
                        {"name": "state", "hostPath": {"path": "/var/lib/fluent-bit", "type": "DirectoryOrCreate"}},
                    ],
                },
            },
        }}),
    ];
    json!({"apiVersion": "v1", "kind": "List", "items": items})
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
        let cluster_scoped = matches!(kind, "Namespace" | "ClusterRole" | "ClusterRoleBinding");
        if !cluster_scoped && !ns.is_some_and(is_dns_label) {
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
            default_deny_egress: false,
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
        assert_eq!(count("NetworkPolicy"), 4, "two per namespace");
        assert!(
            !items
                .iter()
                .any(|i| i["spec"]["policyTypes"].to_string().contains("Egress")),
            "no egress policy: it would deny everything else"
        );
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
    fn default_deny_egress_adds_allow_dns_and_same_namespace_egress() {
        let mut s = spec();
        s.default_deny_egress = true;
        let list = baseline(&s).unwrap();
        assert_eq!(check(&list), Vec::<String>::new());
        let items = list["items"].as_array().unwrap();
        let names: Vec<&str> = items
            .iter()
            .filter(|i| i["kind"] == "NetworkPolicy" && i["metadata"]["namespace"] == "team-a")
            .map(|i| i["metadata"]["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "default-deny-ingress",
                "allow-same-namespace",
                "default-deny-egress",
                "allow-dns",
                "allow-same-namespace-egress"
            ]
        );
        let dns = items
            .iter()
            .find(|i| i["metadata"]["name"] == "allow-dns")
            .unwrap();
        assert_eq!(dns["spec"]["egress"][0]["ports"][0]["port"], 53);
        assert_eq!(
            dns["spec"]["egress"][0]["to"][0]["podSelector"]["matchLabels"]["k8s-app"],
            "kube-dns"
        );
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
    fn the_log_shipper_is_well_formed_and_ships_to_the_logging_instance() {
        let list = log_shipper("10.0.0.9", "cr.fluentbit.io/fluent/fluent-bit:4.2.0");
        assert_eq!(check(&list), Vec::<String>::new());
        let items = list["items"].as_array().unwrap();
        let ds = items.iter().find(|i| i["kind"] == "DaemonSet").unwrap();
        let c = &ds["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(c["image"], "cr.fluentbit.io/fluent/fluent-bit:4.2.0");
        assert_eq!(
            c["env"][0]["valueFrom"]["secretKeyRef"]["name"],
            LOG_SHIPPER_SECRET
        );
        assert_eq!(
            ds["spec"]["template"]["spec"]["tolerations"][0]["operator"], "Exists",
            "on every node, the control plane too"
        );
        let conf =
            items.iter().find(|i| i["kind"] == "ConfigMap").unwrap()["data"]["fluent-bit.conf"]
                .as_str()
                .unwrap()
                .to_string();
        assert!(conf.contains("Host                10.0.0.9"));
        assert!(
            conf.contains("HTTP_Passwd         ${ES_PASSWORD}"),
            "the password comes from the Secret"
        );
        assert!(
            conf.contains("Suppress_Type_Name  On"),
            "required for Elasticsearch 8+"
        );
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
