//! The user data's tests: cloud-init's schema, shellcheck, the size limit, the contents.

use super::kubeadm::NODE_SCRIPT_PATH;
use super::*;
use crate::core::spec::{self, KubeadmSpec};
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

/// S3's longest bucket name, and a snapshot's key.
const BUCKET: &str = "provision-a-very-long-cluster-name-of-forty-chars-use1-12345678";
const PREFIX: &str = "etcd/abcdefghijkl/";
const RESTORE_KEY: &str = "etcd/abcdefghijkl/20261205T201500Z.tar.gz";

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
    let shipper =
        crate::core::manifests::log_shipper("10.0.0.9", "cr.fluentbit.io/fluent/fluent-bit:4.2.0");
    let eip: [std::net::IpAddr; 1] = ["198.51.100.7".parse().unwrap()];
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
                public_addresses: if cni == "calico" { &eip } else { &[] },
                // The calico control plane is a restore's (the longest document).
                backups: Some(EtcdBackupInput {
                    bucket: BUCKET,
                    prefix: PREFIX,
                    interval: 900,
                    restore: (cni == "calico").then_some(RESTORE_KEY),
                }),
            },
        );
        // The calico worker is a pool's, with labels and taints.
        let (labels, taints) = if cni == "calico" {
            pool_labels_and_taints()
        } else {
            Default::default()
        };
        let w = worker(
            &k,
            &WorkerInput {
                cluster: "ci",
                master_private_ip: "10.0.0.10",
                token: &token,
                ca_hash: &hash,
                labels: &labels,
                taints: &taints,
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
    // What EC2 receives: the document gzipped (`userdata::pack`), which cloud-init unpacks.
    for (name, cc) in fixtures() {
        let n = crate::core::userdata::pack(&cc.render()).len();
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
                .find(|f| f.path == NODE_SCRIPT_PATH)
                .expect("fetch script");
            assert!(
                fetch
                    .content
                    .contains("PARAMETER = \"/provision/ci/bootstrap\"")
            );
            assert_eq!(fetch.permissions, "0700");
            assert!(cc.runcmd[0][2].contains(&format!(
                "{NODE_SCRIPT_PATH} step fetch-ca {NODE_SCRIPT_PATH} && {NODE_SCRIPT_PATH} step kubeadm-init /usr/local/sbin/provision-init.sh"
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
            public_addresses: &[],
            backups: None,
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
            public_addresses: &[],
            backups: None,
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

use crate::core::testing::tool;

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
    std::fs::write(
        &bad,
        "#cloud-config\nruncmd: \"echo\"\nwrite_files:\n  - contentz: x\n    permissions: 0644\n",
    )
    .unwrap();
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
    let mut checked = 0;
    let all = fixtures()
        .into_iter()
        .chain(crate::core::addons::tests::fixtures());
    for (name, cc) in all {
        for f in cc.scripts() {
            crate::core::testing::assert_shellcheck(&format!("{name} {}", f.path), &f.content);
            checked += 1;
        }
    }
    assert_eq!(
        checked, 19,
        "prep + init/join for two CNIs and two roles, a worker with node_exporter, three add-ons, EKS node agents, two etcd backups and a restore"
    );
}

/// The API server certificate's addresses, as the boot script computes them.
fn sans(public: &[std::net::IpAddr], imds_public: &str) -> String {
    let script = format!(
        "metadata() {{ [ -n \"{imds_public}\" ] && echo {imds_public}; }}\nPRIVATE_IP=10.0.0.5\n{}\necho \"$SANS\"",
        super::kubeadm::sans_script(public)
    );
    let out = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[test]
fn a_fixed_public_address_replaces_the_one_at_boot_in_the_certificate() {
    assert_eq!(sans(&[], ""), r#""10.0.0.5""#);
    assert_eq!(sans(&[], "203.0.113.9"), r#""10.0.0.5", "203.0.113.9""#);
    let eip: [std::net::IpAddr; 1] = ["198.51.100.7".parse().unwrap()];
    assert_eq!(
        sans(&eip, "203.0.113.9"),
        r#""10.0.0.5", "198.51.100.7""#,
        "the Elastic IP, not the address the instance booted with"
    );
}

fn pool_labels_and_taints() -> (
    std::collections::BTreeMap<String, String>,
    Vec<crate::core::spec::Taint>,
) {
    let labels = [("team", "data"), ("example.com/gpu", "true")]
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .into();
    let taints = vec![
        crate::core::spec::Taint {
            key: "dedicated".into(),
            value: Some("gpu".into()),
            effect: "NO_SCHEDULE".into(),
        },
        crate::core::spec::Taint {
            key: "example.com/spot".into(),
            value: None,
            effect: "PREFER_NO_SCHEDULE".into(),
        },
    ];
    (labels, taints)
}

#[test]
fn a_pools_labels_and_taints_are_in_its_join_configuration() {
    let docs = fixtures();
    let (_, w) = docs.iter().find(|(n, _)| n == "worker-calico").unwrap();
    let file = w
        .files
        .iter()
        .find(|f| f.path == "/etc/provision/kubeadm-join.yaml")
        .unwrap();
    let doc: serde_json::Value = serde_saphyr::from_str(&file.content).unwrap();
    let reg = &doc["nodeRegistration"];
    assert_eq!(reg["kubeletExtraArgs"][0]["name"], "node-labels");
    assert_eq!(
        reg["kubeletExtraArgs"][0]["value"],
        "example.com/gpu=true,team=data"
    );
    assert_eq!(reg["taints"][0]["key"], "dedicated");
    assert_eq!(reg["taints"][0]["value"], "gpu");
    assert_eq!(reg["taints"][0]["effect"], "NoSchedule");
    assert_eq!(reg["taints"][1]["effect"], "PreferNoSchedule");
    assert!(reg["taints"][1].get("value").is_none());
    let (_, plain) = docs.iter().find(|(n, _)| n == "worker-flannel").unwrap();
    let plain = plain
        .files
        .iter()
        .find(|f| f.path == "/etc/provision/kubeadm-join.yaml")
        .unwrap();
    assert!(!plain.content.contains("taints") && !plain.content.contains("node-labels"));
}

#[test]
fn a_lost_control_plane_restores_the_snapshot_before_kubeadm_init() {
    let fixtures = fixtures();
    let file = |doc: &str, path: &str| -> String {
        let cc = &fixtures.iter().find(|(n, _)| n == doc).unwrap().1;
        cc.files
            .iter()
            .find(|f| f.path == path)
            .map(|f| f.content.clone())
            .unwrap_or_default()
    };
    let init = file("master-calico", "/usr/local/sbin/provision-init.sh");
    let at = |what: &str| {
        init.find(what)
            .unwrap_or_else(|| panic!("{what} in the init script"))
    };
    let init_at = at("kubeadm init \"${INIT_ARGS[@]}\"");
    assert!(at("provision-etcd-restore.sh \"${VERSION}\" \"${PRIVATE_IP}\"") < init_at);
    assert!(at("--ignore-preflight-errors=DirAvailable--var-lib-etcd") < init_at);
    let timer_at = at("systemctl enable --now provision-etcd-backup.timer");
    assert!(timer_at > init_at);
    assert!(
        timer_at < at("calico"),
        "right after the API server answers"
    );
    let restore = file("master-calico", "/usr/local/sbin/provision-etcd-restore.sh");
    assert!(restore.contains(&format!("s3-get \"{BUCKET}\" \"{RESTORE_KEY}\"")));
    assert!(restore.contains("etcdutl snapshot restore"));
    assert!(restore.contains("--initial-advertise-peer-urls \"https://${PRIVATE_IP}:2380\""));
    // The keys tokens and clients were made with come back; kubeadm makes the rest.
    assert!(
        restore.contains(
            "sa.key sa.pub front-proxy-ca.crt front-proxy-ca.key etcd/ca.crt etcd/ca.key"
        )
    );

    // Without a snapshot to restore: no restore, the timer all the same.
    let init = file("master-flannel", "/usr/local/sbin/provision-init.sh");
    assert!(!init.contains("provision-etcd-restore"));
    assert!(
        file(
            "master-flannel",
            "/usr/local/sbin/provision-etcd-restore.sh"
        )
        .is_empty()
    );
    assert!(init.contains("systemctl enable --now provision-etcd-backup.timer"));
    let timer = file(
        "master-flannel",
        "/etc/systemd/system/provision-etcd-backup.timer",
    );
    assert!(timer.contains("OnUnitActiveSec=900"), "{timer}");
    let backup = file("master-flannel", "/usr/local/sbin/provision-etcd-backup.sh");
    assert!(backup.contains("snapshot save"));
    assert!(backup.contains(&format!("BUCKET=\"{BUCKET}\"")));
    // Never the cluster CA's key (it stays in its SecureString), nor the API server's.
    assert!(backup.contains("-C /etc/kubernetes pki/sa.key pki/sa.pub pki/front-proxy-ca.crt pki/front-proxy-ca.key pki/etcd/ca.crt pki/etcd/ca.key\n"));
    assert!(!backup.contains("pki/ca.key") && !backup.contains(" pki\n"));
    assert!(backup.contains(&format!(
        "s3-put \"${{BUCKET}}\" \"{PREFIX}${{STAMP}}.tar.gz\""
    )));
}

/// The snapshots' S3 signer reproduces the SigV4 documentation's S3 example (GET Object, with
/// a Range header and the empty payload's hash).
#[test]
fn snapshot_transfers_sign_like_s3() {
    let out = crate::core::cloudinit::run_fetch_script_python(
        r#"
creds = {"AccessKeyId": "AKIAIOSFODNN7EXAMPLE", "SecretAccessKey": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"}
empty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
h = {"Host": "examplebucket.s3.amazonaws.com", "Range": "bytes=0-9", "x-amz-content-sha256": empty, "x-amz-date": "20130524T000000Z"}
print(m.authorization("GET", "examplebucket.s3.amazonaws.com", "/test.txt", "", h, b"", creds, "us-east-1", "s3", "20130524T000000Z", payload_hash=empty))
"#,
    );
    assert_eq!(
        out.trim(),
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
    );
}

/// The installer a control plane of an earlier release runs, run for real under a temporary
/// root (every absolute path moved there, `systemctl` a stub that records its arguments):
/// every file it leaves is byte for byte the file a control plane launched now gets from
/// `master()` (not restoring), with its mode; and the timer is enabled and restarted.
#[test]
fn the_snapshots_installer_leaves_what_a_new_control_plane_boots_with() {
    use std::os::unix::fs::PermissionsExt as _;
    let backups = EtcdBackupInput {
        bucket: BUCKET,
        prefix: PREFIX,
        interval: 900,
        restore: None,
    };
    let token = crate::core::pki::generate_token().unwrap();
    let boot = master(
        &kubeadm("calico"),
        &MasterInput {
            cluster: "ci",
            secret_parameter: "/provision/ci/bootstrap",
            token: &token,
            baseline: None,
            log_shipper: None,
            public_addresses: &[],
            backups: Some(backups),
        },
    );
    let root = tempfile::tempdir().unwrap();
    let r = root.path().display().to_string();
    // The installer's own commands moved under the root, not the files' contents.
    let script: String = super::install_script(&backups, "ci", "/provision/ci/bootstrap")
        .lines()
        .map(|l| {
            let own = [
                "install -d -m 0755 \"$(dirname ",
                "tmp=$(mktemp ",
                "mv -f \"$tmp\" ",
            ]
            .iter()
            .any(|p| l.starts_with(p));
            let l = if own {
                l.replace("/usr/local/sbin/", &format!("{r}/usr/local/sbin/"))
                    .replace("/etc/systemd/", &format!("{r}/etc/systemd/"))
            } else {
                l.to_string()
            };
            l + "\n"
        })
        .collect();
    let bin = root.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    std::fs::write(
        bin.join("systemctl"),
        format!("#!/bin/sh\necho \"$@\" >> {r}/systemctl.log\n"),
    )
    .unwrap();
    std::fs::set_permissions(
        bin.join("systemctl"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    let out = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut written = Vec::new();
    for dir in ["usr/local/sbin", "etc/systemd/system"] {
        for e in std::fs::read_dir(root.path().join(dir)).unwrap() {
            written.push(e.unwrap().path());
        }
    }
    assert_eq!(
        written.len(),
        4,
        "node.py, the backup script, its service and timer"
    );
    for path in &written {
        let at = path.display().to_string().replacen(&r, "", 1);
        let want = boot
            .files
            .iter()
            .chain(&boot.gz_files)
            .find(|f| f.path == at)
            .unwrap_or_else(|| panic!("{at} is not written by a new control plane's boot"));
        assert_eq!(std::fs::read_to_string(path).unwrap(), want.content, "{at}");
        let mode = std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
        assert_eq!(format!("0{mode:o}"), want.permissions, "{at}");
    }
    assert_eq!(
        std::fs::read_to_string(root.path().join("systemctl.log")).unwrap(),
        "daemon-reload\nenable provision-etcd-backup.timer\nrestart provision-etcd-backup.timer\n"
    );
}
