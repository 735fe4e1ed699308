//! The documents of our inline role policies, scoped to the cluster's own names.

/// The partition and account of an IAM role ARN (`arn:PARTITION:iam::ACCOUNT:role/...`).
fn role_arn_parts(role_arn: &str) -> Option<(&str, &str)> {
    let mut parts = role_arn.splitn(6, ':');
    let (arn, partition, service, _, account) = (
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
    );
    (arn == "arn" && service == "iam" && !account.is_empty()).then_some((partition, account))
}

/// `ssm:GetParameter` on `parameters` (the bootstrap secret and, with the logging add-on, the
/// log writer's password: the control plane installs the log shipper), only for requests made
/// with the role's credentials from one instance (`ec2:SourceInstanceARN`), so that workers
/// sharing the role cannot read the CA key. With `snapshots` (the bucket's name and the
/// cluster's id): also the etcd snapshots of this cluster, and only those. Partition and account
/// come from the role's ARN; `None` if it is not an IAM role ARN.
pub fn instance_reads(
    role_arn: &str,
    region: &str,
    parameters: &[&str],
    instance_id: &str,
    snapshots: Option<(&str, &str)>,
) -> Option<String> {
    let (partition, account) = role_arn_parts(role_arn)?;
    let only = serde_json::json!({"StringEquals": {"ec2:SourceInstanceARN": format!("arn:{partition}:ec2:{region}:{account}:instance/{instance_id}")}});
    let mut statements = vec![serde_json::json!({
        "Sid": "ControlPlaneReadsTheClusterCA",
        "Effect": "Allow",
        "Action": "ssm:GetParameter",
        "Resource": if parameters.len() == 1 {
            serde_json::json!(format!("arn:{partition}:ssm:{region}:{account}:parameter{}", parameters[0]))
        } else {
            serde_json::json!(parameters.iter().map(|p| format!("arn:{partition}:ssm:{region}:{account}:parameter{p}")).collect::<Vec<_>>())
        },
        "Condition": only,
    })];
    if let Some((b, cluster_id)) = snapshots {
        // Its own cluster's snapshots only: no listing, no delete, nothing outside the prefix
        // (not even an earlier cluster's of the same name, kept with `down --keep-backups`).
        statements.push(serde_json::json!({
            "Sid": "ControlPlaneSavesAndRestoresEtcd",
            "Effect": "Allow",
            "Action": ["s3:PutObject", "s3:GetObject"],
            "Resource": format!(
                "arn:{partition}:s3:::{b}/{}*",
                crate::core::kinds::backup_bucket::snapshot_prefix(cluster_id)
            ),
            // And only in this account's bucket of that name.
            "Condition": {"StringEquals": {
                "ec2:SourceInstanceARN": format!("arn:{partition}:ec2:{region}:{account}:instance/{instance_id}"),
                "s3:ResourceAccount": account,
            }},
        }));
    }
    let doc = serde_json::json!({
        "Version": "2012-10-17",
        "Statement": statements,
    });
    Some(doc.to_string())
}

/// The node role's boot reports (`core::progress`): an instance may create a parameter under
/// `path` only tagged with its own ARN (`ec2:SourceInstanceARN`) and the cluster's, and
/// overwrite only a parameter tagged with its own ARN, so no node can change another's report.
/// `None` if `role_arn` is not an IAM role ARN.
pub fn node_reports(role_arn: &str, region: &str, path: &str, cluster: &str) -> Option<String> {
    let (partition, account) = role_arn_parts(role_arn)?;
    let resource = format!("arn:{partition}:ssm:{region}:{account}:parameter{path}/*");
    let doc = serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "NodesCreateOnlyTheirOwnReport",
                "Effect": "Allow",
                "Action": "ssm:PutParameter",
                "Resource": resource,
                "Condition": {
                    "StringEquals": {
                        "aws:RequestTag/provision:instance": "${ec2:SourceInstanceARN}",
                        "aws:RequestTag/provision:cluster": cluster,
                    },
                    "ForAllValues:StringEquals": {
                        "aws:TagKeys": ["provision:cluster", "provision:instance"],
                    },
                },
            },
            {
                // PutParameter with tags also needs AddTagsToResource: only on a parameter
                // that has no instance tag yet (its creation), never to retag another's.
                "Sid": "NodesTagOnlyTheirNewReport",
                "Effect": "Allow",
                "Action": "ssm:AddTagsToResource",
                "Resource": resource,
                "Condition": {
                    "StringEquals": {
                        "aws:RequestTag/provision:instance": "${ec2:SourceInstanceARN}",
                    },
                    "Null": {"aws:ResourceTag/provision:instance": "true"},
                    "ForAllValues:StringEquals": {
                        "aws:TagKeys": ["provision:cluster", "provision:instance"],
                    },
                },
            },
            {
                "Sid": "NodesOverwriteOnlyTheirOwnReport",
                "Effect": "Allow",
                "Action": "ssm:PutParameter",
                "Resource": resource,
                "Condition": {
                    "StringEquals": {"aws:ResourceTag/provision:instance": "${ec2:SourceInstanceARN}"},
                },
            },
        ],
    });
    Some(doc.to_string())
}

