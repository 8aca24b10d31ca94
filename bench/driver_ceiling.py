"""What the Python Cassandra driver alone can write from one process on this machine.

Prepared order upserts through execute_concurrent (256 in flight), nothing else:
no Pub/Sub, no parsing. This is the ceiling of one consumer process; see
BENCHMARKS.md, "Where the time goes". Protocol 4 is shown for comparison (it has
no per-frame checksums, which the driver computes in pure Python for protocol 5).

example: python -m bench.driver_ceiling --rows 40000
"""

from __future__ import annotations

import argparse
import logging
import random
import time

from cassandra import ProtocolVersion
from cassandra.auth import PlainTextAuthProvider
from cassandra.cluster import Cluster
from cassandra.concurrent import execute_concurrent_with_args

from ecom_pipeline.messages import mock_order
from ecom_pipeline.settings import Settings

UPSERT = (
    "INSERT INTO orders_payments_facts (order_id, customer_id, item, quantity, price,"
    " shipping_address, order_status, creation_date) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)


def writes_per_second(
    settings: Settings, protocol: int, rows: list[tuple], rounds: int
) -> list[float]:
    cluster = Cluster(
        list(settings.cassandra_hosts),
        port=settings.cassandra_port,
        auth_provider=PlainTextAuthProvider(
            settings.cassandra_username, settings.cassandra_password
        ),
        protocol_version=protocol,
    )
    session = cluster.connect(settings.cassandra_keyspace)  # benchmark only: USE, for protocol 4
    upsert = session.prepare(UPSERT)
    rates = []
    for _ in range(rounds):
        started = time.monotonic()
        execute_concurrent_with_args(session, upsert, rows, concurrency=256)
        rates.append(len(rows) / (time.monotonic() - started))
    cluster.shutdown()
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=40_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    settings = Settings.from_env()
    rng = random.Random(1)
    rows = [tuple(vars(mock_order(i, rng)).values()) for i in range(1, args.rows + 1)]
    for protocol in (ProtocolVersion.V5, ProtocolVersion.V4):
        rates = writes_per_second(settings, protocol, rows, args.rounds)
        shown = ", ".join(f"{rate:,.0f}" for rate in rates)
        print(f"protocol {protocol}: {shown} writes/s (best {max(rates):,.0f})")


if __name__ == "__main__":
    main()
