//! `kind = "eks"` end to end: the real binary against the emulator (moto, with the in-process
//! add-on and access-entry extension of `localstack/emulator.py`): what `up` makes, private
//! subnets, changes applied in place, the add-ons' wiring. (`down`: tests/eks_teardown.rs.)

mod common;

use std::os::unix::fs::PermissionsExt as _;

use common::{
    Cluster, EKS_NODEGROUP, eks_cluster, eks_cluster_of, has_tag, nodegroup_of, role_policies, sdk,
    tagged,
};
use provision::aws::Clients;
use provision::core::kinds::Observed;
use provision::core::tags;

#[tokio::test(flavor = "multi_thread")]
async fn eks_up_builds_the_cluster_and_a_second_up_changes_nothing_and_down_leaves_nothing() {
    let cl = eks_cluster("eks", "availability_zones = 2");
    let c = sdk().await;
    // Someone else's VPC and EKS cluster: down must not touch them.
    let foreign_vpc = common::untagged_vpc(&c, "10.99.0.0/16").await;

    let up = cl.up();
    let s = up.summary();
    assert_eq!(s["kind"], "eks");
    let endpoint = s["api_endpoint"]
        .as_str()
        .expect("the endpoint is reported");
    assert!(endpoint.starts_with("https://"), "{endpoint}");

    let region_short = "use1";
    let cluster_role = format!("provision-{}-{region_short}-cluster", cl.name);
    let node_role = tags::node_role_name(&cl.name, "us-east-1");
    let csi_role = format!("provision-{}-{region_short}-ebs-csi", cl.name);
    check_cluster(&c, &cl, &cluster_role).await;
    check_roles(&c, &cluster_role, &node_role, &csi_role).await;
    check_nodegroup(&c, &cl, &node_role).await;
    check_add_ons_and_access(&c, &cl, &csi_role).await;
    check_subnets(&c, &tagged(&c, &cl.name).await).await;
    check_kubeconfig(&cl, endpoint);
    a_second_up_and_plan_change_nothing(&cl);

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

/// ACTIVE, tagged, in every subnet, API endpoint limited to the admin CIDRs.
async fn check_cluster(c: &Clients, cl: &Cluster, cluster_role: &str) {
    let k = eks_cluster_of(c, &cl.name).await;
    assert_eq!(k.status().unwrap().as_str(), "ACTIVE");
    assert_eq!(k.version(), Some("1.35"));
    assert_eq!(
        k.tags().unwrap().get(tags::CLUSTER_TAG).map(String::as_str),
        Some(cl.name.as_str())
    );
    let vpc_cfg = k.resources_vpc_config().unwrap();
    assert_eq!(vpc_cfg.subnet_ids().len(), 2);
    assert_eq!(vpc_cfg.public_access_cidrs(), ["198.51.100.0/24"]);
    assert!(k.role_arn().unwrap().ends_with(&format!("/{cluster_role}")));
}

/// Roles with exactly the managed policies EKS needs.
async fn check_roles(c: &Clients, cluster_role: &str, node_role: &str, csi_role: &str) {
    assert_eq!(
        role_policies(c, cluster_role).await,
        ["arn:aws:iam::aws:policy/AmazonEKSClusterPolicy"]
    );
    assert_eq!(
        role_policies(c, node_role).await,
        [
            "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryReadOnly",
            "arn:aws:iam::aws:policy/AmazonEKSWorkerNodePolicy",
            "arn:aws:iam::aws:policy/AmazonEKS_CNI_Policy",
        ]
    );
    assert_eq!(
        role_policies(c, csi_role).await,
        ["arn:aws:iam::aws:policy/service-role/AmazonEBSCSIDriverPolicy"]
    );
    let trust = c.iam.get_role().role_name(csi_role).send().await.unwrap();
    let doc = trust.role().unwrap().assume_role_policy_document().unwrap();
    let doc = common::url_decode(doc);
    assert!(
        doc.contains("pods.eks.amazonaws.com") && doc.contains("sts:TagSession"),
        "{doc}"
    );
}

/// AL2023, 1/3/2, in the public subnets, with its labels.
async fn check_nodegroup(c: &Clients, cl: &Cluster, node_role: &str) {
    let ng = nodegroup_of(c, &cl.name).await;
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
}

/// The default add-ons, the EBS CSI driver with its pod identity, and the access entry.
async fn check_add_ons_and_access(c: &Clients, cl: &Cluster, csi_role: &str) {
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
}

/// Subnets tagged for internet-facing load balancers; no instances, no NAT.
async fn check_subnets(c: &Clients, obs: &Observed) {
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
            has_tag(sn.tags(), "kubernetes.io/role/elb", "1"),
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
}

/// 0600, an exec user running `provision token` for this cluster.
fn check_kubeconfig(cl: &Cluster, endpoint: &str) {
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
}

/// A second up finds everything and changes nothing; nor does a plan.
fn a_second_up_and_plan_change_nothing(cl: &Cluster) {
    let again = cl.up();
    assert_eq!(
        again.mutating_calls(),
        Vec::<String>::new(),
        "{:?}",
        again.summary()["api_calls"]
    );
    let plan = cl.run(&["plan", "-f", cl.spec_arg()]);
    assert!(plan.ok(), "{}", plan.stderr);
    let changes: Vec<(String, String)> = plan
        .actions_of("plan")
        .into_iter()
        .filter(|(_, a)| a != "keep")
        .collect();
    assert!(changes.is_empty(), "{changes:?}");
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
    let public0 = common::subnet(&obs, "subnet-0");
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
    assert!(has_tag(
        tags.subnets()[0].tags(),
        "kubernetes.io/role/internal-elb",
        "1"
    ));
    let ng = nodegroup_of(&c, &cl.name).await;
    let mut ng_subnets = ng.subnets().to_vec();
    ng_subnets.sort();
    let mut want: Vec<String> = private.iter().map(|s| s.id.clone()).collect();
    want.sort();
    assert_eq!(ng_subnets, want, "nodes in the private subnets");
    let k = eks_cluster_of(&c, &cl.name).await;
    assert_eq!(
        k.resources_vpc_config().unwrap().subnet_ids().len(),
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
    let eks =
        head.replace("kind = \"kubeadm\"", "kind = \"eks\"") + &format!("[eks]\n{EKS_NODEGROUP}");
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
    let updates = plan.plan_ids("update");
    assert_eq!(
        updates,
        ["access-entries", "nodegroup"],
        "{:?}",
        plan.summary()["plan"]
    );

    let up = cl.up();
    let c = sdk().await;
    let ng = nodegroup_of(&c, &cl.name).await;
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

/// The add-ons on EKS: made with the network, and once the cluster exists, its security group
/// (the managed nodes are in it) may reach their ingest ports and admits Prometheus's scrapes.
#[tokio::test(flavor = "multi_thread")]
async fn eks_add_ons_are_wired_to_the_clusters_security_group() {
    let cl = Cluster::eks(
        "eks-obs",
        "availability_zones = 2",
        &format!(
            "version = \"1.35\"\n{EKS_NODEGROUP}\n[addons]\nmonitoring = true\nlogging = true\ntracing = true\n"
        ),
    );
    let up = cl.up();
    assert_eq!(up.summary()["addons"].as_array().unwrap().len(), 3);
    let c = sdk().await;
    let cluster_sg = eks_cluster_of(&c, &cl.name)
        .await
        .resources_vpc_config()
        .unwrap()
        .cluster_security_group_id()
        .expect("the emulator gives clusters their security group, as AWS does")
        .to_string();
    let obs = tagged(&c, &cl.name).await;
    check_the_cluster_group_is_wired(&c, &obs, &cluster_sg).await;
    check_the_nodes_run_the_agents(&c, &obs, &up).await;

    let again = cl.up();
    assert_eq!(again.mutating_calls(), Vec::<String>::new());
    let destroy = cl.run(&["plan", "--destroy", "-f", cl.spec_arg()]);
    let listed = destroy.plan_aws_ids();
    assert!(
        !listed.contains(&cluster_sg),
        "EKS's own group goes with the cluster"
    );
    let run = cl.run(&["--trace-api-calls", "down", "-f", cl.spec_arg()]);
    assert!(run.ok(), "{}", run.stderr);
    let calls = run.api_call_order();
    let revoke = calls.iter().position(|c| c == "RevokeSecurityGroupIngress");
    let delete = calls.iter().position(|c| c == "DeleteCluster");
    assert!(
        revoke.is_some() && revoke < delete,
        "the rules naming the cluster's group go before the cluster: {calls:?}"
    );
    assert!(tagged(&c, &cl.name).await.is_empty());
}

/// The cluster's group reaches the add-ons' ingest ports, and admits the scrapes of Prometheus.
async fn check_the_cluster_group_is_wired(c: &Clients, obs: &Observed, cluster_sg: &str) {
    let sg = |l: &str| common::security_group(obs, l);
    let from = |g: &provision::core::kinds::security_group::ObsSg, port: i32| {
        common::rules_of(g)
            .into_iter()
            .filter(|(p, _)| *p == port)
            .map(|(_, source)| source)
            .collect::<Vec<_>>()
    };
    assert_eq!(from(sg("sg-logging"), 9200), [cluster_sg]);
    assert_eq!(from(sg("sg-tracing"), 4317), [cluster_sg]);
    assert_eq!(from(sg("sg-tracing"), 4318), [cluster_sg]);
    let cg = c
        .ec2
        .describe_security_groups()
        .group_ids(cluster_sg)
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
}

/// The nodes run node_exporter: our part of their user data, in the MIME form EKS merges; and
/// Fluent Bit, shipping to the logging instance, with its password read by the node role.
async fn check_the_nodes_run_the_agents(c: &Clients, obs: &Observed, up: &common::Run) {
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
    let p = common::inline_policy(c, &node_role.name, "provision-log-shipper").await;
    assert!(p.contains("log-writer"));
    assert!(!p.contains("%2Faddons"), "never the other passwords");
}
