//! Counting API calls with an SDK interceptor: the numbers behind `api_calls` in the summary
//! and the call order that teardown tests assert. The same interceptor tags every answer with
//! the call it answers (service, operation, endpoint), so that an answer that is not AWS's can
//! be reported in one line.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::BeforeSerializationInterceptorContextRef;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeDeserializationInterceptorContextMut, BeforeTransmitInterceptorContextRef,
    FinalizerInterceptorContextRef,
};
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::{ConfigBag, Storable, StoreReplace};

/// The call an answer belongs to (attached to every HTTP response).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallInfo {
    pub service: String,
    pub operation: String,
    /// Scheme, host and port the request went to.
    pub endpoint: String,
}

impl Storable for CallInfo {
    type Storer = StoreReplace<Self>;
}

/// `https://ec2.us-east-1.amazonaws.com/?Action=…` → `https://ec2.us-east-1.amazonaws.com`
/// (without any `user:password@`).
fn endpoint_of(uri: &str) -> String {
    match uri.split_once("://") {
        Some((scheme, rest)) => {
            let host = rest.split(['/', '?']).next().unwrap_or(rest);
            let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
            format!("{scheme}://{host}")
        }
        None => uri.split(['/', '?']).next().unwrap_or(uri).to_string(),
    }
}

/// Called with (service, operation) at the start of every operation.
pub type CallHook = Arc<dyn Fn(&str, &str) + Send + Sync>;

/// Shared by all clients of a run.
#[derive(Clone, Default)]
pub struct CallCounter {
    inner: Arc<Mutex<Log>>,
    hook: Option<CallHook>,
}

#[derive(Debug, Default)]
struct Log {
    operations: BTreeMap<String, BTreeMap<String, u64>>,
    attempts: u64,
    /// Attempts sent and not answered yet, by a number of their own.
    in_flight: HashMap<u64, (CallInfo, Instant)>,
    next: u64,
}

/// The number of an attempt in flight (in its config bag, from transmit to its end).
#[derive(Debug, Clone, Copy)]
struct AttemptId(u64);

impl Storable for AttemptId {
    type Storer = StoreReplace<Self>;
}

impl std::fmt::Debug for CallCounter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallCounter")
            .field("total", &self.total())
            .finish()
    }
}

impl CallCounter {
    pub fn new(hook: Option<CallHook>) -> Self {
        CallCounter {
            inner: Arc::default(),
            hook,
        }
    }

    fn log(&self) -> std::sync::MutexGuard<'_, Log> {
        // A panic while holding this lock cannot leave the counts inconsistent.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Operations by service and name (a waiter's polls count one each; SDK retries do not).
    pub fn by_operation(&self) -> BTreeMap<String, BTreeMap<String, u64>> {
        self.log().operations.clone()
    }

    pub fn total(&self) -> u64 {
        self.log()
            .operations
            .values()
            .flat_map(|m| m.values())
            .sum()
    }

    /// HTTP attempts, retries included.
    pub fn attempts(&self) -> u64 {
        self.log().attempts
    }

    /// The attempts sent more than `after` ago and not answered yet: (number, call, how long).
    /// Attempts older than `forget` are dropped: a call cancelled from outside (a sibling's
    /// failure, a signal) never reports its end.
    pub fn unanswered(&self, after: Duration, forget: Duration) -> Vec<(u64, CallInfo, Duration)> {
        let mut log = self.log();
        log.in_flight
            .retain(|_, (_, since)| since.elapsed() < forget);
        let mut out: Vec<(u64, CallInfo, Duration)> = log
            .in_flight
            .iter()
            .filter(|(_, (_, since))| since.elapsed() >= after)
            .map(|(id, (info, since))| (*id, info.clone(), since.elapsed()))
            .collect();
        out.sort_by_key(|(id, ..)| *id);
        out
    }
}

impl Intercept for CallCounter {
    fn name(&self) -> &'static str {
        "provision::CallCounter"
    }

    // Not `read_before_execution`: client-level interceptors see that hook before the
    // operation's own config (with its `Metadata`) is in the bag.
    fn read_before_serialization(
        &self,
        _ctx: &BeforeSerializationInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(m) = cfg.load::<Metadata>() {
            *self
                .log()
                .operations
                .entry(m.service().to_string())
                .or_default()
                .entry(m.name().to_string())
                .or_default() += 1;
            if let Some(hook) = &self.hook {
                hook(m.service(), m.name());
            }
        }
        Ok(())
    }

    fn read_before_attempt(
        &self,
        _ctx: &BeforeTransmitInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        self.log().attempts += 1;
        Ok(())
    }

    fn read_before_transmit(
        &self,
        ctx: &BeforeTransmitInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let (service, operation) = cfg
            .load::<Metadata>()
            .map(|m| (m.service().to_string(), m.name().to_string()))
            .unwrap_or_default();
        let info = CallInfo {
            service,
            operation,
            endpoint: endpoint_of(ctx.request().uri()),
        };
        let id = {
            let mut log = self.log();
            log.next += 1;
            let id = log.next;
            log.in_flight.insert(id, (info.clone(), Instant::now()));
            id
        };
        cfg.interceptor_state().store_put(AttemptId(id));
        cfg.interceptor_state().store_put(info);
        Ok(())
    }

    // After every attempt, answered or not (a timeout, a refused connection).
    fn read_after_attempt(
        &self,
        _ctx: &FinalizerInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(AttemptId(id)) = cfg.load::<AttemptId>().copied() {
            self.log().in_flight.remove(&id);
        }
        Ok(())
    }

    fn modify_before_deserialization(
        &self,
        ctx: &mut BeforeDeserializationInterceptorContextMut<'_>,
        _rc: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(info) = cfg.load::<CallInfo>().cloned() {
            ctx.response_mut().add_extension(info);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_endpoint_is_scheme_host_and_port() {
        assert_eq!(
            super::endpoint_of("https://eks.us-east-1.amazonaws.com/clusters/x?y=1"),
            "https://eks.us-east-1.amazonaws.com"
        );
        assert_eq!(
            super::endpoint_of("http://127.0.0.1:4566/?Action=DescribeVpcs"),
            "http://127.0.0.1:4566"
        );
        assert_eq!(
            super::endpoint_of("https://user:secret@proxy.example:8443/x"),
            "https://proxy.example:8443"
        );
    }
}
