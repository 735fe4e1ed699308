//! The control plane's etcd snapshots: a systemd timer that saves one (with the keys kubeadm
//! made: service-account, front-proxy and etcd CAs) to the cluster's bucket every interval, and
//! the restore a new control plane runs before `kubeadm init` when the old one was lost
//! (`etcdutl snapshot restore` from kubeadm's own etcd image, then init over the restored data).

use super::File;
use super::kubeadm::NODE_SCRIPT_PATH;

/// What the control plane's document needs for its snapshots.
#[derive(Debug, Clone, Copy)]
pub struct EtcdBackupInput<'a> {
    pub bucket: &'a str,
    /// Where in the bucket this cluster's snapshots go (`backup_bucket::snapshot_prefix`).
    pub prefix: &'a str,
    /// Seconds between snapshots.
    pub interval: u32,
    /// The snapshot to restore first (a key `backup_bucket::is_snapshot_key` accepted).
    pub restore: Option<&'a str>,
}

pub(super) const BACKUP_PATH: &str = "/usr/local/sbin/provision-etcd-backup.sh";
pub(super) const RESTORE_PATH: &str = "/usr/local/sbin/provision-etcd-restore.sh";
const UNIT: &str = "provision-etcd-backup";

fn timer_path() -> String {
    format!("/etc/systemd/system/{UNIT}.timer")
}

/// The backup timer: a snapshot two minutes after it starts, then every `interval` seconds.
fn timer(interval: u32) -> String {
    format!(
        "[Unit]\nDescription=provision: an etcd snapshot every {every}\n\n[Timer]\nOnActiveSec=120\nOnUnitActiveSec={interval}\nAccuracySec=30\n\n[Install]\nWantedBy=timers.target\n",
        every = crate::core::stamp::format_duration(i64::from(interval)),
    )
}

/// What Run Command sends a running control plane to save etcd every `interval` seconds: the
/// timer rewritten and restarted (when the boot has enabled it; a boot still under way reads
/// the new file when it does).
pub fn retime_script(interval: u32) -> String {
    format!(
        "#!/bin/bash\n# Sets the etcd snapshots' interval of this control plane; rendered by provision.\nset -euo pipefail\ncat > {path} <<'EOF'\n{timer}EOF\nsystemctl daemon-reload\nif systemctl is-enabled --quiet {UNIT}.timer; then\n  systemctl restart {UNIT}.timer\nfi\necho \"provision: etcd snapshots every {every}\"\n",
        path = timer_path(),
        timer = timer(interval),
        every = crate::core::stamp::format_duration(i64::from(interval)),
    )
}

/// What a control plane launched before etcd snapshots runs to save them, as one launched now
/// does: provision-node.py of this release (its S3 client; for `cluster`, with the CA in
/// `secret_parameter`), the backup script, its service and timer, each written to a temporary
/// file of its own moved in place (two installers at once do not mix); then the timer enabled. Fetched from the bucket by [`fetch_script`]
/// (node.py alone is 16 KB).
pub fn install_script(b: &EtcdBackupInput<'_>, cluster: &str, secret_parameter: &str) -> String {
    let mut files = vec![super::kubeadm::node_script(cluster, Some(secret_parameter))];
    files.extend(self::files(&EtcdBackupInput {
        restore: None,
        ..*b
    }));
    let writes: String = files
        .iter()
        .map(|f| {
            let end = if f.content.ends_with('\n') { "" } else { "\n" };
            format!(
                "install -d -m 0755 \"$(dirname {path})\"\ntmp=$(mktemp {path}.XXXXXX)\ncat > \"$tmp\" <<'{EOF}'\n{content}{end}{EOF}\nchmod {mode} \"$tmp\"\nmv -f \"$tmp\" {path}\n",
                path = f.path,
                content = f.content,
                mode = f.permissions,
            )
        })
        .collect();
    format!(
        "#!/bin/bash\n# etcd snapshots for a control plane launched before them, to s3://{bucket}/{prefix}; rendered by provision.\nset -euo pipefail\numask 077\n{writes}systemctl daemon-reload\nsystemctl enable {UNIT}.timer\nsystemctl restart {UNIT}.timer\necho \"provision: etcd snapshots every {every} to s3://{bucket}/{prefix}\"\n",
        bucket = b.bucket,
        prefix = b.prefix,
        every = crate::core::stamp::format_duration(i64::from(b.interval)),
    )
}

