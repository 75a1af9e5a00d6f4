//! The OTLP exporters behind [`Telemetry`](super::Telemetry): HTTP/protobuf
//! through reqwest (rustls with ring), or gRPC through tonic, each with a
//! batch span processor and a periodic metric reader. Both processors run
//! on threads of their own; an HTTP export is handed to the runtime the
//! host was started in, where reqwest can run.

use super::{OtlpProtocol, TelemetryError, TelemetrySettings};
use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::{
    MetricExporter, Protocol, SpanExporter, WithExportConfig, WithHttpConfig, WithTonicConfig,
};
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider, Temporality};
use opentelemetry_sdk::trace::{BatchConfigBuilder, BatchSpanProcessor, SdkTracerProvider};
use opentelemetry_sdk::Resource;
use std::sync::Arc;
use std::time::Duration;

/// How long spans wait to be exported together.
const SPAN_DELAY: Duration = Duration::from_secs(1);
/// Spans held for export at most; past it new ones are dropped (and the
/// SDK counts them), never a call held up.
const SPAN_QUEUE: usize = 8192;
/// Spans per export request.
const SPAN_BATCH: usize = 2048;

/// Each export, run on the host's runtime (the SDK calls from its own
/// thread, where reqwest has no reactor).
#[derive(Debug)]
struct OnRuntime {
    client: reqwest::Client,
    runtime: tokio::runtime::Handle,
}

#[async_trait::async_trait]
impl HttpClient for OnRuntime {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let client = self.client.clone();
        self.runtime
            .spawn(async move { client.send_bytes(request).await })
            .await?
    }
}

fn resource(settings: &TelemetrySettings) -> Resource {
    Resource::builder_empty()
        .with_service_name(
            settings
                .service_name
                .clone()
                .unwrap_or_else(|| "warden".into()),
        )
        .with_attribute(opentelemetry::KeyValue::new(
            "service.version",
            env!("CARGO_PKG_VERSION"),
        ))
        .build()
}

fn failed(e: impl std::fmt::Display) -> TelemetryError {
    TelemetryError::Exporter(e.to_string())
}

/// The span and metric exporters of `settings`.
fn exporters(
    settings: &TelemetrySettings,
) -> Result<(SpanExporter, MetricExporter), TelemetryError> {
    let timeout = Duration::from_millis(settings.timeout_ms.unwrap_or(super::DEFAULT_TIMEOUT_MS));
    let base = settings.otlp_endpoint.trim_end_matches('/');
    let url =
        url::Url::parse(base).map_err(|e| failed(format!("`otlp-endpoint` {base:?}: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(failed(format!(
            "`otlp-endpoint` {base:?}: the scheme must be http or https"
        )));
    }
    match settings.protocol {
        OtlpProtocol::Grpc => {
            let tls = || {
                opentelemetry_otlp::tonic_types::transport::ClientTlsConfig::new()
                    .with_webpki_roots()
            };
            let mut spans = SpanExporter::builder()
                .with_tonic()
                .with_endpoint(base)
                .with_timeout(timeout);
            let mut metrics = MetricExporter::builder()
                .with_tonic()
                .with_endpoint(base)
                .with_timeout(timeout)
                .with_temporality(Temporality::Cumulative);
            if url.scheme() == "https" {
                spans = spans.with_tls_config(tls());
                metrics = metrics.with_tls_config(tls());
            }
            Ok((
                spans.build().map_err(failed)?,
                metrics.build().map_err(failed)?,
            ))
        }
        OtlpProtocol::HttpProtobuf => {
            let tls = crate::tls::client_config(None).map_err(failed)?;
            let client = reqwest::Client::builder()
                .tls_backend_preconfigured((*tls).clone())
                .timeout(timeout)
                .connect_timeout(timeout)
                .build()
                .map_err(failed)?;
            let client: Arc<dyn HttpClient> = Arc::new(OnRuntime {
                client,
                runtime: tokio::runtime::Handle::try_current().map_err(failed)?,
            });
            let spans = SpanExporter::builder()
                .with_http()
                .with_protocol(Protocol::HttpBinary)
                .with_endpoint(format!("{base}/v1/traces"))
                .with_timeout(timeout)
                .with_shared_http_client(client.clone())
                .build()
                .map_err(failed)?;
            let metrics = MetricExporter::builder()
                .with_http()
                .with_protocol(Protocol::HttpBinary)
                .with_endpoint(format!("{base}/v1/metrics"))
                .with_timeout(timeout)
                .with_shared_http_client(client)
                .with_temporality(Temporality::Cumulative)
                .build()
                .map_err(failed)?;
            Ok((spans, metrics))
        }
    }
}

/// The tracer and meter providers exporting to `settings`' collector.
pub(super) fn providers(
    settings: &TelemetrySettings,
) -> Result<(SdkTracerProvider, SdkMeterProvider), TelemetryError> {
    let (spans, metrics) = exporters(settings)?;
    let resource = resource(settings);
    let batch = BatchConfigBuilder::default()
        .with_max_queue_size(SPAN_QUEUE)
        .with_max_export_batch_size(SPAN_BATCH)
        .with_scheduled_delay(SPAN_DELAY)
        .build();
    // Sampling is decided before a span is built (`Telemetry::span`): the
    // SDK records every span it is asked to start.
    let tracers = SdkTracerProvider::builder()
        .with_sampler(opentelemetry_sdk::trace::Sampler::AlwaysOn)
        .with_span_processor(
            BatchSpanProcessor::builder(spans)
                .with_batch_config(batch)
                .build(),
        )
        .with_resource(resource.clone())
        .build();
    let interval = Duration::from_millis(
        settings
            .metrics_interval_ms
            .unwrap_or(super::DEFAULT_METRICS_INTERVAL_MS)
            .max(100),
    );
    let meters = SdkMeterProvider::builder()
        .with_reader(
            PeriodicReader::builder(metrics)
                .with_interval(interval)
                .build(),
        )
        .with_resource(resource)
        .build();
    Ok((tracers, meters))
}