/// What the SSM agent calls (AmazonSSMManagedInstanceCore's actions for Run Command, Session
/// Manager and the agent's own registration, without `ssm:GetParameter` and
/// `ssm:GetParameters`). Its APIs take no resource but `*`. `None` if `role_arn` is not a role's.
pub fn ssm_agent(role_arn: &str) -> Option<String> {
    role_arn_parts(role_arn)?;
    let doc = serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "SsmAgentRegistersAndRunsCommands",
                "Effect": "Allow",
                "Action": [
                    "ssm:UpdateInstanceInformation",
                    "ssm:ListAssociations",
                    "ssm:ListInstanceAssociations",
                    "ssm:DescribeAssociation",
                    "ssm:UpdateAssociationStatus",
                    "ssm:UpdateInstanceAssociationStatus",
                    "ssm:GetDocument",
                    "ssm:DescribeDocument",
                ],
                "Resource": "*",
            },
            {
                "Sid": "SsmAgentReceivesCommands",
                "Effect": "Allow",
                "Action": [
                    "ec2messages:AcknowledgeMessage",
                    "ec2messages:DeleteMessage",
                    "ec2messages:FailMessage",
                    "ec2messages:GetEndpoint",
                    "ec2messages:GetMessages",
                    "ec2messages:SendReply",
                ],
                "Resource": "*",
            },
            {
                "Sid": "SessionManagerChannels",
                "Effect": "Allow",
                "Action": [
                    "ssmmessages:CreateControlChannel",
                    "ssmmessages:CreateDataChannel",
                    "ssmmessages:OpenControlChannel",
                    "ssmmessages:OpenDataChannel",
                ],
                "Resource": "*",
            },
        ],
    });
    Some(doc.to_string())
}

/// The add-on role's inline policy: `ec2:DescribeInstances` (and zones) for Prometheus's EC2
/// discovery, which IAM cannot narrow to resources, and `ssm:GetParameter` on the add-ons'
/// passwords only. `None` if `role_arn` is not an IAM role ARN.
pub fn addons_access(role_arn: &str, region: &str, parameter: &str) -> Option<String> {
    let (partition, account) = role_arn_parts(role_arn)?;
    let doc = serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "PrometheusDiscoversTheClusterInstances",
                "Effect": "Allow",
                "Action": ["ec2:DescribeInstances", "ec2:DescribeAvailabilityZones"],
                "Resource": "*",
            },
            {
                "Sid": "AddonsReadTheirPasswords",
                "Effect": "Allow",
                "Action": "ssm:GetParameter",
                "Resource": format!("arn:{partition}:ssm:{region}:{account}:parameter{parameter}"),
            },
        ],
    });
    Some(doc.to_string())
}

