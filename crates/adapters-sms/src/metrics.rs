//! Prometheus metrics of the SMS senders: sends by provider and outcome, and how long
//! the provider took.

use std::fmt;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Who an SMS was handed to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Provider {
    /// The development sender: nothing is sent.
    Log,
    Twilio,
    Webhook,
}

impl Provider {
    /// The `provider` label.
    pub fn label(self) -> &'static str {
        match self {
            Self::Log => "log",
            Self::Twilio => "twilio",
            Self::Webhook => "webhook",
        }
    }
}

/// As error messages name it.
impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Log => "the logging SMS sender",
            Self::Twilio => "Twilio",
            Self::Webhook => "the SMS webhook",
        })
    }
}

/// How one send ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The provider took the SMS (a 2xx answer).
    Sent,
    /// The provider refused it (a 4xx answer: bad credentials, number, sender, ...).
    Rejected,
    /// The provider failed (a 5xx or other unexpected answer) or could not be reached.
    Failed,
    /// No answer within the timeout. The SMS may or may not have gone out.
    Timeout,
}

impl Outcome {
    /// The `outcome` label.
    pub fn label(self) -> &'static str {
        match self {
            Self::Sent => "sent",
            Self::Rejected => "rejected",
            Self::Failed => "failed",
            Self::Timeout => "timeout",
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SendLabels {
    provider: &'static str,
    outcome: &'static str,
}

fn duration_histogram() -> Histogram {
    // 10 ms to about 20 s: a provider's API, up to and past the send timeout.
    Histogram::new(exponential_buckets(0.01, 2.0, 12))
}

/// Handles to the metrics; cheap to clone, all clones update the same series.
#[derive(Debug, Clone)]
pub struct SmsMetrics {
    sends: Family<SendLabels, Counter>,
    durations: Family<SendLabels, Histogram, fn() -> Histogram>,
}

impl Default for SmsMetrics {
    /// Metrics registered nowhere (for tests and tools).
    fn default() -> Self {
        Self {
            sends: Family::default(),
            durations: Family::new_with_constructor(duration_histogram as fn() -> Histogram),
        }
    }
}

impl SmsMetrics {
    /// Creates the metrics and registers them in `registry`: `factors_sms_sent_total` and
    /// `factors_sms_send_duration_seconds`, both by `provider` and `outcome`.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self::default();
        registry.register(
            "factors_sms_sent",
            "SMS (codes and notices) handed to the provider, by provider and outcome (sent, rejected, failed, timeout)",
            metrics.sends.clone(),
        );
        registry.register(
            "factors_sms_send_duration_seconds",
            "Time the SMS provider took to answer, by provider and outcome",
            metrics.durations.clone(),
        );
        metrics
    }

    /// Creates `provider`'s series for every outcome at zero, so that they are served
    /// (and rates and alerts see them) before the first send.
    pub fn initialize(&self, provider: Provider) {
        for outcome in [Outcome::Sent, Outcome::Rejected, Outcome::Failed, Outcome::Timeout] {
            let labels = SendLabels { provider: provider.label(), outcome: outcome.label() };
            let _ = self.sends.get_or_create(&labels);
            let _ = self.durations.get_or_create(&labels);
        }
    }

    /// Counts one send.
    pub fn record(&self, provider: Provider, outcome: Outcome, took: Duration) {
        let labels = SendLabels { provider: provider.label(), outcome: outcome.label() };
        self.sends.get_or_create(&labels).inc();
        self.durations.get_or_create(&labels).observe(took.as_secs_f64());
    }

    /// The sends counted so far with this provider and outcome (for tests and diagnostics).
    pub fn count(&self, provider: Provider, outcome: Outcome) -> u64 {
        self.sends.get_or_create(&SendLabels { provider: provider.label(), outcome: outcome.label() }).get()
    }
}
