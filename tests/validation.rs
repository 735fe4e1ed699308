//! The validation corpus: every malformed spec in `tests/specs/invalid/` is refused by the real
//! binary with exit code 2, an error naming the field and its file:line, and no AWS call.
//!
//! Each file's first line says what to expect: `# expect: FIELD @ LINE`.

use std::io::ErrorKind;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Command;

fn corpus() -> Vec<(PathBuf, String, usize)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/specs/invalid");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let header = text
            .lines()
            .next()
            .unwrap()
            .strip_prefix("# expect: ")
            .unwrap_or_else(|| panic!("{}: no expect header", path.display()));
        let (field, line) = header.rsplit_once(" @ ").unwrap();
        out.push((path, field.to_string(), line.parse().unwrap()));
    }
    out.sort();
    out
}

/// A listener standing in for AWS: if anything connects, an AWS call was attempted.
fn fake_aws() -> (TcpListener, String) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.set_nonblocking(true).unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    (l, url)
}

fn provision(args: &[&str], endpoint: &str) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_provision"))
        .args(args)
        .env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("KUBECONFIG", "/nonexistent/kubeconfig")
        .output()
        .unwrap()
}

#[test]
fn corpus_is_large_enough() {
    assert!(
        corpus().len() >= 20,
        "the issue asks for at least 20 malformed specs"
    );
}

/// Every field of the spec (the `Raw*` structs of `src/core/spec.rs`), `[]` for an element.
const FIELDS: &[&str] = &[
    "name",
    "region",
    "kind",
    "tags",
    "network.vpc_cidr",
    "network.availability_zones",
    "network.subnet_prefix",
    "network.admin_cidrs",
    "network.private_subnets",
    "kubeadm",
    "kubeadm.kubernetes_version",
    "kubeadm.cni",
    "kubeadm.instance_type",
    "kubeadm.workers",
    "kubeadm.pools",
    "kubeadm.pools[].name",
    "kubeadm.pools[].instance_type",
    "kubeadm.pools[].count",
    "kubeadm.pools[].labels",
    "kubeadm.pools[].taints",
    "kubeadm.pools[].spot",
    "kubeadm.pools[].subnets",
    "kubeadm.pools[].max_surge",
    "kubeadm.pools[].max_unavailable",
    "kubeadm.ami",
    "kubeadm.key_name",
    "kubeadm.ssh",
    "kubeadm.pod_cidr",
    "kubeadm.root_volume_gb",
    "eks.version",
    "eks.endpoint_public_access",
    "eks.endpoint_private_access",
    "eks.addons",
    "eks.nodegroup.instance_types",
    "eks.nodegroup.min",
    "eks.nodegroup.max",
    "eks.nodegroup.desired",
    "eks.nodegroup.capacity_type",
    "eks.nodegroup.disk_size",
    "eks.nodegroup.labels",
    "eks.nodegroup.max_unavailable",
    "eks.nodegroup.max_unavailable_percent",
    "eks.nodegroups",
    "eks.nodegroups[].name",
    "eks.nodegroups[].taints[].effect",
    "eks.nodegroups[].subnets",
    "eks.access[].principal_arn",
    "eks.access[].policy",
    "eks.access[].namespaces",
    "addons.monitoring",
    "addons.logging",
    "addons.tracing",
    "addons.*.enabled",
    "addons.*.instance_type",
    "addons.*.volume_gb",
    "addons.*.versions",
    "security.namespaces",
    "security.default_deny",
    "security.default_deny_egress",
    "security.bindings[].user",
    "security.bindings[].group",
    "security.bindings[].role",
    "security.bindings[].namespaces",
];

/// A field is covered when a corpus spec is refused naming it, or naming its table for a
/// malformed key of it (an add-on table's `enabled`), or an unknown key next to it.
#[test]
fn the_corpus_covers_every_field_of_the_spec() {
    let corpus: Vec<(String, String)> = corpus()
        .into_iter()
        .map(|(path, field, _)| {
            // eks.access[0].policy -> eks.access[].policy; addons.logging.x -> addons.*.x too
            let mut f = String::new();
            let mut in_index = false;
            for ch in field.chars() {
                match ch {
                    '[' => {
                        in_index = true;
                        f.push('[');
                    }
                    ']' => {
                        in_index = false;
                        f.push(']');
                    }
                    _ if in_index => {}
                    _ => f.push(ch),
                }
            }
            (f, std::fs::read_to_string(path).unwrap())
        })
        .collect();
    let missing: Vec<&str> = FIELDS
        .iter()
        .copied()
        .filter(|want| {
            !corpus.iter().any(|(field, text)| {
                let generic = ["monitoring", "logging", "tracing"]
                    .iter()
                    .fold(field.clone(), |f, a| {
                        f.replace(&format!("addons.{a}."), "addons.*.")
                    });
                let key = want.rsplit('.').next().unwrap();
                [field, &generic].iter().any(|f| {
                    *f == want
                        || f.starts_with(&format!("{want}."))
                        || f.starts_with(&format!("{want}["))
                }) || (want.starts_with("addons.*.")
                    && field.starts_with("addons.")
                    && text.lines().any(|l| l.starts_with(&format!("{key} "))))
            })
        })
        .collect();
    assert!(
        missing.is_empty(),
        "no malformed spec in tests/specs/invalid covers: {missing:?}"
    );
}

