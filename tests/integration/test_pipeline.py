"""The four roles end to end, as separate processes, against the real services."""

from __future__ import annotations

import json
import re
import signal
import time

from ecom_pipeline.consumer import Consumer
from ecom_pipeline.fact_store import FactStore
from ecom_pipeline.ingest import OrderIngest, PaymentIngest
from ecom_pipeline.shutdown import Shutdown
from tests.integration.pipeline import Pipeline
from tests.unit.test_messages import ORDER, PAYMENT
from tests.waiting import eventually

WORKED_ORDER = ORDER  # the README's worked example
WORKED_PAYMENT = PAYMENT
ORPHAN_PAYMENT = {**WORKED_PAYMENT, "payment_id": 1999, "order_id": 999, "card_last_four": "0999"}


def wait_for_rows(pipeline: Pipeline, check, timeout: float = 60.0):
    def rows_match():
        rows = pipeline.rows()
        assert check(rows), f"{len(rows)} rows: {sorted(rows)[:30]}"
        return rows

    return eventually(rows_match, timeout=timeout)


def paid(rows: dict, order_ids) -> bool:
    return all(rows.get(i, {}).get("payment_id") == i + 1000 for i in order_ids)


def test_worked_example_gives_the_13_column_row_and_the_orphan_goes_to_the_dlq(pipeline):
    pipeline.start("order_data_consumer.py")
    pipeline.start("ingest_in_fact_table.py", "--order-wait", "3")
    pipeline.publish("orders", WORKED_ORDER)
    wait_for_rows(pipeline, lambda rows: 42 in rows)
    orphan_bytes = json.dumps(ORPHAN_PAYMENT, indent=1).encode()  # any formatting, kept as sent
    orphan_id = pipeline.publish("payments", orphan_bytes)
    pipeline.publish("payments", WORKED_PAYMENT)

    rows = wait_for_rows(pipeline, lambda rows: rows.get(42, {}).get("payment_id") == 1042)
    assert rows == {42: {**WORKED_ORDER, **WORKED_PAYMENT}}
    assert all(value is not None for value in rows[42].values()) and len(rows[42]) == 13

    dead = eventually(lambda: _non_empty(pipeline.dead_letters("payments")), timeout=30)
    assert len(dead) == 1
    assert dead[0].data == orphan_bytes
    attributes = dict(dead[0].attributes)
    assert attributes["reason"] == "order_not_found"
    assert attributes["order_id"] == "999"
    assert attributes["original_message_id"] == orphan_id
    assert attributes["source_subscription"] == pipeline.settings.payments.subscription
    assert "original_publish_time" in attributes and "delivery_attempt" in attributes
    assert set(pipeline.rows()) == {42}, "the orphan payment must not create a row"


def _non_empty(messages: list) -> list:
    assert messages
    return messages


def test_shortened_default_scenario_pays_orders_1_to_20_and_dead_letters_21_to_50(pipeline):
    consumers = [
        pipeline.start("order_data_consumer.py"),
        pipeline.start("ingest_in_fact_table.py", "--order-wait", "15"),
    ]
    orders = pipeline.start(
        "order_data_producer.py", "--interval", "0.05", "--last-id", "20", "--count", "40"
    )
    payments = pipeline.start("payments_data_producer.py", "--interval", "0.05", "--last-id", "50")
    assert orders.wait(timeout=60) == 0
    assert payments.wait(timeout=60) == 0

    rows = wait_for_rows(pipeline, lambda rows: paid(rows, range(1, 21)), timeout=60)
    assert set(rows) == set(range(1, 21))
    for order_id, row in rows.items():
        assert row["card_last_four"] == f"{order_id:04d}"
        assert row["payment_status"] == "Completed"
        assert None not in row.values()

    def all_dead_letters():
        dead.extend(pipeline.dead_letters("payments"))
        assert len(dead) >= 30
        return dead

    dead: list = []
    eventually(all_dead_letters, timeout=60)
    assert sorted(json.loads(m.data)["order_id"] for m in dead) == list(range(21, 51))
    assert {m.attributes["reason"] for m in dead} == {"order_not_found"}
    assert pipeline.dead_letters("orders", wait=1) == []
    for consumer in consumers:
        assert consumer.stop() == 0


def test_an_order_published_again_keeps_its_payment(pipeline):
    pipeline.start("order_data_consumer.py")
    pipeline.start("ingest_in_fact_table.py")
    pipeline.publish("orders", WORKED_ORDER)
    pipeline.publish("payments", WORKED_PAYMENT)
    wait_for_rows(pipeline, lambda rows: paid(rows, [42]))

    shipped = {**WORKED_ORDER, "order_status": "Shipped", "quantity": 2}
    pipeline.publish("orders", shipped)
    rows = wait_for_rows(pipeline, lambda rows: rows[42]["order_status"] == "Shipped")
    assert rows[42] == {**shipped, **WORKED_PAYMENT}


def test_messages_published_twice_give_the_same_final_state(pipeline):
    pipeline.start("order_data_consumer.py")
    pipeline.start("ingest_in_fact_table.py", "--order-wait", "3")
    for _ in range(2):
        pipeline.publish("orders", WORKED_ORDER)
    wait_for_rows(pipeline, lambda rows: 42 in rows)
    for _ in range(2):
        pipeline.publish("payments", WORKED_PAYMENT)
    rows = wait_for_rows(pipeline, lambda rows: paid(rows, [42]))
    assert rows == {42: {**WORKED_ORDER, **WORKED_PAYMENT}}
    assert pipeline.dead_letters("payments", wait=2) == []


