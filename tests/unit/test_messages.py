"""Parsing gives a specific reason for every kind of bad input; mock data follows the
README's "Messages and the table"."""

import datetime as dt
import json
import random

import pytest

from ecom_pipeline import card_numbers
from ecom_pipeline.messages import (
    InvalidMessage,
    Order,
    Payment,
    mock_order,
    mock_payment,
    order_id_of,
    parse_order,
    parse_payment,
)

ORDER = {
    "order_id": 42,
    "customer_id": 789,
    "item": "Laptop",
    "quantity": 1,
    "price": 999.99,
    "shipping_address": "123 Main St, City A",
    "order_status": "Pending",
    "creation_date": "2024-01-21",
}
PAYMENT = {
    "payment_id": 1042,
    "order_id": 42,
    "payment_method": "Credit Card",
    "card_last_four": "0042",
    "payment_status": "Completed",
    "payment_datetime": "2024-01-21T12:01:30Z",
}


def encode(value) -> bytes:
    return json.dumps(value).encode()


def test_the_worked_example_parses_and_round_trips():
    order = parse_order(encode(ORDER))
    assert order == Order(**ORDER)
    assert json.loads(order.to_json()) == ORDER
    payment = parse_payment(encode(PAYMENT))
    assert payment == Payment(**PAYMENT)
    assert json.loads(payment.to_json()) == PAYMENT


def test_unknown_extra_fields_are_ignored():
    assert parse_order(encode({**ORDER, "coupon": "X"})) == Order(**ORDER)


def test_an_integral_price_is_accepted_as_a_number():
    assert parse_order(encode({**ORDER, "price": 1000})).price == 1000.0


@pytest.mark.parametrize(
    ("data", "reason", "words"),
    [
        (b"\xff\xfe{}", "invalid:message", "not UTF-8"),
        (b"{order_id: 1}", "invalid:message", "not JSON"),
        (b"[1, 2]", "invalid:message", "not a JSON object but an array"),
        (b"x" * 70_000, "invalid:message", "larger than"),
        (encode({**ORDER, "price": None}), "invalid:price", "must be a number, got null"),
        (b'{"price": NaN}', "invalid:message", "not JSON"),
    ],
)
def test_undecodable_messages_say_why(data, reason, words):
    with pytest.raises(InvalidMessage) as error:
        parse_order(data)
    assert error.value.reason == reason
    assert words in str(error.value)


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("order_id", None, "missing"),
        ("order_id", "42", "must be an integer, got a string"),
        ("order_id", 0, ">= 1"),
        ("order_id", True, "must be an integer, got a boolean"),
        ("quantity", 0, ">= 1"),
        ("quantity", 1.5, "must be an integer"),
        ("price", -1, "finite number >= 0"),
        ("price", "999.99", "must be a number"),
        ("item", "", "must not be empty"),
        ("item", 5, "must be a string"),
        ("creation_date", "2024-02-30", "valid YYYY-MM-DD"),
        ("creation_date", "21/01/2024", "valid YYYY-MM-DD"),
        ("creation_date", "2024-W01-1", "valid YYYY-MM-DD"),
        ("creation_date", "20240121", "valid YYYY-MM-DD"),
        ("creation_date", "2024-01-2\uff11", "valid YYYY-MM-DD"),
    ],
)
def test_a_bad_order_field_is_named_with_its_rule(field, value, words):
    order = dict(ORDER)
    if value is None:
        del order[field]
    else:
        order[field] = value
    with pytest.raises(InvalidMessage) as error:
        parse_order(encode(order))
    assert error.value.reason == f"invalid:{field}"
    assert words in str(error.value)


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("card_last_four", "42", "exactly four digits"),
        ("card_last_four", 42, "exactly four digits"),
        ("card_last_four", "\uff10\uff10\uff14\uff12", "exactly four digits"),
        ("payment_datetime", "2024-01-21T25:01:30Z", "valid ISO-8601"),
        ("payment_datetime", "2024-01-21T12:01:30", "with a time zone"),
        ("payment_datetime", "yesterday", "valid ISO-8601"),
        ("payment_datetime", "2024-W01-1T12:00:00Z", "valid ISO-8601"),
        ("payment_datetime", "2024-01-21 12:01:30Z", "valid ISO-8601"),
        ("payment_datetime", "20240121T120130Z", "valid ISO-8601"),
        ("payment_id", 10.5, "must be an integer"),
    ],
)
def test_a_bad_payment_field_is_named_with_its_rule(field, value, words):
    with pytest.raises(InvalidMessage) as error:
        parse_payment(encode({**PAYMENT, field: value}))
    assert error.value.reason == f"invalid:{field}"
    assert words in str(error.value)


