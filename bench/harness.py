"""Running the consumers against the local services and measuring them.

Two designs consume the same backlog: "reference", the design of the reference
consumers (bench/reference_consumers.py), and "fast", our role scripts with their
defaults. Each consumer runs as its own process on uuid-named topics and
subscriptions, in the benchmark's own keyspace, on a network from bench/network.py.

Measured per drain, from the consumer being ready (its "pulling from" log line, or
the reference's "Listening for" print) to the last message handled: throughput and
latency from the time each message was done, the CPU time of the consumer process
and of the services (from /proc/<pid>/stat) over the same span, the consumer's peak
memory, and the TCP peers it was connected to. A message is done when its dead
letter reached the DLQ (the DLQ's publish time) or its row was stored: Cassandra's
WRITETIME for the reference, which writes at the coordinator's time, and the time
of the log line reporting its batch stored for ours, which write with the message's
publish time as the write time (USING TIMESTAMP). The table and the DLQ are then
checked exactly, so a fast wrong answer fails the benchmark.
"""

from __future__ import annotations

import collections
import datetime as dt
import itertools
import json
import logging
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from google.api_core import exceptions as google_errors
from google.cloud.pubsub_v1 import PublisherClient
from google.cloud.pubsub_v1.types import BatchSettings, PublisherOptions, PublishFlowControl

from bench import reference_consumers
from bench.report import DrainResult, LatencyResult
from devtools import toxiproxy
from ecom_pipeline.cassandra_session import open_session, prepare_in_keyspace
from ecom_pipeline.messages import mock_order, mock_payment
from ecom_pipeline.options import ORDER_PRODUCER
from ecom_pipeline.pubsub import create_stream, delete_stream, publisher_client, subscriber_client
from ecom_pipeline.settings import Settings

logger = logging.getLogger("bench")

ROOT = Path(__file__).resolve().parent.parent
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
DESIGNS = ("reference", "fast")
ROLE_SCRIPTS = {"orders": "order_data_consumer.py", "payments": "ingest_in_fact_table.py"}


class BenchmarkFailed(AssertionError):
    """The pipeline gave a wrong result: the figures do not count."""


class Network(Protocol):
    """What the harness needs of a network (bench/network.py)."""

    name: str
    exclusive: bool  # a consumer may be connected to its allowed_peers() only

    def env(self) -> dict[str, str]: ...

    def allowed_peers(self) -> set[str]: ...

    def traffic(self) -> dict[str, int]: ...


# ---------------------------------------------------------------- topics and subscriptions


class Resources:
    """Uuid-named topics and subscriptions (as setup_pubsub.sh makes them), removed afterwards."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings.suffixed("bench-" + uuid.uuid4().hex[:6])
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
        return self.publisher.topic_path(self.settings.project, name)

    def subscription(self, name: str) -> str:
        return self.subscriber.subscription_path(self.settings.project, name)

    def __enter__(self) -> Resources:
        for stream in self.settings.streams:
            create_stream(self.publisher, self.subscriber, self.settings.project, stream)
        return self

    def __exit__(self, *_exc: object) -> None:
        for stream in self.settings.streams:
            try:
                delete_stream(self.publisher, self.subscriber, self.settings.project, stream)
            except google_errors.NotFound:  # the emulator was restarted meanwhile
                logger.warning("%s: already gone", stream.topic)

    def env(self, network: Network) -> dict[str, str]:
        """The environment of a role: these settings and names, then the network's addresses."""
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        env.update(self.settings.to_env())
        env.update(network.env())
        return env

    def publish_all(self, stream: str, bodies: dict[int, bytes]) -> dict[int, float]:
        """Publish as fast as the publisher allows; returns each id's publish time."""
        path = self.topic(getattr(self.settings, stream).topic)
        sent_at: dict[int, float] = {}
        futures = []
        for key, body in bodies.items():
            sent_at[key] = time.time()
            futures.append(self.publisher.publish(path, body))
        for future in futures:
            future.result(timeout=300)
        return sent_at

    def drain_dead_letters(self, expected: int, quiet_seconds: float = 5.0) -> list:
        """Pull the payment DLQ until `expected` dead letters came, or none for `quiet_seconds`.

        The reference consumer does not wait for its dead letters' publishes, so the
        last ones may still be on their way when it printed its last line.
        """
        path = self.subscription(self.settings.payments.dlq_subscription)
        messages: list = []
        last_new = time.monotonic()
        while True:
            response = self.subscriber.pull(subscription=path, max_messages=1000, timeout=10)
            if response.received_messages:
                last_new = time.monotonic()
                messages += [r.message for r in response.received_messages]
                ack_ids = [r.ack_id for r in response.received_messages]
                self.subscriber.acknowledge(subscription=path, ack_ids=ack_ids)
            elif len(messages) >= expected or time.monotonic() - last_new > quiet_seconds:
                return messages


