"""A stand-in for the driver's Session in FactStore's unit tests: it records, it keeps nothing.

It prepares FactStore's statements with the bind markers Cassandra gives them (listed below),
so the driver's own code binds, routes and batches them; it records each request FactStore
sends, decoded by the driver's own types, and answers as the test tells it: a write succeeds
unless `fail` returns an error, a read of orders finds the ids in `found`, a scan returns
`scan_rows`. It holds no table and applies no write: what Cassandra makes of the requests
(write times, TTLs, the latest version winning) is tested against the real Cassandra in
tests/integration/test_fact_store.py.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from types import SimpleNamespace

from cassandra import InvalidRequest
from cassandra.cqltypes import DoubleType, Int32Type, ListType, LongType, UTF8Type
from cassandra.protocol import ColumnMetadata
from cassandra.query import BatchStatement, BoundStatement, PreparedStatement

PROTOCOL = 5
_ORDER = [
    ("order_id", LongType),
    ("customer_id", LongType),
    ("item", UTF8Type),
    ("quantity", LongType),
    ("price", DoubleType),
    ("shipping_address", UTF8Type),
    ("order_status", UTF8Type),
    ("creation_date", UTF8Type),
]
_PAYMENT = [
    ("payment_id", LongType),
    ("payment_method", UTF8Type),
    ("card_last_four", UTF8Type),
    ("payment_status", UTF8Type),
    ("payment_datetime", UTF8Type),
]
_WRITE_TIME = [("[timestamp]", LongType), ("[ttl]", Int32Type)]
# Each statement FactStore prepares, word for word -> (its bind markers, the partition key's
# marker or None): what Cassandra answers to `prepare`. A statement not listed is refused.
PREPARED = {
    "INSERT INTO orders_payments_facts (order_id, customer_id, item, quantity, price,"
    " shipping_address, order_status, creation_date) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
    " USING TIMESTAMP ? AND TTL ?": (_ORDER + _WRITE_TIME, 0),
    "SELECT order_id FROM orders_payments_facts WHERE order_id IN ?": (
        [("order_id", ListType.apply_parameters([LongType]))],
        None,
    ),
    "UPDATE orders_payments_facts USING TIMESTAMP ? AND TTL ? SET payment_id = ?,"
    " payment_method = ?, card_last_four = ?, payment_status = ?, payment_datetime = ?"
    " WHERE order_id = ?": (_WRITE_TIME + _PAYMENT + _ORDER[:1], 7),
    "SELECT order_id, customer_id, item, quantity, price, shipping_address, order_status,"
    " creation_date, payment_id, payment_method, card_last_four, payment_status,"
    " payment_datetime, WRITETIME(item) AS order_written FROM orders_payments_facts": ([], None),
    "INSERT INTO pipeline_health (probe, checked_at) VALUES (?, toTimestamp(now()))": (
        [("probe", UTF8Type)],
        0,
    ),
    "SELECT checked_at FROM pipeline_health WHERE probe = ?": ([("probe", UTF8Type)], 0),
}


@dataclass
class Request:
    """One request as sent: its statements, each row's values by marker name, how it is sent."""

    cql: list[str]
    rows: list[dict[str, object]]
    batch_type: object = None
    idempotent: bool = False
    timeout: float | None = None
    fetch_size: int | None = None

    @property
    def is_write(self) -> bool:
        return not self.cql[0].startswith("SELECT")


@dataclass
class RecordingSession:
    """`prepare`, `execute` and `cluster.metadata.get_replicas`, recorded and answered."""

    keyspace: str = "ecom_store"
    found: set = field(default_factory=set)
    scan_rows: list = field(default_factory=list)
    fail: Callable[[Request], Exception | None] = lambda request: None
    replicas_of: Callable[[int], frozenset] = lambda order_id: frozenset({"node1"})
    prepared_in: list[str | None] = field(default_factory=list)
    requests: list[Request] = field(default_factory=list)
    concurrency: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._statements: dict[bytes, PreparedStatement] = {}
        self.cluster = SimpleNamespace(metadata=SimpleNamespace(get_replicas=self._replicas))

    @property
    def writes(self) -> list[list[dict[str, object]]]:
        """The rows of each write request, in the order sent."""
        return [request.rows for request in self.requests if request.is_write]

    @property
    def reads(self) -> list[list[int]]:
        """The ids asked for by each read of orders, in the order sent."""
        return [
            request.rows[0]["order_id"]
            for request in self.requests
            if request.cql[0].startswith("SELECT order_id FROM")
        ]

    def prepare(self, cql: str, keyspace: str | None = None) -> PreparedStatement:
        self.prepared_in.append(keyspace)
        if keyspace != self.keyspace:
            raise InvalidRequest(f"Keyspace '{keyspace}' does not exist")
        if cql not in PREPARED:
            raise InvalidRequest(f"not a statement of FactStore: {cql!r}")
        markers, routing = PREPARED[cql]
        metadata = [ColumnMetadata(keyspace, "t", name, kind) for name, kind in markers]
        query_id = cql.encode()
        self._statements[query_id] = PreparedStatement(
            metadata,
            query_id,
            None if routing is None else [routing],
            cql,
            keyspace,
            PROTOCOL,
            None,
            None,
        )
        return self._statements[query_id]

    def execute(self, statement, parameters=None, timeout=None):
        bound = statement if isinstance(statement, BoundStatement) else statement.bind(parameters)
        ok, result = self.run(bound, timeout=timeout)
        if not ok:
            raise result
        return result

    def run(self, sent, timeout=None) -> tuple[bool, object]:
        """Record one request and answer it: (True, rows) or (False, the error)."""
        if isinstance(sent, BatchStatement):
            parts = [
                (self._statements[query_id], values)
                for _, query_id, values in sent._statements_and_parameters
            ]
        else:
            parts = [(sent.prepared_statement, sent.values)]
        request = Request(
            cql=[prepared.query_string for prepared, _ in parts],
            rows=[_decoded(prepared, values) for prepared, values in parts],
            batch_type=getattr(sent, "batch_type", None),
            idempotent=sent.is_idempotent,
            timeout=timeout,
            fetch_size=sent.fetch_size,
        )
        self.requests.append(request)
        error = self.fail(request)
        if error is not None:
            return False, error
        if request.cql[0].startswith("SELECT order_id FROM"):
            asked = request.rows[0]["order_id"]
            return True, [SimpleNamespace(order_id=i) for i in asked if i in self.found]
        if request.cql[0].startswith("SELECT order_id,"):
            return True, list(self.scan_rows)
        return True, []

    def _replicas(self, keyspace: str, routing_key: bytes) -> frozenset:
        if keyspace != self.keyspace:  # as the driver: no replicas known in another keyspace
            return frozenset()
        return self.replicas_of(LongType.from_binary(routing_key, PROTOCOL))


def _decoded(prepared: PreparedStatement, values: list) -> dict[str, object]:
    return {
        column.name: None if value is None else column.type.from_binary(value, PROTOCOL)
        for column, value in zip(prepared.column_metadata, values, strict=True)
    }


def execute_concurrent(session, statements_and_params, concurrency, raise_on_first_error):
    """cassandra.concurrent.execute_concurrent, one request after another."""
    assert not raise_on_first_error
    session.concurrency.append(concurrency)
    return [session.run(request) for request, _ in statements_and_params]


def execute_concurrent_with_args(session, statement, parameters, concurrency, raise_on_first_error):
    """cassandra.concurrent.execute_concurrent_with_args, one request after another."""
    assert not raise_on_first_error
    session.concurrency.append(concurrency)
    return [session.run(statement.bind(values)) for values in parameters]
