"""An in-memory Cassandra for FactStore's unit tests: schema.cql's tables, the driver's own
prepared and bound statements, cells that keep the greatest write time, and failures on demand.

It understands the statement shapes FactStore prepares (INSERT ... USING TIMESTAMP ? AND TTL ?,
UPDATE ... SET ... WHERE key = ?, SELECT ... [WHERE key = ? | IN ?]) as Cassandra would: words
in any case, names checked against schema.cql (an unknown table or column is Cassandra's own
InvalidRequest), anything else a syntax error. Requests are bound by the real driver, so a
value of the wrong type fails at bind time exactly as it does in production.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

from cassandra import InvalidRequest, cqltypes
from cassandra.protocol import ColumnMetadata, SyntaxException
from cassandra.query import BatchStatement, BoundStatement, PreparedStatement

SCHEMA = Path(__file__).resolve().parents[2] / "schema.cql"
CQL_TYPES = {
    "bigint": cqltypes.LongType,
    "text": cqltypes.UTF8Type,
    "double": cqltypes.DoubleType,
    "timestamp": cqltypes.DateType,
}
PROTOCOL = 5
NAME = r"(\w+)"


def schema_tables() -> dict[str, dict[str, str]]:
    """Table -> column -> CQL type, read from schema.cql; the first column is the key."""
    tables = {}
    for table, body in re.findall(
        r"CREATE TABLE IF NOT EXISTS \w+\.(\w+) \((.*?)\);", SCHEMA.read_text(), re.S
    ):
        columns = [line.strip().rstrip(",").split()[:2] for line in body.strip().splitlines()]
        tables[table] = dict(columns)
    return tables


class Statement(SimpleNamespace):
    """What a prepared statement does: kind, table, its markers' column names, selectors."""


def parse(cql: str, tables: dict[str, dict[str, str]]) -> Statement:
    text = " ".join(cql.split())

    def table_of(name: str) -> dict[str, str]:
        if name.lower() not in tables:
            raise InvalidRequest(f"unconfigured table {name}")
        return tables[name.lower()]

    def columns(names: list[str], table: dict[str, str]) -> list[str]:
        for name in names:
            if name.lower() not in table:
                raise InvalidRequest(f"Undefined column name {name}")
        return [name.lower() for name in names]

    using = r"(?: USING TIMESTAMP \? AND TTL \?)?"
    if match := re.fullmatch(
        rf"INSERT INTO {NAME} \(([\w, ]+)\) VALUES \((.+)\)({using})", text, re.I
    ):
        table = table_of(match[1])
        names = columns(match[2].split(", "), table)
        values = match[3].split(", ")
        if len(values) != len(names) or any(
            v != "?" and v.lower() != "totimestamp(now())" for v in values
        ):
            raise SyntaxException(0x2000, f"bad VALUES in {cql!r}", None)
        markers = [name for name, value in zip(names, values, strict=True) if value == "?"]
        markers += ["[timestamp]", "[ttl]"] if match[4] else []
        return Statement(kind="write", table=match[1].lower(), markers=markers, sets=names)
    if match := re.fullmatch(rf"UPDATE {NAME}({using}) SET (.+) WHERE {NAME} = \?", text, re.I):
        table = table_of(match[1])
        assignments = [part.split(" = ") for part in match[3].split(", ")]
        if any(len(a) != 2 or a[1] != "?" for a in assignments):
            raise SyntaxException(0x2000, f"bad SET in {cql!r}", None)
        names = columns([name for name, _ in assignments] + [match[4]], table)
        markers = (["[timestamp]", "[ttl]"] if match[2] else []) + names
        return Statement(kind="write", table=match[1].lower(), markers=markers, sets=names)
    if match := re.fullmatch(rf"SELECT (.+) FROM {NAME}(?: WHERE {NAME} (=|IN) \?)?", text, re.I):
        table = table_of(match[2])
        selectors = []
        for selector in match[1].split(", "):
            if written := re.fullmatch(rf"WRITETIME\({NAME}\) AS {NAME}", selector, re.I):
                selectors.append((columns([written[1]], table)[0], written[2].lower(), True))
            elif re.fullmatch(NAME, selector):
                selectors.append((columns([selector], table)[0], selector.lower(), False))
            else:
                raise SyntaxException(0x2000, f"bad selector {selector!r}", None)
        markers = columns([match[3]], table) if match[3] else []
        return Statement(
            kind="read", table=match[2].lower(), markers=markers, selectors=selectors,
            many=bool(match[4]) and match[4].upper() == "IN",
        )  # fmt: skip
    raise SyntaxException(0x2000, f"no viable alternative in {cql!r}", None)


