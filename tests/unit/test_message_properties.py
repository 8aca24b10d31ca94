"""Property-based tests of the validators: valid messages pass, mutated ones fail with a reason."""

import datetime as dt
import json

from hypothesis import given, settings
from hypothesis import strategies as st

from ecom_pipeline import card_numbers, messages
from ecom_pipeline.messages import InvalidMessage, parse_order, parse_payment

ids = st.integers(min_value=1, max_value=10**12 - 1)
texts = st.text(min_size=1, max_size=40).filter(lambda t: t.strip() and not card_numbers.find(t))
# Prices as the format has them, two decimals (float noise can hold 13+ digits, see README).
prices = st.decimals(min_value=0, max_value=10**9, places=2).map(float)

orders = st.fixed_dictionaries(
    {
        "order_id": ids,
        "customer_id": st.integers(min_value=-(10**12) + 1, max_value=10**12 - 1),
        "item": texts,
        "quantity": st.integers(min_value=1, max_value=10**12 - 1),
        "price": prices,
        "shipping_address": texts,
        "order_status": texts,
        "creation_date": st.dates(min_value=dt.date(1900, 1, 1)).map(dt.date.isoformat),
    }
)
payments = st.fixed_dictionaries(
    {
        "payment_id": ids,
        "order_id": ids,
        "payment_method": texts,
        "card_last_four": st.from_regex(r"\A[0-9]{4}\Z"),
        "payment_status": texts,
        "payment_datetime": st.datetimes(
            min_value=dt.datetime(1970, 1, 1), timezones=st.just(dt.UTC)
        ).map(lambda moment: moment.replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")),
    }
)
_not_a_number = [None, True, [1], {"a": 1}, "", "12"]
_not_text = [None, False, [1], {"a": 1}, "", "   ", 7, 1.5]
WRONG = {
    "order_id": [*_not_a_number, 0, -1, 1.5],
    "payment_id": [*_not_a_number, 1.5],
    "customer_id": [*_not_a_number, 1.5],
    "quantity": [*_not_a_number, 0, -1, 2.5],
    "price": [*_not_a_number, -0.01, -1],
    "creation_date": [*_not_text, "2024-13-01", "2024-02-30", "21/01/2024", "2024-1-1"],
    "card_last_four": [*_not_text, "123", "12345", "12a4", 1234],
    "payment_datetime": [*_not_text, "2024-01-21", "2024-01-21T12:01:30", "noon"],
}


def wrong_value(field: str):
    return st.sampled_from(WRONG.get(field, _not_text))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=6)
    ),
    max_leaves=20,
)


@given(orders)
def test_valid_orders_always_pass(order):
    assert parse_order(json.dumps(order).encode()).__dict__ == order


@given(payments)
def test_valid_payments_always_pass(payment):
    assert parse_payment(json.dumps(payment).encode()).__dict__ == payment


@given(orders, st.data())
def test_an_order_with_a_field_missing_or_of_a_wrong_value_fails_with_its_name(order, data):
    field = data.draw(st.sampled_from(sorted(order)))
    mutated = dict(order)
    if data.draw(st.booleans()):
        del mutated[field]
    else:
        mutated[field] = data.draw(wrong_value(field))
    try:
        parse_order(json.dumps(mutated).encode())
    except InvalidMessage as error:
        assert error.reason == f"invalid:{field}"
    else:
        raise AssertionError(f"{field}={mutated.get(field)!r} was accepted")


@given(payments, st.data())
def test_a_payment_with_a_field_missing_or_of_a_wrong_value_fails_with_its_name(payment, data):
    field = data.draw(st.sampled_from(sorted(payment)))
    mutated = dict(payment)
    if data.draw(st.booleans()):
        del mutated[field]
    else:
        mutated[field] = data.draw(wrong_value(field))
    try:
        parse_payment(json.dumps(mutated).encode())
    except InvalidMessage as error:
        assert error.reason == f"invalid:{field}"
    else:
        raise AssertionError(f"{field}={mutated.get(field)!r} was accepted")


ORDER_FIELDS = {"order_id", "customer_id", "item", "quantity", "price", "shipping_address",
                "order_status", "creation_date"}  # fmt: skip
PAYMENT_FIELDS = {"payment_id", "order_id", "payment_method", "card_last_four", "payment_status",
                  "payment_datetime"}  # fmt: skip


def assert_parsed_or_refused_for_a_reason(parse, fields: set[str], data: bytes) -> None:
    """Either the message's own fields come back, or a reason names the field (or the
    message) and the rule, never echoing a card number."""
    try:
        parsed = parse(data)
    except InvalidMessage as error:
        assert error.field in {*fields, "message", "card_number"}, error.field
        assert error.reason == f"invalid:{error.field}"
        assert str(error) == f"{error.field}: {error.rule}" and error.rule
        assert card_numbers.find(str(error)) == []
    else:
        sent = json.loads(data)
        assert set(parsed.__dict__) == fields
        assert all(parsed.__dict__[name] == sent[name] for name in fields)


@settings(max_examples=300)
@given(st.binary(max_size=300) | json_values.map(lambda v: json.dumps(v).encode()))
def test_any_input_either_parses_or_fails_with_a_reason_never_an_exception(data):
    assert_parsed_or_refused_for_a_reason(parse_order, ORDER_FIELDS, data)
    assert_parsed_or_refused_for_a_reason(parse_payment, PAYMENT_FIELDS, data)


@given(orders, st.binary(min_size=1, max_size=4), st.data())
def test_corrupted_bytes_never_raise_anything_but_invalid_message(order, junk, data):
    raw = json.dumps(order).encode()
    at = data.draw(st.integers(min_value=0, max_value=len(raw)))
    assert_parsed_or_refused_for_a_reason(parse_order, ORDER_FIELDS, raw[:at] + junk + raw[at:])


def typed(value: object) -> object:
    """A JSON value with the type of every part spelled out (1, 1.0 and True compare equal)."""
    if isinstance(value, dict):
        return ("object", [(key, typed(item)) for key, item in value.items()])
    if isinstance(value, list):
        return ("array", [typed(item) for item in value])
    return (type(value).__name__, str(value))


json_bodies = st.tuples(json_values, st.booleans()).map(
    lambda case: json.dumps(case[0], ensure_ascii=case[1]).encode()
)


@settings(max_examples=500)
@given(json_bodies, st.binary(max_size=3), st.data())
def test_the_fast_json_decoder_reads_what_json_loads_reads_and_nothing_else(body, junk, data):
    """Whatever msgspec accepts, the standard library reads to the same values and types, so
    the faster decoder changes no message's fate; what it refuses goes to `json.loads`."""
    at = data.draw(st.integers(min_value=0, max_value=len(body)))
    for candidate in (body, body[:at] + junk + body[at:]):
        try:
            fast = messages._decode_json(candidate)
        except messages.FAST_DECODER_REFUSALS:
            continue
        assert typed(fast) == typed(messages._json_with_reasons(candidate))
