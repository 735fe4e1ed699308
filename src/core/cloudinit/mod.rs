//! cloud-init user data for the kubeadm control plane ("master") and the workers.
//!
//! Both share one node-preparation script (modules, sysctls, swap off, containerd with
//! `SystemdCgroup`, kubelet/kubeadm/kubectl from pkgs.k8s.io for the chosen minor).
//! The master also gets the cluster CA (key included), a kubeadm `v1beta4` config with the
//! bootstrap token, and a script that reads its own IPs from IMDSv2 at boot, runs `kubeadm init`
//! and installs the CNI. Workers get only the token and the CA's SPKI hash: no private key ever
//! goes into worker user data.

mod etcd;
mod kubeadm;
#[cfg(test)]
mod tests;
mod upgrade;

pub use etcd::{EtcdBackupInput, digest, fetch_script, install_script, retime_script};
pub use upgrade::{run_command, upgrade_script};

pub use kubeadm::{
    BASELINE_PATH, LOG_SHIPPER_PATH, MasterInput, NODE_SCRIPT, WorkerInput, master,
    with_node_exporter, worker,
};

/// The version of what a worker boots with: a change that should replace running workers
/// (their bootstrap differs in a way that matters) raises it (`worker_pool::launch_hash`).
pub const WORKER_DOCUMENT_VERSION: u32 = 1;

/// A shell function the node scripts share: runs its arguments until they succeed, 10 tries
/// with a growing pause (apt's lock held by apt-daily, a mirror that hiccups).
pub(crate) const RETRY_FN: &str = r#"retry() {
  local n=0
  until "$@"; do
    n=$((n + 1))
    if [ "$n" -ge 10 ]; then
      echo "provision: giving up on: $*" >&2
      return 1
    fi
    sleep $((n * 6))
  done
}
"#;

/// EC2 limits user data to 16 KB before base64: what counts is what is sent, which for an
/// instance is the gzip-compressed document ([`crate::core::userdata::pack`]).
pub const USER_DATA_LIMIT: usize = 16 * 1024;
/// Pinned CNI releases (see kubeadm-bootstrap.md §4).
pub const CALICO_VERSION: &str = "v3.32.2";
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

/// gzip at the best compression.
pub fn gzip(text: &str) -> Vec<u8> {
    use std::io::Write as _;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    // Writing to a Vec cannot fail.
    let _ = enc.write_all(text.as_bytes());
    enc.finish().unwrap_or_default()
}

/// gzip, then base64: cloud-init's `gz+b64` encoding.
pub fn gz_b64(text: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(gzip(text))
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

/// Test support: runs `body` as Python with the fetch script imported as `m`, and returns what
/// it prints. One harness for every test that checks the script's SigV4 signer.
#[cfg(test)]
pub(crate) fn run_fetch_script_python(body: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fetch_ca.py");
    std::fs::write(&path, NODE_SCRIPT.replace("__PARAMETER__", "/p")).unwrap();
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
