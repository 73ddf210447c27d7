#!/usr/bin/env python3
"""Writes the chart's Grafana dashboards (overview.json and one per service) next to this file.

The dashboards are described here once, compactly, and written out as the JSON Grafana loads;
edit this file and run `python3 charts/chatboard/files/dashboards/generate.py`. CI runs it and
fails when the committed JSON differs. Every metric a query names is checked against what the
services export by chatboard/tests/chart_metrics.rs.
"""

import json
import pathlib

HERE = pathlib.Path(__file__).resolve().parent
NS = 'namespace="$namespace"'
ERRORS = 'status=~"5.."'
CLIENT_AND_SERVER_ERRORS = 'status=~"[45].."'
# Kubelet probes and Prometheus scrapes: steady traffic that would crowd the top routes and
# flatten the latency quantiles of what users ask for.
NOT_PROBES = 'route!~"/health/.*|/metrics"'
HIT = 'result="hit"'
FAILED = 'result="error"'


def status_class(c):
    return f'status=~"{c}.."'


def rate(metric, extra="", window="$__rate_interval"):
    sel = NS + (", " + extra if extra else "")
    return f"rate({metric}{{{sel}}}[{window}])"


def p(q, metric, by="", extra=""):
    """The q-quantile of a histogram, optionally split by labels."""
    group = f"{by}, le" if by else "le"
    return f"histogram_quantile({q}, sum by ({group}) ({rate(metric + '_bucket', extra)}))"


class Board:
    def __init__(self, uid, title, description, namespace_metric):
        self.uid, self.title, self.description = uid, title, description
        self.namespace_metric = namespace_metric
        self.panels, self.y, self.x, self.row_h = [], 0, 0, 0
        self.next_id = 1

    def _place(self, w, h):
        if self.x + w > 24:
            self.x, self.y = 0, self.y + self.row_h
            self.row_h = 0
        pos = {"x": self.x, "y": self.y, "w": w, "h": h}
        self.x += w
        self.row_h = max(self.row_h, h)
        return pos

    def row(self, title):
        if self.x:
            self.x, self.y, self.row_h = 0, self.y + self.row_h, 0
        self.panels.append({"type": "row", "title": title, "id": self._id(), "collapsed": False,
                            "gridPos": {"x": 0, "y": self.y, "w": 24, "h": 1}, "panels": []})
        self.y += 1

    def _id(self):
        self.next_id += 1
        return self.next_id - 1

    def _targets(self, queries):
        return [{"refId": chr(ord("A") + i), "expr": expr, "legendFormat": legend,
                 "datasource": {"type": "prometheus", "uid": "${datasource}"}}
                for i, (expr, legend) in enumerate(queries)]

    def graph(self, title, queries, unit="short", w=12, h=8, description="", stack=False):
        self.panels.append({
            "type": "timeseries", "title": title, "id": self._id(), "description": description,
            "gridPos": self._place(w, h),
            "datasource": {"type": "prometheus", "uid": "${datasource}"},
            "fieldConfig": {"defaults": {"unit": unit, "custom": {
                "lineWidth": 1, "fillOpacity": 10,
                "stacking": {"mode": "normal" if stack else "none"}}}, "overrides": []},
            "options": {"legend": {"displayMode": "list", "placement": "bottom"},
                        "tooltip": {"mode": "multi"}},
            "targets": self._targets(queries),
        })

    def stat(self, title, expr, unit="short", w=4, h=4, thresholds=None, description="",
             base="green"):
        steps = [{"color": base, "value": None}]
        for value, color in thresholds or []:
            steps.append({"color": color, "value": value})
        self.panels.append({
            "type": "stat", "title": title, "id": self._id(), "description": description,
            "gridPos": self._place(w, h),
            "datasource": {"type": "prometheus", "uid": "${datasource}"},
            "fieldConfig": {"defaults": {"unit": unit, "thresholds": {"mode": "absolute",
                                                                        "steps": steps}},
                            "overrides": []},
            "options": {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                        "colorMode": "value", "graphMode": "area"},
            "targets": self._targets([(expr, "")]),
        })

    def json(self):
        return {
            "uid": self.uid, "title": self.title, "description": self.description,
            "tags": ["chatboard"], "timezone": "browser", "schemaVersion": 39, "version": 1,
            "editable": True, "refresh": "30s", "time": {"from": "now-3h", "to": "now"},
            "templating": {"list": [
                {"name": "datasource", "label": "Data source", "type": "datasource",
                 "query": "prometheus", "current": {}, "hide": 0},
                {"name": "namespace", "label": "Namespace", "type": "query",
                 "datasource": {"type": "prometheus", "uid": "${datasource}"},
                 "query": {"query": f"label_values({self.namespace_metric}, namespace)",
                           "refId": "namespace"},
                 "definition": f"label_values({self.namespace_metric}, namespace)",
                 "refresh": 2, "sort": 1, "current": {}, "hide": 0},
            ]},
            "annotations": {"list": []},
            "links": [{"title": "ChatBoard", "type": "dashboards", "tags": ["chatboard"],
                       "asDropdown": True}],
            "panels": self.panels,
        }


