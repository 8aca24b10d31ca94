"""Right answers under reordering, partial outages and schema faults, on the real services.

- An older version delivered after a newer one was written never wins (event-time writes).
- Writes that fail while Cassandra still answers (LOCAL_QUORUM unsatisfiable) are an
  outage: nothing is dead-lettered however long it lasts, and everything is stored after.
- A dropped table is a set-up problem: nothing is dead-lettered until schema.cql is back.
"""

from __future__ import annotations

import re
import time

import pytest

from devtools import cassandra_node
from tests.integration.pipeline import Pipeline, RoleProcess, account
from tests.integration.test_pipeline import WORKED_ORDER, WORKED_PAYMENT
from tests.waiting import eventually

STORED = re.compile(r"stored (\d+), dead-lettered (\d+)")


def stored(roles: list[RoleProcess]) -> int:
    """Messages the roles have stored, from the last stats line of each."""
    total = 0
    for role in roles:
        counts = STORED.findall(role.output())
        total += int(counts[-1][0]) if counts else 0
    return total


def lease_one(pipeline: Pipeline, subscription: str) -> None:
    """Pull one message and keep it unacked: it comes back once its ack deadline is over."""
    path = pipeline.subscription_path(subscription)
    response = eventually(
        lambda: _non_empty(pipeline.subscriber.pull(subscription=path, max_messages=1, timeout=5))
    )
    assert len(response.received_messages) == 1


def _non_empty(response):
    assert response.received_messages, "nothing to pull yet"
    return response


@pytest.mark.parametrize("instances", [1, 2])
def test_an_older_version_delivered_after_a_newer_one_never_wins(
    services, facts_table, tmp_path, instances
):
    pipeline = Pipeline(services.settings, tmp_path, facts_table, ack_deadline=10).create()
    try:
        older_order = {**WORKED_ORDER, "order_status": "Pending", "item": "Book"}
        newer_order = {**WORKED_ORDER, "order_status": "Shipped", "item": "Laptop"}
        older_payment = {**WORKED_PAYMENT, "payment_method": "PayPal"}
        newer_payment = {**WORKED_PAYMENT, "payment_method": "Credit Card"}

        pipeline.publish("orders", older_order)
        lease_one(pipeline, pipeline.settings.orders.subscription)  # held back ~10 s
        time.sleep(0.01)
        pipeline.publish("orders", newer_order)
        orders = [pipeline.start("order_data_consumer.py") for _ in range(instances)]
        eventually(lambda: _row_is(pipeline, newer_order), timeout=30)

        pipeline.publish("payments", older_payment)
        lease_one(pipeline, pipeline.settings.payments.subscription)
        time.sleep(0.01)
        pipeline.publish("payments", newer_payment)
        payments = [pipeline.start("ingest_in_fact_table.py") for _ in range(instances)]
        eventually(lambda: _row_is(pipeline, {**newer_order, **newer_payment}), timeout=30)

        # The held-back copies come back and are written too, with their older times.
        eventually(lambda: _at_least(stored(orders), 2), timeout=60)
        eventually(lambda: _at_least(stored(payments), 2), timeout=60)
        assert pipeline.rows() == {42: {**newer_order, **newer_payment}}
        assert pipeline.dead_letters("orders", wait=1) == []
        assert pipeline.dead_letters("payments", wait=1) == []
    finally:
        pipeline.close()


def consumers_at_work(pipeline: Pipeline) -> list[RoleProcess]:
    """Both consumers, started and seen to store a first order (statements prepared)."""
    consumers = [
        pipeline.start("order_data_consumer.py"),
        pipeline.start("ingest_in_fact_table.py"),
    ]
    pipeline.publish("orders", {**WORKED_ORDER, "order_id": 1})
    eventually(lambda: _at_least(len(pipeline.rows()), 1), timeout=30)
    return consumers


def _row_is(pipeline: Pipeline, expected: dict) -> None:
    row = pipeline.rows().get(42, {})
    assert {key: row.get(key) for key in expected} == expected, row


def _at_least(value: int, minimum: int) -> None:
    assert value >= minimum, f"{value} < {minimum}"


