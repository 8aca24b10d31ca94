"""The pull loop shared by both consumers.

Batches are pulled synchronously; a handler decides per message what happens:
stored (ack), dead-lettered (publish to the DLQ, wait for the confirmation, then
ack), delayed (extend the ack deadline so Pub/Sub redelivers it later) or retried
after a storage error (the same, with backoff). Nothing is acked before its
effect is durable, so a crash at any point only causes redeliveries.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent import futures
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from google.api_core import exceptions as google_errors
from google.cloud import pubsub_v1

from ecom_pipeline.metrics import Metrics
from ecom_pipeline.settings import Settings
from ecom_pipeline.shutdown import Shutdown

logger = logging.getLogger(__name__)

MAX_ACK_DEADLINE = 600
ACK_CHUNK = 1000
MAX_ATTRIBUTE_BYTES = 1024
DEAD_LETTER_TIMEOUT = 30.0
SETTLE_TIMEOUT = 10.0
STAT_KEYS = ("received", "stored", "dead_lettered", "delayed", "retried")
STORE_RETRY_SECONDS = 10.0
MAX_BACKOFF = 15.0


@dataclass(frozen=True)
class Delivery:
    """One received message, as the handlers see it."""

    ack_id: str
    message_id: str
    data: bytes
    attributes: dict[str, str]
    publish_time: dt.datetime
    delivery_attempt: int

    def age(self, now: dt.datetime | None = None) -> float:
        """Seconds since the message was first published."""
        return ((now or dt.datetime.now(dt.UTC)) - self.publish_time).total_seconds()


@dataclass(frozen=True)
class Stored:
    what: str = ""


@dataclass(frozen=True)
class DeadLetter:
    """Publish to the dead-letter topic, then ack; `body` replaces the original bytes."""

    reason: str
    error: str
    attributes: dict[str, str] = field(default_factory=dict)
    body: bytes | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Delay:
    """Not processable yet (a payment ahead of its order): redeliver after `seconds`."""

    seconds: float
    why: str


@dataclass(frozen=True)
class Retry:
    """The store failed: redeliver after `seconds`; never a dead letter."""

    seconds: float
    error: str


Outcome = Stored | DeadLetter | Delay | Retry
Handler = Callable[[Sequence[Delivery]], list[Outcome]]


class SubscriptionGone(RuntimeError):
    """The subscription does not exist: a set-up problem, not a transient one."""


class Consumer:
    """Pulls batches from one subscription until asked to stop."""

    def __init__(
        self,
        *,
        name: str,
        settings: Settings,
        subscription: str,
        dead_letter_topic: str,
        handler: Handler,
        subscriber: pubsub_v1.SubscriberClient,
        publisher: pubsub_v1.PublisherClient,
        shutdown: Shutdown,
        batch_size: int = 1000,
        pulls: int = 4,
        pull_timeout: float = 3.0,
        stats_interval: float = 5.0,
        health_check: Callable[[], object] | None = None,
        naive: bool = False,
        metrics: Metrics | None = None,
    ) -> None:
        self.name = name
        self.metrics = metrics or Metrics(name)
        self.health_check = health_check
        self.naive = naive
        self._settler: ThreadPoolExecutor | None = None
        self._settling: futures.Future | None = None
        self.handler = handler
        self.subscriber = subscriber
        self.publisher = publisher
        self.shutdown = shutdown
        self.batch_size = batch_size
        self.pulls = pulls
        self._in_flight: set[futures.Future] = set()
        self.pull_timeout = pull_timeout
        self.stats_interval = stats_interval
        self.subscription_name = subscription
        self.subscription = subscriber.subscription_path(settings.project, subscription)
        self.dead_letter_topic = publisher.topic_path(settings.project, dead_letter_topic)
        self.stats: Counter[str] = Counter()
        self._failing_since: float | None = None
        self._backoff = 0.0
        self._last_stats = (time.monotonic(), 0)

    # ------------------------------------------------------------ the loop

    def run(self) -> Counter[str]:
        """Process batches until a stop is requested; returns the counts.

        Pipelined: `pulls` pull requests stay in flight while a batch is stored,
        and all that have returned by then make the next batch (a pull brings what
        the server has at hand, the emulator at most 100 messages). Acks go out in
        the background. A stop finishes the batch in hand and releases what was
        pulled ahead, so another consumer gets it at once.
        """
        logger.info("%s: pulling from %s", self.name, self.subscription)
        first_pull = True
        puller = ThreadPoolExecutor(max_workers=self.pulls, thread_name_prefix="pull")
        self._settler = ThreadPoolExecutor(max_workers=1, thread_name_prefix="settle")
        try:
            while not self.shutdown.requested:
                # One pull at a time for the baseline, and while something is failing.
                wanted = 1 if self.naive or self._failing_since is not None else self.pulls
                while len(self._in_flight) < wanted:
                    self._in_flight.add(puller.submit(self.pull))
                done, self._in_flight = futures.wait(
                    self._in_flight, return_when=futures.FIRST_COMPLETED
                )
                deliveries, failure = _returned(done)
                if failure is not None and not deliveries:
                    if isinstance(failure, SubscriptionGone):
                        if first_pull:
                            raise failure
                        self._trouble(
                            f"subscription {self.subscription} is gone; run ./setup_pubsub.sh"
                        )
                    else:
                        self.metrics.error("pubsub")
                        self._trouble(
                            "cannot pull from Pub/Sub: "
                            f"{getattr(failure, 'message', None) or failure}"
                        )
                    continue
                first_pull = False
                if deliveries:
                    self.process(deliveries)
                else:
                    self._recovered()
                self._maybe_log_stats()
        finally:
            self._release_pulled_ahead()
            puller.shutdown(wait=True)
            self._settler.shutdown(wait=True)
            self._settler = self._settling = None
        self.log_stats(final=True)
        return self.stats

    def _release_pulled_ahead(self, seconds: float = 0) -> None:
        """Give what the pulls in flight bring back to Pub/Sub, redelivered after `seconds`."""
        done, _ = futures.wait(self._in_flight, timeout=self.pull_timeout + 5)
        self._in_flight = set()
        ack_ids = []
        for pulled in done:
            try:
                ack_ids += [delivery.ack_id for delivery in pulled.result()]
            except Exception:  # nothing pulled, nothing to give back
                continue
        if ack_ids:
            self._send_settlement([], {int(seconds): ack_ids})

    def pull(self) -> list[Delivery]:
        """One batch (possibly empty after `pull_timeout`)."""
        try:
            response = self.subscriber.pull(
                subscription=self.subscription,
                max_messages=self.batch_size,
                timeout=self.pull_timeout,
                retry=None,
            )
        except google_errors.DeadlineExceeded:
            return []
        except google_errors.NotFound as error:
            raise SubscriptionGone(
                f"subscription {self.subscription} does not exist: run ./setup_pubsub.sh "
                "(or check GOOGLE_CLOUD_PROJECT and PUBSUB_EMULATOR_HOST)"
            ) from error
        # The raw protobuf: proto-plus wrappers cost ~80 µs a message at these rates.
        return [_delivery(received) for received in response._pb.received_messages]

    def process(self, deliveries: Sequence[Delivery]) -> None:
        """Handle one batch and settle every message of it with Pub/Sub."""
        self.stats["received"] += len(deliveries)
        self.metrics.received(len(deliveries))
        outcomes = self._handle(deliveries)
        outcomes = self._publish_dead_letters(deliveries, outcomes)
        to_ack: list[str] = []
        deadlines: dict[int, list[str]] = {}
        now = time.time()
        for delivery, outcome in zip(deliveries, outcomes, strict=True):
            if isinstance(outcome, Stored):
                to_ack.append(delivery.ack_id)
                self.stats["stored"] += 1
                self.metrics.stored(now - delivery.publish_time.timestamp())
            elif isinstance(outcome, DeadLetter):
                to_ack.append(delivery.ack_id)
                self.stats["dead_lettered"] += 1
                self.stats[f"dead_lettered:{outcome.reason}"] += 1
                self.metrics.dead_lettered(outcome.reason)
            elif isinstance(outcome, Delay):
                deadlines.setdefault(_deadline(outcome.seconds), []).append(delivery.ack_id)
                self.stats["delayed"] += 1
                self.metrics.delayed()
            else:
                deadlines.setdefault(_deadline(outcome.seconds), []).append(delivery.ack_id)
                self.stats["retried"] += 1
                self.metrics.error("store")
        if self.naive:
            for ack_id in to_ack:  # the baseline: one acknowledge request per message
                self._send_settlement([ack_id], {})
            self._send_settlement([], deadlines)
        elif self._settler is not None:
            # One settlement in flight at a time: acks never fall behind the stores.
            if self._settling is not None:
                self._settling.result()
            self._settling = self._settler.submit(self._send_settlement, to_ack, deadlines)
        else:
            self._send_settlement(to_ack, deadlines)
        self._log_batch(deliveries, outcomes)
        retries = [o for o in outcomes if isinstance(o, Retry)]
        if retries:
            self._trouble(retries[0].error)
            # Rather than hold their leases through the outage.
            self._release_pulled_ahead(seconds=STORE_RETRY_SECONDS)
            self._wait_until_healthy()
        else:
            self._recovered()

    def _handle(self, deliveries: Sequence[Delivery]) -> list[Outcome]:
        """The handler's outcomes; if it raises, one message at a time, so that a
        poison message is dead-lettered alone instead of blocking its batch."""
        try:
            return self.handler(deliveries)
        except Exception:
            logger.exception("%s: the handler failed on a batch of %d", self.name, len(deliveries))
        outcomes: list[Outcome] = []
        for delivery in deliveries:
            try:
                outcomes += self.handler([delivery])
            except Exception as error:
                outcomes.append(
                    DeadLetter("processing_error", f"{type(error).__name__}: {error}"[:500])
                )
        return outcomes

    # ------------------------------------------------------------ dead letters

    def _publish_dead_letters(
        self, deliveries: Sequence[Delivery], outcomes: list[Outcome]
    ) -> list[Outcome]:
        """Publish every DeadLetter and wait; an unconfirmed one becomes a Retry."""
        pending: dict[int, futures.Future] = {}
        for index, (delivery, outcome) in enumerate(zip(deliveries, outcomes, strict=True)):
            if isinstance(outcome, DeadLetter):
                pending[index] = self.publisher.publish(
                    self.dead_letter_topic,
                    delivery.data if outcome.body is None else outcome.body,
                    **self._dead_letter_attributes(delivery, outcome),
                )
                if self.naive:  # the baseline: wait for each publish before the next
                    futures.wait([pending[index]], timeout=DEAD_LETTER_TIMEOUT)
        if not pending:
            return outcomes
        futures.wait(pending.values(), timeout=DEAD_LETTER_TIMEOUT)
        settled = list(outcomes)
        for index, future in pending.items():
            delivery = deliveries[index]
            outcome = outcomes[index]
            assert isinstance(outcome, DeadLetter)
            try:
                dead_letter_id = future.result(timeout=0)
            except Exception as error:
                settled[index] = Retry(
                    5.0, f"cannot publish to {self.dead_letter_topic}: {error or type(error)}"
                )
                continue
            logger.warning(
                "%s: dead-lettered message %s%s as %s: %s (%s)",
                self.name,
                delivery.message_id,
                _order_suffix(outcome),
                dead_letter_id,
                outcome.reason,
                outcome.error,
            )
        return settled

    def _dead_letter_attributes(self, delivery: Delivery, outcome: DeadLetter) -> dict[str, str]:
        attributes = {
            "reason": outcome.reason,
            "error": outcome.error,
            "source_subscription": self.subscription_name,
            "original_message_id": delivery.message_id,
            "original_publish_time": delivery.publish_time.isoformat(),
            "delivery_attempt": str(delivery.delivery_attempt),
            **outcome.attributes,
        }
        if "redriven_from" in delivery.attributes:  # a payment re-driven before, failing again
            attributes["redriven_from"] = delivery.attributes["redriven_from"]
        return {key: _clip(value) for key, value in attributes.items()}

    # ------------------------------------------------------------ settling

    def _send_settlement(self, to_ack: list[str], deadlines: dict[int, list[str]]) -> None:
        """Ack and extend deadlines; a failure here only means a later redelivery."""
        try:
            for chunk in _chunks(to_ack):
                self.subscriber.acknowledge(
                    subscription=self.subscription,
                    ack_ids=chunk,
                    retry=None,
                    timeout=SETTLE_TIMEOUT,
                )
            for seconds, ack_ids in deadlines.items():
                for chunk in _chunks(ack_ids):
                    self.subscriber.modify_ack_deadline(
                        subscription=self.subscription,
                        ack_ids=chunk,
                        ack_deadline_seconds=seconds,
                        retry=None,
                        timeout=SETTLE_TIMEOUT,
                    )
        except Exception as error:  # any failure only means a later redelivery
            logger.warning(
                "%s: could not settle a batch with Pub/Sub (%s); it will be redelivered",
                self.name,
                getattr(error, "message", None) or error,
            )

    def _trouble(self, error: str) -> None:
        """Log a failure once per outage and back off before going on."""
        if self._failing_since is None:
            self._failing_since = time.monotonic()
            logger.error("%s: %s; backing off and retrying until it works", self.name, error)
        else:
            logger.debug("%s: still failing: %s", self.name, error)
        self._backoff = min(max(self._backoff * 2, 0.5), MAX_BACKOFF)
        self.shutdown.wait(self._backoff)

    def _wait_until_healthy(self) -> None:
        """After a store failure, probe the store instead of pulling more messages.

        Pulling during an outage would only burn delivery attempts (and, with a
        dead-letter policy, send good messages to the DLQ).
        """
        if self.health_check is None:
            return
        while not self.shutdown.requested:
            try:
                self.health_check()
                return
            except Exception as error:
                self._trouble(f"store still unavailable: {error}")

    def _recovered(self) -> None:
        if self._failing_since is not None:
            logger.warning(
                "%s: working again after %.0fs of errors",
                self.name,
                time.monotonic() - self._failing_since,
            )
            self._failing_since = None
            self._backoff = 0.0

    # ------------------------------------------------------------ logging

    def _log_batch(self, deliveries: Sequence[Delivery], outcomes: list[Outcome]) -> None:
        stored = [o.what for o in outcomes if isinstance(o, Stored)]
        delayed = [o for o in outcomes if isinstance(o, Delay)]
        if stored:
            shown = ", ".join(stored[:10]) + (
                f" and {len(stored) - 10} more" if len(stored) > 10 else ""
            )
            logger.info("%s: stored %d: %s", self.name, len(stored), shown)
        if delayed:
            logger.info("%s: delayed %d (%s)", self.name, len(delayed), delayed[0].why)
        for delivery, outcome in zip(deliveries, outcomes, strict=True):
            logger.debug("%s: message %s -> %s", self.name, delivery.message_id, outcome)

    def _maybe_log_stats(self) -> None:
        if time.monotonic() - self._last_stats[0] >= self.stats_interval:
            self.log_stats()

    def log_stats(self, final: bool = False) -> None:
        now = time.monotonic()
        since, received_then = self._last_stats
        rate = (self.stats["received"] - received_then) / max(now - since, 1e-9)
        self._last_stats = (now, self.stats["received"])
        logger.info(
            "%s: %sreceived %d (%.1f/s), stored %d, dead-lettered %d, delayed %d, retried %d",
            self.name,
            "stopped; " if final else "",
            self.stats["received"],
            rate,
            self.stats["stored"],
            self.stats["dead_lettered"],
            self.stats["delayed"],
            self.stats["retried"],
            extra={
                "stats": {
                    "role": self.name,
                    "rate": round(rate, 1),
                    "failing": self._failing_since is not None,
                    "final": final,
                    **{key: self.stats[key] for key in STAT_KEYS},
                }
            },
        )


def _returned(done: Iterable[futures.Future]) -> tuple[list[Delivery], Exception | None]:
    """The deliveries of the pulls that returned, and a pull's failure if any failed."""
    deliveries: list[Delivery] = []
    failure = None
    for pulled in done:
        try:
            deliveries += pulled.result()
        except (SubscriptionGone, google_errors.GoogleAPIError) as error:
            failure = error
    return deliveries, failure


