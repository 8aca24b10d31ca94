"""Throughput and latency of the two consumers against the local services (`make bench`).

Two designs drain the same backlog: "reference", the reference consumers users would
otherwise run (bench/reference_consumers.py: pulls of 10, one synchronous request at
a time), and "fast", our role scripts with their defaults. For each network
(loopback, then through Toxiproxy with latency: +1 ms each way to Cassandra, +10 ms
each way to Pub/Sub by default) and each design, the benchmark publishes N orders and N
payments (half of them for orders that exist), runs the order consumer until its
subscription is drained, then the payment consumer, and reports the drain
throughput, its ratio to the reference, the end-to-end latency, the CPU per message
of the consumer and of the services, and the consumer's peak memory. It then checks
the table and the DLQ exactly, so a fast wrong answer fails.

Latency mode runs both fast consumers live while orders and payments are published
at a steady rate (the producers' scale, then 1,000 messages per second), on each
network. Backlog mode drains a large backlog of orders on loopback and reports peak memory.

The benchmark truncates its table, so it runs in a keyspace of its own (--keyspace,
default $CASSANDRA_KEYSPACE or ecom_bench, never the pipeline's ecom_store), whose
schema it creates; every role it starts gets it as CASSANDRA_KEYSPACE.

example: python -m bench.benchmark --messages 5000 --skip-backlog --networks proxied
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import sys
import time
from pathlib import Path

from cassandra import OperationTimedOut
from cassandra.cluster import NoHostAvailable
from google.api_core.exceptions import GoogleAPIError

from bench import harness, network, report
from devtools import cassandra_node, toxiproxy
from devtools import services as local_services
from devtools.processes import SetupError
from ecom_pipeline.settings import Settings

logger = logging.getLogger("bench")

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results.json"
CHART = ROOT / "bench" / "benchmark.png"
BENCH_KEYSPACE = "ecom_bench"
NETWORKS = ("loopback", "proxied")
LATENCY_RUNS = (
    ("default scale: 1 order + 1 payment per s", 1.0),
    ("1,000 msg/s: 500 orders + 500 payments per s", 500.0),
)


def _networks(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in NETWORKS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"choose among {', '.join(NETWORKS)}, not {text!r}")
    return names


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.benchmark",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--messages", type=int, default=20_000, help="orders, and payments (default 20000)"
    )
    parser.add_argument(
        "--backlog", type=int, default=200_000, help="orders in the backlog run (default 200000)"
    )
    parser.add_argument(
        "--skip-reference", action="store_true", help="only the fast design (no ratio)"
    )
    parser.add_argument(
        "--fast-args", default="", help="extra consumer flags for the fast design, to experiment"
    )
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument("--skip-backlog", action="store_true")
    parser.add_argument("--latency-seconds", type=float, default=30.0)
    parser.add_argument(
        "--networks",
        type=_networks,
        default=list(NETWORKS),
        metavar="NAMES",
        help="comma-separated, from loopback and proxied (default both)",
    )
    proxy = parser.add_argument_group("the proxied network (Toxiproxy latency, each way)")
    proxy.add_argument("--cassandra-latency-ms", type=int, default=1, help="default 1")
    proxy.add_argument("--cassandra-jitter-ms", type=int, default=0, help="default 0")
    proxy.add_argument("--pubsub-latency-ms", type=int, default=10, help="default 10")
    proxy.add_argument("--pubsub-jitter-ms", type=int, default=0, help="default 0")
    parser.add_argument(
        "--keyspace",
        default=os.environ.get("CASSANDRA_KEYSPACE") or BENCH_KEYSPACE,
        help=f"the benchmark's own keyspace (default $CASSANDRA_KEYSPACE or {BENCH_KEYSPACE})",
    )
    parser.add_argument(
        "--json", type=Path, default=RESULTS, help=f"default {RESULTS.relative_to(ROOT)}"
    )
    parser.add_argument(
        "--chart", type=Path, default=CHART, help=f"default {CHART.relative_to(ROOT)}"
    )
    args = parser.parse_args(argv)
    if args.keyspace == Settings().cassandra_keyspace:
        parser.error(
            f"the benchmark truncates its table: give it a keyspace of its own "
            f"(--keyspace, default {BENCH_KEYSPACE}), not the pipeline's {args.keyspace}"
        )
    return args


def machine() -> dict[str, str]:
    return {
        "cpus": str(os.cpu_count()),
        "memory_gb": str(round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30)),
        "python": platform.python_version(),
        "cassandra": cassandra_node.cassandra_release() or "?",
        "toxiproxy": toxiproxy.VERSION,
        "date": time.strftime("%Y-%m-%d"),
    }


def open_network(name: str, settings: Settings, args: argparse.Namespace):
    if name == "loopback":
        return network.Loopback(settings)
    latency = network.ProxyLatency(
        cassandra_ms=args.cassandra_latency_ms,
        cassandra_jitter_ms=args.cassandra_jitter_ms,
        pubsub_ms=args.pubsub_latency_ms,
        pubsub_jitter_ms=args.pubsub_jitter_ms,
    )
    return network.Proxied(settings, latency)


def run(args: argparse.Namespace, settings: Settings, results: report.Report) -> None:
    """Every scenario asked for, adding to `results` as they finish."""
    table = harness.Table(settings)
    designs = [d for d in harness.DESIGNS if not (args.skip_reference and d == "reference")]
    try:
        for name in args.networks:
            with open_network(name, settings, args) as net:
                results.networks[name] = net.description
                for design in designs:
                    results.drains += harness.drain_run(
                        design, net, settings, table, args.messages, args.fast_args.split()
                    )
                if not args.skip_latency:
                    for label, per_second in LATENCY_RUNS:
                        results.latencies.append(
                            harness.latency_run(
                                net, settings, table, label, per_second, args.latency_seconds
                            )
                        )
        if not args.skip_backlog:
            loopback = network.Loopback(settings)
            results.networks.setdefault(loopback.name, loopback.description)
            results.backlog = harness.backlog_run(loopback, settings, table, args.backlog)
    finally:
        table.close()


def _print_partial(results: report.Report) -> None:
    if results.drains or results.latencies:
        print("runs done before the failure (not written):" + report.format_report(results))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s bench %(message)s", datefmt="%H:%M:%S"
    )
    logging.getLogger("cassandra").setLevel(logging.ERROR)

    settings = Settings.from_env().replace(cassandra_keyspace=args.keyspace)
    results = report.Report(
        machine={},
        command="python -m bench.benchmark " + " ".join(argv if argv is not None else sys.argv[1:]),
    )
    try:
        # Reuses running services; creates admin/admin and schema.cql in the bench keyspace.
        local_services.start(settings)
        results.machine = machine()
        if "proxied" in args.networks:
            toxiproxy.install()  # fails now, before any run, if it cannot be built
        run(args, settings, results)
    except harness.BenchmarkFailed as error:
        _print_partial(results)
        print(f"benchmark FAILED: {error}", file=sys.stderr)
        return 1
    except (NoHostAvailable, OperationTimedOut) as error:
        _print_partial(results)
        print(f"error: Cassandra stopped answering during the run: {error}", file=sys.stderr)
        return 2
    except GoogleAPIError as error:
        _print_partial(results)
        print(f"error: Pub/Sub stopped answering during the run: {error}", file=sys.stderr)
        return 2
    except (SetupError, toxiproxy.ToxiproxyError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(report.format_report(results))
    report.write_json(results, args.json)
    report.draw_chart(results, args.chart)
    print(f"\nwrote {args.json} and {args.chart}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
