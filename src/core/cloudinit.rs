//! cloud-init user data for the kubeadm control plane ("master") and the workers.
//!
//! Both share one node-preparation script (modules, sysctls, swap off, containerd with
//! `SystemdCgroup`, kubelet/kubeadm/kubectl from pkgs.k8s.io for the chosen minor).
//! The master also gets the cluster CA (key included), a kubeadm `v1beta4` config with the
//! bootstrap token, and a script that reads its own IPs from IMDSv2 at boot, runs `kubeadm init`
//! and installs the CNI. Workers get only the token and the CA's SPKI hash: no private key ever
//! goes into worker user data.

use super::spec::{Cni, KubeadmSpec};

/// EC2 limits user data to 16 KB before base64.
pub const USER_DATA_LIMIT: usize = 16 * 1024;
/// Pinned CNI releases (see kubeadm-bootstrap.md §4).
pub const CALICO_VERSION: &str = "v3.32.0";
pub const FLANNEL_VERSION: &str = "v0.28.9";
/// Bootstrap tokens expire: long enough for slow boots and a resumed `up`, short enough to limit
/// what a token read from a worker's user data is worth.
pub const TOKEN_TTL: &str = "4h0m0s";
const _: () = assert!(
    super::pki::TOKEN_TTL_SECS == 4 * 3600,
    "TOKEN_TTL and TOKEN_TTL_SECS agree"
);

/// One file written by cloud-init.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct File {
    pub path: String,
    pub permissions: &'static str,
    pub content: String,
}

/// A cloud-config document before rendering: files and commands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloudConfig {
    pub files: Vec<File>,
    /// Files written gzip-compressed (`encoding: gz+b64`): large, repetitive data (manifests)
    /// that would not fit the 16 KB user-data limit as text. `content` is the plain text.
    pub gz_files: Vec<File>,
    pub runcmd: Vec<Vec<String>>,
}

/// gzip, then base64: cloud-init's `gz+b64` encoding.
pub fn gz_b64(text: &str) -> String {
    use base64::Engine as _;
    use std::io::Write as _;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    // Writing to a Vec cannot fail.
    let _ = enc.write_all(text.as_bytes());
    let bytes = enc.finish().unwrap_or_default();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

impl CloudConfig {
    /// Renders `#cloud-config` YAML. Every file's content is a literal block, so scripts and
    /// PEM data need no escaping.
    pub fn render(&self) -> String {
        let mut out = String::from("#cloud-config\n");
        out.push_str("write_files:\n");
        for f in &self.files {
            out.push_str(&format!("  - path: {}\n", f.path));
            out.push_str("    owner: root:root\n");
            out.push_str(&format!("    permissions: '{}'\n", f.permissions));
            out.push_str("    content: |\n");
            for line in f.content.lines() {
                if line.is_empty() {
                    out.push('\n');
                } else {
                    out.push_str("      ");
                    out.push_str(line);
                    out.push('\n');
                }
            }
        }
        for f in &self.gz_files {
            out.push_str(&format!("  - path: {}\n", f.path));
            out.push_str("    owner: root:root\n");
            out.push_str(&format!("    permissions: '{}'\n", f.permissions));
            out.push_str("    encoding: gz+b64\n");
            out.push_str(&format!("    content: {}\n", gz_b64(&f.content)));
        }
        out.push_str("runcmd:\n");
        for cmd in &self.runcmd {
            let quoted: Vec<String> = cmd
                .iter()
                .map(|a| format!("'{}'", a.replace('\'', "''")))
                .collect();
            out.push_str(&format!("  - [{}]\n", quoted.join(", ")));
        }
        out
    }

    /// The files that are shell scripts (for shellcheck).
    pub fn scripts(&self) -> impl Iterator<Item = &File> {
        self.files
            .iter()
            .filter(|f| f.content.starts_with("#!/bin/bash"))
    }
}

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
}

/// The boot-time fetch of the CA from SSM (python3 standard library: SigV4 with IMDSv2 role
/// credentials), so that no private key is in any user data.
pub const FETCH_CA_SCRIPT: &str = include_str!("assets/fetch-ca.py");
const FETCH_CA_PATH: &str = "/usr/local/sbin/provision-fetch-ca.py";
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
    pub master_private_ip: &'a str,
    pub token: &'a str,
    pub ca_hash: &'a str,
}

const PREP_PATH: &str = "/usr/local/sbin/provision-node-prep.sh";

/// cloud-init runs `runcmd` entries as one `sh` script without `-e`: chain the steps so that a
/// failed preparation stops the node instead of running `kubeadm` on a half-prepared host.
fn chain(steps: &[&str]) -> Vec<String> {
    vec!["/bin/bash".into(), "-c".into(), steps.join(" && ")]
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

retry() {{
  local n=0
  until "$@"; do
    n=$((n + 1))
    if [ "$n" -ge 10 ]; then
      echo "provision: giving up on: $*" >&2
      return 1
    fi
    sleep $((n * 6))
  done
}}

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
    )
}

