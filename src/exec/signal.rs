//! What interrupts a run: Ctrl-C (SIGINT) on a terminal, SIGTERM from a CI service cancelling
//! the job or a container stopping. Both are handled alike: what is in flight finishes, the
//! state is saved and the lock released.

/// Resolves when the process is asked to stop.
pub async fn interrupt() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
