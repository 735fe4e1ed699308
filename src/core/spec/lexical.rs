//! Checks of single values (names, ARNs, versions, instance types) and locating text.

use super::model::{Arch, KubernetesVersion};
use super::{DEFAULT_KUBERNETES_VERSION, SUPPORTED_MINORS};

/// Cluster names end up in IAM role names (64 characters), tags and DNS labels.
pub fn check_cluster_name(name: &str) -> Result<(), String> {
    let ok_chars = name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    let first_ok = name.bytes().next().is_some_and(|b| b.is_ascii_lowercase());
    let last_ok = name.bytes().last().is_some_and(|b| b != b'-');
    if name.is_empty() || name.len() > 40 || !ok_chars || !first_ok || !last_ok {
        return Err(format!(
            "`{name}` is not a valid cluster name: 1 to 40 characters of a-z, 0-9 and '-', starting with a letter and not ending with '-'"
        ));
    }
    Ok(())
}

/// `arn:aws:iam::123456789012:role/NAME` or `…:user/NAME` (any partition, any path).
/// A pinned container image tag: no `latest`, only tag characters.
pub(crate) fn is_image_tag(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s != "latest"
        && s.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && s.chars().any(|c| c.is_ascii_digit())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
}

pub(crate) fn is_principal_arn(s: &str) -> bool {
    let parts: Vec<&str> = s.splitn(6, ':').collect();
    parts.len() == 6
        && parts[0] == "arn"
        && parts[1].starts_with("aws")
        && parts[2] == "iam"
        && parts[3].is_empty()
        && parts[4].len() == 12
        && parts[4].bytes().all(|b| b.is_ascii_digit())
        && (parts[5].starts_with("role/") || parts[5].starts_with("user/"))
        && parts[5].len() > 5
}

/// A DNS-1123 label: namespaces, add-on names.
pub(crate) fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// `[prefix/]name`: name is 63 characters of alphanumerics, `-`, `_`, `.`, starting and ending
/// alphanumeric; the prefix is a DNS subdomain.
pub(crate) fn is_label_key(k: &str) -> bool {
    let (prefix, name) = match k.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, k),
    };
    let name_ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric())
        && name
            .bytes()
            .last()
            .is_some_and(|b| b.is_ascii_alphanumeric());
    let prefix_ok =
        prefix.is_none_or(|p| !p.is_empty() && p.len() <= 253 && p.split('.').all(is_dns_label));
    name_ok && prefix_ok
}

/// `us-east-1`, `eu-central-2`, `us-gov-west-1`, `ap-southeast-5` …
pub fn is_region(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    if parts.len() < 3 || parts.len() > 4 {
        return false;
    }
    let (last, rest) = parts.split_last().expect("len >= 3");
    !last.is_empty()
        && last.len() <= 2
        && last.bytes().all(|b| b.is_ascii_digit())
        && rest
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
        // Two letters, or the sovereign cloud's `eusc`.
        && (2..=4).contains(&rest[0].len())
        // Every AWS region's name ends in a compass direction and a number.
        && rest.last().is_some_and(|d| COMPASS.contains(d))
}

/// The directions AWS region names use.
pub const COMPASS: &[&str] = &[
    "north",
    "south",
    "east",
    "west",
    "central",
    "northeast",
    "northwest",
    "southeast",
    "southwest",
];

