//! Metrics of what only the use cases see, registered with the process's registry beside
//! the adapters' own.

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use factors_application::ports::{RegionOutcome, SecurityMetrics, SmsPurpose};
use factors_domain::BreakerState;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PurposeLabels {
    purpose: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RegionLabels {
    region: String,
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BreakerLabels {
    region: String,
}

/// The metrics behind [`SecurityMetrics`].
#[derive(Debug, Clone, Default)]
pub struct SecurityCounters {
    locked: Family<PurposeLabels, Counter>,
    outbox_oldest: Gauge<f64, AtomicU64>,
    regions: Family<RegionLabels, Counter>,
    breakers: Family<BreakerLabels, Gauge>,
}

impl SecurityCounters {
    /// Creates the metrics and registers them in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let counters = Self::default();
        registry.register(
            "factors_code_checks_locked",
            "Code checks refused uncompared because the user's budget of failed checks was spent, by purpose",
            counters.locked.clone(),
        );
        registry.register(
            "factors_sms_region",
            "Code SMS by the number's region (CLDR code, 001: no country) and outcome: sent, not_allowed \
             (sms.countries), paused (the region's breaker)",
            counters.regions.clone(),
        );
        registry.register(
            "factors_sms_breaker_state",
            "The conversion breaker of each region that has changed state: 0 closed, 1 half-open, 2 open",
            counters.breakers.clone(),
        );
        registry.register_with_unit(
            "factors_notice_outbox_oldest",
            "How long the oldest removal notice still in the outbox has waited (0 when it is empty), \
             as the notice worker last read it",
            Unit::Seconds,
            counters.outbox_oldest.clone(),
        );
        counters
    }
}

impl SecurityMetrics for SecurityCounters {
    fn code_checks_locked(&self, purpose: SmsPurpose) {
        self.locked.get_or_create(&PurposeLabels { purpose: purpose.as_str() }).inc();
    }

    fn notice_outbox_oldest(&self, waited: Duration) {
        self.outbox_oldest.set(waited.as_secs_f64());
    }

    fn sms_region(&self, region: &str, outcome: RegionOutcome) {
        self.regions.get_or_create(&RegionLabels { region: region.to_owned(), outcome: outcome.as_str() }).inc();
    }

    fn sms_breaker(&self, region: &str, state: &BreakerState) {
        let value = match state {
            BreakerState::Closed => 0,
            BreakerState::HalfOpen { .. } => 1,
            BreakerState::Open { .. } => 2,
        };
        self.breakers.get_or_create(&BreakerLabels { region: region.to_owned() }).set(value);
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DependencyLabels {
    dependency: &'static str,
}

/// `factors_dependency_up`: what the last readiness check (`/readyz`, and the gRPC
/// health task every 5 s) found of each dependency.
#[derive(Debug, Clone, Default)]
pub struct DependencyGauges(Family<DependencyLabels, Gauge>);

impl DependencyGauges {
    /// Creates the gauges and registers them in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let gauges = Self::default();
        registry.register(
            "factors_dependency_up",
            "Whether a dependency answered the last readiness check: 1 up, 0 down (Redis: 0 also when degraded)",
            gauges.0.clone(),
        );
        gauges
    }

    /// Records what the check found of `dependency`.
    pub fn set(&self, dependency: &'static str, up: bool) {
        self.0.get_or_create(&DependencyLabels { dependency }).set(i64::from(up));
    }
}
