//! Writing the kubeconfig: merged into the existing file, mode 0600, the way kubectl does it.
//!
//! - A symlink is written through (its target is the file that changes).
//! - A directory or a device is refused, and so is a read-only file: `up` keeps the cluster and
//!   says how to get the kubeconfig later.
//! - Every change holds `PATH.lock` (kubectl's lock file, made with `O_EXCL`) and goes through a
//!   temporary file of its own beside the target, renamed over it: concurrent runs lose nothing.
//! - [`check`] reads and parses the file before `up` changes anything on AWS.

use std::io::Write as _;
use std::os::unix::fs::{FileTypeExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::EngineError;
use crate::core::kubeconfig::{CaData, Entry, User, merge, parse, remove};
use crate::core::pki::Ca;

/// How long a run waits for another's `.lock` before it gives up.
const LOCK_WAIT: Duration = Duration::from_secs(30);

/// The kubeconfig path a user expects: the first entry of `$KUBECONFIG`, else `~/.kube/config`.
pub fn default_path() -> Option<PathBuf> {
    if let Some(k) = std::env::var_os("KUBECONFIG").filter(|k| !k.is_empty()) {
        return std::env::split_paths(&k).next();
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".kube").join("config"))
}

fn error(path: &Path, message: impl Into<String>) -> EngineError {
    EngineError::Kubeconfig {
        path: path.display().to_string(),
        message: message.into(),
    }
}

/// The file a write changes: `path`, or the end of its chain of symlinks.
fn resolve(path: &Path) -> Result<PathBuf, EngineError> {
    let mut p = path.to_path_buf();
    for _ in 0..40 {
        match std::fs::symlink_metadata(&p) {
            Ok(m) if m.file_type().is_symlink() => {
                let target = std::fs::read_link(&p).map_err(|e| error(path, e.to_string()))?;
                p = match p.parent() {
                    Some(dir) if target.is_relative() => dir.join(target),
                    _ => target,
                };
            }
            _ => return Ok(p),
        }
    }
    Err(error(path, "too many levels of symbolic links"))
}

/// The existing text of the kubeconfig at `path` (None when there is none), after checking
/// that a write can replace it: a regular file (or none), not read-only.
fn existing(path: &Path, real: &Path) -> Result<Option<String>, EngineError> {
    let meta = match std::fs::metadata(real) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(error(path, e.to_string())),
    };
    let kind = meta.file_type();
    if kind.is_dir() {
        return Err(error(path, "is a directory: give --kubeconfig a file"));
    }
    if kind.is_char_device() || kind.is_block_device() || kind.is_fifo() || kind.is_socket() {
        return Err(error(
            path,
            "is not a regular file (a device, pipe or socket): give --kubeconfig a file",
        ));
    }
    if meta.permissions().mode() & 0o200 == 0 {
        return Err(error(
            path,
            "is read-only: make it writable, or give --kubeconfig another file",
        ));
    }
    std::fs::read_to_string(real)
        .map(Some)
        .map_err(|e| error(path, e.to_string()))
}

/// Checks, before anything changes on AWS, that the kubeconfig at `path` can be written: what
/// [`write`] would refuse is refused now.
///
/// # Errors
/// A directory, a device, a read-only file, or a file that is not a kubeconfig.
pub fn check(path: &Path) -> Result<(), EngineError> {
    let real = resolve(path)?;
    let text = existing(path, &real)?;
    parse(text.as_deref()).map_err(|e| error(path, e.to_string()))?;
    Ok(())
}

/// Signs a fresh admin client certificate and merges the cluster into the file at `path`.
///
/// # Errors
/// When the file cannot be read, parsed or written.
pub fn write(path: &Path, cluster: &str, server: &str, ca: &Ca) -> Result<(), EngineError> {
    with_admin(cluster, server, ca, |entry| {
        change(path, |text| merge(text, entry).map(Some))
    })
}

