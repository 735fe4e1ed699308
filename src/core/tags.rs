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

/// The node role (and, for kubeadm, its instance profile).
pub fn node_role_name(cluster: &str, region: &str) -> String {
    role_name(cluster, region, "node")
}

/// IAM names are global to the account, so they carry the region as well as the cluster name;
/// `suffix` (at most 8 characters) says what the role is for.
pub fn role_name(cluster: &str, region: &str, suffix: &str) -> String {
    let parts: Vec<&str> = region.split('-').collect();
    let (last, rest) = parts.split_last().unwrap_or((&"", &[]));
    let short: String = rest
        .iter()
        .filter_map(|p| p.chars().next())
        .collect::<String>()
        + last;
    format!("provision-{cluster}-{short}-{suffix}")
}

/// The tag the AWS Load Balancer Controller puts on what it creates.
pub const ELBV2_CLUSTER_TAG: &str = "elbv2.k8s.aws/cluster";
/// The tag the VPC CNI puts on the network interfaces it creates.
pub const VPC_CNI_CLUSTER_TAG: &str = "cluster.k8s.amazonaws.com/name";
/// Subnets for internet-facing load balancers.
pub const ELB_ROLE_TAG: &str = "kubernetes.io/role/elb";
/// Subnets for internal load balancers.
pub const INTERNAL_ELB_ROLE_TAG: &str = "kubernetes.io/role/internal-elb";

/// An idempotency token (EKS, NAT gateways: at most 64 characters) derived from `parts`, so
/// that a retried or resumed create sends the same one.
pub fn client_token(parts: &[&str]) -> String {
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(parts.join("\u{1f}").as_bytes());
    let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!("provision-{hex}")
}

/// The SSM parameter holding the add-ons' generated passwords.
pub fn addons_parameter_name(cluster: &str) -> String {
    format!("/provision/{cluster}/addons")
}

/// The SSM parameter holding only the log writer's password: what the nodes (and the kubeadm
/// control plane) may read, never the add-ons' other passwords.
pub fn log_writer_parameter_name(cluster: &str) -> String {
    format!("/provision/{cluster}/log-writer")
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
        let longest = role_name(&name, "ap-southeast-5", "ebs-csi");
        assert!(longest.len() <= 64, "{longest}");
        assert!(role_name(&name, "ap-southeast-5", "cluster").len() <= 64);
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
