"""The chaos producer: rounds confirmed in order, failures retried, pauses with none in flight."""

from __future__ import annotations

import itertools
import random
import threading
import time
from concurrent import futures
from types import SimpleNamespace

from chaos import run as chaos_run
from chaos.ledger import Ledger
from chaos.workload import Workload


class FakePublisher:
    """Confirms each publish on a pool thread, a little later; the first `fail` fail once."""

    def __init__(self, fail: int = 0) -> None:
        self.pool = futures.ThreadPoolExecutor(4)
        self.ids = itertools.count(1)
        self.fail = fail
        self.lock = threading.Lock()
        self.published: list[bytes] = []

    def publish(self, topic: str, data: bytes) -> futures.Future:
        with self.lock:
            failing = self.fail > 0
            self.fail -= failing
            message_id = str(next(self.ids))
            self.published.append(data)

        def confirm() -> str:
            time.sleep(random.random() / 1000)
            if failing:
                raise RuntimeError("unavailable")
            return message_id

        return self.pool.submit(confirm)


def producer(monkeypatch, workload: Workload, fail: int = 0):
    publisher = FakePublisher(fail)
    monkeypatch.setattr(chaos_run, "publisher_client", lambda settings: publisher)
    run = SimpleNamespace(
        direct=None,
        ledger=Ledger(),
        topics={"orders": "o", "payments": "p"},
        options=chaos_run.Options(rate=5000, backlog=10**9),
        backlog=lambda: 0,
        processed=lambda: 0,
    )
    phases = list(workload.phases())
    return chaos_run.Producer(run, phases), run.ledger, publisher, phases


def test_every_message_is_written_down_with_its_latest_version(monkeypatch):
    workload = Workload(300, seed=2)
    worker, ledger, publisher, phases = producer(monkeypatch, workload, fail=5)
    worker.run()
    assert worker.failed == 0
    assert ledger.messages == workload.count() == sum(map(len, phases))
    assert len(publisher.published) == workload.count() + 5  # five published twice
    latest = {}
    for items in phases[:-1]:
        latest.update({i.order_id: i.columns for i in items if i.reason is None})
    assert ledger.orders == latest
    assert len(ledger.payments) == 300
    assert len(ledger.dead) == 3 + workload.orphans() + 3


def test_a_pause_waits_until_nothing_is_in_flight(monkeypatch):
    worker, ledger, _, _ = producer(monkeypatch, Workload(2000, seed=3))
    worker.pause_requested.set()
    worker.start()
    assert worker.paused.wait(10)
    assert worker.in_flight == 0
    written = ledger.messages
    time.sleep(0.3)
    assert ledger.messages == written, "nothing is published while paused"
    worker.pause_requested.clear()
    worker.resumed.set()
    worker.join(30)
    assert not worker.is_alive() and ledger.messages == Workload(2000, seed=3).count()


def test_the_consumers_reach_every_cassandra_node_only_through_its_own_proxy():
    run = chaos_run.ChaosRun(chaos_run.Options(orders=10))
    proxied, direct = run.proxied, run.direct
    nodes = dict(proxied.cassandra_address_map)
    assert set(nodes) == set(direct.cassandra_hosts), "every node the driver learns is mapped"
    assert set(proxied.cassandra_hosts) == set(nodes.values()), "contact points are the proxies"
    assert len(set(nodes.values())) == len(nodes) and not set(nodes.values()) & set(nodes)
    routes = chaos_run.proxy_routes(direct.cassandra_port).values()
    port = direct.cassandra_port
    assert {(f"{nodes[node]}:{port}", f"{node}:{port}") for node in nodes} <= set(routes), (
        "each node's proxy listens where the map sends the driver and forwards to that node"
    )
    assert (proxied.emulator_host, direct.emulator_host) in routes