# ---------------------------------------------------------------- processes and their costs


def cpu_seconds(pid: int | None) -> float:
    """utime + stime of a process (all its threads) from /proc/<pid>/stat; 0 if it is gone."""
    if pid is None:
        return 0.0
    try:
        return cpu_seconds_from_stat(Path(f"/proc/{pid}/stat").read_text())
    except OSError:
        return 0.0


def cpu_seconds_from_stat(stat: str) -> float:
    # Fields after the command name (which may hold spaces and parentheses):
    # state is field 3 of proc(5), utime 14 and stime 15.
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def service_pids(settings: Settings) -> dict[str, int | None]:
    """The processes listening on Cassandra's, the emulator's and Toxiproxy's addresses.

    Found by their listening sockets, not by name: other Cassandra nodes may run on
    this machine, and the services need not have been started by this project.
    """
    addresses = {
        "cassandra": f"{settings.cassandra_hosts[0]}:{settings.cassandra_port}",
        "emulator": settings.emulator_host or "",
        "toxiproxy": f"{toxiproxy.API_HOST}:{toxiproxy.API_PORT}",
    }
    listening: dict[str, int] = {}
    for table in ("tcp", "tcp6"):
        try:
            text = Path(f"/proc/net/{table}").read_text()
        except OSError:
            continue
        for local, _remote, state, inode in parse_proc_net_tcp(text):
            if state == "0A":  # LISTEN
                listening[local] = inode
    inodes: dict[int, str] = {}
    for name, address in addresses.items():
        port = address.rpartition(":")[2]
        for local in (address, f"0.0.0.0:{port}", f"[{':'.join(['0000'] * 8)}]:{port}"):
            if local in listening:
                inodes[listening[local]] = name
                break
    return {name: None for name in addresses} | _socket_owners(inodes)


def _socket_owners(inodes: dict[int, str]) -> dict[str, int]:
    """{name: pid} of the processes holding these socket inodes."""
    owners: dict[str, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and len(owners) < len(inodes):
            for inode in _socket_inodes(int(entry.name)) & inodes.keys():
                owners[inodes[inode]] = int(entry.name)
    return owners


def _socket_inodes(pid: int) -> set[int]:
    """The inodes of the sockets a process holds (none if it is gone or not ours to see)."""
    inodes = set()
    try:
        fds = list(Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return inodes
    for fd in fds:
        try:
            target = os.readlink(fd)
        except OSError:  # closed meanwhile
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[8:-1]))
    return inodes


def parse_proc_net_tcp(text: str) -> list[tuple[str, str, str, int]]:
    """(local, remote, state, inode) of each socket in /proc/net/tcp or tcp6 text.

    Addresses become "IP:PORT"; IPv4-mapped IPv6 addresses (gRPC's dual-stack
    sockets) become plain IPv4. State "01" is ESTABLISHED.
    """
    sockets = []
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 10:
            continue
        sockets.append((_address(fields[1]), _address(fields[2]), fields[3], int(fields[9])))
    return sockets


