"""Answers for the people who run the pipeline: status of the table and the DLQs, and re-drive.

    python -m ecom_pipeline status            # counts, oldest unpaid order, DLQs by reason
    python -m ecom_pipeline redrive --dry-run # what a re-drive would republish
    python -m ecom_pipeline redrive           # republish dead-lettered payments whose order exists

Both work against the emulator and real GCP alike (same settings as the roles).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections import Counter
from dataclasses import dataclass, field

from google.cloud import pubsub_v1

from ecom_pipeline import pubsub
from ecom_pipeline.cassandra_session import CassandraUnavailable
from ecom_pipeline.fact_store import FactStore
from ecom_pipeline.messages import InvalidMessage, parse_payment
from ecom_pipeline.outcomes import REDRIVABLE, Delivery, Reason
from ecom_pipeline.settings import Settings, Stream

logger = logging.getLogger(__name__)

PULL_TIMEOUT = 5.0
PUBLISH_TIMEOUT = 30.0
DRAINED_AFTER_QUIET_PULLS = 3
PEEK_LEASE = 120  # seconds: a peek of the largest --limit takes well under this
REDRIVE_LEASE = 45  # seconds, > PUBLISH_TIMEOUT: the lease of a batch being re-driven
FORWARDED_MARK = "CloudPubSubDeadLetterSourceDeliveryCount"


# ---------------------------------------------------------------- status


@dataclass
class TableStatus:
    orders: int = 0
    paid: int = 0
    awaiting_payment: int = 0
    oldest_awaiting: tuple[int, dt.datetime] | None = None  # order id, when written


@dataclass
class DeadLetterStatus:
    subscription: str
    count: int = 0
    complete: bool = True  # False when the peek stopped at its limit
    reasons: Counter[str] = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)


def table_status(store: FactStore) -> TableStatus:
    """One paged scan of the fact table."""
    status = TableStatus()
    for row in store.scan():
        if row.item is None:
            continue
        status.orders += 1
        if row.payment_id is not None:
            status.paid += 1
            continue
        status.awaiting_payment += 1
        when = dt.datetime.fromtimestamp(row.order_written / 1e6, dt.UTC)
        # Rows written in one batch share a time: the lower order id goes first.
        if status.oldest_awaiting is None or (when, row.order_id) < status.oldest_awaiting[::-1]:
            status.oldest_awaiting = (row.order_id, when)
    return status


def peek(
    subscriber: pubsub_v1.SubscriberClient, subscription: str, limit: int
) -> tuple[list[Delivery], bool]:
    """Up to `limit` messages of a subscription, then released untouched.

    Pulled messages stay leased while the peek goes on, so no message is counted
    twice; at the end every one is released (ack deadline 0), nothing is acked.
    """
    messages: list[Delivery] = []
    complete = True
    try:
        while True:
            if len(messages) >= limit:
                complete = False
                break
            received = pubsub.pull(
                subscriber, subscription, min(pubsub.ACK_CHUNK, limit - len(messages)), PULL_TIMEOUT
            )
            if not received:
                break
            # Held for the whole peek, so that none comes back and is counted twice.
            pubsub.modify_deadline(
                subscriber, subscription, [r.ack_id for r in received], PEEK_LEASE
            )
            messages += received
    finally:
        release(subscriber, subscription, [message.ack_id for message in messages])
    return messages, complete


def release(subscriber: pubsub_v1.SubscriberClient, subscription: str, ack_ids: list[str]) -> None:
    """Give messages back untouched: redeliverable at once, nothing acked."""
    pubsub.modify_deadline(subscriber, subscription, ack_ids, 0)


def dead_letter_status(
    subscriber: pubsub_v1.SubscriberClient, settings: Settings, stream: Stream, limit: int
) -> DeadLetterStatus:
    name = stream.dlq_subscription
    path = subscriber.subscription_path(settings.project, name)
    messages, complete = peek(subscriber, path, limit)
    status = DeadLetterStatus(name, count=len(messages), complete=complete)
    for message in messages:
        attributes = message.attributes
        reason = dead_letter_reason(attributes)
        status.reasons[reason] += 1
        if len(status.examples) < 3:
            status.examples.append(f"{reason}: {attributes.get('error', '')}"[:160])
    return status


def print_status(table: TableStatus, dead_letters: list[DeadLetterStatus]) -> None:
    print(f"orders stored:           {table.orders}")
    print(f"orders paid:             {table.paid}")
    oldest = ""
    if table.oldest_awaiting:
        order_id, when = table.oldest_awaiting
        oldest = f"  (oldest: order {order_id}, published {when:%Y-%m-%d %H:%M:%S} UTC)"
    print(f"orders awaiting payment: {table.awaiting_payment}{oldest}")
    for status in dead_letters:
        more = "" if status.complete else "+ (peek limit reached)"
        print(f"\n{status.subscription}: {status.count}{more} messages")
        for reason, count in status.reasons.most_common():
            print(f"  {count:>7}  {reason}")
        for example in status.examples:
            print(f"     e.g. {example}")


# ---------------------------------------------------------------- re-drive


@dataclass
class RedriveReport:
    examined: int = 0
    republished: int = 0
    left: Counter[str] = field(default_factory=Counter)


def redrive(
    settings: Settings,
    subscriber: pubsub_v1.SubscriberClient,
    publisher: pubsub_v1.PublisherClient,
    store: FactStore,
    *,
    everything: bool = False,
    dry_run: bool = False,
    limit: int | None = None,
    batch_size: int = 500,
    should_stop=lambda: False,
) -> RedriveReport:
    """Republish dead-lettered payments to the payments topic, then ack them.

    Only payments dead-lettered for a missing order (or forwarded by Pub/Sub's own
    policy) are candidates: an invalid one would only come back. A dead letter is
    acked only after its republish is confirmed, so an interrupted re-drive loses
    nothing; at worst a payment is republished twice, which the payment consumer
    handles as any redelivery. Dead letters newer than the run are left alone, so
    a payment that fails again cannot loop. What stays is released at the end.
    """
    subscription = subscriber.subscription_path(
        settings.project, settings.payments.dlq_subscription
    )
    topic = publisher.topic_path(settings.project, settings.payments.topic)
    started = time.time()
    report = RedriveReport()
    seen: set[str] = set()
    kept: list[str] = []
    quiet_pulls = 0
    try:
        while limit is None or report.examined < limit:
            wanted = batch_size if limit is None else min(batch_size, limit - report.examined)
            batch = _pull_batch(subscriber, subscription, wanted)
            fresh = [r for r in batch if r.message_id not in seen]
            kept += [r.ack_id for r in batch if r.message_id in seen]
            if not fresh:
                # A pull brings what the server has at hand, possibly nothing while
                # more waits: only several quiet pulls in a row mean it is drained.
                quiet_pulls += 1
                if quiet_pulls >= DRAINED_AFTER_QUIET_PULLS or should_stop():
                    break
                continue
            quiet_pulls = 0
            seen.update(r.message_id for r in fresh)
            chosen = _choose(fresh, store, everything, report, started)
            kept += [r.ack_id for r in fresh if r.ack_id not in chosen]
            if dry_run:
                for received in fresh:
                    action = "republish" if received.ack_id in chosen else "keep"
                    why = chosen.get(received.ack_id) or _why_kept(received)
                    print(f"{action:<9} {received.message_id}  {why}")
                kept += list(chosen)
            else:
                done = _republish(publisher, subscriber, subscription, topic, fresh, chosen)
                report.republished += done
                report.left["republish_failed"] += len(chosen) - done
            report.examined += len(fresh)
            if should_stop():
                break
    finally:
        release(subscriber, subscription, kept)
    report.left = +report.left  # drop zero counts
    return report


def _pull_batch(subscriber, subscription: str, wanted: int) -> list[Delivery]:
    """Up to `wanted` dead letters, leased for REDRIVE_LEASE seconds."""
    received = pubsub.pull(subscriber, subscription, wanted, PULL_TIMEOUT)[:wanted]
    pubsub.modify_deadline(subscriber, subscription, [r.ack_id for r in received], REDRIVE_LEASE)
    return received


def dead_letter_reason(attributes) -> str:
    """Why a message is on a DLQ: our `reason`, or Pub/Sub's own forwarding."""
    return attributes.get("reason") or (
        Reason.PUBSUB_FORWARDED if FORWARDED_MARK in attributes else "unknown"
    )


