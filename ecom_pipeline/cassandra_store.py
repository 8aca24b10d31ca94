"""Cassandra access: one session per process, statements prepared once."""

from __future__ import annotations

import logging
import ssl
from collections.abc import Callable, Hashable, Sequence
from typing import TypeVar

from cassandra import AuthenticationFailed, ConsistencyLevel, InvalidRequest, ProtocolVersion
from cassandra.auth import PlainTextAuthProvider
from cassandra.cluster import (
    EXEC_PROFILE_DEFAULT,
    Cluster,
    ExecutionProfile,
    NoHostAvailable,
    Session,
)
from cassandra.concurrent import execute_concurrent, execute_concurrent_with_args
from cassandra.policies import (
    DCAwareRoundRobinPolicy,
    ExponentialReconnectionPolicy,
    TokenAwarePolicy,
)
from cassandra.query import BatchStatement, BatchType, BoundStatement, PreparedStatement

from ecom_pipeline.messages import Order, Payment
from ecom_pipeline.settings import Settings

logger = logging.getLogger(__name__)
T = TypeVar("T")

EXISTS_CHUNK = 100
# Rows per write request. Cassandra's defaults warn above 10 partitions in an
# unlogged batch (unlogged_batch_across_partitions_warn_threshold) and above
# 5 KiB (batch_size_warn_threshold); ten order rows are about 2.5 KiB.
WRITE_BATCH = 10


def is_refusal(error: Exception) -> bool:
    """Whether Cassandra or the driver refuses the values themselves, so a retry cannot help."""
    return isinstance(error, (TypeError, ValueError, InvalidRequest))


class CassandraUnavailable(ConnectionError):
    """Cassandra cannot be reached or refuses the login; the message says which and what to do."""

    def __init__(self, message: str, *, login_refused: bool = False) -> None:
        super().__init__(message)
        self.login_refused = login_refused


def open_session(
    settings: Settings,
    *,
    username: str | None = None,
    password: str | None = None,
    connect_timeout: float = 10.0,
    request_timeout: float = 10.0,
) -> Session:
    """Connect with password authentication; close with `session.cluster.shutdown()`.

    The session has no keyspace of its own: statements name it when they are
    prepared (`prepare_in_keyspace`), as Cassandra 5 recommends.
    """
    username = username or settings.cassandra_username
    profile = ExecutionProfile(
        load_balancing_policy=TokenAwarePolicy(DCAwareRoundRobinPolicy()),
        consistency_level=ConsistencyLevel.name_to_value[settings.cassandra_consistency],
        request_timeout=request_timeout,
    )
    cluster = Cluster(
        contact_points=list(settings.cassandra_hosts),
        port=settings.cassandra_port,
        auth_provider=PlainTextAuthProvider(
            username=username,
            password=settings.cassandra_password if password is None else password,
        ),
        protocol_version=ProtocolVersion.V5,
        # Reconnect within seconds of an outage's end, not minutes.
        reconnection_policy=ExponentialReconnectionPolicy(base_delay=0.5, max_delay=5.0),
        execution_profiles={EXEC_PROFILE_DEFAULT: profile},
        connect_timeout=connect_timeout,
        ssl_context=tls_context(settings),
    )
    try:
        return cluster.connect()
    except NoHostAvailable as error:
        cluster.shutdown()
        raise _unavailable(error, settings, username) from error
    except Exception:
        cluster.shutdown()
        raise


def tls_context(settings: Settings) -> ssl.SSLContext | None:
    """TLS to Cassandra when a CA certificate is configured (CASSANDRA_TLS_CA)."""
    if not settings.cassandra_tls_ca:
        return None
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=settings.cassandra_tls_ca)
    context.check_hostname = settings.cassandra_tls_verify_hostname
    return context


def prepare_in_keyspace(session: Session, settings: Settings, cql: str) -> PreparedStatement:
    """Prepare `cql`, whose table names are unqualified, in the configured keyspace."""
    return session.prepare(cql, keyspace=settings.cassandra_keyspace)


