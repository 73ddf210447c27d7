//! The Helm chart's dashboards, alerts and autoscaling queries against the metrics the services
//! really export: every PromQL expression must parse and name only metrics some service
//! registers (or a well-known one from Prometheus or kube-state-metrics), and every metric the
//! services export must be on at least one dashboard.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use chatboard_core::metrics::MetricRegistry;
use promql_parser::parser::{self, Expr};
use promql_parser::util::{walk_expr, ExprVisitor};
use regex::Regex;
use serde::Deserialize;

/// Metrics the chart reads that other software exports, each with where it comes from.
const EXTERNAL_METRICS: &[(&str, &str)] = &[
    ("up", "Prometheus itself, per scrape target"),
    ("kube_pod_status_ready", "kube-state-metrics"),
];

/// A name the Prometheus Adapter serves (defined by the chart's adapter rules), not a series.
const ADAPTER_METRIC: &str = "chatboard_worker_backlog";

fn chart_dir() -> PathBuf {
    testing::repo_root().join("charts/chatboard")
}

/// Every series name each service can export, from the registries the services build.
fn exported() -> BTreeMap<&'static str, BTreeSet<String>> {
    let api = api_server::metrics::Metrics::new().unwrap();
    let gateway_registry = MetricRegistry::new();
    gateway::metrics::GatewayMetrics::new(gateway_registry.clone()).unwrap();
    let worker_registry = MetricRegistry::new();
    worker::service::WorkerMetrics::register_in(worker_registry.clone()).unwrap();
    let operator = operator::metrics::Metrics::new().unwrap();
    // The services that run actions (the application layer) export its metric too.
    for registry in [api.registry(), &gateway_registry, &operator.registry] {
        chat::announce::publish_failures(registry).unwrap();
    }
    BTreeMap::from([
        ("api-server", api.registry().series_names()),
        ("gateway", gateway_registry.series_names()),
        ("worker", worker_registry.series_names()),
        ("operator", operator.registry.series_names()),
    ])
}

fn known_names() -> BTreeSet<String> {
    let mut names: BTreeSet<String> = exported().into_values().flatten().collect();
    names.extend(EXTERNAL_METRICS.iter().map(|(name, _)| name.to_string()));
    names
}

/// Collects the metric names of an expression's selectors.
#[derive(Default)]
struct MetricNames(BTreeSet<String>);

impl ExprVisitor for MetricNames {
    type Error = std::convert::Infallible;

    fn pre_visit(&mut self, expr: &Expr) -> Result<bool, Self::Error> {
        let selector = match expr {
            Expr::VectorSelector(vs) => Some(vs),
            Expr::MatrixSelector(ms) => Some(&ms.vs),
            _ => None,
        };
        if let Some(name) = selector.and_then(|vs| vs.name.clone()) {
            self.0.insert(name);
        }
        Ok(true)
    }
}

/// Parses `expr` and returns the metric names it selects.
fn metrics_of(expr: &str) -> Result<BTreeSet<String>, String> {
    let ast = parser::parse(expr)?;
    let mut names = MetricNames::default();
    walk_expr(&mut names, &ast).map_err(|e| e.to_string())?;
    Ok(names.0)
}

/// Every `expr` of a Grafana dashboard (rows may nest panels).
fn dashboard_exprs(panels: &[serde_json::Value], out: &mut Vec<(String, String)>) {
    for panel in panels {
        let title = panel["title"].as_str().unwrap_or("?").to_owned();
        for target in panel["targets"].as_array().into_iter().flatten() {
            if let Some(expr) = target["expr"].as_str() {
                out.push((title.clone(), expr.to_owned()));
            }
        }
        if let Some(nested) = panel["panels"].as_array() {
            dashboard_exprs(nested, out);
        }
    }
}

/// Grafana's variables replaced by values PromQL accepts.
fn without_grafana_variables(expr: &str) -> String {
    let expr = expr.replace("$__rate_interval", "5m");
    Regex::new(r"\$\{?\w+\}?")
        .unwrap()
        .replace_all(&expr, "x")
        .into_owned()
}

/// Helm's `{{ ... }}` actions replaced by a plain value (they only fill label values and numbers
/// in the rules, so a number keeps the expression valid PromQL either way).
fn without_helm_actions(expr: &str) -> String {
    let numbers = Regex::new(r"\{\{[^}]*Values[^}]*\}\}").unwrap();
    let strings = Regex::new(r"\{\{[^}]*\}\}").unwrap();
    strings
        .replace_all(&numbers.replace_all(expr, "1"), "x")
        .into_owned()
}

