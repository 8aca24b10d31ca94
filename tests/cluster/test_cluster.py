"""The pipeline on a real three-node cluster (replication factor 3, LOCAL_QUORUM).

The ring is real: three JVMs on 127.0.0.1-3, tokens evenly spaced. So the write
batches meet three replica sets, and a node can die under the consumers.
"""

from __future__ import annotations

import random
import signal
import time

import pytest

from devtools import cassandra_cluster
from devtools.cassandra_node import schema_statements
from ecom_pipeline.fact_store import FactStore
from ecom_pipeline.messages import mock_order
from tests.integration.pipeline import account
from tests.integration.test_faults import publish_mock, wait_all_paid
from tests.integration.test_pipeline import WORKED_ORDER, WORKED_PAYMENT
from tests.waiting import eventually


def test_three_nodes_see_each_other_up_and_normal(services):
    result = cassandra_cluster.nodetool("status")
    assert result.returncode == 0, result.stderr
    up_normal = [line for line in result.stdout.splitlines() if line.startswith("UN ")]
    assert len(up_normal) == 3, result.stdout
    assert "Datacenter: dc1" in result.stdout


@pytest.mark.parametrize("replicas", [1, 3])
def test_write_batches_group_rows_by_the_real_replica_sets(services, cassandra, replicas):
    """RF 1: each node owns a third of the ring, so three replica sets; RF 3: one."""
    keyspace = f"ecom_rf{replicas}"
    cassandra.execute(
        f"CREATE KEYSPACE IF NOT EXISTS {keyspace} WITH replication = "
        f"{{'class': 'NetworkTopologyStrategy', 'dc1': {replicas}}}",
        timeout=60,
    )
    settings = services.settings.replace(cassandra_keyspace=keyspace)
    for statement in schema_statements(keyspace):
        if not statement.startswith("CREATE KEYSPACE"):
            cassandra.execute(statement, timeout=60)
    cassandra.cluster.refresh_schema_metadata()
    store = FactStore(cassandra, settings, write_batch=10)
    rng = random.Random(3)
    orders = [mock_order(order_id, rng) for order_id in range(1, 301)]
    statement = store._upsert_order  # the store's own statement, bound as _run binds it
    rows = [
        (order.order_id, statement.bind((order.order_id, *[None] * 7, 1_000, 0)))
        for order in orders
    ]
    groups = store._by_replicas(rows)
    metadata = cassandra.cluster.metadata

    def replica_set(bound) -> frozenset:
        return frozenset(
            host.address for host in metadata.get_replicas(keyspace, bound.routing_key)
        )

    sets = {replica_set(bound) for _, bound in rows}
    assert len(sets) == (3 if replicas == 1 else 1)
    assert all(len(s) == replicas for s in sets)
    for group in groups:
        assert len(group) <= 10
        assert len({replica_set(bound) for _, bound in group}) == 1, "a batch spans replica sets"
    assert sum(len(group) for group in groups) == 300

    assert store.upsert_orders(orders, [1_000] * 300) == [None] * 300
    count = cassandra.execute(f"SELECT count(*) FROM {keyspace}.orders_payments_facts").one()[0]
    assert count == 300
    cassandra.execute(f"DROP KEYSPACE {keyspace}", timeout=60)


def test_the_worked_example_on_the_cluster(pipeline):
    pipeline.start("order_data_consumer.py")
    pipeline.start("ingest_in_fact_table.py", "--order-wait", "3")
    pipeline.publish("orders", WORKED_ORDER)
    pipeline.publish("payments", WORKED_PAYMENT)
    eventually(lambda: _row(pipeline, {**WORKED_ORDER, **WORKED_PAYMENT}), timeout=60)


def _row(pipeline, expected: dict) -> None:
    assert pipeline.rows().get(42) == expected


def test_a_node_killed_under_the_consumers_loses_nothing(services, pipeline, nodes_back):
    """LOCAL_QUORUM with replication factor 3 needs two nodes: one killed is no outage."""
    for _ in range(2):
        pipeline.start("order_data_consumer.py", "--batch-size", "50")
        pipeline.start("ingest_in_fact_table.py", "--batch-size", "50")
    orders, payments = publish_mock(pipeline, range(1, 301), range(1, 301), seed=11)
    eventually(lambda: _at_least(len(pipeline.rows()), 30), timeout=60)
    cassandra_cluster.NODES[2].process.stop(sig=signal.SIGKILL)
    more_orders, more_payments = publish_mock(pipeline, range(301, 601), range(301, 601), seed=12)
    wait_all_paid(pipeline, range(1, 601), timeout=180)
    account(pipeline, {**orders, **more_orders}, {**payments, **more_payments})
    for role in pipeline.roles:
        assert "store outage" not in role.output()
        assert role.stop() == 0


def test_two_nodes_down_is_an_outage_that_dead_letters_nothing(services, pipeline, nodes_back):
    consumers = [
        pipeline.start("order_data_consumer.py"),
        pipeline.start("ingest_in_fact_table.py"),
    ]
    orders, payments = publish_mock(pipeline, range(1, 51), range(1, 51), seed=13)
    wait_all_paid(pipeline, range(1, 51), timeout=120)
    for index in (2, 3):
        cassandra_cluster.stop_one(index)
    more_orders, more_payments = publish_mock(pipeline, range(51, 151), range(51, 151), seed=14)
    time.sleep(30)
    assert pipeline.dead_letters("orders", wait=1) == []
    assert pipeline.dead_letters("payments", wait=1) == []
    for index in (2, 3):
        cassandra_cluster.start_one(index, services.settings)
    wait_all_paid(pipeline, range(1, 151), timeout=240)
    account(pipeline, {**orders, **more_orders}, {**payments, **more_payments})
    for consumer in consumers:
        output = consumer.output()
        assert "store outage" in output and "the outage that started at" in output
        assert consumer.stop() == 0


def _at_least(value: int, minimum: int) -> None:
    assert value >= minimum, f"{value} < {minimum}"
