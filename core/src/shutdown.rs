//! Waiting for the signal to stop, shared by every binary.

use std::future::Future;

/// Resolves on SIGINT (Ctrl-C) or SIGTERM (what Kubernetes and service managers send).
///
/// The handlers are installed when this is called, not when the future is first polled: a
/// server hands its shutdown future to a task that may not have run yet when the first
/// SIGTERM comes, and until a handler is installed that signal kills the process at once
/// instead of draining it. Call it before saying the server is up.
pub fn signal() -> impl Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let interrupt = signal(SignalKind::interrupt());
        let terminate = signal(SignalKind::terminate());
        async move {
            let (mut interrupt, mut terminate) = match (interrupt, terminate) {
                (Ok(i), Ok(t)) => (i, t),
                (Err(e), _) | (_, Err(e)) => {
                    tracing::error!(error = %e, "cannot listen for SIGINT or SIGTERM");
                    return std::future::pending::<()>().await;
                }
            };
            tokio::select! {
                _ = interrupt.recv() => {},
                _ = terminate.recv() => {},
            }
            tracing::info!("shutdown signal received; draining connections");
        }
    }
    #[cfg(not(unix))]
    async move {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
        tracing::info!("shutdown signal received; draining connections");
    }
}
