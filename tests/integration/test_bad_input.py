"""Malformed input, card numbers, poison messages and secrets, against the real services."""

from __future__ import annotations

import json
import random
import re
import uuid
from pathlib import Path

from devtools.cassandra_node import run_cql_file
from ecom_pipeline.messages import mock_order
from tests.integration.pipeline import Pipeline
from tests.unit.test_messages import ORDER, PAYMENT
from tests.waiting import eventually


def order(number: int, /, **changes) -> bytes:
    return json.dumps({**ORDER, "order_id": number, **changes}).encode()


def payment(number: int, /, **changes) -> bytes:
    body = {**PAYMENT, "order_id": number, "payment_id": number + 1000}
    body["card_last_four"] = f"{number:04d}"[-4:]
    return json.dumps({**body, **changes}).encode()


def without(body: bytes, field: str) -> bytes:
    value = json.loads(body)
    del value[field]
    return json.dumps(value).encode()


BAD_ORDERS = [
    (b"\xff\xfe\x00garbage", "invalid:message"),
    (b"{not json", "invalid:message"),
    (b"   ", "invalid:message"),
    (b"[1, 2, 3]", "invalid:message"),
    (b'"just a string"', "invalid:message"),
    (b"null", "invalid:message"),
    (b"[" * 5000 + b"]" * 5000, "invalid:message"),
    (b'{"order_id": ' + b"9" * 70_000 + b"}", "invalid:message"),
    (without(order(9001), "order_id"), "invalid:order_id"),
    (order(9002, order_id="9002"), "invalid:order_id"),
    (order(-5), "invalid:order_id"),
    (order(0), "invalid:order_id"),
    (without(order(9003), "customer_id"), "invalid:customer_id"),
    (order(9004, customer_id=1.5), "invalid:customer_id"),
    (order(9005, item=""), "invalid:item"),
    (order(9006, item=None), "invalid:item"),
    (order(9007, item="\ud800"), "invalid:item"),
    (order(9008, quantity=0), "invalid:quantity"),
    (order(9009, quantity="3"), "invalid:quantity"),
    (order(9010, price=-10.0), "invalid:price"),
    (order(9011, price="999.99"), "invalid:price"),
    (b'{"order_id": 9012, "price": Infinity}', "invalid:message"),
    (order(9013, creation_date="2024-02-30"), "invalid:creation_date"),
    (order(9014, creation_date="yesterday"), "invalid:creation_date"),
    (order(9015, shipping_address=["123 Main St"]), "invalid:shipping_address"),
    (order(9016, order_status=True), "invalid:order_status"),
    (order(9017, shipping_address="card 4111 1111 1111 1111"), "invalid:card_number"),
]
BAD_PAYMENTS = [
    (b"\xc3\x28", "invalid:message"),
    (b"{}", "invalid:payment_id"),
    (b"42", "invalid:message"),
    (without(payment(9101), "payment_method"), "invalid:payment_method"),
    (payment(9102, payment_id=None), "invalid:payment_id"),
    (payment(9103, order_id=1.0), "invalid:order_id"),
    (payment(9104, card_last_four="42"), "invalid:card_last_four"),
    (payment(9105, card_last_four="abcd"), "invalid:card_last_four"),
    (payment(9106, payment_datetime="2024-01-21"), "invalid:payment_datetime"),
    (payment(9107, payment_datetime="2024-13-21T12:00:00Z"), "invalid:payment_datetime"),
    (payment(9108, payment_status=""), "invalid:payment_status"),
    (payment(9109, card_last_four="4111111111111111"), "invalid:card_number"),
    (payment(9110, payment_method="Visa 5500-0000-0000-0004"), "invalid:card_number"),
]
FULL_CARD_NUMBERS = ["4111111111111111", "5500000000000004", "4012888888881881"]


