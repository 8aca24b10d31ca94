"""FactStore against an in-memory Cassandra (tests/unit/fake_cassandra.py): what ends in the
table, how rows are grouped into requests, and what each row's result says when a request fails."""

import dataclasses
import datetime as dt
import random

import pytest
from cassandra import InvalidRequest, OperationTimedOut, Unavailable
from cassandra.query import BatchType

from ecom_pipeline import fact_store
from ecom_pipeline.cassandra_session import CassandraUnavailable
from ecom_pipeline.fact_store import FactStore, replica_groups
from ecom_pipeline.messages import mock_order, mock_payment
from ecom_pipeline.settings import Settings
from tests.unit import fake_cassandra
from tests.unit.fake_cassandra import FakeCassandra

SETTINGS = Settings()
ORDER_COLUMNS = ("customer_id", "item", "quantity", "price", "shipping_address", "order_status")
PAYMENT_COLUMNS = ("payment_id", "payment_method", "card_last_four", "payment_status")


@pytest.fixture
def cassandra(monkeypatch) -> FakeCassandra:
    monkeypatch.setattr(fact_store, "execute_concurrent", fake_cassandra.execute_concurrent)
    monkeypatch.setattr(
        fact_store, "execute_concurrent_with_args", fake_cassandra.execute_concurrent_with_args
    )
    return FakeCassandra(SETTINGS.cassandra_keyspace)


def orders(*ids, **changes):
    rng = random.Random(1)
    return [dataclasses.replace(mock_order(i, rng, dt.date(2024, 1, 21)), **changes) for i in ids]


def payments(*ids, **changes):
    rng = random.Random(2)
    moment = dt.datetime(2024, 1, 21, 12, tzinfo=dt.UTC)
    return [dataclasses.replace(mock_payment(i, rng, moment), **changes) for i in ids]


# ---------------------------------------------------------------- what ends in the table


def test_an_order_and_its_payment_end_as_one_row_each_part_at_its_own_write_time(cassandra):
    store = FactStore(cassandra, SETTINGS)
    [order], [payment] = orders(7), payments(7)
    assert store.upsert_orders([order], [1_000]) == [None]
    assert store.attach_payments([payment], [2_000]) == [None]
    row = cassandra.row(7)
    assert row == {**dataclasses.asdict(order), **dataclasses.asdict(payment)}
    assert cassandra.written_at(7, "item") == (1_000, None)
    assert cassandra.written_at(7, "payment_method") == (2_000, None)


def test_statements_are_prepared_in_the_configured_keyspace(cassandra):
    other = SETTINGS.replace(cassandra_keyspace="ecom_elsewhere")
    FactStore(FakeCassandra("ecom_elsewhere"), other).upsert_orders(orders(1), [1])
    assert set(cassandra.prepared_in) <= {SETTINGS.cassandra_keyspace}


def test_a_ttl_is_carried_by_every_cell_a_write_touches(cassandra):
    store = FactStore(cassandra, SETTINGS, ttl=600)
    store.upsert_orders(orders(1), [1_000])
    store.attach_payments(payments(1), [1_000])
    for column in (*ORDER_COLUMNS, *PAYMENT_COLUMNS):
        assert cassandra.written_at(1, column) == (1_000, 600), column


def test_of_several_versions_of_an_order_in_one_pull_only_the_latest_is_written(cassandra):
    store = FactStore(cassandra, SETTINGS)
    versions = [orders(5, order_status=status)[0] for status in ("C", "A", "B")]
    assert store.upsert_orders(versions, [3_000, 1_000, 2_000]) == [None] * 3
    assert cassandra.row(5)["order_status"] == "C"
    assert [[row["order_status"] for row in rows] for rows in cassandra.requests] == [["C"]]
    [payment_a, payment_b] = [payments(5, payment_method=m)[0] for m in ("A", "B")]
    store.attach_payments([payment_a, payment_b], [1_000, 4_000])
    assert cassandra.row(5)["payment_method"] == "B"
    assert [row["payment_method"] for row in cassandra.requests[-1]] == ["B"]


def test_every_version_of_an_order_shares_the_result_of_the_one_written(cassandra):
    timeout = OperationTimedOut("timed out")
    cassandra.fail = lambda rows: timeout
    versions = orders(5, 5, 5)
    results = FactStore(cassandra, SETTINGS).upsert_orders(versions, [3, 1, 2])
    assert len(cassandra.requests) == 1
    assert results == [timeout] * 3


def test_rows_without_a_partition_key_are_never_merged_and_each_is_refused(cassandra):
    results = FactStore(cassandra, SETTINGS).upsert_orders(
        orders(1, 2, 3, order_id=None), [1, 2, 3]
    )
    assert all(isinstance(error, InvalidRequest) for error in results)
    assert sorted(len(rows) for rows in cassandra.requests) == [1, 1, 1, 3]