/// A kubeconfig of its own for the cluster, with a fresh admin client certificate
/// (`provision kubeconfig --print`).
///
/// # Errors
/// When the certificate cannot be signed.
pub fn render(cluster: &str, server: &str, ca: &Ca) -> Result<String, EngineError> {
    with_admin(cluster, server, ca, |entry| {
        merge(None, entry).map_err(|e| error(Path::new("-"), e.to_string()))
    })
}

fn with_admin<T>(
    cluster: &str,
    server: &str,
    ca: &Ca,
    f: impl FnOnce(&Entry<'_>) -> Result<T, EngineError>,
) -> Result<T, EngineError> {
    let (cert, key) = ca.client_cert(
        "provision-admin",
        "kubeadm:cluster-admins",
        time::OffsetDateTime::now_utc(),
    )?;
    f(&Entry {
        cluster,
        server,
        ca: CaData::Pem(&ca.cert_pem),
        user: User::ClientCert {
            cert_pem: &cert,
            key_pem: &key,
        },
        tls_server_name: Some(crate::core::kubeconfig::API_SERVER_NAME),
    })
}

/// The command kubectl runs for tokens: `provision` when the `provision` on `PATH` is the
/// running binary, else its absolute path, with a warning saying why.
pub fn exec_command() -> (String, Option<String>) {
    let me = std::env::current_exe().ok();
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("provision"))
            .find(|p| p.is_file())
    });
    let same = |a: &Path, b: &Path| {
        std::fs::canonicalize(a)
            .ok()
            .is_some_and(|a| std::fs::canonicalize(b).ok() == Some(a))
    };
    match (&me, &on_path) {
        (Some(me), Some(p)) if same(me, p) => ("provision".into(), None),
        (Some(me), _) => {
            let abs = me.display().to_string();
            let why = match on_path {
                Some(p) => format!("the provision on PATH ({}) is another binary", p.display()),
                None => "provision is not on PATH".into(),
            };
            (
                abs.clone(),
                Some(format!(
                    "the kubeconfig runs {abs} for tokens ({why}): if that binary moves or is rebuilt elsewhere, kubectl cannot log in; put provision on PATH and run `up` again"
                )),
            )
        }
        (None, _) => ("provision".into(), None),
    }
}

/// Merges an EKS cluster into the file at `path`: the CA as EKS reports it (base64) and a user
/// that runs `provision token` (`command`, from [`exec_command`]) with the AWS profile this run
/// used (`profile`, from [`profile`]), so kubectl needs neither the AWS CLI nor
/// aws-iam-authenticator, and signs as the identity that made the cluster.
///
/// # Errors
/// When the file cannot be read, parsed or written.
pub fn write_exec(
    path: &Path,
    cluster: &str,
    server: &str,
    ca_base64: &str,
    region: &str,
    command: &str,
    profile: Option<&str>,
) -> Result<(), EngineError> {
    let entry = exec_entry(cluster, server, ca_base64, region, command, profile);
    change(path, |text| merge(text, &entry).map(Some))
}

/// A kubeconfig of its own for an EKS cluster (`provision kubeconfig --print`).
///
/// # Errors
/// Never in practice: the text is made from nothing.
pub fn render_exec(
    cluster: &str,
    server: &str,
    ca_base64: &str,
    region: &str,
    command: &str,
    profile: Option<&str>,
) -> Result<String, EngineError> {
    let entry = exec_entry(cluster, server, ca_base64, region, command, profile);
    merge(None, &entry).map_err(|e| error(Path::new("-"), e.to_string()))
}

fn exec_entry<'a>(
    cluster: &'a str,
    server: &'a str,
    ca_base64: &'a str,
    region: &str,
    command: &'a str,
    profile: Option<&str>,
) -> Entry<'a> {
    let env = profile
        .map(|p| vec![("AWS_PROFILE".to_string(), p.to_string())])
        .unwrap_or_default();
    Entry {
        cluster,
        server,
        ca: CaData::Base64(ca_base64),
        user: User::Exec {
            command,
            args: vec![
                "token".into(),
                "--cluster".into(),
                cluster.into(),
                "--region".into(),
                region.into(),
            ],
            env,
        },
        tls_server_name: None,
    }
}