/// The SHA-256 of a script, in hex (what [`fetch_script`] checks).
pub fn digest(script: &str) -> String {
    use sha2::Digest as _;
    crate::core::pki::hex(&sha2::Sha256::digest(script.as_bytes()))
}

/// The heredocs' delimiter in [`install_script`] (no line of the files it writes is this).
const EOF: &str = "PROVISION_FILE_END";

/// What Run Command sends to run the [`install_script`] at `url` (a presigned GET of the bucket's
/// copy): fetched with retries, run only when its SHA-256 is `sha256`.
pub fn fetch_script(url: &str, sha256: &str) -> String {
    format!(
        "#!/bin/bash\n# Fetches and runs provision's etcd snapshots' installer; rendered by provision.\nset -euo pipefail\nf=$(mktemp)\ntrap 'rm -f \"$f\"' EXIT\ncurl -fsS --retry 5 --retry-delay 2 --max-time 120 -o \"$f\" '{url}'\necho \"{sha256}  $f\" | sha256sum -c --quiet -\nbash \"$f\"\n"
    )
}

/// The backup script and its service and timer (enabled by the init script once the control
/// plane runs), and the restore script when there is a snapshot to restore.
pub(super) fn files(b: &EtcdBackupInput<'_>) -> Vec<File> {
    let mut out = vec![
        File {
            path: BACKUP_PATH.into(),
            permissions: "0700",
            content: backup_script(b.bucket, b.prefix),
        },
        File {
            path: format!("/etc/systemd/system/{UNIT}.service"),
            permissions: "0644",
            content: format!(
                "[Unit]\nDescription=provision: save an etcd snapshot to s3://{bucket}/{prefix}\nAfter=kubelet.service\n\n[Service]\nType=oneshot\nExecStart={BACKUP_PATH}\n# The upload gives up before systemd does.\nEnvironment=PROVISION_S3_DEADLINE_SECONDS=600\nTimeoutStartSec=900\n",
                bucket = b.bucket,
                prefix = b.prefix,
            ),
        },
        File {
            path: timer_path(),
            permissions: "0644",
            content: timer(b.interval),
        },
    ];
    if let Some(key) = b.restore {
        out.push(File {
            path: RESTORE_PATH.into(),
            permissions: "0700",
            content: restore_script(b.bucket, key),
        });
    }
    out
}

/// The init script's lines before `kubeadm init`: the restore (once: not over etcd data that
/// exists), and the preflight check kubeadm skips over restored data.
pub(super) fn before_init(b: Option<&EtcdBackupInput<'_>>) -> String {
    let restore = match b.and_then(|b| b.restore) {
        Some(_) => format!(
            r#"if [ ! -f /etc/kubernetes/admin.conf ] && [ ! -d /var/lib/etcd/member ]; then
  {NODE_SCRIPT_PATH} phase etcd-restore
  {RESTORE_PATH} "${{VERSION}}" "${{PRIVATE_IP}}"
fi
"#
        ),
        None => String::new(),
    };
    format!(
        r#"{restore}INIT_ARGS=(--config /run/kubeadm/kubeadm.yaml)
if [ -d /var/lib/etcd/member ]; then
  # Restored from a snapshot: kubeadm init over the restored data.
  INIT_ARGS+=(--ignore-preflight-errors=DirAvailable--var-lib-etcd)
fi
"#
    )
}

/// The init script's lines once the control plane runs: the snapshots' timer.
pub(super) fn after_init(b: Option<&EtcdBackupInput<'_>>) -> String {
    match b {
        Some(_) => format!("systemctl daemon-reload\nsystemctl enable --now {UNIT}.timer\n"),
        None => String::new(),
    }
}

/// crictl pointed at containerd (its list of default endpoints is deprecated).
const CRICTL_FN: &str = r#"crictl() {
  command crictl --runtime-endpoint unix:///run/containerd/containerd.sock "$@"
}
"#;

