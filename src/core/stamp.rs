//! Who made a cluster, when, and when it expires: the stamp tags `up` puts on what it creates,
//! which `list`, `status` and `gc` read back.
//!
//! Architecture invariant: a cluster's expiry is decided here ([`expiry`]) from the spec's or
//! the command line's TTL, what the VPC's tags say and the time; `up` never shortens an expiry
//! the spec did not ask for, and only `gc` acts on one.

/// The caller's ARN (GetCallerIdentity) when the resource was created.
pub const CREATED_BY_TAG: &str = "provision:created-by";
/// When the resource was created, `2026-12-01T07:00:00Z`.
pub const CREATED_AT_TAG: &str = "provision:created-at";
/// When `provision gc` may delete the cluster, `2026-12-01T11:00:00Z`.
pub const EXPIRES_AT_TAG: &str = "provision:expires-at";
/// On kubeadm instances: the Kubernetes version they were launched for.
pub const VERSION_TAG: &str = "provision:kubernetes-version";
/// What a worker was launched with, hashed (`kinds::worker_pool::launch_hash`).
pub const LAUNCH_HASH_TAG: &str = "provision:launch-hash";
/// On the kubeadm control plane: how often it saves etcd (seconds), as it was launched.
pub const BACKUP_INTERVAL_TAG: &str = "provision:etcd-backup-interval";
/// The worker pool an instance belongs to.
pub const POOL_TAG: &str = "provision:pool";

/// The shortest and longest TTL accepted.
pub const TTL_MIN: i64 = 60;
pub const TTL_MAX: i64 = 90 * 86_400;

/// How long a cluster lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ttl {
    pub seconds: i64,
    /// `up --ttl`: from now, replacing any expiry. The spec's `ttl`: from when the cluster got
    /// its expiry (an existing expiry is kept).
    pub from_now: bool,
}

/// Parses `4h`, `90m`, `2d`, `1h30m`, `45s` (at least a minute, at most 90 days).
///
/// # Errors
/// A message saying what is accepted.
pub fn parse_ttl(s: &str) -> Result<i64, String> {
    let bad = || format!("`{s}` is not a duration: write e.g. 4h, 90m, 2d or 1h30m");
    let mut total: i64 = 0;
    let mut digits = String::new();
    let mut units = 0;
    for ch in s.trim().chars() {
        if ch.is_ascii_digit() {
            digits.push(ch);
            continue;
        }
        let unit = match ch {
            'd' => 86_400,
            'h' => 3_600,
            'm' => 60,
            's' => 1,
            _ => return Err(bad()),
        };
        let n: i64 = digits.parse().map_err(|_| bad())?;
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(bad)?;
        digits.clear();
        units += 1;
    }
    if !digits.is_empty() || units == 0 {
        return Err(bad());
    }
    if !(TTL_MIN..=TTL_MAX).contains(&total) {
        return Err(format!(
            "`{s}` is outside what a TTL may be: from 1m to 90d"
        ));
    }
    Ok(total)
}

/// `4h`, `1h30m`, `2d3h`, `45s`: a duration as people write it (for ages and TTLs).
pub fn format_duration(secs: i64) -> String {
    let neg = secs < 0;
    let mut s = secs.unsigned_abs();
    let mut out = String::new();
    for (unit, name) in [(86_400, 'd'), (3_600, 'h'), (60, 'm')] {
        if s >= unit {
            out += &format!("{}{name}", s / unit);
            s %= unit;
        }
    }
    if s > 0 || out.is_empty() {
        out += &format!("{s}s");
    }
    if neg { format!("-{out}") } else { out }
}

/// Unix seconds from `2026-12-01T07:00:00Z` (the format [`crate::core::lock::unix_utc`]
/// writes); `None` for anything else.
pub fn parse_utc(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 20
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
        || b[19] != b'Z'
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = s.get(r)?;
        t.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| t.parse().ok())?
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 59 {
        return None;
    }
    // Days from civil (Howard Hinnant's algorithm), the inverse of `unix_utc`.
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + h * 3_600 + mi * 60 + se)
}

/// What a resource's stamp tags say.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stamp {
    pub created_by: Option<String>,
    pub created_at: Option<i64>,
    pub expires_at: Option<i64>,
}

impl Stamp {
    /// From a resource's tags (an unreadable time counts as absent).
    pub fn from_tags<'a>(tags: impl IntoIterator<Item = (&'a str, &'a str)>) -> Stamp {
        let mut s = Stamp::default();
        for (k, v) in tags {
            match k {
                CREATED_BY_TAG => s.created_by = Some(v.to_string()),
                CREATED_AT_TAG => s.created_at = parse_utc(v),
                EXPIRES_AT_TAG => s.expires_at = parse_utc(v),
                _ => {}
            }
        }
        s
    }
}

