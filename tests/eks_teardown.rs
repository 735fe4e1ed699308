//! `down` of an EKS cluster (and of a kubeadm one without EKS permissions): what Kubernetes
//! made in the VPC goes first, others' load balancers stay, and a cluster `down` cannot see is
//! not pulled from under.

mod common;

use common::{Cluster, eks_cluster, first_call, last_call, sdk, tagged};
use provision::aws::Clients;

/// What the AWS Load Balancer Controller, the in-tree cloud provider and the VPC CNI would have
/// made in the cluster's VPC.
struct KubernetesMade {
    lb_sg: String,
    alb_arn: String,
    tg_arn: String,
    classic_name: String,
    eni: String,
}

/// Another cluster's load balancer, in a VPC of its own.
struct Foreign {
    vpc: String,
    subnet: String,
    lb_arn: String,
}

#[tokio::test(flavor = "multi_thread")]
async fn down_removes_what_kubernetes_made_in_the_vpc_before_the_cluster() {
    let cl = eks_cluster("eks-lb", "availability_zones = 2");
    cl.up();
    let c = sdk().await;
    let made = make_what_kubernetes_makes(&c, &cl).await;
    // And a load balancer of another cluster, in another VPC: not ours.
    let other = make_another_clusters_load_balancer(&c, &cl).await;

    let plan = cl.run(&["plan", "--destroy", "-f", cl.spec_arg()]);
    assert!(plan.ok(), "{}", plan.stderr);
    let planned = plan.plan_aws_ids();
    let m = &made;
    for id in [&m.alb_arn, &m.tg_arn, &m.classic_name, &m.lb_sg, &m.eni] {
        assert!(
            planned.contains(id),
            "plan --destroy lists {id}: {planned:?}"
        );
    }
    assert!(!planned.contains(&other.lb_arn));

    let run = cl.run(&["--trace-api-calls", "down", "-f", cl.spec_arg()]);
    assert!(run.ok(), "{}", run.stderr);
    check_teardown_order(&run.api_call_order());
    check_nothing_of_ours_is_left(&c, &cl, &made, &other).await;

    c.elbv2
        .delete_load_balancer()
        .load_balancer_arn(&other.lb_arn)
        .send()
        .await
        .unwrap();
    c.ec2
        .delete_subnet()
        .subnet_id(&other.subnet)
        .send()
        .await
        .unwrap();
    c.ec2.delete_vpc().vpc_id(&other.vpc).send().await.unwrap();
}

fn v2_tag(k: &str, v: &str) -> aws_sdk_elasticloadbalancingv2::types::Tag {
    aws_sdk_elasticloadbalancingv2::types::Tag::builder()
        .key(k)
        .value(v)
        .build()
}

async fn make_what_kubernetes_makes(c: &Clients, cl: &Cluster) -> KubernetesMade {
    let obs = tagged(c, &cl.name).await;
    let vpc = obs.vpcs[0].id.clone();
    let subnets: Vec<String> = obs.subnets.iter().map(|s| s.id.clone()).collect();
    let ours = common::security_group(&obs, "sg-control-plane").id.clone();
    let lb_sg = make_load_balancer_group(c, cl, &vpc, &ours).await;
    let (alb_arn, tg_arn) = make_alb_and_target_group(c, cl, &vpc, &subnets, &lb_sg).await;
    let classic_name = make_classic_load_balancer(c, cl, &subnets, &lb_sg).await;
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
    KubernetesMade {
        lb_sg,
        alb_arn,
        tg_arn,
        classic_name,
        eni,
    }
}

/// A load balancer's group tagged for the cluster, and the rule the cloud provider adds to
/// our group (`ours`) to let it reach the nodes. Returns the group's id.
async fn make_load_balancer_group(c: &Clients, cl: &Cluster, vpc: &str, ours: &str) -> String {
    let k8s_tag = format!("kubernetes.io/cluster/{}", cl.name);
    let ec2_tag = |k: &str, v: &str| aws_sdk_ec2::types::Tag::builder().key(k).value(v).build();
    let lb_sg = c
        .ec2
        .create_security_group()
        .group_name(format!("k8s-elb-{}", cl.name))
        .description("Security group for Kubernetes ELB")
        .vpc_id(vpc)
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
    c.ec2
        .authorize_security_group_ingress()
        .group_id(ours)
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
    lb_sg
}

