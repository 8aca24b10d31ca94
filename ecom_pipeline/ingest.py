"""What each consumer does with a batch: the order store and the payment join."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Sequence
from typing import TypeVar

from ecom_pipeline.cassandra_session import SCHEMA_HINT, is_refusal, is_schema_fault
from ecom_pipeline.fact_store import FactStore
from ecom_pipeline.messages import (
    InvalidMessage,
    Payment,
    order_id_of,
    parse_order,
    parse_payment,
)
from ecom_pipeline.options import ORDER_WAIT
from ecom_pipeline.outcomes import (
    STORE_RETRY_SECONDS,
    DeadLetter,
    Delay,
    Delivery,
    Outcome,
    Reason,
    Retry,
    Stored,
)
from ecom_pipeline.pubsub import MAX_ACK_DEADLINE

logger = logging.getLogger(__name__)

T = TypeVar("T")
MIN_DELAY_SECONDS = 2.0
MAX_DELAY_SECONDS = 60.0


def _store_failure(action: str, error: Exception) -> Outcome:
    """A value Cassandra refuses is the message's fault; anything else is an outage.

    A missing keyspace, table or column is an outage too: the set-up is wrong,
    not the message, so nothing is dead-lettered until schema.cql is back.
    """
    if is_schema_fault(error):
        return Retry(STORE_RETRY_SECONDS, f"set-up problem: {error}; {SCHEMA_HINT}")
    if is_refusal(error):
        return DeadLetter(Reason.UNSTORABLE, f"Cassandra refused the {action}: {error}")
    return Retry(STORE_RETRY_SECONDS, f"Cassandra {action} failed: {error}")


def _parse_all(
    deliveries: Sequence[Delivery], parse: Callable[[bytes], T], outcomes: list
) -> list[tuple[int, T]]:
    """(index, message) of each valid delivery; each invalid one's outcome is a dead letter."""
    parsed: list[tuple[int, T]] = []
    for index, delivery in enumerate(deliveries):
        try:
            parsed.append((index, parse(delivery.data)))
        except InvalidMessage as error:
            outcomes[index] = _invalid(delivery, error)
    return parsed


def _write_all(
    deliveries: Sequence[Delivery],
    parsed: list[tuple[int, T]],
    write: Callable[[list[T], list[int]], list[Exception | None]],
    describe: Callable[[T], str],
    outcomes: list,
) -> None:
    """Write each parsed message at its delivery's publish time; its outcome follows."""
    errors = write([m for _, m in parsed], [deliveries[i].write_timestamp for i, _ in parsed])
    for (index, message), error in zip(parsed, errors, strict=True):
        outcomes[index] = (
            Stored(describe(message)) if error is None else _store_failure("write", error)
        )


def _invalid(delivery: Delivery, error: InvalidMessage) -> DeadLetter:
    order_id = order_id_of(delivery.data if error.body is None else error.body)
    extra = {"order_id": str(order_id)} if order_id is not None else {}
    return DeadLetter(error.reason, str(error), extra, body=error.body)


class OrderIngest:
    """Upserts the order columns of each valid order; invalid ones are dead letters."""

    def __init__(self, store: FactStore) -> None:
        self.store = store

    def __call__(self, deliveries: Sequence[Delivery]) -> list[Outcome]:
        outcomes: list[Outcome | None] = [None] * len(deliveries)
        orders = _parse_all(deliveries, parse_order, outcomes)
        _write_all(
            deliveries, orders, self.store.upsert_orders, lambda o: f"order {o.order_id}", outcomes
        )
        return outcomes  # type: ignore[return-value]


class OrderWaitTooLong(ValueError):
    """The grace period does not fit in the subscription's delivery attempts."""


def longest_order_wait(max_delivery_attempts: int) -> float:
    """The longest grace a payment can get before Pub/Sub's own policy forwards it.

    Each redelivery can be put off by Pub/Sub's largest ack deadline, less the
    second `_missing_order` adds to each spread delay.
    """
    return (max_delivery_attempts - 1) * (MAX_ACK_DEADLINE - 1)


class PaymentIngest:
    """Attaches payments to existing orders; the rest wait, then go to the DLQ.

    A payment whose order is not stored yet is normal when two streams are joined:
    it is redelivered later until `order_wait` seconds after its publish time, and
    only then dead-lettered as `order_not_found`.
    """

    def __init__(
        self, store: FactStore, order_wait: float = ORDER_WAIT, max_delivery_attempts: int = 0
    ) -> None:
        if max_delivery_attempts and order_wait > longest_order_wait(max_delivery_attempts):
            raise OrderWaitTooLong(
                f"--order-wait {order_wait:g} cannot be kept: the subscription dead-letters "
                f"after {max_delivery_attempts} deliveries and Pub/Sub delays a redelivery by "
                f"{MAX_ACK_DEADLINE} s at most, so a payment can wait "
                f"{longest_order_wait(max_delivery_attempts):g} s at most. Lower --order-wait "
                "or raise the subscription's max delivery attempts (setup_pubsub.sh)."
            )
        self.store = store
        self.order_wait = order_wait
        self.max_delivery_attempts = max_delivery_attempts

    def __call__(self, deliveries: Sequence[Delivery]) -> list[Outcome]:
        outcomes: list[Outcome | None] = [None] * len(deliveries)
        payments = _parse_all(deliveries, parse_payment, outcomes)
        exists = self.store.existing_orders([p.order_id for _, p in payments])
        attachable: list[tuple[int, Payment]] = []
        now = dt.datetime.now(dt.UTC)
        for (index, payment), found in zip(payments, exists, strict=True):
            if isinstance(found, Exception):
                outcomes[index] = _store_failure("read", found)
            elif found:
                attachable.append((index, payment))
            else:
                outcomes[index] = self._missing_order(deliveries[index], payment, now)

        _write_all(
            deliveries,
            attachable,
            self.store.attach_payments,
            lambda p: f"payment {p.payment_id} -> order {p.order_id}",
            outcomes,
        )
        return outcomes  # type: ignore[return-value]

    def _missing_order(self, delivery: Delivery, payment: Payment, now: dt.datetime) -> Outcome:
        # Time in an outage does not count: the order consumer was held up as well.
        age = delivery.age(now)
        if self.store.available_since is not None:
            age = min(age, (now - self.store.available_since).total_seconds())
        remaining = self.order_wait - age
        not_found = {"order_id": str(payment.order_id)}
        if remaining <= 0:
            return DeadLetter(
                Reason.ORDER_NOT_FOUND,
                f"order {payment.order_id} not found within {self.order_wait:g}s",
                not_found,
            )
        # Back off with the payment's age so a long wait costs few redeliveries.
        delay = min(max(MIN_DELAY_SECONDS, age / 2), MAX_DELAY_SECONDS, remaining)
        if self.max_delivery_attempts and delivery.delivery_attempt:
            # Every redelivery counts against the subscription's dead-letter policy:
            # spread the rest so the grace period ends before the limit does.
            deliveries_left = self.max_delivery_attempts - delivery.delivery_attempt
            if deliveries_left <= 0:
                return DeadLetter(
                    Reason.ORDER_NOT_FOUND,
                    f"order {payment.order_id} not found after {delivery.delivery_attempt} "
                    "deliveries, the subscription's limit",
                    not_found,
                )
            delay = max(delay, remaining / deliveries_left + 1)
        return Delay(
            delay, f"order {payment.order_id} not stored yet; waiting up to {remaining:.0f}s more"
        )
