"""The two message types: parsing with specific reasons, serialising, and mock data.

Messages are UTF-8 JSON objects with exactly the field names and JSON types of the
README's "Messages and the table", so that other tools speaking this format
interoperate in both directions. Unknown extra fields are ignored; a missing or
malformed field makes the message invalid with a reason that names the field and
the rule.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import json
import math
import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgspec

from ecom_pipeline import card_numbers
from ecom_pipeline.outcomes import Reason

MAX_MESSAGE_BYTES = 64 * 1024
INT64_MAX = 2**63 - 1

ITEMS = ("Laptop", "Phone", "Book", "Tablet", "Monitor")
SHIPPING_ADDRESSES = ("123 Main St, City A", "456 Elm St, City B", "789 Oak St, City C")
ORDER_STATUSES = ("Shipped", "Pending", "Delivered", "Cancelled")
PAYMENT_METHODS = ("Credit Card", "Debit Card", "PayPal", "Google Pay", "Apple Pay")
PAYMENT_ID_OFFSET = 1000
# Calendar dates and times in ASCII digits only: Python's ISO parser also takes
# week dates (2024-W01-1), basic forms (20240121) and other scripts' digits.
CALENDAR_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
TIMESTAMP = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]{1,6})?)?"
    r"(?:Z|[+-][0-9]{2}:[0-9]{2})"
)


class InvalidMessage(ValueError):
    """A message that can never be stored: dead-letter it now, with `reason`.

    `body`, when set, replaces the original bytes on the dead-letter topic
    (a card number masked to its last four digits).
    """

    def __init__(self, field: str, rule: str, body: bytes | None = None) -> None:
        super().__init__(f"{field}: {rule}")
        self.field = field
        self.rule = rule
        self.body = body

    @property
    def reason(self) -> str:
        """The DLQ `reason` attribute, e.g. `invalid:quantity`."""
        return Reason.invalid(self.field)


class _JsonMessage:
    def to_json(self) -> bytes:
        """The wire format: a UTF-8 JSON object with exactly the field names."""
        return json.dumps(dataclasses.asdict(self)).encode()  # type: ignore[call-overload]


@dataclass(frozen=True)
class Order(_JsonMessage):
    order_id: int
    customer_id: int
    item: str
    quantity: int
    price: float
    shipping_address: str
    order_status: str
    creation_date: str


@dataclass(frozen=True)
class Payment(_JsonMessage):
    payment_id: int
    order_id: int
    payment_method: str
    card_last_four: str
    payment_status: str
    payment_datetime: str


# ---------------------------------------------------------------- parsing


def parse_order(data: bytes) -> Order:
    fields = _json_object(data)
    return Order(
        order_id=_id(fields, "order_id"),
        customer_id=_int64(fields, "customer_id"),
        item=_text(fields, "item"),
        quantity=_int64(fields, "quantity", minimum=1),
        price=_price(fields, "price"),
        shipping_address=_text(fields, "shipping_address"),
        order_status=_text(fields, "order_status"),
        creation_date=_date(fields, "creation_date"),
    )


def parse_payment(data: bytes) -> Payment:
    fields = _json_object(data)
    return Payment(
        payment_id=_int64(fields, "payment_id"),
        order_id=_id(fields, "order_id"),
        payment_method=_text(fields, "payment_method"),
        card_last_four=_last_four(fields, "card_last_four"),
        payment_status=_text(fields, "payment_status"),
        payment_datetime=_timestamp(fields, "payment_datetime"),
    )


def order_id_of(data: bytes) -> int | None:
    """The order id of a message, if one can be read, for DLQ attributes and logs."""
    if len(data) > MAX_MESSAGE_BYTES:
        return None
    try:
        value = json.loads(data).get("order_id")
    except (ValueError, AttributeError, RecursionError):
        return None
    return value if type(value) is int else None


def _json_object(data: bytes) -> dict[str, Any]:
    """The message as a JSON object, refused if it holds a card number anywhere.

    The card check runs on what a reader would see (decoded strings, keys and
    numbers) before any field is read, so no error text can echo a card number;
    a body that cannot be decoded is scanned as raw bytes before it is refused.
    """
    if len(data) > MAX_MESSAGE_BYTES:
        _refuse_raw_card_numbers(data)
        raise InvalidMessage("message", f"larger than {MAX_MESSAGE_BYTES} bytes ({len(data)})")
    try:
        value = _decode_json(data)
    except FAST_DECODER_REFUSALS:
        value = _json_with_reasons(data)
    masked, places = card_numbers.mask_json(value)
    if places:
        raise InvalidMessage(
            "card_number",
            f"{places[0]} carries what looks like a full card number"
            + (f" (and {len(places) - 1} more places)" if len(places) > 1 else "")
            + "; every one was masked to its last four digits",
            body=json.dumps(masked, default=str).encode(),
        )
    if not isinstance(value, dict):
        raise InvalidMessage("message", f"not a JSON object but {_json_type(value)}")
    return value


def _json_with_reasons(data: bytes) -> Any:
    """Read a body the fast decoder refused, with the standard library's words for what is wrong.

    It also takes the one thing the fast decoder refuses that JSON allows: a lone UTF-16
    surrogate escape (`"\\udc00"`), which `_text` then refuses with its own reason.
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        _refuse_raw_card_numbers(data)
        rule = f"not UTF-8 ({error.reason} at byte {error.start})"
        raise InvalidMessage("message", rule) from None
    try:
        return json.loads(text, parse_float=decimal.Decimal, parse_constant=_reject_constant)
    except ValueError as error:
        _refuse_raw_card_numbers(data)
        raise InvalidMessage("message", f"not JSON ({error})") from None
    except RecursionError:
        _refuse_raw_card_numbers(data)
        raise InvalidMessage("message", "JSON nested too deeply") from None


