//! Progress events (defined in `core::events`) and the run's clock.

use std::time::Instant;

pub use crate::core::events::{Event, EventSink, ResourceRecord};

pub(crate) fn ms_since(t: Instant) -> u64 {
    u64::try_from(t.elapsed().as_millis()).unwrap_or(u64::MAX)
}
