//! Structured JSON logs, one line per event, set up once at cold start.

use std::io::Write;
use std::sync::OnceLock;

use tracing_subscriber::fmt::MakeWriter;

/// Where metric lines go when set by [`capture_metrics`]; stdout on Lambda otherwise.
type Sink = Box<dyn Fn(&str) + Send + Sync>;
static METRICS_SINK: OnceLock<Sink> = OnceLock::new();

/// Installs the JSON log subscriber writing to stdout. The level comes from `RUST_LOG`
/// (default `info`).
pub fn init() {
    init_with_writer(std::io::stdout);
}

/// Sends metrics lines to `writer` wherever the process runs (tests read them back).
pub fn capture_metrics<W>(writer: W)
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let _ = METRICS_SINK.set(Box::new(move |line: &str| {
        let _ = writeln!(writer.make_writer(), "{line}");
    }));
}

/// The same subscriber writing elsewhere (a local runner's stderr, a test's buffer).
pub fn init_with_writer<W>(writer: W)
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(false)
        .with_span_list(false)
        .with_target(false)
        .with_ansi(false)
        .with_writer(writer)
        .try_init();
}

/// Writes one metrics line (CloudWatch Embedded Metric Format) to the log stream, outside the
/// tracing JSON, as CloudWatch expects it. Only on Lambda (or with `BCAST_METRICS=stdout`):
/// elsewhere nobody turns the lines into metrics and they would only bury the logs.
pub fn metrics_line(line: &str) {
    static ON_STDOUT: OnceLock<bool> = OnceLock::new();
    match METRICS_SINK.get() {
        Some(sink) => sink(line),
        None => {
            let on = *ON_STDOUT.get_or_init(|| {
                std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_some()
                    || std::env::var("BCAST_METRICS").is_ok_and(|v| v == "stdout")
            });
            if on {
                let _ = writeln!(std::io::stdout().lock(), "{line}");
            }
        }
    }
}