/// (dashboard file, panel title, expression) for every dashboard query.
fn all_dashboard_queries() -> Vec<(String, String, String)> {
    let dir = chart_dir().join("files/dashboards");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    files.sort();
    let mut queries = Vec::new();
    for file in files {
        let board: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        let mut exprs = Vec::new();
        dashboard_exprs(board["panels"].as_array().unwrap(), &mut exprs);
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        assert!(!exprs.is_empty(), "{name} has no queries");
        for (title, expr) in exprs {
            queries.push((name.clone(), title, expr));
        }
    }
    queries
}

#[derive(Deserialize)]
struct RuleFile {
    groups: Vec<RuleGroup>,
}

#[derive(Deserialize)]
struct RuleGroup {
    rules: Vec<Rule>,
}

#[derive(Deserialize)]
struct Rule {
    alert: String,
    expr: String,
}

fn alert_rules() -> Vec<Rule> {
    let text = std::fs::read_to_string(chart_dir().join("files/alerts.yaml")).unwrap();
    // A line that is a template action alone (`{{- if .Values.operator.enabled }}`) chooses
    // which rules render; every rule is checked.
    let text: String = text
        .lines()
        .filter(|line| !(line.trim_start().starts_with("{{-") && line.trim_end().ends_with("}}")))
        .map(|line| format!("{line}\n"))
        .collect();
    let file: RuleFile = serde_saphyr::from_str(&text).unwrap();
    file.groups.into_iter().flat_map(|g| g.rules).collect()
}

/// Records why `promql` (the chart's `expr` at `place`, made plain PromQL) is wrong, if it is:
/// it does not parse, names no metric, or names one nobody exports.
fn check_expr(
    place: &str,
    expr: &str,
    promql: &str,
    known: &BTreeSet<String>,
    problems: &mut Vec<String>,
) {
    match metrics_of(promql) {
        Err(e) => problems.push(format!("{place}: does not parse ({e}): {expr}")),
        Ok(names) if names.is_empty() => problems.push(format!("{place}: names no metric: {expr}")),
        Ok(names) => problems.extend(
            names
                .difference(known)
                .map(|name| format!("{place}: unknown metric {name}")),
        ),
    }
}

#[test]
fn every_service_exports_metrics_in_the_catalogue() {
    for (service, names) in exported() {
        assert!(
            names.iter().all(|n| n.starts_with("chatboard_")),
            "{service}: {names:?}"
        );
        assert!(names.len() >= 4, "{service} exports only {names:?}");
    }
}

#[test]
fn dashboard_queries_parse_and_use_exported_metrics() {
    let known = known_names();
    let mut problems = Vec::new();
    let queries = all_dashboard_queries();
    for (file, title, expr) in &queries {
        let place = format!("{file} / {title}");
        check_expr(
            &place,
            expr,
            &without_grafana_variables(expr),
            &known,
            &mut problems,
        );
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    let files: BTreeSet<&String> = queries.iter().map(|(file, _, _)| file).collect();
    let expected = [
        "api-server.json",
        "gateway.json",
        "operator.json",
        "overview.json",
        "worker.json",
    ];
    assert_eq!(
        files.into_iter().map(String::as_str).collect::<Vec<_>>(),
        expected,
        "one overview and one dashboard per service"
    );
}

/// Probes and scrapes are steady fast answers: a dashboard's request rates, error ratios and
/// latencies leave them out, or a route failing every request shows as a few percent.
#[test]
fn request_panels_leave_probes_and_scrapes_out() {
    let selector =
        Regex::new(r"chatboard_http_request(s_total|_duration_seconds_bucket)\{([^}]*)\}").unwrap();
    let mut counted = Vec::new();
    for (file, title, expr) in all_dashboard_queries() {
        for found in selector.captures_iter(&expr) {
            let matchers = &found[2];
            // Panels about the probes themselves name them.
            if !matchers.contains("route!~\"/health/.*|/metrics\"") && !matchers.contains("route=")
            {
                counted.push(format!("{file} / {title}: {expr}"));
            }
        }
    }
    assert!(counted.is_empty(), "{}", counted.join("\n"));
}

/// The operator's leader count is right at one only: none reconciles nothing, and reads red.
#[test]
fn no_leader_reads_red() {
    let board: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(chart_dir().join("files/dashboards/operator.json")).unwrap(),
    )
    .unwrap();
    let panels = board["panels"].as_array().unwrap();
    let leaders = panels
        .iter()
        .find(|p| p["title"] == "Leader replicas")
        .expect("a leader panel");
    let steps = leaders["fieldConfig"]["defaults"]["thresholds"]["steps"]
        .as_array()
        .unwrap();
    let colour_at = |n: f64| {
        steps
            .iter()
            .rev()
            .find(|s| s["value"].as_f64().is_none_or(|v| v <= n))
            .unwrap()["color"]
            .clone()
    };
    assert_eq!(colour_at(0.0), "red");
    assert_eq!(colour_at(1.0), "green");
    assert_eq!(colour_at(2.0), "red");
}

