"""Prometheus metrics of each role (`--metrics-port`), with prometheus_client.

The counters are incremented where the roles count for their stats lines, so
the two always agree.
"""

from __future__ import annotations

import logging

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server

logger = logging.getLogger(__name__)

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


class Metrics:
    """One registry per process; labelled by role."""

    def __init__(self, role: str) -> None:
        self.role = role
        self.registry = CollectorRegistry()
        labels = ["role"]
        self._received = Counter(
            "pipeline_messages_received", "Messages pulled from the subscription",
            labels, registry=self.registry,
        )  # fmt: skip
        self._stored = Counter(
            "pipeline_messages_stored", "Messages whose effect is in Cassandra",
            labels, registry=self.registry,
        )  # fmt: skip
        self._dead_lettered = Counter(
            "pipeline_messages_dead_lettered", "Messages published to a dead-letter topic",
            [*labels, "reason"], registry=self.registry,
        )  # fmt: skip
        self._delayed = Counter(
            "pipeline_messages_delayed", "Payments put back to wait for their order",
            labels, registry=self.registry,
        )  # fmt: skip
        self._errors = Counter(
            "pipeline_errors", "Failures (store, Pub/Sub), each retried",
            [*labels, "kind"], registry=self.registry,
        )  # fmt: skip
        self._published = Counter(
            "pipeline_messages_published", "Publishes confirmed by Pub/Sub",
            labels, registry=self.registry,
        )  # fmt: skip
        self._lost = Counter(
            "pipeline_messages_lost", "Publishes that failed for good",
            labels, registry=self.registry,
        )  # fmt: skip
        self._latency = Histogram(
            "pipeline_publish_to_stored_seconds", "From publish time to the row written",
            labels, buckets=LATENCY_BUCKETS, registry=self.registry,
        )  # fmt: skip

    def serve(self, port: int | None) -> None:
        if port:
            start_http_server(port, addr="0.0.0.0", registry=self.registry)
            logger.info("%s: metrics on http://0.0.0.0:%d/metrics", self.role, port)

    def received(self, count: int) -> None:
        self._received.labels(self.role).inc(count)

    def stored(self, latency_seconds: float) -> None:
        self._stored.labels(self.role).inc()
        self._latency.labels(self.role).observe(max(latency_seconds, 0.0))

    def dead_lettered(self, reason: str) -> None:
        self._dead_lettered.labels(self.role, reason).inc()

    def delayed(self) -> None:
        self._delayed.labels(self.role).inc()

    def error(self, kind: str, count: int = 1) -> None:
        self._errors.labels(self.role, kind).inc(count)

    def published(self) -> None:
        self._published.labels(self.role).inc()

    def lost(self, count: int = 1) -> None:
        self._lost.labels(self.role).inc(count)
