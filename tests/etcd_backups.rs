//! A kubeadm cluster's etcd snapshots against the emulator: the bucket `up` makes (tagged in
//! CreateBucket, encrypted, closed to the public, snapshots expired after `etcd_backup_days`),
//! the control plane's part (the backup timer in its user data, write access from its instance
//! only), a lost control plane replaced by one that restores the newest snapshot at the same
//! address with the workers kept, and `down` deleting the bucket or keeping it when told.

mod common;

use common::{Cluster, sdk, tagged, terminate_the_control_plane, user_data};
use provision::aws::Clients;
use provision::core::kinds::instances::ObsInstance;

/// moto's account.
const ACCOUNT: &str = "123456789012";
const OLDER: &str = "etcd/20261205T200000Z.tar.gz";
const NEWER: &str = "etcd/20261205T201500Z.tar.gz";
const OLDER_STAMP: &str = "20261205T200000Z.tar.gz";
const NEWER_STAMP: &str = "20261205T201500Z.tar.gz";

async fn reservations(c: &Clients, subnet: &str) -> Vec<aws_sdk_ec2::types::SubnetCidrReservation> {
    c.ec2
        .get_subnet_cidr_reservations()
        .subnet_id(subnet)
        .send()
        .await
        .unwrap()
        .subnet_ipv4_cidr_reservations()
        .to_vec()
}

fn bucket(cl: &Cluster) -> String {
    provision::core::tags::backup_bucket_name(&cl.name, common::REGION, ACCOUNT)
}

async fn put(c: &Clients, bucket: &str, key: &str) {
    c.s3.put_object()
        .bucket(bucket)
        .key(key)
        .body(aws_sdk_s3::primitives::ByteStream::from_static(b"snapshot"))
        .send()
        .await
        .unwrap();
}

async fn exists(c: &Clients, bucket: &str) -> bool {
    c.s3.head_bucket().bucket(bucket).send().await.is_ok()
}

async fn live(c: &Clients, cluster: &str) -> Vec<ObsInstance> {
    Box::pin(tagged(c, cluster))
        .await
        .instances
        .into_iter()
        .filter(ObsInstance::is_live)
        .collect()
}

