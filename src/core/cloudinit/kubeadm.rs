//! The kubeadm nodes' documents: the control plane's (`kubeadm init`, the CNI, the baseline,
//! the log shipper) and the workers' (`kubeadm join`), with the preparation they share.

use super::{CALICO_VERSION, CloudConfig, FLANNEL_VERSION, File, TOKEN_TTL};
use crate::core::spec::{Cni, KubeadmSpec};

/// What the master needs besides the spec.
#[derive(Debug, Clone)]
pub struct MasterInput<'a> {
    pub cluster: &'a str,
    /// The SSM parameter the control plane reads the CA (with its key) from at boot.
    pub secret_parameter: &'a str,
    pub token: &'a str,
    /// The security baseline (`core::manifests::baseline`), applied after the CNI.
    pub baseline: Option<&'a serde_json::Value>,
    /// With the logging add-on: the log shipper's manifests and the add-ons' SSM parameter
    /// (the Fluent Bit password is read from it at boot).
    pub log_shipper: Option<(&'a serde_json::Value, &'a str)>,
    /// Fixed public addresses of the control plane (Elastic IPs): the API server's certificate
    /// names them instead of whatever public address the instance has at boot, so that the
    /// endpoint outlives a stop and start. Empty: the address at boot, if any.
    pub public_addresses: &'a [std::net::IpAddr],
    /// etcd snapshots to the cluster's bucket, and the one to restore first.
    pub backups: Option<super::EtcdBackupInput<'a>>,
}

/// The boot-time fetch of the CA from SSM (python3 standard library: SigV4 with IMDSv2 role
/// credentials), so that no private key is in any user data.
pub const NODE_SCRIPT: &str = include_str!("../assets/node.py");
pub(crate) const NODE_SCRIPT_PATH: &str = "/usr/local/sbin/provision-node.py";
/// The security baseline's manifests on the control plane.
pub const BASELINE_PATH: &str = "/etc/provision/baseline.json";
/// The log shipper's manifests, and how the control plane gets its password.
pub const LOG_SHIPPER_PATH: &str = "/etc/provision/log-shipper.json";
/// The add-ons' parameter name, for the fetch script's second use.
const ADDONS_PARAMETER_PATH: &str = "/etc/provision/addons-parameter";
const ADDONS_ENV_PATH: &str = "/etc/provision/addons.env";

const NODE_EXPORTER_PATH: &str = "/usr/local/sbin/provision-node-exporter.sh";

/// Adds node_exporter (Ubuntu's `prometheus-node-exporter`, port 9100, open to the monitoring
/// add-on only) to a node's user data. Its own `runcmd` entry: a failure here never stops the
/// node from joining.
pub fn with_node_exporter(mut cc: CloudConfig) -> CloudConfig {
    cc.files.push(File {
        path: NODE_EXPORTER_PATH.into(),
        permissions: "0755",
        content: r#"#!/bin/bash
# node_exporter for the monitoring add-on (Prometheus finds this instance by its cluster tag).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
for _ in $(seq 1 20); do
  if apt-get install -y -q prometheus-node-exporter; then
    systemctl enable --now prometheus-node-exporter
    exit 0
  fi
  sleep 6
done
echo "provision: could not install prometheus-node-exporter" >&2
exit 1
"#
        .into(),
    });
    cc.runcmd.push(vec![NODE_EXPORTER_PATH.to_string()]);
    cc
}

/// What a worker needs besides the spec.
#[derive(Debug, Clone)]
pub struct WorkerInput<'a> {
    pub cluster: &'a str,
    pub master_private_ip: &'a str,
    pub token: &'a str,
    pub ca_hash: &'a str,
    /// The pool's node labels (the kubelet's `--node-labels`) and taints.
    pub labels: &'a std::collections::BTreeMap<String, String>,
    pub taints: &'a [crate::core::spec::Taint],
}

const PREP_PATH: &str = "/usr/local/sbin/provision-node-prep.sh";

/// cloud-init runs `runcmd` entries as one `sh` script without `-e`: chain the steps so that a
/// failed preparation stops the node instead of running `kubeadm` on a half-prepared host. Each
/// step runs under its phase (`provision-node.py step PHASE CMD`), which the node reports to
/// SSM with, on failure, the command and its last lines; the chain ends with `done`.
fn chain(steps: &[(&str, &str)]) -> Vec<String> {
    let mut parts: Vec<String> = steps
        .iter()
        .map(|(phase, cmd)| format!("{NODE_SCRIPT_PATH} step {phase} {cmd}"))
        .collect();
    parts.push(format!("{NODE_SCRIPT_PATH} done"));
    vec!["/bin/bash".into(), "-c".into(), parts.join(" && ")]
}

