//! Validation of the `[kubeadm]` table.

use super::lexical::{check_instance_type, is_ami_id, parse_version};
use super::model::*;
use super::raw::*;
use super::validate::Validator;
use super::{
    DEFAULT_ETCD_BACKUP_DAYS, DEFAULT_ETCD_BACKUP_INTERVAL, DEFAULT_KUBERNETES_VERSION,
    DEFAULT_SERVICE_CIDR, UBUNTU_2404_SSM_AMD64, UBUNTU_2404_SSM_ARM64,
};
use crate::core::cidr::Ipv4Net;

impl Validator<'_> {
    pub(super) fn kubeadm(
        &mut self,
        k: &RawKubeadm,
        at: std::ops::Range<usize>,
        net: Option<&NetworkSpec>,
    ) -> Option<KubeadmSpec> {
        let version = match &k.kubernetes_version {
            None => {
                Some(parse_version(DEFAULT_KUBERNETES_VERSION).expect("default version parses"))
            }
            Some(v) => match parse_version(v.get_ref()) {
                Ok(ver) => Some(ver),
                Err(m) => {
                    self.err(v, "kubeadm.kubernetes_version", m);
                    None
                }
            },
        };
        let cni = match k.cni.get_ref().as_str() {
            "calico" => Some(Cni::Calico),
            "flannel" => Some(Cni::Flannel),
            other => {
                self.err(
                    &k.cni,
                    "kubeadm.cni",
                    format!("unknown CNI `{other}`: expected \"calico\" or \"flannel\""),
                );
                None
            }
        };
        let itype = k.instance_type.get_ref().clone();
        let arch = match check_instance_type(&itype) {
            Ok(a) => Some(a),
            Err(m) => {
                self.err(&k.instance_type, "kubeadm.instance_type", m);
                None
            }
        };
        let ami = self.ami(k, arch);
        let key_name = k.key_name.as_ref().map(|s| s.get_ref().clone());
        if let Some(kn) = &k.key_name {
            let s = kn.get_ref();
            if s.is_empty() || s.len() > 255 || !s.is_ascii() {
                self.err(
                    kn,
                    "kubeadm.key_name",
                    "key pair names are 1 to 255 ASCII characters",
                );
            }
        }
        let ssh = k.ssh.as_ref().is_some_and(|s| *s.get_ref());
        if let Some(s) = &k.ssh {
            if *s.get_ref() && key_name.is_none() {
                self.err(
                    s,
                    "kubeadm.ssh",
                    "ssh = true needs kubeadm.key_name (the image has no password login)",
                );
            }
            if *s.get_ref()
                && net.is_some_and(|n| crate::core::cidr::cover_everything(&n.admin_cidrs))
            {
                self.warn(
                    "kubeadm.ssh",
                    "SSH (22) will be open to 0.0.0.0/0 because network.admin_cidrs contains it",
                );
            }
        }
        let service_cidr: Ipv4Net = DEFAULT_SERVICE_CIDR.parse().expect("constant parses");
        // Unknown when the network is invalid (already an error): no index is refused for it.
        let zones = net.map_or(64, |n| n.subnet_cidrs.len());
        let pools = self.pools(k, at, arch, zones);
        let workers = pools
            .as_ref()
            .map_or(0, |p| p.iter().map(|p| i64::from(p.count)).sum());
        let pod_cidr = self.pod_network(k, cni, workers, service_cidr, net);
        let root = match &k.root_volume_gb {
            None => 30,
            Some(r) => {
                let v = *r.get_ref();
                if !(20..=16384).contains(&v) {
                    self.err(
                        r,
                        "kubeadm.root_volume_gb",
                        format!("{v} GiB: root volumes are 20 to 16384 GiB for a Kubernetes node"),
                    );
                }
                v.clamp(20, 16384) as i32
            }
        };
        let (etcd_backup_interval, etcd_backup_days) = self.etcd_backups(k);
        Some(KubeadmSpec {
            version: version?,
            cni: cni?,
            instance_type: itype,
            arch: arch?,
            pools: pools?,
            ami: ami?,
            key_name,
            ssh,
            pod_cidr: pod_cidr?,
            service_cidr,
            root_volume_gb: root,
            etcd_backup_interval: etcd_backup_interval?,
            etcd_backup_days: etcd_backup_days?,
        })
    }

    /// How often the control plane saves etcd (1 minute to a day, default 15 minutes) and how
    /// long the snapshots are kept (1 to 3650 days, default 7).
    fn etcd_backups(&mut self, k: &RawKubeadm) -> (Option<u32>, Option<u32>) {
        let interval = match &k.etcd_backup_interval {
            None => Some(DEFAULT_ETCD_BACKUP_INTERVAL),
            Some(i) => match crate::core::stamp::parse_ttl(i.get_ref()) {
                Ok(secs) if (60..=86_400).contains(&secs) => u32::try_from(secs).ok(),
                Ok(_) => {
                    self.err(
                        i,
                        "kubeadm.etcd_backup_interval",
                        format!("`{}`: snapshots are taken every 1m to 24h", i.get_ref()),
                    );
                    None
                }
                Err(m) => {
                    self.err(i, "kubeadm.etcd_backup_interval", m);
                    None
                }
            },
        };
        let days = match &k.etcd_backup_days {
            None => Some(DEFAULT_ETCD_BACKUP_DAYS),
            Some(d) => {
                let v = *d.get_ref();
                if (1..=3650).contains(&v) {
                    u32::try_from(v).ok()
                } else {
                    self.err(
                        d,
                        "kubeadm.etcd_backup_days",
                        format!("{v}: snapshots are kept 1 to 3650 days"),
                    );
                    None
                }
            }
        };
        (interval, days)
    }

    /// Where the nodes' image comes from: an AMI id, an SSM parameter, or Ubuntu 24.04.
    fn ami(&mut self, k: &RawKubeadm, arch: Option<Arch>) -> Option<AmiSource> {
        match &k.ami {
            None => Some(AmiSource::SsmParameter(
                match arch {
                    Some(Arch::Arm64) => UBUNTU_2404_SSM_ARM64,
                    _ => UBUNTU_2404_SSM_AMD64,
                }
                .to_string(),
            )),
            Some(a) => {
                let s = a.get_ref();
                if let Some(p) = s.strip_prefix("resolve:ssm:") {
                    if p.starts_with('/') && p.len() > 1 {
                        Some(AmiSource::SsmParameter(p.to_string()))
                    } else {
                        self.err(
                            a,
                            "kubeadm.ami",
                            format!("`{s}`: expected resolve:ssm:/parameter/path"),
                        );
                        None
                    }
                } else if is_ami_id(s) {
                    Some(AmiSource::Id(s.clone()))
                } else {
                    self.err(a, "kubeadm.ami", format!("`{s}` is neither an AMI id (ami-0123456789abcdef0) nor resolve:ssm:/parameter/path"));
                    None
                }
            }
        }
    }

    /// The pod network: the CNI's default or the spec's, checked against the node count, the
    /// VPC and the service network.
    fn pod_network(
        &mut self,
        k: &RawKubeadm,
        cni: Option<Cni>,
        workers: i64,
        service_cidr: Ipv4Net,
        net: Option<&NetworkSpec>,
    ) -> Option<Ipv4Net> {
        let pod_cidr = match (&k.pod_cidr, cni) {
            (Some(p), _) => self.cidr(p, "kubeadm.pod_cidr"),
            (None, Some(c)) => Some(c.default_pod_cidr().parse().expect("constant parses")),
            (None, None) => None,
        };
        if let Some(pod) = pod_cidr {
            let span = k
                .pod_cidr
                .as_ref()
                .map(|p| p.span())
                .unwrap_or_else(|| k.cni.span());
            if !(8..=24).contains(&pod.prefix()) {
                self.push(
                    span.clone(),
                    "kubeadm.pod_cidr",
                    format!("`{pod}` must be /8 to /24 (each node takes a /24 or smaller block)"),
                );
            }
            // The controller manager gives every node a /24 of the pod network, which Flannel
            // routes; with too small a network the last nodes never become Ready.
            if cni == Some(Cni::Flannel) && (8..=24).contains(&pod.prefix()) {
                let blocks = 1u64 << (24 - u32::from(pod.prefix()));
                let nodes = 1 + u64::try_from(workers).unwrap_or(0);
                if nodes > blocks {
                    self.push(
                        span.clone(),
                        "kubeadm.pod_cidr",
                        format!("{pod} holds {blocks} node block(s) of /24 but the cluster has {nodes} nodes; use a larger pod_cidr"),
                    );
                }
            }
            if let Some(n) = net
                && pod.overlaps(&n.vpc_cidr)
            {
                self.push(span.clone(), "kubeadm.pod_cidr", format!("pod network {pod} overlaps network.vpc_cidr {}; set kubeadm.pod_cidr to a free range", n.vpc_cidr));
            }
            if pod.overlaps(&service_cidr) {
                self.push(
                    span,
                    "kubeadm.pod_cidr",
                    format!("pod network {pod} overlaps the service network {service_cidr}"),
                );
            }
        }
        if let Some(n) = net
            && n.vpc_cidr.overlaps(&service_cidr)
        {
            self.push(
                0..0,
                "network.vpc_cidr",
                format!(
                    "{} overlaps the Kubernetes service network {service_cidr}",
                    n.vpc_cidr
                ),
            );
        }
        pod_cidr
    }
}