def overview():
    b = Board("chatboard-overview", "ChatBoard / Overview",
              "Traffic, errors, latency, live connections, backlogs and the operator at a glance.",
              "chatboard_http_requests_in_flight")
    req = "chatboard_http_requests_total"
    b.row("Health")
    b.stat("API requests/s", f"sum({rate(req, NOT_PROBES)})", "reqps")
    b.stat("API 5xx ratio",
           f"sum({rate(req, NOT_PROBES + ', ' + ERRORS)}) / sum({rate(req, NOT_PROBES)})",
           "percentunit", thresholds=[(0.01, "orange"), (0.05, "red")])
    b.stat("API p99", p(0.99, "chatboard_http_request_duration_seconds", extra=NOT_PROBES), "s",
           thresholds=[(0.5, "orange"), (1, "red")])
    b.stat("Open WebSockets", f"sum(chatboard_ws_connections{{{NS}}})")
    b.stat("Outbox oldest event", f"max(chatboard_outbox_oldest_age_seconds{{{NS}}})", "s",
           thresholds=[(30, "orange"), (60, "red")])
    b.stat("Tenant resources not Ready", f"sum(chatboard_operator_resources_not_ready{{{NS}}})",
           thresholds=[(1, "orange")])
    b.row("API")
    b.graph("Requests by status class",
            [(f"sum({rate(req, NOT_PROBES + ', ' + status_class(c))})", f"{c}xx")
             for c in "2345"],
            "reqps", stack=True)
    b.graph("Latency",
            [(p(0.5, "chatboard_http_request_duration_seconds", extra=NOT_PROBES), "p50"),
             (p(0.99, "chatboard_http_request_duration_seconds", extra=NOT_PROBES), "p99")],
            "s")
    b.row("Live delivery")
    b.graph("WebSockets per pod", [(f"sum by (pod) (chatboard_ws_connections{{{NS}}})",
                                    "{{pod}}")])
    fanout_panels(b)
    b.row("Background work")
    b.graph("Backlogs", [(f"max(chatboard_outbox_backlog{{{NS}}})", "outbox events"),
                         (f"max(chatboard_webhook_backlog{{{NS}}})", "webhook deliveries"),
                         (f"max(chatboard_email_backlog{{{NS}}})", "emails")])
    b.graph("Webhook attempts by result",
            [(f"sum by (result) ({rate('chatboard_webhook_attempts_total')})", "{{result}}")],
            "ops", stack=True)
    b.row("Operator")
    b.graph("Reconciliations by result",
            [(f"sum by (result) ({rate('chatboard_operator_reconciliations_total')})",
              "{{result}}")], "ops", stack=True)
    b.graph("Leader", [(f"sum by (pod) (chatboard_operator_leader{{{NS}}})", "{{pod}}")])
    return b


def api_server():
    b = Board("chatboard-api-server", "ChatBoard / API server",
              "The REST API: traffic, errors and latency per route, limits, page cache.",
              "chatboard_http_requests_in_flight")
    req = "chatboard_http_requests_total"
    lat = "chatboard_http_request_duration_seconds"
    b.row("Traffic")
    b.graph("Requests by route (top 10, probes and scrapes left out)",
            [(f"topk(10, sum by (method, route) ({rate(req, NOT_PROBES)}))",
              "{{method}} {{route}}")],
            "reqps", w=24)
    b.graph("Errors by route (4xx and 5xx)",
            [(f"sum by (route, status) ({rate(req, NOT_PROBES + ', ' + CLIENT_AND_SERVER_ERRORS)})",
              "{{status}} {{route}}")], "reqps")
    b.graph("5xx ratio", [(f"sum({rate(req, NOT_PROBES + ', ' + ERRORS)}) / "
                           f"sum({rate(req, NOT_PROBES)})", "5xx")], "percentunit")
    b.row("Latency (probes and scrapes left out)")
    b.graph("p99 by route (top 10)",
            [(f"topk(10, {p(0.99, lat, 'route', NOT_PROBES)})", "{{route}}")], "s")
    b.graph("Latency", [(p(q, lat, extra=NOT_PROBES), name)
                        for q, name in ((0.5, "p50"), (0.9, "p90"), (0.99, "p99"))], "s")
    b.row("Capacity")
    b.graph("In flight per pod",
            [(f"sum by (pod) (chatboard_http_requests_in_flight{{{NS}}})", "{{pod}}")])
    b.graph("Refused by rate limits",
            [(f"sum by (limit) ({rate('chatboard_rate_limited_total')})", "{{limit}}")], "reqps")
    b.graph("Message page cache hit ratio",
            [(f"sum({rate('chatboard_message_page_cache_total', HIT)}) / "
              f"sum({rate('chatboard_message_page_cache_total')})", "hit ratio")], "percentunit")
    b.graph("Bus publish failures",
            [(f"sum({rate('chatboard_bus_publish_failures_total')})", "failures/s")], "ops")
    b.graph("Refused at once during a database outage",
            [(f"sum({rate('chatboard_db_outage_refusals_total')})", "refused/s")], "reqps")
    return b