/// The node script, set up to report under the cluster's nodes path (and, on the control
/// plane, to fetch the CA from `parameter`).
pub(super) fn node_script(cluster: &str, parameter: Option<&str>) -> File {
    let mut content = NODE_SCRIPT
        .replace("__NODES__", &crate::core::progress::nodes_path(cluster))
        .replace("__CLUSTER__", cluster);
    if let Some(p) = parameter {
        content = content.replace("__PARAMETER__", p);
    }
    File {
        path: NODE_SCRIPT_PATH.into(),
        permissions: "0700",
        content,
    }
}

fn common_files(k: &KubeadmSpec) -> Vec<File> {
    vec![
        File {
            path: "/etc/modules-load.d/k8s.conf".into(),
            permissions: "0644",
            content: "overlay\nbr_netfilter\n".into(),
        },
        File {
            path: "/etc/sysctl.d/99-kubernetes.conf".into(),
            permissions: "0644",
            content: "net.ipv4.ip_forward = 1\nnet.bridge.bridge-nf-call-iptables = 1\nnet.bridge.bridge-nf-call-ip6tables = 1\n".into(),
        },
        File { path: PREP_PATH.into(), permissions: "0755", content: prep_script(k) },
    ]
}

fn prep_script(k: &KubeadmSpec) -> String {
    let deb = k
        .version
        .patch
        .map(|p| format!("1.{}.{}-1.1", k.version.minor, p))
        .unwrap_or_default();
    format!(
        r#"#!/bin/bash
# Node preparation for kubeadm, rendered by provision.
set -euo pipefail
K8S_MINOR="{minor}"
K8S_MINOR_NUM={minor_num}
K8S_DEB="{deb}"
export DEBIAN_FRONTEND=noninteractive

{retry}
swapoff -a
sed -ri '/\sswap\s/s/^([^#])/#\1/' /etc/fstab
modprobe overlay
modprobe br_netfilter
sysctl --system >/dev/null

retry apt-get update -q
retry apt-get install -y -q ca-certificates curl gpg
install -d -m 0755 /etc/apt/keyrings
# shellcheck source=/dev/null
. /etc/os-release

# containerd 2.x from Docker's repository: Kubernetes 1.36 and later need containerd 2.0+.
retry curl -fsSL -o /run/docker.asc "https://download.docker.com/linux/${{ID}}/gpg"
gpg --dearmor --yes -o /etc/apt/keyrings/docker.gpg /run/docker.asc
echo "deb [signed-by=/etc/apt/keyrings/docker.gpg] https://download.docker.com/linux/${{ID}} ${{VERSION_CODENAME}} stable" \
  > /etc/apt/sources.list.d/docker.list

# pkgs.k8s.io: one repository per minor, signed-by keyring, no apt-key.
retry curl -fsSL -o /run/kubernetes.key "https://pkgs.k8s.io/core:/stable:/${{K8S_MINOR}}/deb/Release.key"
gpg --dearmor --yes -o /etc/apt/keyrings/kubernetes-apt-keyring.gpg /run/kubernetes.key
echo "deb [signed-by=/etc/apt/keyrings/kubernetes-apt-keyring.gpg] https://pkgs.k8s.io/core:/stable:/${{K8S_MINOR}}/deb/ /" \
  > /etc/apt/sources.list.d/kubernetes.list

retry apt-get update -q
if [ -n "${{K8S_DEB}}" ]; then
  retry apt-get install -y -q containerd.io "kubelet=${{K8S_DEB}}" "kubeadm=${{K8S_DEB}}" "kubectl=${{K8S_DEB}}"
else
  retry apt-get install -y -q containerd.io kubelet kubeadm kubectl
fi
apt-mark hold kubelet kubeadm kubectl containerd.io

containerd_major=$(containerd --version | sed -E 's/^[^ ]+ [^ ]+ v?([0-9]+)\..*/\1/')
if [ "${{K8S_MINOR_NUM}}" -ge 36 ] && [ "${{containerd_major}}" -lt 2 ]; then
  echo "provision: containerd $(containerd --version) is too old for Kubernetes ${{K8S_MINOR}} (needs 2.0+)" >&2
  exit 1
fi
mkdir -p /etc/containerd
containerd config default > /etc/containerd/config.toml
sed -i 's/SystemdCgroup = false/SystemdCgroup = true/' /etc/containerd/config.toml
# Some containerd 2.x builds leave SystemdCgroup out of the default config: add it to runc's options.
if ! grep -q 'SystemdCgroup = true' /etc/containerd/config.toml; then
  sed -i "/runtimes\.runc\.options\]/a\\            SystemdCgroup = true" /etc/containerd/config.toml
fi
grep -q 'SystemdCgroup = true' /etc/containerd/config.toml
systemctl restart containerd
systemctl enable --now kubelet
"#,
        minor = k.version.repo_minor(),
        minor_num = k.version.minor,
        retry = super::RETRY_FN,
    )
}