fn master(all: &[ObsInstance]) -> Vec<&ObsInstance> {
    all.iter()
        .filter(|i| i.logical.as_deref() == Some("master"))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn up_makes_a_private_encrypted_expiring_bucket_only_the_control_plane_writes_to() {
    let cl = Cluster::new(
        "etcdb",
        1,
        "etcd_backup_days = 3\netcd_backup_interval = \"30m\"",
    );
    cl.up_running();
    let c = sdk().await;
    let name = bucket(&cl);

    let tags =
        c.s3.get_bucket_tagging()
            .bucket(&name)
            .send()
            .await
            .unwrap();
    let tag = |k: &str| {
        tags.tag_set()
            .iter()
            .find(|t| t.key() == k)
            .map(|t| t.value().to_string())
    };
    assert_eq!(tag("provision:cluster").as_deref(), Some(cl.name.as_str()));
    assert_eq!(tag("provision:resource").as_deref(), Some("etcd-backups"));
    let pab =
        c.s3.get_public_access_block()
            .bucket(&name)
            .send()
            .await
            .unwrap();
    let p = pab.public_access_block_configuration().unwrap();
    assert_eq!(
        [
            p.block_public_acls(),
            p.ignore_public_acls(),
            p.block_public_policy(),
            p.restrict_public_buckets()
        ],
        [Some(true); 4]
    );
    let enc =
        c.s3.get_bucket_encryption()
            .bucket(&name)
            .send()
            .await
            .unwrap();
    let rule = &enc.server_side_encryption_configuration().unwrap().rules()[0];
    assert_eq!(
        rule.apply_server_side_encryption_by_default()
            .unwrap()
            .sse_algorithm()
            .as_str(),
        "AES256"
    );
    let life =
        c.s3.get_bucket_lifecycle_configuration()
            .bucket(&name)
            .send()
            .await
            .unwrap();
    let r = &life.rules()[0];
    assert_eq!(r.expiration().and_then(|e| e.days()), Some(3));
    assert_eq!(r.filter().and_then(|f| f.prefix()), Some("etcd/"));

    // The control plane: at its fixed address, with the backup timer, and the only instance
    // the role lets write the snapshots.
    let all = live(&c, &cl.name).await;
    let m = master(&all)[0];
    assert_eq!(m.private_ip.as_deref(), Some("10.40.0.10"));
    // Its subnet keeps the address for it: an explicit reservation, tagged as the cluster's.
    let subnet = m.subnet_id.clone().unwrap();
    let reserved = reservations(&c, &subnet).await;
    assert_eq!(reserved.len(), 1, "{reserved:?}");
    assert_eq!(reserved[0].cidr(), Some("10.40.0.10/32"));
    assert_eq!(
        reserved[0].reservation_type(),
        Some(&aws_sdk_ec2::types::SubnetCidrReservationType::Explicit)
    );
    assert!(
        reserved[0]
            .tags()
            .iter()
            .any(|t| t.key() == Some("provision:cluster") && t.value() == Some(cl.name.as_str())),
        "{reserved:?}"
    );
    let doc = user_data(&c, &m.id).await;
    for part in [
        "provision-etcd-backup.timer",
        "OnUnitActiveSec=1800",
        &format!("BUCKET=\"{name}\""),
        "etcdctl",
    ] {
        assert!(doc.contains(part), "{part}");
    }
    assert!(
        !doc.contains("provision-etcd-restore"),
        "nothing to restore"
    );
    assert_eq!(m.backup_interval.as_deref(), Some("1800"), "as launched");
    // A control plane of an earlier release (no such tag) saves nothing: it is given its
    // snapshots through Run Command, which fetches the installer from the bucket with a
    // presigned URL and runs it only when its SHA-256 matches; then the tag.
    common::delete_tag(&c, &m.id, "provision:etcd-backup-interval").await;
    let earlier = cl.run(&["plan", "-f", cl.spec_arg()]);
    assert!(earlier.ok(), "{}", earlier.stderr);
    assert!(
        earlier.summary()["plan"].to_string().contains(&format!(
            "save etcd every 30m on the control plane {}, launched by an earlier release",
            m.id
        )),
        "{}",
        earlier.summary()
    );
    let installed = cl.up_running();
    assert_eq!(
        installed.mutating_calls(),
        ["EC2:CreateTags", "S3:PutObject", "SSM:SendCommand"],
        "{}",
        installed.stderr
    );
    let fetch = common::sent_script(&c, &m.id).await;
    let url = fetch
        .lines()
        .find(|l| l.starts_with("curl "))
        .and_then(|l| l.split('\'').nth(1))
        .expect("the installer's URL");
    let digest = fetch
        .lines()
        .find_map(|l| l.strip_prefix("echo \""))
        .and_then(|l| l.split(' ').next())
        .expect("the installer's digest");
    assert!(
        url.contains(&format!("/{name}/")) && url.contains("X-Amz-Signature="),
        "{url}"
    );
    let got = std::process::Command::new("curl")
        .args(["-fsS", url])
        .output()
        .unwrap();
    assert!(
        got.status.success(),
        "{}",
        String::from_utf8_lossy(&got.stderr)
    );
    let installer = String::from_utf8(got.stdout).unwrap();
    assert_eq!(provision::core::cloudinit::digest(&installer), digest);
    for part in [
        "OnUnitActiveSec=1800\n",
        &format!("BUCKET=\"{name}\""),
        "\"s3-put\"",
        "systemctl enable provision-etcd-backup.timer",
    ] {
        assert!(installer.contains(part), "{part}");
    }
    let now = master(&live(&c, &cl.name).await)[0].clone();
    assert_eq!(now.backup_interval.as_deref(), Some("1800"));
    assert_eq!(cl.up_running().mutating_calls(), Vec::<String>::new());
    // Another interval reaches the running control plane through Run Command, once: its
    // timer rewritten, then its tag.
    cl.edit(
        "etcd_backup_interval = \"30m\"",
        "etcd_backup_interval = \"1h\"",
    );
    let plan = cl.run(&["plan", "-f", cl.spec_arg()]);
    assert!(
        plan.summary()["plan"].to_string().contains(&format!(
            "save etcd every 1h instead of 30m on the control plane {}",
            m.id
        )),
        "{}",
        plan.summary()
    );
    let retimed = cl.up_running();
    assert_eq!(
        retimed.mutating_calls(),
        ["EC2:CreateTags", "SSM:SendCommand"],
        "{}",
        retimed.stderr
    );
    let script = common::sent_script(&c, &m.id).await;
    assert!(script.contains("OnUnitActiveSec=3600\n"), "{script}");
    let now = master(&live(&c, &cl.name).await)[0].clone();
    assert_eq!(now.backup_interval.as_deref(), Some("3600"));
    assert_eq!(cl.up_running().mutating_calls(), Vec::<String>::new());
    let role = provision::core::tags::node_role_name(&cl.name, common::REGION);
    let doc_of = |text: String| -> serde_json::Value {
        serde_json::from_str(&common::url_decode(&text)).unwrap()
    };
    let policy = doc_of(common::inline_policy(&c, &role, "provision-ca-access").await);
    let s3 = policy["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["Sid"] == "ControlPlaneSavesAndRestoresEtcd")
        .expect("the snapshots' statement");
    // This cluster's prefix only (not an earlier cluster's of the same name).
    let mine = common::snapshot_prefix(&c, &cl.name).await;
    assert_eq!(s3["Resource"], format!("arn:aws:s3:::{name}/{mine}*"));
    assert_eq!(
        s3["Condition"]["StringEquals"]["ec2:SourceInstanceARN"],
        format!("arn:aws:ec2:{}:{ACCOUNT}:instance/{}", common::REGION, m.id)
    );
    // No other policy on the node role (which the workers share) grants anything on S3.
    assert!(common::role_policies(&c, &role).await.is_empty());
    let inline = c
        .iam
        .list_role_policies()
        .role_name(&role)
        .send()
        .await
        .unwrap();
    for other in inline
        .policy_names()
        .iter()
        .filter(|p| *p != "provision-ca-access")
    {
        let text = common::url_decode(&common::inline_policy(&c, &role, other).await);
        assert!(!text.contains("s3:"), "{other} grants S3: {text}");
    }

    // Snapshots change nothing; a second up is all keep.
    put(&c, &name, &format!("{mine}{OLDER_STAMP}")).await;
    let again = cl.up_running();
    assert_eq!(again.mutating_calls(), Vec::<String>::new());

    // A missing reservation (a cluster of an earlier release) is made again, and only that.
    c.ec2
        .delete_subnet_cidr_reservation()
        .subnet_cidr_reservation_id(reserved[0].subnet_cidr_reservation_id().unwrap())
        .send()
        .await
        .unwrap();
    let plan = cl.run(&["plan", "-f", cl.spec_arg()]);
    assert!(
        plan.summary()["plan"]
            .to_string()
            .contains("reserve 10.40.0.10 for the control plane"),
        "{}",
        plan.summary()
    );
    let repaired = cl.up_running();
    assert_eq!(
        repaired.mutating_calls(),
        ["EC2:CreateSubnetCidrReservation"],
        "{}",
        repaired.stderr
    );
    assert_eq!(reservations(&c, &subnet).await.len(), 1);

    // Fewer days: the rule is rewritten in place.
    cl.edit("etcd_backup_days = 3", "etcd_backup_days = 9");
    let plan = cl.run(&["plan", "-f", cl.spec_arg()]);
    assert!(
        plan.summary()["plan"]
            .to_string()
            .contains("keep snapshots 9 days (was 3)"),
        "{}",
        plan.summary()
    );
    let changed = cl.up_running();
    assert_eq!(
        changed.mutating_calls(),
        ["S3:PutBucketLifecycleConfiguration"],
        "{}",
        changed.stderr
    );

    // down --keep-backups keeps the bucket and says where; a later down deletes it.
    let keep = cl.run(&["down", "-f", cl.spec_arg(), "--keep-backups"]);
    assert!(keep.ok(), "{}", keep.stderr);
    let said = keep.warnings().join("\n");
    assert!(
        said.contains(&format!(
            "the etcd snapshots are kept in s3://{name}/etcd/ (1 snapshot(s), the newest of"
        )),
        "{said}"
    );
    assert!(exists(&c, &name).await);
    let gone = cl.run(&["down", "--name", &cl.name, "--region", common::REGION]);
    assert!(gone.ok(), "{}", gone.stderr);
    assert!(!exists(&c, &name).await, "{}", gone.stderr);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lost_control_plane_is_restored_from_the_newest_snapshot_at_its_address() {
    let cl = Cluster::new("etcdr", 2, "");
    cl.up_running();
    let c = sdk().await;
    let name = bucket(&cl);
    let before = live(&c, &cl.name).await;
    let workers: Vec<String> = before
        .iter()
        .filter(|i| i.logical.as_deref() != Some("master"))
        .map(|i| i.id.clone())
        .collect();
    assert_eq!(workers.len(), 2);

    // No snapshot yet: refused, naming the bucket.
    let lost = terminate_the_control_plane(&c, &cl.name).await;
    let refused = cl.run(&["plan", "-f", cl.spec_arg()]);
    assert_eq!(refused.code, Some(1));
    assert!(
        refused.summary().to_string().contains(&format!(
            "s3://{name}/{} holds no etcd snapshot of this cluster",
            common::snapshot_prefix(&c, &cl.name).await
        )),
        "{}",
        refused.summary()
    );

    // Snapshots: the newest one this cluster's control plane wrote is restored (a newer key of
    // another shape is not, nor one of another cluster of the name: a kept bucket's).
    let mine = common::snapshot_prefix(&c, &cl.name).await;
    let newer = format!("{mine}{NEWER_STAMP}");
    put(&c, &name, &format!("{mine}{OLDER_STAMP}")).await;
    put(&c, &name, &newer).await;
    put(&c, &name, &format!("{mine}by-hand.db")).await;
    put(&c, &name, "etcd/anotherclust/20261205T203000Z.tar.gz").await;
    let plan = cl.run(&["plan", "-f", cl.spec_arg()]);
    assert!(plan.ok(), "{}", plan.stderr);
    let rows = plan.summary()["plan"].to_string();
    assert!(
        rows.contains("restore from the snapshot of") && rows.contains(&newer),
        "{rows}"
    );

    let up = cl.up_running();
    let after = live(&c, &cl.name).await;
    let masters = master(&after);
    assert_eq!(masters.len(), 1, "{after:?}");
    let m = masters[0];
    assert_ne!(m.id, lost);
    assert_eq!(
        m.private_ip.as_deref(),
        Some("10.40.0.10"),
        "the address the workers know"
    );
    let mut kept: Vec<String> = after
        .iter()
        .filter(|i| i.logical.as_deref() != Some("master"))
        .map(|i| i.id.clone())
        .collect();
    kept.sort();
    let mut want = workers.clone();
    want.sort();
    assert_eq!(kept, want, "the workers stay");
    assert_eq!(up.calls("EC2", "RunInstances"), 1, "{}", up.stderr);
    let doc = user_data(&c, &m.id).await;
    assert!(
        doc.contains(&format!("s3-get \"{name}\" \"{newer}\"")),
        "the restore fetches the newest snapshot"
    );
    // The Elastic IP follows the new control plane; its read of the CA and the snapshots too.
    let obs = Box::pin(tagged(&c, &cl.name)).await;
    let eip = obs
        .addresses
        .iter()
        .find(|a| a.logical.as_deref() == Some("master-eip"))
        .unwrap();
    assert_eq!(eip.instance_id.as_deref(), Some(m.id.as_str()));
    let role = provision::core::tags::node_role_name(&cl.name, common::REGION);
    assert!(
        common::url_decode(&common::inline_policy(&c, &role, "provision-ca-access").await)
            .contains(&format!("instance/{}", m.id))
    );
    let again = cl.up_running();
    assert_eq!(again.mutating_calls(), Vec::<String>::new());
    cl.down();
    assert!(!exists(&c, &name).await);
}

/// The control plane's transfers (node.py `s3-put` and `s3-get`, the script the instance runs,
/// run here with a stand-in IMDSv2): a snapshot goes up and comes back byte for byte, 0600.
#[tokio::test(flavor = "multi_thread")]
async fn the_control_planes_script_puts_and_gets_a_snapshot_with_its_role() {
    use std::os::unix::fs::PermissionsExt as _;
    let c = sdk().await;
    let name = format!("provision-{}", common::unique("snap"));
    c.s3.create_bucket().bucket(&name).send().await.unwrap();
    let imds = common::fake_imds("i-0snap").await;
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("node.py");
    std::fs::write(&script, provision::core::cloudinit::NODE_SCRIPT).unwrap();
    // Larger than one read of the streaming upload (1 MiB), not a multiple of it.
    let data: Vec<u8> = (0..(3 << 20) + 17).map(|i: u32| (i % 251) as u8).collect();
    std::fs::write(dir.path().join("backup.tar.gz"), &data).unwrap();
    let node = |args: &[&str]| {
        std::process::Command::new("python3")
            .arg(&script)
            .args(args)
            .env("PROVISION_IMDS", &imds)
            .env("PROVISION_S3_ENDPOINT", common::emulator())
            .env("PROVISION_FETCH_RETRY_SECONDS", "0.01")
            .env("PROVISION_S3_DEADLINE_SECONDS", "1")
            .current_dir(dir.path())
            .output()
            .unwrap()
    };
    let put = node(&["s3-put", &name, NEWER, "backup.tar.gz"]);
    assert!(
        put.status.success(),
        "{}",
        String::from_utf8_lossy(&put.stderr)
    );
    let stored =
        c.s3.get_object()
            .bucket(&name)
            .key(NEWER)
            .send()
            .await
            .unwrap()
            .body
            .collect()
            .await
            .unwrap()
            .into_bytes();
    assert!(
        stored.as_ref() == data.as_slice(),
        "stored as sent: {} bytes of {}, starting {:?}",
        stored.len(),
        data.len(),
        &stored[..stored.len().min(40)]
    );
    let get = node(&["s3-get", &name, NEWER, "restored.tar.gz"]);
    assert!(
        get.status.success(),
        "{}",
        String::from_utf8_lossy(&get.stderr)
    );
    let path = dir.path().join("restored.tar.gz");
    assert!(std::fs::read(&path).unwrap() == data, "fetched as stored");
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // A snapshot that is not there: retried until the deadline, then said, exit 1.
    let missing = node(&["s3-get", &name, OLDER, "missing.tar.gz"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&missing.stderr)
            .contains(&format!("could not get s3://{name}/{OLDER}: HTTP 404")),
        "{}",
        String::from_utf8_lossy(&missing.stderr)
    );
}
