"""Throughput and latency of the two consumers against the local services (`make bench`).

For each configuration (the naive baseline, then the fast path) the benchmark
publishes N orders and N payments (half of them for orders that exist), runs the
order consumer until its subscription is drained, then the payment consumer, and
measures the drain throughput, the end-to-end latency (publish to row written,
from Cassandra's WRITETIME), CPU seconds and peak memory of the consumer process.
It then checks the table and the DLQ exactly, so a fast wrong answer fails.

Latency mode runs both consumers live while orders and payments are published at
a steady rate (SPEC's defaults, then 1,000 messages per second). Backlog mode
drains a large backlog of orders and reports the consumer's peak memory.

example: python -m bench.benchmark --messages 5000 --skip-backlog
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import random
import re
import statistics
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

from google.cloud.pubsub_v1.types import BatchSettings, PublisherOptions, PublishFlowControl

from devtools import services as local_services
from ecom_pipeline.cassandra_store import open_session, prepare_in_keyspace
from ecom_pipeline.messages import mock_order, mock_payment
from ecom_pipeline.pubsub_clients import publisher_client, subscriber_client
from ecom_pipeline.settings import RESOURCE_NAMES, Settings

logger = logging.getLogger("bench")

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results.json"
CHART = ROOT / "bench" / "benchmark.png"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
CONFIGS = {
    "naive": ["--naive"],
    "fast": [],  # the defaults are the fast path
}


class BenchmarkFailed(AssertionError):
    """The pipeline gave a wrong result: the figures do not count."""


@dataclass
class DrainResult:
    config: str
    consumer: str
    messages: int
    seconds: float
    throughput: float
    latency_ms: dict[str, float]
    cpu_seconds: float
    peak_rss_mb: float
    cassandra_cpu_seconds: float = 0.0
    emulator_cpu_seconds: float = 0.0


@dataclass
class LatencyResult:
    rate: str
    messages: int
    order_latency_ms: dict[str, float]
    payment_latency_ms: dict[str, float]


@dataclass
class Report:
    machine: dict[str, str]
    command: str
    drains: list[DrainResult] = field(default_factory=list)
    latencies: list[LatencyResult] = field(default_factory=list)
    backlog: DrainResult | None = None


# ---------------------------------------------------------------- plumbing


class Resources:
    """Uuid-named topics and subscriptions, removed afterwards."""

    PAIRS = {
        "orders_subscription": "orders_topic",
        "payments_subscription": "payments_topic",
        "payments_dlq_subscription": "payments_dlq_topic",
        "orders_dlq_subscription": "orders_dlq_topic",
    }

    def __init__(self, settings: Settings) -> None:
        suffix = "bench-" + uuid.uuid4().hex[:6]
        self.settings = settings.replace(
            **{name: f"{getattr(settings, name)}-{suffix}" for name in RESOURCE_NAMES}
        )
        self.publisher = publisher_client(
            self.settings,
            batch_settings=BatchSettings(max_messages=1000, max_bytes=4_000_000, max_latency=0.01),
            publisher_options=PublisherOptions(
                flow_control=PublishFlowControl(
                    message_limit=20_000, limit_exceeded_behavior="block"
                )
            ),
        )
        self.subscriber = subscriber_client(self.settings)

    def topic(self, name: str) -> str:
        return self.publisher.topic_path(self.settings.project, getattr(self.settings, name))

    def subscription(self, name: str) -> str:
        return self.subscriber.subscription_path(
            self.settings.project, getattr(self.settings, name)
        )

    def __enter__(self) -> Resources:
        for subscription, topic in self.PAIRS.items():
            self.publisher.create_topic(name=self.topic(topic))
            self.subscriber.create_subscription(
                name=self.subscription(subscription),
                topic=self.topic(topic),
                ack_deadline_seconds=60,
            )
        return self

    def __exit__(self, *_exc: object) -> None:
        for subscription, topic in self.PAIRS.items():
            self.subscriber.delete_subscription(subscription=self.subscription(subscription))
            self.publisher.delete_topic(topic=self.topic(topic))

    def env(self) -> dict[str, str]:
        s = self.settings
        env = dict(os.environ, PUBSUB_EMULATOR_HOST=s.emulator_host or "", PYTHONUNBUFFERED="1")
        env["GOOGLE_CLOUD_PROJECT"] = s.project
        env.update({name.upper(): getattr(s, name) for name in RESOURCE_NAMES})
        return env

    def publish_all(self, topic: str, bodies: dict[int, bytes]) -> dict[int, float]:
        """Publish as fast as the publisher allows; returns each id's publish time."""
        path = self.topic(topic)
        sent_at: dict[int, float] = {}
        futures = []
        for key, body in bodies.items():
            sent_at[key] = time.time()
            futures.append(self.publisher.publish(path, body))
        for future in futures:
            future.result(timeout=300)
        return sent_at

    def drain_dead_letters(self) -> list:
        path = self.subscription("payments_dlq_subscription")
        messages: list = []
        while True:
            response = self.subscriber.pull(subscription=path, max_messages=1000, timeout=10)
            if not response.received_messages:
                return messages
            messages += [r.message for r in response.received_messages]
            ack_ids = [r.ack_id for r in response.received_messages]
            self.subscriber.acknowledge(subscription=path, ack_ids=ack_ids)