/// The master's user data.
pub fn master(k: &KubeadmSpec, input: &MasterInput<'_>) -> CloudConfig {
    let mut files = common_files(k);
    // Compressed each on its own (`gz+b64`) though the whole document is compressed again at
    // launch: the manifests repeat over more than gzip's 32 KB window, and compressed alone they
    // are a tenth of that (30 namespaces and 30 bindings: 9.8 KB sent, against 13.2 KB).
    let mut gz_files = vec![node_script(input.cluster, Some(input.secret_parameter))];
    files.push(File {
        path: "/etc/provision/kubeadm.yaml.in".into(),
        permissions: "0600",
        content: kubeadm_init_config(k, input),
    });
    if k.cni == Cni::Calico {
        files.push(File {
            path: "/etc/provision/calico-resources.yaml".into(),
            permissions: "0644",
            content: calico_resources(k),
        });
    }
    if let Some((manifests, parameter)) = input.log_shipper {
        gz_files.push(File {
            path: LOG_SHIPPER_PATH.into(),
            permissions: "0644",
            content: serde_json::to_string(manifests).unwrap_or_default() + "\n",
        });
        files.push(File {
            path: ADDONS_PARAMETER_PATH.into(),
            permissions: "0644",
            content: format!("{parameter}\n"),
        });
    }
    if let Some(b) = input.baseline {
        gz_files.push(File {
            path: BASELINE_PATH.into(),
            permissions: "0644",
            content: serde_json::to_string(b).unwrap_or_default() + "\n",
        });
    }
    if let Some(b) = &input.backups {
        files.extend(super::etcd::files(b));
    }
    files.push(File {
        path: "/usr/local/sbin/provision-init.sh".into(),
        permissions: "0755",
        content: init_script(k, input.public_addresses, input.backups.as_ref()),
    });
    CloudConfig {
        files,
        gz_files,
        runcmd: vec![chain(&[
            ("prepare", PREP_PATH),
            ("fetch-ca", NODE_SCRIPT_PATH),
            ("kubeadm-init", "/usr/local/sbin/provision-init.sh"),
        ])],
    }
}

/// A pool's labels and taints in JoinConfiguration's nodeRegistration (indented under it),
/// every value quoted: label values and taint parts are validated, `"` cannot occur.
fn registration(
    labels: &std::collections::BTreeMap<String, String>,
    taints: &[crate::core::spec::Taint],
) -> String {
    let mut out = String::new();
    if !labels.is_empty() {
        let list: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        out.push_str(&format!(
            "  kubeletExtraArgs:\n    - name: node-labels\n      value: \"{}\"\n",
            list.join(",")
        ));
    }
    if !taints.is_empty() {
        out.push_str("  taints:\n");
        for t in taints {
            out.push_str(&format!("    - key: \"{}\"\n", t.key));
            if let Some(v) = &t.value {
                out.push_str(&format!("      value: \"{v}\"\n"));
            }
            let effect = crate::core::spec::kubernetes_effect(&t.effect).unwrap_or("NoSchedule");
            out.push_str(&format!("      effect: {effect}\n"));
        }
    }
    out
}