pub(crate) fn is_ami_id(s: &str) -> bool {
    s.strip_prefix("ami-").is_some_and(|h| {
        (8..=17).contains(&h.len())
            && h.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

pub(crate) fn parse_version(s: &str) -> Result<KubernetesVersion, String> {
    let (major, v) = version_parts(s)?;
    if major != 1 || !SUPPORTED_MINORS.contains(&v.minor) {
        return Err(format!(
            "Kubernetes {s} is not supported: this release bootstraps 1.{} to 1.{} (kubeadm config v1beta4)",
            SUPPORTED_MINORS.start(),
            SUPPORTED_MINORS.end()
        ));
    }
    Ok(v)
}

/// `[v]MAJOR.MINOR[.PATCH]`, whatever the minor: its major and the rest.
pub(crate) fn version_parts(s: &str) -> Result<(u32, KubernetesVersion), String> {
    let t = s.strip_prefix('v').unwrap_or(s);
    let parts: Vec<&str> = t.split('.').collect();
    let num = |p: &str| -> Option<u32> {
        (!p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()))
            .then(|| p.parse().ok())
            .flatten()
    };
    let bad = || {
        format!(
            "`{s}` is not a Kubernetes version: expected 1.MINOR or 1.MINOR.PATCH, e.g. \"{DEFAULT_KUBERNETES_VERSION}\""
        )
    };
    let (major, minor, patch) = match parts.as_slice() {
        [a, b] => (num(a).ok_or_else(bad)?, num(b).ok_or_else(bad)?, None),
        [a, b, c] => (
            num(a).ok_or_else(bad)?,
            num(b).ok_or_else(bad)?,
            Some(num(c).ok_or_else(bad)?),
        ),
        _ => return Err(bad()),
    };
    Ok((major, KubernetesVersion { minor, patch }))
}

/// Accepts `family.size` names and rejects sizes too small for kubeadm (2 vCPU, 2 GiB).
pub(crate) fn check_instance_type(s: &str) -> Result<Arch, String> {
    let Some((family, size)) = s.split_once('.') else {
        return Err(format!(
            "`{s}` is not an EC2 instance type (e.g. t3.medium)"
        ));
    };
    let fam_ok = family
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_lowercase())
        && family.bytes().any(|b| b.is_ascii_digit())
        && family
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    let size_ok = !size.is_empty()
        && size
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if !fam_ok || !size_ok {
        return Err(format!(
            "`{s}` is not an EC2 instance type (e.g. t3.medium)"
        ));
    }
    if matches!(size, "nano" | "micro") || matches!(s, "t2.small" | "m1.small") {
        return Err(format!(
            "`{s}` is too small: kubeadm needs at least 2 vCPUs and 2 GiB of memory (e.g. t3.medium)"
        ));
    }
    // Graviton families carry a `g` among the letters after the generation digit (t4g, m7gd, c6gn).
    let after_digits = family.trim_start_matches(|c: char| c.is_ascii_lowercase());
    let suffix = after_digits.trim_start_matches(|c: char| c.is_ascii_digit());
    let suffix = suffix.split('-').next().unwrap_or("");
    Ok(if suffix.contains('g') {
        Arch::Arm64
    } else {
        Arch::Amd64
    })
}

/// 1-based line and column of a byte offset.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// The dotted path of the key a parse error points at, from the table headers above it.
pub(crate) fn field_for_parse_error(text: &str, offset: usize, message: &str) -> String {
    let offset = offset.min(text.len());
    let mut table = String::new();
    let mut key_here = None;
    let line_start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    // An array of tables is named with its index (`kubeadm.pools[1]`), as validation names it.
    let mut arrays: std::collections::HashMap<String, usize> = Default::default();
    for line in text[..line_start].lines() {
        let t = line.trim();
        if let Some(h) = t.strip_prefix("[[").and_then(|h| h.split("]]").next()) {
            let name = h.trim().to_string();
            let n = arrays.entry(name.clone()).or_insert(0);
            table = format!("{name}[{n}]");
            *n += 1;
        } else if let Some(h) = t.strip_prefix('[').and_then(|h| h.split(']').next()) {
            table = h.trim().to_string();
        }
    }
    let line = text[line_start..].lines().next().unwrap_or("").trim();
    if line.starts_with('[') {
        table = line
            .trim_matches(|c| c == '[' || c == ']')
            .trim()
            .to_string();
    } else if let Some((k, _)) = line.split_once('=') {
        key_here = Some(k.trim().trim_matches('"').to_string());
    }
    // serde names missing and unknown fields in backticks; prefer that name.
    let named = message
        .split('`')
        .nth(1)
        .filter(|_| message.contains("field"))
        .map(str::to_string);
    let key = named.or(key_here);
    match (table.is_empty(), key) {
        (true, Some(k)) => k,
        // An unknown table's own header: serde names the table itself.
        (false, Some(k)) if table == k || table.ends_with(&format!(".{k}")) => table,
        (false, Some(k)) => format!("{table}.{k}"),
        (false, None) => table,
        (true, None) => "(document)".to_string(),
    }
}
