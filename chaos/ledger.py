"""What the producers published, and the exact account of rows and dead letters against it.

Every confirmed publish is written down with what it must become: a valid order the
row's order columns (the latest version wins: versions are published in rounds), a
valid payment the row's payment columns, anything else one dead letter on the right
dead-letter topic with the right reason. `account` then compares every row and every
dead letter read back; the same comparison, run mid-way, says whether the consumers
have drained what was published so far.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from ecom_pipeline.messages import Order, Payment

ORDER_COLUMNS = tuple(f.name for f in dataclasses.fields(Order))
PAYMENT_COLUMNS = tuple(f.name for f in dataclasses.fields(Payment) if f.name != "order_id")
SHOWN = 10  # examples of each kind of discrepancy kept for the report


def order_columns(order: Order) -> tuple:
    return tuple(getattr(order, name) for name in ORDER_COLUMNS)


def payment_columns(payment: Payment) -> tuple:
    return tuple(getattr(payment, name) for name in PAYMENT_COLUMNS)


@dataclass(frozen=True)
class Item:
    """One message to publish and what it must become."""

    stream: str  # "orders" or "payments"
    data: bytes
    order_id: int
    columns: tuple | None = None  # the row's columns it sets, if valid
    reason: str | None = None  # the dead letter's reason, if not


@dataclass(frozen=True)
class DeadLetterSeen:
    """A dead letter read back from the dead-letter subscription of `stream`."""

    stream: str
    original_message_id: str
    reason: str
    epoch: int = 0  # which emulator run it was read from (a restarted emulator counts ids anew)


@dataclass
class Ledger:
    orders: dict[int, tuple] = field(default_factory=dict)
    payments: dict[int, tuple] = field(default_factory=dict)
    # (epoch, message id): (stream, reason); message ids start again after an emulator restart
    dead: dict[tuple[int, str], tuple[str, str]] = field(default_factory=dict)
    published: Counter = field(default_factory=Counter)
    epoch: int = 0

    def confirmed(self, item: Item, message_id: str) -> None:
        """Pub/Sub confirmed `item` as `message_id`; call in publish order of versions."""
        self.published[item.stream] += 1
        if item.reason is not None:
            self.dead[(self.epoch, message_id)] = (item.stream, item.reason)
        elif item.stream == "orders":
            self.orders[item.order_id] = item.columns
        else:
            self.payments[item.order_id] = item.columns

    @property
    def messages(self) -> int:
        return sum(self.published.values())


@dataclass
class Account:
    rows: int = 0
    dead_letters: int = 0
    lost: int = 0
    wrong: int = 0
    duplicate_dead_letters: int = 0
    examples: list[str] = field(default_factory=list)

    @property
    def exact(self) -> bool:
        return self.lost == 0 and self.wrong == 0

    def _lost(self, what: str) -> None:
        self.lost += 1
        self._example(f"lost: {what}")

    def _wrong(self, what: str) -> None:
        self.wrong += 1
        self._example(f"wrong: {what}")

    def _example(self, text: str) -> None:
        if len(self.examples) < SHOWN:
            self.examples.append(text)

    def lines(self) -> list[str]:
        return [
            f"rows read {self.rows:,}, dead letters read {self.dead_letters:,} "
            f"({self.duplicate_dead_letters:,} repeated: same original message, no effect)",
            f"lost {self.lost}, wrong {self.wrong}",
            *(f"  {example}" for example in self.examples),
        ]


def account(
    ledger: Ledger, rows: Iterable[Mapping], dead_letters: Iterable[DeadLetterSeen]
) -> Account:
    """Every row and every dead letter against the ledger.

    lost: a published message with no effect (no row, payment columns empty, no dead
    letter). wrong: an effect that differs (a row that is not the latest published
    version, a payment that is not the one published, a row no valid order made, a
    dead letter with the wrong reason or topic, a valid message dead-lettered).
    A dead letter repeated for the same original message is counted, not wrong.
    """
    result = Account()
    seen: set[int] = set()
    for row in rows:
        result.rows += 1
        order_id = row["order_id"]
        seen.add(order_id)
        expected = ledger.orders.get(order_id)
        if expected is None:
            result._wrong(f"row {order_id} that no valid order was published for")
            continue
        stored = tuple(row[name] for name in ORDER_COLUMNS)
        if stored != expected:
            result._wrong(f"order {order_id} is {stored}, its latest version is {expected}")
        paid = tuple(row[name] for name in PAYMENT_COLUMNS)
        payment = ledger.payments.get(order_id)
        if payment is None:
            if any(value is not None for value in paid):
                result._wrong(f"order {order_id} has payment {paid}, none valid was published")
        elif all(value is None for value in paid):
            result._lost(f"the payment of order {order_id} is not attached")
        elif paid != payment:
            result._wrong(f"order {order_id} has payment {paid}, published {payment}")
    for order_id in ledger.orders.keys() - seen:
        result._lost(f"order {order_id} has no row")
        if order_id in ledger.payments:
            result._lost(f"the payment of order {order_id} has no row to be on")
    counts: Counter = Counter()
    for letter in dead_letters:
        result.dead_letters += 1
        key = (letter.epoch, letter.original_message_id)
        counts[key] += 1
        if counts[key] > 1:
            result.duplicate_dead_letters += 1
            continue
        expected_dead = ledger.dead.get(key)
        if expected_dead is None:
            result._wrong(
                f"message {letter.original_message_id} dead-lettered ({letter.reason}) "
                "but it was valid or never published"
            )
        elif expected_dead != (letter.stream, letter.reason):
            result._wrong(
                f"message {letter.original_message_id} dead-lettered on {letter.stream} as "
                f"{letter.reason}, expected {expected_dead[0]} {expected_dead[1]}"
            )
    for key in ledger.dead.keys() - counts.keys():
        stream, reason = ledger.dead[key]
        message_id = key[1]
        result._lost(f"message {message_id} ({stream}, {reason}) is not on its dead-letter topic")
    return result
