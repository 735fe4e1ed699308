//! Poll intervals, and the one knob that scales them.
//!
//! `PROVISION_TIME_SCALE` (a factor, default 1) multiplies every interval between polls and
//! every wait between lock checks. It exists for the latency profile of the emulator
//! (`localstack/`), which replays AWS's durations scaled down (an EKS cluster's 9 minutes in
//! 9 s): a benchmark under that profile runs provision with the same factor, so that its waits
//! relate to the durations as they would on AWS. Deadlines and retry back-off are not scaled.

use std::sync::OnceLock;
use std::time::Duration;

fn factor() -> f64 {
    static FACTOR: OnceLock<f64> = OnceLock::new();
    *FACTOR.get_or_init(|| {
        std::env::var("PROVISION_TIME_SCALE")
            .ok()
            .and_then(|s| s.parse::<f64>().ok())
            .filter(|f| f.is_finite() && *f > 0.0 && *f <= 1.0)
            .unwrap_or(1.0)
    })
}

/// `d` times the time scale.
pub fn scaled(d: Duration) -> Duration {
    d.mul_f64(factor())
}
