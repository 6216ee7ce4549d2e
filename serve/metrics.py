"""Prometheus metrics, one registry per app (tests build many apps in one process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
WAIT_BUCKETS = (0.0001, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0)
STREAM_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "lnrnn_requests",
            "HTTP requests by endpoint and status",
            ["endpoint", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "lnrnn_request_duration_seconds",
            "request latency by endpoint",
            ["endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.bytes_scored = Counter(
            "lnrnn_bytes_scored",
            "UTF-8 bytes scored (/v1/score, session texts and appends)",
            registry=self.registry,
        )
        self.sessions_open = Gauge("lnrnn_sessions_open", "server-held sessions", registry=self.registry)
        self.session_evictions = Counter(
            "lnrnn_session_evictions",
            "sessions dropped: expired (idle > LNRNN_SESSION_TTL_S) or lru (room for a new one)",
            ["reason"],
            registry=self.registry,
        )
        self.batch_streams = Histogram(
            "lnrnn_batch_streams",
            "streams (rows) per sequence-graph call of the batcher (LNRNN_BATCH_STREAMS at most)",
            buckets=STREAM_BUCKETS,
            registry=self.registry,
        )
        self.batch_queue_wait = Histogram(
            "lnrnn_batch_queue_wait_seconds",
            "time from a stream's submission to its first graph call",
            buckets=WAIT_BUCKETS,
            registry=self.registry,
        )
        self.cache_lookups = Counter(
            "lnrnn_prefix_cache_lookups",
            "/v1/predict prefix-cache lookups: exact hit, partial hit (a shorter context continued) or miss",
            ["outcome"],
            registry=self.registry,
        )
        self.model_info = Gauge(
            "lnrnn_model_info",
            "the loaded model (value 1)",
            ["name", "cell", "layers", "hidden", "precision", "provider"],
            registry=self.registry,
        )
        self.model_ready = Gauge("lnrnn_model_ready", "1 once the model is loaded", registry=self.registry)
        self.pending = Gauge(
            "lnrnn_inference_pending", "inference calls running or queued", registry=self.registry
        )
        self.rejected = Counter(
            "lnrnn_rejected",
            "requests refused by the gate (overloaded, timeout)",
            ["reason"],
            registry=self.registry,
        )
