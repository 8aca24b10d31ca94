"""The fact store's batched writes against the real Cassandra: same end state as one write
per message, whatever a pull holds."""

from __future__ import annotations

import dataclasses
import random

from ecom_pipeline.cassandra_session import prepare_in_keyspace
from ecom_pipeline.fact_store import FactStore
from ecom_pipeline.messages import mock_order, mock_payment


def _rows(session, settings) -> dict[int, tuple]:
    select = prepare_in_keyspace(
        session,
        settings,
        "SELECT order_id, order_status, shipping_address, payment_id, payment_method"
        " FROM orders_payments_facts",
    )
    return {row.order_id: row for row in session.execute(select)}


def test_a_pull_with_repeated_ids_ends_as_if_written_one_by_one_in_order(facts_table, settings):
    store = FactStore(facts_table, settings, write_batch=10)
    rng = random.Random(7)
    orders = [mock_order(order_id, rng) for order_id in range(1, 36)]
    orders += [dataclasses.replace(orders[4], order_status=status) for status in ("A", "B", "C")]
    payments = [mock_payment(order_id, rng) for order_id in range(1, 36)]
    payments.append(dataclasses.replace(payments[9], payment_method="Last One"))

    assert store.upsert_orders(orders) == [None] * len(orders)
    assert store.attach_payments(payments) == [None] * len(payments)

    rows = _rows(facts_table, settings)
    assert sorted(rows) == list(range(1, 36))
    assert rows[5].order_status == "C"
    assert rows[10].payment_method == "Last One"
    assert all(rows[i].payment_id == i + 1000 for i in rows)


def test_a_batch_over_cassandras_size_limit_is_written_row_by_row(facts_table, settings):
    """Messages may be up to 64 KiB; ten large ones exceed batch_size_fail_threshold
    (50 KiB), which Cassandra refuses for the batch, not for any one row."""
    store = FactStore(facts_table, settings, write_batch=10)
    rng = random.Random(8)
    orders = [mock_order(order_id, rng) for order_id in range(1, 11)]
    orders[3] = dataclasses.replace(orders[3], shipping_address="x" * 60_000)

    assert store.upsert_orders(orders) == [None] * 10

    rows = _rows(facts_table, settings)
    assert sorted(rows) == list(range(1, 11))
    assert len(rows[4].shipping_address) == 60_000
