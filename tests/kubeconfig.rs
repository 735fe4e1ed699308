//! Writing the kubeconfig the way kubectl does: through symlinks, never over what is not a
//! regular file, never over a read-only one, under `FILE.lock` so that concurrent runs lose
//! nothing; `down` takes its entries out again.

mod common;

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use common::Cluster;
use provision::engine::kubeconfig::{check, forget, write_exec};

const OTHER: &str = "apiVersion: v1\nkind: Config\nclusters:\n- name: other\n  cluster:\n    server: https://other:443\nusers:\n- name: other-user\n  user:\n    token: 0x1F\ncontexts:\n- name: other\n  context:\n    cluster: other\n    user: other-user\n    namespace: 0777\ncurrent-context: other\n";

fn exec(path: &Path, cluster: &str) -> Result<(), provision::engine::EngineError> {
    write_exec(
        path,
        cluster,
        "https://ABC.gr7.us-east-1.eks.amazonaws.com",
        "bm90IGEgcGVt",
        "us-east-1",
        "provision",
        Some("team"),
    )
}

fn contexts(path: &Path) -> Vec<String> {
    let v: serde_json::Value =
        serde_saphyr::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    v["contexts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_symlinked_kubeconfig_is_written_through_the_link() {
    let dir = tempfile::tempdir().unwrap();
    let real = dir.path().join("real-config");
    std::fs::write(&real, OTHER).unwrap();
    let link = dir.path().join("config");
    std::os::unix::fs::symlink("real-config", &link).unwrap();
    exec(&link, "demo").unwrap();
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink(),
        "still a link"
    );
    assert_eq!(contexts(&real), ["other", "demo"]);
    let text = std::fs::read_to_string(&real).unwrap();
    assert!(
        text.contains("token: 0x1F") && text.contains("namespace: 0777"),
        "{text}"
    );
    assert!(
        text.contains("name: AWS_PROFILE") && text.contains("value: team"),
        "{text}"
    );
    assert_eq!(
        std::fs::metadata(&real).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

#[test]
fn devices_directories_and_read_only_files_are_refused_and_left_as_they_are() {
    for dev in ["/dev/null", "/dev/zero"] {
        let e = exec(Path::new(dev), "demo").unwrap_err().to_string();
        assert!(e.contains("not a regular file"), "{e}");
        assert!(check(Path::new(dev)).is_err());
        use std::os::unix::fs::FileTypeExt as _;
        assert!(std::fs::metadata(dev).unwrap().file_type().is_char_device());
    }
    let dir = tempfile::tempdir().unwrap();
    let e = exec(dir.path(), "demo").unwrap_err().to_string();
    assert!(e.contains("is a directory"), "{e}");
    let ro = dir.path().join("ro-config");
    std::fs::write(&ro, OTHER).unwrap();
    std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o444)).unwrap();
    let e = exec(&ro, "demo").unwrap_err().to_string();
    assert!(e.contains("read-only"), "{e}");
    assert!(check(&ro).is_err());
    assert_eq!(std::fs::read_to_string(&ro).unwrap(), OTHER);
    // A link to a device is refused too, and the device stays one.
    let link = dir.path().join("to-null");
    std::os::unix::fs::symlink("/dev/null", &link).unwrap();
    assert!(exec(&link, "demo").is_err());
}

#[test]
fn a_kubeconfig_that_is_not_one_is_refused_by_the_check() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("config");
    std::fs::write(&bad, "clusters: [unclosed").unwrap();
    assert!(check(&bad).is_err());
    std::fs::write(&bad, "clusters: null\nusers: null\ncontexts: null\n").unwrap();
    check(&bad).expect("kubectl config view's empty lists");
    assert!(check(&dir.path().join("absent")).is_ok());
}

/// Three writers of different clusters, many rounds, one file: every context is there at the
/// end of every round, and no lock or temporary file is left.
#[test]
fn concurrent_writers_lose_no_context() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config");
    for round in 0..20 {
        std::fs::write(&path, OTHER).unwrap();
        let names: Vec<String> = (0..3).map(|i| format!("c{round}-{i}")).collect();
        std::thread::scope(|s| {
            for n in &names {
                let path = &path;
                s.spawn(move || exec(path, n).unwrap());
            }
        });
        let have = contexts(&path);
        for n in &names {
            assert!(have.contains(n), "round {round}: {n} lost: {have:?}");
        }
    }
    let left: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, ["config"]);
}

