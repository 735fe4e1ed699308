//! Lock records as another run would leave them, for the lock and signal tests.

use provision::core::lock::{Holder, LEASE_SECS};

pub fn now() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap()
}

pub fn start_of(pid: u32) -> String {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    stat[stat.rfind(')').unwrap() + 1..]
        .split_whitespace()
        .nth(19)
        .unwrap()
        .to_string()
}

/// A lock record for process `pid` of this machine.
pub fn holder(pid: u32, pid_start: String) -> Holder {
    Holder {
        id: format!("test-{pid}"),
        command: "up".into(),
        host: "test-host".into(),
        boot_id: std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
            .unwrap()
            .trim()
            .into(),
        pid_ns: std::fs::read_link("/proc/self/ns/pid")
            .unwrap()
            .display()
            .to_string(),
        pid,
        pid_start,
        since: now(),
        expires: now() + LEASE_SECS,
    }
}

/// Puts `h` as the cluster's lock, tagged as `up` would tag it.
pub async fn put_lock(c: &provision::aws::Clients, cluster: &str, h: &Holder) {
    let name = provision::aws::lock::parameter_name(cluster);
    let tags = provision::core::tags::tags_for(cluster, "lock", false, &Default::default());
    assert!(
        provision::aws::lock::create(c, &name, &serde_json::to_string(h).unwrap(), &tags)
            .await
            .unwrap()
    );
}
