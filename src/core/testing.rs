//! Test support: the tools the tests check generated artifacts with (cloud-init, shellcheck,
//! openssl), installed by `localstack/need.sh` when missing, so that `cargo test` alone works on
//! a fresh machine.

use std::path::PathBuf;

fn find(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// The path of `name`, installing what the tests need first if it is missing.
pub(crate) fn tool(name: &str) -> PathBuf {
    if let Some(p) = find(name) {
        return p;
    }
    let need = concat!(env!("CARGO_MANIFEST_DIR"), "/localstack/need.sh");
    let out = std::process::Command::new(need)
        .output()
        .unwrap_or_else(|e| panic!("running {need}: {e}"));
    assert!(
        out.status.success(),
        "`{name}` is not installed and {need} could not install it:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    find(name).unwrap_or_else(|| panic!("`{name}` is still not on PATH after {need}"))
}

/// Checks a bash script with shellcheck (style level), failing with its findings.
pub(crate) fn assert_shellcheck(what: &str, script: &str) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("script.sh");
    std::fs::write(&path, script).unwrap();
    let out = std::process::Command::new(tool("shellcheck"))
        .args(["-s", "bash", "-S", "style"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{what}:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
}