class FakeCassandra:
    """A session (`prepare`, `execute`, `cluster.metadata`) over in-memory tables.

    `cells[table][key][column]` is `(value, write time, ttl)`. `replicas_of(key)` says which
    nodes own a partition; `fail(request_rows)` may return an error for a whole request.
    """

    def __init__(self, keyspace: str = "ecom_store") -> None:
        self.keyspace = keyspace
        self.tables = schema_tables()
        self.cells: dict[str, dict[object, dict[str, tuple]]] = {t: {} for t in self.tables}
        self.prepared: dict[bytes, tuple[PreparedStatement, Statement]] = {}
        self.prepared_in: list[str | None] = []
        self.requests: list[list[dict[str, object]]] = []  # the rows of each write request
        self.reads: list[list[int]] = []  # the keys of each IN read
        self.request_kinds: list[tuple] = []  # (class name, batch type, idempotent) of each write
        self.executed: list[tuple[str, float | None, int | None]] = []  # cql, timeout, page size
        self.replicas_of: Callable[[object], frozenset] = lambda key: frozenset({"node1"})
        self.fail: Callable[[list[dict[str, object]]], Exception | None] = lambda rows: None
        self.cluster = SimpleNamespace(metadata=SimpleNamespace(get_replicas=self._replicas))

    # ------------------------------------------------------------ the session's API

    def prepare(self, cql: str, keyspace: str | None = None) -> PreparedStatement:
        self.prepared_in.append(keyspace)
        if keyspace != self.keyspace:
            raise InvalidRequest(f"Keyspace '{keyspace}' does not exist")
        statement = parse(cql, self.tables)
        table = self.tables[statement.table]
        metadata = [
            ColumnMetadata(keyspace, statement.table, name, self._type(table, name, statement))
            for name in statement.markers
        ]
        key = next(iter(table))
        routing = None
        if key in statement.markers and not getattr(statement, "many", False):
            routing = [statement.markers.index(key)]
        query_id = f"q{len(self.prepared)}".encode()
        prepared = PreparedStatement(
            metadata, query_id, routing, cql, keyspace, PROTOCOL, None, None
        )
        self.prepared[query_id] = (prepared, statement)
        return prepared

    def execute(self, statement, parameters=None, timeout=None):
        prepared, _ = self.prepared[statement.query_id]
        self.executed.append((prepared.query_string, timeout, statement.fetch_size))
        bound = (
            statement if isinstance(statement, BoundStatement) else statement.bind(parameters or ())
        )
        ok, result = self.run(bound)
        if not ok:
            raise result
        return result

    # ------------------------------------------------------------ what execute_concurrent calls

    def run(self, request) -> tuple[bool, object]:
        """One request as Cassandra runs it: (True, rows) or (False, the error)."""
        if isinstance(request, BatchStatement):
            parts = [
                (query_id, values) for _, query_id, values in request._statements_and_parameters
            ]
        else:
            parts = [(request.prepared_statement.query_id, request.values)]
        decoded = [self._decode(query_id, values) for query_id, values in parts]
        if decoded[0][0].kind == "read":
            statement, row = decoded[0]
            if statement.many:
                self.reads.append(row[statement.markers[0]])
            error = self.fail([])
            return (False, error) if error else (True, self._select(statement, row))
        rows = [row for _, row in decoded]
        self.requests.append(rows)
        self.request_kinds.append(
            (type(request).__name__, getattr(request, "batch_type", None), request.is_idempotent)
        )
        if any(row[next(iter(self.tables[s.table]))] is None for s, row in decoded):
            return False, InvalidRequest("Invalid null value for partition key part order_id")
        error = self.fail(rows)
        if error is not None:
            return False, error
        for statement, row in decoded:
            self._write(statement, row)
        return True, []

    # ------------------------------------------------------------ the table

    def row(self, key, table: str = "orders_payments_facts") -> dict[str, object]:
        """A row's values, as SELECT * would show them (None for a missing cell)."""
        cells = self.cells[table].get(key, {})
        values = {
            column: cells[column][0] if column in cells else None for column in self.tables[table]
        }
        return {**values, next(iter(values)): key if key in self.cells[table] else None}

    def written_at(self, key, column: str, table: str = "orders_payments_facts") -> tuple:
        """(write time, ttl) of a cell."""
        return self.cells[table][key][column][1:]

    def _write(self, statement: Statement, row: dict[str, object]) -> None:
        table = self.tables[statement.table]
        key = row[next(iter(table))]
        timestamp = row.get("[timestamp]", 0)
        ttl = row.get("[ttl]") or None
        cells = self.cells[statement.table].setdefault(key, {})
        for column in statement.sets:
            if column == next(iter(table)):
                continue
            value = row.get(column, "now")
            if column not in cells or timestamp >= cells[column][1]:
                cells[column] = (value, timestamp, ttl)

    def _select(self, statement: Statement, row: dict[str, object]) -> list[SimpleNamespace]:
        table = self.cells[statement.table]
        if statement.markers:
            wanted = row[statement.markers[0]]
            keys = [k for k in (wanted if statement.many else [wanted]) if k in table]
        else:
            keys = list(table)
        found = []
        for key in keys:
            values = self.row(key, statement.table)
            fields = {}
            for column, alias, written in statement.selectors:
                cell = table[key].get(column)
                fields[alias] = (cell[1] if cell else None) if written else values[column]
            found.append(SimpleNamespace(**fields))
        return found

    def _decode(self, query_id: bytes, values: list) -> tuple[Statement, dict[str, object]]:
        prepared, statement = self.prepared[query_id]
        row = {}
        for column, value in zip(prepared.column_metadata, values, strict=True):
            row[column.name] = None if value is None else column.type.from_binary(value, PROTOCOL)
        return statement, row

    def _type(self, table: dict[str, str], name: str, statement: Statement):
        if name == "[timestamp]":
            return cqltypes.LongType
        if name == "[ttl]":
            return cqltypes.Int32Type
        if getattr(statement, "many", False):
            return cqltypes.ListType.apply_parameters([CQL_TYPES[table[name]]])
        return CQL_TYPES[table[name]]

    def _replicas(self, keyspace: str, routing_key: bytes) -> frozenset:
        if keyspace != self.keyspace:  # the driver knows no replicas in an unknown keyspace
            return frozenset()
        return self.replicas_of(cqltypes.LongType.from_binary(routing_key, PROTOCOL))


def execute_concurrent(
    session: FakeCassandra, statements_and_params, concurrency, raise_on_first_error
):
    """cassandra.concurrent.execute_concurrent against a FakeCassandra."""
    assert not raise_on_first_error and concurrency >= 1
    return [session.run(request) for request, _ in statements_and_params]


def execute_concurrent_with_args(
    session: FakeCassandra, statement, parameters, concurrency, raise_on_first_error
):
    """cassandra.concurrent.execute_concurrent_with_args against a FakeCassandra."""
    assert not raise_on_first_error and concurrency >= 1
    return [session.run(statement.bind(values)) for values in parameters]