def test_a_value_the_driver_cannot_bind_fails_its_row_alone(cassandra):
    bad = orders(2, quantity="two")
    results = FactStore(cassandra, SETTINGS).upsert_orders([*orders(1), *bad, *orders(3)], [1] * 3)
    assert results[0] is None and results[2] is None
    assert isinstance(results[1], TypeError) and "quantity" in str(results[1])
    assert cassandra.row(2)["item"] is None and cassandra.row(3)["item"] is not None


# ---------------------------------------------------------------- requests


def test_rows_go_in_unlogged_batches_of_write_batch_rows_with_the_same_replicas(cassandra):
    cassandra.replicas_of = lambda key: frozenset({f"node{key % 2}"})
    store = FactStore(cassandra, SETTINGS, write_batch=4)
    assert store.upsert_orders(orders(*range(1, 11)), [1] * 10) == [None] * 10
    batches = [sorted(row["order_id"] for row in rows) for rows in cassandra.requests]
    assert sorted(batches) == [[1, 3, 5, 7], [2, 4, 6, 8], [9], [10]]
    kinds = sorted(cassandra.request_kinds, key=str)
    assert (
        kinds
        == [("BatchStatement", BatchType.UNLOGGED, True)] * 2 + [("BoundStatement", None, True)] * 2
    ), "a single row goes alone, and every request is idempotent (safe to retry)"
    assert sorted(cassandra.row(i)["order_id"] for i in range(1, 11)) == list(range(1, 11))


def test_a_write_batch_of_one_or_less_writes_row_by_row(cassandra):
    FactStore(cassandra, SETTINGS, write_batch=1).upsert_orders(orders(1, 2, 3), [1] * 3)
    FactStore(cassandra, SETTINGS, write_batch=0).attach_payments(payments(1, 2, 3), [1] * 3)
    assert [len(rows) for rows in cassandra.requests] == [1] * 6


def test_replica_groups_are_capped_in_size_and_never_mix_replicas():
    rows = list(range(25))
    groups = replica_groups(rows, lambda row: frozenset({row % 2}), 4)
    assert sorted(row for group in groups for row in group) == rows
    assert [len(group) for group in groups] == [4, 4, 4, 1, 4, 4, 4]
    assert all(len({row % 2 for row in group}) == 1 for group in groups)
    assert replica_groups(rows[:3], lambda row: 1, 1) == [[0], [1], [2]]


# ---------------------------------------------------------------- failures


def refuse(order_id):
    def fail(rows):
        if any(row["order_id"] == order_id for row in rows):
            return InvalidRequest(f"Cassandra refuses order {order_id}")
        return None

    return fail


def test_a_refused_batch_is_written_again_row_by_row_so_only_the_bad_row_fails(cassandra):
    cassandra.fail = refuse(3)
    results = FactStore(cassandra, SETTINGS).upsert_orders(orders(1, 2, 3, 4, 5), [1] * 5)
    assert [error is None for error in results] == [True, True, False, True, True]
    assert str(results[2]) == "Cassandra refuses order 3"
    assert [len(rows) for rows in cassandra.requests] == [5, 1, 1, 1, 1, 1]
    assert {i for i in range(1, 6) if cassandra.row(i)["item"]} == {1, 2, 4, 5}


def test_a_refused_batch_of_two_is_written_again_row_by_row(cassandra):
    cassandra.fail = refuse(2)
    results = FactStore(cassandra, SETTINGS).attach_payments(payments(1, 2), [1, 1])
    assert results[0] is None and isinstance(results[1], InvalidRequest)
    assert cassandra.row(1)["payment_id"] == 1001


def test_orders_and_timestamps_that_do_not_pair_up_are_refused_before_any_write(cassandra):
    store = FactStore(cassandra, SETTINGS)
    with pytest.raises(ValueError, match="zip"):
        store.upsert_orders(orders(1, 2), [1])
    with pytest.raises(ValueError, match="zip"):
        store.attach_payments(payments(1, 2), [1])
    assert cassandra.requests == []


def test_a_batch_refused_for_its_size_is_written_row_by_row(cassandra):
    cassandra.fail = lambda rows: InvalidRequest("Batch too large") if len(rows) > 1 else None
    results = FactStore(cassandra, SETTINGS).attach_payments(payments(1, 2, 3), [1] * 3)
    assert results == [None] * 3
    assert [cassandra.row(i)["payment_id"] for i in (1, 2, 3)] == [1001, 1002, 1003]


@pytest.mark.parametrize(
    "outage", [Unavailable("Cannot achieve consistency"), OperationTimedOut("timed out")]
)
def test_an_outage_fails_every_row_of_the_batch_without_retrying_row_by_row(cassandra, outage):
    cassandra.fail = lambda rows: outage
    results = FactStore(cassandra, SETTINGS).upsert_orders(orders(1, 2, 3), [1] * 3)
    assert results == [outage] * 3
    assert len(cassandra.requests) == 1


def test_a_schema_fault_in_a_batch_is_not_retried_row_by_row(cassandra):
    cassandra.fail = lambda rows: InvalidRequest("unconfigured table orders_payments_facts")
    results = FactStore(cassandra, SETTINGS).upsert_orders(orders(1, 2), [1, 1])
    assert all(isinstance(error, InvalidRequest) for error in results)
    assert len(cassandra.requests) == 1


