"""What each role counts, counted once: the stats line and the Prometheus metrics read one tally.

A role calls `received`, `stored`, `published`... once per event; `log` writes the
periodic stats line (figures also under `extra["stats"]` for JSON logs) and the
same events feed prometheus_client's counters (`--metrics-port`). A consumer also
reports each pull (`pulled`: the age of its oldest message, how far behind it is),
each confirmed ack (`acked`: how long its messages were held) and outages (`failing`).
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import time
from collections import Counter as Tally
from collections.abc import Iterable, Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

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
        self._pull_to_ack = Histogram(
            "pipeline_pull_to_ack_seconds",
            "From a message's pull to Pub/Sub's confirmation of its ack (row or dead letter)",
            ["role"], buckets=LATENCY_BUCKETS, registry=self.registry,
        )  # fmt: skip
        self._oldest_pulled_age = Gauge(
            "pipeline_oldest_pulled_message_age_seconds",
            "Seconds since the publish of the oldest message of the latest pull (0: it brought "
            "none): how far behind the consumer is",
            ["role"], registry=self.registry,
        )  # fmt: skip
        self._failing = Gauge(
            "pipeline_failing",
            "1 while the role backs off from a failing Cassandra or Pub/Sub, else 0",
            ["role"], registry=self.registry,
        )  # fmt: skip

    # The series a consumer touches for every message, looked up at first use and kept
    # (`labels()` takes a lock and checks the labels on every call); a role that never
    # stores shows no stored series.
    @functools.cached_property
    def _received_series(self) -> Counter:
        return self._received.labels(self.role)

    @functools.cached_property
    def _stored_series(self) -> Counter:
        return self._stored.labels(self.role)

    @functools.cached_property
    def _latency_series(self) -> Histogram:
        return self._latency.labels(self.role)

    def serve(self, port: int | None, addr: str = METRICS_ADDR) -> None:
        """Serve the metrics on http://addr:port/metrics (not at all without a port)."""
        if port:
            start_http_server(port, addr=addr, registry=self.registry)
            host = f"[{addr}]" if ":" in addr else addr
            logger.info("%s: metrics on http://%s:%d/metrics", self.role, host, port)

    # ------------------------------------------------------------ events

    def received(self, count: int) -> None:
        self.counts["received"] += count
        self._received_series.inc(count)

    def stored(self, latency_seconds: float) -> None:
        self.counts["stored"] += 1
        self._stored_series.inc()
        self._latency_series.observe(max(latency_seconds, 0.0))

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

    def pulled(self, publish_times: Iterable[dt.datetime]) -> None:
        """A pull returned these messages (none: it was empty)."""
        oldest = min(publish_times, default=None)
        age = 0.0 if oldest is None else (dt.datetime.now(dt.UTC) - oldest).total_seconds()
        self._oldest_pulled_age.labels(self.role).set(max(age, 0.0))

    def acked(self, pulled_at: Iterable[float]) -> None:
        """Pub/Sub confirmed the acks of messages pulled at these `time.monotonic()`s."""
        now = time.monotonic()
        histogram = self._pull_to_ack.labels(self.role)
        for moment in pulled_at:
            histogram.observe(max(now - moment, 0.0))

    def failing(self, failing: bool) -> None:
        """An outage began (True) or ended (False)."""
        self._failing.labels(self.role).set(1 if failing else 0)

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
