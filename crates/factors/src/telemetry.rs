//! Logs and traces. Logs: JSON lines in production, human-readable in development;
//! `RUST_LOG` overrides the configured filter. Traces: off unless
//! `telemetry.otlp.endpoint` is set; then the spans of factors' own crates (the request,
//! the use case, the store, Redis, the SMS send) go to that collector over OTLP, with the
//! caller's W3C trace context as their parent (docs/OPERATIONS.md, Traces).
//!
//! The service writes its log lines from a thread of its own, in batches (the request's
//! thread only formats its line and queues it); the other commands write theirs at once.

use std::io::BufWriter;
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use opentelemetry::KeyValue;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use tracing::Metadata;
use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::dynamic_filter_fn;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::settings::{LogFormat, LogSettings, OtlpProtocol, TelemetrySettings};

/// What stays of the telemetry set up: the trace pipeline and the log writer, to flush at
/// the end.
#[derive(Debug, Default)]
#[must_use = "dropping it loses the spans not yet exported; call `shutdown`"]
pub struct Telemetry {
    traces: Option<SdkTracerProvider>,
    /// The log writer's thread: dropped, it writes the lines still queued, then ends.
    log: Option<WorkerGuard>,
}

/// Lines the log writer's queue holds before a request waits for room: none is dropped.
const LOG_QUEUE_LINES: usize = 128_000;
/// What the log writer gathers before a write(2) when lines come faster than it writes.
const LOG_BATCH_BYTES: usize = 64 * 1024;

impl Telemetry {
    /// Whether spans are exported.
    pub fn traces(&self) -> bool {
        self.traces.is_some()
    }

    /// Exports the spans still buffered and stops the exporter, then writes the log lines
    /// still queued.
    pub fn shutdown(self) {
        if let Some(provider) = self.traces
            && let Err(e) = provider.shutdown()
        {
            tracing::warn!(error = %e, "exporting the last spans failed");
        }
        drop(self.log);
    }

    /// Exports the spans buffered so far (tests read them at once).
    pub fn flush(&self) {
        if let Some(provider) = &self.traces {
            let _ = provider.force_flush();
        }
    }
}

/// Installs the global subscriber: logs only (for commands that serve nothing).
/// Later calls are ignored, which tests rely on.
pub fn init(settings: &LogSettings) {
    install(settings, None, std::io::stdout);
}

/// Installs the global subscriber with the traces `telemetry` asks for, and its log lines
/// written by a thread of their own, which [`Telemetry::shutdown`] (or dropping it) lets
/// finish. Must run inside the Tokio runtime (the gRPC exporter's channel lives there).
/// Later calls are ignored, and then no traces are set up.
///
/// # Errors
/// When the OTLP settings are invalid; the message names the key.
pub fn init_with_traces(log: &LogSettings, telemetry: &TelemetrySettings) -> anyhow::Result<Telemetry> {
    let provider = tracer_provider(telemetry)?;
    // Lossless: when the queue is full, a request waits for room as it would for stdout.
    let (writer, guard) = NonBlockingBuilder::default()
        .lossy(false)
        .buffered_lines_limit(LOG_QUEUE_LINES)
        .thread_name("factors-log")
        .finish(BufWriter::with_capacity(LOG_BATCH_BYTES, std::io::stdout()));
    let installed = install(log, provider.clone(), writer);
    // Another subscriber was first (a second app in one test process): nothing to keep.
    let log = installed.then_some(guard);
    match (provider, installed) {
        (Some(provider), true) => {
            opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
            factors_api_http::traces::enable();
            Ok(Telemetry { traces: Some(provider), log })
        }
        (Some(provider), false) => {
            let _ = provider.shutdown();
            Ok(Telemetry::default())
        }
        (None, _) => Ok(Telemetry { traces: None, log }),
    }
}

/// Whether this call installed the subscriber, whose log lines go to `writer`.
fn install<W>(settings: &LogSettings, traces: Option<SdkTracerProvider>, writer: W) -> bool
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&settings.filter));
    let Some(provider) = traces else {
        // Without traces the filter stays global: a disabled span costs one cached look.
        let registry = tracing_subscriber::registry().with(filter);
        let result = match settings.format {
            LogFormat::Json => {
                let layer = json_subscriber::fmt::layer().with_current_span(true).with_span_list(false);
                registry.with(layer.with_writer(writer)).try_init()
            }
            LogFormat::Pretty => {
                registry.with(tracing_subscriber::fmt::layer().with_target(false).with_writer(writer)).try_init()
            }
        };
        return result.is_ok();
    };
    // With traces each layer has its own filter: the logs keep theirs, the traces take
    // the spans of factors' crates and no events.
    let traces = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("factors"))
        .with_location(false)
        .with_threads(false)
        .with_target(false)
        .with_tracked_inactivity(false)
        .with_filter(dynamic_filter_fn(|metadata, context| traced(metadata, context.lookup_current().is_some())));
    let registry = tracing_subscriber::registry().with(traces);
    let result = match settings.format {
        LogFormat::Json => {
            let layer = json_subscriber::fmt::layer().with_current_span(true).with_span_list(false);
            registry.with(layer.with_writer(writer).with_filter(filter)).try_init()
        }
        LogFormat::Pretty => registry
            .with(tracing_subscriber::fmt::layer().with_target(false).with_writer(writer).with_filter(filter))
            .try_init(),
    };
    result.is_ok()
}

