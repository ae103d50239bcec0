//! Structured JSON logs, one line per event, set up once at cold start.

use tracing_subscriber::fmt::MakeWriter;

/// Installs the JSON log subscriber writing to stdout. The level comes from `RUST_LOG`
/// (default `info`).
pub fn init() {
    init_with_writer(std::io::stdout);
}

/// The same subscriber writing elsewhere (tests read the log lines back).
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
