//! OpenTelemetry traces (`[traces]`): the tracer and its OTLP/HTTP exporter, owned by the
//! [`Gateway`](crate::Gateway), and the start of each request's trace.
//!
//! Off unless configured: without `[traces]` there is no exporter and a request carries
//! no trace (`None`), so the request path does no extra work. When on, spans are handed
//! to the SDK's batch processor, a task on the tokio runtime the gateway started on; it
//! exports them in batches off the request path. Its queue is bounded: a slow or dead
//! collector loses spans (counted), never slows or fails a request.

mod request;
mod trace_context;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Instant, SystemTime};

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{WithExportConfig as _, WithHttpConfig as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, Sampler, SdkTracer, SdkTracerProvider, SpanData, SpanExporter,
};

pub(crate) use self::request::{Phase, RequestTrace};
pub(crate) use self::trace_context::Outgoing;
use crate::config::TracesConfig;

/// Why traces could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TracesError {
    /// The OTLP exporter refused its configuration.
    #[error("the OTLP trace exporter could not be built: {0}")]
    Exporter(#[from] opentelemetry_otlp::ExporterBuildError),
    /// The exporter's TLS roots could not be loaded.
    #[error("the OTLP trace exporter's TLS roots could not be loaded: {0}")]
    Tls(rustls::Error),
}

/// The gateway's tracer and where its spans go.
pub(crate) struct Traces {
    provider: SdkTracerProvider,
    tracer: SdkTracer,
    /// Spans whose export failed (the collector refused them or could not be reached).
    lost: Arc<AtomicU64>,
}

impl std::fmt::Debug for Traces {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Traces").finish_non_exhaustive()
    }
}

impl Traces {
    /// Sets up export as `config` says. Call it on the runtime that outlives the gateway
    /// (the batch processor's task is spawned on it).
    pub(crate) fn start(config: &TracesConfig) -> Result<Self, TracesError> {
        let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(config.timeout));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_webpki_roots(provider)
            .map_err(TracesError::Tls)?
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(http);
        let client = opentelemetry_http::hyper::HyperClient::new(connector, config.timeout, None);
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_http_client(client)
            .with_endpoint(config.endpoint.clone())
            .with_timeout(config.timeout)
            .build()?;
        let lost = Arc::new(AtomicU64::new(0));
        let exporter = Counted {
            inner: exporter,
            lost: lost.clone(),
        };
        let batches = BatchConfigBuilder::default()
            .with_max_queue_size(config.max_queue)
            .with_scheduled_delay(config.export_interval)
            .with_max_export_timeout(config.timeout)
            .build();
        let processor = BatchSpanProcessor::builder(exporter, opentelemetry_sdk::runtime::Tokio)
            .with_batch_config(batches)
            .build();
        let provider = SdkTracerProvider::builder()
            .with_span_processor(processor)
            .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
                config.sample_ratio,
            ))))
            .with_resource(
                Resource::builder_empty()
                    .with_service_name(config.service_name.clone())
                    .build(),
            )
            .build();
        let tracer = provider.tracer("writ");
        Ok(Self {
            provider,
            tracer,
            lost,
        })
    }

    /// The trace of a request `method route` with `headers`, which arrived at `arrived`
    /// (the gateway's clock) and `started` (the monotonic one).
    pub(crate) fn begin(
        &self,
        arrived: SystemTime,
        started: Instant,
        method: &http::Method,
        route: &str,
        headers: &http::HeaderMap,
    ) -> Box<RequestTrace> {
        Box::new(RequestTrace::new(
            self.tracer.clone(),
            (arrived, started),
            method,
            route,
            headers,
        ))
    }

    /// Exports every span ended so far, and waits until it is done (or failed).
    pub(crate) async fn flush(&self) {
        let provider = self.provider.clone();
        // The SDK blocks its caller until its batch task, on this runtime, has exported:
        // on a thread of its own, so the runtime stays free to run that task.
        let _ = tokio::task::spawn_blocking(move || provider.force_flush()).await;
    }

    /// Spans lost because their export failed.
    pub(crate) fn lost(&self) -> u64 {
        self.lost.load(Ordering::Relaxed)
    }
}

impl Drop for Traces {
    fn drop(&mut self) {
        // Shutting the provider down blocks until the batch task answers, and that task
        // may need the very thread dropping the gateway: shut down on a thread of its own.
        // Spans still queued are exported first if the runtime still runs.
        let provider = self.provider.clone();
        let _ = std::thread::Builder::new()
            .name("writ-traces-shutdown".into())
            .spawn(move || provider.shutdown());
    }
}

/// The OTLP exporter, counting the spans of batches it failed to export.
#[derive(Debug)]
struct Counted {
    inner: opentelemetry_otlp::SpanExporter,
    lost: Arc<AtomicU64>,
}

impl SpanExporter for Counted {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let spans = batch.len() as u64;
        let result = self.inner.export(batch).await;
        if result.is_err() {
            self.lost.fetch_add(spans, Ordering::Relaxed);
        }
        result
    }

    fn shutdown_with_timeout(&self, timeout: std::time::Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}