/// The AWS profile this run signs with, when one is named (`AWS_PROFILE`): kubectl, started
/// from a shell without it, must sign tokens as the same identity.
pub fn profile() -> Option<String> {
    std::env::var("AWS_PROFILE").ok().filter(|p| !p.is_empty())
}

/// Takes the cluster's context, cluster and user out of the file at `path` (`down`). Returns
/// whether there were any.
///
/// # Errors
/// When the file cannot be read, parsed or written.
pub fn forget(path: &Path, cluster: &str) -> Result<bool, EngineError> {
    let mut removed = false;
    change(path, |text| match text {
        None => Ok(None),
        Some(t) => {
            let out = remove(t, cluster)?;
            removed = out.is_some();
            Ok(out)
        }
    })?;
    Ok(removed)
}

/// Applies `f` to the file's text under its lock; `f` returns the new text, or None to leave
/// the file as it is.
fn change(
    path: &Path,
    f: impl FnOnce(Option<&str>) -> Result<Option<String>, crate::core::kubeconfig::KubeconfigError>,
) -> Result<(), EngineError> {
    let real = resolve(path)?;
    let dir = real
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    std::fs::create_dir_all(&dir).map_err(|e| error(path, e.to_string()))?;
    // Checked before the lock is made: no `/dev/null.lock`.
    existing(path, &real)?;
    let _lock = Lock::take(path)?;
    let text = existing(path, &real)?;
    let Some(new) = f(text.as_deref()).map_err(|e| error(path, e.to_string()))? else {
        return Ok(());
    };
    let name = real
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("config");
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let tmp = dir.join(format!(
        ".{name}.provision-{}-{nanos}.tmp",
        std::process::id()
    ));
    let written = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(new.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, &real)
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(error(path, e.to_string()));
    }
    Ok(())
}

/// `FILE.lock`, made with `O_EXCL` (what kubectl and client-go take), removed on drop. Ours
/// holds `provision PID START` (the process's start time), so that one left by a provision
/// killed while writing is recognised and removed; kubectl's (empty) is waited for.
struct Lock(PathBuf);

/// What our lock file says of its writer.
fn holder() -> String {
    let pid = std::process::id();
    format!(
        "provision {pid} {}\n",
        super::lock::start_of(pid).unwrap_or_default()
    )
}

/// Whether `content` is a lock of a provision process that no longer runs.
fn stale(content: &str) -> bool {
    let mut words = content.split_whitespace();
    match (words.next(), words.next(), words.next()) {
        (Some("provision"), Some(pid), Some(start)) => pid
            .parse::<u32>()
            .is_ok_and(|pid| super::lock::start_of(pid).as_deref() != Some(start)),
        _ => false,
    }
}

impl Lock {
    /// `PATH.lock` on the path as given, symlink or not: the file client-go locks.
    fn take(path: &Path) -> Result<Lock, EngineError> {
        let mut name = path.as_os_str().to_owned();
        name.push(".lock");
        let lock = PathBuf::from(name);
        let start = Instant::now();
        loop {
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&lock)
            {
                Ok(mut f) => {
                    // Best effort: an unreadable holder only means kubectl's rules (wait).
                    let _ = f.write_all(holder().as_bytes());
                    return Ok(Lock(lock));
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let content = std::fs::read_to_string(&lock).unwrap_or_default();
                    if stale(&content) {
                        // Its writer was killed (SIGKILL leaves no clean-up): take it over.
                        let _ = std::fs::remove_file(&lock);
                        continue;
                    }
                    if start.elapsed() > LOCK_WAIT {
                        return Err(error(
                            path,
                            format!(
                                "{} has been held for more than {} s: another kubectl or provision is writing it; remove it if nothing is",
                                lock.display(),
                                LOCK_WAIT.as_secs()
                            ),
                        ));
                    }
                    // Synchronous like the rest of this file's I/O: it runs at the end of `up`
                    // and `down`, with nothing else in flight, and waits only while another
                    // process writes the same file (milliseconds).
                    #[allow(clippy::disallowed_methods)]
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => return Err(error(path, format!("{}: {e}", lock.display()))),
            }
        }
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
