//! Prometheus metrics of the cache, the circuit and the SMS limits.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::BreakerState;

#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub enum Lookup {
    /// Answered from Redis.
    Hit,
    /// Not in Redis (or not readable); the store is read instead.
    Miss,
    /// Redis failed or timed out; the store is read instead.
    Error,
    /// Redis not called (circuit open, not connected); the store is read instead.
    Bypass,
}

impl Lookup {
    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::Hit => "hit",
            Self::Miss => "miss",
            Self::Error => "error",
            Self::Bypass => "bypass",
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LookupLabels {
    result: &'static str,
}

#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub enum LimitedBy {
    User,
    Phone,
    Country,
    Prefix,
}

impl LimitedBy {
    fn label(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Phone => "phone",
            Self::Country => "country",
            Self::Prefix => "prefix",
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LimitLabels {
    scope: &'static str,
}

#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub enum Counting {
    Redis,
    InProcess,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CountingLabels {
    store: &'static str,
}

/// Handles to the metrics; cheap to clone, all clones update the same series.
#[derive(Debug, Clone, Default)]
pub struct RedisMetrics {
    lookups: Family<LookupLabels, Counter>,
    redis_errors: Counter,
    circuit: Gauge,
    limited: Family<LimitLabels, Counter>,
    counted: Family<CountingLabels, Counter>,
}

impl RedisMetrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self::default();
        registry.register(
            "factors_cache_lookups",
            "Lookups of OTP SMS authenticators through the cache, by result",
            metrics.lookups.clone(),
        );
        registry.register("factors_redis_errors", "Redis calls that failed or timed out", metrics.redis_errors.clone());
        registry.register(
            "factors_redis_circuit_state",
            "Circuit breaker in front of Redis: 0 closed, 1 half-open, 2 open",
            metrics.circuit.clone(),
        );
        // At zero from the start, so that rates and alerts see them before the first refusal.
        for scope in [LimitedBy::User, LimitedBy::Phone, LimitedBy::Country, LimitedBy::Prefix] {
            let _ = metrics.limited.get_or_create(&LimitLabels { scope: scope.label() });
        }
        registry.register(
            "factors_sms_rate_limited",
            "SMS refused by a rate limit (codes, and notices against the number's limit), by the limit reached",
            metrics.limited.clone(),
        );
        registry.register(
            "factors_sms_rate_limit_checks",
            "Rate-limit checks, by where they were counted (redis, or in process while Redis is away)",
            metrics.counted.clone(),
        );
        metrics
    }

    pub fn lookup(&self, result: Lookup) {
        self.lookups.get_or_create(&LookupLabels { result: result.label() }).inc();
    }

    pub fn redis_error(&self) {
        self.redis_errors.inc();
    }

    pub fn circuit(&self, state: BreakerState) {
        self.circuit.set(state.as_gauge());
    }

    pub fn limited(&self, scope: LimitedBy) {
        self.limited.get_or_create(&LimitLabels { scope: scope.label() }).inc();
    }

    pub fn counted(&self, store: Counting) {
        let store = match store {
            Counting::Redis => "redis",
            Counting::InProcess => "in_process",
        };
        self.counted.get_or_create(&CountingLabels { store }).inc();
    }

    /// The count of lookups with this result so far (for tests and diagnostics).
    pub fn lookups(&self, result: Lookup) -> u64 {
        self.lookups.get_or_create(&LookupLabels { result: result.label() }).get()
    }
}