/// The master's user data.
pub fn master(k: &KubeadmSpec, input: &MasterInput<'_>) -> CloudConfig {
    let mut files = common_files(k);
    // Compressed: the script is a third of the 16 KB user-data budget as text.
    let mut gz_files = vec![File {
        path: FETCH_CA_PATH.into(),
        permissions: "0700",
        content: FETCH_CA_SCRIPT.replace("__PARAMETER__", input.secret_parameter),
    }];
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
    files.push(File {
        path: "/usr/local/sbin/provision-init.sh".into(),
        permissions: "0755",
        content: init_script(k),
    });
    CloudConfig {
        files,
        gz_files,
        runcmd: vec![chain(&[
            PREP_PATH,
            FETCH_CA_PATH,
            "/usr/local/sbin/provision-init.sh",
        ])],
    }
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
"#,
            ip = input.master_private_ip,
            token = input.token,
            hash = input.ca_hash,
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
        gz_files: Vec::new(),
        runcmd: vec![chain(&[PREP_PATH, "/usr/local/sbin/provision-join.sh"])],
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

fn init_script(k: &KubeadmSpec) -> String {
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
    let fetch = FETCH_CA_PATH;
    let addons_parameter = ADDONS_PARAMETER_PATH;
    let addons_env = ADDONS_ENV_PATH;
    let logging_ns = super::manifests::LOGGING_NAMESPACE;
    let logging_secret = super::manifests::LOG_SHIPPER_SECRET;
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
PUBLIC_IP=$(metadata public-ipv4 || true)
SANS="\"${{PRIVATE_IP}}\""
if [ -n "${{PUBLIC_IP}}" ]; then
  SANS="${{SANS}}, \"${{PUBLIC_IP}}\""
fi
{version}

install -d -m 0700 /run/kubeadm
sed -e "s/__PRIVATE_IP__/${{PRIVATE_IP}}/g" \
    -e "s/__CERT_SANS__/${{SANS}}/" \
    -e "s/__VERSION__/${{VERSION}}/" \
    /etc/provision/kubeadm.yaml.in > /run/kubeadm/kubeadm.yaml
chmod 0600 /run/kubeadm/kubeadm.yaml

if [ ! -f /etc/kubernetes/admin.conf ]; then
  kubeadm init --config /run/kubeadm/kubeadm.yaml
fi
export KUBECONFIG=/etc/kubernetes/admin.conf
retry kubectl get --raw /readyz >/dev/null

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

/// Test support: runs `body` as Python with the fetch script imported as `m`, and returns what
/// it prints. One harness for every test that checks the script's SigV4 signer.
#[cfg(test)]
pub(crate) fn run_fetch_script_python(body: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fetch_ca.py");
    std::fs::write(&path, FETCH_CA_SCRIPT.replace("__PARAMETER__", "/p")).unwrap();
    let program = format!(
        "import importlib.util\nspec = importlib.util.spec_from_file_location(\"f\", {:?})\nm = importlib.util.module_from_spec(spec)\nspec.loader.exec_module(m)\n{body}",
        path.display().to_string()
    );
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(program)
        .output()
        .expect("python3 is installed");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::spec;
    use std::process::Command;

    const SPEC: &str = r#"
name = "ci"
region = "us-east-1"
kind = "kubeadm"
[network]
vpc_cidr = "10.0.0.0/16"
admin_cidrs = ["203.0.113.0/24"]
[kubeadm]
cni = "CNI"
instance_type = "t3.medium"
workers = 2
"#;

    fn kubeadm(cni: &str) -> KubeadmSpec {
        spec::parse("t.toml", &SPEC.replace("CNI", cni))
            .unwrap()
            .0
            .kubeadm()
            .unwrap()
            .clone()
    }

    fn fixtures() -> Vec<(String, CloudConfig)> {
        let ca = crate::core::pki::generate_ca(time::OffsetDateTime::now_utc()).unwrap();
        let token = crate::core::pki::generate_token().unwrap();
        let hash = ca.discovery_hash().unwrap();
        let mut out = Vec::new();
        // The largest baseline a spec is likely to carry: 10 namespaces, 10 bindings.
        let sec = crate::core::spec::SecuritySpec {
            namespaces: (0..10).map(|i| format!("team-{i}")).collect(),
            default_deny: true,
            default_deny_egress: true,
            bindings: (0..10)
                .map(|i| crate::core::spec::Binding {
                    subject: crate::core::spec::Subject::Group(format!("team-{i}-developers")),
                    role: crate::core::spec::BindingRole::Edit,
                    namespaces: vec![format!("team-{i}")],
                })
                .collect(),
        };
        let baseline = crate::core::manifests::baseline(&sec).unwrap();
        let shipper = crate::core::manifests::log_shipper(
            "10.0.0.9",
            "cr.fluentbit.io/fluent/fluent-bit:4.2.0",
        );
        for cni in ["calico", "flannel"] {
            let k = kubeadm(cni);
            let m = master(
                &k,
                &MasterInput {
                    cluster: "ci",
                    secret_parameter: "/provision/ci/bootstrap",
                    token: &token,
                    baseline: (cni == "calico").then_some(&baseline),
                    log_shipper: (cni == "calico").then_some((&shipper, "/provision/ci/addons")),
                },
            );
            let w = worker(
                &k,
                &WorkerInput {
                    master_private_ip: "10.0.0.10",
                    token: &token,
                    ca_hash: &hash,
                },
            );
            out.push((format!("master-{cni}"), m));
            out.push((format!("worker-{cni}"), w));
        }
        let with = with_node_exporter(out[1].1.clone());
        out.push(("worker-node-exporter".into(), with));
        out
    }

    #[test]
    fn user_data_fits_the_ec2_limit() {
        for (name, cc) in fixtures() {
            let n = cc.render().len();
            assert!(n <= USER_DATA_LIMIT, "{name}: {n} bytes");
        }
    }

    #[test]
    fn no_user_data_holds_a_private_key() {
        for (name, cc) in fixtures() {
            let text = cc.render();
            assert!(!text.contains("PRIVATE KEY"), "{name}");
            if name.starts_with("worker") {
                assert!(
                    text.contains("caCertHashes") && text.contains("sha256:"),
                    "{name}"
                );
            } else {
                // The control plane fetches the CA from SSM at boot, before kubeadm init.
                let fetch = cc
                    .files
                    .iter()
                    .chain(&cc.gz_files)
                    .find(|f| f.path == FETCH_CA_PATH)
                    .expect("fetch script");
                assert!(
                    fetch
                        .content
                        .contains("PARAMETER = \"/provision/ci/bootstrap\"")
                );
                assert_eq!(fetch.permissions, "0700");
                assert!(cc.runcmd[0][2].contains(&format!(
                    "{FETCH_CA_PATH} && /usr/local/sbin/provision-init.sh"
                )));
            }
        }
    }

    /// The fetch script compiles and its SigV4 signer reproduces AWS's published test-suite
    /// signatures (get-vanilla, get-vanilla-query-order-key-case).
    #[test]
    fn fetch_script_signs_like_aws() {
        let out = crate::core::cloudinit::run_fetch_script_python(
            r#"
creds = {"AccessKeyId": "AKIDEXAMPLE", "SecretAccessKey": "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"}
h = {"Host": "example.amazonaws.com", "X-Amz-Date": "20150830T123600Z"}
for q in ["", "Param1=value1&Param2=value2"]:
    print(m.authorization("GET", "example.amazonaws.com", "/", q, h, b"", creds, "us-east-1", "service", "20150830T123600Z"))
"#,
        );
        let got = out;
        let lines: Vec<&str> = got.lines().collect();
        let prefix = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=";
        assert_eq!(
            lines[0],
            format!("{prefix}5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31")
        );
        assert_eq!(
            lines[1],
            format!("{prefix}b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500")
        );
    }

    #[test]
    fn the_master_applies_the_security_baseline_after_the_cni() {
        let (_, calico) = fixtures().into_iter().next().unwrap();
        let file = calico
            .gz_files
            .iter()
            .find(|f| f.path == BASELINE_PATH)
            .expect("the baseline is written");
        let list: serde_json::Value = serde_json::from_str(&file.content).unwrap();
        assert_eq!(crate::core::manifests::check(&list), Vec::<String>::new());
        let init = calico
            .files
            .iter()
            .find(|f| f.path == "/usr/local/sbin/provision-init.sh")
            .unwrap();
        let cni = init.content.find("calico-resources.yaml").unwrap();
        let apply = init
            .content
            .find("kubectl apply -f /etc/provision/baseline.json")
            .unwrap();
        assert!(apply > cni, "after the CNI");
    }

    #[test]
    fn pod_cidr_reaches_the_cni_and_kubeadm() {
        let mut k = kubeadm("flannel");
        k.pod_cidr = "10.128.0.0/16".parse().unwrap();
        let m = master(
            &k,
            &MasterInput {
                cluster: "ci",
                secret_parameter: "/provision/ci/bootstrap",
                token: "abcdef.0123456789abcdef",
                baseline: None,
                log_shipper: None,
            },
        );
        let text = m.render();
        assert!(text.contains("podSubnet: \"10.128.0.0/16\""));
        // The stock manifest says 10.244.0.0/16; the init script rewrites it to ours.
        assert!(text.contains("sed -i \"s#10.244.0.0/16#10.128.0.0/16#\" /run/kube-flannel.yml"));
        assert!(text.contains("kube-flannel.yml"));
        let k = kubeadm("calico");
        let m = master(
            &k,
            &MasterInput {
                cluster: "ci",
                secret_parameter: "/provision/ci/bootstrap",
                token: "abcdef.0123456789abcdef",
                baseline: None,
                log_shipper: None,
            },
        );
        let text = m.render();
        assert!(text.contains("cidr: 192.168.0.0/16"));
        assert!(text.contains("podSubnet: \"192.168.0.0/16\""));
        assert!(text.contains("encapsulation: VXLAN"));
    }

    /// The rendered YAML parses back to exactly the files we meant (literal blocks kept intact).
    #[test]
    fn rendered_yaml_round_trips() {
        #[derive(serde::Deserialize)]
        struct Doc {
            write_files: Vec<WF>,
            runcmd: Vec<Vec<String>>,
        }
        #[derive(serde::Deserialize)]
        struct WF {
            path: String,
            permissions: String,
            content: String,
            encoding: Option<String>,
        }
        for (name, cc) in fixtures() {
            let doc: Doc =
                serde_saphyr::from_str(&cc.render()).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(doc.write_files.len(), cc.files.len() + cc.gz_files.len());
            for (got, want) in doc
                .write_files
                .iter()
                .zip(cc.files.iter().chain(&cc.gz_files))
            {
                assert_eq!(got.path, want.path);
                assert_eq!(got.permissions, want.permissions);
                let content = match got.encoding.as_deref() {
                    None => got.content.clone(),
                    Some("gz+b64") => {
                        use base64::Engine as _;
                        use std::io::Read as _;
                        let raw = base64::engine::general_purpose::STANDARD
                            .decode(&got.content)
                            .unwrap();
                        let mut text = String::new();
                        flate2::read::GzDecoder::new(&raw[..])
                            .read_to_string(&mut text)
                            .unwrap();
                        text
                    }
                    Some(other) => panic!("{name}: encoding {other}"),
                };
                assert_eq!(content, want.content, "{name}: {}", want.path);
            }
            assert_eq!(doc.runcmd, cc.runcmd);
        }
    }

    fn tool(name: &str) -> std::path::PathBuf {
        let found = std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
            .map(|d| d.join(name))
            .find(|p| p.is_file());
        found.unwrap_or_else(|| {
            panic!("`{name}` is not installed: run `make deps` (apt-get install {name})")
        })
    }

    /// `cloud-init schema` accepts every rendered document.
    #[test]
    fn cloud_init_schema_accepts_user_data() {
        let ci = tool("cloud-init");
        let dir = tempfile::tempdir().unwrap();
        let all = fixtures()
            .into_iter()
            .chain(crate::core::addons::tests::fixtures());
        for (name, cc) in all {
            let path = dir.path().join(format!("{name}.yaml"));
            std::fs::write(&path, cc.render()).unwrap();
            let out = Command::new(&ci)
                .args(["schema", "--config-file"])
                .arg(&path)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{name}: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        // The check itself must be able to fail: a broken document is refused.
        let bad = dir.path().join("bad.yaml");
        std::fs::write(&bad, "#cloud-config\nruncmd: \"echo\"\nwrite_files:\n  - contentz: x\n    permissions: 0644\n").unwrap();
        let out = Command::new(&ci)
            .args(["schema", "--config-file"])
            .arg(&bad)
            .output()
            .unwrap();
        assert!(!out.status.success());
    }

    /// Every script passes shellcheck.
    #[test]
    fn shellcheck_accepts_every_script() {
        let sc = tool("shellcheck");
        let dir = tempfile::tempdir().unwrap();
        let mut checked = 0;
        let all = fixtures()
            .into_iter()
            .chain(crate::core::addons::tests::fixtures());
        for (name, cc) in all {
            for (i, f) in cc.scripts().enumerate() {
                let path = dir.path().join(format!("{name}-{i}.sh"));
                std::fs::write(&path, &f.content).unwrap();
                let out = Command::new(&sc)
                    .args(["-s", "bash", "-S", "style"])
                    .arg(&path)
                    .output()
                    .unwrap();
                assert!(
                    out.status.success(),
                    "{name} {}:\n{}",
                    f.path,
                    String::from_utf8_lossy(&out.stdout)
                );
                checked += 1;
            }
        }
        assert_eq!(
            checked, 16,
            "prep + init/join for two CNIs and two roles, a worker with node_exporter, three add-ons, EKS node agents"
        );
    }
}
