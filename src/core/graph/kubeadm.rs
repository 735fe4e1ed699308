//! kubeadm on EC2: the nodes' groups, role and profile, the bootstrap secret, the control plane,
//! its read of the CA, the join token and the workers (one launch per availability zone).

use super::addons::addon_sg_id;
use super::network::Net;
use super::rules::{SgRole, rules};
use super::{
    AMI, Builder, CA_ACCESS, CA_ACCESS_POLICY, ETCD_BACKUPS, JOIN_TOKEN, MASTER, NODE_PROFILE,
};
use super::{
    CONTROL_PLANE_UPGRADE, NODE_REPORTS, NODE_REPORTS_POLICY, SSM_AGENT, SSM_AGENT_POLICY,
};
use super::{NODE_ROLE, ROUTE_TABLE, SECRET, SG_CONTROL_PLANE, SG_NODES, VPC, sg_name};
use super::{pool_id, pool_zone_id};
use crate::core::kinds::Desired;
use crate::core::kinds::address_association::AddressAssociation;
use crate::core::kinds::backup_bucket::BackupBucket;
use crate::core::kinds::bootstrap_secret::BootstrapSecret;
use crate::core::kinds::elastic_ip::ElasticIp;
use crate::core::kinds::iam_role::IamRole;
use crate::core::kinds::image::Image;
use crate::core::kinds::inline_policy::{Document, InlinePolicy, Snapshots};
use crate::core::kinds::instance_profile::InstanceProfile;
use crate::core::kinds::instances::{Instances, Role, TokenScope};
use crate::core::kinds::join_token::JoinToken;
use crate::core::kinds::kubeadm_upgrade::KubeadmUpgrade;
use crate::core::kinds::security_group::SecurityGroup;
use crate::core::kinds::worker_pool::{WorkerPool, launch_hash};
use crate::core::spec::{Addon, ClusterSpec, KubeadmSpec, PoolSpec};
use crate::core::stamp::{BACKUP_INTERVAL_TAG, LAUNCH_HASH_TAG, POOL_TAG};
use crate::core::tags;
use crate::core::userdata::{EtcdBackups, LogShipper, MasterDoc, UserData, WorkerDoc};

/// How many workers go into each subnet: round-robin, so at most one call per zone.
pub fn worker_split(workers: u32, subnets: usize) -> Vec<u32> {
    let n = subnets.max(1) as u32;
    (0..n)
        .map(|i| workers / n + u32::from(i < workers % n))
        .collect()
}

