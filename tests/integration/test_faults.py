"""Faults injected into real services: every published message ends as a row or a dead letter.

Each scenario ends with an accounting check: messages published = rows with their
data + dead letters, nothing lost, nothing duplicated.
"""

from __future__ import annotations

import json
import os
import random
import signal
import time

import pytest

from devtools import cassandra_node
from ecom_pipeline.messages import mock_order, mock_payment
from tests.integration.pipeline import Pipeline, account, published_ids
from tests.integration.test_services import live_processes_with
from tests.waiting import eventually

pytestmark = pytest.mark.restarts_services


def local_only(services) -> None:
    if services.mode != "local":
        pytest.skip("stopping and pausing services is done on the local processes")


def publish_mock(pipeline: Pipeline, order_ids, payment_ids, seed: int = 1):
    """Publish mock orders and payments; returns what was published, by order id."""
    rng = random.Random(seed)
    orders = {i: mock_order(i, rng) for i in order_ids}
    payments = {i: mock_payment(i, rng) for i in payment_ids}
    futures = [
        pipeline.publisher.publish(pipeline.topic_path(pipeline.settings.orders.topic), o.to_json())
        for o in orders.values()
    ] + [
        pipeline.publisher.publish(
            pipeline.topic_path(pipeline.settings.payments.topic), p.to_json()
        )
        for p in payments.values()
    ]
    for future in futures:
        future.result(timeout=60)
    return (
        {i: o.__dict__ for i, o in orders.items()},
        {i: {k: v for k, v in p.__dict__.items() if k != "order_id"} for i, p in payments.items()},
    )


def wait_all_paid(pipeline: Pipeline, order_ids, timeout: float = 120):
    def all_paid():
        rows = pipeline.rows()
        missing = [i for i in order_ids if rows.get(i, {}).get("payment_id") is None]
        assert not missing, f"{len(missing)} not paid yet, e.g. {missing[:10]}"

    eventually(all_paid, timeout=timeout)


def test_cassandra_down_for_half_a_minute_loses_nothing_and_dead_letters_nothing(
    services, pipeline
):
    local_only(services)
    consumers = [
        pipeline.start("order_data_consumer.py", "--batch-size", "20"),
        pipeline.start("ingest_in_fact_table.py", "--batch-size", "20"),
    ]
    orders = pipeline.start(
        "order_data_producer.py", "--interval", "0.1", "--last-id", "300", "--count", "300"
    )
    payments = pipeline.start("payments_data_producer.py", "--interval", "0.1", "--last-id", "300")
    eventually(lambda: _at_least(len(pipeline.rows()), 20), timeout=60)
    services.stop_cassandra()
    try:
        time.sleep(30)
    finally:
        services.start_cassandra()
    assert orders.wait(timeout=120) == 0 and payments.wait(timeout=120) == 0
    wait_all_paid(pipeline, range(1, 301), timeout=180)
    account(
        pipeline,
        {i: {"order_id": i} for i in range(1, 301)},
        {i: {"payment_id": i + 1000} for i in range(1, 301)},
    )
    for consumer in consumers:
        output = consumer.output()
        assert output.count("backing off and retrying") == 1, "an outage is logged once"
        assert "working again" in output
        assert consumer.stop() == 0


def _at_least(value: int, minimum: int) -> None:
    assert value >= minimum


def test_cassandra_paused_mid_stream_times_out_and_resumes_without_loss(services, pipeline):
    local_only(services)
    consumers = [
        pipeline.start("order_data_consumer.py", "--batch-size", "20"),
        pipeline.start("ingest_in_fact_table.py", "--batch-size", "20"),
    ]
    orders, payments = publish_mock(pipeline, range(1, 101), range(1, 101), seed=2)
    eventually(lambda: _at_least(len(pipeline.rows()), 10), timeout=60)
    pid = cassandra_node.CASSANDRA.pid()
    os.kill(pid, signal.SIGSTOP)
    try:
        orders2, payments2 = publish_mock(pipeline, range(101, 201), range(101, 201), seed=3)
        time.sleep(20)
    finally:
        os.kill(pid, signal.SIGCONT)
    wait_all_paid(pipeline, range(1, 201), timeout=180)
    account(pipeline, {**orders, **orders2}, {**payments, **payments2})
    for consumer in consumers:
        assert consumer.stop() == 0