def fanout_panels(b):
    """The fan-out's latency and the share of live deliveries its connections wrote themselves."""
    b.graph("Fan-out latency (creation to the start of the room's fan-out)",
            [(p(0.5, "chatboard_ws_fanout_seconds"), "p50"),
             (p(0.99, "chatboard_ws_fanout_seconds"), "p99")], "s")
    b.graph("Live deliveries written by the connections' own tasks",
            [(f"sum by (pod) ({rate('chatboard_ws_queued_deliveries_total')}) / "
              f"sum by (pod) ({rate('chatboard_ws_fanout_seconds_count')})", "{{pod}}")],
            "percentunit",
            description="The share of live message frames a connection's own task wrote, "
                        "because it was busy (its task awake, or earlier frames still going "
                        "out), rather than the hub straight into its socket. Near zero on a "
                        "healthy gateway; a rising share means clients read slowly or the "
                        "gateway falls behind.")


def gateway():
    b = Board("chatboard-gateway", "ChatBoard / Gateway",
              "WebSockets: connections per pod (the autoscaling signal), frames, fan-out, closes.",
              "chatboard_ws_connections")
    b.row("Connections")
    b.stat("Open WebSockets", f"sum(chatboard_ws_connections{{{NS}}})", w=6)
    b.stat("Gateway pods", f"count(chatboard_ws_connections{{{NS}}})", w=6)
    b.stat("Fan-out p99", p(0.99, "chatboard_ws_fanout_seconds"), "s", w=6,
           thresholds=[(0.25, "orange"), (0.5, "red")])
    b.stat("Deliveries/s", f"sum({rate('chatboard_ws_deliveries_total')})", "ops", w=6)
    b.graph("WebSockets per pod",
            [(f"sum by (pod) (chatboard_ws_connections{{{NS}}})", "{{pod}}")])
    b.graph("Closes by reason",
            [(f"sum by (reason) ({rate('chatboard_ws_closes_total')})", "{{reason}}")],
            "ops", stack=True)
    b.row("Traffic")
    b.graph("Frames", [(f"sum({rate('chatboard_ws_frames_in_total')})", "in"),
                       (f"sum({rate('chatboard_ws_frames_out_total')})", "out"),
                       (f"sum({rate('chatboard_ws_stale_reads_total')})", "receipts answered without the database")], "ops")
    b.graph("Message deliveries per pod",
            [(f"sum by (pod) ({rate('chatboard_ws_deliveries_total')})", "{{pod}}")], "ops")
    fanout_panels(b)
    b.graph("Gap catch-ups (database reads for a lost or late announcement)",
            [(f"sum by (pod) ({rate('chatboard_ws_gap_catch_ups_total')})", "{{pod}}")], "ops",
            description="Connections reading the database because a live message came ahead of "
                        "one they had not received. Late announcements are reordered in the "
                        "gateway for up to 100 ms; a steady rate means publishes fail.")
    return b


