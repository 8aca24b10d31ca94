"""The words every part of a consumer shares: a delivery, what becomes of it, and why.

A handler turns deliveries into outcomes; the consumer loop settles each outcome
with Pub/Sub. Neither imports the other: both import this module.
"""

from __future__ import annotations

import datetime as dt
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum


class Reason(StrEnum):
    """Why a message is on a dead-letter topic: its `reason` attribute.

    `invalid:<field>` reasons are made by `Reason.invalid(field)`; the table in
    README.md lists every member, a test keeps the two in step.
    """

    ORDER_NOT_FOUND = "order_not_found"
    INVALID_MESSAGE = "invalid:message"
    CARD_NUMBER = "invalid:card_number"
    UNSTORABLE = "unstorable"
    PROCESSING_ERROR = "processing_error"
    PUBSUB_FORWARDED = "pubsub_max_delivery_attempts"

    @staticmethod
    def invalid(field_name: str) -> str:
        """The reason for a field that is missing or breaks its rule, e.g. `invalid:quantity`."""
        return f"invalid:{field_name}"


INVALID_FIELD = Reason.invalid("<field>")
# Dead letters that can succeed when sent again (their order may exist by now);
# an invalid message would only come back.
REDRIVABLE = frozenset({Reason.ORDER_NOT_FOUND, Reason.PUBSUB_FORWARDED})


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MILLISECOND = dt.timedelta(milliseconds=1)


@dataclass(frozen=True)
class Delivery:
    """One received message, as the handlers see it."""

    ack_id: str
    message_id: str
    data: bytes
    attributes: dict[str, str]
    publish_time: dt.datetime
    delivery_attempt: int
    # When it was pulled (time.monotonic()): made as the pull returns, so by default now.
    pulled_at: float = field(default_factory=time.monotonic, compare=False, repr=False)

    def age(self, now: dt.datetime | None = None) -> float:
        """Seconds since the message was first published."""
        return ((now or dt.datetime.now(dt.UTC)) - self.publish_time).total_seconds()

    @property
    def write_timestamp(self) -> int:
        """The Cassandra write time (µs) of this message's effect: its publish time.

        Pub/Sub stamps publish times to the millisecond (one publish request shares
        one), so the microseconds are a tie-break from the message id: two messages
        of one millisecond always resolve the same way, whatever order they are
        written in, and never against a message of another millisecond.
        """
        milliseconds = (self.publish_time - _EPOCH) // _MILLISECOND
        return milliseconds * 1000 + zlib.crc32(self.message_id.encode()) % 1000


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


# How long a message waits after a store failure before it is delivered again.
STORE_RETRY_SECONDS = 10.0


@dataclass(frozen=True)
class Retry:
    """The store failed: redeliver after `seconds`; never a dead letter."""

    seconds: float
    error: str


Outcome = Stored | DeadLetter | Delay | Retry
Handler = Callable[[Sequence[Delivery]], list[Outcome]]