def _address(hex_address: str) -> str:
    ip_hex, port_hex = hex_address.split(":")
    port = int(port_hex, 16)
    # The kernel prints the address as 32-bit words in host (little-endian) order.
    raw = b"".join(bytes.fromhex(ip_hex[i : i + 8])[::-1] for i in range(0, len(ip_hex), 8))
    if len(raw) == 16 and raw[:12] == b"\0" * 10 + b"\xff\xff":
        raw = raw[12:]
    if len(raw) == 4:
        return f"{'.'.join(str(b) for b in raw)}:{port}"
    groups = ":".join(raw[i : i + 2].hex() for i in range(0, 16, 2))
    return f"[{groups}]:{port}"


def tcp_peers(pid: int) -> collections.Counter[str]:
    """Remote addresses of the established TCP connections a process holds."""
    inodes = _socket_inodes(pid)
    peers: collections.Counter[str] = collections.Counter()
    for table in ("tcp", "tcp6"):
        try:
            text = Path(f"/proc/{pid}/net/{table}").read_text()
        except OSError:
            continue
        for _local, remote, state, inode in parse_proc_net_tcp(text):
            if state == "01" and inode in inodes:
                peers[remote] += 1
    return peers


@dataclass
class Snapshot:
    """Costs so far, taken when a consumer is ready and when it has handled everything."""

    at: float
    consumer_cpu: float
    services_cpu: dict[str, float]
    peers: collections.Counter[str] = field(default_factory=collections.Counter)


class ConsumerProcess:
    """A consumer run as its own process, followed through its output.

    `services` are the pids whose CPU time counts as the services' (service_pids).
    """

    def __init__(
        self,
        argv: list[str],
        env: dict[str, str],
        network: Network,
        services: dict[str, int | None],
    ) -> None:
        self.network = network
        self.services = services
        self.ready_at: float | None = None
        self.at_ready: Snapshot | None = None
        self.at_done: Snapshot | None = None
        self.expected = -1
        self.done = 0
        self.output: collections.deque[str] = collections.deque(maxlen=40)
        self._ready = threading.Event()
        self.process = self._spawn(argv, env)
        threading.Thread(target=self._watch, daemon=True).start()

    def _spawn(self, argv: list[str], env: dict[str, str]) -> subprocess.Popen:
        raise NotImplementedError

    def _watch(self) -> None:
        raise NotImplementedError

    def snapshot(self) -> Snapshot:
        return Snapshot(
            at=time.time(),
            consumer_cpu=cpu_seconds(self.process.pid),
            services_cpu={name: cpu_seconds(pid) for name, pid in self.services.items()},
            peers=tcp_peers(self.process.pid),
        )

    def _mark_ready(self, at: float | None = None) -> None:
        if self.ready_at is None:
            self.ready_at = at or time.time()
            self.at_ready = self.snapshot()
            self._ready.set()

    def _progress(self, done: int) -> None:
        if done >= self.expected >= 0 and self.at_done is None:
            self.at_done = self.snapshot()
        self.done = done

    def wait_until(self, processed: int, timeout: float) -> None:
        self.expected = processed
        if not self._ready.wait(60):
            raise BenchmarkFailed(f"consumer did not start:\n{self.tail()}")
        deadline = time.monotonic() + timeout
        while self.done < processed:
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise BenchmarkFailed(
                    f"consumer processed {self.done} of {processed}:\n{self.tail()}"
                )
            time.sleep(0.05)
        if self.at_done is None:  # `processed` was reached before it was asked for
            self.at_done = self.snapshot()

    def tail(self) -> str:
        return "".join(self.output)

    def done_times(self, table: Table, column: int, expected: list[int]) -> dict[int, float]:
        """When each of the `expected` order ids (in publish order) was stored (epoch s)."""
        raise NotImplementedError

    def usage(self) -> tuple[float, float]:
        """CPU seconds so far and peak resident memory in MB."""
        cpu = cpu_seconds(self.process.pid)
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        match = re.search(r"VmHWM:\s+(\d+)", status)
        return cpu, int(match.group(1)) / 1024 if match else 0.0

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


