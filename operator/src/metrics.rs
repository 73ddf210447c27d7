//! The operator's Prometheus metrics.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

use chatboard_core::metrics::MetricRegistry;
use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts};

/// Reconciliations, their duration, what is not Ready, and leadership.
pub struct Metrics {
    /// Where they are registered (served at `/metrics`).
    pub registry: MetricRegistry,
    reconciliations: IntCounterVec,
    duration: HistogramVec,
    not_ready: IntGaugeVec,
    watch_errors: IntCounterVec,
    /// 1 while this replica leads.
    pub leader: IntGauge,
    // Which resources are not Ready, per kind, so the gauge counts each once.
    not_ready_keys: Mutex<HashMap<&'static str, HashSet<String>>>,
}

impl Metrics {
    /// Creates the metrics in a registry of their own.
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = MetricRegistry::new();
        let reconciliations = IntCounterVec::new(
            Opts::new(
                "chatboard_operator_reconciliations_total",
                "Reconciliations by kind and result (ok, invalid, error).",
            ),
            &["kind", "result"],
        )?;
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "chatboard_operator_reconcile_duration_seconds",
                "Time one reconciliation took.",
            )
            .buckets(vec![
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
            &["kind"],
        )?;
        let not_ready = IntGaugeVec::new(
            Opts::new(
                "chatboard_operator_resources_not_ready",
                "Resources whose Ready condition is False, by kind.",
            ),
            &["kind"],
        )?;
        let watch_errors = IntCounterVec::new(
            Opts::new(
                "chatboard_operator_watch_errors_total",
                "Failures to list or watch the resources a controller follows, by kind (a \
                 missing CRD, RBAC, the API server): nothing of that kind is reconciled meanwhile.",
            ),
            &["kind"],
        )?;
        let leader = IntGauge::new(
            "chatboard_operator_leader",
            "1 while this replica holds the leader Lease.",
        )?;
        registry.register(&reconciliations)?;
        registry.register(&duration)?;
        registry.register(&not_ready)?;
        registry.register(&leader)?;
        registry.register(&watch_errors)?;
        for kind in ["Organization", "Webhook"] {
            not_ready.with_label_values(&[kind]).set(0);
            watch_errors.with_label_values(&[kind]).reset();
            for result in ["ok", "invalid", "error"] {
                reconciliations.with_label_values(&[kind, result]).reset();
            }
        }
        Ok(Self {
            registry,
            reconciliations,
            duration,
            not_ready,
            watch_errors,
            leader,
            not_ready_keys: Mutex::default(),
        })
    }

    /// Counts one reconciliation of `kind` that took `took` and ended with `result`.
    pub fn reconciled(&self, kind: &'static str, result: &'static str, took: Duration) {
        self.reconciliations
            .with_label_values(&[kind, result])
            .inc();
        self.duration
            .with_label_values(&[kind])
            .observe(took.as_secs_f64());
    }

    /// Counts a failure of `kind`'s controller to list or watch what it follows.
    pub fn watch_failed(&self, kind: &'static str) {
        self.watch_errors.with_label_values(&[kind]).inc();
    }

    /// Forgets every resource's readiness: a replica that stops leading no longer knows it, and
    /// only the leader's count is current.
    pub fn forget_readiness(&self) {
        let Ok(mut keys) = self.not_ready_keys.lock() else {
            return;
        };
        for (kind, set) in keys.iter_mut() {
            set.clear();
            self.not_ready.with_label_values(&[*kind]).set(0);
        }
    }

    /// Forgets the readiness of the resources of `kind` that `gone` says are gone.
    pub fn forget_gone(&self, kind: &'static str, gone: &dyn Fn(&str) -> bool) {
        let Ok(mut keys) = self.not_ready_keys.lock() else {
            return;
        };
        if let Some(set) = keys.get_mut(kind) {
            set.retain(|key| !gone(key));
            self.not_ready
                .with_label_values(&[kind])
                .set(set.len() as i64);
        }
    }

    /// Records whether the resource `key` of `kind` is Ready (`None`: it is gone).
    pub fn set_ready(&self, kind: &'static str, key: &str, ready: Option<bool>) {
        let Ok(mut keys) = self.not_ready_keys.lock() else {
            return;
        };
        let set = keys.entry(kind).or_default();
        match ready {
            Some(false) => {
                set.insert(key.to_owned());
            }
            _ => {
                set.remove(key);
            }
        }
        self.not_ready
            .with_label_values(&[kind])
            .set(set.len() as i64);
    }
}
