//! Looking at what a run left in the emulator, with the SDK.

use super::{REGION, emulator};

/// SDK clients on the emulator, for inspecting what the binary did.
pub async fn sdk() -> provision::aws::Clients {
    provision::aws::clients_for_endpoint(REGION, &emulator()).await
}

/// An instance's user data, as launched.
pub async fn user_data(c: &provision::aws::Clients, instance: &str) -> String {
    use base64::Engine as _;
    let out = c
        .ec2
        .describe_instance_attribute()
        .instance_id(instance)
        .attribute(aws_sdk_ec2::types::InstanceAttributeName::UserData)
        .send()
        .await
        .unwrap();
    let b64 = out.user_data().and_then(|v| v.value()).unwrap_or_default();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    String::from_utf8(gunzip(&bytes)).unwrap()
}

/// The scripts of the Run Commands sent to `instance`, oldest first (AWS-RunShellScript,
/// through base64 to bash, as `core::cloudinit::run_command` writes them).
pub async fn sent_scripts(c: &provision::aws::Clients, instance: &str) -> Vec<String> {
    use base64::Engine as _;
    let commands = c
        .ssm
        .list_commands()
        .instance_id(instance)
        .send()
        .await
        .unwrap();
    commands
        .commands()
        .iter()
        .map(|cmd| {
            assert_eq!(cmd.document_name(), Some("AWS-RunShellScript"));
            let line = &cmd.parameters().unwrap()["commands"][0];
            let b64 = line
                .split("echo ")
                .nth(1)
                .and_then(|l| l.split(' ').next())
                .unwrap();
            String::from_utf8(
                base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .unwrap(),
            )
            .unwrap()
        })
        .collect()
}

/// The script of the last Run Command sent to `instance`.
pub async fn sent_script(c: &provision::aws::Clients, instance: &str) -> String {
    sent_scripts(c, instance)
        .await
        .pop()
        .expect("a command was sent")
}

/// Takes the tag `key` off the EC2 resource `id`.
pub async fn delete_tag(c: &provision::aws::Clients, id: &str, key: &str) {
    c.ec2
        .delete_tags()
        .resources(id)
        .tags(aws_sdk_ec2::types::Tag::builder().key(key).build())
        .send()
        .await
        .unwrap();
}

/// The text of packed user data: instances get their document gzip-compressed (what
/// cloud-init decompresses at boot). Fails on anything else, so a test sees it if it changes.
pub fn gunzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Read as _;
    assert!(
        bytes.starts_with(&[0x1f, 0x8b]),
        "user data is gzip-compressed"
    );
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .unwrap();
    out
}

/// Whether EC2 `tags` hold `key` with `value`.
pub fn has_tag(tags: &[aws_sdk_ec2::types::Tag], key: &str, value: &str) -> bool {
    tags.iter()
        .any(|t| t.key() == Some(key) && t.value() == Some(value))
}

/// The value of `key` among EC2 tags.
pub fn tag_value<'a>(tags: &'a [aws_sdk_ec2::types::Tag], key: &str) -> Option<&'a str> {
    tags.iter()
        .find(|t| t.key() == Some(key))
        .and_then(|t| t.value())
}

/// Writes a node's boot report (`core::progress`) as the node would, tagged with the cluster.
pub async fn put_report(
    c: &provision::aws::Clients,
    cluster: &str,
    instance: &str,
    report: &serde_json::Value,
) {
    c.ssm
        .put_parameter()
        .name(format!(
            "{}/{instance}",
            provision::core::progress::nodes_path(cluster)
        ))
        .value(report.to_string())
        .r#type(aws_sdk_ssm::types::ParameterType::String)
        .tags(
            aws_sdk_ssm::types::Tag::builder()
                .key("provision:cluster")
                .value(cluster)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
}

/// A VPC of nobody's (no tags), for checking that a run leaves it alone. Returns its id.
pub async fn untagged_vpc(c: &provision::aws::Clients, cidr: &str) -> String {
    c.ec2
        .create_vpc()
        .cidr_block(cidr)
        .send()
        .await
        .unwrap()
        .vpc()
        .unwrap()
        .vpc_id()
        .unwrap()
        .to_string()
}

/// An IAM role of nobody's (no tags) named `name`, as someone else would have made it.
pub async fn untagged_role(c: &provision::aws::Clients, name: &str) {
    c.iam
        .create_role()
        .role_name(name)
        .assume_role_policy_document(r#"{"Version":"2012-10-17","Statement":[]}"#)
        .send()
        .await
        .unwrap();
}

/// The ARNs of the managed policies attached to `role`, sorted.
pub async fn role_policies(c: &provision::aws::Clients, role: &str) -> Vec<String> {
    attached_policies(c, role, aws_sdk_iam::types::AttachedPolicy::policy_arn).await
}

/// The names of the managed policies attached to `role`, sorted.
pub async fn role_policy_names(c: &provision::aws::Clients, role: &str) -> Vec<String> {
    attached_policies(c, role, aws_sdk_iam::types::AttachedPolicy::policy_name).await
}

async fn attached_policies(
    c: &provision::aws::Clients,
    role: &str,
    field: fn(&aws_sdk_iam::types::AttachedPolicy) -> Option<&str>,
) -> Vec<String> {
    let out = c
        .iam
        .list_attached_role_policies()
        .role_name(role)
        .send()
        .await
        .unwrap();
    let mut v: Vec<String> = out
        .attached_policies()
        .iter()
        .map(|p| field(p).unwrap().to_string())
        .collect();
    v.sort();
    v
}

/// The document of `role`'s inline policy `policy`, as IAM returns it (URL-encoded by the
/// emulator; see `url_decode`).
pub async fn inline_policy(c: &provision::aws::Clients, role: &str, policy: &str) -> String {
    c.iam
        .get_role_policy()
        .role_name(role)
        .policy_name(policy)
        .send()
        .await
        .unwrap()
        .policy_document()
        .to_string()
}

/// `s` with its %XX escapes decoded (a policy document as IAM returns it).
pub fn url_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            out.push(
                u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap(), 16).unwrap(),
            );
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

/// The cluster's security group of logical id `logical`.
pub fn security_group<'a>(
    obs: &'a provision::core::kinds::Observed,
    logical: &str,
) -> &'a provision::core::kinds::security_group::ObsSg {
    obs.security_groups
        .iter()
        .find(|g| g.logical.as_deref() == Some(logical))
        .unwrap_or_else(|| panic!("no {logical}"))
}