/// What the trace layer takes: factors' own spans, whose fields are ids and names only,
/// within a request (`in_trace`: a traced span is current; a request span begins one).
/// Not the background work's own spans (the notice worker looks at the outbox every few
/// seconds, which would be a trace each time); no events, since a log line may name a
/// masked number, which a trace never carries; no library's spans, whose fields are not
/// ours to vouch for. A failure shows as the request span's error status.
fn traced(metadata: &Metadata<'_>, in_trace: bool) -> bool {
    metadata.is_span()
        && (metadata.target() == REQUEST_SPAN_TARGET || (in_trace && metadata.target().starts_with("factors")))
}

/// Where request spans come from ([`factors_api_http::traces`]).
const REQUEST_SPAN_TARGET: &str = "factors_api_http::traces";

/// The pipeline `telemetry` asks for, or none when no endpoint is set.
fn tracer_provider(telemetry: &TelemetrySettings) -> anyhow::Result<Option<SdkTracerProvider>> {
    let otlp = &telemetry.otlp;
    let Some(endpoint) = otlp.endpoint.as_deref().map(str::trim).filter(|e| !e.is_empty()) else {
        return Ok(None);
    };
    let url = url::Url::parse(endpoint).context("telemetry.otlp.endpoint is not a URL")?;
    ensure!(
        matches!(url.scheme(), "http" | "https"),
        "telemetry.otlp.endpoint: expected an http:// or https:// URL, got {}://",
        url.scheme()
    );
    ensure!(
        (0.0..=1.0).contains(&otlp.sampling_ratio),
        "telemetry.otlp.sampling_ratio must be between 0.0 and 1.0, got {}",
        otlp.sampling_ratio
    );
    ensure!(!otlp.timeout.is_zero(), "telemetry.otlp.timeout must be longer than 0");
    let exporter = match otlp.protocol {
        OtlpProtocol::Grpc => {
            if url.scheme() == "https" {
                bail!(
                    "telemetry.otlp.endpoint: OTLP/gRPC is sent in plain text (a collector beside the service); \
                     for TLS set telemetry.otlp.protocol = \"http\""
                );
            }
            opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_endpoint(endpoint)
                .with_timeout(otlp.timeout)
                .build()
                .context("setting up the OTLP/gRPC exporter")?
        }
        OtlpProtocol::Http => opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_http_client(ExportClient::new(otlp.timeout)?)
            .with_endpoint(traces_url(url))
            .with_timeout(otlp.timeout)
            .build()
            .context("setting up the OTLP/HTTP exporter")?,
    };
    let resource = Resource::builder()
        .with_service_name(telemetry.service_name.clone())
        .with_attributes(resource_attributes(&telemetry.resource_attributes)?)
        .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
        .build();
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(otlp.sampling_ratio))))
        .with_resource(resource)
        .build();
    Ok(Some(provider))
}

/// `key=value,key=value`, as `OTEL_RESOURCE_ATTRIBUTES` writes them.
fn resource_attributes(list: &str) -> anyhow::Result<Vec<KeyValue>> {
    list.split(',')
        .map(str::trim)
        .filter(|pair| !pair.is_empty())
        .map(|pair| match pair.split_once('=') {
            Some((key, value)) if !key.trim().is_empty() => {
                Ok(KeyValue::new(key.trim().to_owned(), value.trim().to_owned()))
            }
            _ => bail!("telemetry.resource_attributes: expected key=value pairs separated by commas, got {pair:?}"),
        })
        .collect()
}

/// OTLP/HTTP's traces path, added when the endpoint names only the collector.
fn traces_url(mut url: url::Url) -> String {
    if !url.path().ends_with("/v1/traces") {
        let path = format!("{}/v1/traces", url.path().trim_end_matches('/'));
        url.set_path(&path);
    }
    url.into()
}

/// The OTLP/HTTP exporter's client: the reqwest the binary already has (with its TLS),
/// run on the service's runtime, since the exporter's own thread has none.
#[derive(Debug)]
struct ExportClient {
    client: reqwest::Client,
    runtime: tokio::runtime::Handle,
}