@dataclass(frozen=True)
class StoredBatch:
    """A consumer's "stored N: order 1, order 2, ... and K more" log line."""

    at: float  # the line's time (epoch s): just after Cassandra confirmed the batch
    count: int
    order_ids: tuple[int, ...]  # the ones the line names (at most 10)


def log_time(stamp: str) -> float:
    """Epoch seconds of a JSON log line's "time" (UTC, to the millisecond)."""
    moment = dt.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.UTC)
    return moment.timestamp()


def stored_times(batches: list[StoredBatch], expected: list[int]) -> tuple[dict[int, float], float]:
    """Each expected order id's batch time, and how far publish order can be trusted.

    A batch line names at most ten of its messages: those get its time (the
    first batch that names one, if it came twice). The batches' other messages
    are then matched, batch after batch, with the earliest published of the
    expected ids that no line named, since Pub/Sub hands out one stream's
    backlog in about the order it was published. The second value checks that:
    the share of named messages that matching in publish order alone puts in
    the batch that names them (1.0 when the order held for all of them).
    """
    ordered = sorted(batches, key=lambda b: b.at)
    wanted = set(expected)
    named: dict[int, float] = {}
    for batch in ordered:
        for order_id in batch.order_ids:
            if order_id in wanted and order_id not in named:
                named[order_id] = batch.at
    times = dict(named)
    unnamed = iter([order_id for order_id in expected if order_id not in named])
    in_order = iter(expected)
    agreeing = 0
    for batch in ordered:
        for order_id in itertools.islice(unnamed, batch.count - len(batch.order_ids)):
            times[order_id] = batch.at
        for order_id in itertools.islice(in_order, batch.count):
            agreeing += named.get(order_id) == batch.at
    return times, round(agreeing / len(named), 3) if named else 1.0


STORED_LINE = re.compile(r": stored (\d+): (.*)$")
ORDER_ID = re.compile(r"\border (\d+)")


def role_log_event(line: str) -> tuple[str, float, StoredBatch | None] | None:
    """What a role's JSON log line says for the benchmark, with its time.

    ("ready", at, None) when it starts pulling, ("stored", at, batch) for a batch
    stored, ("dead", at, None) for a message dead-lettered; None for the rest.
    """
    try:
        entry = json.loads(line)
        message, at = entry["message"], log_time(entry["time"])
    except (ValueError, KeyError, TypeError):
        return None  # a traceback or a library's own output
    if "pulling from" in message:
        return "ready", at, None
    stored = STORED_LINE.search(message)
    if stored:
        ids = tuple(int(i) for i in ORDER_ID.findall(stored.group(2)))
        return "stored", at, StoredBatch(at, int(stored.group(1)), ids)
    if "dead-lettered message" in message:
        return "dead", at, None
    return None


