"""FactStore's logic against a recording stand-in session (tests/unit/recording_session.py):
what each request carries, how rows are grouped into requests, and what each row's result
says when a request fails. What Cassandra makes of them: tests/integration/test_fact_store.py."""

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
from tests.unit import recording_session
from tests.unit.recording_session import RecordingSession

SETTINGS = Settings()


@pytest.fixture
def cassandra(monkeypatch) -> RecordingSession:
    monkeypatch.setattr(fact_store, "execute_concurrent", recording_session.execute_concurrent)
    monkeypatch.setattr(
        fact_store,
        "execute_concurrent_with_args",
        recording_session.execute_concurrent_with_args,
    )
    return RecordingSession(SETTINGS.cassandra_keyspace)


def orders(*ids, **changes):
    rng = random.Random(1)
    return [dataclasses.replace(mock_order(i, rng, dt.date(2024, 1, 21)), **changes) for i in ids]


def payments(*ids, **changes):
    rng = random.Random(2)
    moment = dt.datetime(2024, 1, 21, 12, tzinfo=dt.UTC)
    return [dataclasses.replace(mock_payment(i, rng, moment), **changes) for i in ids]


# ---------------------------------------------------------------- what each write carries


def test_an_order_and_its_payment_are_sent_each_with_its_own_write_time(cassandra):
    store = FactStore(cassandra, SETTINGS)
    [order], [payment] = orders(7), payments(7)
    assert store.upsert_orders([order], [1_000]) == [None]
    assert store.attach_payments([payment], [2_000]) == [None]
    assert cassandra.writes == [
        [{**dataclasses.asdict(order), "[timestamp]": 1_000, "[ttl]": 0}],
        [{**dataclasses.asdict(payment), "[timestamp]": 2_000, "[ttl]": 0}],
    ]
    assert all(request.idempotent for request in cassandra.requests), "safe to retry"


def test_statements_are_prepared_in_the_configured_keyspace():
    elsewhere = RecordingSession("ecom_elsewhere")
    other = SETTINGS.replace(cassandra_keyspace="ecom_elsewhere")
    FactStore(elsewhere, other)
    assert set(elsewhere.prepared_in) == {"ecom_elsewhere"}


def test_a_ttl_is_carried_by_every_write(cassandra):
    store = FactStore(cassandra, SETTINGS, ttl=600)
    store.upsert_orders(orders(1, 2), [1_000, 1_000])
    store.attach_payments(payments(1), [1_000])
    assert [row["[ttl]"] for rows in cassandra.writes for row in rows] == [600] * 3


def test_of_several_versions_of_an_order_in_one_pull_only_the_latest_is_written(cassandra):
    store = FactStore(cassandra, SETTINGS)
    versions = [orders(5, order_status=status)[0] for status in ("C", "A", "B")]
    assert store.upsert_orders(versions, [3_000, 1_000, 2_000]) == [None] * 3
    assert [[(r["order_status"], r["[timestamp]"]) for r in rows] for rows in cassandra.writes] == [
        [("C", 3_000)]
    ]
    [payment_a, payment_b] = [payments(5, payment_method=m)[0] for m in ("A", "B")]
    store.attach_payments([payment_a, payment_b], [1_000, 4_000])
    assert [row["payment_method"] for row in cassandra.writes[-1]] == ["B"]


def test_of_versions_with_one_timestamp_the_last_in_the_pull_is_written(cassandra):
    versions = [orders(5, order_status=status)[0] for status in ("A", "B")]
    FactStore(cassandra, SETTINGS).upsert_orders(versions, [1_000, 1_000])
    assert [row["order_status"] for row in cassandra.writes[0]] == ["B"]


def test_every_version_of_an_order_shares_the_result_of_the_one_written(cassandra):
    timeout = OperationTimedOut("timed out")
    cassandra.fail = lambda request: timeout
    versions = orders(5, 5, 5)
    results = FactStore(cassandra, SETTINGS).upsert_orders(versions, [3, 1, 2])
    assert len(cassandra.requests) == 1
    assert results == [timeout] * 3


def test_rows_without_a_partition_key_are_never_merged_and_each_is_refused(cassandra):
    null_key = InvalidRequest("Invalid null value for partition key part order_id")
    cassandra.fail = lambda request: (
        null_key if any(row["order_id"] is None for row in request.rows) else None
    )
    results = FactStore(cassandra, SETTINGS).upsert_orders(
        orders(1, 2, 3, order_id=None), [1, 2, 3]
    )
    assert results == [null_key] * 3
    assert [len(rows) for rows in cassandra.writes] == [3, 1, 1, 1]
    assert [row["order_status"] for rows in cassandra.writes[1:] for row in rows] == [
        o.order_status for o in orders(1, 2, 3)
    ]