#[test]
fn every_malformed_spec_is_refused_with_its_field_and_line_before_any_aws_call() {
    let (listener, endpoint) = fake_aws();
    let mut problems = Vec::new();
    for (path, field, line) in corpus() {
        let p = path.to_str().unwrap();
        for cmd in [
            vec!["validate", "-f", p],
            vec!["up", "-f", p],
            vec!["plan", "-f", p],
            vec!["down", "-f", p],
        ] {
            let out = provision(&cmd, &endpoint);
            let stderr = String::from_utf8_lossy(&out.stderr);
            let located = format!("{p}:{line}:");
            if out.status.code() != Some(2) {
                problems.push(format!(
                    "{} {}: exit {:?}, want 2\n{stderr}",
                    cmd[0],
                    path.display(),
                    out.status.code()
                ));
            } else if !stderr.contains(&format!(": {field}: ")) || !stderr.contains(&located) {
                problems.push(format!(
                    "{} {}: want field `{field}` at {located}, got:\n{stderr}",
                    cmd[0],
                    path.display()
                ));
            }
        }
    }
    match listener.accept() {
        Err(e) if e.kind() == ErrorKind::WouldBlock => {}
        other => problems.push(format!(
            "an AWS call was attempted for a bad spec: {other:?}"
        )),
    }
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
}

#[test]
fn json_output_lists_issues_with_field_and_line() {
    let (_l, endpoint) = fake_aws();
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/specs/invalid/zero-workers.toml");
    let out = provision(
        &["--output", "json", "validate", "-f", path.to_str().unwrap()],
        &endpoint,
    );
    assert_eq!(out.status.code(), Some(2));
    let line = String::from_utf8(out.stdout).unwrap();
    let v: serde_json::Value = serde_json::from_str(line.trim()).unwrap();
    assert_eq!(v["event"], "error");
    assert_eq!(v["issues"][0]["field"], "kubeadm.workers");
    assert_eq!(v["issues"][0]["line"], 15);
}

