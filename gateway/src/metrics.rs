//! Prometheus metrics of the gateway (`chatboard_ws_` prefix, base units).

use chatboard_core::metrics::MetricRegistry;
use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts};

/// The gateway's metrics.
pub struct GatewayMetrics {
    registry: MetricRegistry,
    /// Open WebSocket connections.
    pub connections: IntGauge,
    /// Frames received from clients.
    pub frames_in: IntCounter,
    /// Frames sent to clients.
    pub frames_out: IntCounter,
    /// Message frames delivered (live and replayed).
    pub deliveries: IntCounter,
    /// Live message frames a connection's own task wrote, not the hub.
    pub queued_deliveries: IntCounter,
    /// Commit-to-socket-write latency of live messages.
    pub fanout_seconds: Histogram,
    /// Database reads a connection made to fill a gap in a room's live messages.
    pub gap_catch_ups: IntCounter,
    /// `read` frames that could not move the reader's pointer, answered without the database.
    pub stale_reads: IntCounter,
    closes: IntCounterVec,
}

/// Fan-out latency buckets in seconds, from 0.5 ms to 5 s.
const FANOUT_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

impl GatewayMetrics {
    /// Creates the metrics and registers them in `registry` (the process's `/metrics`).
    pub fn new(registry: MetricRegistry) -> Result<Self, prometheus::Error> {
        let connections = IntGauge::new(
            "chatboard_ws_connections",
            "Open WebSocket connections on this gateway.",
        )?;
        let frames_in = IntCounter::new(
            "chatboard_ws_frames_in_total",
            "Frames received from WebSocket clients.",
        )?;
        let frames_out = IntCounter::new(
            "chatboard_ws_frames_out_total",
            "Frames sent to WebSocket clients.",
        )?;
        let deliveries = IntCounter::new(
            "chatboard_ws_deliveries_total",
            "Message frames delivered to WebSocket clients (live and replayed).",
        )?;
        let queued_deliveries = IntCounter::new(
            "chatboard_ws_queued_deliveries_total",
            "Live message frames written by their connection's own task, from its queue, rather \
             than straight into the socket by the hub: the connection was busy (its task \
             awake, or bytes of earlier frames still waiting to go out) when the message came. \
             Their share of the live deliveries rises when clients read slowly or the gateway \
             falls behind.",
        )?;
        let fanout_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "chatboard_ws_fanout_seconds",
                "Latency from a live message's creation (queued for storing) to the start of its \
                 room's fan-out on this gateway, per delivery.",
            )
            .buckets(FANOUT_BUCKETS.to_vec()),
        )?;
        let gap_catch_ups = IntCounter::new(
            "chatboard_ws_gap_catch_ups_total",
            "Database reads connections made because a live message came ahead of one they had \
             not received (its announcement was late beyond the reordering wait, or lost).",
        )?;
        let stale_reads = IntCounter::new(
            "chatboard_ws_stale_reads_total",
            "Read receipts at or below where the connection knows the reader's pointer to be \
             (repeated, or late), answered without the database.",
        )?;
        let closes = IntCounterVec::new(
            Opts::new(
                "chatboard_ws_closes_total",
                "Connections closed by the gateway, by reason (slow_consumer, rate_limit, \
                 dead_peer, protocol, shutdown, too_many_connections, connect_rate, \
                 unauthenticated, token_expired, not_member, no_room, server_error).",
            ),
            &["reason"],
        )?;
        registry.register(&connections)?;
        registry.register(&frames_in)?;
        registry.register(&frames_out)?;
        registry.register(&deliveries)?;
        registry.register(&queued_deliveries)?;
        registry.register(&fanout_seconds)?;
        registry.register(&gap_catch_ups)?;
        registry.register(&stale_reads)?;
        registry.register(&closes)?;
        Ok(Self {
            registry,
            connections,
            frames_in,
            frames_out,
            deliveries,
            queued_deliveries,
            fanout_seconds,
            gap_catch_ups,
            stale_reads,
            closes,
        })
    }

    /// Counts a connection the gateway closed, by reason.
    pub fn closed(&self, reason: &str) {
        self.closes.with_label_values(&[reason]).inc();
    }

    /// The text exposition of every metric in the registry.
    pub fn render(&self) -> Result<String, prometheus::Error> {
        self.registry.render()
    }
}