fn backup_script(bucket: &str, prefix: &str) -> String {
    format!(
        r#"#!/bin/bash
# An etcd snapshot, with the keys kubeadm made, to s3://{bucket}/{prefix}; rendered by provision.
set -euo pipefail
umask 077
BUCKET="{bucket}"
{crictl}
# Inside etcd's data directory: the etcd container (which has etcdctl) writes there.
WORK=/var/lib/etcd/provision-backup
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
install -d -m 0700 "${{WORK}}"
trap 'rm -rf "${{WORK}}"' EXIT
ETCD=$(crictl ps --name '^etcd$' --state running -q | head -n 1)
if [ -z "${{ETCD}}" ]; then
  echo "provision: no running etcd container to snapshot" >&2
  exit 1
fi
crictl exec "${{ETCD}}" etcdctl --endpoints=https://127.0.0.1:2379 \
  --cacert=/etc/kubernetes/pki/etcd/ca.crt \
  --cert=/etc/kubernetes/pki/etcd/healthcheck-client.crt \
  --key=/etc/kubernetes/pki/etcd/healthcheck-client.key \
  snapshot save "${{WORK}}/snapshot.db"
# Only the keys a restore puts back: never the cluster CA's (it stays in its SSM SecureString).
tar -czf "${{WORK}}/backup.tar.gz" -C "${{WORK}}" snapshot.db -C /etc/kubernetes {keys}
python3 {node} s3-put "${{BUCKET}}" "{prefix}${{STAMP}}{suffix}" "${{WORK}}/backup.tar.gz"
echo "provision: saved s3://${{BUCKET}}/{prefix}${{STAMP}}{suffix}"
"#,
        suffix = crate::core::kinds::backup_bucket::SNAPSHOT_SUFFIX,
        node = NODE_SCRIPT_PATH,
        crictl = CRICTL_FN,
        keys = RESTORED_KEYS
            .iter()
            .map(|k| format!("pki/{k}"))
            .collect::<Vec<_>>()
            .join(" "),
    )
}

/// The keys kubeadm made that a restore puts back (tokens and clients were made with them);
/// the cluster CA comes from the bootstrap secret, the rest kubeadm makes again.
const RESTORED_KEYS: [&str; 6] = [
    "sa.key",
    "sa.pub",
    "front-proxy-ca.crt",
    "front-proxy-ca.key",
    "etcd/ca.crt",
    "etcd/ca.key",
];

