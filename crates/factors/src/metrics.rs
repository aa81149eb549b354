//! Metrics of what only the use cases see, registered with the process's registry beside
//! the adapters' own.

use factors_application::ports::{SecurityMetrics, SmsPurpose};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PurposeLabels {
    purpose: &'static str,
}

/// The counters behind [`SecurityMetrics`].
#[derive(Debug, Clone, Default)]
pub struct SecurityCounters {
    locked: Family<PurposeLabels, Counter>,
}

impl SecurityCounters {
    /// Creates the counters and registers them in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let counters = Self::default();
        registry.register(
            "factors_code_checks_locked",
            "Code checks refused uncompared because the user's budget of failed checks was spent, by purpose",
            counters.locked.clone(),
        );
        counters
    }
}

impl SecurityMetrics for SecurityCounters {
    fn code_checks_locked(&self, purpose: SmsPurpose) {
        self.locked.get_or_create(&PurposeLabels { purpose: purpose.as_str() }).inc();
    }
}
