//! The planner's cases of kubeadm day 2: worker pools (scale-in, replacement, a replacement a
//! stopped run left, no API server) and the control plane's upgrade. Each is a row of
//! [`super::cases::Case`], run by the same test.

use super::cases::{Case, demo, live};
use super::converged::NOW;
use crate::core::kinds::Action;
use crate::core::kinds::backup_bucket::Snapshot;
use crate::core::kinds::instances::ObsInstance;

pub(super) const KUBEADM_DAY2: &[Case] = &[
    Case {
        what: "the first subnet without the control plane's reservation (an earlier release's)",
        spec: demo,
        change: |o| o.subnets[0].reserved.clear(),
        id: "subnet-0",
        action: Action::Update,
        says: "reserve 10.0.0.10 for the control plane",
        also: &[],
    },
    Case {
        what: "no reservation, and another instance holds the address: reserved all the same",
        spec: demo,
        change: |o| {
            o.subnets[0].reserved.clear();
            live(o, "master").for_each(|i| i.private_ip = Some("10.0.0.77".into()));
            live(o, "workers-0").for_each(|i| i.private_ip = Some("10.0.0.10".into()));
        },
        id: "subnet-0",
        action: Action::Update,
        says: "reserve 10.0.0.10 for the control plane",
        also: &[],
    },
    Case {
        what: "a control plane of an earlier release: its snapshots installed through Run Command",
        spec: demo,
        change: |o| live(o, "master").for_each(|i| i.backup_interval = None),
        id: "control-plane-upgrade",
        action: Action::Update,
        says: "save etcd every 15m on the control plane i-master-0, launched by an earlier release (this one's backup script, timer and provision-node.py, through SSM Run Command)",
        also: &[],
    },
    Case {
        what: "a control plane of an earlier release at its own address: a restore would strand the workers, said",
        spec: demo,
        change: |o| {
            live(o, "master").for_each(|i| {
                i.backup_interval = None;
                i.private_ip = Some("10.0.0.77".into());
            });
        },
        id: "control-plane-upgrade",
        action: Action::Update,
        says: "the control plane i-master-0 is at 10.0.0.77, not at 10.0.0.10: a control plane restored from these snapshots would be at 10.0.0.10, which its workers do not know",
        also: &[],
    },
    Case {
        what: "another backup interval: set on the running control plane through Run Command",
        spec: demo,
        change: |o| live(o, "master").for_each(|i| i.backup_interval = Some("3600".into())),
        id: "control-plane-upgrade",
        action: Action::Update,
        says: "save etcd every 15m instead of 1h on the control plane i-master-0",
        also: &[],
    },
    Case {
        what: "the control plane lost, workers left, no snapshot",
        spec: demo,
        change: |o| live(o, "master").for_each(|i| i.state = "terminated".into()),
        id: "master",
        action: Action::Refuse,
        says: "s3://provision-demo-use1-123456789012/etcd/abcdefghijkl/ holds no etcd snapshot of this cluster: a new control plane would be a new, empty cluster",
        also: &[],
    },
    Case {
        what: "the control plane lost, workers left, only another cluster's snapshots (a kept bucket)",
        spec: demo,
        change: |o| {
            live(o, "master").for_each(|i| i.state = "terminated".into());
            o.bucket.as_mut().unwrap().snapshots.push(Snapshot {
                key: "etcd/oldcluster12/20261205T201500Z.tar.gz".into(),
                at: NOW - 900,
                bytes: 1 << 20,
            });
        },
        id: "master",
        action: Action::Refuse,
        says: "etcd/abcdefghijkl/ holds no etcd snapshot of this cluster",
        also: &[],
    },
    Case {
        what: "the control plane lost, workers left: the newest snapshot is restored",
        spec: demo,
        change: |o| {
            live(o, "master").for_each(|i| i.state = "terminated".into());
            let b = o.bucket.as_mut().unwrap();
            for (key, at) in [
                ("etcd/abcdefghijkl/20261205T200000Z.tar.gz", NOW - 1800),
                ("etcd/abcdefghijkl/20261205T201500Z.tar.gz", NOW - 900),
                ("etcd/abcdefghijkl/by-hand.db", NOW),
                ("etcd/oldcluster12/20261205T203000Z.tar.gz", NOW),
            ] {
                b.snapshots.push(Snapshot {
                    key: key.into(),
                    at,
                    bytes: 1 << 20,
                });
            }
        },
        id: "master",
        action: Action::Create,
        // This cluster's newest (NOW - 900), not the other cluster's of NOW.
        says: "restore from the snapshot of 2027-01-15T07:45:00Z",
        also: &[
            "ami",
            "ca-access",
            "control-plane-upgrade",
            "master-eip-association",
        ],
    },
    Case {
        what: "every instance lost: a new cluster",
        spec: demo,
        change: |o| {
            o.instances
                .iter_mut()
                .for_each(|i| i.state = "terminated".into())
        },
        id: "master",
        action: Action::Create,
        says: "",
        also: &[
            "ami",
            "ca-access",
            "control-plane-upgrade",
            "join-token",
            "master-eip-association",
            "workers",
        ],
    },
    Case {
        what: "every instance lost, with a snapshot of this cluster: restored all the same",
        spec: demo,
        change: |o| {
            o.instances
                .iter_mut()
                .for_each(|i| i.state = "terminated".into());
            o.bucket.as_mut().unwrap().snapshots.push(Snapshot {
                key: "etcd/abcdefghijkl/20261205T201500Z.tar.gz".into(),
                at: NOW - 900,
                bytes: 1 << 20,
            });
        },
        id: "master",
        action: Action::Create,
        says: "restore from the snapshot of 2027-01-15T07:45:00Z",
        also: &[
            "ami",
            "ca-access",
            "control-plane-upgrade",
            "join-token",
            "master-eip-association",
            "workers",
        ],
    },
    Case {
        what: "more workers than the spec: the newest is drained",
        spec: demo,
        change: |o| {
            o.instances.push(ObsInstance {
                id: "i-extra".into(),
                logical: Some("workers-0".into()),
                state: "running".into(),
                launched_at: Some(NOW),
                ..Default::default()
            })
        },
        id: "workers",
        action: Action::Update,
        says: "drain and remove i-extra (workers-0: scale-in, newest first)",
        also: &[],
    },
    Case {
        what: "a worker launched with another instance type",
        spec: demo,
        change: |o| {
            live(o, "workers-1").for_each(|i| i.instance_type = Some("t3.small".into()));
        },
        id: "workers",
        action: Action::Update,
        says: "replace i-workers-1-0 (workers-1: instance type t3.small → t3.medium)",
        also: &["ami", "join-token"],
    },
    Case {
        what: "a worker launched with another document",
        spec: demo,
        change: |o| {
            live(o, "workers-1").for_each(|i| i.launch_hash = Some("0123456789ab".into()));
        },
        id: "workers",
        action: Action::Update,
        says: "replace i-workers-1-0 (workers-1: launched with another image",
        also: &["ami", "join-token"],
    },
    Case {
        what: "a replacement a stopped run launched: the old node goes",
        spec: demo,
        change: |o| {
            live(o, "workers-1").for_each(|i| i.version = Some("1.36.1".into()));
            let mut new = live(o, "workers-1").next().unwrap().clone();
            new.id = "i-new".into();
            new.version = None;
            new.launched_at = Some(NOW);
            o.instances.push(new);
        },
        id: "workers",
        action: Action::Update,
        says: "drain and remove i-workers-1-0 (workers-1: its replacement runs)",
        also: &[],
    },
    Case {
        what: "nodes to drain without an API server",
        spec: demo,
        change: |o| {
            live(o, "workers-1").for_each(|i| i.instance_type = Some("t3.small".into()));
            o.api = Some(crate::core::observed::ApiReach::Unreachable {
                server: "https://203.0.113.10:6443".into(),
                why: "connection refused".into(),
            });
        },
        id: "workers",
        action: Action::Refuse,
        says: "does not answer (connection refused)",
        also: &["ami", "join-token"],
    },
    Case {
        what: "workers of a pool the spec no longer has",
        spec: demo,
        change: |o| {
            o.instances.push(ObsInstance {
                id: "i-gone".into(),
                logical: Some("workers-gpu-1".into()),
                state: "running".into(),
                ..Default::default()
            })
        },
        id: "workers",
        action: Action::Update,
        says: "drain and remove i-gone (workers-gpu-1: its pool left the spec)",
        also: &[],
    },
    Case {
        what: "a pool of 0 with nothing to launch",
        spec: || {
            let mut s = demo();
            if let crate::core::spec::Flavor::Kubeadm(k) = &mut s.flavor {
                k.pools[0].count = 0;
            }
            s
        },
        change: |_| {},
        id: "workers",
        action: Action::Keep,
        says: "",
        also: &[],
    },
    Case {
        what: "the control plane a minor behind the spec",
        spec: demo,
        change: |o| live(o, "master").for_each(|i| i.version = Some("1.36".into())),
        id: "control-plane-upgrade",
        action: Action::Update,
        says: "upgrade the control plane i-master-0 from Kubernetes 1.36 to 1.37",
        also: &[],
    },
    Case {
        what: "the control plane a patch behind a pinned patch",
        spec: || {
            let mut s = demo();
            if let crate::core::spec::Flavor::Kubeadm(k) = &mut s.flavor {
                k.version.patch = Some(4);
            }
            s
        },
        change: |o| {
            live(o, "master").for_each(|i| i.version = Some("1.37.2".into()));
            o.instances
                .iter_mut()
                .filter(|i| i.logical.as_deref() != Some("master"))
                .for_each(|i| i.version = Some("1.37.4".into()));
        },
        id: "control-plane-upgrade",
        action: Action::Update,
        says: "from Kubernetes 1.37.2 to 1.37.4",
        also: &[],
    },
    Case {
        what: "a lower version than the control plane runs",
        spec: demo,
        change: |o| live(o, "master").for_each(|i| i.version = Some("1.38".into())),
        id: "control-plane-upgrade",
        action: Action::Refuse,
        says: "kubeadm cannot downgrade",
        also: &[],
    },
    Case {
        what: "a skipped minor",
        spec: demo,
        change: |o| live(o, "master").for_each(|i| i.version = Some("1.35".into())),
        id: "control-plane-upgrade",
        action: Action::Refuse,
        says: "one minor at a time; set kubeadm.kubernetes_version to \"1.36\"",
        also: &[],
    },
    Case {
        what: "workers of the old version once the control plane is upgraded",
        spec: demo,
        change: |o| {
            live(o, "master").for_each(|i| i.version = Some("1.37".into()));
            live(o, "workers-1").for_each(|i| i.version = Some("1.36".into()));
        },
        id: "workers",
        action: Action::Update,
        says: "replace i-workers-1-0 (workers-1: Kubernetes 1.36 → 1.37)",
        also: &["ami", "join-token"],
    },
];