class RoleConsumer(ConsumerProcess):
    """One of our role scripts, logging JSON; progress from its "stored" and dead-letter lines.

    Our consumers write with the message's publish time as the write time (USING
    TIMESTAMP), so WRITETIME cannot tell when they wrote: the time of the log line
    that reports a batch stored does.
    """

    def __init__(
        self,
        argv: list[str],
        env: dict[str, str],
        network: Network,
        services: dict[str, int | None],
    ) -> None:
        self.batches: list[StoredBatch] = []
        self.stored = 0
        self.dead_lettered = 0
        super().__init__(argv, env, network, services)

    def _spawn(self, argv: list[str], env: dict[str, str]) -> subprocess.Popen:
        return subprocess.Popen(
            [*argv, "--log-format", "json"],
            env=env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def _watch(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.output.append(line)
            event = role_log_event(line)
            if event is None:
                continue
            kind, at, batch = event
            if kind == "ready":
                self._mark_ready(at)
                continue
            if batch is not None:
                self.batches.append(batch)
                self.stored += batch.count
            else:
                self.dead_lettered += 1
            self._progress(self.stored + self.dead_lettered)

    def done_times(self, table: Table, column: int, expected: list[int]) -> dict[int, float]:
        return stored_times(self.batches, expected)[0]


class ReferenceConsumer(ConsumerProcess):
    """bench/reference_consumers.py; its prints go to a file, read back to count messages."""

    def __init__(
        self,
        argv: list[str],
        env: dict[str, str],
        network: Network,
        services: dict[str, int | None],
    ) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="bench-reference-")
        self.stdout_path = Path(self._dir.name) / "stdout"
        self.stderr_path = Path(self._dir.name) / "stderr"
        super().__init__(argv, env, network, services)

    def _spawn(self, argv: list[str], env: dict[str, str]) -> subprocess.Popen:
        # Line-buffered, as on a terminal: one write a print, not a write per piece.
        env = {k: v for k, v in env.items() if k != "PYTHONUNBUFFERED"}
        with self.stdout_path.open("wb") as out, self.stderr_path.open("wb") as err:
            return subprocess.Popen(
                argv, env=env, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=out, stderr=err
            )

    def _watch(self) -> None:
        handled = 0
        with self.stdout_path.open("rb") as out:
            pending = b""
            while True:
                chunk = out.read(1 << 20)
                if not chunk:
                    if self.process.poll() is not None:
                        return
                    time.sleep(0.01)
                    continue
                lines = (pending + chunk).split(b"\n")
                pending = lines.pop()
                for raw in lines:
                    line = raw.decode(errors="replace")
                    if line.startswith(reference_consumers.READY_LINE):
                        self.output.append(line + "\n")
                        self._mark_ready()
                    elif line.startswith(reference_consumers.HANDLED_LINE):
                        handled += 1
                self._progress(handled)
                if lines:
                    self.output.append(lines[-1].decode(errors="replace") + "\n")

    def tail(self) -> str:
        """The last prints, then the end of stderr (where a crash's traceback is)."""
        try:
            errors = self.stderr_path.read_text(errors="replace")[-3000:]
        except OSError:
            errors = ""
        return "".join(list(self.output)[-5:]) + errors

    def stop(self) -> None:
        super().stop()
        self._dir.cleanup()

    def done_times(self, table: Table, column: int, expected: list[int]) -> dict[int, float]:
        """Cassandra's WRITETIME: the reference writes at the coordinator's time."""
        rows = table.rows()
        times = {}
        for key in expected:
            written = rows.get(key, (None, None, None))[column]
            if written:
                times[key] = written / 1e6
        return times


def start_consumer(
    design: str,
    consumer: str,
    resources: Resources,
    network: Network,
    fast_args: list[str] | None = None,
) -> ConsumerProcess:
    """Start one consumer ("orders" or "payments") of one design; `fast_args` are role flags."""
    env = resources.env(network)
    services = service_pids(resources.settings)
    if design == "reference":
        argv = [sys.executable, "-m", "bench.reference_consumers", consumer]
        return ReferenceConsumer(argv, env, network, services)
    argv = [sys.executable, str(ROOT / ROLE_SCRIPTS[consumer]), "--stats-interval", "0.2"]
    return RoleConsumer([*argv, *(fast_args or [])], env, network, services)


# ---------------------------------------------------------------- reading back


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

    def close(self) -> None:
        self.session.cluster.shutdown()


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


def per_message_us(seconds: float, messages: int) -> float:
    return round(seconds / messages * 1e6, 1) if messages else 0.0


# ---------------------------------------------------------------- the scenarios


def drain_run(
    design: str,
    network: Network,
    settings: Settings,
    table: Table,
    n: int,
    fast_args: list[str] | None = None,
) -> list[DrainResult]:
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
        logger.info(
            "%s on %s: publishing %d orders and %d payments", design, network.name, n, len(payments)
        )
        order_sent = resources.publish_all("orders", orders)
        payment_sent = resources.publish_all("payments", payments)
        before = network.traffic()
        consumer = start_consumer(design, "orders", resources, network, fast_args)
        try:
            consumer.wait_until(n, timeout=1800)
            results.append(
                _measure(design, network, "orders", consumer, table, order_sent, column=1)
            )
        finally:
            consumer.stop()
        results[-1].proxy_bytes = carried(network, before)

        # Orphans dead-letter at once, as in the reference: no order of the backlog is late.
        payment_args = [*(fast_args or []), "--order-wait", "0"]
        before = network.traffic()
        consumer = start_consumer(design, "payments", resources, network, payment_args)
        try:
            consumer.wait_until(len(payments), timeout=1800)
            dead = resources.drain_dead_letters(expected=len(orphans))
            results.append(
                _measure(
                    design, network, "payments", consumer, table, payment_sent, column=2, dead=dead
                )
            )
        finally:
            consumer.stop()
        results[-1].proxy_bytes = carried(network, before)

        check_result(table.rows(), n, paid, orphans, dead)
    for result in results:
        logger.info("%s", result)
    return results


def _measure(
    design: str,
    network: Network,
    consumer_name: str,
    consumer: ConsumerProcess,
    table: Table,
    sent_at: dict[int, float],
    column: int,
    dead: list | None = None,
) -> DrainResult:
    """Figures of one drain; `sent_at` has every message's publish time, by order id."""
    cpu, peak = consumer.usage()
    dead_times = {json.loads(m.data)["order_id"]: m.publish_time.timestamp() for m in dead or []}
    stored = [key for key in sent_at if key not in dead_times]
    done_times = {**consumer.done_times(table, column, stored), **dead_times}
    ready, done = consumer.at_ready, consumer.at_done
    assert consumer.ready_at is not None and ready is not None and done is not None
    check_peers(network, done.peers)
    n = len(sent_at)
    seconds = max(done_times.values()) - consumer.ready_at
    latencies = [(done_times[key] - sent_at[key]) * 1000 for key in done_times if key in sent_at]
    services = {
        name: done.services_cpu.get(name, 0.0) - ready.services_cpu.get(name, 0.0)
        for name in done.services_cpu
    }
    if network.name != "proxied":
        services["toxiproxy"] = 0.0  # idle, or another run's
    drain_cpu = done.consumer_cpu - ready.consumer_cpu
    return DrainResult(
        network=network.name,
        config=design,
        consumer=consumer_name,
        messages=n,
        seconds=round(seconds, 2),
        throughput=round(n / seconds),
        latency_ms=percentiles(latencies),
        cpu_seconds=round(cpu, 2),
        cpu_us_per_message=per_message_us(drain_cpu, n),
        peak_rss_mb=round(peak, 1),
        cassandra_cpu_seconds=round(services.get("cassandra", 0.0), 2),
        emulator_cpu_seconds=round(services.get("emulator", 0.0), 2),
        proxy_cpu_seconds=round(services.get("toxiproxy", 0.0), 2),
        cassandra_us_per_message=per_message_us(services.get("cassandra", 0.0), n),
        emulator_us_per_message=per_message_us(services.get("emulator", 0.0), n),
        proxy_us_per_message=per_message_us(services.get("toxiproxy", 0.0), n),
        peers=dict(sorted(done.peers.items())),
    )


def carried(network: Network, before: dict[str, int]) -> dict[str, int]:
    """Bytes each proxy carried since `before`, read once the consumer has stopped.

    Toxiproxy adds a connection's bytes to its counters when the connection
    closes, a moment after the process is gone: wait until the figures settle.
    """
    deadline = time.monotonic() + 5
    last: dict[str, int] | None = None
    while True:
        now = network.traffic()
        delta = {name: now[name] - before.get(name, 0) for name in now}
        settled = delta == last and all(delta.values())
        if not delta or settled or time.monotonic() > deadline:
            break
        last = delta
        time.sleep(0.2)
    if not all(delta.values()):
        raise BenchmarkFailed(f"on {network.name} a proxy carried nothing: {delta}")
    return delta


def check_peers(network: Network, peers: collections.Counter[str]) -> None:
    """The consumer was connected to each network address; on the proxies, to nothing else."""
    allowed = network.allowed_peers()
    stray = sorted(set(peers) - allowed)
    if stray and network.exclusive:
        raise BenchmarkFailed(
            f"on {network.name} a consumer was connected to {stray}, outside {sorted(allowed)}"
            " (the proxied network has one proxy for one Cassandra node: the driver reaches"
            " the other nodes of a cluster, from system.peers, directly)"
        )
    missing = sorted(allowed - set(peers))
    if missing:
        raise BenchmarkFailed(f"on {network.name} a consumer had no connection to {missing}")


def check_result(rows, n: int, paid: list[int], orphans: list[int], dead: list) -> None:
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
    network: Network,
    settings: Settings,
    table: Table,
    label: str,
    per_second: float,
    seconds: float,
) -> LatencyResult:
    """Both fast consumers live; orders, and payments a second after them, at a steady rate."""
    table.truncate()
    with Resources(settings) as resources:
        orders, payments = (start_consumer("fast", c, resources, network) for c in ROLE_SCRIPTS)
        try:
            for consumer in (orders, payments):
                consumer.wait_until(0, timeout=60)
            # Published as the producers publish (their batch window, not the bulk fill's).
            publisher = publisher_client(
                resources.settings,
                batch_settings=BatchSettings(max_latency=ORDER_PRODUCER.batch_window),
            )
            try:
                order_sent, payment_sent, total = _publish_steadily(
                    resources, publisher, per_second, seconds
                )
            finally:
                publisher.stop()
            orders.wait_until(total, timeout=120)
            payments.wait_until(total, timeout=120)
        finally:
            for consumer in (orders, payments):
                consumer.stop()
    rows = table.rows()
    paid = {key for key, (payment_id, _, _) in rows.items() if payment_id == key + 1000}
    if len(rows) != total or len(paid) != total:
        raise BenchmarkFailed(
            f"latency run {label}: {len(rows)} rows, {len(paid)} paid, of {total}"
        )
    order_times, order_agreement = stored_times(orders.batches, list(order_sent))
    payment_times, payment_agreement = stored_times(payments.batches, list(payment_sent))
    result = LatencyResult(
        label,
        total * 2,
        percentiles([(order_times[k] - t) * 1000 for k, t in order_sent.items()]),
        percentiles([(payment_times[k] - t) * 1000 for k, t in payment_sent.items()]),
        network=network.name,
        publish_order_agreement=min(order_agreement, payment_agreement),
    )
    logger.info("%s", result)
    return result