/// A lock left by a provision killed while writing (SIGKILL: no clean-up) is taken over, not
/// waited for until the lock's 30 s deadline.
#[test]
fn a_lock_left_by_a_killed_provision_is_taken_over() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config");
    std::fs::write(&path, OTHER).unwrap();
    let mut gone = std::process::Command::new("true").spawn().unwrap();
    let pid = gone.id();
    gone.wait().unwrap();
    std::fs::write(
        dir.path().join("config.lock"),
        format!("provision {pid} 12345\n"),
    )
    .unwrap();
    let t0 = std::time::Instant::now();
    exec(&path, "demo").unwrap();
    assert!(
        t0.elapsed() < std::time::Duration::from_secs(5),
        "{:?}",
        t0.elapsed()
    );
    assert!(contexts(&path).contains(&"demo".to_string()));
    assert!(!dir.path().join("config.lock").exists(), "and released");
}

#[test]
fn forget_takes_out_only_the_clusters_entries() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config");
    std::fs::write(&path, OTHER).unwrap();
    exec(&path, "demo").unwrap();
    assert!(forget(&path, "demo").unwrap());
    assert_eq!(contexts(&path), ["other"]);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(!text.contains("demo"), "{text}");
    assert!(text.contains("current-context: \"\""), "{text}");
    assert!(!forget(&path, "demo").unwrap(), "nothing left to take out");
    assert!(!forget(&dir.path().join("absent"), "demo").unwrap());
}

/// `down` of a kubeadm cluster takes its context, cluster and user (a one-year admin key of a
/// CA that no longer exists) out of the kubeconfig and keeps the rest.
#[test]
fn down_removes_the_clusters_kubeconfig_entries() {
    let cl = Cluster::new("kc-down", 1, "");
    std::fs::write(cl.kubeconfig(), OTHER).unwrap();
    cl.up();
    assert_eq!(contexts(&cl.kubeconfig()), ["other", cl.name.as_str()]);
    let down = cl.down();
    assert_eq!(
        down.summary()["kubeconfig"],
        cl.kubeconfig().display().to_string().as_str()
    );
    assert_eq!(contexts(&cl.kubeconfig()), ["other"]);
    let text = std::fs::read_to_string(cl.kubeconfig()).unwrap();
    assert!(
        !text.contains(&cl.name) && !text.contains("client-key-data"),
        "{text}"
    );
}

/// The exec user runs `provision` when the `provision` on PATH is the binary that ran `up`;
/// otherwise its absolute path, and `up` warns that a moved or rebuilt binary breaks kubectl's
/// login.
#[test]
fn the_exec_command_is_provision_when_path_finds_this_binary() {
    let cl = common::eks_cluster("kc-exec", "availability_zones = 2");
    let command = |cl: &Cluster| {
        let v: serde_json::Value =
            serde_saphyr::from_str(&std::fs::read_to_string(cl.kubeconfig()).unwrap()).unwrap();
        v["users"][0]["user"]["exec"]["command"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let bin = env!("CARGO_BIN_EXE_provision");
    let up = cl.run(&["up", "-f", cl.spec_arg()]);
    assert!(up.ok(), "{}", up.stderr);
    assert_eq!(command(&cl), bin);
    assert!(
        up.warnings()
            .iter()
            .any(|w| w.contains(bin) && w.contains("PATH")),
        "{:?}",
        up.warnings()
    );
    let dir = Path::new(bin).parent().unwrap();
    let path = format!(
        "{}:{}",
        dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = cl
        .command(&["up", "-f", cl.spec_arg()])
        .env("PATH", path)
        .output()
        .unwrap();
    let again = common::Run::from_output(out);
    assert!(again.ok(), "{}", again.stderr);
    assert_eq!(command(&cl), "provision");
    assert!(again.warnings().iter().all(|w| !w.contains("for tokens")));
    cl.down();
}