def test_a_corpus_of_malformed_messages_between_valid_ones(pipeline: Pipeline):
    consumers = [
        pipeline.start("order_data_consumer.py", "--batch-size", "7"),
        pipeline.start("ingest_in_fact_table.py", "--batch-size", "7", "--order-wait", "30"),
    ]
    for index, (bad, _) in enumerate(BAD_ORDERS):
        pipeline.publish("orders", order(index + 1))
        pipeline.publish("orders", bad)
    for index, (bad, _) in enumerate(BAD_PAYMENTS):
        pipeline.publish("payments", payment(index + 1))
        pipeline.publish("payments", bad)

    def all_valid_stored():
        rows = pipeline.rows()
        assert set(rows) == set(range(1, len(BAD_ORDERS) + 1))
        paid = {i for i, row in rows.items() if row["payment_id"]}
        assert paid == set(range(1, len(BAD_PAYMENTS) + 1))

    eventually(all_valid_stored, timeout=90)
    dead_orders = _reasons(eventually(lambda: _at_least(pipeline, "orders", 27)))
    dead_payments = _reasons(eventually(lambda: _at_least(pipeline, "payments", len(BAD_PAYMENTS))))
    assert dead_orders == sorted(reason for _, reason in BAD_ORDERS)
    assert dead_payments == sorted(reason for _, reason in BAD_PAYMENTS)
    for consumer in consumers:
        assert consumer.process.poll() is None, "a consumer crashed"
        assert "Traceback" not in consumer.output()
        assert consumer.stop() == 0


_collected: dict[str, list] = {}


def _at_least(pipeline: Pipeline, stream: str, count: int) -> list:
    messages = _collected.setdefault(f"{id(pipeline)}{stream}", [])
    messages += pipeline.dead_letters(stream, wait=1)
    assert len(messages) >= count, f"{len(messages)} of {count}"
    return messages


def _reasons(messages) -> list[str]:
    return sorted(m.attributes["reason"] for m in messages)


def test_no_full_card_number_reaches_the_table_the_dlqs_or_the_logs(pipeline: Pipeline):
    consumers = [
        pipeline.start("order_data_consumer.py", "--log-level", "DEBUG"),
        pipeline.start("ingest_in_fact_table.py", "--log-level", "DEBUG", "--order-wait", "0"),
    ]
    a, b, c = FULL_CARD_NUMBERS
    pipeline.publish("orders", order(1))
    pipeline.publish(
        "orders", order(2, shipping_address=f"pay with {a[:4]} {a[4:8]} {a[8:12]} {a[12:]}")
    )
    pipeline.publish("orders", order(3, note=b))
    eventually(lambda: _assert_rows(pipeline, {1}), timeout=30)
    pipeline.publish("payments", payment(1, card_last_four=c))
    pipeline.publish("payments", payment(1, payment_method=f"Visa {b}"))
    pipeline.publish("payments", payment(1, payment_status=f"{a[:4]}-{a[4:8]}-{a[8:12]}-{a[12:]}"))
    pipeline.publish("payments", payment(int(b)))

    dead_orders = eventually(lambda: _at_least(pipeline, "orders", 2), timeout=30)
    dead_payments = eventually(lambda: _at_least(pipeline, "payments", 4), timeout=30)
    for consumer in consumers:
        assert consumer.stop() == 0

    haystacks = {
        "table": json.dumps(list(pipeline.rows().values()), default=str),
        "dlq bodies": repr([m.data for m in dead_orders + dead_payments]),
        "dlq attributes": repr([dict(m.attributes) for m in dead_orders + dead_payments]),
        "logs": "".join(consumer.output() for consumer in consumers),
    }
    for where, text in haystacks.items():
        digits_only = re.sub(r"[ -]", "", text)
        for number in FULL_CARD_NUMBERS:
            assert number not in digits_only, f"a full card number reached the {where}"
    assert {m.attributes["reason"] for m in dead_orders + dead_payments} == {"invalid:card_number"}
    masked = json.loads(next(m.data for m in dead_orders if b"pay with" in m.data))
    assert masked["shipping_address"] == "pay with ************1111"