def test_a_value_the_driver_cannot_bind_fails_its_row_alone(cassandra):
    bad = orders(2, quantity="two")
    results = FactStore(cassandra, SETTINGS).upsert_orders([*orders(1), *bad, *orders(3)], [1] * 3)
    assert results[0] is None and results[2] is None
    assert isinstance(results[1], TypeError) and "quantity" in str(results[1])
    assert [sorted(row["order_id"] for row in rows) for rows in cassandra.writes] == [[1, 3]]


# ---------------------------------------------------------------- requests


def test_rows_go_in_unlogged_batches_of_write_batch_rows_with_the_same_replicas(cassandra):
    cassandra.replicas_of = lambda order_id: frozenset({f"node{order_id % 2}"})
    store = FactStore(cassandra, SETTINGS, write_batch=4, concurrency=17)
    assert store.upsert_orders(orders(*range(1, 11)), [1] * 10) == [None] * 10
    batches = [sorted(row["order_id"] for row in rows) for rows in cassandra.writes]
    assert sorted(batches) == [[1, 3, 5, 7], [2, 4, 6, 8], [9], [10]]
    kinds = sorted(((r.batch_type, r.idempotent) for r in cassandra.requests), key=str)
    assert kinds == [(BatchType.UNLOGGED, True)] * 2 + [(None, True)] * 2, (
        "a single row goes alone, and every request is idempotent (safe to retry)"
    )
    assert cassandra.concurrency == [17]


def test_a_write_batch_of_one_or_less_writes_row_by_row(cassandra):
    FactStore(cassandra, SETTINGS, write_batch=1).upsert_orders(orders(1, 2, 3), [1] * 3)
    FactStore(cassandra, SETTINGS, write_batch=0).attach_payments(payments(1, 2, 3), [1] * 3)
    assert [len(rows) for rows in cassandra.writes] == [1] * 6


def test_the_default_write_batch_is_ten_rows(cassandra):
    FactStore(cassandra, SETTINGS).upsert_orders(orders(*range(1, 26)), [1] * 25)
    assert [len(rows) for rows in cassandra.writes] == [10, 10, 5]


def test_replica_groups_are_capped_in_size_and_never_mix_replicas():
    rows = list(range(25))
    groups = replica_groups(rows, lambda row: frozenset({row % 2}), 4)
    assert sorted(row for group in groups for row in group) == rows
    assert [len(group) for group in groups] == [4, 4, 4, 1, 4, 4, 4]
    assert all(len({row % 2 for row in group}) == 1 for group in groups)
    assert replica_groups(rows[:3], lambda row: 1, 1) == [[0], [1], [2]]
    assert replica_groups(rows[:3], lambda row: 1, 0) == [[0], [1], [2]]


# ---------------------------------------------------------------- failures


def refuse(order_id):
    def fail(request):
        if any(row["order_id"] == order_id for row in request.rows):
            return InvalidRequest(f"Cassandra refuses order {order_id}")
        return None

    return fail


def test_a_refused_batch_is_written_again_row_by_row_so_only_the_bad_row_fails(cassandra):
    cassandra.fail = refuse(3)
    results = FactStore(cassandra, SETTINGS).upsert_orders(orders(1, 2, 3, 4, 5), [1] * 5)
    assert [error is None for error in results] == [True, True, False, True, True]
    assert str(results[2]) == "Cassandra refuses order 3"
    assert [len(rows) for rows in cassandra.writes] == [5, 1, 1, 1, 1, 1]
    assert [rows[0]["order_id"] for rows in cassandra.writes[1:]] == [1, 2, 3, 4, 5]


def test_a_refused_batch_of_two_is_written_again_row_by_row(cassandra):
    cassandra.fail = refuse(2)
    results = FactStore(cassandra, SETTINGS).attach_payments(payments(1, 2), [1, 1])
    assert results[0] is None and isinstance(results[1], InvalidRequest)
    assert [[row["payment_id"] for row in rows] for rows in cassandra.writes] == [
        [1001, 1002],
        [1001],
        [1002],
    ]


def test_orders_and_timestamps_that_do_not_pair_up_are_refused_before_any_write(cassandra):
    store = FactStore(cassandra, SETTINGS)
    with pytest.raises(ValueError, match="zip"):
        store.upsert_orders(orders(1, 2), [1])
    with pytest.raises(ValueError, match="zip"):
        store.attach_payments(payments(1, 2), [1])
    assert cassandra.requests == []


def test_a_batch_refused_for_its_size_is_written_row_by_row(cassandra):
    cassandra.fail = lambda request: (
        InvalidRequest("Batch too large") if len(request.rows) > 1 else None
    )
    results = FactStore(cassandra, SETTINGS).attach_payments(payments(1, 2, 3), [1] * 3)
    assert results == [None] * 3
    assert [len(rows) for rows in cassandra.writes] == [3, 1, 1, 1]