@pytest.mark.restarts_services
def test_writes_failing_for_three_minutes_dead_letter_nothing(services, facts_table, tmp_path):
    """The keyspace at replication factor 3 on one node: the node answers, but no
    LOCAL_QUORUM write or read can succeed. The subscriptions forward to the DLQ
    after 5 deliveries, so a consumer that kept pulling would lose everything there."""
    pipeline = Pipeline(
        services.settings, tmp_path, facts_table, ack_deadline=10, max_delivery_attempts=5
    ).create()
    keyspace = services.settings.cassandra_keyspace
    try:
        consumers = consumers_at_work(pipeline)

        _replication(facts_table, keyspace, 3)
        outage_started = time.monotonic()
        producers = [
            pipeline.start(
                "order_data_producer.py", "--interval", "1", "--first-id", "2",
                "--last-id", "101", "--count", "100",
            ),
            pipeline.start(
                "payments_data_producer.py", "--interval", "1", "--first-id", "2",
                "--last-id", "101",
            ),
        ]  # fmt: skip
        time.sleep(max(0.0, 180 - (time.monotonic() - outage_started)))
        assert pipeline.dead_letters("orders", wait=1) == []
        assert pipeline.dead_letters("payments", wait=1) == []
        _replication(facts_table, keyspace, 1)

        for producer in producers:
            assert producer.wait(timeout=60) == 0
        eventually(lambda: _all_paid(pipeline, range(2, 102)), timeout=240)
        account(
            pipeline,
            {i: {"order_id": i} for i in range(1, 102)},
            {i: {"payment_id": i + 1000} for i in range(2, 102)},
        )
        assert pipeline.dead_letters("orders", wait=1) == []
        for consumer in consumers:
            output = consumer.output()
            assert output.count("store outage:") == 1, "an outage is logged once, when it starts"
            assert "Unavailable" in output or "LOCAL_QUORUM" in output
            lasted = re.search(r"the outage that started at \S+ UTC lasted (\d+)s", output)
            assert lasted and int(lasted.group(1)) >= 150, output[-3000:]
            assert consumer.stop() == 0
    finally:
        _replication(facts_table, keyspace, 1)
        pipeline.close()


def _replication(session, keyspace: str, factor: int) -> None:
    session.execute(
        f"ALTER KEYSPACE {keyspace} WITH replication = "
        f"{{'class': 'SimpleStrategy', 'replication_factor': {factor}}}",
        timeout=60,
    )


def _all_paid(pipeline: Pipeline, order_ids) -> None:
    rows = pipeline.rows()
    missing = [i for i in order_ids if rows.get(i, {}).get("payment_id") is None]
    assert not missing, f"{len(missing)} not paid yet, e.g. {missing[:10]}"


@pytest.mark.restarts_services
def test_a_dropped_table_dead_letters_nothing_until_the_schema_is_back(
    services, facts_table, tmp_path
):
    pipeline = Pipeline(services.settings, tmp_path, facts_table).create()
    try:
        consumers = consumers_at_work(pipeline)

        keyspace = services.settings.cassandra_keyspace
        facts_table.execute(f"DROP TABLE {keyspace}.orders_payments_facts", timeout=60)
        for order_id in range(2, 32):
            pipeline.publish("orders", {**WORKED_ORDER, "order_id": order_id})
            pipeline.publish("payments", {**WORKED_PAYMENT, "order_id": order_id})
        time.sleep(20)
        assert pipeline.dead_letters("orders", wait=1) == []
        assert pipeline.dead_letters("payments", wait=1) == []
        for consumer in consumers:
            assert "set-up problem" in consumer.output()
            assert "does not exist" in consumer.output()
    finally:
        cassandra_node.ensure_roles_and_schema(services.settings)
    try:
        eventually(lambda: _all_paid(pipeline, range(2, 32)), timeout=120)
        account(
            pipeline,
            {i: {"order_id": i} for i in range(2, 32)},
            {i: {"payment_id": WORKED_PAYMENT["payment_id"]} for i in range(2, 32)},
        )
        assert pipeline.dead_letters("orders", wait=1) == []
        for consumer in consumers:
            assert consumer.stop() == 0
    finally:
        pipeline.close()


def test_an_order_wait_the_subscription_cannot_keep_is_refused_in_one_sentence(pipeline):
    role = pipeline.start("ingest_in_fact_table.py", "--order-wait", "20000")
    assert role.wait(timeout=60) == 2
    output = role.output()
    assert "error: --order-wait 20000 cannot be kept" in output
    assert "Traceback" not in output