pub(crate) fn nodes(spec: &ClusterSpec, b: &mut Builder, net: &Net) {
    let Some(k) = spec.kubeadm() else {
        return;
    };
    b.add(
        AMI,
        Desired::Image(Image {
            source: k.ami.clone(),
            arch: k.arch,
            field: "kubeadm.ami",
        }),
        &[],
    );
    let mon = addon_sg_id(Addon::Monitoring);
    let mut node_deps: Vec<&str> = vec![VPC];
    if spec.addons.monitoring.is_some() {
        node_deps.push(&mon);
    }
    let group = |role, suffix: &str, what: &str| {
        Desired::SecurityGroup(SecurityGroup {
            role,
            name: sg_name(spec, suffix),
            description: format!("provision {}: {what}", spec.name),
            rules: rules(spec, role),
            vpc: VPC.into(),
        })
    };
    b.add(
        SG_NODES,
        group(SgRole::Nodes, "nodes", "every node"),
        &node_deps,
    );
    b.add(
        SG_CONTROL_PLANE,
        group(
            SgRole::ControlPlane,
            "control-plane",
            "Kubernetes API server",
        ),
        &[VPC, SG_NODES],
    );
    let role = tags::node_role_name(&spec.name, &spec.region);
    b.add(
        NODE_ROLE,
        Desired::IamRole(IamRole {
            name: role.clone(),
            service: "ec2.amazonaws.com",
            policies: Vec::new(),
        }),
        &[],
    );
    b.add(
        NODE_PROFILE,
        Desired::InstanceProfile(InstanceProfile {
            name: role.clone(),
            role: NODE_ROLE.into(),
            role_name: role.clone(),
        }),
        &[NODE_ROLE],
    );
    let parameter = tags::secret_parameter_name(&spec.name);
    b.add(
        SECRET,
        Desired::BootstrapSecret(BootstrapSecret {
            parameter: parameter.clone(),
        }),
        &[],
    );
    b.add(
        ETCD_BACKUPS,
        Desired::BackupBucket(BackupBucket {
            days: k.etcd_backup_days,
        }),
        &[],
    );
    master(spec, k, b, net);
    // The control plane installs the log shipper, so it also reads the log writer's password.
    let mut parameters = vec![parameter];
    if spec.addons.logging.is_some() {
        parameters.push(tags::log_writer_parameter_name(&spec.name));
    }
    b.add(
        CA_ACCESS,
        Desired::InlinePolicy(InlinePolicy {
            role: NODE_ROLE.into(),
            role_name: role.clone(),
            name: CA_ACCESS_POLICY.into(),
            document: Document::InstanceReads {
                parameters,
                instance: MASTER.into(),
                snapshots: Some(Snapshots {
                    bucket: ETCD_BACKUPS.into(),
                    secret: SECRET.into(),
                }),
            },
        }),
        &[NODE_ROLE, MASTER, ETCD_BACKUPS, SECRET],
    );
    // Put with the role, long before a node reports (its first report comes after minutes of
    // preparation; a report that cannot be written is said on the console, never fatal).
    b.add(
        NODE_REPORTS,
        Desired::InlinePolicy(InlinePolicy {
            role: NODE_ROLE.into(),
            role_name: role.clone(),
            name: NODE_REPORTS_POLICY.into(),
            document: Document::NodeReports {
                path: crate::core::progress::nodes_path(&spec.name),
                cluster: spec.name.clone(),
            },
        }),
        &[NODE_ROLE],
    );
    b.add(
        SSM_AGENT,
        Desired::InlinePolicy(InlinePolicy {
            role: NODE_ROLE.into(),
            role_name: role.clone(),
            name: SSM_AGENT_POLICY.into(),
            document: Document::SsmAgent,
        }),
        &[NODE_ROLE],
    );
    // Before the workers: they are replaced with nodes of the new version once it is done.
    b.add(
        CONTROL_PLANE_UPGRADE,
        Desired::KubeadmUpgrade(KubeadmUpgrade {
            master: MASTER.into(),
            version: k.version,
            backup_interval: k.etcd_backup_interval,
            bucket: ETCD_BACKUPS.into(),
            secret: SECRET.into(),
        }),
        // The bucket and the secret come before the control plane: no later for these.
        &[MASTER, SSM_AGENT, ETCD_BACKUPS, SECRET],
    );
    b.add(
        JOIN_TOKEN,
        Desired::JoinToken(JoinToken {
            secret: SECRET.into(),
            master: MASTER.into(),
        }),
        &[SECRET, MASTER],
    );
    let all: Vec<String> = k.pools.iter().map(|p| pool_id(&p.name)).collect();
    for (i, pool) in k.pools.iter().enumerate() {
        // The first pool also takes out the workers of pools the spec no longer has.
        let adopts_for = if i == 0 { all.clone() } else { Vec::new() };
        worker_pool(spec, k, pool, adopts_for, b, net);
    }
}

/// A pool's node: one launch per zone of its subnets, the count spread round-robin.
fn worker_pool(
    spec: &ClusterSpec,
    k: &KubeadmSpec,
    pool: &PoolSpec,
    adopts_for: Vec<String>,
    b: &mut Builder,
    net: &Net,
) {
    let subnets: Vec<&String> = pool
        .zones
        .iter()
        .filter_map(|z| net.public.get(*z))
        .collect();
    let doc = UserData::Worker(WorkerDoc {
        cluster: spec.name.clone(),
        kubeadm: k.clone(),
        master: MASTER.into(),
        token: JOIN_TOKEN.into(),
        secret: SECRET.into(),
        node_exporter: spec.addons.monitoring.is_some(),
        labels: pool.labels.clone(),
        taints: pool.taints.clone(),
    });
    let hash = launch_hash(k, pool);
    let zones = pool
        .zones
        .iter()
        .zip(worker_split(pool.count, subnets.len()))
        .filter_map(|(z, count)| {
            let subnet = net.public.get(*z)?;
            let mut launch = launch(k, subnet, (Role::Workers, count), &[SG_NODES], doc.clone());
            launch.instance_type = pool.instance_type.clone();
            launch.spot = pool.spot;
            launch.tags = vec![
                (POOL_TAG.to_string(), pool.name.clone()),
                (LAUNCH_HASH_TAG.to_string(), hash.clone()),
            ];
            Some((pool_zone_id(&pool.name, *z), launch))
        })
        .collect();
    let mut deps: Vec<&str> = subnets.iter().map(|s| s.as_str()).collect();
    deps.extend([
        SG_NODES,
        NODE_PROFILE,
        AMI,
        SECRET,
        ROUTE_TABLE,
        MASTER,
        JOIN_TOKEN,
        CONTROL_PLANE_UPGRADE,
    ]);
    b.add(
        &pool_id(&pool.name),
        Desired::WorkerPool(WorkerPool {
            name: pool.name.clone(),
            zones,
            launch_hash: hash,
            instance_type: pool.instance_type.clone(),
            version: k.version.to_string(),
            max_surge: pool.max_surge,
            max_unavailable: pool.max_unavailable,
            master: MASTER.into(),
            secret: SECRET.into(),
            adopts_for,
        }),
        &deps,
    );
}