/// The stamp of what one `up` run creates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunStamp {
    /// The caller's ARN.
    pub by: String,
    /// When the run started.
    pub at: i64,
    /// The cluster's expiry, from [`expiry`].
    pub expires_at: Option<i64>,
}

impl RunStamp {
    pub fn tags(&self) -> Vec<(String, String)> {
        let mut out = vec![
            (CREATED_BY_TAG.to_string(), self.by.clone()),
            (
                CREATED_AT_TAG.to_string(),
                crate::core::lock::unix_utc(self.at),
            ),
        ];
        if let Some(e) = self.expires_at {
            out.push((EXPIRES_AT_TAG.to_string(), crate::core::lock::unix_utc(e)));
        }
        out
    }
}

/// The cluster's expiry after this `up`: `up --ttl` sets now + TTL; the spec's `ttl` keeps the
/// expiry the cluster has (so that `up` is idempotent) or starts one at now + TTL; without a
/// TTL an existing expiry stays (only `up --ttl` moves it).
pub fn expiry(ttl: Option<Ttl>, observed: Option<i64>, now: i64) -> Option<i64> {
    match ttl {
        Some(t) if t.from_now => Some(now + t.seconds),
        Some(t) => Some(observed.unwrap_or(now + t.seconds)),
        None => observed,
    }
}

/// Whether a cluster with this expiry is due for `gc` at `now`.
pub fn expired(expires_at: Option<i64>, now: i64) -> bool {
    expires_at.is_some_and(|e| e <= now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttls_parse_in_every_unit_and_refuse_the_rest() {
        assert_eq!(parse_ttl("4h"), Ok(4 * 3600));
        assert_eq!(parse_ttl("90m"), Ok(5400));
        assert_eq!(parse_ttl("2d"), Ok(2 * 86_400));
        assert_eq!(parse_ttl("1h30m"), Ok(5400));
        for bad in ["", "4", "h", "4x", "-4h", "4h5", "30s", "91d", "4 h"] {
            assert!(parse_ttl(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn durations_format_as_people_write_them() {
        assert_eq!(format_duration(4 * 3600), "4h");
        assert_eq!(format_duration(5400), "1h30m");
        assert_eq!(format_duration(86_400 + 61), "1d1m1s");
        assert_eq!(format_duration(0), "0s");
        assert_eq!(format_duration(-120), "-2m");
    }

    #[test]
    fn utc_times_read_back_what_unix_utc_writes() {
        for t in [0, 1_764_572_400, 1_798_761_599, 951_782_400, 4_102_444_800] {
            let s = crate::core::lock::unix_utc(t);
            assert_eq!(parse_utc(&s), Some(t), "{s}");
        }
        for bad in [
            "2026-12-01 07:00:00Z",
            "2026-13-01T07:00:00Z",
            "x",
            "2026-12-01T07:00:00+00:00",
        ] {
            assert_eq!(parse_utc(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_spec_ttl_keeps_an_expiry_and_the_flag_moves_it() {
        let spec = Some(Ttl {
            seconds: 3600,
            from_now: false,
        });
        let flag = Some(Ttl {
            seconds: 7200,
            from_now: true,
        });
        assert_eq!(expiry(spec, None, 100), Some(3700));
        assert_eq!(expiry(spec, Some(500), 100), Some(500));
        assert_eq!(expiry(flag, Some(500), 100), Some(7300));
        assert_eq!(expiry(None, Some(500), 100), Some(500));
        assert_eq!(expiry(None, None, 100), None);
    }

    #[test]
    fn only_a_passed_expiry_is_due() {
        assert!(expired(Some(100), 100));
        assert!(!expired(Some(101), 100));
        assert!(!expired(None, 100));
    }

    #[test]
    fn a_stamp_reads_its_tags() {
        let s = Stamp::from_tags([
            (CREATED_BY_TAG, "arn:aws:iam::1:user/ci"),
            (CREATED_AT_TAG, "2026-12-01T07:00:00Z"),
            (EXPIRES_AT_TAG, "garbage"),
            ("Name", "x"),
        ]);
        assert_eq!(s.created_by.as_deref(), Some("arn:aws:iam::1:user/ci"));
        assert_eq!(s.created_at, parse_utc("2026-12-01T07:00:00Z"));
        assert_eq!(s.expires_at, None);
    }
}
