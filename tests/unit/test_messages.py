"""Parsing gives a specific reason for every kind of bad input; mock data follows the
README's "Messages and the table"."""

import datetime as dt
import json
import random
import time

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
    orders = [mock_order(i, rng) for i in range(1, 20_001)]
    assert all(parse_order(order.to_json()) == order for order in orders[:50])
    customers = {order.customer_id for order in orders}
    assert (min(customers), max(customers)) == (100, 1000)
    assert {order.quantity for order in orders} == set(range(1, 11))
    prices = [order.price for order in orders]
    assert 100 <= min(prices) < 101 and 1499 < max(prices) <= 1500
    assert all(round(price, 2) == price for price in prices)
    assert sum(round(price) != price for price in prices) > 19_000, "prices have cents"
    assert {order.item for order in orders} == {"Laptop", "Phone", "Book", "Tablet", "Monitor"}
    assert {o.order_status for o in orders} == {"Shipped", "Pending", "Delivered", "Cancelled"}


@pytest.fixture
def far_from_utc(monkeypatch):
    """Run with the machine's clock in another time zone (UTC+14, then UTC-12)."""

    def use(zone: str) -> None:
        monkeypatch.setenv("TZ", zone)
        time.tzset()

    yield use
    monkeypatch.undo()
    time.tzset()


def test_mock_dates_and_times_are_utc_whatever_the_machines_time_zone(far_from_utc):
    """Between them, UTC+14 and UTC-12 have another date than UTC at any moment."""
    for zone in ("Etc/GMT-14", "Etc/GMT+12"):
        far_from_utc(zone)
        today = dt.datetime.now(dt.UTC).date().isoformat()
        assert mock_order(1, random.Random(1)).creation_date == today, zone
        five_hours_east = dt.timezone(dt.timedelta(hours=5))
        moment = dt.datetime(2024, 1, 21, 17, 1, 30, 250_000, tzinfo=five_hours_east)
        assert mock_payment(1, random.Random(1), moment).payment_datetime == "2024-01-21T12:01:30Z"
        stamp = mock_payment(1, random.Random(1)).payment_datetime
        now = dt.datetime.now(dt.UTC)
        assert abs((now - dt.datetime.fromisoformat(stamp)).total_seconds()) < 5, zone


def test_a_seed_makes_mock_data_reproducible():
    day = dt.date(2024, 1, 21)

    def orders(seed):
        rng = random.Random(seed)
        return [mock_order(i, rng, day) for i in range(20)]

    assert orders(3) == orders(3)
    assert orders(3) != orders(4), "another seed, other data: the seed is used"
    assert len({(o.customer_id, o.price) for o in orders(3)}) > 1, "the data varies"


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


# ---------------------------------------------------------------- every rule, its exact words