/// A worker's user data.
pub fn worker(k: &KubeadmSpec, input: &WorkerInput<'_>) -> CloudConfig {
    let mut files = common_files(k);
    files.push(File {
        path: "/etc/provision/kubeadm-join.yaml".into(),
        permissions: "0600",
        content: format!(
            r#"apiVersion: kubeadm.k8s.io/v1beta4
kind: JoinConfiguration
discovery:
  bootstrapToken:
    apiServerEndpoint: "{ip}:6443"
    token: "{token}"
    caCertHashes:
      - "{hash}"
timeouts:
  discovery: 15m0s
  tlsBootstrap: 10m0s
nodeRegistration:
  criSocket: unix:///var/run/containerd/containerd.sock
{registration}"#,
            ip = input.master_private_ip,
            token = input.token,
            hash = input.ca_hash,
            registration = registration(input.labels, input.taints),
        ),
    });
    files.push(File {
        path: "/usr/local/sbin/provision-join.sh".into(),
        permissions: "0755",
        content: format!(
            r#"#!/bin/bash
# Joins this worker once the API server answers; retried, never interactive.
set -euo pipefail
API="{ip}:6443"
if [ -f /etc/kubernetes/kubelet.conf ]; then
  exit 0
fi
for _ in $(seq 1 90); do
  if curl -skf --max-time 5 "https://${{API}}/readyz" >/dev/null; then
    break
  fi
  sleep 10
done
for _ in $(seq 1 10); do
  if kubeadm join --config /etc/provision/kubeadm-join.yaml; then
    exit 0
  fi
  kubeadm reset -f || true
  sleep 30
done
echo "provision: could not join the cluster at ${{API}}" >&2
exit 1
"#,
            ip = input.master_private_ip
        ),
    });
    CloudConfig {
        files,
        gz_files: vec![node_script(input.cluster, None)],
        runcmd: vec![chain(&[
            ("prepare", PREP_PATH),
            ("kubeadm-join", "/usr/local/sbin/provision-join.sh"),
        ])],
    }
}

fn kubeadm_init_config(k: &KubeadmSpec, input: &MasterInput<'_>) -> String {
    format!(
        r#"apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
bootstrapTokens:
  - token: "{token}"
    ttl: "{ttl}"
    usages: [signing, authentication]
    groups: ["system:bootstrappers:kubeadm:default-node-token"]
localAPIEndpoint:
  advertiseAddress: "__PRIVATE_IP__"
  bindPort: 6443
nodeRegistration:
  criSocket: unix:///var/run/containerd/containerd.sock
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
clusterName: "{cluster}"
kubernetesVersion: "__VERSION__"
controlPlaneEndpoint: "__PRIVATE_IP__:6443"
encryptionAlgorithm: ECDSA-P256
apiServer:
  certSANs: [__CERT_SANS__]
networking:
  podSubnet: "{pod}"
  serviceSubnet: "{svc}"
"#,
        token = input.token,
        ttl = TOKEN_TTL,
        cluster = input.cluster,
        pod = k.pod_cidr,
        svc = k.service_cidr,
    )
}

fn calico_resources(k: &KubeadmSpec) -> String {
    // VXLAN everywhere: no BGP (TCP 179), no IP-in-IP, and no need to turn off the EC2
    // source/destination check; only UDP 4789 between nodes.
    format!(
        r#"apiVersion: operator.tigera.io/v1
kind: Installation
metadata:
  name: default
spec:
  calicoNetwork:
    bgp: Disabled
    ipPools:
      - name: default-ipv4-ippool
        blockSize: 26
        cidr: {pod}
        encapsulation: VXLAN
        natOutgoing: Enabled
        nodeSelector: all()
---
apiVersion: operator.tigera.io/v1
kind: APIServer
metadata:
  name: default
spec: {{}}
"#,
        pod = k.pod_cidr
    )
}

