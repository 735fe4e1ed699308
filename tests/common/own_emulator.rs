//! An emulator a test process starts for itself.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use super::{Cluster, REGION, Run};

/// An emulator of a test's own (`localstack/emulator.py` on a free port) with a profile set by
/// environment variables (faults, latency); stopped when dropped.
pub struct OwnEmulator {
    child: std::process::Child,
    pub url: String,
}

impl OwnEmulator {
    // Blocks while the emulator starts (once per test process): before any test runs.
    #[allow(clippy::disallowed_methods)]
    pub fn start(env: &[(&str, &str)]) -> OwnEmulator {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let python = root.join("localstack/.venv/bin/python");
        if !python.exists() {
            let need = root.join("localstack/need.sh");
            let out = Command::new(&need).output().unwrap();
            assert!(
                out.status.success(),
                "the emulator's venv is missing and {} could not install it:\n{}",
                need.display(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut cmd = Command::new(python);
        cmd.arg(root.join("localstack/emulator.py"))
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            // It ends with this test process, however that ends.
            .args(["--parent", &std::process::id().to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().unwrap();
        // It starts in about 5 s; a loaded machine (tests in parallel) may take much longer.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "the emulator did not start"
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        OwnEmulator {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }

    /// `provision --output json ARGS` for `cl`, against this emulator.
    pub fn command(&self, cl: &Cluster, args: &[&str]) -> Command {
        let mut cmd = cl.command(args);
        cmd.env("AWS_ENDPOINT_URL", &self.url);
        cmd
    }

    pub fn run(&self, cl: &Cluster, args: &[&str]) -> Run {
        Run::from_output(self.command(cl, args).output().unwrap())
    }

    pub async fn sdk(&self) -> provision::aws::Clients {
        provision::aws::clients_for_endpoint(REGION, &self.url).await
    }
}

impl Drop for OwnEmulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
