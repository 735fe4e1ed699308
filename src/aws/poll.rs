//! Poll intervals, and the one knob that scales them.
//!
//! `PROVISION_TIME_SCALE` (a factor, default 1) multiplies every interval between polls and
//! every wait between lock checks. It exists for the latency profile of the emulator
//! (`localstack/`), which replays AWS's durations scaled down (an EKS cluster's 9 minutes in
//! 9 s): a benchmark under that profile runs provision with the same factor, so that its waits
//! relate to the durations as they would on AWS. Deadlines and retry back-off are not scaled.

use std::sync::OnceLock;
use std::time::Duration;

use super::AwsError;

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

/// What one poll saw.
pub enum Seen<T> {
    Ready(T),
    /// Not yet: what it is now (for the error when the deadline passes).
    Pending(String),
}

/// Polls `check` every `scaled(interval)`, at a fixed rate (the first time at once) until it is ready, fails, or
/// `max` passes. For waits where the SDK's waiters poll too seldom for how long the state takes
/// (EC2's are fixed at 15 s and more between polls; an instance runs in about 40 s).
///
/// # Errors
/// The error of `check`, or [`AwsError::Wait`] naming `resource`, `state` and what was last seen.
pub async fn until<T, F, Fut>(
    interval: Duration,
    max: Duration,
    resource: &str,
    state: &str,
    mut check: F,
) -> Result<T, AwsError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Seen<T>, AwsError>>,
{
    let deadline = tokio::time::Instant::now() + max;
    let every = scaled(interval);
    loop {
        // Fixed rate: the next poll is `every` after this one started, not after it answered.
        let next = tokio::time::Instant::now() + every;
        let last = match check().await? {
            Seen::Ready(t) => return Ok(t),
            Seen::Pending(now) => now,
        };
        if next > deadline {
            return Err(AwsError::Wait {
                resource: resource.into(),
                state: state.into(),
                message: format!("gave up after {} s; last seen: {last}", max.as_secs()),
            });
        }
        tokio::time::sleep_until(next).await;
    }
}
