//! The background purge of expired refresh tokens and access-token
//! deny-list entries, so storage stays bounded under sustained load.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::store::{PurgeReport, Store, StoreError};

/// Families removed per batch; the purge yields between batches so request
/// handling is never held up for long.
const BATCH: usize = 512;

/// Purges every `interval` until `shutdown` is cancelled.
pub async fn run(store: Arc<dyn Store>, clock: Arc<dyn Clock>, interval: Duration, shutdown: CancellationToken) {
    crate::periodic::every(interval, &shutdown, || async {
        match purge_all(store.as_ref(), clock.as_ref(), &shutdown).await {
            Ok(report) if report.families > 0 || report.denied > 0 || report.assertion_jtis > 0 => {
                tracing::info!(
                    families = report.families,
                    denied = report.denied,
                    assertion_jtis = report.assertion_jtis,
                    "purged dead refresh-token families, expired deny-list entries and assertion jtis"
                );
            }
            Ok(_) => {}
            Err(error) => tracing::error!(%error, "purge failed; will retry"),
        }
    })
    .await;
}

/// Removes everything expired now, batch by batch.
///
/// # Errors
/// [`StoreError`] if storage fails.
pub async fn purge_all(
    store: &dyn Store,
    clock: &dyn Clock,
    shutdown: &CancellationToken,
) -> Result<PurgeReport, StoreError> {
    let mut total = PurgeReport::default();
    while !shutdown.is_cancelled() {
        let report = store.purge_expired(clock.now(), BATCH).await?;
        total.families += report.families;
        if report.families < BATCH as u64 {
            break;
        }
        tokio::task::yield_now().await;
    }
    // The access-token deny list: entries whose token has expired anyway.
    while !shutdown.is_cancelled() {
        let removed = store.purge_denied(clock.now(), BATCH).await?;
        total.denied += removed;
        if removed < BATCH as u64 {
            break;
        }
        tokio::task::yield_now().await;
    }
    // The private_key_jwt replay set: assertions that could no longer be used.
    while !shutdown.is_cancelled() {
        let removed = store.purge_assertion_jtis(clock.now(), BATCH).await?;
        total.assertion_jtis += removed;
        if removed < BATCH as u64 {
            break;
        }
        tokio::task::yield_now().await;
    }
    Ok(total)
}
