//! Polling at a fixed rate, for waits where the SDK's waiters poll too seldom for how long the
//! state takes (EC2's are fixed at 15 s and more between polls, EKS's at 30-120 s).
//!
//! Intervals are multiplied by [`Tuning::time_scale`], which the CLI reads once from
//! `PROVISION_TIME_SCALE`: the latency profile of the emulator replays AWS's durations scaled
//! down (an EKS cluster's 9 minutes in 9 s), and a run under it polls with the same factor, so
//! that its waits relate to the durations as they would on AWS. Deadlines and retry back-off
//! are not scaled.

use std::time::Duration;

use super::AwsError;

/// The knobs the edge reads from the environment once and hands down with the clients.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tuning {
    /// Multiplies every interval between polls (≤ 1; `PROVISION_TIME_SCALE`).
    pub time_scale: f64,
    /// How long teardown retries DependencyViolation (`PROVISION_DEPENDENCY_TIMEOUT`).
    pub dependency_timeout: Duration,
    /// How long one attempt of a call may take before it is abandoned (and retried);
    /// a call with its retries gets four times this (`PROVISION_CALL_TIMEOUT`).
    pub call_timeout: Duration,
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning {
            time_scale: 1.0,
            dependency_timeout: Duration::from_secs(300),
            call_timeout: Duration::from_secs(30),
        }
    }
}

impl Tuning {
    /// The knobs from environment variables (`var` reads one), defaults for what is unset or
    /// malformed.
    pub fn from_env(var: impl Fn(&str) -> Option<String>) -> Tuning {
        let d = Tuning::default();
        Tuning {
            time_scale: var("PROVISION_TIME_SCALE")
                .and_then(|s| s.parse::<f64>().ok())
                .filter(|f| f.is_finite() && *f > 0.0 && *f <= 1.0)
                .unwrap_or(d.time_scale),
            dependency_timeout: var("PROVISION_DEPENDENCY_TIMEOUT")
                .and_then(|s| s.parse::<u64>().ok())
                .map_or(d.dependency_timeout, Duration::from_secs),
            call_timeout: var("PROVISION_CALL_TIMEOUT")
                .and_then(|s| s.parse::<u64>().ok())
                .filter(|s| *s > 0)
                .map_or(d.call_timeout, Duration::from_secs),
        }
    }

    /// `d` times the time scale.
    pub fn scaled(&self, d: Duration) -> Duration {
        d.mul_f64(self.time_scale)
    }

    /// Teardown waiting for AWS to release dependencies (interfaces, mapped addresses).
    pub fn dependency(&self) -> super::retry::Backoff {
        super::retry::Backoff {
            initial: Duration::from_secs(1).min(self.dependency_timeout),
            max: Duration::from_secs(15),
            deadline: self.dependency_timeout,
        }
    }
}

/// What one poll saw.
pub enum Seen<T> {
    Ready(T),
    /// Not yet: what it is now (for progress, and for the error when the deadline passes).
    Pending(String),
    /// A state that will not turn into the wanted one (with the reason).
    Failed(String),
}

/// Polls `check` every scaled `interval`, at a fixed rate (the first time at once: the next
/// poll is `interval` after the last one started, not after it answered), until it is ready,
/// fails, or `max` passes.
///
/// # Errors
/// The error of `check`, or [`AwsError::Wait`] naming `resource`, `state` and what was last seen.
pub async fn until<T, F, Fut>(
    tuning: &Tuning,
    interval: Duration,
    max: Duration,
    resource: &str,
    state: &str,
    check: F,
) -> Result<T, AwsError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Seen<T>, AwsError>>,
{
    until_with(tuning, interval, max, resource, state, &|_| {}, check).await
}