/// The shell that sets `SANS`, the API server certificate's addresses.
pub(super) fn sans_script(public: &[std::net::IpAddr]) -> String {
    if public.is_empty() {
        return r#"PUBLIC_IP=$(metadata public-ipv4 || true)
SANS="\"${PRIVATE_IP}\""
if [ -n "${PUBLIC_IP}" ]; then
  SANS="${SANS}, \"${PUBLIC_IP}\""
fi"#
        .to_string();
    }
    let fixed: String = public.iter().map(|ip| format!(r#", \"{ip}\""#)).collect();
    format!(
        r#"# The control plane's fixed public address: the endpoint that survives a stop and start.
SANS="\"${{PRIVATE_IP}}\"{fixed}""#
    )
}

fn init_script(
    k: &KubeadmSpec,
    public: &[std::net::IpAddr],
    backups: Option<&super::EtcdBackupInput<'_>>,
) -> String {
    let sans = sans_script(public);
    let before_init = super::etcd::before_init(backups);
    let after_init = super::etcd::after_init(backups);
    let version = match k.version.patch {
        Some(p) => format!("VERSION=\"v1.{}.{}\"", k.version.minor, p),
        None => "VERSION=$(kubeadm version -o short)".to_string(),
    };
    let cni = match k.cni {
        Cni::Calico => format!(
            r#"CALICO="https://raw.githubusercontent.com/projectcalico/calico/{CALICO_VERSION}/manifests"
retry kubectl apply --server-side --force-conflicts -f "${{CALICO}}/operator-crds.yaml"
retry kubectl apply --server-side --force-conflicts -f "${{CALICO}}/tigera-operator.yaml"
retry kubectl wait --for condition=established --timeout=120s crd/installations.operator.tigera.io crd/apiservers.operator.tigera.io
retry kubectl apply --server-side --force-conflicts -f /etc/provision/calico-resources.yaml"#
        ),
        Cni::Flannel => format!(
            r#"retry curl -fsSL -o /run/kube-flannel.yml "https://github.com/flannel-io/flannel/releases/download/{FLANNEL_VERSION}/kube-flannel.yml"
sed -i "s#10.244.0.0/16#{pod}#" /run/kube-flannel.yml
retry kubectl apply -f /run/kube-flannel.yml"#,
            pod = k.pod_cidr
        ),
    };
    let baseline = BASELINE_PATH;
    let shipper = LOG_SHIPPER_PATH;
    let fetch = NODE_SCRIPT_PATH;
    let addons_parameter = ADDONS_PARAMETER_PATH;
    let addons_env = ADDONS_ENV_PATH;
    let logging_ns = crate::core::manifests::LOGGING_NAMESPACE;
    let logging_secret = crate::core::manifests::LOG_SHIPPER_SECRET;
    format!(
        r#"#!/bin/bash
# Control-plane bootstrap, rendered by provision: kubeadm init with the pre-made CA, then the CNI.
set -euo pipefail

retry() {{
  local n=0
  until "$@"; do
    n=$((n + 1))
    if [ "$n" -ge 20 ]; then
      echo "provision: giving up on: $*" >&2
      return 1
    fi
    sleep 6
  done
}}

IMDS="http://169.254.169.254/latest"
IMDS_TOKEN=$(curl -sf -X PUT "${{IMDS}}/api/token" -H "X-aws-ec2-metadata-token-ttl-seconds: 300")
metadata() {{
  curl -sf -H "X-aws-ec2-metadata-token: ${{IMDS_TOKEN}}" "${{IMDS}}/meta-data/$1"
}}
PRIVATE_IP=$(metadata local-ipv4)
{sans}
{version}

install -d -m 0700 /run/kubeadm
sed -e "s/__PRIVATE_IP__/${{PRIVATE_IP}}/g" \
    -e "s/__CERT_SANS__/${{SANS}}/" \
    -e "s/__VERSION__/${{VERSION}}/" \
    /etc/provision/kubeadm.yaml.in > /run/kubeadm/kubeadm.yaml
chmod 0600 /run/kubeadm/kubeadm.yaml

{before_init}if [ ! -f /etc/kubernetes/admin.conf ]; then
  kubeadm init "${{INIT_ARGS[@]}}"
fi
export KUBECONFIG=/etc/kubernetes/admin.conf
retry kubectl get --raw /readyz >/dev/null
{after_init}
{fetch} phase cni
{cni}

# The security baseline: namespaces, NetworkPolicies, RoleBindings (JSON is YAML to kubectl).
if [ -f {baseline} ]; then
  retry kubectl apply -f {baseline}
fi

# The log shipper, with its Elasticsearch password from the add-ons' parameter (a file, never
# an argument).
if [ -f {shipper} ]; then
  python3 {fetch} "$(cat {addons_parameter})" {addons_env}
  retry kubectl apply -f {shipper}
  umask 077
  sed -n 's/^fluent_bit_password=/password=/p' {addons_env} > /run/provision-fluent-bit.env
  rm -f {addons_env}
  if [ ! -s /run/provision-fluent-bit.env ]; then
    echo "provision: no fluent_bit_password in the log writer's parameter" >&2
    exit 1
  fi
  kubectl -n {logging_ns} create secret generic {logging_secret} \
    --from-env-file=/run/provision-fluent-bit.env --dry-run=client -o yaml > /run/provision-fluent-bit.yaml
  retry kubectl apply -f /run/provision-fluent-bit.yaml
  rm -f /run/provision-fluent-bit.env /run/provision-fluent-bit.yaml
fi

install -d -m 0755 /var/lib/provision
date -u +%FT%TZ > /var/lib/provision/init-done
"#
    )
}
