//! Ownership tags and the names provision gives resources.
//!
//! Architecture invariant: every resource provision creates carries [`CLUSTER_TAG`] = cluster name
//! and [`RESOURCE_TAG`] = logical id from the moment it exists (TagSpecifications on the create
//! call, never a CreateTags afterwards), and `down` deletes nothing without [`CLUSTER_TAG`].

use std::collections::BTreeMap;

pub const CLUSTER_TAG: &str = "provision:cluster";
pub const RESOURCE_TAG: &str = "provision:resource";
/// On IAM objects, which are global to the account: the region of the cluster that owns them
/// (a cluster of the same name in another region must neither adopt nor delete them).
pub const REGION_TAG: &str = "provision:region";
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
/// `suffix` (at most 8 characters) says what the role is for. The region is written the way
/// AWS writes it in availability zone ids ([`region_code`]), which tells every region apart;
/// a name that would pass IAM's 64 characters (a 40-character cluster name in a region whose
/// code is longer than 5) takes a hash of the region instead.
pub fn role_name(cluster: &str, region: &str, suffix: &str) -> String {
    let name = format!("provision-{cluster}-{}-{suffix}", region_code(region));
    if name.len() <= 64 {
        return name;
    }
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(region.as_bytes());
    let hash: String = digest.iter().take(3).map(|b| format!("{b:02x}")).collect();
    format!("provision-{cluster}-{}-{suffix}", &hash[..5])
}

/// The kubeadm cluster's bucket for etcd snapshots. S3 names are global to every account, so
/// the name carries the account and the region (as [`region_code`] writes it); one that would
/// pass S3's 63 characters takes a hash of the two instead.
pub fn backup_bucket_name(cluster: &str, region: &str, account: &str) -> String {
    let name = format!("provision-{cluster}-{}-{account}", region_code(region));
    if name.len() <= 63 {
        return name;
    }
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(format!("{region}/{account}").as_bytes());
    let hash: String = digest.iter().take(5).map(|b| format!("{b:02x}")).collect();
    format!("provision-{cluster}-{hash}")
}

/// A region as availability zone ids name it: `us-east-1` is `use1`, `ap-southeast-1` is
/// `apse1`, `ap-south-1` is `aps1`, `us-gov-west-1` is `usgw1`: the area, then each part's
/// compass abbreviation (or the part itself: `us-isob-east-1` is `usisobe1`), then the number.
pub fn region_code(region: &str) -> String {
    let parts: Vec<&str> = region.split('-').collect();
    let Some((number, rest)) = parts.split_last() else {
        return region.to_string();
    };
    let Some((area, middle)) = rest.split_first() else {
        return region.to_string();
    };
    let mut out = (*area).to_string();
    for p in middle {
        out.push_str(match *p {
            "north" => "n",
            "south" => "s",
            "east" => "e",
            "west" => "w",
            "central" => "c",
            "northeast" => "ne",
            "northwest" => "nw",
            "southeast" => "se",
            "southwest" => "sw",
            // GovCloud, as AWS writes it (usgw1).
            "gov" => "g",
            other => other,
        });
    }
    out.push_str(number);
    out
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

/// 12 hex characters of `text`'s SHA-256: what tells launches apart within a client token.
pub fn short_hash(text: &str) -> String {
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(text.as_bytes());
    digest.iter().take(6).map(|b| format!("{b:02x}")).collect()
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
        assert_eq!(role, format!("provision-{name}-apse5-node"));
        assert!(role.len() <= 64, "{}", role.len());
        assert_eq!(
            node_role_name("demo", "us-east-1"),
            "provision-demo-use1-node"
        );
        assert_eq!(
            node_role_name("demo", "us-gov-west-1"),
            "provision-demo-usgw1-node"
        );
        for region in REGIONS {
            for suffix in ["node", "cluster", "ebs-csi", "addons"] {
                let longest = role_name(&name, region, suffix);
                assert!(longest.len() <= 64, "{longest}");
            }
        }
        // A code too long for a 40-character name: a hash of the region, still unique.
        let odd = role_name(&name, "eu-isoe-northwest-12", "ebs-csi");
        assert!(odd.len() <= 64, "{odd}");
        assert_ne!(odd, role_name(&name, "eu-isoe-northwest-13", "ebs-csi"));
    }

    #[test]
    fn bucket_names_fit_s3s_limit_and_tell_accounts_and_regions_apart() {
        assert_eq!(
            backup_bucket_name("demo", "us-east-1", "123456789012"),
            "provision-demo-use1-123456789012"
        );
        let name = "a".repeat(40);
        let mut seen = std::collections::BTreeSet::new();
        for region in REGIONS {
            for account in ["123456789012", "210987654321"] {
                let b = backup_bucket_name(&name, region, account);
                assert!(b.len() <= 63, "{b}");
                assert!(
                    b.bytes()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-'),
                    "{b}"
                );
                assert!(seen.insert(b.clone()), "{b} twice");
            }
        }
    }

    /// Every region AWS has announced (commercial, China, GovCloud, ISO), November 2026.
    const REGIONS: &[&str] = &[
        "af-south-1",
        "ap-east-1",
        "ap-east-2",
        "ap-northeast-1",
        "ap-northeast-2",
        "ap-northeast-3",
        "ap-south-1",
        "ap-south-2",
        "ap-southeast-1",
        "ap-southeast-2",
        "ap-southeast-3",
        "ap-southeast-4",
        "ap-southeast-5",
        "ap-southeast-6",
        "ap-southeast-7",
        "ca-central-1",
        "ca-west-1",
        "eu-central-1",
        "eu-central-2",
        "eu-north-1",
        "eu-south-1",
        "eu-south-2",
        "eu-west-1",
        "eu-west-2",
        "eu-west-3",
        "il-central-1",
        "me-central-1",
        "me-south-1",
        "mx-central-1",
        "sa-east-1",
        "us-east-1",
        "us-east-2",
        "us-west-1",
        "us-west-2",
        "cn-north-1",
        "cn-northwest-1",
        "us-gov-east-1",
        "us-gov-west-1",
        "us-iso-east-1",
        "us-iso-west-1",
        "us-isob-east-1",
        "eu-isoe-west-1",
        "us-isof-south-1",
        "us-isof-east-1",
        "eusc-de-east-1",
    ];

    /// The pairs that shared a name when the region was shortened to its initials (`as1` was
    /// ap-south-1, ap-southeast-1 and af-south-1) now have names of their own; so has every
    /// region.
    #[test]
    fn no_two_regions_share_a_role_name() {
        for (a, b) in [
            ("ap-south-1", "ap-southeast-1"),
            ("ap-south-1", "af-south-1"),
            ("ap-southeast-1", "af-south-1"),
            ("ap-south-2", "ap-southeast-2"),
            ("cn-north-1", "cn-northwest-1"),
            ("me-central-1", "mx-central-1"),
        ] {
            assert_ne!(node_role_name("x", a), node_role_name("x", b), "{a} {b}");
        }
        for r in REGIONS {
            assert!(crate::core::spec::is_region(r), "{r} is a region");
        }
        assert!(!crate::core::spec::is_region("zz-nowhere-1"));
        let mut seen = std::collections::HashMap::new();
        for r in REGIONS {
            if let Some(other) = seen.insert(region_code(r), *r) {
                panic!("{r} and {other} are both {}", region_code(r));
            }
        }
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
