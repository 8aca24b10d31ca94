"""The publish loop shared by both producers: paced, bounded, confirmed, retried.

Every publish is confirmed by its future. A failed publish is retried with
backoff; one that still fails after `max_attempts` is counted as lost and the
process exits non-zero, so nothing is ever dropped silently.
"""

from __future__ import annotations

import itertools
import logging
import queue
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from google.cloud import pubsub_v1

from ecom_pipeline.options import STATS_INTERVAL
from ecom_pipeline.shutdown import Shutdown
from ecom_pipeline.stats import PRODUCER_LINE, Stats

logger = logging.getLogger(__name__)

DRAIN_TIMEOUT = 120.0


@dataclass
class _Publish:
    key: int
    data: bytes
    attempt: int = 1
    message_id: str | None = None
    error: BaseException | None = None


def id_sequence(first: int, last: int, count: int | None) -> Iterator[int]:
    """first..last, cycling, `count` ids in all (None: forever)."""
    cycle = itertools.cycle(range(first, last + 1))
    return cycle if count is None else itertools.islice(cycle, count)


class Producer:
    """Publishes one message per id from `ids`, `interval` seconds apart."""

    def __init__(
        self,
        *,
        name: str,
        kind: str,
        publisher: pubsub_v1.PublisherClient,
        topic: str,
        make_message: Callable[[int], bytes],
        ids: Iterator[int],
        interval: float,
        shutdown: Shutdown,
        max_in_flight: int = 1000,
        max_attempts: int = 5,
        stats_interval: float = STATS_INTERVAL,
        stats: Stats | None = None,
    ) -> None:
        self.name = name
        self.stats = stats or Stats(name)
        self.kind = kind
        self.publisher = publisher
        self.topic = topic
        self.make_message = make_message
        self.ids = ids
        self.interval = interval
        self.shutdown = shutdown
        self.max_in_flight = max_in_flight
        self.max_attempts = max_attempts
        self.stats_interval = stats_interval
        self._in_flight = 0
        self._done: queue.SimpleQueue[_Publish] = queue.SimpleQueue()
        self._retries: list[tuple[float, _Publish]] = []
        self._log_each = logging.INFO if interval > 0 else logging.DEBUG

    def run(self) -> int:
        """Publish until the ids run out or a stop is requested; returns messages lost."""
        logger.info("%s: publishing to %s every %gs", self.name, self.topic, self.interval)
        started = time.monotonic()
        last_stats = started
        for sent, key in enumerate(self.ids):
            if self.interval > 0 and self.shutdown.wait(
                started + sent * self.interval - time.monotonic()
            ):
                break
            if self.shutdown.requested:
                break
            while self._in_flight >= self.max_in_flight:
                self._settle(block=True)
            self._submit(_Publish(key, self.make_message(key)))
            self._settle(block=False)
            if time.monotonic() - last_stats >= self.stats_interval:
                self.log_stats()
                last_stats = time.monotonic()
        self._drain()
        self.log_stats(final=True)
        return self.lost

    @property
    def lost(self) -> int:
        """Messages that failed for good."""
        return self.stats.counts["lost"]

    def _submit(self, publish: _Publish) -> None:
        self._in_flight += 1
        try:
            future = self.publisher.publish(self.topic, publish.data)
        except Exception as error:
            publish.error = error
            self._done.put(publish)
            return

        def done(f, publish=publish) -> None:
            try:
                publish.message_id = f.result()
                publish.error = None
            except BaseException as error:
                publish.error = error
            self._done.put(publish)

        future.add_done_callback(done)

    def _settle(self, block: bool, timeout: float = 1.0) -> None:
        """Record finished publishes and resubmit due retries."""
        now = time.monotonic()
        due = [p for when, p in self._retries if when <= now]
        self._retries = [(when, p) for when, p in self._retries if when > now]
        for publish in due:
            self._submit(publish)
        while True:
            try:
                publish = (
                    self._done.get(block=block, timeout=timeout)
                    if block
                    else self._done.get_nowait()
                )
            except queue.Empty:
                return
            block = False
            self._in_flight -= 1
            if publish.error is None:
                self.stats.published()
                logger.log(
                    self._log_each,
                    "%s: published %s %d as message %s",
                    self.name,
                    self.kind,
                    publish.key,
                    publish.message_id,
                )
            elif publish.attempt < self.max_attempts:
                self.stats.retried("publish")
                backoff = min(2.0 ** (publish.attempt - 1), 30.0)
                logger.warning(
                    "%s: publishing %s %d failed (attempt %d of %d), retrying in %.0fs: %s",
                    self.name,
                    self.kind,
                    publish.key,
                    publish.attempt,
                    self.max_attempts,
                    backoff,
                    publish.error,
                )
                publish.attempt += 1
                self._retries.append((time.monotonic() + backoff, publish))
            else:
                self.stats.lost()
                logger.error(
                    "%s: LOST %s %d after %d attempts: %s",
                    self.name,
                    self.kind,
                    publish.key,
                    publish.attempt,
                    publish.error,
                )

    def _drain(self) -> None:
        """Wait for every publish in flight and every pending retry."""
        deadline = time.monotonic() + DRAIN_TIMEOUT
        if self._in_flight or self._retries:
            logger.info(
                "%s: waiting for %d publishes in flight",
                self.name,
                self._in_flight + len(self._retries),
            )
        while (self._in_flight or self._retries) and time.monotonic() < deadline:
            self._settle(block=True, timeout=0.2)
        unconfirmed = self._in_flight + len(self._retries)
        if unconfirmed:
            self.stats.lost(unconfirmed)
            logger.error(
                "%s: %d publishes unconfirmed after %.0fs", self.name, unconfirmed, DRAIN_TIMEOUT
            )

    def log_stats(self, final: bool = False) -> None:
        self.stats.log(PRODUCER_LINE, final=final, in_flight=self._in_flight)
