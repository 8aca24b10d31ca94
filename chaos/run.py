"""A chaos run: publish, consume on the cluster under the fault schedule, then account.

Pub/Sub: the run's own emulator (chaos.services) with fresh topics; the consumers reach
it through a Toxiproxy proxy (latency, reset, bandwidth and timeout faults), the producer and the
dead-letter reader directly. Cassandra: the local three-node cluster, in a keyspace of
the run's own (replication factor 3), so other data on the cluster neither counts nor
is touched. The consumers reach each node through a Toxiproxy proxy of its own on
127.0.1.N:9042 (CASSANDRA_ADDRESS_MAP sends the driver there for the nodes it learns
from the cluster); the run's own session, which reads the account, goes direct.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import logging
import os
import signal
import statistics
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterable
from concurrent import futures
from pathlib import Path

from chaos import logs
from chaos.ledger import Account, DeadLetterSeen, Item, Ledger, account
from chaos.schedule import NETWORK_FAULTS, Fault, describe, make_schedule
from chaos.services import (
    CHAOS_EMULATOR_HOST,
    CHAOS_EMULATOR_PORT,
    Instance,
    start_emulator,
    stop_emulator,
)
from chaos.workload import Workload
from devtools import cassandra_cluster
from devtools.cassandra_node import schema_statements
from ecom_pipeline import pubsub
from ecom_pipeline.cassandra_session import session_when_up
from ecom_pipeline.fact_store import FactStore
from ecom_pipeline.pubsub import create_stream, publisher_client, subscriber_client
from ecom_pipeline.settings import Settings

logger = logging.getLogger("chaos")


def _toxiproxy():
    """devtools.toxiproxy, imported when a run needs it (it is not yet on every branch)."""
    from devtools import toxiproxy

    return toxiproxy


KEYSPACE = "ecom_chaos"
PROXY = "chaos-pubsub"
PROXY_LISTEN = "127.0.0.1:8096"
# Node N (127.0.0.N) is reached at 127.0.1.N, on the same port: the driver maps addresses only.
NODE_PROXIES = {
    f"chaos-cassandra-{n}": (address, address.replace("127.0.0.", "127.0.1.", 1))
    for n, address in enumerate(cassandra_cluster.ADDRESSES, start=1)
}
PROXIES = (PROXY, *NODE_PROXIES)
ROUND_GAP = 0.01  # between version rounds: a later version has a later publish time
DRAIN_TIMEOUT = 900.0


@dataclasses.dataclass
class Options:
    orders: int = 1_000_000
    seed: int = 12
    compressed: bool = False
    # msg/s published at most. It also sets the schedule's length (the messages / rate), so
    # it is near what this 2-core machine sustains under the faults (~580 msg/s measured):
    # with a higher cap publishing outlasts the schedule and its last part runs fault-free.
    rate: int = 600
    backlog: int = 50_000  # messages published and not yet processed, at most
    order_wait: int = 600
    workdir: Path = Path(".local/chaos")


class Producer(threading.Thread):
    """Publishes the workload, paced, round by round; pauses on request."""

    def __init__(self, run: ChaosRun, phases: Iterable[list[Item]]) -> None:
        super().__init__(name="producer", daemon=True)
        self.run_ = run
        self.phases = phases
        self.publisher = publisher_client(run.direct)
        self.outstanding = threading.Condition()
        self.in_flight = 0
        self.pause_requested = threading.Event()
        self.paused = threading.Event()
        self.resumed = threading.Event()
        self.failed = 0
        self.started_at = 0.0
        self.finished_at = 0.0
        self.processed_meanwhile = 0  # by the consumers while publishing

    def run(self) -> None:
        self.started_at = time.monotonic()
        phases = iter(self.phases)
        # The next phase is made while this one is published (a million orders take ~25 s).
        with futures.ThreadPoolExecutor(1) as ahead:
            upcoming = ahead.submit(next, phases, None)
            index = 0
            while (items := upcoming.result()) is not None:
                upcoming = ahead.submit(next, phases, None)
                self._publish_phase(items)
                index += 1
                logger.info("phase %d confirmed: %d messages", index, len(items))
                time.sleep(ROUND_GAP)
        self.finished_at = time.monotonic()
        self.processed_meanwhile = self.run_.processed()

    def _publish_phase(self, items: list[Item]) -> None:
        chunk = max(self.run_.options.rate // 10, 1)
        for start in range(0, len(items), chunk):
            began = time.monotonic()
            self._maybe_pause()
            while self.run_.backlog() > self.run_.options.backlog:
                time.sleep(0.5)
            for item in items[start : start + chunk]:
                self._submit(item)
            time.sleep(max(0.0, 0.1 - (time.monotonic() - began)))
        self._confirm()

    def _submit(self, item: Item, attempt: int = 1) -> None:
        with self.outstanding:
            self.in_flight += 1
        future = self.publisher.publish(self.run_.topics[item.stream], item.data)

        def done(f: futures.Future) -> None:
            try:
                message_id = f.result()
            except Exception as error:  # the client's own retries are spent
                logger.warning("publish failed (attempt %d): %s", attempt, error)
                if attempt < 5:
                    self._submit(item, attempt + 1)
                else:
                    self.failed += 1
            else:
                with self.outstanding:
                    self.run_.ledger.confirmed(item, message_id)
            with self.outstanding:
                self.in_flight -= 1
                self.outstanding.notify_all()

        future.add_done_callback(done)

    def _confirm(self) -> None:
        """Until every publish so far is confirmed and written down (or failed for good)."""
        with self.outstanding:
            self.outstanding.wait_for(lambda: self.in_flight == 0)

    def _maybe_pause(self) -> None:
        if not self.pause_requested.is_set():
            return
        self._confirm()
        self.paused.set()
        self.resumed.wait()
        self.resumed.clear()
        self.paused.clear()


class ChaosRun:
    def __init__(self, options: Options) -> None:
        self.options = options
        self.workload = Workload(options.orders, options.seed)
        suffix = uuid.uuid4().hex[:6]
        base = cassandra_cluster.cluster_settings(Settings.from_env()).replace(
            cassandra_keyspace=KEYSPACE
        )
        self.direct = base.suffixed(suffix).replace(
            emulator_host=f"{CHAOS_EMULATOR_HOST}:{CHAOS_EMULATOR_PORT}"
        )
        self.proxied = self.direct.replace(
            emulator_host=PROXY_LISTEN,
            cassandra_hosts=tuple(proxy for _, proxy in NODE_PROXIES.values()),
            cassandra_address_map=tuple(NODE_PROXIES.values()),
        )
        self.ledger = Ledger()
        self.dead: list[DeadLetterSeen] = []
        self.faults: Counter = Counter()
        self.instances: list[Instance] = []
        self.workdir = options.workdir / dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
        self.stop = threading.Event()
        self.emulator_lock = threading.Lock()  # held while the emulator restarts
        self.node_lock = threading.Lock()  # one node fault at a time
        self.restart_seconds: float | None = None
        self._tails: dict[Path, LogTail] = {}
        self.exits = 0  # consumer runs that ended by themselves (e.g. no Cassandra at start-up)
        self.cluster_up = False
        self.instances_lock = threading.Lock()  # a kill and a restart never cross
        self.traffic_before: dict = {}

    # ------------------------------------------------------------ set-up

    def set_up(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        logger.info("logs in %s", self.workdir)
        cassandra_cluster.start_cluster(cassandra_cluster.cluster_settings(Settings.from_env()))
        self.cluster_up = True
        self.session = session_when_up(self.direct, timeout=120)
        self.session.execute(f"DROP KEYSPACE IF EXISTS {KEYSPACE}", timeout=120)
        for statement in schema_statements(KEYSPACE, cluster=True):
            self.session.execute(statement, timeout=120)
        self.store = FactStore(self.session, self.direct)
        start_emulator(self.direct.project)
        self._create_streams()
        toxiproxy = _toxiproxy()
        toxiproxy.start()
        # Removing a latency toxic waits until the data it holds back is through: with 2 s of
        # latency on busy connections that took longer than the client's usual 5 s.
        self.toxics = toxiproxy.ToxiproxyClient(timeout_s=60)
        existing = self.toxics.proxies()
        for name, (listen, upstream) in proxy_routes(self.direct.cassandra_port).items():
            if name in existing:
                self.toxics.delete_proxy(name)
            self.toxics.create_proxy(name, listen=listen, upstream=upstream)
        # The server may have been running already: count this run's bytes only.
        self.traffic_before = self.toxics.traffic()
        env = {**os.environ, **self.proxied.to_env(), "PYTHONUNBUFFERED": "1"}
        common = ["--log-format", "json", "--log-level", "DEBUG", "--stats-interval", "2"]
        for index in (1, 2):
            self.instances.append(
                Instance(f"orders-{index}", "order_data_consumer.py", common, env, self.workdir)
            )
            self.instances.append(
                Instance(
                    f"payments-{index}",
                    "ingest_in_fact_table.py",
                    [*common, "--order-wait", str(self.options.order_wait)],
                    env,
                    self.workdir,
                )
            )
        for instance in self.instances:
            instance.start()

    def _create_streams(self) -> None:
        publisher, subscriber = publisher_client(self.direct), subscriber_client(self.direct)
        for stream in self.direct.streams:
            create_stream(publisher, subscriber, self.direct.project, stream)
        publisher.stop()
        subscriber.close()
        self.topics = {
            stream.name: f"projects/{self.direct.project}/topics/{stream.topic}"
            for stream in self.direct.streams
        }

    # ------------------------------------------------------------ during the run

    def processed(self) -> int:
        """Messages the consumers stored or dead-lettered, from their last stats lines."""
        total = 0
        for instance in self.instances:
            for log in instance.runs:
                total += self._tails.setdefault(log, LogTail(log)).processed()
        return total

    def backlog(self) -> int:
        return self.ledger.messages - self.processed()

    def collect_dead_letters(self) -> None:
        """Pull both dead-letter subscriptions into `self.dead` until the run stops."""
        while not self.stop.is_set():
            with self.emulator_lock:
                try:
                    self._pull_dead_letters()
                except Exception as error:
                    logger.debug("dead letters: %s", error)
            self.stop.wait(2)

    def _pull_dead_letters(self, seconds: float = 30) -> None:
        """What is on both dead-letter subscriptions, acked once written down.

        At most `seconds` a subscription: while dead letters keep coming (orphans whose wait
        ends one by one) the loop would otherwise hold `emulator_lock` for as long.
        """
        subscriber = subscriber_client(self.direct)
        try:
            for stream in self.direct.streams:
                path = subscriber.subscription_path(self.direct.project, stream.dlq_subscription)
                until = time.monotonic() + seconds
                while time.monotonic() < until and (
                    deliveries := pubsub.pull(subscriber, path, 1000, timeout=5)
                ):
                    self.dead += [
                        DeadLetterSeen(
                            stream.name,
                            d.attributes.get("original_message_id", ""),
                            d.attributes.get("reason", ""),
                            self.ledger.epoch,
                        )
                        for d in deliveries
                    ]
                    pubsub.acknowledge(subscriber, path, [d.ack_id for d in deliveries])
        finally:
            subscriber.close()

    def account_now(self) -> Account:
        rows = (row._asdict() for row in self.store.scan())
        return account(self.ledger, rows, list(self.dead))

    def wait_drained(self, timeout: float) -> Account:
        """Until every confirmed publish has its effect (or `timeout`): the last account."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                with self.emulator_lock:
                    self._pull_dead_letters()
                result = self.account_now()
            except Exception as error:  # a scan during an outage
                logger.info("account not readable yet: %s", error)
                result = None
            if result is not None and result.exact:
                return result
            if time.monotonic() > deadline:
                return result or Account(lost=-1)
            if result is not None:
                logger.info(
                    "not drained yet: lost %d, wrong %d (%s)",
                    result.lost,
                    result.wrong,
                    "; ".join(result.examples[:2]),
                )
            time.sleep(10)

    # ------------------------------------------------------------ faults

    def inject(self, fault: Fault, producer: Producer) -> None:
        logger.info("fault: %s", fault.describe())
        try:
            self._inject(fault, producer)
        except Exception:
            logger.exception("fault failed: %s", fault.describe())
            self.faults[f"{fault.kind} (failed)"] += 1
        else:
            self.faults[fault.kind] += 1
        logger.info("fault over: %s", fault.describe())

    def _inject(self, fault: Fault, producer: Producer) -> None:
        if fault.kind == "kill_consumer":
            with self.instances_lock:
                next(i for i in self.instances if i.name == fault.target).kill()
        elif fault.kind == "kill_node":
            with self.node_lock:
                index = int(fault.target)
                cassandra_cluster.NODES[index - 1].process.stop(sig=signal.SIGKILL)
                time.sleep(fault.duration)
                cassandra_cluster.start_one(index, self.direct)
        elif fault.kind == "stop_two_nodes":
            with self.node_lock:
                pair = [int(n) for n in fault.target.split(",")]
                for index in pair:
                    cassandra_cluster.stop_one(index)
                time.sleep(fault.duration)
                for index in pair:
                    cassandra_cluster.start_one(index, self.direct)
        elif fault.kind in NETWORK_FAULTS:
            name = f"{fault.kind}-{fault.at}"
            toxiproxy = _toxiproxy()
            proxies = [PROXY] if fault.target == "pubsub" else list(NODE_PROXIES)
            added: list[tuple[str, str]] = []
            try:
                for proxy in proxies:
                    for stream in toxiproxy.STREAMS:
                        self.toxics.add_toxic(proxy, _toxic(fault, stream, f"{name}-{stream}"))
                        added.append((proxy, f"{name}-{stream}"))
                time.sleep(fault.duration)
            finally:  # a toxic left behind would stall the consumers for the rest of the run
                for proxy, toxic_name in added:
                    try:
                        self.toxics.remove_toxic(proxy, toxic_name)
                    except toxiproxy.ToxiproxyError as error:
                        logger.error("toxic %s on %s not removed: %s", toxic_name, proxy, error)
        elif fault.kind == "restart_emulator":
            self.restart_emulator(producer)

    def restart_emulator(self, producer: Producer) -> None:
        """Pause the producer, wait until every confirmed message has its effect, restart."""
        began = time.monotonic()
        producer.pause_requested.set()
        while not producer.paused.is_set() and producer.is_alive():
            time.sleep(0.2)
        try:
            result = self.wait_drained(DRAIN_TIMEOUT)
            if not result.exact:
                raise RuntimeError(
                    f"consumers did not drain, emulator not restarted: {result.lines()}"
                )
            with self.emulator_lock:
                self._pull_dead_letters()
                self.ledger.epoch += 1  # the new emulator numbers its messages from 1 again
                stop_emulator()
                start_emulator(self.direct.project)
                self._create_streams()
            self.restart_seconds = time.monotonic() - began
        finally:
            producer.pause_requested.clear()
            producer.resumed.set()

    def supervise(self) -> None:
        """A consumer that exited by itself (not killed here) is started again, and said so."""
        with self.instances_lock:
            self._supervise()

    def _supervise(self) -> None:
        for instance in self.instances:
            if not instance.alive():
                logger.warning(
                    "%s exited with %s by itself; starting it again (see %s)",
                    instance.name,
                    instance.process.returncode,
                    instance.runs[-1],
                )
                self.exits += 1
                instance.start()

    # ------------------------------------------------------------ the whole run

    def execute(self) -> int:
        phases = self.workload.phases()
        total = self.workload.count()
        order_messages = total - self.workload.payment_count()
        seconds = total / self.options.rate
        schedule = make_schedule(
            self.options.seed, seconds, order_messages / self.options.rate, self.options.compressed
        )
        print(
            f"chaos: {self.options.orders:,} orders, {total:,} messages, seed "
            f"{self.options.seed}, at most {self.options.rate:,} msg/s",
            flush=True,
        )
        print(describe(self.options.seed, schedule), flush=True)
        self.set_up()
        collector = threading.Thread(target=self.collect_dead_letters, daemon=True)
        collector.start()
        producer = Producer(self, phases)
        started = time.monotonic()
        producer.start()
        running: list[threading.Thread] = []
        for fault in schedule:
            while time.monotonic() - started < fault.at:
                self.supervise()
                time.sleep(0.2)
            thread = threading.Thread(target=self.inject, args=(fault, producer), daemon=True)
            thread.start()
            running.append(thread)
        while producer.is_alive() or any(t.is_alive() for t in running):
            self.supervise()
            time.sleep(0.5)
        faults_over = time.monotonic()
        logger.info("publishing and faults over; waiting for the consumers to finish")
        self.wait_drained(self.options.order_wait + 300)
        drained = time.monotonic()
        for instance in self.instances:
            instance.stop()
        self.stop.set()
        collector.join(timeout=30)
        with self.emulator_lock:
            self._pull_dead_letters()
        final = self.account_now()
        idle_proxies = self.report(final, producer, started, faults_over, drained)
        return 0 if final.exact and producer.failed == 0 and not idle_proxies else 1

    def report(
        self, final: Account, producer: Producer, started: float, over: float, drained: float
    ) -> list[str]:
        """Print and keep the run's figures; the proxies that carried nothing (a broken run)."""
        published = self.ledger.published
        publishing = max(producer.finished_at - producer.started_at, 1e-9)
        lines = [
            "",
            "chaos account",
            f"messages: {self.ledger.messages:,} confirmed ({published['orders']:,} orders, "
            f"{published['payments']:,} payments), {producer.failed} publishes failed for good",
            f"expected: {len(self.ledger.orders):,} rows, "
            f"{len(self.ledger.payments):,} payments attached, "
            f"{len(self.ledger.dead):,} dead letters",
            "faults injected: "
            + ", ".join(f"{kind} {count}" for kind, count in sorted(self.faults.items()))
            + f" (total {sum(self.faults.values())}); consumer runs that exited by "
            f"themselves and were started again: {self.exits}",
            f"time: publishing {producer.finished_at - producer.started_at:.0f}s, "
            f"all stored {drained - started:.0f}s after the first publish "
            f"({drained - over:.0f}s after the last fault)",
            f"throughput under faults: {self.ledger.messages / (drained - started):.0f} msg/s "
            "(confirmed messages / first publish to all stored, orphans' --order-wait "
            f"included); {producer.processed_meanwhile / publishing:.0f} msg/s processed while "
            "publishing",
        ]
        carried = self._carried()
        idle = [name for name, sent in carried.items() if not sent]
        lines.append(
            "through Toxiproxy (the consumers' every connection): "
            + ", ".join(f"{name} {sent / 1e6:,.1f} MB" for name, sent in carried.items())
            + (f"; NOTHING through {', '.join(idle)}" if idle else "")
        )
        if self.restart_seconds is not None:
            lines.append(
                f"emulator restart: producers paused {self.restart_seconds:.0f}s "
                "(drain, restart, streams again)"
            )
        lines.append("paused per consumer (outages: store or Pub/Sub unreachable):")
        recoveries: dict[str, list[float]] = {}
        redeliveries: dict[str, list[dt.datetime]] = {}
        runs_of = {}
        for instance in self.instances:
            runs_of[instance.name] = [logs.read_run(_lines(log)) for log in instance.runs]
            for run in runs_of[instance.name]:
                redeliveries.setdefault(instance.role, []).extend(run.redeliveries or [])
        for instance in self.instances:
            runs = runs_of[instance.name]
            lines.append(
                f"  {instance.name}: {sum(r.paused for r in runs):.0f}s in "
                f"{sum(r.outages for r in runs)} outages "
                f"({sum(r.unfinished for r in runs)} cut short by a kill), "
                f"{len(instance.runs)} runs, killed {len(instance.kills)} times"
            )
            for kill in instance.kills:
                seconds = logs.recovery(kill, redeliveries[instance.role], window=25)
                if seconds is not None:
                    recoveries.setdefault(instance.role, []).append(seconds)
        for role, seconds in sorted(recoveries.items()):
            lines.append(
                f"kill to the killed instance's messages stored ({role}): median "
                f"{statistics.median(seconds):.1f}s, max {max(seconds):.1f}s over "
                f"{len(seconds)} kills (last redelivery stored within 25 s of the kill)"
            )
        lines += final.lines()
        print("\n".join(lines), flush=True)
        (self.workdir / "report.txt").write_text("\n".join(lines) + "\n")
        return idle

    def _carried(self) -> dict[str, int]:
        """Bytes each proxy carried in this run (all 0 if Toxiproxy cannot tell)."""
        toxiproxy = _toxiproxy()
        try:
            now = self.toxics.traffic()
        except toxiproxy.ToxiproxyError as error:
            logger.error("Toxiproxy's traffic figures could not be read: %s", error)
            now = {}
        empty = toxiproxy.Traffic()
        return {
            name: (now.get(name, empty) - self.traffic_before.get(name, empty)).total
            for name in PROXIES
        }

    def tear_down(self) -> None:
        self.stop.set()
        for instance in self.instances:
            if instance.alive():
                instance.process.kill()
                instance.process.wait()
        for proxy in PROXIES:
            with contextlib.suppress(Exception):
                self.toxics.delete_proxy(proxy)
        if "devtools.toxiproxy" in sys.modules:
            _toxiproxy().stop()
        stop_emulator()
        for index in range(1, 4):  # a fault cut short may leave a node down
            if self.cluster_up and cassandra_cluster.NODES[index - 1].process.pid() is None:
                try:
                    cassandra_cluster.start_one(index, self.direct)
                except Exception as error:
                    logger.warning("node %d not started again: %s", index, error)