def worker():
    b = Board("chatboard-worker", "ChatBoard / Worker",
              "Outbox relay, jobs, webhook deliveries, email, upload janitor and retention.",
              "chatboard_outbox_backlog")
    b.row("Outbox and jobs")
    b.graph("Outbox and job queue backlog",
            [(f"max(chatboard_outbox_backlog{{{NS}}})", "outbox events waiting"),
             (f"max(chatboard_job_backlog{{{NS}}})", "jobs queued (scale-out)")])
    b.graph("Outbox oldest event age",
            [(f"max(chatboard_outbox_oldest_age_seconds{{{NS}}})", "age")], "s")
    b.graph("Relayed", [(f"sum({rate('chatboard_outbox_relayed_total')})", "relayed"),
                        (f"sum({rate('chatboard_outbox_relay_failures_total')})", "failures")],
            "ops")
    b.graph("Jobs by type and result",
            [(f"sum by (type, result) ({rate('chatboard_jobs_total')})", "{{type}} {{result}}")],
            "ops")
    b.row("Webhooks")
    b.graph("Webhook backlog", [(f"max(chatboard_webhook_backlog{{{NS}}})", "waiting")], w=6)
    b.graph("Webhook backlog oldest age",
            [(f"max(chatboard_webhook_backlog_oldest_age_seconds{{{NS}}})", "oldest")], "s", w=6)
    b.graph("Attempts by result",
            [(f"sum by (result) ({rate('chatboard_webhook_attempts_total')})", "{{result}}")],
            "ops", stack=True)
    b.graph("Target answer time", [(p(0.5, "chatboard_webhook_request_seconds"), "p50"),
                                   (p(0.99, "chatboard_webhook_request_seconds"), "p99")], "s")
    b.graph("Event to delivery (retries included)",
            [(p(0.5, "chatboard_webhook_delivery_lag_seconds"), "p50"),
             (p(0.99, "chatboard_webhook_delivery_lag_seconds"), "p99")], "s")
    b.graph("Attempts per delivery", [(p(0.5, "chatboard_webhook_attempts_per_delivery"), "p50"),
                                      (p(0.99, "chatboard_webhook_attempts_per_delivery"), "p99")],
            w=24)
    b.row("Email, uploads, retention")
    b.graph("Emails by kind and result",
            [(f"sum by (kind, result) ({rate('chatboard_emails_total')})", "{{kind}} {{result}}")],
            "ops")
    b.graph("Email backlog", [(f"max(chatboard_email_backlog{{{NS}}})", "queued")])
    b.graph("Uploads removed",
            [(f"sum(increase(chatboard_uploads_expired_total{{{NS}}}[1h]))", "expired / h"),
             (f"sum(increase(chatboard_uploads_abandoned_total{{{NS}}}[1h]))", "abandoned / h")])
    b.graph("Deleted by retention",
            [(f"sum(increase(chatboard_messages_purged_total{{{NS}}}[1h]))", "messages / h"),
             (f"sum(increase(chatboard_outbox_pruned_total{{{NS}}}[1h]))", "outbox events / h")])
    return b


def operator():
    b = Board("chatboard-operator", "ChatBoard / Operator",
              "Reconciliation of Organization and Webhook resources, readiness and leadership.",
              "chatboard_operator_leader")
    b.row("Reconciliation")
    # One leader is right; none means nothing is reconciled, two a split brain.
    b.stat("Leader replicas", f"sum(chatboard_operator_leader{{{NS}}})", w=8,
           thresholds=[(1, "green"), (2, "red")], base="red")
    b.stat("Resources not Ready", f"sum(chatboard_operator_resources_not_ready{{{NS}}})", w=8,
           thresholds=[(1, "orange")])
    b.stat("Errors (1h)",
           f"sum(increase(chatboard_operator_reconciliations_total{{{NS}, {FAILED}}}[1h]))",
           w=8, thresholds=[(1, "orange")])
    b.graph("Reconciliations by kind and result",
            [(f"sum by (kind, result) ({rate('chatboard_operator_reconciliations_total')})",
              "{{kind}} {{result}}")], "ops")
    b.graph("Reconcile duration p99 by kind",
            [(p(0.99, "chatboard_operator_reconcile_duration_seconds", "kind"), "{{kind}}")], "s")
    b.graph("Not Ready by kind",
            [(f"max by (kind) (chatboard_operator_resources_not_ready{{{NS}}})", "{{kind}}")])
    b.graph("Leader by pod", [(f"max by (pod) (chatboard_operator_leader{{{NS}}})", "{{pod}}")])
    b.graph("List and watch failures by kind",
            [(f"sum by (kind) (increase(chatboard_operator_watch_errors_total{{{NS}}}[5m]))",
              "{{kind}}")])
    return b


def main():
    for board in (overview(), api_server(), gateway(), worker(), operator()):
        name = board.uid.removeprefix("chatboard-")
        text = json.dumps(board.json(), indent=2, sort_keys=True) + "\n"
        (HERE / f"{name}.json").write_text(text)


if __name__ == "__main__":
    main()