/// An application load balancer and a target group of the Load Balancer Controller's. Returns
/// their ARNs.
async fn make_alb_and_target_group(
    c: &Clients,
    cl: &Cluster,
    vpc: &str,
    subnets: &[String],
    lb_sg: &str,
) -> (String, String) {
    let alb = c
        .elbv2
        .create_load_balancer()
        .name(format!("k8s-{}", &cl.name[..cl.name.len().min(20)]))
        .set_subnets(Some(subnets.to_vec()))
        .security_groups(lb_sg)
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
        .vpc_id(vpc)
        .tags(v2_tag("elbv2.k8s.aws/cluster", &cl.name))
        .send()
        .await
        .unwrap();
    let tg_arn = tg.target_groups()[0]
        .target_group_arn()
        .unwrap()
        .to_string();
    (alb_arn, tg_arn)
}

/// A classic load balancer of the in-tree cloud provider's. Returns its name.
async fn make_classic_load_balancer(
    c: &Clients,
    cl: &Cluster,
    subnets: &[String],
    lb_sg: &str,
) -> String {
    let k8s_tag = format!("kubernetes.io/cluster/{}", cl.name);
    let classic_name: String = format!("a{}", cl.name.replace('-', ""))
        .chars()
        .take(32)
        .collect();
    c.elb
        .create_load_balancer()
        .load_balancer_name(&classic_name)
        .set_subnets(Some(subnets.to_vec()))
        .security_groups(lb_sg)
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
    classic_name
}

async fn make_another_clusters_load_balancer(c: &Clients, cl: &Cluster) -> Foreign {
    let other_vpc = common::untagged_vpc(c, "10.98.0.0/16").await;
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
    Foreign {
        vpc: other_vpc,
        subnet: other_subnet,
        lb_arn: other_arn,
    }
}

/// Load balancers first, then the node group, add-ons and access entries, then the cluster,
/// then IAM and the network.
fn check_teardown_order(calls: &[String]) {
    let first = |op: &str| first_call(calls, op);
    let last = |op: &str| last_call(calls, op);
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
}

async fn check_nothing_of_ours_is_left(
    c: &Clients,
    cl: &Cluster,
    made: &KubernetesMade,
    other: &Foreign,
) {
    let after = tagged(c, &cl.name).await;
    assert!(after.is_empty(), "{after:?}");
    let left = c.elbv2.describe_load_balancers().send().await.unwrap();
    let arns: Vec<&str> = left
        .load_balancers()
        .iter()
        .filter_map(|l| l.load_balancer_arn())
        .collect();
    assert!(!arns.contains(&made.alb_arn.as_str()));
    assert!(
        arns.contains(&other.lb_arn.as_str()),
        "another cluster's load balancer stays"
    );
    let classic = c.elb.describe_load_balancers().send().await.unwrap();
    assert!(
        !classic
            .load_balancer_descriptions()
            .iter()
            .any(|l| l.load_balancer_name() == Some(made.classic_name.as_str()))
    );
    assert!(
        c.ec2
            .describe_security_groups()
            .group_ids(&made.lb_sg)
            .send()
            .await
            .is_err()
    );
    assert!(
        c.ec2
            .describe_network_interfaces()
            .network_interface_ids(&made.eni)
            .send()
            .await
            .is_err()
    );
}

/// Answers every request with 403 AccessDenied, in the shape of the protocol (`json`: EKS's
/// REST-JSON, else the query protocol's XML of the load balancer APIs).
fn denying_endpoint(json: bool) -> String {
    let (ctype, extra, body) = if json {
        (
            "application/json",
            "x-amzn-ErrorType: AccessDeniedException\r\n",
            r#"{"message":"User is not authorized to perform: eks:DescribeCluster"}"#.to_string(),
        )
    } else {
        (
            "text/xml",
            "",
            "<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>User is not authorized to perform: elasticloadbalancing:DescribeLoadBalancers</Message></Error><RequestId>r</RequestId></ErrorResponse>".to_string(),
        )
    };
    common::fixed_endpoint(format!(
        "HTTP/1.1 403 Forbidden\r\nContent-Type: {ctype}\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    ))
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
    let warnings = run.warnings();
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