/// The cluster's subnet of logical id `logical`.
pub fn subnet<'a>(
    obs: &'a provision::core::kinds::Observed,
    logical: &str,
) -> &'a provision::core::kinds::subnet::ObsSubnet {
    obs.subnets
        .iter()
        .find(|s| s.logical.as_deref() == Some(logical))
        .unwrap_or_else(|| panic!("no {logical}"))
}

/// (port, source) of an observed group's ingress rules, sources as CIDRs or group ids, sorted.
pub fn rules_of(g: &provision::core::kinds::security_group::ObsSg) -> Vec<(i32, String)> {
    let mut v: Vec<(i32, String)> = g
        .rules
        .iter()
        .map(|r| (r.from_port, r.source.clone()))
        .collect();
    v.sort();
    v
}

/// Terminates the cluster's live control plane instance (as if it were lost). Returns its id.
pub async fn terminate_the_control_plane(c: &provision::aws::Clients, cluster: &str) -> String {
    let obs = tagged(c, cluster).await;
    let master = obs.live_instances("master").next().unwrap().id.clone();
    c.ec2
        .terminate_instances()
        .instance_ids(&master)
        .send()
        .await
        .unwrap();
    master
}

/// The EKS cluster `name`, as EKS describes it.
pub async fn eks_cluster_of(
    c: &provision::aws::Clients,
    name: &str,
) -> aws_sdk_eks::types::Cluster {
    c.eks
        .describe_cluster()
        .name(name)
        .send()
        .await
        .unwrap()
        .cluster()
        .unwrap()
        .clone()
}

/// The node group `up` made for the EKS cluster `cluster` (`<cluster>-nodes`), as EKS describes it.
pub async fn nodegroup_of(
    c: &provision::aws::Clients,
    cluster: &str,
) -> aws_sdk_eks::types::Nodegroup {
    c.eks
        .describe_nodegroup()
        .cluster_name(cluster)
        .nodegroup_name(format!("{cluster}-nodes"))
        .send()
        .await
        .unwrap()
        .nodegroup()
        .unwrap()
        .clone()
}

/// Everything tagged with the cluster.
pub async fn tagged(
    c: &provision::aws::Clients,
    cluster: &str,
) -> provision::core::kinds::Observed {
    let mut scope = provision::aws::kind::Scope::down(cluster, REGION);
    scope.vpc_attributes = true;
    provision::aws::discover::observe(c, &scope).await.unwrap()
}

/// The cluster's bootstrap secret (`param`), decrypted.
pub async fn read_bootstrap(c: &provision::aws::Clients, param: &str) -> serde_json::Value {
    let p = c
        .ssm
        .get_parameter()
        .name(param)
        .with_decryption(true)
        .send()
        .await
        .unwrap();
    serde_json::from_str::<serde_json::Value>(p.parameter().unwrap().value().unwrap()).unwrap()
}

/// Where the snapshots of the cluster `name` go (`etcd/CLUSTER-ID/`, the id from its bootstrap
/// secret).
pub async fn snapshot_prefix(c: &provision::aws::Clients, name: &str) -> String {
    let b = read_bootstrap(c, &format!("/provision/{name}/bootstrap")).await;
    provision::core::kinds::backup_bucket::snapshot_prefix(b["cluster_id"].as_str().unwrap())
}