def _choose(
    batch: list[Delivery], store: FactStore, everything: bool, report: RedriveReport, started: float
) -> dict[str, str]:
    """ack id -> why it is republished; the rest are counted in `report.left`."""
    payments = {}
    for received in batch:
        reason = dead_letter_reason(received.attributes)
        if received.publish_time.timestamp() > started:
            report.left["dead-lettered during this run"] += 1
        elif reason not in REDRIVABLE:
            report.left[reason] += 1
        else:
            try:
                payments[received.ack_id] = parse_payment(received.data)
            except InvalidMessage as error:
                report.left[error.reason] += 1
    exists = dict(
        zip(
            [p.order_id for p in payments.values()],
            store.existing_orders([p.order_id for p in payments.values()]),
            strict=True,
        )
    )
    chosen = {}
    for ack_id, payment in payments.items():
        found = exists[payment.order_id]
        if isinstance(found, Exception):
            raise CassandraUnavailable(f"cannot read the orders from Cassandra: {found}")
        if found:
            chosen[ack_id] = f"order {payment.order_id} exists now"
        elif everything:
            chosen[ack_id] = f"--all: order {payment.order_id} still missing"
        else:
            report.left["order_still_missing"] += 1
    return chosen


def _why_kept(received: Delivery) -> str:
    try:
        return f"order {parse_payment(received.data).order_id} still missing"
    except InvalidMessage as error:
        return error.reason


def _republish(
    publisher,
    subscriber,
    subscription: str,
    topic: str,
    batch: list[Delivery],
    chosen: dict[str, str],
) -> int:
    pending = {
        received.ack_id: publisher.publish(topic, received.data, redriven_from=received.message_id)
        for received in batch
        if received.ack_id in chosen
    }
    confirmed = []
    for ack_id, future in pending.items():
        try:
            future.result(timeout=PUBLISH_TIMEOUT)
            confirmed.append(ack_id)
        except Exception as error:
            logger.error("republish failed, the dead letter stays: %s", error)
    if confirmed:
        pubsub.acknowledge(subscriber, subscription, confirmed)
        logger.info("re-drove %d payments", len(confirmed))
    return len(confirmed)
