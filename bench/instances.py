"""Several order consumers on one subscription: how much a second process adds.

Publishes N orders with the order producer, starts K order consumers at once on the
pipeline's own subscription (the local services of `make services`, keyspace and names
from the environment as for the roles), and times the drain from the first stored batch
to the last, from the times of the consumers' own "stored N" log lines (JSON, read as the
benchmark reads them). Pub/Sub shares the messages
among the consumers; each row is written by whichever consumer pulled its order.

example: python -m bench.instances --orders 40000 --consumers 2 --first-id 100001
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from bench.harness import cpu_seconds, role_log_event

ROOT = Path(__file__).resolve().parent.parent


def drain(orders: int, consumers: int, first_id: int, timeout: float) -> str:
    role = [sys.executable]
    subprocess.run(
        [*role, "order_data_producer.py", "--interval", "0", "--first-id", str(first_id),
         "--last-id", str(first_id + orders - 1), "--count", str(orders), "--seed", "1",
         "--log-level", "WARNING"],
        cwd=ROOT, check=True,
    )  # fmt: skip
    processes = [
        subprocess.Popen(
            [*role, "order_data_consumer.py", "--log-format", "json", "--stats-interval", "600"],
            cwd=ROOT,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(consumers)
    ]
    lock = threading.Lock()
    seen = {"stored": 0, "first": 0.0, "last": 0.0}

    def read(process: subprocess.Popen) -> None:
        assert process.stderr is not None
        for line in process.stderr:
            event = role_log_event(line)
            if event is not None and event[2] is not None:
                _, at, batch = event
                with lock:
                    seen["first"] = min(seen["first"] or at, at)
                    seen["stored"] += batch.count
                    seen["last"] = max(seen["last"], at)

    for process in processes:
        threading.Thread(target=read, args=(process,), daemon=True).start()
    deadline = time.monotonic() + timeout
    while seen["stored"] < orders and time.monotonic() < deadline:
        time.sleep(0.05)
    cpu = sum(cpu_seconds(process.pid) for process in processes)
    for process in processes:
        process.send_signal(signal.SIGINT)
    for process in processes:
        process.wait(timeout=30)
    seconds = seen["last"] - seen["first"]
    return (
        f"{consumers} consumer(s): {seen['stored']} of {orders} stored in {seconds:.2f} s from "
        f"the first stored batch = {seen['stored'] / seconds:,.0f} msg/s; consumers' CPU "
        f"{cpu:.2f} s (start-up included)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.instances",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--orders", type=int, default=40_000, help="default 40000")
    parser.add_argument("--consumers", type=int, default=2, help="default 2")
    parser.add_argument(
        "--first-id", type=int, default=1, help="first order id; use fresh ids for each run"
    )
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds (default 120)")
    args = parser.parse_args(argv)
    print(drain(args.orders, args.consumers, args.first_id, args.timeout))
    return 0


if __name__ == "__main__":
    sys.exit(main())
