//! The OTLP transports behind [`Telemetry`](super::Telemetry): HTTP/protobuf
//! through reqwest (rustls with ring), or gRPC through tonic. Spans go
//! through the host's own [`Sender`]; metrics through the SDK's exporter
//! and periodic reader, whose thread hands each HTTP export to the runtime
//! the host was started in, where reqwest can run.

use super::batch::Sender;
use super::{OtlpProtocol, TelemetryError, TelemetrySettings};
use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::{
    MetricExporter, Protocol, WithExportConfig, WithHttpConfig, WithTonicConfig,
};
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider, Temporality};
use opentelemetry_sdk::Resource;
use std::sync::Arc;
use std::time::Duration;

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

/// The resource every export names: `service.name` and `service.version`.
pub(super) fn resource(settings: &TelemetrySettings) -> Resource {
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

/// Where spans go and the metric exporter, for `settings`.
pub(super) fn exporters(
    settings: &TelemetrySettings,
) -> Result<(Sender, MetricExporter), TelemetryError> {
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
        OtlpProtocol::Grpc => grpc(base, url.scheme() == "https", timeout),
        OtlpProtocol::HttpProtobuf => http(base, timeout),
    }
}

fn grpc(
    base: &str,
    tls: bool,
    timeout: Duration,
) -> Result<(Sender, MetricExporter), TelemetryError> {
    let roots = || tonic::transport::ClientTlsConfig::new().with_webpki_roots();
    let mut endpoint = tonic::transport::Endpoint::from_shared(base.to_string())
        .map_err(|e| failed(format!("`otlp-endpoint` {base:?}: {e}")))?
        .timeout(timeout)
        .connect_timeout(timeout);
    let mut metrics = MetricExporter::builder()
        .with_tonic()
        .with_endpoint(base)
        .with_timeout(timeout)
        .with_temporality(Temporality::Cumulative);
    if tls {
        endpoint = endpoint.tls_config(roots()).map_err(failed)?;
        metrics = metrics.with_tls_config(roots());
    }
    let spans = Sender::Grpc(tonic::client::Grpc::new(endpoint.connect_lazy()));
    Ok((spans, metrics.build().map_err(failed)?))
}

fn http(base: &str, timeout: Duration) -> Result<(Sender, MetricExporter), TelemetryError> {
    let tls = crate::tls::client_config(None).map_err(failed)?;
    let client = reqwest::Client::builder()
        .tls_backend_preconfigured((*tls).clone())
        .timeout(timeout)
        .connect_timeout(timeout)
        .build()
        .map_err(failed)?;
    let on_runtime: Arc<dyn HttpClient> = Arc::new(OnRuntime {
        client: client.clone(),
        runtime: tokio::runtime::Handle::try_current().map_err(failed)?,
    });
    let metrics = MetricExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(format!("{base}/v1/metrics"))
        .with_timeout(timeout)
        .with_shared_http_client(on_runtime)
        .with_temporality(Temporality::Cumulative)
        .build()
        .map_err(failed)?;
    let spans = Sender::Http {
        client,
        url: format!("{base}/v1/traces"),
    };
    Ok((spans, metrics))
}

/// The meter provider exporting through `metrics` every
/// `metrics-interval-ms`.
pub(super) fn meters(
    settings: &TelemetrySettings,
    metrics: MetricExporter,
    resource: Resource,
) -> SdkMeterProvider {
    let interval = Duration::from_millis(
        settings
            .metrics_interval_ms
            .unwrap_or(super::DEFAULT_METRICS_INTERVAL_MS)
            .max(100),
    );
    SdkMeterProvider::builder()
        .with_reader(
            PeriodicReader::builder(metrics)
                .with_interval(interval)
                .build(),
        )
        .with_resource(resource)
        .build()
}