def _assert_rows(pipeline: Pipeline, ids: set[int]) -> None:
    assert set(pipeline.rows()) == ids


def test_pubsub_dead_letter_policy_stops_a_message_that_keeps_failing(services, pipeline):
    """The safety net: after max delivery attempts Pub/Sub itself forwards to the DLQ topic."""
    found = pipeline.subscriber.get_subscription(
        subscription=pipeline.subscription_path(pipeline.settings.payments.subscription)
    )
    assert found.dead_letter_policy.max_delivery_attempts == 20
    for name, dlq in (
        ("orders_data-sub", "dlq_orders_data"),
        ("payments_data-sub", "dlq_payments_data"),
    ):
        configured = pipeline.subscriber.get_subscription(
            subscription=pipeline.subscriber.subscription_path(services.settings.project, name)
        )
        assert configured.dead_letter_policy.dead_letter_topic.endswith(f"/topics/{dlq}")
        assert configured.dead_letter_policy.max_delivery_attempts == 20

    poison = f"poison {uuid.uuid4()}".encode()
    pipeline.publish("payments", poison)
    path = pipeline.subscription_path(pipeline.settings.payments.subscription)
    attempts = []

    def nack_until_forwarded():
        response = pipeline.subscriber.pull(subscription=path, max_messages=10, timeout=2)
        for received in response.received_messages:
            attempts.append(received.delivery_attempt)
            pipeline.subscriber.modify_ack_deadline(
                subscription=path, ack_ids=[received.ack_id], ack_deadline_seconds=0
            )
        forwarded = pipeline.dead_letters("payments", wait=0.5)
        assert forwarded, f"{len(attempts)} deliveries so far"
        return forwarded

    [forwarded] = eventually(nack_until_forwarded, timeout=120, interval=0.05)
    assert forwarded.data == poison
    assert attempts == list(range(1, 21))
    assert forwarded.attributes["CloudPubSubDeadLetterSourceDeliveryCount"] == "20"


TEST_ROLE = "pipeline_secrets_test"
TEST_ROLE_PASSWORD = "Pw-never-logged-7f3a9c41"  # as in test_role.cql


def test_credentials_never_reach_the_logs(pipeline, cassandra):
    run_cql_file(cassandra, Path(__file__).with_name("test_role.cql"))
    login = {"CASSANDRA_USERNAME": TEST_ROLE, "CASSANDRA_PASSWORD": TEST_ROLE_PASSWORD}
    consumer = pipeline.start_with_env("order_data_consumer.py", login, "--log-level", "DEBUG")
    pipeline.publish("orders", order(77))
    eventually(lambda: _assert_rows(pipeline, {77}), timeout=30)
    wrong = pipeline.start_with_env(
        "order_data_consumer.py",
        {**login, "CASSANDRA_PASSWORD": TEST_ROLE_PASSWORD + "-wrong"},
        "--log-level",
        "DEBUG",
    )
    assert wrong.wait(timeout=60) == 2
    assert consumer.stop() == 0
    for role_process in (consumer, wrong):
        assert TEST_ROLE_PASSWORD not in role_process.output()
    assert "refused the login of user 'pipeline_secrets_test'" in wrong.output()
    assert "cassandra_password='***'" in consumer.output()


def test_valid_mock_data_with_extra_fields_is_stored(pipeline: Pipeline):
    """Other producers may add fields: unknown fields never break a message, nor reach the row."""
    pipeline.start("order_data_consumer.py")
    order = mock_order(5, random.Random(1))
    pipeline.publish("orders", {**order.__dict__, "channel": "web", "tags": ["a"]})
    eventually(lambda: _assert_rows(pipeline, {5}), timeout=30)
    row = pipeline.rows()[5]
    assert {field: row[field] for field in order.__dict__} == order.__dict__
    assert "channel" not in row and "tags" not in row
