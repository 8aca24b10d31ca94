"""What each role counts, counted once: the stats line and the Prometheus metrics read one tally.

A role calls `received`, `stored`, `published`... once per event; `log` writes the
periodic stats line (figures also under `extra["stats"]` for JSON logs) and the
same events feed prometheus_client's counters (`--metrics-port`).
"""

from __future__ import annotations

import logging
import time
from collections import Counter as Tally
from collections.abc import Sequence

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server

from ecom_pipeline.options import METRICS_ADDR

logger = logging.getLogger(__name__)

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
CONSUMER_LINE = ("received", "stored", "dead_lettered", "delayed", "retried")
PRODUCER_LINE = ("published", "retried", "lost")


class Stats:
    """The counts of one role (labelled `role` in Prometheus), one registry per process."""

    def __init__(self, role: str) -> None:
        self.role = role
        self.counts: Tally[str] = Tally()
        self.registry = CollectorRegistry()
        self._last_line = (time.monotonic(), 0)

        def counter(name: str, doc: str, *labels: str) -> Counter:
            return Counter(name, doc, ["role", *labels], registry=self.registry)

        self._received = counter("pipeline_messages_received", "Messages pulled")
        self._stored = counter("pipeline_messages_stored", "Messages whose effect is in Cassandra")
        self._dead_lettered = counter(
            "pipeline_messages_dead_lettered", "Messages published to a dead-letter topic", "reason"
        )
        self._delayed = counter(
            "pipeline_messages_delayed", "Payments put back to wait for their order"
        )
        self._errors = counter("pipeline_errors", "Failures (store, Pub/Sub), each retried", "kind")
        self._published = counter("pipeline_messages_published", "Publishes confirmed by Pub/Sub")
        self._lost = counter("pipeline_messages_lost", "Publishes that failed for good")
        self._latency = Histogram(
            "pipeline_publish_to_stored_seconds", "From publish time to the row written",
            ["role"], buckets=LATENCY_BUCKETS, registry=self.registry,
        )  # fmt: skip

    def serve(self, port: int | None, addr: str = METRICS_ADDR) -> None:
        """Serve the metrics on http://addr:port/metrics (not at all without a port)."""
        if port:
            start_http_server(port, addr=addr, registry=self.registry)
            host = f"[{addr}]" if ":" in addr else addr
            logger.info("%s: metrics on http://%s:%d/metrics", self.role, host, port)

    # ------------------------------------------------------------ events

    def received(self, count: int) -> None:
        self.counts["received"] += count
        self._received.labels(self.role).inc(count)

    def stored(self, latency_seconds: float) -> None:
        self.counts["stored"] += 1
        self._stored.labels(self.role).inc()
        self._latency.labels(self.role).observe(max(latency_seconds, 0.0))

    def dead_lettered(self, reason: str) -> None:
        self.counts["dead_lettered"] += 1
        self.counts[f"dead_lettered:{reason}"] += 1
        self._dead_lettered.labels(self.role, reason).inc()

    def delayed(self) -> None:
        self.counts["delayed"] += 1
        self._delayed.labels(self.role).inc()

    def retried(self, kind: str) -> None:
        """A message that failed (`kind`: store, publish) and will be tried again."""
        self.counts["retried"] += 1
        self._errors.labels(self.role, kind).inc()

    def error(self, kind: str) -> None:
        """A failure that is no message's (a pull that failed)."""
        self._errors.labels(self.role, kind).inc()

    def published(self) -> None:
        self.counts["published"] += 1
        self._published.labels(self.role).inc()

    def lost(self, count: int = 1) -> None:
        self.counts["lost"] += count
        self._lost.labels(self.role).inc(count)

    # ------------------------------------------------------------ the stats line

    def log(self, keys: Sequence[str], *, final: bool = False, **state: object) -> None:
        """One line: the first key's count and rate since the last line, then the others.

        `state` (e.g. in_flight=3, failing=False) joins the figures; values that
        are numbers are also shown in the line.
        """
        now = time.monotonic()
        since, then = self._last_line
        first, *rest = keys
        rate = (self.counts[first] - then) / max(now - since, 1e-9)
        self._last_line = (now, self.counts[first])
        shown = [f"{first} {self.counts[first]} ({rate:.1f}/s)"]
        shown += [f"{key.replace('_', '-')} {self.counts[key]}" for key in rest]
        shown += [
            f"{key.replace('_', ' ')} {value}" for key, value in state.items() if type(value) is int
        ]
        logger.info(
            "%s: %s%s",
            self.role,
            "stopped; " if final else "",
            ", ".join(shown),
            extra={
                "stats": {
                    "role": self.role,
                    "rate": round(rate, 1),
                    "final": final,
                    **{key: self.counts[key] for key in keys},
                    **state,
                }
            },
        )
