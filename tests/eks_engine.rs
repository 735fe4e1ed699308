//! `kind = "eks"` end to end: the real binary against the emulator (moto, with the in-process
//! add-on and access-entry extension of `localstack/emulator.py`).

mod common;

use std::os::unix::fs::PermissionsExt as _;

use common::{Cluster, sdk, tagged};
use provision::core::tags;

const NODEGROUP: &str = r#"
[eks.nodegroup]
instance_types = ["t3.large"]
min = 1
max = 3
desired = 2
labels = { "example.com/pool" = "default" }

[[eks.access]]
principal_arn = "arn:aws:iam::123456789012:role/platform-admins"
policy = "edit"
namespaces = ["team-a"]
"#;

fn eks_cluster(prefix: &str, network: &str) -> Cluster {
    Cluster::eks(prefix, network, &format!("version = \"1.35\"\n{NODEGROUP}"))
}

async fn role_policies(c: &provision::aws::Clients, role: &str) -> Vec<String> {
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
        .map(|p| p.policy_arn().unwrap().to_string())
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread")]
async fn eks_up_builds_the_cluster_and_a_second_up_changes_nothing_and_down_leaves_nothing() {
    let cl = eks_cluster("eks", "availability_zones = 2");
    let c = sdk().await;
    // Someone else's VPC and EKS cluster: down must not touch them.
    let foreign_vpc = c
        .ec2
        .create_vpc()
        .cidr_block("10.99.0.0/16")
        .send()
        .await
        .unwrap()
        .vpc()
        .unwrap()
        .vpc_id()
        .unwrap()
        .to_string();

    let up = cl.up();
    let s = up.summary();
    assert_eq!(s["kind"], "eks");
    let endpoint = s["api_endpoint"]
        .as_str()
        .expect("the endpoint is reported");
    assert!(endpoint.starts_with("https://"), "{endpoint}");

    // The cluster: ACTIVE, tagged, in every subnet, API endpoint limited to the admin CIDRs.
    let k = c
        .eks
        .describe_cluster()
        .name(&cl.name)
        .send()
        .await
        .unwrap();
    let k = k.cluster().unwrap();
    assert_eq!(k.status().unwrap().as_str(), "ACTIVE");
    assert_eq!(k.version(), Some("1.35"));
    assert_eq!(
        k.tags().unwrap().get(tags::CLUSTER_TAG).map(String::as_str),
        Some(cl.name.as_str())
    );
    let vpc_cfg = k.resources_vpc_config().unwrap();
    assert_eq!(vpc_cfg.subnet_ids().len(), 2);
    assert_eq!(vpc_cfg.public_access_cidrs(), ["198.51.100.0/24"]);
    let region_short = "ue1";
    let cluster_role = format!("provision-{}-{region_short}-cluster", cl.name);
    assert!(k.role_arn().unwrap().ends_with(&format!("/{cluster_role}")));

    // Roles with exactly the managed policies EKS needs.
    assert_eq!(
        role_policies(&c, &cluster_role).await,
        ["arn:aws:iam::aws:policy/AmazonEKSClusterPolicy"]
    );
    let node_role = tags::node_role_name(&cl.name, "us-east-1");
    assert_eq!(
        role_policies(&c, &node_role).await,
        [
            "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryReadOnly",
            "arn:aws:iam::aws:policy/AmazonEKSWorkerNodePolicy",
            "arn:aws:iam::aws:policy/AmazonEKS_CNI_Policy",
        ]
    );
    let csi_role = format!("provision-{}-{region_short}-ebs-csi", cl.name);
    assert_eq!(
        role_policies(&c, &csi_role).await,
        ["arn:aws:iam::aws:policy/service-role/AmazonEBSCSIDriverPolicy"]
    );
    let trust = c.iam.get_role().role_name(&csi_role).send().await.unwrap();
    let doc = trust.role().unwrap().assume_role_policy_document().unwrap();
    let doc = doc
        .replace("%22", "\"")
        .replace("%3A", ":")
        .replace("%2F", "/");
    assert!(
        doc.contains("pods.eks.amazonaws.com") && doc.contains("sts:TagSession"),
        "{doc}"
    );

    // The node group: AL2023, 1/3/2, in the public subnets, with its labels.
    let ng = c
        .eks
        .describe_nodegroup()
        .cluster_name(&cl.name)
        .nodegroup_name(format!("{}-nodes", cl.name))
        .send()
        .await
        .unwrap();
    let ng = ng.nodegroup().unwrap();
    let sc = ng.scaling_config().unwrap();
    assert_eq!(
        (sc.min_size(), sc.max_size(), sc.desired_size()),
        (Some(1), Some(3), Some(2))
    );
    assert_eq!(ng.ami_type().unwrap().as_str(), "AL2023_x86_64_STANDARD");
    assert_eq!(ng.instance_types(), ["t3.large"]);
    assert!(ng.node_role().unwrap().ends_with(&format!("/{node_role}")));
    assert_eq!(
        ng.labels()
            .unwrap()
            .get("example.com/pool")
            .map(String::as_str),
        Some("default")
    );

    // Add-ons: the defaults, the EBS CSI driver with its pod identity.
    let addons = c
        .eks
        .list_addons()
        .cluster_name(&cl.name)
        .send()
        .await
        .unwrap();
    let mut names = addons.addons().to_vec();
    names.sort();
    assert_eq!(
        names,
        [
            "aws-ebs-csi-driver",
            "coredns",
            "eks-pod-identity-agent",
            "kube-proxy",
            "vpc-cni"
        ]
    );
    let csi = c
        .eks
        .describe_addon()
        .cluster_name(&cl.name)
        .addon_name("aws-ebs-csi-driver")
        .send()
        .await
        .unwrap();
    let assoc = csi.addon().unwrap().pod_identity_associations();
    assert_eq!(assoc.len(), 1);
    assert!(
        assoc[0].starts_with("ebs-csi-controller-sa=")
            && assoc[0].ends_with(&format!("/{csi_role}")),
        "{assoc:?}"
    );
    let entries = c
        .eks
        .list_access_entries()
        .cluster_name(&cl.name)
        .send()
        .await
        .unwrap();
    assert_eq!(
        entries.access_entries(),
        ["arn:aws:iam::123456789012:role/platform-admins"]
    );

    // Subnets tagged for internet-facing load balancers.
    let obs = tagged(&c, &cl.name).await;
    assert_eq!(obs.subnets.len(), 2);
    let subnets = c
        .ec2
        .describe_subnets()
        .set_subnet_ids(Some(obs.subnets.iter().map(|s| s.id.clone()).collect()))
        .send()
        .await
        .unwrap();
    for sn in subnets.subnets() {
        assert!(
            sn.tags()
                .iter()
                .any(|t| t.key() == Some("kubernetes.io/role/elb") && t.value() == Some("1")),
            "{:?}",
            sn.tags()
        );
        assert_eq!(sn.map_public_ip_on_launch(), Some(true));
    }
    assert!(
        obs.instances.is_empty(),
        "EKS launches no instances of ours"
    );
    assert!(
        obs.nat_gateways.is_empty() && obs.addresses.is_empty(),
        "no NAT by default"
    );

    // The kubeconfig: 0600, an exec user running `provision token` for this cluster.
    let kc = std::fs::read_to_string(cl.kubeconfig()).unwrap();
    let mode = std::fs::metadata(cl.kubeconfig())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let kc: serde_json::Value = serde_saphyr::from_str(&kc).unwrap();
    let user = &kc["users"][0]["user"]["exec"];
    assert_eq!(user["apiVersion"], "client.authentication.k8s.io/v1beta1");
    assert!(user["command"].as_str().unwrap().ends_with("provision"));
    assert_eq!(
        user["args"],
        serde_json::json!(["token", "--cluster", cl.name, "--region", "us-east-1"])
    );
    assert_eq!(kc["clusters"][0]["cluster"]["server"], endpoint);
    assert!(kc["clusters"][0]["cluster"]["certificate-authority-data"].is_string());

    // A second up finds everything and changes nothing.
    let again = cl.up();
    assert_eq!(
        again.mutating_calls(),
        Vec::<String>::new(),
        "{:?}",
        again.summary()["api_calls"]
    );
    let plan = cl.run(&["plan", "-f", cl.spec_arg()]);
    assert!(plan.ok(), "{}", plan.stderr);
    let changes: Vec<&serde_json::Value> = plan.summary()["plan"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["action"] != "keep")
        .collect();
    assert!(changes.is_empty(), "{changes:?}");

    // down: nothing of ours is left; the foreign VPC is.
    let down = cl.down();
    assert!(down.ok());
    let after = tagged(&c, &cl.name).await;
    assert!(after.is_empty(), "{after:?}");
    assert!(
        c.eks
            .describe_cluster()
            .name(&cl.name)
            .send()
            .await
            .is_err(),
        "the cluster is gone"
    );
    for r in [&cluster_role, &node_role, &csi_role] {
        assert!(
            c.iam.get_role().role_name(r).send().await.is_err(),
            "{r} is gone"
        );
    }
    let vpcs = c
        .ec2
        .describe_vpcs()
        .vpc_ids(&foreign_vpc)
        .send()
        .await
        .unwrap();
    assert_eq!(vpcs.vpcs().len(), 1, "the foreign VPC is untouched");
    c.ec2
        .delete_vpc()
        .vpc_id(&foreign_vpc)
        .send()
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn down_removes_what_kubernetes_made_in_the_vpc_before_the_cluster() {
    let cl = eks_cluster("eks-lb", "availability_zones = 2");
    cl.up();
    let c = sdk().await;
    let obs = tagged(&c, &cl.name).await;
    let vpc = obs.vpcs[0].id.clone();
    let subnets: Vec<String> = obs.subnets.iter().map(|s| s.id.clone()).collect();
    let k8s_tag = format!("kubernetes.io/cluster/{}", cl.name);
    let ec2_tag = |k: &str, v: &str| aws_sdk_ec2::types::Tag::builder().key(k).value(v).build();

    // What the AWS Load Balancer Controller and the in-tree cloud provider would have made.
    let lb_sg = c
        .ec2
        .create_security_group()
        .group_name(format!("k8s-elb-{}", cl.name))
        .description("Security group for Kubernetes ELB")
        .vpc_id(&vpc)
        .tag_specifications(
            aws_sdk_ec2::types::TagSpecification::builder()
                .resource_type(aws_sdk_ec2::types::ResourceType::SecurityGroup)
                .tags(ec2_tag(&k8s_tag, "owned"))
                .build(),
        )
        .send()
        .await
        .unwrap()
        .group_id()
        .unwrap()
        .to_string();
    // The cloud provider lets the load balancer's group reach the nodes: a rule in our group.
    let ours = obs
        .security_groups
        .iter()
        .find(|g| g.logical.as_deref() == Some("sg-control-plane"))
        .unwrap()
        .id
        .clone();
    c.ec2
        .authorize_security_group_ingress()
        .group_id(&ours)
        .ip_permissions(
            aws_sdk_ec2::types::IpPermission::builder()
                .ip_protocol("tcp")
                .from_port(30000)
                .to_port(32767)
                .user_id_group_pairs(
                    aws_sdk_ec2::types::UserIdGroupPair::builder()
                        .group_id(&lb_sg)
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    let v2_tag = |k: &str, v: &str| {
        aws_sdk_elasticloadbalancingv2::types::Tag::builder()
            .key(k)
            .value(v)
            .build()
    };
    let alb = c
        .elbv2
        .create_load_balancer()
        .name(format!("k8s-{}", &cl.name[..cl.name.len().min(20)]))
        .set_subnets(Some(subnets.clone()))
        .security_groups(&lb_sg)
        .tags(v2_tag("elbv2.k8s.aws/cluster", &cl.name))
        .send()
        .await
        .unwrap();
    let alb_arn = alb.load_balancers()[0]
        .load_balancer_arn()
        .unwrap()
        .to_string();
    let tg = c
        .elbv2
        .create_target_group()
        .name(format!("k8s-tg-{}", &cl.name[..cl.name.len().min(20)]))
        .protocol(aws_sdk_elasticloadbalancingv2::types::ProtocolEnum::Http)
        .port(80)
        .vpc_id(&vpc)
        .tags(v2_tag("elbv2.k8s.aws/cluster", &cl.name))
        .send()
        .await
        .unwrap();
    let tg_arn = tg.target_groups()[0]
        .target_group_arn()
        .unwrap()
        .to_string();
    let classic_name: String = format!("a{}", cl.name.replace('-', ""))
        .chars()
        .take(32)
        .collect();
    c.elb
        .create_load_balancer()
        .load_balancer_name(&classic_name)
        .set_subnets(Some(subnets.clone()))
        .security_groups(&lb_sg)
        .listeners(
            aws_sdk_elasticloadbalancing::types::Listener::builder()
                .protocol("TCP")
                .load_balancer_port(80)
                .instance_port(30080)
                .build()
                .unwrap(),
        )
        .tags(
            aws_sdk_elasticloadbalancing::types::Tag::builder()
                .key(&k8s_tag)
                .value("owned")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    // A network interface the VPC CNI left behind.
    let eni = c
        .ec2
        .create_network_interface()
        .subnet_id(&subnets[0])
        .description("aws-K8S-i-0123456789abcdef0")
        .send()
        .await
        .unwrap()
        .network_interface()
        .unwrap()
        .network_interface_id()
        .unwrap()
        .to_string();
    // And a load balancer of another cluster, in another VPC: not ours.
    let other_vpc = c
        .ec2
        .create_vpc()
        .cidr_block("10.98.0.0/16")
        .send()
        .await
        .unwrap()
        .vpc()
        .unwrap()
        .vpc_id()
        .unwrap()
        .to_string();
    let other_subnet = c
        .ec2
        .create_subnet()
        .vpc_id(&other_vpc)
        .cidr_block("10.98.1.0/24")
        .send()
        .await
        .unwrap()
        .subnet()
        .unwrap()
        .subnet_id()
        .unwrap()
        .to_string();
    let other = c
        .elbv2
        .create_load_balancer()
        .name(format!("other-{}", &cl.name[..cl.name.len().min(20)]))
        .subnets(&other_subnet)
        .tags(v2_tag("elbv2.k8s.aws/cluster", "someone-else"))
        .send()
        .await
        .unwrap();
    let other_arn = other.load_balancers()[0]
        .load_balancer_arn()
        .unwrap()
        .to_string();

    let plan = cl.run(&["plan", "--destroy", "-f", cl.spec_arg()]);
    assert!(plan.ok(), "{}", plan.stderr);
    let planned: Vec<String> = plan.summary()["plan"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["aws_id"].as_str().unwrap_or_default().to_string())
        .collect();
    for id in [&alb_arn, &tg_arn, &classic_name, &lb_sg, &eni] {
        assert!(
            planned.contains(id),
            "plan --destroy lists {id}: {planned:?}"
        );
    }
    assert!(!planned.contains(&other_arn));

    let run = cl.run(&["--trace-api-calls", "down", "-f", cl.spec_arg()]);
    assert!(run.ok(), "{}", run.stderr);
    let calls: Vec<String> = run
        .events
        .iter()
        .filter(|e| e["event"] == "api_call")
        .map(|e| e["operation"].as_str().unwrap().to_string())
        .collect();
    let first = |op: &str| {
        calls
            .iter()
            .position(|c| c == op)
            .unwrap_or_else(|| panic!("no {op} in {calls:?}"))
    };
    let last = |op: &str| calls.iter().rposition(|c| c == op).unwrap();
    // Load balancers first, then the node group, add-ons and access entries, then the cluster,
    // then IAM and the network.
    assert!(
        last("DeleteLoadBalancer") < first("DeleteNodegroup"),
        "{calls:?}"
    );
    assert!(last("DeleteTargetGroup") < first("DeleteNodegroup"));
    assert!(first("RevokeSecurityGroupIngress") < first("DeleteNodegroup"));
    assert!(first("DeleteNodegroup") < first("DeleteAddon"));
    assert!(last("DeleteNodegroup") < first("DeleteLaunchTemplate"));
    assert!(last("DeleteAddon") < first("DeleteCluster"));
    assert!(last("DeleteAccessEntry") < first("DeleteCluster"));
    assert!(first("DeleteCluster") < first("DeleteNetworkInterface"));
    assert!(last("DeleteCluster") < first("DetachRolePolicy"));
    assert!(last("DeleteCluster") < first("DeleteSubnet"));
    assert!(last("DeleteNetworkInterface") < first("DeleteSubnet"));

    let after = tagged(&c, &cl.name).await;
    assert!(after.is_empty(), "{after:?}");
    let left = c.elbv2.describe_load_balancers().send().await.unwrap();
    let arns: Vec<&str> = left
        .load_balancers()
        .iter()
        .filter_map(|l| l.load_balancer_arn())
        .collect();
    assert!(!arns.contains(&alb_arn.as_str()));
    assert!(
        arns.contains(&other_arn.as_str()),
        "another cluster's load balancer stays"
    );
    let classic = c.elb.describe_load_balancers().send().await.unwrap();
    assert!(
        !classic
            .load_balancer_descriptions()
            .iter()
            .any(|l| l.load_balancer_name() == Some(classic_name.as_str()))
    );
    assert!(
        c.ec2
            .describe_security_groups()
            .group_ids(&lb_sg)
            .send()
            .await
            .is_err()
    );
    assert!(
        c.ec2
            .describe_network_interfaces()
            .network_interface_ids(&eni)
            .send()
            .await
            .is_err()
    );
    c.elbv2
        .delete_load_balancer()
        .load_balancer_arn(&other_arn)
        .send()
        .await
        .unwrap();
    c.ec2
        .delete_subnet()
        .subnet_id(&other_subnet)
        .send()
        .await
        .unwrap();
    c.ec2.delete_vpc().vpc_id(&other_vpc).send().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn private_subnets_put_the_nodes_behind_one_nat_gateway() {
    let cl = eks_cluster("eks-nat", "availability_zones = 2\nprivate_subnets = true");
    cl.up();
    let c = sdk().await;
    let obs = tagged(&c, &cl.name).await;
    assert_eq!(obs.subnets.len(), 4);
    assert_eq!(obs.addresses.len(), 1, "one Elastic IP");
    let nat = &obs.nat_gateways[0];
    assert_eq!(obs.nat_gateways.len(), 1);
    assert_eq!(nat.state, "available");
    let public0 = obs
        .subnets
        .iter()
        .find(|s| s.logical.as_deref() == Some("subnet-0"))
        .unwrap();
    assert_eq!(
        nat.subnet_id, public0.id,
        "the NAT gateway sits in a public subnet"
    );
    let private: Vec<&provision::core::kinds::subnet::ObsSubnet> = obs
        .subnets
        .iter()
        .filter(|s| {
            s.logical
                .as_deref()
                .is_some_and(|l| l.starts_with("private-subnet-"))
        })
        .collect();
    assert_eq!(private.len(), 2);
    assert!(private.iter().all(|s| !s.map_public_ip));
    let rt = obs
        .route_tables
        .iter()
        .find(|r| r.logical.as_deref() == Some("private-route-table"))
        .unwrap();
    assert_eq!(rt.default_route.as_deref(), Some(nat.id.as_str()));
    assert_eq!(rt.associations.len(), 2);
    let tags = c
        .ec2
        .describe_subnets()
        .subnet_ids(&private[0].id)
        .send()
        .await
        .unwrap();
    assert!(
        tags.subnets()[0]
            .tags()
            .iter()
            .any(|t| t.key() == Some("kubernetes.io/role/internal-elb") && t.value() == Some("1"))
    );
    let ng = c
        .eks
        .describe_nodegroup()
        .cluster_name(&cl.name)
        .nodegroup_name(format!("{}-nodes", cl.name))
        .send()
        .await
        .unwrap();
    let mut ng_subnets = ng.nodegroup().unwrap().subnets().to_vec();
    ng_subnets.sort();
    let mut want: Vec<String> = private.iter().map(|s| s.id.clone()).collect();
    want.sort();
    assert_eq!(ng_subnets, want, "nodes in the private subnets");
    let k = c
        .eks
        .describe_cluster()
        .name(&cl.name)
        .send()
        .await
        .unwrap();
    assert_eq!(
        k.cluster()
            .unwrap()
            .resources_vpc_config()
            .unwrap()
            .subnet_ids()
            .len(),
        4,
        "the control plane gets every subnet"
    );

    let again = cl.up();
    assert_eq!(again.mutating_calls(), Vec::<String>::new());

    cl.down();
    let after = tagged(&c, &cl.name).await;
    assert!(after.is_empty(), "{after:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_kubeadm_cluster_is_not_turned_into_an_eks_one() {
    let kubeadm = Cluster::new("switch", 1, "");
    kubeadm.up();
    let text = std::fs::read_to_string(&kubeadm.spec).unwrap();
    let (head, _) = text.split_once("[kubeadm]").unwrap();
    let eks = head.replace("kind = \"kubeadm\"", "kind = \"eks\"") + &format!("[eks]\n{NODEGROUP}");
    std::fs::write(&kubeadm.spec, eks).unwrap();
    let r = kubeadm.run(&["up", "-f", kubeadm.spec_arg()]);
    assert_eq!(r.code, Some(1), "{}", r.stderr);
    assert!(r.stderr.contains("kind = \"kubeadm\""), "{}", r.stderr);
    assert_eq!(r.mutating_calls(), Vec::<String>::new());
    // down needs no spec kind: it removes the kubeadm cluster.
    kubeadm.down();
    assert!(tagged(&sdk().await, &kubeadm.name).await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn changed_scaling_labels_and_access_are_applied_in_place() {
    let cl = eks_cluster("eks-change", "availability_zones = 2");
    cl.up();
    let spec = std::fs::read_to_string(&cl.spec).unwrap();
    let changed = spec
        .replace("desired = 2", "desired = 3")
        .replace(
            r#"labels = { "example.com/pool" = "default" }"#,
            r#"labels = { "example.com/tier" = "web" }"#,
        )
        .replace(
            "principal_arn = \"arn:aws:iam::123456789012:role/platform-admins\"\npolicy = \"edit\"\nnamespaces = [\"team-a\"]",
            "principal_arn = \"arn:aws:iam::123456789012:role/auditors\"\npolicy = \"view\"",
        );
    assert_ne!(spec, changed);
    std::fs::write(&cl.spec, changed).unwrap();
    let plan = cl.run(&["plan", "-f", cl.spec_arg()]);
    let updates: Vec<String> = plan.summary()["plan"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["action"] == "update")
        .map(|i| i["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        updates,
        ["access-entries", "nodegroup"],
        "{:?}",
        plan.summary()["plan"]
    );

    let up = cl.up();
    let c = sdk().await;
    let ng = c
        .eks
        .describe_nodegroup()
        .cluster_name(&cl.name)
        .nodegroup_name(format!("{}-nodes", cl.name))
        .send()
        .await
        .unwrap();
    let ng = ng.nodegroup().unwrap();
    assert_eq!(ng.scaling_config().unwrap().desired_size(), Some(3));
    let labels = ng.labels().unwrap();
    assert_eq!(
        labels.get("example.com/tier").map(String::as_str),
        Some("web")
    );
    assert!(!labels.contains_key("example.com/pool"), "{labels:?}");
    assert_eq!(
        up.calls("EKS", "UpdateNodegroupConfig"),
        1,
        "one call for both"
    );
    // The removed entry (ours) is gone; the new one has its policy.
    let entries = c
        .eks
        .list_access_entries()
        .cluster_name(&cl.name)
        .send()
        .await
        .unwrap();
    assert_eq!(
        entries.access_entries(),
        ["arn:aws:iam::123456789012:role/auditors"]
    );
    let again = cl.up();
    assert_eq!(again.mutating_calls(), Vec::<String>::new());
    cl.down();
}

/// Answers every request with 403 AccessDenied, in the shape of the protocol (`json`: EKS's
/// REST-JSON, else the query protocol's XML of the load balancer APIs), on a thread so that the
/// binary, a child process, can reach it.
fn denying_endpoint(json: bool) -> String {
    use std::io::{Read as _, Write as _};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { return };
            let mut buf = [0u8; 65536];
            let _ = s.set_read_timeout(Some(std::time::Duration::from_millis(200)));
            let _ = s.read(&mut buf);
            let (ctype, extra, body) = if json {
                (
                    "application/json",
                    "x-amzn-ErrorType: AccessDeniedException\r\n",
                    r#"{"message":"User is not authorized to perform: eks:DescribeCluster"}"#
                        .to_string(),
                )
            } else {
                (
                    "text/xml",
                    "",
                    "<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>User is not authorized to perform: elasticloadbalancing:DescribeLoadBalancers</Message></Error><RequestId>r</RequestId></ErrorResponse>".to_string(),
                )
            };
            let resp = format!(
                "HTTP/1.1 403 Forbidden\r\nContent-Type: {ctype}\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = s.write_all(resp.as_bytes());
        }
    });
    url
}

/// Someone with only the kubeadm permissions removes a kubeadm cluster: the EKS and load
/// balancer lookups are denied, `down` says so and removes everything else.
#[tokio::test(flavor = "multi_thread")]
async fn down_of_a_kubeadm_cluster_needs_no_eks_or_elb_permissions() {
    let cl = Cluster::new("noeks", 1, "");
    cl.up();
    let json = denying_endpoint(true);
    let xml = denying_endpoint(false);
    let mut cmd = cl.command(&["down", "-f", cl.spec_arg()]);
    cmd.env("AWS_ENDPOINT_URL_EKS", &json)
        .env("AWS_ENDPOINT_URL_ELASTIC_LOAD_BALANCING_V2", &xml)
        .env("AWS_ENDPOINT_URL_ELASTIC_LOAD_BALANCING", &xml);
    let run = common::Run::from_output(cmd.output().unwrap());
    assert!(run.ok(), "{}", run.stderr);
    let warnings: Vec<&str> = run
        .events
        .iter()
        .filter(|e| e["event"] == "warning")
        .filter_map(|e| e["message"].as_str())
        .collect();
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("EKS cluster") && w.contains("AccessDenied")),
        "{warnings:?}"
    );
    assert!(
        warnings.iter().any(|w| w.contains("load balancers")),
        "{warnings:?}"
    );
    assert!(tagged(&sdk().await, &cl.name).await.is_empty());
}

/// The same denial when this cluster is an EKS one (its roles say so): `down` refuses before
/// deleting anything, rather than pull the roles and network from under a cluster it cannot see.
#[tokio::test(flavor = "multi_thread")]
async fn down_refuses_when_it_cannot_see_an_eks_cluster_whose_roles_exist() {
    let cl = eks_cluster("eks-denied", "availability_zones = 2");
    cl.up();
    let json = denying_endpoint(true);
    let mut cmd = cl.command(&["down", "-f", cl.spec_arg()]);
    cmd.env("AWS_ENDPOINT_URL_EKS", &json);
    let run = common::Run::from_output(cmd.output().unwrap());
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert!(run.stderr.contains("eks:DescribeCluster"), "{}", run.stderr);
    assert_eq!(run.mutating_calls(), Vec::<String>::new());
    let c = sdk().await;
    assert!(c.eks.describe_cluster().name(&cl.name).send().await.is_ok());
    cl.down();
    assert!(tagged(&c, &cl.name).await.is_empty());
}

/// The add-ons on EKS: made with the network, and once the cluster exists, its security group
/// (the managed nodes are in it) may reach their ingest ports and admits Prometheus's scrapes.
#[tokio::test(flavor = "multi_thread")]
async fn eks_add_ons_are_wired_to_the_clusters_security_group() {
    let cl = Cluster::eks(
        "eks-obs",
        "availability_zones = 2",
        &format!(
            "version = \"1.35\"\n{NODEGROUP}\n[addons]\nmonitoring = true\nlogging = true\ntracing = true\n"
        ),
    );
    let up = cl.up();
    assert_eq!(up.summary()["addons"].as_array().unwrap().len(), 3);
    let c = sdk().await;
    let k = c
        .eks
        .describe_cluster()
        .name(&cl.name)
        .send()
        .await
        .unwrap();
    let cluster_sg = k
        .cluster()
        .unwrap()
        .resources_vpc_config()
        .unwrap()
        .cluster_security_group_id()
        .expect("the emulator gives clusters their security group, as AWS does")
        .to_string();
    let obs = tagged(&c, &cl.name).await;
    let sg = |l: &str| {
        obs.security_groups
            .iter()
            .find(|g| g.logical.as_deref() == Some(l))
            .unwrap()
            .clone()
    };
    let from = |g: &provision::core::kinds::security_group::ObsSg, port: i32| {
        g.rules
            .iter()
            .filter(|r| r.from_port == port)
            .map(|r| r.source.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        from(&sg("sg-logging"), 9200),
        std::slice::from_ref(&cluster_sg)
    );
    assert_eq!(
        from(&sg("sg-tracing"), 4317),
        std::slice::from_ref(&cluster_sg)
    );
    assert_eq!(
        from(&sg("sg-tracing"), 4318),
        std::slice::from_ref(&cluster_sg)
    );
    let cg = c
        .ec2
        .describe_security_groups()
        .group_ids(&cluster_sg)
        .send()
        .await
        .unwrap();
    let scrapes: Vec<&str> = cg.security_groups()[0]
        .ip_permissions()
        .iter()
        .filter(|p| p.from_port() == Some(9100))
        .flat_map(|p| p.user_id_group_pairs().iter().filter_map(|g| g.group_id()))
        .collect();
    assert_eq!(scrapes, [sg("sg-monitoring").id.as_str()]);
    // The nodes run node_exporter: our part of their user data, in the MIME form EKS merges.
    let lt = &obs.launch_templates[0].id;
    let v = c
        .ec2
        .describe_launch_template_versions()
        .launch_template_id(lt)
        .send()
        .await
        .unwrap();
    let ud = v.launch_template_versions()[0]
        .launch_template_data()
        .unwrap()
        .user_data()
        .expect("user data on the node template");
    use base64::Engine as _;
    let ud = String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(ud)
            .unwrap(),
    )
    .unwrap();
    assert!(
        ud.contains("multipart/mixed") && ud.contains("text/cloud-config"),
        "{ud}"
    );
    assert!(ud.contains("node_exporter --web.listen-address=:9100"));
    // ...and Fluent Bit, shipping to the logging instance, with its password read by the node role.
    let es = up.summary()["addons"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "logging")
        .unwrap()["private_ip"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(ud.contains(&format!("Host                {es}")), "{ud}");
    let node_role = obs.role("node-role").unwrap();
    let p = c
        .iam
        .get_role_policy()
        .role_name(&node_role.name)
        .policy_name("provision-log-shipper")
        .send()
        .await
        .unwrap();
    assert!(p.policy_document().contains("log-writer"));
    assert!(
        !p.policy_document().contains("%2Faddons"),
        "never the other passwords"
    );

    let again = cl.up();
    assert_eq!(again.mutating_calls(), Vec::<String>::new());
    let destroy = cl.run(&["plan", "--destroy", "-f", cl.spec_arg()]);
    let listed: Vec<String> = destroy.summary()["plan"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["aws_id"].as_str().unwrap_or_default().to_string())
        .collect();
    assert!(
        !listed.contains(&cluster_sg),
        "EKS's own group goes with the cluster"
    );
    let run = cl.run(&["--trace-api-calls", "down", "-f", cl.spec_arg()]);
    assert!(run.ok(), "{}", run.stderr);
    let calls: Vec<String> = run
        .events
        .iter()
        .filter(|e| e["event"] == "api_call")
        .map(|e| e["operation"].as_str().unwrap().to_string())
        .collect();
    let revoke = calls.iter().position(|c| c == "RevokeSecurityGroupIngress");
    let delete = calls.iter().position(|c| c == "DeleteCluster");
    assert!(
        revoke.is_some() && revoke < delete,
        "the rules naming the cluster's group go before the cluster: {calls:?}"
    );
    assert!(tagged(&c, &cl.name).await.is_empty());
}
