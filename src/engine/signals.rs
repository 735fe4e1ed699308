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

/// SIGINT and SIGTERM, listened for from the moment it is made (from then on they no longer
/// end the process by themselves: the run must receive them).
pub struct Listener {
    int: Option<tokio::signal::unix::Signal>,
    term: Option<tokio::signal::unix::Signal>,
}

/// Starts listening (before the lock is taken, so that no signal can end the run while it
/// holds the lock without releasing it).
pub fn listen() -> Listener {
    Listener {
        int: signal(SignalKind::interrupt()).ok(),
        term: signal(SignalKind::terminate()).ok(),
    }
}

impl Listener {
    /// The next SIGINT or SIGTERM (never, if they could not be listened for).
    pub async fn recv(&mut self) -> Signal {
        async fn next(s: &mut Option<tokio::signal::unix::Signal>) {
            match s {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        }
        tokio::select! {
            () = next(&mut self.int) => Signal::Interrupt,
            () = next(&mut self.term) => Signal::Terminate,
        }
    }
}
