//! The script that upgrades a kubeadm control plane in place, sent with SSM Run Command
//! (`AWS-RunShellScript`), as the kubeadm upgrade guide does it: the new minor's pkgs.k8s.io
//! repository, kubeadm, `kubeadm upgrade plan` and `apply`, then the kubelet and kubectl.
//! It holds a lock (a second command waits for the first), and `kubeadm upgrade apply` is
//! idempotent, so sending it again after a stopped run is safe.

use crate::core::spec::KubernetesVersion;

/// The script for `to`.
pub fn upgrade_script(to: &KubernetesVersion) -> String {
    let deb = to
        .patch
        .map(|p| format!("1.{}.{}-1.1", to.minor, p))
        .unwrap_or_default();
    format!(
        r#"#!/bin/bash
# Upgrades this kubeadm control plane to Kubernetes {to}, rendered by provision.
set -euo pipefail
K8S_MINOR="{minor}"
K8S_MINOR_NUM={minor_num}
K8S_DEB="{deb}"
export DEBIAN_FRONTEND=noninteractive
export KUBECONFIG=/etc/kubernetes/admin.conf

# One upgrade at a time: a command sent again after a stopped run waits for this one.
exec 9>/run/provision-upgrade.lock
flock 9

{retry}
pkg() {{
  if [ -n "${{K8S_DEB}}" ]; then echo "$1=${{K8S_DEB}}"; else echo "$1"; fi
}}

containerd_major=$(containerd --version | sed -E 's/^[^ ]+ [^ ]+ v?([0-9]+)\..*/\1/')
if [ "${{K8S_MINOR_NUM}}" -ge 36 ] && [ "${{containerd_major}}" -lt 2 ]; then
  echo "provision: containerd $(containerd --version) is too old for Kubernetes ${{K8S_MINOR}} (needs 2.0+)" >&2
  exit 1
fi

retry curl -fsSL -o /run/kubernetes.key "https://pkgs.k8s.io/core:/stable:/${{K8S_MINOR}}/deb/Release.key"
gpg --dearmor --yes -o /etc/apt/keyrings/kubernetes-apt-keyring.gpg /run/kubernetes.key
echo "deb [signed-by=/etc/apt/keyrings/kubernetes-apt-keyring.gpg] https://pkgs.k8s.io/core:/stable:/${{K8S_MINOR}}/deb/ /" \
  > /etc/apt/sources.list.d/kubernetes.list
retry apt-get update -q
apt-mark unhold kubeadm kubelet kubectl
# No --allow-downgrades: apt refuses a version below the installed one, and says so.
retry apt-get install -y -q "$(pkg kubeadm)"
apt-mark hold kubeadm
target=$(kubeadm version -o short)
echo "provision: kubeadm ${{target}}"

# Idempotent: run again on a control plane already at the target, it finishes what is left.
kubeadm upgrade plan "${{target}}"
kubeadm upgrade apply -y "${{target}}"

retry apt-get install -y -q "$(pkg kubelet)" "$(pkg kubectl)"
apt-mark hold kubelet kubectl
systemctl daemon-reload
systemctl restart kubelet
echo "provision: control plane at ${{target}}"
"#,
        minor = to.repo_minor(),
        minor_num = to.minor,
        retry = super::RETRY_FN,
    )
}

/// What Run Command runs: `AWS-RunShellScript` hands its lines to `sh`, so the script goes
/// through base64 to bash, from a file of its own (a command sent again does not rewrite the
/// file one still running reads).
pub fn run_command(script: &str) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(script);
    format!("f=$(mktemp) && echo {b64} | base64 -d > \"$f\" && bash \"$f\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(s: &str) -> KubernetesVersion {
        let mut p = s.split('.').skip(1).map(|n| n.parse().unwrap());
        KubernetesVersion {
            minor: p.next().unwrap(),
            patch: p.next(),
        }
    }

    #[test]
    fn the_script_moves_the_repository_to_the_new_minor_and_pins_a_patch() {
        let s = upgrade_script(&version("1.37"));
        assert!(s.contains("K8S_MINOR=\"v1.37\"") && s.contains("K8S_DEB=\"\""));
        assert!(s.contains("kubeadm upgrade apply -y"));
        let pinned = upgrade_script(&version("1.37.2"));
        assert!(pinned.contains("K8S_DEB=\"1.37.2-1.1\""));
    }

    #[test]
    fn the_script_passes_shellcheck_and_round_trips_through_base64() {
        let script = upgrade_script(&version("1.37.2"));
        crate::core::testing::assert_shellcheck("the upgrade script", &script);
        // What the agent runs with sh decodes to the script.
        let cmd = run_command(&script)
            .replace("f=$(mktemp) && ", "")
            .replace(" > \"$f\" && bash \"$f\"", "");
        let decoded = std::process::Command::new("sh")
            .arg("-c")
            .arg(&cmd)
            .output()
            .unwrap();
        assert_eq!(String::from_utf8(decoded.stdout).unwrap(), script);
    }
}