#[test]
fn good_specs_validate() {
    let (_l, endpoint) = fake_aws();
    for f in std::fs::read_dir(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config")).unwrap() {
        let p = f.unwrap().path();
        let out = provision(&["validate", "-f", p.to_str().unwrap()], &endpoint);
        assert!(
            out.status.success(),
            "{}: {}",
            p.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn bad_arguments_exit_2() {
    let (_l, endpoint) = fake_aws();
    assert_eq!(
        provision(&["up"], &endpoint).status.code(),
        Some(2),
        "missing -f"
    );
    assert_eq!(
        provision(&["down", "--name", "x"], &endpoint).status.code(),
        Some(2),
        "--name without --region"
    );
    assert_eq!(
        provision(
            &["down", "--name", "Bad_Name", "--region", "us-east-1"],
            &endpoint
        )
        .status
        .code(),
        Some(2)
    );
    assert_eq!(provision(&["frobnicate"], &endpoint).status.code(), Some(2));
    assert_eq!(
        provision(&["validate", "-f", "/nonexistent.toml"], &endpoint)
            .status
            .code(),
        Some(2)
    );
}

/// A spec whose control plane's user data would not fit EC2's 16 KB even compressed (150
/// namespaces, 150 bindings each naming all of them) is refused by `validate`, `plan` and
/// `up` with exit 2, at its `[security]` table, with the size, and before any AWS call.
#[test]
fn user_data_over_the_ec2_limit_is_refused_before_any_aws_call() {
    let (listener, endpoint) = fake_aws();
    let ns: Vec<String> = (0..150).map(|i| format!("\"team-{i:03}\"")).collect();
    let ns = ns.join(", ");
    let mut text = format!(
        "name = \"big\"\nregion = \"us-east-1\"\nkind = \"kubeadm\"\n\n[network]\nvpc_cidr = \"10.0.0.0/16\"\n\
         admin_cidrs = [\"203.0.113.0/24\"]\n\n[kubeadm]\ncni = \"calico\"\ninstance_type = \"t3.medium\"\n\
         workers = 1\n\n[security]\nnamespaces = [{ns}]\n"
    );
    for i in 0..150 {
        text.push_str(&format!(
            "\n[[security.bindings]]\ngroup = \"g{i}\"\nrole = \"view\"\nnamespaces = [{ns}]\n"
        ));
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.toml");
    std::fs::write(&path, &text).unwrap();
    let p = path.to_str().unwrap();
    for cmd in ["validate", "plan", "up"] {
        let out = provision(&[cmd, "-f", p], &endpoint);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{cmd}: {stderr}");
        assert!(
            stderr.contains(&format!(
                "{p}:14:1: security: the user data of `master` would be"
            )) && stderr.contains("bytes compressed")
                && stderr.contains("over EC2's limit of 16384"),
            "{cmd}: {stderr}"
        );
    }
    match listener.accept() {
        Err(e) if e.kind() == ErrorKind::WouldBlock => {}
        other => panic!("an AWS call was attempted: {other:?}"),
    }
}

/// A kubeconfig `up` could not write at its end (a device, a directory, a read-only file, not a
/// kubeconfig) is refused with exit 2 before any AWS call, and left as it was.
#[test]
fn an_unwritable_kubeconfig_is_refused_before_any_aws_call() {
    use std::os::unix::fs::PermissionsExt as _;
    let (listener, endpoint) = fake_aws();
    let spec = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config/demo.toml");
    let dir = tempfile::tempdir().unwrap();
    let ro = dir.path().join("ro");
    std::fs::write(&ro, "apiVersion: v1\n").unwrap();
    std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o444)).unwrap();
    let garbage = dir.path().join("garbage");
    std::fs::write(&garbage, "clusters: [unclosed").unwrap();
    let dir_path = dir.path().display().to_string();
    for (path, why) in [
        ("/dev/null", "not a regular file"),
        (dir_path.as_str(), "is a directory"),
        (ro.to_str().unwrap(), "read-only"),
        (garbage.to_str().unwrap(), "not valid YAML"),
    ] {
        let out = provision(
            &["up", "-f", spec.to_str().unwrap(), "--kubeconfig", path],
            &endpoint,
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{path}: {stderr}");
        assert!(
            stderr.contains("--kubeconfig") && stderr.contains(why),
            "{path}: {stderr}"
        );
    }
    assert_eq!(std::fs::read_to_string(&ro).unwrap(), "apiVersion: v1\n");
    match listener.accept() {
        Err(e) if e.kind() == ErrorKind::WouldBlock => {}
        other => panic!("an AWS call was attempted: {other:?}"),
    }
}

/// Control characters and ANSI escapes in a spec reach the terminal escaped, never raw.
#[test]
fn control_characters_in_a_spec_are_escaped_on_the_terminal() {
    let (_l, endpoint) = fake_aws();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ansi.toml");
    std::fs::write(
        &path,
        "name = \"x\\u001b[31mred\"\nregion = \"us-east-1\\u0007\"\nkind = \"kubeadm\"\n[network]\nvpc_cidr = \"10.0.0.0/16\"\nadmin_cidrs = [\"1.2.3.4/32\"]\n[kubeadm]\ncni = \"calico\"\ninstance_type = \"t3.medium\"\nworkers = 1\n",
    )
    .unwrap();
    let out = provision(&["validate", "-f", path.to_str().unwrap()], &endpoint);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        !stderr.contains('\u{1b}') && !stderr.contains('\u{7}'),
        "{stderr:?}"
    );
    assert!(stderr.contains("x\\u{1b}[31mred"), "{stderr}");
}

/// CIDRs that together are the whole internet get the warning 0.0.0.0/0 gets.
#[test]
fn admin_cidrs_that_cover_everything_warn_like_the_whole_internet() {
    let (_l, endpoint) = fake_aws();
    let spec =
        std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config/demo.toml"))
            .unwrap();
    let start = spec.find("\nadmin_cidrs").unwrap() + 1;
    let end = start + spec[start..].find('\n').unwrap();
    let spec = format!(
        "{}admin_cidrs = [\"0.0.0.0/1\", \"128.0.0.0/1\"]{}",
        &spec[..start],
        &spec[end..]
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("halves.toml");
    std::fs::write(&path, spec).unwrap();
    let out = provision(&["validate", "-f", path.to_str().unwrap()], &endpoint);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("whole internet"), "{stderr}");
}