def proxy_routes(cassandra_port: int) -> dict[str, tuple[str, str]]:
    """Each proxy's name -> (where it listens, what it forwards to)."""
    emulator = f"{CHAOS_EMULATOR_HOST}:{CHAOS_EMULATOR_PORT}"
    return {PROXY: (PROXY_LISTEN, emulator)} | {
        name: (f"{proxy}:{cassandra_port}", f"{node}:{cassandra_port}")
        for name, (node, proxy) in NODE_PROXIES.items()
    }


def _toxic(fault: Fault, stream: str, name: str) -> dict:
    """The Toxiproxy toxic of a network fault, on one direction of a proxy."""
    toxiproxy = _toxiproxy()
    options = {"stream": stream, "name": name}
    if fault.kind == "latency":
        return toxiproxy.latency(fault.amount, fault.amount // 4, **options)
    if fault.kind == "bandwidth":
        return toxiproxy.bandwidth(fault.amount, **options)
    if fault.kind == "timeout":
        return toxiproxy.timeout(fault.amount, **options)
    if fault.kind == "reset":
        return toxiproxy.reset_peer(0, **options)
    raise ValueError(f"not a network fault: {fault.kind!r}")


class LogTail:
    """stored + dead-lettered from the last stats line of one run's log, read as it grows."""

    def __init__(self, log: Path) -> None:
        self.log = log
        self.offset = 0
        self.last = 0
        self.read_at = 0.0

    def processed(self) -> int:
        if time.monotonic() - self.read_at < 1.0:
            return self.last
        self.read_at = time.monotonic()
        with self.log.open("rb") as file:
            file.seek(self.offset)
            data = file.read()
        complete = data.rfind(b"\n") + 1
        self.offset += complete
        for line in reversed(data[:complete].decode(errors="replace").splitlines()):
            if '"stats"' in line:
                self.last = logs.read_run([line]).processed
                break
        return self.last


def _lines(log: Path):
    with log.open(errors="replace") as file:
        yield from file
