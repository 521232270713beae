//! The one loop every background task runs: the purge, the audit
//! retention, the metrics gauges and the key maintenance.

use std::future::Future;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// Runs `task` now and then every `interval` until `shutdown` is cancelled.
/// A run that overruns delays the next one rather than bunching them up.
pub async fn every<F, Fut>(interval: Duration, shutdown: &CancellationToken, mut task: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            () = shutdown.cancelled() => return,
        }
        task().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test(start_paused = true)]
    async fn runs_until_cancelled() {
        let shutdown = CancellationToken::new();
        let runs = Arc::new(AtomicU32::new(0));
        let counted = runs.clone();
        let stop = shutdown.clone();
        let task = tokio::spawn(async move {
            every(Duration::from_secs(10), &stop, || {
                let counted = counted.clone();
                async move {
                    counted.fetch_add(1, Ordering::SeqCst);
                }
            })
            .await;
        });
        tokio::time::sleep(Duration::from_secs(25)).await;
        shutdown.cancel();
        task.await.unwrap();
        assert_eq!(runs.load(Ordering::SeqCst), 3, "at 0, 10 and 20 seconds");
    }
}