#[test]
fn every_exported_metric_is_on_a_dashboard() {
    let mut shown = BTreeSet::new();
    for (_, _, expr) in all_dashboard_queries() {
        shown.extend(metrics_of(&without_grafana_variables(&expr)).unwrap());
    }
    let mut missing = Vec::new();
    for (service, names) in exported() {
        for name in names {
            // A histogram is shown through its buckets; _sum and _count need no panel of their own.
            let family_shown = shown.contains(&name)
                || [("_sum", "_bucket"), ("_count", "_bucket")]
                    .iter()
                    .any(|(suffix, bucket)| {
                        name.strip_suffix(suffix)
                            .is_some_and(|base| shown.contains(&format!("{base}{bucket}")))
                    });
            if !family_shown {
                missing.push(format!("{service}: {name}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "not on any dashboard:\n{}",
        missing.join("\n")
    );
}

#[test]
fn alert_rules_parse_and_use_exported_metrics() {
    let known = known_names();
    let rules = alert_rules();
    let mut problems = Vec::new();
    for rule in &rules {
        let promql = without_helm_actions(&rule.expr);
        check_expr(&rule.alert, &rule.expr, &promql, &known, &mut problems);
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    // What SREs were promised alerts on (the issue's list), by the metric each needs.
    let used: BTreeSet<String> = rules
        .iter()
        .flat_map(|rule| metrics_of(&without_helm_actions(&rule.expr)).unwrap())
        .collect();
    for needed in [
        "chatboard_http_requests_total",                  // error ratio
        "chatboard_http_request_duration_seconds_bucket", // p99 latency
        "chatboard_ws_fanout_seconds_bucket",             // fan-out latency
        "chatboard_outbox_oldest_age_seconds",            // outbox backlog age
        "chatboard_job_backlog",                          // jobs waiting (scale-out)
        "chatboard_jobs_total",                           // jobs failing
        "chatboard_webhook_attempts_total",               // webhook failure ratio
        "chatboard_operator_reconciliations_total",       // reconcile errors
        "kube_pod_status_ready",                          // pods not ready
    ] {
        assert!(used.contains(needed), "no alert uses {needed}");
    }
}

#[test]
fn every_metric_name_in_the_chart_is_exported() {
    // Catches names outside dashboards and rules too: autoscaling queries, adapter rules, docs.
    let mut known = known_names();
    known.insert(ADAPTER_METRIC.to_owned());
    let token = Regex::new(r"\bchatboard_[a-z0-9_]+\b").unwrap();
    let mut problems = Vec::new();
    let mut stack = vec![chart_dir()];
    let mut seen_adapter_definition = false;
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                // The CRDs are generated from the Rust types and name no metrics.
                if !path.ends_with("crds") {
                    stack.push(path);
                }
                continue;
            }
            let Ok(text) = std::fs::read_to_string(&path) else {
                continue;
            };
            if text.contains(&format!("as: {ADAPTER_METRIC}")) {
                seen_adapter_definition = true;
            }
            for found in token.find_iter(&text) {
                // A histogram's family name (as the dashboard generator writes it) is fine too.
                let family = format!("{}_bucket", found.as_str());
                if !known.contains(found.as_str()) && !known.contains(&family) {
                    problems.push(format!("{}: {}", path.display(), found.as_str()));
                }
            }
        }
    }
    assert!(
        problems.is_empty(),
        "unknown metric names:\n{}",
        problems.join("\n")
    );
    assert!(
        seen_adapter_definition,
        "{ADAPTER_METRIC} is used by the worker's HPA but no adapter rule defines it"
    );
}

#[test]
fn the_checks_catch_an_unknown_metric() {
    let known = known_names();
    let names = metrics_of(&without_grafana_variables(
        "sum(rate(chatboard_http_requests_totl{namespace=\"$namespace\"}[$__rate_interval]))",
    ))
    .unwrap();
    assert!(!names.is_subset(&known));
    assert!(metrics_of("sum(rate(x[5m]) by").is_err());
    let alert = without_helm_actions(
        "max(chatboard_outbox_oldest_age_seconds{namespace=\"{{ .Release.Namespace }}\"}) > {{ .Values.metrics.prometheusRule.outboxBacklogAgeSeconds }}",
    );
    assert_eq!(
        metrics_of(&alert).unwrap(),
        BTreeSet::from(["chatboard_outbox_oldest_age_seconds".to_owned()])
    );
}