def test_a_payment_ahead_of_its_order_waits_and_is_attached(pipeline):
    payments = pipeline.start("ingest_in_fact_table.py", "--order-wait", "60")
    pipeline.publish("payments", WORKED_PAYMENT)
    eventually(lambda: _assert_in("delayed 1", payments.output()), timeout=30)

    pipeline.start("order_data_consumer.py")
    pipeline.publish("orders", WORKED_ORDER)
    rows = wait_for_rows(pipeline, lambda rows: paid(rows, [42]), timeout=60)
    assert rows == {42: {**WORKED_ORDER, **WORKED_PAYMENT}}
    assert pipeline.dead_letters("payments", wait=1) == []


def _assert_in(needle: str, haystack: str) -> None:
    assert needle in haystack


def test_sigterm_mid_stream_exits_0_quickly_and_a_restart_misses_nothing(pipeline):
    consumer = pipeline.start("order_data_consumer.py", "--batch-size", "50")
    producer = pipeline.start(
        "order_data_producer.py", "--interval", "0.005", "--last-id", "400", "--count", "400"
    )
    wait_for_rows(pipeline, lambda rows: len(rows) >= 20)
    assert consumer.stop(signal.SIGTERM, timeout=10) == 0
    assert "SIGTERM received" in consumer.output()
    assert producer.wait(timeout=60) == 0

    restarted = pipeline.start("order_data_consumer.py")
    rows = wait_for_rows(pipeline, lambda rows: len(rows) == 400, timeout=60)
    assert set(rows) == set(range(1, 401))
    assert restarted.stop() == 0


def test_our_producers_speak_the_spec_format(pipeline):
    """What a third-party consumer would read from our topics: names and JSON types exactly."""
    orders = pipeline.start("order_data_producer.py", "--interval", "0", "--count", "5")
    payments = pipeline.start("payments_data_producer.py", "--interval", "0", "--last-id", "5")
    assert orders.wait(timeout=60) == 0 and payments.wait(timeout=60) == 0

    order_messages = [
        json.loads(m.data) for m in pipeline.pull(pipeline.settings.orders.subscription)
    ]
    payment_messages = [
        json.loads(m.data) for m in pipeline.pull(pipeline.settings.payments.subscription)
    ]
    assert sorted(o["order_id"] for o in order_messages) == [1, 2, 3, 4, 5]
    for order in order_messages:
        assert {k: type(v) for k, v in order.items()} == {
            "order_id": int,
            "customer_id": int,
            "item": str,
            "quantity": int,
            "price": float,
            "shipping_address": str,
            "order_status": str,
            "creation_date": str,
        }
        assert 100 <= order["customer_id"] <= 1000 and 1 <= order["quantity"] <= 10
        assert 100 <= order["price"] <= 1500 and round(order["price"], 2) == order["price"]
        assert re.fullmatch(r"\d{4}-\d\d-\d\d", order["creation_date"])
    assert len(payment_messages) == 5
    for payment in payment_messages:
        assert {k: type(v) for k, v in payment.items()} == {
            "payment_id": int,
            "order_id": int,
            "payment_method": str,
            "card_last_four": str,
            "payment_status": str,
            "payment_datetime": str,
        }
        assert payment["payment_id"] == payment["order_id"] + 1000
        assert payment["card_last_four"] == f"{payment['order_id']:04d}"
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", payment["payment_datetime"])


class _FirstAckLost:
    """A subscriber whose first acknowledge never reaches Pub/Sub, as in a crash after a write."""

    def __init__(self, subscriber):
        self._subscriber = subscriber
        self.lost_acks = 0

    def acknowledge(self, **request):
        if not self.lost_acks:
            self.lost_acks += len(request["ack_ids"])
            return None
        return self._subscriber.acknowledge(**request)

    def __getattr__(self, name):
        return getattr(self._subscriber, name)


def test_a_payment_redelivered_after_its_write_gives_the_same_row(services, facts_table, tmp_path):
    pipeline = Pipeline(services.settings, tmp_path, facts_table, ack_deadline=10).create()
    try:
        store = FactStore(facts_table, pipeline.settings)
        pipeline.publish("orders", WORKED_ORDER)
        pipeline.publish("payments", WORKED_PAYMENT)
        _run_consumer(pipeline, pipeline.subscriber, "orders", OrderIngest(store), 1)
        flaky = _FirstAckLost(pipeline.subscriber)
        consumer = _run_consumer(pipeline, flaky, "payments", PaymentIngest(store), 2)
        assert flaky.lost_acks == 1
        assert consumer.stats.counts["stored"] == 2, "the payment must have come back"
        assert pipeline.rows() == {42: {**WORKED_ORDER, **WORKED_PAYMENT}}
    finally:
        pipeline.close()


def _run_consumer(pipeline, subscriber, stream: str, handler, stored: int) -> Consumer:
    shutdown = Shutdown()
    consumer = Consumer(
        name="test consumer",
        settings=pipeline.settings,
        stream=getattr(pipeline.settings, stream),
        handler=handler,
        subscriber=subscriber,
        publisher=pipeline.publisher,
        shutdown=shutdown,
        pull_timeout=1.0,
    )
    deadline = time.monotonic() + 60
    while consumer.stats.counts["stored"] < stored and time.monotonic() < deadline:
        consumer.process(consumer.pull())
    return consumer
