//! Logging set-up shared by every binary: JSON lines on stdout, filtered by `RUST_LOG`.

use tracing_subscriber::EnvFilter;

/// Installs the JSON log subscriber. `RUST_LOG` filters (default `info`). Safe to call twice.
pub fn init_logging() {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"));
    let _ = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        // Each line carries the spans it was written in (`spans`, outermost first): a request's
        // id and route, a reconcile's resource, a job's event, a socket's user.
        .with_current_span(false)
        .with_span_list(true)
        .with_target(true)
        .with_env_filter(filter)
        .try_init();
}