def test_a_refused_single_row_is_not_sent_twice(cassandra):
    cassandra.fail = refuse(1)
    [error] = FactStore(cassandra, SETTINGS).upsert_orders(orders(1), [1])
    assert isinstance(error, InvalidRequest) and len(cassandra.requests) == 1


# ---------------------------------------------------------------- reads


def test_existing_orders_answers_for_each_id_in_chunks_of_sorted_unique_ids(cassandra):
    store = FactStore(cassandra, SETTINGS, exists_chunk=3)
    store.upsert_orders(orders(1, 2, 7), [1] * 3)
    assert store.existing_orders([5, 1, 5, 2, 9, 7, 1]) == [
        False, True, False, True, False, True, True
    ]  # fmt: skip
    assert cassandra.reads == [[1, 5], [2, 7, 9], [1]]
    assert store.existing_orders([]) == []


def test_a_read_error_is_never_taken_for_an_order_not_found(cassandra):
    store = FactStore(cassandra, SETTINGS, exists_chunk=2)
    store.upsert_orders(orders(1, 3), [1, 1])
    outage = Unavailable("Cannot achieve consistency level LOCAL_QUORUM")
    cassandra.fail = lambda rows: outage if 3 in cassandra.reads[-1] else None
    assert store.existing_orders([1, 2, 3, 4]) == [True, False, outage, outage]


def test_the_health_check_writes_and_reads_at_the_consistency_level_in_time(cassandra):
    store = FactStore(cassandra, SETTINGS)
    before = dt.datetime.now(dt.UTC)
    store.check()
    assert before <= store.available_since <= dt.datetime.now(dt.UTC)
    assert [timeout for _, timeout, _ in cassandra.executed] == [5.0] * 3
    assert cassandra.row("consumer", "pipeline_health")["checked_at"] == "now"
    assert cassandra.reads == [[0]], "the fact table itself is read too"


def test_a_failed_health_check_raises_and_does_not_end_the_outage(cassandra):
    store = FactStore(cassandra, SETTINGS)
    cassandra.fail = lambda rows: Unavailable("Cannot achieve consistency")
    with pytest.raises(Unavailable):
        store.check()
    assert store.available_since is None


def test_the_scan_pages_through_every_row_with_the_order_write_time(cassandra):
    store = FactStore(cassandra, SETTINGS)
    [order], [payment] = orders(1), payments(1)
    store.upsert_orders([order, *orders(2)], [1_000, 1_500])
    store.attach_payments([payment], [2_000])
    rows = {row.order_id: row for row in store.scan(page_size=50, timeout=9)}
    assert sorted(rows) == [1, 2]
    assert vars(rows[1]) == {
        **dataclasses.asdict(order), **dataclasses.asdict(payment), "order_written": 1_000
    }  # fmt: skip
    assert rows[2].order_written == 1_500 and rows[2].payment_id is None
    assert cassandra.executed[-1][1:] == (9, 50)


# ---------------------------------------------------------------- set-up problems


def test_a_missing_keyspace_or_table_is_one_sentence_that_says_what_to_do(cassandra):
    with pytest.raises(CassandraUnavailable) as missing:
        FactStore(FakeCassandra("another_keyspace"), SETTINGS)
    assert str(missing.value) == (
        "the keyspace 'ecom_store' or its tables are not what the pipeline needs (Keyspace "
        "'ecom_store' does not exist): apply schema.cql (`make services` does) to put it back"
    )

    def unconfigured(cql, keyspace=None):
        raise InvalidRequest(
            'Error from server: code=2200 [Invalid query] message="unconfigured table facts"'
        )

    cassandra.prepare = unconfigured
    with pytest.raises(CassandraUnavailable, match=r"needs \(unconfigured table facts\): apply"):
        FactStore(cassandra, SETTINGS)


@pytest.mark.parametrize(
    ("said", "shown"),
    [
        ('unconfigured table "facts"', 'unconfigured table "facts"'),
        ('Error from server: code=2200 [Invalid query] message="Undefined column name X"',
         "Undefined column name X"),
        ('Error from server: code=2200 [Invalid query] message="table message="t" does not exist"',
         'table message="t" does not exist'),
    ],
)  # fmt: skip
def test_a_schema_fault_at_start_up_quotes_cassandras_own_words(cassandra, said, shown):
    def refused(cql, keyspace=None):
        raise InvalidRequest(said)

    cassandra.prepare = refused
    with pytest.raises(CassandraUnavailable) as missing:
        FactStore(cassandra, SETTINGS)
    assert f"needs ({shown}): apply" in str(missing.value)


def test_any_other_refusal_at_start_up_is_raised_as_it_is(cassandra):
    def refused(cql, keyspace=None):
        raise InvalidRequest("some other problem")

    cassandra.prepare = refused
    with pytest.raises(InvalidRequest, match=r"^some other problem$"):
        FactStore(cassandra, SETTINGS)
