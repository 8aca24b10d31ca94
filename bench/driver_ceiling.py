"""What the fact store alone can write from one process on this machine.

Order upserts through FactStore (256 requests in flight), nothing else: no Pub/Sub,
no parsing. Once with one row a request, once with `--write-batch` rows a request
(unlogged batches of rows with the same replicas, the consumers' default). This is
the ceiling of one consumer process; see BENCHMARKS.md, "Where the time goes".

example: python -m bench.driver_ceiling --rows 40000
"""

from __future__ import annotations

import argparse
import logging
import random
import time

from ecom_pipeline.cassandra_session import open_session
from ecom_pipeline.fact_store import FactStore
from ecom_pipeline.messages import mock_order
from ecom_pipeline.options import WRITE_BATCH
from ecom_pipeline.settings import Settings


def writes_per_second(store: FactStore, orders: list, rounds: int) -> list[float]:
    rates = []
    for _ in range(rounds):
        started = time.monotonic()
        errors = [error for error in store.upsert_orders(orders) if error is not None]
        if errors:
            raise SystemExit(f"{len(errors)} writes failed, the first: {errors[0]}")
        rates.append(len(orders) / (time.monotonic() - started))
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=40_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--write-batch", type=int, default=WRITE_BATCH)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    settings = Settings.from_env()
    rng = random.Random(1)
    orders = [mock_order(i, rng) for i in range(1, args.rows + 1)]
    session = open_session(settings, request_timeout=60)
    try:
        for write_batch in (1, args.write_batch):
            store = FactStore(session, settings, write_batch=write_batch)
            rates = writes_per_second(store, orders, args.rounds)
            shown = ", ".join(f"{rate:,.0f}" for rate in rates)
            print(f"{write_batch} row(s) a request: {shown} writes/s (best {max(rates):,.0f})")
    finally:
        session.cluster.shutdown()


if __name__ == "__main__":
    main()
