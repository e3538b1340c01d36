//! Logs (text or JSON) and, only when OTEL_EXPORTER_OTLP_ENDPOINT is set, OTLP traces.

use tracing_subscriber::{layer::SubscriberExt, util::SubscriberInitExt, EnvFilter, Layer};

#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// Keeps the tracer provider alive; flushes spans on drop.
pub struct TelemetryGuard {
    provider: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(p) = self.provider.take() {
            let _ = p.shutdown();
        }
    }
}

pub fn init(format: LogFormat, default_filter: &str) -> TelemetryGuard {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let fmt: Box<dyn Layer<_> + Send + Sync> = match format {
        LogFormat::Json => Box::new(tracing_subscriber::fmt::layer().json().with_writer(std::io::stderr)),
        LogFormat::Text => Box::new(tracing_subscriber::fmt::layer().compact().with_writer(std::io::stderr)),
    };
    let mut provider = None;
    let otel = match std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT") {
        Ok(endpoint) if !endpoint.trim().is_empty() => match build_provider() {
            Ok(p) => {
                use opentelemetry::trace::TracerProvider as _;
                let tracer = p.tracer("ghthub");
                provider = Some(p);
                eprintln!("OTLP trace export to {endpoint}");
                Some(tracing_opentelemetry::layer().with_tracer(tracer))
            }
            Err(e) => {
                eprintln!("OTLP export disabled: {e}");
                None
            }
        },
        _ => None,
    };
    let _ = tracing_subscriber::registry().with(filter).with(fmt).with(otel).try_init();
    TelemetryGuard { provider }
}

fn build_provider() -> Result<opentelemetry_sdk::trace::SdkTracerProvider, Box<dyn std::error::Error>> {
    // Endpoint, headers and timeouts come from the standard OTEL_* variables.
    let exporter = opentelemetry_otlp::SpanExporter::builder().with_tonic().build()?;
    let resource = opentelemetry_sdk::Resource::builder().with_service_name("ghthub").build();
    Ok(opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build())
}
