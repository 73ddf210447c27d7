//! Prometheus metrics of the HTTP API (`chatboard_` prefix, base units).

use chatboard_core::metrics::MetricRegistry;
use prometheus::{HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts};

/// The API's metrics, in a registry of their own (so tests and embedded servers do not clash).
pub struct Metrics {
    registry: MetricRegistry,
    requests: IntCounterVec,
    duration: HistogramVec,
    in_flight: IntGauge,
    rate_limited: IntCounterVec,
    outage_refusals: IntCounter,
    page_cache_hits: IntCounter,
    page_cache_misses: IntCounter,
}

/// Latency buckets in seconds, from 1 ms to 10 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

impl Metrics {
    /// Creates and registers the metrics.
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = MetricRegistry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "chatboard_http_requests_total",
                "HTTP requests answered, by method, route and status.",
            ),
            &["method", "route", "status"],
        )?;
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "chatboard_http_request_duration_seconds",
                "HTTP request latency in seconds.",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["method", "route", "status"],
        )?;
        let in_flight = IntGauge::new(
            "chatboard_http_requests_in_flight",
            "HTTP requests being served.",
        )?;
        let rate_limited = IntCounterVec::new(
            Opts::new(
                "chatboard_rate_limited_total",
                "Requests refused with 429, by limit.",
            ),
            &["limit"],
        )?;
        let page_cache = IntCounterVec::new(
            Opts::new(
                "chatboard_message_page_cache_total",
                "Message page reads, by whether the page cache could answer (hit) or not (miss).",
            ),
            &["result"],
        )?;
        let outage_refusals = IntCounter::new(
            "chatboard_db_outage_refusals_total",
            "Requests answered 503 at once because the database was just found down.",
        )?;
        registry.register(&outage_refusals)?;
        registry.register(&page_cache)?;
        registry.register(&requests)?;
        registry.register(&duration)?;
        registry.register(&in_flight)?;
        registry.register(&rate_limited)?;
        Ok(Self {
            registry,
            requests,
            duration,
            in_flight,
            rate_limited,
            outage_refusals,
            page_cache_hits: page_cache.with_label_values(&["hit"]),
            page_cache_misses: page_cache.with_label_values(&["miss"]),
        })
    }

    /// Records one answered request.
    pub fn observe(&self, method: &str, route: &str, status: u16, seconds: f64) {
        let status = status.to_string();
        let labels = [method, route, status.as_str()];
        self.requests.with_label_values(&labels).inc();
        self.duration.with_label_values(&labels).observe(seconds);
    }

    /// The counter of requests refused during a known database outage.
    pub fn outage_refusals(&self) -> IntCounter {
        self.outage_refusals.clone()
    }

    /// The in-flight gauge.
    pub fn in_flight(&self) -> &IntGauge {
        &self.in_flight
    }

    /// Counts a 429 of the `limit` kind (`user` or `ip`).
    pub fn rate_limited(&self, limit: &str) {
        self.rate_limited.with_label_values(&[limit]).inc();
    }

    /// Counts a message page read answered from the cache (`hit`) or the database.
    pub fn page_cache(&self, hit: bool) {
        if hit {
            self.page_cache_hits.inc();
        } else {
            self.page_cache_misses.inc();
        }
    }

    /// The registry, so services embedded in the same process (the single-node gateway) can add
    /// their metrics to the same `/metrics`.
    pub fn registry(&self) -> &MetricRegistry {
        &self.registry
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> Result<String, prometheus::Error> {
        self.registry.render()
    }
}