def test_emulator_restart_producers_and_consumers_reconnect_by_themselves(services, pipeline):
    local_only(services)
    consumers = [
        pipeline.start("order_data_consumer.py"),
        pipeline.start("ingest_in_fact_table.py"),
    ]
    orders = pipeline.start(
        "order_data_producer.py", "--interval", "0.1", "--last-id", "60", "--count", "60"
    )
    eventually(lambda: _at_least(len(published_ids(orders)), 15), timeout=60)
    # The emulator keeps messages in memory only: losing what it holds when it stops
    # is its nature, not ours. So the test stops it when nothing confirmed is
    # waiting in it: the order producer frozen, the payment producer between two
    # publishes, every confirmed message stored.
    orders.process.send_signal(signal.SIGSTOP)
    confirmed = published_ids(orders)
    eventually(lambda: _superset(pipeline.rows(), confirmed), timeout=60)
    payments = pipeline.start("payments_data_producer.py", "--interval", "4", "--last-id", "4")
    eventually(lambda: _paid(pipeline.rows(), published_ids(payments), 2), timeout=60)

    services.stop_emulator()
    assert not live_processes_with("cloud-pubsub-emulator"), "a stopped emulator leaves nothing"
    time.sleep(2)  # the payment producer's next publish falls in here and is retried
    services.start_emulator()
    pipeline.create()
    orders.process.send_signal(signal.SIGCONT)

    assert orders.wait(timeout=120) == 0, "no order may be lost"
    assert payments.wait(timeout=120) == 0, "no payment may be lost"
    wait_all_paid(pipeline, range(1, 5), timeout=120)
    eventually(lambda: _superset(pipeline.rows(), set(range(1, 61))), timeout=120)
    account(
        pipeline,
        {i: {"order_id": i} for i in range(1, 61)},
        {i: {"payment_id": i + 1000} for i in range(1, 5)},
    )
    for consumer in consumers:
        assert consumer.process.poll() is None, "consumers must survive the restart"
        assert "working again" in consumer.output()
        assert consumer.stop() == 0


def _paid(rows: dict, ids: set[int], at_least: int) -> None:
    assert len(ids) >= at_least
    assert all(rows.get(i, {}).get("payment_id") for i in ids)


def _superset(rows: dict, ids: set[int]) -> None:
    assert ids <= set(rows), f"{len(ids - set(rows))} not stored yet"


def test_consumers_killed_mid_batch_and_restarted_give_a_complete_result(
    services, facts_table, tmp_path
):
    pipeline = Pipeline(services.settings, tmp_path, facts_table, ack_deadline=10).create()
    try:
        first = [
            pipeline.start("order_data_consumer.py", "--batch-size", "25"),
            pipeline.start("ingest_in_fact_table.py", "--batch-size", "25"),
        ]
        orders, payments = publish_mock(pipeline, range(1, 401), range(1, 401), seed=4)
        eventually(lambda: _at_least(len(pipeline.rows()), 30), timeout=60)
        for consumer in first:
            consumer.stop(signal.SIGKILL)
        for script in ("order_data_consumer.py", "ingest_in_fact_table.py"):
            pipeline.start(script)
        wait_all_paid(pipeline, range(1, 401), timeout=180)
        account(pipeline, orders, payments)
    finally:
        pipeline.close()


def test_two_instances_of_each_consumer_give_the_same_table_as_one(pipeline):
    for _ in range(2):
        pipeline.start("order_data_consumer.py", "--batch-size", "50")
        pipeline.start("ingest_in_fact_table.py", "--batch-size", "50", "--order-wait", "10")
    orders, payments = publish_mock(pipeline, range(1, 501), range(1, 531), seed=5)
    wait_all_paid(pipeline, range(1, 501), timeout=120)
    dead: list = []

    def orphans_dead_lettered():
        dead.extend(pipeline.dead_letters("payments", wait=1))
        assert len(dead) >= 30

    eventually(orphans_dead_lettered, timeout=90)
    assert sorted(json.loads(m.data)["order_id"] for m in dead) == list(range(501, 531))
    account(pipeline, orders, {i: p for i, p in payments.items() if i <= 500})
    for role in pipeline.roles:
        assert role.stop() == 0


def test_an_instance_killed_every_few_seconds_costs_no_valid_payment_its_grace(pipeline):
    """Two instances of each consumer, one of them SIGKILLed and restarted every 4 s while
    3,000 orders and 3,500 payments flow, with a 30 s --order-wait: what a killed order
    consumer held comes back within the 10 s ack deadline, so only the 500 orphans (no
    order ever) end on the DLQ, and every order gets its row and its payment."""
    payment_args = ("--order-wait", "30")
    orders = [pipeline.start("order_data_consumer.py") for _ in range(2)]
    payments = [pipeline.start("ingest_in_fact_table.py", *payment_args) for _ in range(2)]
    producers = [
        pipeline.start(
            "order_data_producer.py", "--interval", "0.005", "--last-id", "3000", "--count", "3000"
        ),
        pipeline.start("payments_data_producer.py", "--interval", "0.005", "--last-id", "3500"),
    ]
    killed = 0
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline:
        time.sleep(4)
        group, script, args = (
            (orders, "order_data_consumer.py", ())
            if killed % 2 == 0
            else (payments, "ingest_in_fact_table.py", payment_args)
        )
        group.pop(0).stop(signal.SIGKILL)
        group.append(pipeline.start(script, *args))
        killed += 1
    for producer in producers:
        assert producer.wait(timeout=60) == 0
    wait_all_paid(pipeline, range(1, 3001), timeout=180)
    dead: list = []

    def orphans_dead_lettered():
        dead.extend(pipeline.dead_letters("payments", wait=1))
        assert len(dead) >= 500, f"{len(dead)} of 500"

    eventually(orphans_dead_lettered, timeout=120)
    assert sorted(json.loads(m.data)["order_id"] for m in dead) == list(range(3001, 3501))
    account(
        pipeline,
        {i: {"order_id": i} for i in range(1, 3001)},
        {i: {"payment_id": i + 1000} for i in range(1, 3001)},
    )
    assert killed >= 8