/// The control plane's address, once it exists: the last node of the graph (`build` adds it after
/// everything else), so that under a low `--concurrency` its wait for the control plane to run
/// holds no slot a launch needs (the executor starts ready nodes in graph order).
pub(crate) fn address(spec: &ClusterSpec, b: &mut Builder) {
    if spec.kubeadm().is_none() {
        return;
    }
    b.add(
        MASTER_EIP_ASSOCIATION,
        Desired::AddressAssociation(AddressAssociation {
            address: MASTER_EIP.into(),
            instance: MASTER.into(),
        }),
        &[MASTER_EIP, MASTER],
    );
}

/// The control plane's Elastic IP, and its association with the control plane.
pub const MASTER_EIP: &str = "master-eip";
pub const MASTER_EIP_ASSOCIATION: &str = "master-eip-association";

/// The control plane, in the first public subnet, with a fixed public address: an Elastic IP
/// allocated first (the certificate names it), associated once the instance exists.
fn master(spec: &ClusterSpec, k: &KubeadmSpec, b: &mut Builder, net: &Net) {
    let first = &net.public[0];
    b.add(MASTER_EIP, Desired::ElasticIp(ElasticIp), &[]);
    let mut deps: Vec<&str> = vec![
        MASTER_EIP,
        ETCD_BACKUPS,
        first,
        SG_NODES,
        SG_CONTROL_PLANE,
        NODE_PROFILE,
        AMI,
        SECRET,
        ROUTE_TABLE,
    ];
    // The control plane installs the log shipper, which needs the logging instance's address.
    let log_shipper = spec.addons.logging.as_ref().map(|l| LogShipper {
        logging: Addon::Logging.as_str().into(),
        fluent_bit_version: l.versions.get("fluent_bit").cloned().unwrap_or_default(),
        parameter: tags::log_writer_parameter_name(&spec.name),
    });
    if let Some(l) = &log_shipper {
        deps.push(&l.logging);
    }
    let mut launch = launch(
        k,
        first,
        (Role::Master, 1),
        &[SG_NODES, SG_CONTROL_PLANE],
        UserData::Master(MasterDoc {
            kubeadm: k.clone(),
            cluster: spec.name.clone(),
            secret: SECRET.into(),
            secret_parameter: tags::secret_parameter_name(&spec.name),
            baseline: crate::core::manifests::baseline(&spec.security),
            log_shipper: log_shipper.clone(),
            node_exporter: spec.addons.monitoring.is_some(),
            addresses: vec![MASTER_EIP.into()],
            backups: Some(EtcdBackups {
                bucket: ETCD_BACKUPS.into(),
                interval: k.etcd_backup_interval,
                restore: None,
            }),
        }),
    );
    // The workers join at this address; a control plane restored from a snapshot takes it over.
    launch.private_ip = master_address(spec).map(|ip| ip.to_string());
    // What the backup timer was launched with: its user data is read at boot only.
    launch.tags = vec![(
        BACKUP_INTERVAL_TAG.to_string(),
        k.etcd_backup_interval.to_string(),
    )];
    b.add(MASTER, Desired::Instances(launch), &deps);
}

/// The control plane's private address: this host of the first subnet (AWS keeps the first
/// four and the last for itself; a /28 has room).
pub const MASTER_HOST: u32 = 10;

/// The address of a kubeadm cluster's control plane ([`MASTER_HOST`] of the first subnet),
/// which the first subnet reserves (no other instance is given it automatically).
pub fn master_address(spec: &ClusterSpec) -> Option<std::net::Ipv4Addr> {
    spec.kubeadm()?;
    spec.network.subnet_cidrs.first()?.host(MASTER_HOST)
}

/// A kubeadm node's launch: the node role's profile, the looked-up image, the spec's
/// instance type and volume, client tokens scoped by the cluster id.
fn launch(
    k: &KubeadmSpec,
    subnet: &str,
    (role, count): (Role, u32),
    groups: &[&str],
    user_data: UserData,
) -> Instances {
    Instances {
        role,
        count,
        subnet: subnet.into(),
        groups: groups.iter().map(|g| g.to_string()).collect(),
        profile: NODE_PROFILE.into(),
        image: AMI.into(),
        instance_type: k.instance_type.clone(),
        volume_gb: k.root_volume_gb,
        key_name: k.key_name.clone(),
        token_scope: TokenScope::ClusterId(SECRET.into()),
        kubernetes_owned: true,
        spot: false,
        tags: Vec::new(),
        private_ip: None,
        user_data,
    }
}