INT64_MAX = 2**63 - 1
MISSING = object()


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        ("order_id", MISSING, "order_id: missing"),
        ("order_id", "42", "order_id: must be an integer, got a string"),
        ("order_id", True, "order_id: must be an integer, got a boolean"),
        ("order_id", 4.0, "order_id: must be an integer, got a number"),
        ("order_id", [42], "order_id: must be an integer, got an array"),
        ("order_id", {"id": 42}, "order_id: must be an integer, got an object"),
        ("order_id", None, "order_id: must be an integer, got null"),
        ("order_id", 0, "order_id: must be an integer >= 1, got 0"),
        ("order_id", INT64_MAX + 1, f"order_id: must be an integer within 64 bits, got {2**63}"),
        ("customer_id", -(2**63) - 2, f"customer_id: must be an integer >= {-(2**63)}, got "
         f"{-(2**63) - 2}"),
        ("quantity", 0, "quantity: must be an integer >= 1, got 0"),
        ("quantity", -5, "quantity: must be an integer >= 1, got -5"),
        ("price", True, "price: must be a number, got a boolean"),
        ("price", "999.99", "price: must be a number, got a string"),
        ("price", -1, "price: must be a finite number >= 0, got -1"),
        ("price", -0.01, "price: must be a finite number >= 0, got -0.01"),
        ("price", "1e400", "price: must be a finite number >= 0, got 1E+400"),
        ("price", 10**400, f"price: must be a finite number >= 0, got {10**400}"),
        ("item", 5, "item: must be a string, got an integer"),
        ("item", "", "item: must not be empty"),
        ("item", " \t\n", "item: must not be empty"),
        ("item", "\ud800", "item: must be valid Unicode (it has a lone surrogate)"),
        ("shipping_address", MISSING, "shipping_address: missing"),
        ("order_status", "Pending\udfff", "order_status: must be valid Unicode (it has a lone "
         "surrogate)"),
        ("creation_date", "20240121", "creation_date: must be a valid YYYY-MM-DD date, got "
         "'20240121'"),
        ("creation_date", "2024-02-30", "creation_date: must be a valid YYYY-MM-DD date, got "
         "'2024-02-30'"),
    ],
)  # fmt: skip
def test_each_order_rule_says_exactly_what_is_wrong(field, value, error):
    """The `error` attribute of the dead letter is this text; the reason is `invalid:<field>`."""
    order = {**ORDER, field: value}
    if value is MISSING:
        del order[field]
    raw = json.dumps(order).replace('"1e400"', "1e400")  # a JSON number, too large for a float
    with pytest.raises(InvalidMessage) as refused:
        parse_order(raw.encode())
    assert str(refused.value) == error
    assert (refused.value.field, refused.value.reason) == (field, f"invalid:{field}")
    assert f"{field}: {refused.value.rule}" == error
    assert refused.value.body is None


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        ("payment_id", 10.5, "payment_id: must be an integer, got a number"),
        ("payment_method", [], "payment_method: must be a string, got an array"),
        ("card_last_four", "123", "card_last_four: must be exactly four digits"),
        ("card_last_four", "12345", "card_last_four: must be exactly four digits"),
        ("card_last_four", "12a4", "card_last_four: must be exactly four digits"),
        ("card_last_four", 1234, "card_last_four: must be exactly four digits"),
        ("card_last_four", "\uff11\uff12\uff13\uff14", "card_last_four: must be exactly four "
         "digits"),
        ("payment_status", "", "payment_status: must not be empty"),
        ("payment_datetime", "2024-01-21 12:01:30Z", "payment_datetime: must be a valid ISO-8601 "
         "timestamp YYYY-MM-DDThh:mm[:ss] with a time zone (e.g. 2024-01-21T12:01:30Z), got "
         "'2024-01-21 12:01:30Z'"),
        ("payment_datetime", "2024-01-21T12:01:30", "payment_datetime: must be a valid ISO-8601 "
         "timestamp YYYY-MM-DDThh:mm[:ss] with a time zone (e.g. 2024-01-21T12:01:30Z), got "
         "'2024-01-21T12:01:30'"),
        ("payment_datetime", "2024-01-21T24:01:30Z", "payment_datetime: must be a valid ISO-8601 "
         "timestamp YYYY-MM-DDThh:mm[:ss] with a time zone (e.g. 2024-01-21T12:01:30Z), got "
         "'2024-01-21T24:01:30Z'"),
    ],
)  # fmt: skip
def test_each_payment_rule_says_exactly_what_is_wrong(field, value, error):
    with pytest.raises(InvalidMessage) as refused:
        parse_payment(json.dumps({**PAYMENT, field: value}).encode())
    assert str(refused.value) == error
    assert refused.value.reason == f"invalid:{field}"


def test_the_limits_themselves_are_allowed():
    """Every boundary, on the side that passes: ids up to 64 bits, quantity 1, price 0, the
    smallest 64-bit customer id, any four ASCII digits, a timestamp without seconds."""
    order = parse_order(
        encode({**ORDER, "order_id": INT64_MAX, "customer_id": -(2**63), "quantity": 1, "price": 0})
    )
    assert (order.order_id, order.customer_id, order.quantity, order.price) == (
        INT64_MAX, -(2**63), 1, 0.0
    )  # fmt: skip
    assert isinstance(order.price, float)
    assert parse_order(encode({**ORDER, "quantity": INT64_MAX})).quantity == INT64_MAX
    for four in ("0000", "9999"):
        assert parse_payment(encode({**PAYMENT, "card_last_four": four})).card_last_four == four
    stamp = "2024-01-21T12:01-05:00"
    assert parse_payment(encode({**PAYMENT, "payment_datetime": stamp})).payment_datetime == stamp