def _publish_steadily(
    resources: Resources, publisher: PublisherClient, per_second: float, seconds: float
) -> tuple[dict[int, float], dict[int, float], int]:
    rng = random.Random(7)
    orders_path = resources.topic(resources.settings.orders.topic)
    payments_path = resources.topic(resources.settings.payments.topic)
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
            futures.append(publisher.publish(orders_path, mock_order(order_id, rng).to_json()))
        if tick >= lag:
            order_id = tick - lag + 1
            payment_sent[order_id] = time.time()
            futures.append(publisher.publish(payments_path, mock_payment(order_id, rng).to_json()))
    for future in futures:
        future.result(timeout=120)
    return order_sent, payment_sent, total


def backlog_run(network: Network, settings: Settings, table: Table, n: int) -> DrainResult:
    """Drain a large backlog of orders with the fast consumer: memory must stay bounded."""
    table.truncate()
    rng = random.Random(3)
    with Resources(settings) as resources:
        logger.info("backlog: publishing %d orders", n)
        sent = {}
        for start in range(1, n + 1, 50_000):
            chunk = range(start, min(n, start + 49_999) + 1)
            sent.update(
                resources.publish_all("orders", {i: mock_order(i, rng).to_json() for i in chunk})
            )
        consumer = start_consumer("fast", "orders", resources, network)
        try:
            consumer.wait_until(n, timeout=3600)
            result = _measure(
                "fast", network, f"orders, backlog of {n:,}", consumer, table, sent, column=1
            )
        finally:
            consumer.stop()
    if len(table.rows()) != n:
        raise BenchmarkFailed("backlog: rows missing")
    logger.info("%s", result)
    return result
