//! SIGINT and SIGTERM during `up` and `down`: the steps in flight are stopped (what they made
//! is tagged, so the next run continues from it), the cluster lock is released, and the run
//! exits 130 or 143, as a shell reports a process killed by the signal. A cancelled CI job thus
//! leaves no lock for the next one to wait out.

use tokio::signal::unix::{SignalKind, signal};

/// Which signal stopped the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Interrupt,
    Terminate,
}

impl Signal {
    pub fn name(self) -> &'static str {
        match self {
            Signal::Interrupt => "SIGINT",
            Signal::Terminate => "SIGTERM",
        }
    }

    /// 128 + the signal's number.
    pub fn exit_code(self) -> u8 {
        match self {
            Signal::Interrupt => 130,
            Signal::Terminate => 143,
        }
    }
}

/// Resolves at the first SIGINT or SIGTERM (never, if they cannot be listened for).
pub async fn interrupted() -> Signal {
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = int.recv() => Signal::Interrupt,
        _ = term.recv() => Signal::Terminate,
    }
}