fn restore_script(bucket: &str, key: &str) -> String {
    format!(
        r#"#!/bin/bash
# Restores s3://{bucket}/{key} into /var/lib/etcd before kubeadm init, rendered by provision:
# the lost control plane's keys (service accounts, front proxy, etcd CA) and its etcd data, as a
# one-member cluster at this instance's address (the old control plane's).
# Usage: provision-etcd-restore.sh KUBERNETES-VERSION PRIVATE-IP
set -euo pipefail
umask 077
VERSION="$1"
PRIVATE_IP="$2"
WORK=/run/provision-restore
{retry}{crictl}
install -d -m 0700 "${{WORK}}"
trap 'rm -rf "${{WORK}}"' EXIT
python3 {node} s3-get "{bucket}" "{key}" "${{WORK}}/backup.tar.gz"
tar -xzf "${{WORK}}/backup.tar.gz" -C "${{WORK}}"
install -d -m 0755 /etc/kubernetes/pki/etcd
for f in {keys}; do
  if [ -f "${{WORK}}/pki/${{f}}" ]; then
    cp "${{WORK}}/pki/${{f}}" "/etc/kubernetes/pki/${{f}}"
  fi
done
# kubeadm names the node, and its etcd member, after the host name.
NAME=$(hostname | tr '[:upper:]' '[:lower:]')
ETCD_IMAGE=$(kubeadm config images list --kubernetes-version "${{VERSION}}" | grep '/etcd:')
retry crictl pull "${{ETCD_IMAGE}}"
# Into a directory of its own, moved in place once whole: a restore killed halfway is made
# again, not taken for restored data.
rm -rf /var/lib/etcd.restore
ctr -n k8s.io containers rm provision-etcd-restore >/dev/null 2>&1 || true
ctr -n k8s.io run --rm \
  --mount "type=bind,src=/var/lib,dst=/var/lib,options=rbind:rw" \
  --mount "type=bind,src=${{WORK}},dst=${{WORK}},options=rbind:ro" \
  "${{ETCD_IMAGE}}" provision-etcd-restore \
  etcdutl snapshot restore "${{WORK}}/snapshot.db" \
    --data-dir /var/lib/etcd.restore \
    --name "${{NAME}}" \
    --initial-cluster "${{NAME}}=https://${{PRIVATE_IP}}:2380" \
    --initial-advertise-peer-urls "https://${{PRIVATE_IP}}:2380" \
    --bump-revision 1000000000 --mark-compacted
chmod 0700 /var/lib/etcd.restore
rm -rf /var/lib/etcd
mv /var/lib/etcd.restore /var/lib/etcd
echo "provision: restored etcd from s3://{bucket}/{key}"
"#,
        retry = super::RETRY_FN,
        node = NODE_SCRIPT_PATH,
        crictl = CRICTL_FN,
        keys = RESTORED_KEYS.join(" "),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_installer_writes_the_boots_files_and_node_script_then_starts_the_timer() {
        let b = EtcdBackupInput {
            bucket: "b",
            prefix: "etcd/x/",
            interval: 900,
            restore: Some("etcd/x/20260101T000000Z.tar.gz"),
        };
        let script = install_script(&b, "demo", "/provision/demo/bootstrap");
        crate::core::testing::assert_shellcheck("the snapshots' installer", &script);
        // The very files a control plane launched now writes (no restore), each whole.
        let mut want = vec![super::super::kubeadm::node_script(
            "demo",
            Some("/provision/demo/bootstrap"),
        )];
        want.extend(files(&EtcdBackupInput { restore: None, ..b }));
        assert_eq!(want.len(), 4);
        for f in &want {
            assert!(!f.content.lines().any(|l| l == EOF), "{}", f.path);
            assert!(
                script.contains(&format!(
                    "tmp=$(mktemp {p}.XXXXXX)\ncat > \"$tmp\" <<'{EOF}'\n{c}{EOF}\nchmod {m} \"$tmp\"\nmv -f \"$tmp\" {p}\n",
                    p = f.path,
                    c = f.content,
                    m = f.permissions
                )),
                "{}",
                f.path
            );
        }
        assert!(script.contains("s3-put"), "node.py of this release");
        assert!(!script.contains(RESTORE_PATH));
        assert!(script.ends_with(
            "systemctl enable provision-etcd-backup.timer\nsystemctl restart provision-etcd-backup.timer\necho \"provision: etcd snapshots every 15m to s3://b/etcd/x/\"\n"
        ));
    }

    #[test]
    fn the_fetch_runs_the_installer_only_when_its_digest_matches() {
        let url = "https://b.s3.us-east-1.amazonaws.com/etcd/x/i.sh?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature=ab";
        let script = fetch_script(url, "0123abcd");
        crate::core::testing::assert_shellcheck("the installer's fetch", &script);
        assert!(script.contains(&format!("-o \"$f\" '{url}'\n")));
        assert!(script.contains("echo \"0123abcd  $f\" | sha256sum -c --quiet -\nbash \"$f\"\n"));

        // Run for real (curl reads file:// too): the installer runs with the right digest only.
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("ran");
        let installer = dir.path().join("installer.sh");
        let body = format!("echo ran > '{}'\n", marker.display());
        std::fs::write(&installer, &body).unwrap();
        let digest = digest(&body);
        let url = format!("file://{}", installer.display());
        let run = |sha: &str| {
            std::process::Command::new("bash")
                .arg("-c")
                .arg(fetch_script(&url, sha))
                .output()
                .unwrap()
        };
        let wrong = run(&"0".repeat(64));
        assert!(!wrong.status.success() && !marker.exists());
        let right = run(&digest);
        assert!(
            right.status.success(),
            "{}",
            String::from_utf8_lossy(&right.stderr)
        );
        assert!(marker.exists());
    }

    #[test]
    fn the_retime_script_writes_the_boots_timer_with_the_new_interval_and_passes_shellcheck() {
        let script = retime_script(3600);
        crate::core::testing::assert_shellcheck("the retime script", &script);
        // The very file the boot writes, with the new interval.
        let b = EtcdBackupInput {
            bucket: "b",
            prefix: "etcd/x/",
            interval: 3600,
            restore: None,
        };
        let boot = files(&b)
            .into_iter()
            .find(|f| f.path == timer_path())
            .unwrap();
        assert!(script.contains(&format!(
            "cat > {} <<'EOF'\n{}EOF\n",
            boot.path, boot.content
        )));
        assert!(boot.content.contains("OnUnitActiveSec=3600\n"));
        assert!(script.contains("systemctl restart provision-etcd-backup.timer"));
    }
}