/// [`until`], telling `progress` each pending state.
///
/// # Errors
/// As [`until`].
pub async fn until_with<T, F, Fut>(
    tuning: &Tuning,
    interval: Duration,
    max: Duration,
    resource: &str,
    state: &str,
    progress: &(dyn Fn(&str) + Send + Sync),
    mut check: F,
) -> Result<T, AwsError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Seen<T>, AwsError>>,
{
    let start = tokio::time::Instant::now();
    let deadline = start + max;
    let every = tuning.scaled(interval);
    loop {
        let next = tokio::time::Instant::now() + every;
        let last = match check().await? {
            Seen::Ready(t) => return Ok(t),
            Seen::Failed(why) => {
                return Err(AwsError::Wait {
                    resource: resource.into(),
                    state: state.into(),
                    message: why,
                });
            }
            Seen::Pending(now) => now,
        };
        if next > deadline {
            return Err(AwsError::Wait {
                resource: resource.into(),
                state: state.into(),
                message: format!(
                    "still {last} after {} s (the limit)",
                    start.elapsed().as_secs()
                ),
            });
        }
        progress(&last);
        tokio::time::sleep_until(next).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test(start_paused = true)]
    async fn polls_at_a_fixed_rate_until_ready() {
        let n = AtomicU32::new(0);
        let start = tokio::time::Instant::now();
        let got = until(
            &Tuning::default(),
            Duration::from_secs(10),
            Duration::from_secs(600),
            "i-1",
            "running",
            || async {
                // Each poll itself takes 3 s: the next still starts 10 s after this one did.
                tokio::time::sleep(Duration::from_secs(3)).await;
                Ok(if n.fetch_add(1, Ordering::SeqCst) < 4 {
                    Seen::Pending("pending".into())
                } else {
                    Seen::Ready(7)
                })
            },
        )
        .await
        .unwrap();
        assert_eq!(got, 7);
        assert_eq!(n.load(Ordering::SeqCst), 5);
        assert_eq!(
            start.elapsed(),
            Duration::from_secs(43),
            "polls at 0, 10, 20, 30, 40"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn gives_up_at_the_deadline_naming_what_it_last_saw() {
        let n = AtomicU32::new(0);
        let err = until(
            &Tuning::default(),
            Duration::from_secs(15),
            Duration::from_secs(60),
            "demo",
            "ACTIVE",
            || async {
                n.fetch_add(1, Ordering::SeqCst);
                Ok::<Seen<()>, AwsError>(Seen::Pending("CREATING".into()))
            },
        )
        .await
        .unwrap_err();
        assert!(
            err.to_string().contains("still CREATING after 60 s"),
            "{err}"
        );
        assert_eq!(n.load(Ordering::SeqCst), 5, "at 0, 15, 30, 45 and 60 s");
    }

    #[tokio::test(start_paused = true)]
    async fn a_failure_state_ends_the_wait_at_once_and_the_scale_shortens_intervals() {
        let n = AtomicU32::new(0);
        let scaled = Tuning {
            time_scale: 0.1,
            ..Tuning::default()
        };
        let start = tokio::time::Instant::now();
        let err = until(
            &scaled,
            Duration::from_secs(10),
            Duration::from_secs(600),
            "nat-1",
            "available",
            || async {
                Ok::<Seen<()>, AwsError>(if n.fetch_add(1, Ordering::SeqCst) < 2 {
                    Seen::Pending("pending".into())
                } else {
                    Seen::Failed("it is failed".into())
                })
            },
        )
        .await
        .unwrap_err();
        assert!(err.to_string().contains("it is failed"), "{err}");
        assert_eq!(start.elapsed(), Duration::from_secs(2), "two 1 s intervals");
    }

    #[test]
    fn the_knobs_come_from_the_environment_once() {
        let t = Tuning::from_env(|k| match k {
            "PROVISION_TIME_SCALE" => Some("0.0166".into()),
            "PROVISION_DEPENDENCY_TIMEOUT" => Some("3".into()),
            _ => None,
        });
        assert!((t.time_scale - 0.0166).abs() < 1e-9);
        assert_eq!(t.dependency_timeout, Duration::from_secs(3));
        assert_eq!(
            Tuning::from_env(|_| Some("7".into())).time_scale,
            1.0,
            "≤ 1 only"
        );
    }
}
