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

    order_times = list(range(1_000, 1_000 + len(orders)))
    payment_times = list(range(1_000, 1_000 + len(payments)))
    assert store.upsert_orders(orders, order_times) == [None] * len(orders)
    assert store.attach_payments(payments, payment_times) == [None] * len(payments)

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

    assert store.upsert_orders(orders, [1_000] * 10) == [None] * 10

    rows = _rows(facts_table, settings)
    assert sorted(rows) == list(range(1, 11))
    assert len(rows[4].shipping_address) == 60_000


def test_the_latest_published_version_wins_whatever_order_the_writes_come_in(facts_table, settings):
    store = FactStore(facts_table, settings, write_batch=10)
    rng = random.Random(9)
    order, payment = mock_order(1, rng), mock_payment(1, rng)
    older = dataclasses.replace(order, order_status="Pending")
    newer = dataclasses.replace(order, order_status="Shipped")
    older_payment = dataclasses.replace(payment, payment_method="PayPal")

    store.upsert_orders([newer], [2_000])
    store.upsert_orders([older], [1_000])  # redelivered late
    store.attach_payments([payment, older_payment], [3_000, 2_500])  # one pull, out of order
    store.upsert_orders([dataclasses.replace(older, item="Book")], [1_500])

    row = _rows(facts_table, settings)[1]
    assert (row.order_status, row.payment_method) == ("Shipped", payment.payment_method)
    written = prepare_in_keyspace(
        facts_table,
        settings,
        "SELECT WRITETIME(item), WRITETIME(payment_id) FROM orders_payments_facts"
        " WHERE order_id = 1",
    )
    assert tuple(facts_table.execute(written).one()) == (2_000, 3_000)


def test_a_ttl_makes_what_a_write_touches_expire(facts_table, settings):
    rng = random.Random(10)
    FactStore(facts_table, settings, ttl=600).upsert_orders([mock_order(1, rng)], [1_000])
    FactStore(facts_table, settings).upsert_orders([mock_order(2, rng)], [1_000])
    ttl = prepare_in_keyspace(
        facts_table, settings, "SELECT order_id, TTL(item) FROM orders_payments_facts"
    )
    ttls = dict(tuple(row) for row in facts_table.execute(ttl))
    assert 590 <= ttls[1] <= 600 and ttls[2] is None


def test_the_scan_returns_every_row_with_the_time_its_order_was_written(facts_table, settings):
    store = FactStore(facts_table, settings, write_batch=10)
    rng = random.Random(11)
    orders = [mock_order(order_id, rng) for order_id in range(1, 8)]
    store.upsert_orders(orders, [5_000 + order.order_id for order in orders])
    store.attach_payments([mock_payment(3, rng)], [9_000])

    rows = {row.order_id: row for row in store.scan(page_size=2)}
    assert sorted(rows) == list(range(1, 8))
    assert all(rows[i].order_written == 5_000 + i for i in rows)
    assert rows[3].payment_id == 1003 and rows[4].payment_id is None
    assert (rows[2].item, rows[2].price) == (orders[1].item, orders[1].price)


def test_existing_orders_and_the_health_check_against_the_real_table(facts_table, settings):
    store = FactStore(facts_table, settings, exists_chunk=3)
    rng = random.Random(12)
    store.upsert_orders([mock_order(order_id, rng) for order_id in (2, 5, 9)], [1_000] * 3)
    assert store.existing_orders([1, 2, 5, 7, 9, 2]) == [False, True, True, False, True, True]

    store.check()
    assert store.available_since is not None
    read = prepare_in_keyspace(
        facts_table, settings, "SELECT checked_at FROM pipeline_health WHERE probe = ?"
    )
    assert facts_table.execute(read, ("consumer",)).one().checked_at is not None