@pytest.mark.parametrize(
    "outage", [Unavailable("Cannot achieve consistency"), OperationTimedOut("timed out")]
)
def test_an_outage_fails_every_row_of_the_batch_without_retrying_row_by_row(cassandra, outage):
    cassandra.fail = lambda request: outage
    results = FactStore(cassandra, SETTINGS).upsert_orders(orders(1, 2, 3), [1] * 3)
    assert results == [outage] * 3
    assert len(cassandra.requests) == 1


def test_a_schema_fault_in_a_batch_is_not_retried_row_by_row(cassandra):
    fault = InvalidRequest("unconfigured table orders_payments_facts")
    cassandra.fail = lambda request: fault
    results = FactStore(cassandra, SETTINGS).upsert_orders(orders(1, 2), [1, 1])
    assert results == [fault, fault]
    assert len(cassandra.requests) == 1


def test_a_refused_single_row_is_not_sent_twice(cassandra):
    cassandra.fail = refuse(1)
    [error] = FactStore(cassandra, SETTINGS).upsert_orders(orders(1), [1])
    assert isinstance(error, InvalidRequest) and len(cassandra.requests) == 1


# ---------------------------------------------------------------- reads


def test_existing_orders_answers_for_each_id_in_chunks_of_sorted_unique_ids(cassandra):
    cassandra.found = {1, 2, 7}
    store = FactStore(cassandra, SETTINGS, exists_chunk=3, concurrency=9)
    assert store.existing_orders([5, 1, 5, 2, 9, 7, 1]) == [
        False, True, False, True, False, True, True
    ]  # fmt: skip
    assert cassandra.reads == [[1, 5], [2, 7, 9], [1]]
    assert cassandra.concurrency == [9]
    assert store.existing_orders([]) == []


def test_existing_orders_asks_for_a_hundred_ids_a_request_by_default(cassandra):
    FactStore(cassandra, SETTINGS).existing_orders(list(range(250)))
    assert [len(ids) for ids in cassandra.reads] == [100, 100, 50]


def test_a_read_error_is_never_taken_for_an_order_not_found(cassandra):
    cassandra.found = {1, 3}
    store = FactStore(cassandra, SETTINGS, exists_chunk=2)
    outage = Unavailable("Cannot achieve consistency level LOCAL_QUORUM")
    cassandra.fail = lambda request: outage if 3 in request.rows[0]["order_id"] else None
    assert store.existing_orders([1, 2, 3, 4]) == [True, False, outage, outage]


def test_the_health_check_writes_and_reads_in_time_and_ends_the_outage(cassandra):
    store = FactStore(cassandra, SETTINGS)
    before = dt.datetime.now(dt.UTC)
    store.check()
    assert before <= store.available_since <= dt.datetime.now(dt.UTC)
    assert [(r.cql[0].split(" (")[0][:40], r.rows, r.timeout) for r in cassandra.requests] == [
        ("INSERT INTO pipeline_health", [{"probe": "consumer"}], 5.0),
        ("SELECT checked_at FROM pipeline_health W", [{"probe": "consumer"}], 5.0),
        ("SELECT order_id FROM orders_payments_fac", [{"order_id": [0]}], 5.0),
    ], "the fact table itself is read too"


@pytest.mark.parametrize("failing", [0, 1, 2])
def test_a_failed_health_check_raises_and_does_not_end_the_outage(cassandra, failing):
    store = FactStore(cassandra, SETTINGS)
    outage = Unavailable("Cannot achieve consistency")
    cassandra.fail = lambda request: outage if len(cassandra.requests) == failing + 1 else None
    with pytest.raises(Unavailable):
        store.check()
    assert store.available_since is None
    assert len(cassandra.requests) == failing + 1


def test_the_scan_returns_every_row_cassandra_pages_through(cassandra):
    cassandra.scan_rows = [object(), object()]
    store = FactStore(cassandra, SETTINGS)
    assert list(store.scan(page_size=50, timeout=9)) == cassandra.scan_rows
    [request] = cassandra.requests
    assert "WRITETIME(item) AS order_written" in request.cql[0]
    assert (request.timeout, request.fetch_size) == (9, 50)
    list(store.scan())
    assert (cassandra.requests[-1].timeout, cassandra.requests[-1].fetch_size) == (120, 5000)


# ---------------------------------------------------------------- set-up problems


def test_a_missing_keyspace_or_table_is_one_sentence_that_says_what_to_do(cassandra):
    with pytest.raises(CassandraUnavailable) as missing:
        FactStore(RecordingSession("another_keyspace"), SETTINGS)
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