def test_an_id_that_passes_the_luhn_check_at_13_digits_or_more_is_a_card_number():
    """The README's consequence for ids: one in ten long ids is refused as a card number."""
    with pytest.raises(InvalidMessage) as error:
        parse_order(encode({**ORDER, "order_id": 4111111111111111}))
    assert error.value.reason == "invalid:card_number"
    assert "4111111111111111" not in str(error.value)
    assert json.loads(error.value.body)["order_id"] == "************1111"
    assert parse_order(encode({**ORDER, "order_id": 4111111111111112})).order_id == 4111111111111112
    assert parse_order(encode({**ORDER, "order_id": 422222222222})).order_id == 422222222222


@pytest.mark.parametrize(
    "carrier",
    [
        {"payment_method": "Visa 4111 1111 1111 1111"},
        {"payment_method": "4111-1111-1111-1111"},
        {"card_last_four": "4111111111111111"},
        {"note": "card 5500000000000004."},
        {"payment_datetime": "4111111111111111"},
    ],
)
def test_a_full_card_number_anywhere_is_refused_and_masked(carrier):
    data = encode({**PAYMENT, **carrier})
    with pytest.raises(InvalidMessage) as error:
        parse_payment(data)
    assert error.value.reason == "invalid:card_number"
    field = next(iter(carrier))
    assert str(error.value).startswith(f"card_number: $.{field} carries")
    masked = json.loads(error.value.body)
    digits_left = "".join(ch for ch in masked[field] if ch.isdigit())
    assert len(digits_left) == 4 and masked[field].count("*") >= 9
    assert masked["order_id"] == 42


@pytest.mark.parametrize(
    "body",
    [
        b"card=4111111111111111;cvv=123",
        b'{"card": "4111 1111 1111 1111", "x": "\xff"}',
        b'{"card": "4111111111111111"' + b" " * 70_000 + b"}",
    ],
)
def test_a_card_number_in_a_body_that_cannot_be_masked_field_by_field_replaces_the_body(body):
    with pytest.raises(InvalidMessage) as error:
        parse_payment(body)
    assert error.value.reason == "invalid:card_number"
    assert error.value.body == card_numbers.REPLACED_BODY


def test_a_valid_iso_timestamp_is_never_taken_for_a_card_number():
    moment = "2024-01-21T12:01:30.123456+00:00"  # its time alone is 16 digits in groups
    assert parse_payment(encode({**PAYMENT, "payment_datetime": moment})).payment_datetime == moment


def test_long_digit_runs_that_are_not_card_numbers_pass():
    assert parse_order(encode({**ORDER, "price": 1234567890.25})).price == 1234567890.25
    assert parse_payment(encode(PAYMENT)).payment_datetime == "2024-01-21T12:01:30Z"


def test_order_id_is_read_from_invalid_messages_when_possible():
    assert order_id_of(encode({**PAYMENT, "card_last_four": "x"})) == 42
    assert order_id_of(b"not json") is None
    assert order_id_of(encode({"order_id": "42"})) is None


def test_mock_orders_follow_the_spec_ranges():
    rng = random.Random(7)
    for order_id in range(1, 200):
        order = parse_order(mock_order(order_id, rng).to_json())
        assert 100 <= order.customer_id <= 1000
        assert 1 <= order.quantity <= 10
        assert 100 <= order.price <= 1500 and round(order.price, 2) == order.price
        assert order.item in {"Laptop", "Phone", "Book", "Tablet", "Monitor"}
        assert order.order_status in {"Shipped", "Pending", "Delivered", "Cancelled"}


def test_a_seed_makes_mock_data_reproducible():
    day = dt.date(2024, 1, 21)
    first = [mock_order(i, random.Random(3), day) for i in range(5)]
    again = [mock_order(i, random.Random(3), day) for i in range(5)]
    assert first == again


def test_mock_payments_follow_the_spec():
    now = dt.datetime(2024, 1, 21, 12, 1, 30, 999, tzinfo=dt.UTC)
    payment = mock_payment(42, random.Random(1), now)
    assert payment.payment_id == 1042
    assert payment.card_last_four == "0042"
    assert payment.payment_status == "Completed"
    assert payment.payment_datetime == "2024-01-21T12:01:30Z"
    assert mock_payment(12345, random.Random(1), now).card_last_four == "2345"
    assert parse_payment(payment.to_json()) == payment


@pytest.mark.parametrize(
    "value", ["2024-01-21T12:01:30Z", "2024-01-21T12:01Z", "2024-01-21T12:01:30.250+02:00"]
)
def test_iso_8601_timestamps_with_a_time_zone_are_accepted(value):
    assert parse_payment(encode({**PAYMENT, "payment_datetime": value})).payment_datetime == value