/// The EKS node role's inline policy for the log shipper: `ssm:GetParameter` on the add-ons'
/// parameter only.
pub fn log_writer(role_arn: &str, region: &str, parameter: &str) -> Option<String> {
    let (partition, account) = role_arn_parts(role_arn)?;
    Some(
        serde_json::json!({
            "Version": "2012-10-17",
            "Statement": [{
                "Sid": "NodesReadTheLogShipperPassword",
                "Effect": "Allow",
                "Action": "ssm:GetParameter",
                "Resource": format!("arn:{partition}:ssm:{region}:{account}:parameter{parameter}"),
            }],
        })
        .to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_may_write_only_its_own_report_under_the_clusters_path() {
        let doc = node_reports(
            "arn:aws:iam::123456789012:role/provision-c-use1-node",
            "us-east-1",
            "/provision/c/nodes",
            "c",
        )
        .unwrap();
        let v: serde_json::Value = serde_json::from_str(&doc).unwrap();
        let st = v["Statement"].as_array().unwrap();
        assert_eq!(st.len(), 3);
        for s in st {
            assert_eq!(
                s["Resource"],
                "arn:aws:ssm:us-east-1:123456789012:parameter/provision/c/nodes/*"
            );
            assert_ne!(s["Action"], "ssm:*");
        }
        let by = |sid: &str| st.iter().find(|s| s["Sid"] == sid).unwrap();
        let create = by("NodesCreateOnlyTheirOwnReport");
        assert_eq!(
            create["Condition"]["StringEquals"]["aws:RequestTag/provision:instance"],
            "${ec2:SourceInstanceARN}"
        );
        let tag = by("NodesTagOnlyTheirNewReport");
        assert_eq!(tag["Action"], "ssm:AddTagsToResource");
        assert_eq!(
            tag["Condition"]["Null"]["aws:ResourceTag/provision:instance"],
            "true"
        );
        let overwrite = by("NodesOverwriteOnlyTheirOwnReport");
        assert_eq!(overwrite["Action"], "ssm:PutParameter");
        assert_eq!(
            overwrite["Condition"]["StringEquals"]["aws:ResourceTag/provision:instance"],
            "${ec2:SourceInstanceARN}"
        );
        assert!(node_reports("not-an-arn", "us-east-1", "/p", "c").is_none());
    }

    #[test]
    fn the_control_plane_read_is_scoped_to_the_parameter_and_the_instance() {
        let doc = instance_reads(
            "arn:aws:iam::123456789012:role/provision/provision-demo-use1-node",
            "us-east-1",
            &["/provision/demo/bootstrap"],
            "i-0abc",
            Some(("provision-demo-use1-123456789012", "abcdefghijkl")),
        )
        .unwrap();
        let v: serde_json::Value = serde_json::from_str(&doc).unwrap();
        let st = &v["Statement"][0];
        assert_eq!(st["Action"], "ssm:GetParameter");
        assert_eq!(
            st["Resource"],
            "arn:aws:ssm:us-east-1:123456789012:parameter/provision/demo/bootstrap"
        );
        assert_eq!(
            st["Condition"]["StringEquals"]["ec2:SourceInstanceARN"],
            "arn:aws:ec2:us-east-1:123456789012:instance/i-0abc"
        );
        // The snapshots: write and read under this cluster's prefix, from the control plane
        // only; no listing, no delete.
        let s3 = &v["Statement"][1];
        assert_eq!(
            s3["Action"],
            serde_json::json!(["s3:PutObject", "s3:GetObject"])
        );
        assert_eq!(
            s3["Resource"],
            "arn:aws:s3:::provision-demo-use1-123456789012/etcd/abcdefghijkl/*"
        );
        assert_eq!(
            s3["Condition"]["StringEquals"]["ec2:SourceInstanceARN"],
            st["Condition"]["StringEquals"]["ec2:SourceInstanceARN"]
        );
        assert_eq!(
            s3["Condition"]["StringEquals"]["s3:ResourceAccount"],
            "123456789012"
        );
        assert_eq!(v["Statement"].as_array().map(Vec::len), Some(2));
        let gov = instance_reads(
            "arn:aws-us-gov:iam::1:role/r",
            "us-gov-west-1",
            &["/p"],
            "i-1",
            None,
        )
        .unwrap();
        assert!(gov.contains("arn:aws-us-gov:ssm:us-gov-west-1:1:parameter/p"));
        assert!(instance_reads("not-an-arn", "us-east-1", &["/p"], "i-1", None).is_none());
    }
}
