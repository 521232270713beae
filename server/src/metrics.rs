//! Prometheus metrics (prometheus-client), served as OpenMetrics text on
//! `GET /metrics`.
//!
//! The hot path only increments atomics: a request looks up its label set
//! in a [`Family`] (a read lock inside the crate) and bumps a counter and a
//! histogram. The active-families gauge is refreshed by a background task
//! ([`refresh_gauges`]), since counting needs storage reads; the signing
//! key's age is computed when scraped.
//!
//! Labels never hold a client ID, a path as sent or anything else taken
//! from a request: only fixed endpoint names, grant types and outcomes, so
//! the number of series is bounded and the output is safe to expose.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::store::Store;

/// The `Content-Type` of the scrape.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RequestLabels {
    endpoint: &'static str,
    grant: &'static str,
    outcome: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct EndpointLabels {
    endpoint: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ScopeLabels {
    scope: &'static str,
}

type HistogramFamily = Family<EndpointLabels, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 0.25 ms .. ~4 s.
    Histogram::new(exponential_buckets(0.000_25, 2.0, 15))
}

#[derive(Debug)]
struct Inner {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: HistogramFamily,
    refresh_reuse: Counter,
    families_retired: Counter,
    rate_limited: Family<ScopeLabels, Counter>,
    active_families: Gauge,
    signing_key_age: Gauge,
}

/// The server's metrics. Cheap to clone; clones share the counters.
#[derive(Debug, Clone)]
pub struct Metrics(Arc<Inner>);

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh registry with every metric at zero.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "tessera_requests",
            "HTTP requests by endpoint, grant type and outcome (success or the error code)",
            requests.clone(),
        );
        let latency = HistogramFamily::new_with_constructor(latency_histogram as fn() -> Histogram);
        registry.register(
            "tessera_request_duration_seconds",
            "Time from routing a request to its response, by endpoint",
            latency.clone(),
        );
        let refresh_reuse = Counter::default();
        registry.register(
            "tessera_refresh_token_reuse",
            "Rotated refresh tokens presented again; each revoked a family",
            refresh_reuse.clone(),
        );
        let families_retired = Counter::default();
        registry.register(
            "tessera_refresh_families_retired",
            "Live refresh-token families retired because their client started one more at its cap",
            families_retired.clone(),
        );
        let rate_limited = Family::<ScopeLabels, Counter>::default();
        registry.register(
            "tessera_rate_limited",
            "Token requests refused with 429 after repeated failed authentications, by bucket",
            rate_limited.clone(),
        );
        let active_families = Gauge::default();
        registry.register(
            "tessera_active_refresh_families",
            "Refresh-token families neither revoked nor expired (recounted in the background)",
            active_families.clone(),
        );
        let signing_key_age = Gauge::default();
        registry.register(
            "tessera_signing_key_age_seconds",
            "Age of the key that signs access tokens",
            signing_key_age.clone(),
        );
        Self(Arc::new(Inner {
            registry,
            requests,
            latency,
            refresh_reuse,
            families_retired,
            rate_limited,
            active_families,
            signing_key_age,
        }))
    }

    /// Counts one request and its latency.
    pub fn observe_request(&self, endpoint: &'static str, grant: &'static str, outcome: &'static str, took: Duration) {
        self.0.requests.get_or_create(&RequestLabels { endpoint, grant, outcome }).inc();
        self.0.latency.get_or_create(&EndpointLabels { endpoint }).observe(took.as_secs_f64());
    }

    /// Counts a detected refresh-token reuse.
    pub fn refresh_token_reused(&self) {
        self.0.refresh_reuse.inc();
    }

    /// Counts live families retired at a client's cap.
    pub fn refresh_families_retired(&self, count: u64) {
        self.0.families_retired.inc_by(count);
    }

    /// Counts a request refused by the limiter of `scope`.
    pub fn rate_limited(&self, scope: &'static str) {
        self.0.rate_limited.get_or_create(&ScopeLabels { scope }).inc();
    }

    /// Sets the active-families gauge.
    pub fn set_active_families(&self, count: u64) {
        self.0.active_families.set(i64::try_from(count).unwrap_or(i64::MAX));
    }

    /// Sets the signing-key age gauge.
    pub fn set_signing_key_age(&self, seconds: u64) {
        self.0.signing_key_age.set(i64::try_from(seconds).unwrap_or(i64::MAX));
    }

    /// The scrape body.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.0.registry);
        out
    }
}

/// Counts the live refresh families of all clients now and then, until
/// `shutdown`. A storage error leaves the gauge as it was and is logged.
pub async fn refresh_gauges(
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    metrics: Metrics,
    interval: Duration,
    shutdown: CancellationToken,
) {
    crate::periodic::every(interval, &shutdown, || async {
        match count_active_families(store.as_ref(), clock.now()).await {
            Ok(count) => metrics.set_active_families(count),
            Err(error) => tracing::warn!(%error, "cannot count refresh families for the metrics"),
        }
    })
    .await;
}

async fn count_active_families(store: &dyn Store, now: u64) -> Result<u64, crate::store::StoreError> {
    let mut total = 0u64;
    for client in store.clients().await? {
        total = total.saturating_add(store.count_live_families(&client.client_id, now).await?);
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_appear_in_the_scrape() {
        let metrics = Metrics::new();
        metrics.observe_request("/oauth2/token", "client_credentials", "success", Duration::from_millis(3));
        metrics.observe_request("/oauth2/token", "client_credentials", "success", Duration::from_millis(3));
        metrics.refresh_token_reused();
        metrics.refresh_families_retired(3);
        metrics.rate_limited("address");
        metrics.set_active_families(7);
        metrics.set_signing_key_age(42);
        let text = metrics.encode();
        assert!(
            text.contains(
                r#"tessera_requests_total{endpoint="/oauth2/token",grant="client_credentials",outcome="success"} 2"#
            ),
            "{text}"
        );
        assert!(text.contains("tessera_refresh_token_reuse_total 1"), "{text}");
        assert!(text.contains("tessera_refresh_families_retired_total 3"), "{text}");
        assert!(text.contains(r#"tessera_rate_limited_total{scope="address"} 1"#), "{text}");
        assert!(text.contains("tessera_active_refresh_families 7"), "{text}");
        assert!(text.contains("tessera_signing_key_age_seconds 42"), "{text}");
        assert!(text.contains(r#"tessera_request_duration_seconds_count{endpoint="/oauth2/token"} 2"#), "{text}");
        assert!(text.trim_end().ends_with("# EOF"), "{text}");
    }
}