def exactly(size: int) -> bytes:
    """The worked example, padded with spaces to `size` bytes."""
    body = encode(ORDER)
    return body[:-1] + b" " * (size - len(body)) + b"}"


def test_a_message_of_exactly_64_kib_is_read_and_one_byte_more_is_refused():
    assert parse_order(exactly(65_536)) == Order(**ORDER)
    assert order_id_of(exactly(65_536)) == 42
    with pytest.raises(InvalidMessage) as refused:
        parse_order(exactly(65_537))
    assert str(refused.value) == "message: larger than 65536 bytes (65537)"
    assert order_id_of(exactly(65_537)) is None


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"\xff{}", "message: not UTF-8 (invalid start byte at byte 0)"),
        (b'{"a": 1, "b": \xe2\x82}', "message: not UTF-8 (invalid continuation byte at byte 14)"),
        (b'{"price": NaN}', "message: not JSON (NaN is not JSON)"),
        (b'{"price": -Infinity}', "message: not JSON (-Infinity is not JSON)"),
        (b"[1, 2]", "message: not a JSON object but an array"),
        (b'"text"', "message: not a JSON object but a string"),
        (b"7", "message: not a JSON object but an integer"),
        (b"null", "message: not a JSON object but null"),
        (b"[" * 5000 + b"]" * 5000, "message: JSON nested too deeply"),
    ],
)
def test_a_message_that_cannot_be_read_says_exactly_why(data, error):
    with pytest.raises(InvalidMessage) as refused:
        parse_payment(data)
    assert str(refused.value) == error
    assert refused.value.reason == "invalid:message"


def test_a_card_number_in_json_nested_past_the_parsers_limit_replaces_the_body():
    data = b"[" * 5000 + b'"4111 1111 1111 1111"' + b"]" * 5000
    with pytest.raises(InvalidMessage) as refused:
        parse_order(data)
    assert refused.value.reason == "invalid:card_number"
    assert refused.value.body == card_numbers.REPLACED_BODY
    assert str(refused.value) == (
        "card_number: the message carries what looks like a full card number and cannot be "
        "read as JSON to mask it, so its body was replaced"
    )


VISA = "4111111111111111"


@pytest.mark.parametrize(
    ("carrier", "path", "masked"),
    [
        ({"notes": ["ok", VISA]}, "$.notes[1]", {"notes": ["ok", "************1111"]}),
        ({"extra": {"card": {"pan": VISA}}}, "$.extra.card.pan",
         {"extra": {"card": {"pan": "************1111"}}}),
        ({"extra": {VISA: "x"}}, '$.extra["************1111"]',
         {"extra": {"************1111": "x"}}),
        ({"n": -int(VISA)}, "$.n", {"n": "-************1111"}),
        ({"n": [[int(VISA)]]}, "$.n[0][0]", {"n": [["************1111"]]}),
    ],
)  # fmt: skip
def test_a_card_number_at_any_depth_or_as_a_key_is_masked_and_its_path_named(carrier, path, masked):
    with pytest.raises(InvalidMessage) as refused:
        parse_payment(encode({**PAYMENT, **carrier}))
    assert str(refused.value) == (
        f"card_number: {path} carries what looks like a full card number; every one was masked "
        "to its last four digits"
    )
    assert json.loads(refused.value.body) == {**PAYMENT, **masked}
    assert VISA not in str(refused.value) and VISA.encode() not in refused.value.body


def test_the_error_counts_every_place_a_card_number_was_found():
    def refusal(places: int) -> str:
        notes = {f"note{i}": VISA for i in range(places)}
        with pytest.raises(InvalidMessage) as refused:
            parse_payment(encode({**PAYMENT, **notes}))
        return str(refused.value)

    assert "$.note0 carries what looks like a full card number; every" in refusal(1)
    assert "$.note0 carries what looks like a full card number (and 1 more places); " in refusal(2)
    assert "(and 2 more places)" in refusal(3)
