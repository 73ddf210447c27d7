//! A Prometheus registry that remembers what was registered in it.
//!
//! The text exposition leaves out a labelled metric until its first label set is used, so a
//! scrape of a fresh process does not show everything the process can export. The Helm chart's
//! dashboards, alerts and autoscaling queries are checked against [`MetricRegistry::series_names`]
//! instead, which lists every registered metric from the moment it is registered.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, PoisonError};

use prometheus::core::Collector;
use prometheus::proto::MetricType;
use prometheus::{Encoder, Registry, TextEncoder};

/// A registry shared by the services of one process (cheap to clone; clones share everything).
#[derive(Clone, Default)]
pub struct MetricRegistry {
    registry: Registry,
    /// (family name, type) of everything registered.
    families: Arc<Mutex<BTreeSet<(String, i32)>>>,
}

impl MetricRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `collector` (a clone of it; keep the original to record values).
    pub fn register<C: Collector + Clone + 'static>(
        &self,
        collector: &C,
    ) -> Result<(), prometheus::Error> {
        let described: Vec<(String, i32)> = collector
            .collect()
            .iter()
            .map(|family| (family.name().to_owned(), family.get_field_type() as i32))
            .collect();
        self.registry.register(Box::new(collector.clone()))?;
        self.families
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend(described);
        Ok(())
    }

    /// The text exposition of every metric that has a value (Prometheus' `/metrics` format).
    pub fn render(&self) -> Result<String, prometheus::Error> {
        let mut out = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut out)?;
        String::from_utf8(out).map_err(|e| prometheus::Error::Msg(e.to_string()))
    }

    /// Every series name a scrape can contain: the family names, with `_bucket`, `_sum` and
    /// `_count` for histograms and `_sum` and `_count` for summaries.
    pub fn series_names(&self) -> BTreeSet<String> {
        let families = self.families.lock().unwrap_or_else(PoisonError::into_inner);
        let mut names = BTreeSet::new();
        for (name, kind) in families.iter() {
            let suffixes: &[&str] = if *kind == MetricType::HISTOGRAM as i32 {
                &["_bucket", "_sum", "_count"]
            } else if *kind == MetricType::SUMMARY as i32 {
                &["", "_sum", "_count"]
            } else {
                &[""]
            };
            names.extend(suffixes.iter().map(|suffix| format!("{name}{suffix}")));
        }
        names
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts};

    #[test]
    fn lists_labelled_metrics_before_their_first_use() {
        let registry = MetricRegistry::new();
        let counter =
            IntCounterVec::new(Opts::new("demo_requests_total", "help"), &["route"]).unwrap();
        let histogram =
            HistogramVec::new(HistogramOpts::new("demo_seconds", "help"), &["route"]).unwrap();
        let gauge = IntGauge::new("demo_open", "help").unwrap();
        registry.register(&counter).unwrap();
        registry.register(&histogram).unwrap();
        registry.register(&gauge).unwrap();

        let names: Vec<String> = registry.series_names().into_iter().collect();
        assert_eq!(
            names,
            [
                "demo_open",
                "demo_requests_total",
                "demo_seconds_bucket",
                "demo_seconds_count",
                "demo_seconds_sum"
            ]
        );
        // The exposition shows only what has values; the catalogue is what makes the check work.
        let text = registry.render().unwrap();
        assert!(text.contains("demo_open 0"));
        assert!(!text.contains("demo_requests_total"));
        counter.with_label_values(&["/x"]).inc();
        assert!(registry
            .render()
            .unwrap()
            .contains("demo_requests_total{route=\"/x\"} 1"));
    }

    #[test]
    fn clones_share_one_registry() {
        let registry = MetricRegistry::new();
        let other = registry.clone();
        let gauge = IntGauge::new("shared_gauge", "help").unwrap();
        other.register(&gauge).unwrap();
        assert!(registry.series_names().contains("shared_gauge"));
        assert!(registry.register(&gauge).is_err(), "registered twice");
    }
}
