"""python -m chaos: the pipeline on the local three-node cluster under a schedule of faults.

Examples:

    python -m chaos                                  # 1,000,000 orders, full schedule
    python -m chaos --orders 20000 --compressed      # the short run (make chaos-short)
    python -m chaos --schedule-only --seed 7         # print the schedule and exit
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from pathlib import Path

from chaos.run import ChaosRun, Options
from chaos.schedule import describe, make_schedule
from chaos.workload import Workload
from devtools.processes import SetupError

COMPRESSED_SECONDS = 90  # a compressed run publishes for about this long
COMPRESSED_ORDER_WAIT = 120


def main(argv: list[str] | None = None) -> int:
    defaults = Options()
    parser = argparse.ArgumentParser(
        prog="python -m chaos",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--orders", type=int, default=defaults.orders, help="%(default)s")
    parser.add_argument("--seed", type=int, default=defaults.seed, help="%(default)s")
    parser.add_argument(
        "--compressed", action="store_true", help="shorter faults, consumer kills every 15 s"
    )
    parser.add_argument(
        "--rate",
        type=int,
        help=f"msg/s published at most ({defaults.rate}; compressed: spread over "
        f"{COMPRESSED_SECONDS} s); the faults are spread over the messages / rate seconds, so "
        "keep it near what your machine sustains",
    )
    parser.add_argument(
        "--backlog",
        type=int,
        default=defaults.backlog,
        help="published but not yet processed, at most (%(default)s)",
    )
    parser.add_argument(
        "--order-wait",
        type=int,
        help=f"seconds ({defaults.order_wait}; compressed: {COMPRESSED_ORDER_WAIT})",
    )
    parser.add_argument("--workdir", type=Path, default=defaults.workdir)
    parser.add_argument("--schedule-only", action="store_true", help="print the schedule, exit")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(name)s %(message)s", datefmt="%H:%M:%S"
    )
    # The run's own session sees every node fault; the consumers' logs tell those.
    logging.getLogger("cassandra").setLevel(logging.CRITICAL)
    workload = Workload(args.orders, args.seed)
    total = workload.count()
    rate = args.rate or (max(total // COMPRESSED_SECONDS, 1) if args.compressed else defaults.rate)
    options = Options(
        orders=args.orders,
        seed=args.seed,
        compressed=args.compressed,
        rate=rate,
        backlog=args.backlog,
        order_wait=args.order_wait
        or (COMPRESSED_ORDER_WAIT if args.compressed else defaults.order_wait),
        workdir=args.workdir,
    )
    if args.schedule_only:
        orders = total - workload.payment_count()
        schedule = make_schedule(
            options.seed, total / options.rate, orders / options.rate, options.compressed
        )
        print(describe(options.seed, schedule))
        return 0
    run = ChaosRun(options)
    # gRPC installs a SIGINT handler of its own; Ctrl+C and SIGTERM must end the run cleanly.
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        return run.execute()
    except SetupError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    finally:
        run.tear_down()


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


if __name__ == "__main__":
    sys.exit(main())
