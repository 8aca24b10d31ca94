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

from google.api_core import exceptions as google_errors
from google.cloud import pubsub_v1

from ecom_pipeline import card_numbers, pubsub
from ecom_pipeline.options import CONSUMER, STATS_INTERVAL
from ecom_pipeline.outcomes import (
    STORE_RETRY_SECONDS,
    DeadLetter,
    Delay,
    Delivery,
    Handler,
    Outcome,
    Reason,
    Retry,
    Stored,
)
from ecom_pipeline.pubsub import SubscriptionGone
from ecom_pipeline.settings import Settings, Stream
from ecom_pipeline.shutdown import Shutdown
from ecom_pipeline.stats import CONSUMER_LINE, Stats

logger = logging.getLogger(__name__)

MAX_ATTRIBUTE_BYTES = 1024
# Pub/Sub takes messages of up to 10 MB, attributes included; a dead letter keeps
# at most this much of its body (a message over 64 KiB is invalid anyway).
MAX_DEAD_LETTER_BYTES = 1024 * 1024
DEAD_LETTER_TIMEOUT = 30.0
MAX_BACKOFF = 15.0
# The subscriptions' ack deadline (setup_pubsub.sh): what a crashed consumer held is
# redelivered this soon; a live one extends it for what it still holds.
LEASE_SECONDS = 10


class Consumer:
    """Pulls batches from one subscription until asked to stop."""

    def __init__(
        self,
        *,
        name: str,
        settings: Settings,
        stream: Stream,
        handler: Handler,
        subscriber: pubsub_v1.SubscriberClient,
        publisher: pubsub_v1.PublisherClient,
        shutdown: Shutdown,
        batch_size: int = CONSUMER.batch_size,
        pulls: int = CONSUMER.pulls,
        pull_timeout: float = 3.0,
        stats_interval: float = STATS_INTERVAL,
        health_check: Callable[[], object] | None = None,
        stats: Stats | None = None,
        lease_seconds: int = LEASE_SECONDS,
    ) -> None:
        self.name = name
        self.stats = stats or Stats(name)
        self.health_check = health_check
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
        self.subscription_name = stream.subscription
        self.subscription = subscriber.subscription_path(settings.project, stream.subscription)
        self.dead_letter_topic = publisher.topic_path(settings.project, stream.dlq_topic)
        self.leases = pubsub.Leases(subscriber, self.subscription, lease_seconds)
        # When the outage in progress began: time.monotonic() and the wall clock.
        self._failing_since: tuple[float, dt.datetime] | None = None
        self._backoff = 0.0
        self._last_stats = time.monotonic()

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
        self.stats.failing(False)
        first_pull = True
        puller = ThreadPoolExecutor(max_workers=self.pulls, thread_name_prefix="pull")
        self._settler = ThreadPoolExecutor(max_workers=1, thread_name_prefix="settle")
        self.leases.start()
        try:
            while not self.shutdown.requested:
                # One pull at a time while something is failing.
                wanted = 1 if self._failing_since is not None else self.pulls
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
                        self._trouble(str(failure))
                    else:
                        self.stats.error("pubsub")
                        self._trouble(
                            "cannot pull from Pub/Sub: "
                            f"{getattr(failure, 'message', None) or failure}"
                        )
                    continue
                first_pull = False
                if deliveries:
                    self.process(deliveries)
                else:
                    self.stats.pulled(())
                    self._recovered()
                self._maybe_log_stats()
        finally:
            self._release_pulled_ahead()
            puller.shutdown(wait=True)
            self._settler.shutdown(wait=True)
            self._settler = self._settling = None
            self.leases.stop()
        self.log_stats(final=True)
        return self.stats.counts

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
        """One batch (possibly empty after `pull_timeout`), held until it is settled."""
        deliveries = pubsub.pull(
            self.subscriber, self.subscription, self.batch_size, self.pull_timeout
        )
        self.leases.hold([delivery.ack_id for delivery in deliveries])
        return deliveries

    def process(self, deliveries: Sequence[Delivery]) -> None:
        """Handle one batch and settle every message of it with Pub/Sub."""
        self.stats.received(len(deliveries))
        self.stats.pulled(delivery.publish_time for delivery in deliveries)
        outcomes = self._handle(deliveries)
        outcomes = self._publish_dead_letters(deliveries, outcomes)
        to_ack: list[str] = []
        pulled_at: list[float] = []  # of the messages to ack
        deadlines: dict[int, list[str]] = {}
        now = time.time()
        for delivery, outcome in zip(deliveries, outcomes, strict=True):
            if isinstance(outcome, Stored):
                to_ack.append(delivery.ack_id)
                pulled_at.append(delivery.pulled_at)
                self.stats.stored(now - delivery.publish_time.timestamp())
            elif isinstance(outcome, DeadLetter):
                to_ack.append(delivery.ack_id)
                pulled_at.append(delivery.pulled_at)
                self.stats.dead_lettered(outcome.reason)
            elif isinstance(outcome, Delay):
                deadlines.setdefault(pubsub.deadline_seconds(outcome.seconds), []).append(
                    delivery.ack_id
                )
                self.stats.delayed()
            else:
                deadlines.setdefault(pubsub.deadline_seconds(outcome.seconds), []).append(
                    delivery.ack_id
                )
                self.stats.retried("store")
        if self._settler is not None:
            # One settlement in flight at a time: acks never fall behind the stores.
            if self._settling is not None:
                self._settling.result()
            self._settling = self._settler.submit(
                self._send_settlement, to_ack, deadlines, pulled_at
            )
        else:
            self._send_settlement(to_ack, deadlines, pulled_at)
        self._log_batch(deliveries, outcomes)
        retries = [o for o in outcomes if isinstance(o, Retry)]
        if retries:
            self._trouble(
                f"store outage: {retries[0].error}; holding no message and pulling none "
                "until a write and a read succeed"
            )
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
                    DeadLetter(Reason.PROCESSING_ERROR, f"{type(error).__name__}: {error}"[:500])
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
                body, attributes = dead_letter_message(delivery, outcome, self.subscription_name)
                try:
                    pending[index] = self.publisher.publish(
                        self.dead_letter_topic, body, **attributes
                    )
                except Exception as error:  # refused before it was sent: one letter, not the loop
                    pending[index] = futures.Future()
                    pending[index].set_exception(error)
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
                why = str(error) or type(error).__name__  # a timeout has no words of its own
                settled[index] = Retry(5.0, f"cannot publish to {self.dead_letter_topic}: {why}")
                continue
            logger.warning(
                "%s: dead-lettered message %s%s as %s: %s (%s)",
                self.name,
                delivery.message_id,
                _order_suffix(outcome),
                dead_letter_id,
                outcome.reason,
                card_numbers.mask_text(outcome.error),
            )
        return settled

    # ------------------------------------------------------------ settling

    def _send_settlement(
        self, to_ack: list[str], deadlines: dict[int, list[str]], pulled_at: Sequence[float] = ()
    ) -> None:
        """Ack and extend deadlines; a failure here only means a later redelivery.

        `pulled_at`: when the messages of `to_ack` were pulled, for the pull-to-ack time.
        """
        self.leases.release(to_ack + [ack_id for ids in deadlines.values() for ack_id in ids])
        try:
            pubsub.acknowledge(self.subscriber, self.subscription, to_ack)
            self.stats.acked(pulled_at)
            for seconds, ack_ids in deadlines.items():
                pubsub.modify_deadline(self.subscriber, self.subscription, ack_ids, seconds)
        except Exception as error:  # any failure only means a later redelivery
            logger.warning(
                "%s: could not settle a batch with Pub/Sub (%s); it will be redelivered",
                self.name,
                getattr(error, "message", None) or error,
            )

    def _trouble(self, error: str) -> None:
        """Log a failure once per outage and back off before going on."""
        if self._failing_since is None:
            self._failing_since = (time.monotonic(), dt.datetime.now(dt.UTC))
            self.stats.failing(True)
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
            began, began_at = self._failing_since
            logger.warning(
                "%s: working again: the outage that started at %s lasted %.0fs",
                self.name,
                f"{began_at:%H:%M:%S} UTC",
                time.monotonic() - began,
            )
            self._failing_since = None
            self.stats.failing(False)
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
            logger.debug(
                "%s: message %s (delivery %d) -> %s",
                self.name,
                delivery.message_id,
                delivery.delivery_attempt,
                outcome,
            )

    def _maybe_log_stats(self) -> None:
        if time.monotonic() - self._last_stats >= self.stats_interval:
            self.log_stats()

    def log_stats(self, final: bool = False) -> None:
        self._last_stats = time.monotonic()
        self.stats.log(CONSUMER_LINE, final=final, failing=self._failing_since is not None)


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