def _unavailable(error: NoHostAvailable, settings: Settings, username: str) -> CassandraUnavailable:
    where = ", ".join(f"{host}:{settings.cassandra_port}" for host in settings.cassandra_hosts)
    causes = list(error.errors.values())
    # While a new node sets up its roles it refuses logins with a transient message.
    if causes and all(
        isinstance(cause, AuthenticationFailed) and "not yet" not in str(cause).lower()
        for cause in causes
    ):
        return CassandraUnavailable(
            f"Cassandra at {where} refused the login of user {username!r}: wrong username or "
            "password. Check CASSANDRA_USERNAME and CASSANDRA_PASSWORD.",
            login_refused=True,
        )
    detail = "; ".join(str(cause) for cause in causes) or str(error)
    return CassandraUnavailable(
        f"cannot reach Cassandra at {where} ({detail}). Is it running? "
        "`make services` starts a local one; CASSANDRA_HOSTS and CASSANDRA_PORT say where it is."
    )


class FactStore:
    """The fact table `orders_payments_facts`: orders upserted, payments attached.

    The order and the payment columns are written by separate statements, so a
    re-published order never erases its payment and a payment never creates a row.
    """

    def __init__(
        self,
        session: Session,
        settings: Settings,
        concurrency: int = 256,
        exists_chunk: int = EXISTS_CHUNK,
        write_batch: int = WRITE_BATCH,
    ) -> None:
        self.session = session
        self.concurrency = concurrency
        self.exists_chunk = exists_chunk
        self.write_batch = write_batch
        self._upsert_order = prepare_in_keyspace(
            session,
            settings,
            "INSERT INTO orders_payments_facts (order_id, customer_id, item, quantity, price,"
            " shipping_address, order_status, creation_date) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        self._orders_exist = prepare_in_keyspace(
            session, settings, "SELECT order_id FROM orders_payments_facts WHERE order_id IN ?"
        )
        self._attach_payment = prepare_in_keyspace(
            session,
            settings,
            "UPDATE orders_payments_facts SET payment_id = ?, payment_method = ?,"
            " card_last_four = ?, payment_status = ?, payment_datetime = ? WHERE order_id = ?",
        )
        for statement in (self._upsert_order, self._attach_payment):
            statement.is_idempotent = True
        self._orders_exist.is_idempotent = True
        self._ping = session.prepare("SELECT release_version FROM system.local")

    def check(self) -> None:
        """Raise if Cassandra cannot answer a trivial read right now."""
        self.session.execute(self._ping, timeout=5)

    def upsert_orders(self, orders: Sequence[Order]) -> list[Exception | None]:
        """Write the order columns of each order; per order None or the error."""
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
                )
                for o in orders
            ],
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

    def attach_payments(self, payments: Sequence[Payment]) -> list[Exception | None]:
        """Fill the five payment columns of orders known to exist; safe to repeat."""
        return self._run(
            self._attach_payment,
            [
                (
                    p.payment_id,
                    p.payment_method,
                    p.card_last_four,
                    p.payment_status,
                    p.payment_datetime,
                    p.order_id,
                )
                for p in payments
            ],
        )

    def _run(self, statement: PreparedStatement, rows: list[tuple]) -> list[Exception | None]:
        """Write `rows`, `write_batch` rows per request; per row None or the error.

        Rows go together in an unlogged batch only when the same replicas own all
        their partitions (the Spark connector's `replica_set` grouping), so the
        coordinator is a replica of every row and the batch costs the cluster no
        more than single writes, while the client sends a tenth of the requests.
        Of several rows with one key only the last is written (all rows of a
        batch share one timestamp, so their order would be lost); the others
        share its result.
        """
        results: list[Exception | None] = [None] * len(rows)
        key_of: dict[int, Hashable] = {}
        latest: dict[Hashable, BoundStatement] = {}
        for index, values in enumerate(rows):
            try:
                bound = statement.bind(values)
            except Exception as error:  # what execute_concurrent would report for the row
                results[index] = error
                continue
            # Without a known partition key a row is merged with no other.
            key = index if bound.routing_key is None else bound.routing_key
            key_of[index] = key
            latest[key] = bound

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
