"""The fact table `orders_payments_facts`: the only place that knows its columns and CQL.

Every write carries its own time (`USING TIMESTAMP`, from the message's publish
time): Cassandra keeps the cell with the greatest timestamp, so the table ends
as the latest published version whatever order the writes arrive in.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Hashable, Iterator, Sequence
from typing import TypeVar

from cassandra import InvalidRequest
from cassandra.cluster import Session
from cassandra.concurrent import execute_concurrent, execute_concurrent_with_args
from cassandra.query import BatchStatement, BatchType, BoundStatement, PreparedStatement

from ecom_pipeline.cassandra_session import (
    SCHEMA_HINT,
    CassandraUnavailable,
    is_refusal,
    is_schema_fault,
    prepare_in_keyspace,
)
from ecom_pipeline.messages import Order, Payment
from ecom_pipeline.options import WRITE_BATCH
from ecom_pipeline.settings import Settings

logger = logging.getLogger(__name__)
T = TypeVar("T")

EXISTS_CHUNK = 100
HEALTH_PROBE_TIMEOUT = 5.0


class FactStore:
    """The fact table `orders_payments_facts`: orders upserted, payments attached.

    The order and the payment columns are written by separate statements, each
    with the timestamp of its own message, so a re-published order never erases
    its payment and a payment never creates a row. `ttl` (seconds, 0 = none)
    makes the cells a write touches expire.
    """

    def __init__(
        self,
        session: Session,
        settings: Settings,
        concurrency: int = 256,
        exists_chunk: int = EXISTS_CHUNK,
        write_batch: int = WRITE_BATCH,
        ttl: int = 0,
    ) -> None:
        self.session = session
        self.settings = settings
        self.concurrency = concurrency
        self.exists_chunk = exists_chunk
        self.write_batch = write_batch
        self.ttl = ttl
        self.available_since: dt.datetime | None = None  # when the last outage ended
        try:
            self._prepare_all()
        except InvalidRequest as error:
            if not is_schema_fault(error):
                raise
            raise CassandraUnavailable(
                f"the keyspace {settings.cassandra_keyspace!r} or its tables are not what the "
                f"pipeline needs ({_server_message(error)}): {SCHEMA_HINT}"
            ) from None

    def _prepare_all(self) -> None:
        def prepare(cql: str, *, idempotent: bool = True) -> PreparedStatement:
            statement = prepare_in_keyspace(self.session, self.settings, cql)
            statement.is_idempotent = idempotent
            return statement

        self._upsert_order = prepare(
            "INSERT INTO orders_payments_facts (order_id, customer_id, item, quantity, price,"
            " shipping_address, order_status, creation_date) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
            " USING TIMESTAMP ? AND TTL ?"
        )
        self._orders_exist = prepare(
            "SELECT order_id FROM orders_payments_facts WHERE order_id IN ?"
        )
        self._attach_payment = prepare(
            "UPDATE orders_payments_facts USING TIMESTAMP ? AND TTL ? SET payment_id = ?,"
            " payment_method = ?, card_last_four = ?, payment_status = ?, payment_datetime = ?"
            " WHERE order_id = ?"
        )
        self._scan = prepare(
            "SELECT order_id, customer_id, item, quantity, price, shipping_address, order_status,"
            " creation_date, payment_id, payment_method, card_last_four, payment_status,"
            " payment_datetime, WRITETIME(item) AS order_written FROM orders_payments_facts"
        )
        self._probe_write = prepare(
            "INSERT INTO pipeline_health (probe, checked_at) VALUES (?, toTimestamp(now()))"
        )
        self._probe_read = prepare("SELECT checked_at FROM pipeline_health WHERE probe = ?")

    def check(self) -> None:
        """Raise unless a write and reads at the configured consistency succeed right now.

        What ends an outage: a node that answers is not enough when the replicas
        a write needs are down, nor when the fact table is gone.
        """
        timeout = HEALTH_PROBE_TIMEOUT
        self.session.execute(self._probe_write, ("consumer",), timeout=timeout)
        self.session.execute(self._probe_read, ("consumer",), timeout=timeout)
        self.session.execute(self._orders_exist, ([0],), timeout=timeout)
        self.available_since = dt.datetime.now(dt.UTC)

    def scan(self, page_size: int = 5000, timeout: float = 120) -> Iterator:
        """Every row, paged: the 13 columns and `order_written` (microseconds, None if no order).

        A full scan, for operators and checks: fine for the sizes this pipeline keeps.
        """
        self._scan.fetch_size = page_size
        return iter(self.session.execute(self._scan, timeout=timeout))

    def upsert_orders(
        self, orders: Sequence[Order], timestamps: Sequence[int]
    ) -> list[Exception | None]:
        """Write the order columns of each order at its timestamp (µs); per order None or error."""
        return self._run(
            self._upsert_order,
            [
                (
                    o.order_id,
                    o.customer_id,
                    o.item,
                    o.quantity,
                    o.price,
                    o.shipping_address,
                    o.order_status,
                    o.creation_date,
                    timestamp,
                    self.ttl,
                )
                for o, timestamp in zip(orders, timestamps, strict=True)
            ],
            timestamps,
        )

    def existing_orders(self, order_ids: Sequence[int]) -> list[bool | Exception]:
        """Whether each order has a row, or the read's error.

        Primary-key reads, `exists_chunk` keys per request: one request per key
        costs more in per-request overhead (client and server) than the reads.
        """
        chunks = [
            sorted(set(order_ids[i : i + self.exists_chunk]))
            for i in range(0, len(order_ids), self.exists_chunk)
        ]
        results = execute_concurrent_with_args(
            self.session,
            self._orders_exist,
            [(chunk,) for chunk in chunks],
            concurrency=self.concurrency,
            raise_on_first_error=False,
        )
        found: set[int] = set()
        failed: dict[int, Exception] = {}
        for chunk, (ok, result) in zip(chunks, results, strict=True):
            if ok:
                found.update(row.order_id for row in result)
            else:
                failed.update(dict.fromkeys(chunk, result))
        return [failed.get(order_id, order_id in found) for order_id in order_ids]

    def attach_payments(
        self, payments: Sequence[Payment], timestamps: Sequence[int]
    ) -> list[Exception | None]:
        """Fill the five payment columns of orders known to exist, at each payment's timestamp."""
        return self._run(
            self._attach_payment,
            [
                (
                    timestamp,
                    self.ttl,
                    p.payment_id,
                    p.payment_method,
                    p.card_last_four,
                    p.payment_status,
                    p.payment_datetime,
                    p.order_id,
                )
                for p, timestamp in zip(payments, timestamps, strict=True)
            ],
            timestamps,
        )

    def _run(
        self, statement: PreparedStatement, rows: list[tuple], timestamps: Sequence[int]
    ) -> list[Exception | None]:
        """Write `rows`, `write_batch` rows per request; per row None or the error.

        Rows go together in an unlogged batch only when the same replicas own all
        their partitions (the Spark connector's `replica_set` grouping), so the
        coordinator is a replica of every row and the batch costs the cluster no
        more than single writes, while the client sends a tenth of the requests.
        Of several rows with one key only the one with the latest timestamp is
        written (Cassandra would keep only its cells anyway); the others share
        its result.
        """
        results: list[Exception | None] = [None] * len(rows)
        key_of: dict[int, Hashable] = {}
        latest: dict[Hashable, BoundStatement] = {}
        latest_time: dict[Hashable, int] = {}
        for index, (values, timestamp) in enumerate(zip(rows, timestamps, strict=True)):
            try:
                bound = statement.bind(values)
            except Exception as error:  # what execute_concurrent would report for the row
                results[index] = error
                continue
            # Without a known partition key a row is merged with no other.
            key = index if bound.routing_key is None else bound.routing_key
            key_of[index] = key
            if timestamp >= latest_time.get(key, timestamp):
                latest[key] = bound
                latest_time[key] = timestamp

        groups = self._by_replicas(list(latest.items()))
        written: dict[Hashable, Exception | None] = {}
        alone: list[list[tuple[Hashable, BoundStatement]]] = []
        for group, error in zip(groups, self._execute(groups), strict=True):
            if error is not None and len(group) > 1 and is_refusal(error):
                # Again row by row, so that only the row at fault is refused.
                alone.extend([row] for row in group)
            else:
                written.update(dict.fromkeys((key for key, _ in group), error))
        for [(key, _)], error in zip(alone, self._execute(alone), strict=True):
            written[key] = error
        for index, key in key_of.items():
            results[index] = written[key]
        return results

    def _by_replicas(
        self, rows: list[tuple[Hashable, BoundStatement]]
    ) -> list[list[tuple[Hashable, BoundStatement]]]:
        metadata = self.session.cluster.metadata

        def replicas(row: tuple[Hashable, BoundStatement]) -> frozenset:
            bound = row[1]
            if bound.routing_key is None:
                return frozenset()
            return frozenset(metadata.get_replicas(bound.keyspace, bound.routing_key))

        return replica_groups(rows, replicas, self.write_batch)

    def _execute(
        self, groups: list[list[tuple[Hashable, BoundStatement]]]
    ) -> list[Exception | None]:
        """Each group in one request, `concurrency` in flight; per group None or the error."""
        if not groups:
            return []
        results = execute_concurrent(
            self.session,
            [(_one_request(group), ()) for group in groups],
            concurrency=self.concurrency,
            raise_on_first_error=False,
        )
        return [None if ok else result for ok, result in results]


def replica_groups(rows: list[T], replicas_of: Callable[[T], Hashable], size: int) -> list[list[T]]:
    """`rows` in groups of at most `size` whose rows all have the same replicas."""
    by_replicas: dict[Hashable, list[T]] = {}
    for row in rows:
        by_replicas.setdefault(replicas_of(row), []).append(row)
    size = max(1, size)
    return [
        group[i : i + size] for group in by_replicas.values() for i in range(0, len(group), size)
    ]


def _one_request(
    group: list[tuple[Hashable, BoundStatement]],
) -> BoundStatement | BatchStatement:
    if len(group) == 1:
        return group[0][1]
    batch = BatchStatement(batch_type=BatchType.UNLOGGED)
    for _, bound in group:
        batch.add(bound)
    batch.is_idempotent = True
    return batch


def _server_message(error: Exception) -> str:
    """Cassandra's own words, without the driver's `Error from server: code=...` wrapping."""
    text = str(error)
    return text.split('message="', 1)[-1].rstrip('"') if 'message="' in text else text