impl ExportClient {
    fn new(timeout: Duration) -> anyhow::Result<Self> {
        let runtime = tokio::runtime::Handle::try_current().context("traces are set up inside the runtime")?;
        let client = reqwest::Client::builder().timeout(timeout).build().context("building the OTLP/HTTP client")?;
        Ok(Self { client, runtime })
    }
}

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for ExportClient {
    async fn send_bytes(
        &self,
        request: http::Request<opentelemetry_http::Bytes>,
    ) -> Result<http::Response<opentelemetry_http::Bytes>, opentelemetry_http::HttpError> {
        let client = self.client.clone();
        let sent = self.runtime.spawn(async move {
            let request = reqwest::Request::try_from(request)?;
            let response = client.execute(request).await?;
            let mut answer = http::Response::builder().status(response.status());
            for (name, value) in response.headers() {
                answer = answer.header(name, value);
            }
            let body = response.bytes().await?;
            Ok::<_, opentelemetry_http::HttpError>(answer.body(body)?)
        });
        sent.await?
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing::Level;

    fn with_endpoint(endpoint: &str, protocol: OtlpProtocol) -> TelemetrySettings {
        let mut telemetry = TelemetrySettings::default();
        telemetry.otlp.endpoint = Some(endpoint.to_owned());
        telemetry.otlp.protocol = protocol;
        telemetry
    }

    #[tokio::test]
    async fn no_endpoint_means_no_traces() {
        assert!(tracer_provider(&TelemetrySettings::default()).expect("valid").is_none());
        assert!(tracer_provider(&with_endpoint("  ", OtlpProtocol::Grpc)).expect("valid").is_none());
    }

    #[tokio::test]
    async fn invalid_otlp_settings_are_refused_naming_the_key() {
        let cases = [
            (with_endpoint("collector:4317", OtlpProtocol::Grpc), "telemetry.otlp.endpoint"),
            (with_endpoint("https://collector:4317", OtlpProtocol::Grpc), "protocol = \"http\""),
            (
                TelemetrySettings {
                    otlp: crate::settings::OtlpSettings {
                        sampling_ratio: 1.5,
                        ..with_endpoint("http://c:4317", OtlpProtocol::Grpc).otlp
                    },
                    ..TelemetrySettings::default()
                },
                "telemetry.otlp.sampling_ratio",
            ),
        ];
        for (settings, named) in cases {
            let refused = format!("{:#}", tracer_provider(&settings).expect_err("refused"));
            assert!(refused.contains(named), "{named}: {refused}");
        }
    }

    #[test]
    fn resource_attributes_read_as_otel_writes_them() {
        let attributes =
            resource_attributes(" deployment.environment.name=production, service.namespace = auth,").expect("valid");
        let pairs: Vec<(String, String)> =
            attributes.iter().map(|kv| (kv.key.to_string(), kv.value.to_string())).collect();
        assert_eq!(
            pairs,
            [("deployment.environment.name".into(), "production".into()), ("service.namespace".into(), "auth".into())]
        );
        assert!(resource_attributes("").expect("none").is_empty());
        let refused = format!("{:#}", resource_attributes("region").expect_err("no value"));
        assert!(refused.contains("telemetry.resource_attributes") && refused.contains("region"), "{refused}");
    }

    #[test]
    fn the_http_traces_path_is_added_once() {
        let url = |s: &str| url::Url::parse(s).expect("a URL");
        assert_eq!(traces_url(url("http://collector:4318")), "http://collector:4318/v1/traces");
        assert_eq!(traces_url(url("https://c.example/otlp/")), "https://c.example/otlp/v1/traces");
        assert_eq!(traces_url(url("http://c:4318/v1/traces")), "http://c:4318/v1/traces");
    }

    #[test]
    fn only_factors_own_spans_are_traced() {
        use tracing::callsite::Identifier;
        use tracing::metadata::Kind;
        struct Site;
        impl tracing::callsite::Callsite for Site {
            fn set_interest(&self, _: tracing::subscriber::Interest) {}
            fn metadata(&self) -> &Metadata<'_> {
                unreachable!()
            }
        }
        static SITE: Site = Site;
        let meta = |target: &'static str, level: Level, kind: Kind| {
            Metadata::new(
                "m",
                target,
                level,
                None,
                None,
                None,
                tracing::field::FieldSet::new(&[], Identifier(&SITE)),
                kind,
            )
        };
        let request = meta(REQUEST_SPAN_TARGET, Level::INFO, Kind::SPAN);
        let store = meta("factors_adapters_postgres::reads", Level::DEBUG, Kind::SPAN);
        assert!(traced(&request, false), "a request begins a trace");
        assert!(traced(&store, true), "the store's span within one");
        assert!(!traced(&store, false), "background work outside a request is not traced");
        let warning = meta("factors_adapters_sms::http", Level::WARN, Kind::EVENT);
        assert!(!traced(&warning, true), "a log line may name a masked number");
        assert!(!traced(&meta(REQUEST_SPAN_TARGET, Level::INFO, Kind::EVENT), true), "nor the access log line");
        assert!(!traced(&meta("sqlx::query", Level::INFO, Kind::SPAN), true), "a library's span");
    }
}
