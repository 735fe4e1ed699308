//! Ownership tags and the names provision gives resources.
//!
//! Architecture invariant: every resource provision creates carries [`CLUSTER_TAG`] = cluster name
//! and [`RESOURCE_TAG`] = logical id from the moment it exists (TagSpecifications on the create
//! call, never a CreateTags afterwards), and `down` deletes nothing without [`CLUSTER_TAG`].

use std::collections::BTreeMap;

pub const CLUSTER_TAG: &str = "provision:cluster";
pub const RESOURCE_TAG: &str = "provision:resource";
/// Marks what the Kubernetes AWS integrations (cloud provider, load balancer controller) look for.
pub fn kubernetes_cluster_tag(cluster: &str) -> String {
    format!("kubernetes.io/cluster/{cluster}")
}

/// The tags of one resource: ownership, logical id, `Name`, then the user's own tags.
pub fn tags_for(
    cluster: &str,
    logical_id: &str,
    k8s_owned: bool,
    user: &BTreeMap<String, String>,
) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = user.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    out.push((CLUSTER_TAG.into(), cluster.into()));
    out.push((RESOURCE_TAG.into(), logical_id.into()));
    out.push(("Name".into(), format!("{cluster}-{logical_id}")));
    if k8s_owned {
        out.push((kubernetes_cluster_tag(cluster), "owned".into()));
    }
    out
}

/// IAM names are global to the account, so they carry the region as well as the cluster name.
pub fn node_role_name(cluster: &str, region: &str) -> String {
    let parts: Vec<&str> = region.split('-').collect();
    let (last, rest) = parts.split_last().unwrap_or((&"", &[]));
    let short: String = rest
        .iter()
        .filter_map(|p| p.chars().next())
        .collect::<String>()
        + last;
    format!("provision-{cluster}-{short}-node")
}

/// The SSM parameter holding the cluster's CA key, bootstrap token and cluster id.
pub fn secret_parameter_name(cluster: &str) -> String {
    format!("/provision/{cluster}/bootstrap")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_name_fits_iam_limit_for_longest_cluster_name() {
        let name = "a".repeat(40);
        let role = node_role_name(&name, "ap-southeast-5");
        assert_eq!(role, format!("provision-{name}-as5-node"));
        assert!(role.len() <= 64, "{}", role.len());
        assert_eq!(
            node_role_name("demo", "us-east-1"),
            "provision-demo-ue1-node"
        );
        assert_eq!(
            node_role_name("demo", "us-gov-west-1"),
            "provision-demo-ugw1-node"
        );
    }

    #[test]
    fn user_tags_come_first_and_ownership_last() {
        let user = BTreeMap::from([("team".to_string(), "infra".to_string())]);
        let t = tags_for("demo", "vpc", true, &user);
        assert_eq!(t[0], ("team".into(), "infra".into()));
        assert!(t.contains(&(CLUSTER_TAG.into(), "demo".into())));
        assert!(t.contains(&("kubernetes.io/cluster/demo".into(), "owned".into())));
    }
}