def _delivery(received) -> Delivery:
    message = received.message
    stamp = message.publish_time
    return Delivery(
        ack_id=received.ack_id,
        message_id=message.message_id,
        data=message.data,
        attributes=dict(message.attributes),
        publish_time=dt.datetime.fromtimestamp(stamp.seconds + stamp.nanos / 1e9, dt.UTC),
        delivery_attempt=received.delivery_attempt,
    )


def _clip(value: str) -> str:
    """Pub/Sub allows 1024 bytes per attribute value."""
    encoded = value.encode("utf-8", errors="replace")
    if len(encoded) <= MAX_ATTRIBUTE_BYTES:
        return value
    return encoded[: MAX_ATTRIBUTE_BYTES - 3].decode("utf-8", errors="ignore") + "..."


def _deadline(seconds: float) -> int:
    """Seconds to the next delivery: at least 1 (0 would mean "redeliver now")."""
    return int(min(max(round(seconds), 1), MAX_ACK_DEADLINE))


def _chunks(items: list[str]) -> list[list[str]]:
    return [items[i : i + ACK_CHUNK] for i in range(0, len(items), ACK_CHUNK)]


def _order_suffix(outcome: DeadLetter) -> str:
    order_id = outcome.attributes.get("order_id")
    return f" (order {order_id})" if order_id else ""
