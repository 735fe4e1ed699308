//! Writing the kubeconfig: merged into the existing file, atomically, mode 0600.

use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use super::EngineError;
use crate::core::kubeconfig::{CaData, Entry, User, merge};
use crate::core::pki::Ca;

/// The kubeconfig path a user expects: the first entry of `$KUBECONFIG`, else `~/.kube/config`.
pub fn default_path() -> Option<PathBuf> {
    if let Some(k) = std::env::var_os("KUBECONFIG").filter(|k| !k.is_empty()) {
        return std::env::split_paths(&k).next();
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".kube").join("config"))
}

/// Signs a fresh admin client certificate and merges the cluster into the file at `path`.
///
/// # Errors
/// When the file cannot be read, parsed or written.
pub fn write(path: &Path, cluster: &str, server: &str, ca: &Ca) -> Result<(), EngineError> {
    let (cert, key) = ca.client_cert(
        "provision-admin",
        "kubeadm:cluster-admins",
        time::OffsetDateTime::now_utc(),
    )?;
    write_entry(
        path,
        &Entry {
            cluster,
            server,
            ca: CaData::Pem(&ca.cert_pem),
            user: User::ClientCert {
                cert_pem: &cert,
                key_pem: &key,
            },
            tls_server_name: Some(crate::core::kubeconfig::API_SERVER_NAME),
        },
    )
}

/// Merges an EKS cluster into the file at `path`: the CA as EKS reports it (base64) and a user
/// that runs `provision token`, so kubectl needs neither the AWS CLI nor aws-iam-authenticator.
///
/// # Errors
/// When the file cannot be read, parsed or written.
pub fn write_exec(
    path: &Path,
    cluster: &str,
    server: &str,
    ca_base64: &str,
    region: &str,
) -> Result<(), EngineError> {
    // The binary that is running: kubectl may not have it on its PATH.
    let command = std::env::current_exe()
        .ok()
        .and_then(|p| p.to_str().map(str::to_string))
        .unwrap_or_else(|| "provision".to_string());
    write_entry(
        path,
        &Entry {
            cluster,
            server,
            ca: CaData::Base64(ca_base64),
            user: User::Exec {
                command: &command,
                args: vec![
                    "token".into(),
                    "--cluster".into(),
                    cluster.into(),
                    "--region".into(),
                    region.into(),
                ],
            },
            tls_server_name: None,
        },
    )
}

fn write_entry(path: &Path, entry: &Entry<'_>) -> Result<(), EngineError> {
    let err = |m: String| EngineError::Kubeconfig {
        path: path.display().to_string(),
        message: m,
    };
    let existing = match std::fs::read_to_string(path) {
        Ok(t) => Some(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(err(e.to_string())),
    };
    let text = merge(existing.as_deref(), entry).map_err(|e| err(e.to_string()))?;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| err(e.to_string()))?;
    let tmp = dir.join(format!(
        ".{}.provision-tmp",
        path.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("config")
    ));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| err(e.to_string()))?;
    // The mode above applies only when the file is new; make sure a leftover is private too.
    f.set_permissions(std::fs::Permissions::from_mode(0o600))
        .map_err(|e| err(e.to_string()))?;
    f.write_all(text.as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(|e| err(e.to_string()))?;
    std::fs::rename(&tmp, path).map_err(|e| err(e.to_string()))?;
    Ok(())
}