def dead_letter_message(
    delivery: Delivery, outcome: DeadLetter, source_subscription: str
) -> tuple[bytes, dict[str, str]]:
    """The body and attributes a dead letter is published with.

    A last look before anything leaves: a body that still holds a card number
    (a handler's bug, say) is replaced, every attribute that comes from the message
    is masked, every attribute is clipped to Pub/Sub's 1024 bytes, and a body over
    MAX_DEAD_LETTER_BYTES is cut, so that no dead letter can go over Pub/Sub's 10 MB
    limit and stop the loop.
    """
    body = delivery.data if outcome.body is None else outcome.body
    # What Pub/Sub says about the message, not what it says: kept as is. A real message id has
    # 16 or 17 digits and a publish time's microseconds make a chain of 13 or more, each
    # passing the Luhn check one time in ten.
    pubsub_words = {
        "source_subscription": source_subscription,
        "original_message_id": delivery.message_id,
        "original_publish_time": delivery.publish_time.isoformat(),
        "delivery_attempt": str(delivery.delivery_attempt),
    }
    attributes = {
        "reason": outcome.reason,
        "error": outcome.error,
        **pubsub_words,
        **outcome.attributes,
    }
    if "redriven_from" in delivery.attributes:  # a payment re-driven before, failing again
        attributes["redriven_from"] = delivery.attributes["redriven_from"]
    if len(body) > MAX_DEAD_LETTER_BYTES:
        attributes["body_truncated"] = f"{len(body)} bytes, the first {MAX_DEAD_LETTER_BYTES} kept"
        body = body[:MAX_DEAD_LETTER_BYTES]
    if card_numbers.body_holds_card(body):
        attributes["body_replaced"] = "it held what looks like a full card number"
        body = card_numbers.REPLACED_BODY
    return body, {
        key: _clip(value if pubsub_words.get(key) == value else card_numbers.mask_text(value))
        for key, value in attributes.items()
    }


def _clip(value: str) -> str:
    """Pub/Sub allows 1024 bytes per attribute value."""
    encoded = value.encode("utf-8", errors="replace")
    if len(encoded) <= MAX_ATTRIBUTE_BYTES:
        return value
    return encoded[: MAX_ATTRIBUTE_BYTES - 3].decode("utf-8", errors="ignore") + "..."


def _order_suffix(outcome: DeadLetter) -> str:
    order_id = outcome.attributes.get("order_id")
    return f" (order {order_id})" if order_id else ""