def _refuse_raw_card_numbers(data: bytes) -> None:
    """For a body that cannot be read as JSON: refuse it whole if its bytes hold a card number."""
    if card_numbers.body_holds_card(data):
        raise InvalidMessage(
            "card_number",
            "the message carries what looks like a full card number and cannot be read as "
            "JSON to mask it, so its body was replaced",
            body=card_numbers.REPLACED_BODY,
        )


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


# msgspec reads a message about three times faster than `json.loads`; what it refuses is read
# again by `json.loads`, for the reason it gives. Both give JSON numbers with a fraction or an
# exponent as Decimals, so that `_price` sees what was written.
_decode_json = msgspec.json.Decoder(float_hook=decimal.Decimal).decode
FAST_DECODER_REFUSALS = (msgspec.DecodeError, UnicodeDecodeError, RecursionError)


def _json_type(value: object) -> str:
    """What JSON calls a value's type (json.loads gives only these, numbers with a fraction as
    Decimals)."""
    return {
        dict: "an object",
        list: "an array",
        str: "a string",
        bool: "a boolean",
        int: "an integer",
        decimal.Decimal: "a number",
        type(None): "null",
    }[type(value)]


def _required(fields: dict[str, Any], name: str) -> Any:
    if name not in fields:
        raise InvalidMessage(name, "missing")
    return fields[name]


def _int64(fields: dict[str, Any], name: str, minimum: int = -INT64_MAX - 1) -> int:
    value = _required(fields, name)
    if type(value) is not int:
        raise InvalidMessage(name, f"must be an integer, got {_json_type(value)}")
    if not minimum <= value <= INT64_MAX:
        bound = f">= {minimum}" if value < minimum else "within 64 bits"
        raise InvalidMessage(name, f"must be an integer {bound}, got {value}")
    return value


def _id(fields: dict[str, Any], name: str) -> int:
    return _int64(fields, name, minimum=1)


def _text(fields: dict[str, Any], name: str) -> str:
    value = _required(fields, name)
    if not isinstance(value, str):
        raise InvalidMessage(name, f"must be a string, got {_json_type(value)}")
    if not value.strip():
        raise InvalidMessage(name, "must not be empty")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidMessage(name, "must be valid Unicode (it has a lone surrogate)") from None
    return value


def _price(fields: dict[str, Any], name: str) -> float:
    value = _required(fields, name)
    if type(value) not in (int, decimal.Decimal):  # JSON numbers with a fraction are Decimals
        raise InvalidMessage(name, f"must be a number, got {_json_type(value)}")
    try:
        price = float(value)
    except OverflowError:
        price = math.inf
    if not math.isfinite(price) or price < 0:
        raise InvalidMessage(name, f"must be a finite number >= 0, got {value}")
    return price


def _date(fields: dict[str, Any], name: str) -> str:
    return _iso(fields, name, CALENDAR_DATE, dt.date.fromisoformat, "a valid YYYY-MM-DD date")


def _timestamp(fields: dict[str, Any], name: str) -> str:
    return _iso(
        fields,
        name,
        TIMESTAMP,
        dt.datetime.fromisoformat,
        "a valid ISO-8601 timestamp YYYY-MM-DDThh:mm[:ss] with a time zone "
        "(e.g. 2024-01-21T12:01:30Z)",
    )


def _iso(
    fields: dict[str, Any],
    name: str,
    form: re.Pattern[str],
    parse: Callable[[str], object],
    rule: str,
) -> str:
    """A text field in exactly `form` that `parse` takes as a real date or time."""
    value = _text(fields, name)
    try:
        if not form.fullmatch(value):
            raise ValueError
        parse(value)
    except ValueError:
        raise InvalidMessage(name, f"must be {rule}, got {value!r}") from None
    return value


def _last_four(fields: dict[str, Any], name: str) -> str:
    value = _required(fields, name)
    if not isinstance(value, str) or len(value) != 4 or not value.isascii() or not value.isdigit():
        raise InvalidMessage(name, "must be exactly four digits")
    return value


# ---------------------------------------------------------------- mock data


def mock_order(order_id: int, rng: random.Random, today: dt.date | None = None) -> Order:
    return Order(
        order_id=order_id,
        customer_id=rng.randint(100, 1000),
        item=rng.choice(ITEMS),
        quantity=rng.randint(1, 10),
        price=round(rng.uniform(100, 1500), 2),
        shipping_address=rng.choice(SHIPPING_ADDRESSES),
        order_status=rng.choice(ORDER_STATUSES),
        creation_date=(today or dt.datetime.now(dt.UTC).date()).isoformat(),
    )


def mock_payment(order_id: int, rng: random.Random, now: dt.datetime | None = None) -> Payment:
    moment = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    return Payment(
        payment_id=order_id + PAYMENT_ID_OFFSET,
        order_id=order_id,
        payment_method=rng.choice(PAYMENT_METHODS),
        card_last_four=f"{order_id:04d}"[-4:],
        payment_status="Completed",
        payment_datetime=moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
    )