class ConsumerProcess:
    """A consumer script run as its own process, watched through its stats lines."""

    STATS = re.compile(r"received (\d+) .*stored (\d+), dead-lettered (\d+)")

    def __init__(self, script: str, env: dict[str, str], args: list[str]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(ROOT / script), "--stats-interval", "0.2", *args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.ready_at: float | None = None
        self.services_cpu_at_ready: dict[str, float] = {}
        self.services_cpu_at_done: dict[str, float] = {}
        self.expected = -1
        self.done = 0
        self.output: list[str] = []
        self._ready = threading.Event()
        threading.Thread(target=self._watch, daemon=True).start()

    def _watch(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.output.append(line)
            if self.ready_at is None and "pulling from" in line:
                self.ready_at = time.time()
                self.services_cpu_at_ready = _services_cpu()
                self._ready.set()
            match = self.STATS.search(line)
            if match:
                self.done = int(match.group(2)) + int(match.group(3))
                if self.done >= self.expected >= 0 and not self.services_cpu_at_done:
                    self.services_cpu_at_done = _services_cpu()

    def wait_until(self, processed: int, timeout: float) -> None:
        self.expected = processed
        if not self._ready.wait(60):
            raise BenchmarkFailed("consumer did not start:\n" + "".join(self.output[-20:]))
        deadline = time.monotonic() + timeout
        while self.done < processed:
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise BenchmarkFailed(
                    f"consumer processed {self.done} of {processed}:\n" + "".join(self.output[-20:])
                )
            time.sleep(0.05)

    def usage(self) -> tuple[float, float]:
        """CPU seconds so far and peak resident memory in MB."""
        cpu = _cpu_seconds(self.process.pid)
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        peak_kb = int(re.search(r"VmHWM:\s+(\d+)", status).group(1))
        return cpu, peak_kb / 1024

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


def _service_pids() -> dict[str, int | None]:
    emulator = None
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if b"cloud-pubsub-emulator" in (entry / "cmdline").read_bytes():
                    emulator = int(entry.name)
            except OSError:
                continue
    return {"cassandra": local_services.CASSANDRA.pid(), "emulator": emulator}


def _services_cpu() -> dict[str, float]:
    return {name: _cpu_seconds(pid) for name, pid in _service_pids().items()}


def _cpu_seconds(pid: int | None) -> float:
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def percentiles(values_ms: list[float]) -> dict[str, float]:
    if not values_ms:
        return {}
    ordered = sorted(values_ms)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
    return {
        "p50": round(pick(0.50), 1),
        "p95": round(pick(0.95), 1),
        "p99": round(pick(0.99), 1),
        "max": round(ordered[-1], 1),
        "mean": round(statistics.fmean(ordered), 1),
    }


class Table:
    """Reads back the fact table: rows and their write times."""

    def __init__(self, settings: Settings) -> None:
        self.session = open_session(settings, request_timeout=120)
        self.settings = settings
        self._truncate = prepare_in_keyspace(
            self.session, settings, "TRUNCATE orders_payments_facts"
        )
        self._rows = prepare_in_keyspace(
            self.session,
            settings,
            "SELECT order_id, payment_id, WRITETIME(item), WRITETIME(payment_id)"
            " FROM orders_payments_facts",
        )

    def truncate(self) -> None:
        self.session.execute(self._truncate, timeout=120)

    def rows(self) -> dict[int, tuple[int | None, int | None, int | None]]:
        statement = self._rows
        statement.fetch_size = 5000
        return {r[0]: (r[1], r[2], r[3]) for r in self.session.execute(statement, timeout=120)}


# ---------------------------------------------------------------- the scenarios


def drain_run(config: str, settings: Settings, table: Table, n: int) -> list[DrainResult]:
    """Publish N orders and N payments, drain each consumer, check everything."""
    half = n // 2
    rng = random.Random(42)
    orders = {i: mock_order(i, rng).to_json() for i in range(1, n + 1)}
    paid = list(range(1, half + 1))
    orphans = list(range(n + 1, n + 1 + (n - half)))
    payments = {i: mock_payment(i, rng).to_json() for i in paid + orphans}
    table.truncate()
    results = []
    with Resources(settings) as resources:
        logger.info("%s: publishing %d orders and %d payments", config, n, len(payments))
        order_sent = resources.publish_all("orders_topic", orders)
        payment_sent = resources.publish_all("payments_topic", payments)
        env = resources.env()

        consumer = ConsumerProcess("order_data_consumer.py", env, CONFIGS[config])
        consumer.wait_until(n, timeout=1800)
        results.append(_measure(config, "orders", consumer, table, order_sent, column=1))
        consumer.stop()

        consumer = ConsumerProcess(
            "ingest_in_fact_table.py", env, [*CONFIGS[config], "--order-wait", "0"]
        )
        consumer.wait_until(len(payments), timeout=1800)
        dead = resources.drain_dead_letters()
        results.append(
            _measure(config, "payments", consumer, table, payment_sent, column=2, dead=dead)
        )
        consumer.stop()

        _check(table.rows(), n, paid, orphans, dead)
    for result in results:
        logger.info("%s", result)
    return results


def _measure(
    config: str,
    consumer_name: str,
    consumer: ConsumerProcess,
    table: Table,
    sent_at: dict[int, float],
    column: int,
    dead: list | None = None,
) -> DrainResult:
    cpu, peak = consumer.usage()
    rows = table.rows()
    done_times = {
        key: rows[key][column] / 1e6 for key in sent_at if key in rows and rows[key][column]
    }
    for message in dead or []:
        key = json.loads(message.data)["order_id"]
        done_times[key] = message.publish_time.timestamp()
    assert consumer.ready_at is not None
    seconds = max(done_times.values()) - consumer.ready_at
    latencies = [(done_times[key] - sent_at[key]) * 1000 for key in done_times]
    return DrainResult(
        config=config,
        consumer=consumer_name,
        messages=len(sent_at),
        seconds=round(seconds, 2),
        throughput=round(len(sent_at) / seconds),
        latency_ms=percentiles(latencies),
        cpu_seconds=round(cpu, 2),
        peak_rss_mb=round(peak, 1),
        cassandra_cpu_seconds=round(
            consumer.services_cpu_at_done.get("cassandra", 0)
            - consumer.services_cpu_at_ready.get("cassandra", 0),
            2,
        ),
        emulator_cpu_seconds=round(
            consumer.services_cpu_at_done.get("emulator", 0)
            - consumer.services_cpu_at_ready.get("emulator", 0),
            2,
        ),
    )


def _check(rows, n: int, paid: list[int], orphans: list[int], dead: list) -> None:
    problems = []
    if set(rows) != set(range(1, n + 1)):
        problems.append(f"{len(rows)} rows instead of orders 1..{n}")
    wrong_payments = [
        key for key, (payment_id, _, _) in rows.items()
        if payment_id != (key + 1000 if key in paid else None)
    ]  # fmt: skip
    if wrong_payments:
        problems.append(
            f"{len(wrong_payments)} rows with a wrong payment, e.g. {wrong_payments[:5]}"
        )
    dead_ids = sorted(json.loads(m.data)["order_id"] for m in dead)
    if dead_ids != orphans:
        problems.append(f"{len(dead_ids)} dead letters instead of the {len(orphans)} orphans")
    if problems:
        raise BenchmarkFailed("; ".join(problems))


def latency_run(
    settings: Settings, table: Table, label: str, per_second: float, seconds: float
) -> LatencyResult:
    """Both consumers live; orders and payments (for orders a second older) at a steady rate."""
    table.truncate()
    with Resources(settings) as resources:
        env = resources.env()
        consumers = [
            ConsumerProcess("order_data_consumer.py", env, []),
            ConsumerProcess("ingest_in_fact_table.py", env, []),
        ]
        for consumer in consumers:
            consumer.wait_until(0, timeout=60)
        rng = random.Random(7)
        orders_path = resources.topic("orders_topic")
        payments_path = resources.topic("payments_topic")
        order_sent: dict[int, float] = {}
        payment_sent: dict[int, float] = {}
        lag = max(1, round(per_second))  # payments follow their order by about a second
        total = max(1, round(per_second * seconds))
        started = time.time()
        futures = []
        for tick in range(total + lag):
            time.sleep(max(0.0, started + tick / per_second - time.time()))
            if tick < total:
                order_id = tick + 1
                order_sent[order_id] = time.time()
                futures.append(
                    resources.publisher.publish(orders_path, mock_order(order_id, rng).to_json())
                )
            if tick >= lag:
                order_id = tick - lag + 1
                payment_sent[order_id] = time.time()
                futures.append(
                    resources.publisher.publish(
                        payments_path, mock_payment(order_id, rng).to_json()
                    )
                )
        for future in futures:
            future.result(timeout=120)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            rows = table.rows()
            if len(rows) == total and all(r[0] for r in rows.values()):
                break
            time.sleep(0.5)
        for consumer in consumers:
            consumer.stop()
    if len(rows) != total or not all(r[0] for r in rows.values()):
        raise BenchmarkFailed(f"latency run {label}: {len(rows)} rows of {total}")
    order_ms = [(rows[k][1] / 1e6 - t) * 1000 for k, t in order_sent.items()]
    payment_ms = [(rows[k][2] / 1e6 - t) * 1000 for k, t in payment_sent.items()]
    result = LatencyResult(label, total * 2, percentiles(order_ms), percentiles(payment_ms))
    logger.info("%s", result)
    return result


def backlog_run(settings: Settings, table: Table, n: int) -> DrainResult:
    """Drain a large backlog of orders: memory must stay bounded."""
    table.truncate()
    rng = random.Random(3)
    with Resources(settings) as resources:
        logger.info("backlog: publishing %d orders", n)
        sent = {}
        for start in range(1, n + 1, 50_000):
            chunk = range(start, min(n, start + 49_999) + 1)
            sent.update(
                resources.publish_all(
                    "orders_topic", {i: mock_order(i, rng).to_json() for i in chunk}
                )
            )
        consumer = ConsumerProcess("order_data_consumer.py", resources.env(), [])
        consumer.wait_until(n, timeout=3600)
        result = _measure("fast", f"orders, backlog of {n:,}", consumer, table, sent, column=1)
        consumer.stop()
    if len(table.rows()) != n:
        raise BenchmarkFailed("backlog: rows missing")
    logger.info("%s", result)
    return result


# ---------------------------------------------------------------- output


def print_report(report: Report) -> None:
    by_key = {(d.config, d.consumer): d for d in report.drains}
    print("\nDrain throughput (messages/s), consumer process CPU and peak memory")
    header = ("consumer", "config", "msgs", "seconds", "msg/s", "x naive", "p50 ms", "p99 ms",
              "CPU s", "peak MB", "C* CPU", "emu CPU")  # fmt: skip
    print(f"{header[0]:<10} {header[1]:<6} " + " ".join(f"{h:>8}" for h in header[2:]))
    for d in report.drains:
        naive = by_key.get(("naive", d.consumer))
        ratio = f"{d.throughput / naive.throughput:.1f}" if naive else "-"
        cells = (d.messages, d.seconds, d.throughput, ratio, d.latency_ms.get("p50", 0),
                 d.latency_ms.get("p99", 0), d.cpu_seconds, d.peak_rss_mb,
                 d.cassandra_cpu_seconds, d.emulator_cpu_seconds)  # fmt: skip
        print(f"{d.consumer:<10} {d.config:<6} " + " ".join(f"{c:>8}" for c in cells))
    if report.latencies:
        print("\nEnd-to-end latency, publish to row written (ms), both consumers live")
        print(f"{'rate':<28} {'stream':<9} {'p50':>7} {'p95':>7} {'p99':>7} {'max':>7}")
        for lat in report.latencies:
            for stream, values in (
                ("orders", lat.order_latency_ms),
                ("payments", lat.payment_latency_ms),
            ):
                print(f"{lat.rate:<28} {stream:<9} {values['p50']:>7} {values['p95']:>7}"
                      f" {values['p99']:>7} {values['max']:>7}")  # fmt: skip
    if report.backlog:
        b = report.backlog
        print(f"\nBacklog: {b.consumer}: {b.throughput} msg/s, peak memory {b.peak_rss_mb} MB")


def draw_chart(report: Report, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    consumers = ["orders", "payments"]
    for offset, config in ((-0.2, "naive"), (0.2, "fast")):
        values = [
            next((d.throughput for d in report.drains if d.config == config and d.consumer == c), 0)
            for c in consumers
        ]
        bars = left.bar([i + offset for i in range(2)], values, width=0.4, label=config)
        left.bar_label(bars, fmt="%d")
    left.set_xticks(range(2), [f"{c} consumer" for c in consumers])
    left.set_ylabel("messages per second (drain)")
    left.set_title("Drain throughput")
    left.legend()
    labels, p50, p99 = [], [], []
    for lat in report.latencies:
        for stream, values in (
            ("orders", lat.order_latency_ms),
            ("payments", lat.payment_latency_ms),
        ):
            labels.append(f"{lat.rate.split(':')[0]}\n{stream}")
            p50.append(values["p50"])
            p99.append(values["p99"])
    xs = range(len(labels))
    right.bar([x - 0.2 for x in xs], p50, width=0.4, label="p50")
    right.bar([x + 0.2 for x in xs], p99, width=0.4, label="p99")
    right.set_xticks(list(xs), labels, fontsize=8)
    right.set_ylabel("ms, publish to row written")
    right.set_title("End-to-end latency")
    right.legend()
    fig.suptitle(f"ecom-pipeline on {report.machine['cpus']} CPUs ({report.machine['date']})")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
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
    parser.add_argument("--skip-naive", action="store_true", help="only the fast path")
    parser.add_argument(
        "--fast-args", default="", help="extra consumer flags for the fast path, to experiment"
    )
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument("--skip-backlog", action="store_true")
    parser.add_argument("--latency-seconds", type=float, default=30.0)
    parser.add_argument(
        "--json", type=Path, default=RESULTS, help=f"default {RESULTS.relative_to(ROOT)}"
    )
    parser.add_argument(
        "--chart", type=Path, default=CHART, help=f"default {CHART.relative_to(ROOT)}"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s bench %(message)s", datefmt="%H:%M:%S"
    )
    logging.getLogger("cassandra").setLevel(logging.ERROR)

    CONFIGS["fast"] = args.fast_args.split()
    settings = Settings.from_env()
    local_services.start(settings)
    table = Table(settings)
    report = Report(
        machine={
            "cpus": str(os.cpu_count()),
            "memory_gb": str(
                round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30)
            ),
            "python": platform.python_version(),
            "cassandra": local_services.cassandra_release() or "?",
            "date": time.strftime("%Y-%m-%d"),
        },
        command="python -m bench.benchmark " + " ".join(argv if argv is not None else sys.argv[1:]),
    )
    try:
        for config in ([] if args.skip_naive else ["naive"]) + ["fast"]:
            report.drains += drain_run(config, settings, table, args.messages)
        if not args.skip_latency:
            report.latencies.append(
                latency_run(
                    settings,
                    table,
                    "SPEC-like: 1 order + 1 payment per s",
                    1.0,
                    args.latency_seconds,
                )
            )
            report.latencies.append(
                latency_run(
                    settings,
                    table,
                    "1,000 msg/s: 500 orders + 500 payments per s",
                    500.0,
                    args.latency_seconds,
                )
            )
        if not args.skip_backlog:
            report.backlog = backlog_run(settings, table, args.backlog)
    except BenchmarkFailed as error:
        print(f"benchmark FAILED: {error}", file=sys.stderr)
        return 1
    finally:
        table.session.cluster.shutdown()
    print_report(report)
    args.json.write_text(json.dumps(asdict(report), indent=2) + "\n")
    draw_chart(report, args.chart)
    print(f"\nwrote {args.json} and {args.chart}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
