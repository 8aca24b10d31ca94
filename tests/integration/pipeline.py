"""A pipeline of real role processes on uuid-named topics, for end-to-end tests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ecom_pipeline.cassandra_session import prepare_in_keyspace
from ecom_pipeline.pubsub import create_stream, delete_stream, publisher_client, subscriber_client
from ecom_pipeline.settings import Settings
from tests.waiting import eventually

ROOT = Path(__file__).resolve().parents[2]
MAX_DELIVERY_ATTEMPTS = 20  # as setup_pubsub.sh


@dataclass
class RoleProcess:
    """One of the four scripts, running as its own process."""

    name: str
    process: subprocess.Popen
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.process.wait(timeout=timeout)

    def wait(self, timeout: float) -> int:
        return self.process.wait(timeout=timeout)


@dataclass
class Pipeline:
    settings: Settings
    workdir: Path
    cassandra: Any
    ack_deadline: int = 10  # as setup_pubsub.sh
    max_delivery_attempts: int = MAX_DELIVERY_ATTEMPTS
    roles: list[RoleProcess] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.settings = self.settings.suffixed(uuid.uuid4().hex[:8])
        self.publisher = publisher_client(self.settings)
        self.subscriber = subscriber_client(self.settings)
        self._select_all = prepare_in_keyspace(
            self.cassandra, self.settings, "SELECT * FROM orders_payments_facts"
        )

    # ------------------------------------------------------------ resources

    def topic_path(self, name: str) -> str:
        return self.publisher.topic_path(self.settings.project, name)

    def subscription_path(self, name: str) -> str:
        return self.subscriber.subscription_path(self.settings.project, name)

    def create(self) -> Pipeline:
        """Topics and subscriptions as setup_pubsub.sh makes them, dead-letter policy included."""
        for stream in self.settings.streams:
            create_stream(
                self.publisher,
                self.subscriber,
                self.settings.project,
                stream,
                ack_deadline=self.ack_deadline,
                max_delivery_attempts=self.max_delivery_attempts,
            )
        return self

    def close(self) -> None:
        for role in self.roles:
            if role.process.poll() is None:
                role.process.kill()
                role.process.wait()
        for stream in self.settings.streams:
            delete_stream(self.publisher, self.subscriber, self.settings.project, stream)
        self.publisher.stop()
        self.subscriber.close()

    # ------------------------------------------------------------ roles

    def env(self) -> dict[str, str]:
        return {**os.environ, **self.settings.to_env(), "PYTHONUNBUFFERED": "1"}

    def start(self, script: str, *args: str) -> RoleProcess:
        return self.start_with_env(script, {}, *args)

    def start_with_env(self, script: str, extra_env: dict[str, str], *args: str) -> RoleProcess:
        log = self.workdir / f"{script.removesuffix('.py')}-{len(self.roles)}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, str(ROOT / script), "--stats-interval", "2", *args],
                env={**self.env(), **extra_env},
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
            )
        role = RoleProcess(script, process, log)
        self.roles.append(role)
        return role

    # ------------------------------------------------------------ messages and rows

    def publish(self, stream: str, message: dict | bytes, **attributes: str) -> str:
        """Publish to the topic of the stream `stream` ("orders" or "payments")."""
        data = message if isinstance(message, bytes) else json.dumps(message).encode()
        topic = self.topic_path(getattr(self.settings, stream).topic)
        return self.publisher.publish(topic, data, **attributes).result(timeout=30)

    def rows(self) -> dict[int, dict]:
        """The whole fact table; an AssertionError while the test's session reconnects."""
        from cassandra import DriverException
        from cassandra.cluster import NoHostAvailable

        try:
            result = self.cassandra.execute(self._select_all, timeout=30)
        except (NoHostAvailable, DriverException) as error:
            raise AssertionError(f"Cassandra not reachable from the test yet: {error}") from error
        return {row.order_id: row._asdict() for row in result}

    def dead_letters(self, stream: str, wait: float = 3.0) -> list:
        """Every message now on the dead-letter subscription of `stream` (acked)."""
        return self.pull(getattr(self.settings, stream).dlq_subscription, wait)

    def pull(self, subscription: str, wait: float = 3.0) -> list:
        """Every message now on a subscription (acked), pulling until it stays empty."""
        path = self.subscription_path(subscription)
        messages = []
        quiet_until = time.monotonic() + wait
        while time.monotonic() < quiet_until:
            response = self.subscriber.pull(subscription=path, max_messages=1000, timeout=wait)
            if response.received_messages:
                messages += [r.message for r in response.received_messages]
                self.subscriber.acknowledge(
                    subscription=path, ack_ids=[r.ack_id for r in response.received_messages]
                )
                quiet_until = time.monotonic() + wait
        return messages


def published_ids(role: RoleProcess) -> set[int]:
    """The ids a producer logged as confirmed ("published order 7 as message 12")."""
    import re

    return {
        int(m) for m in re.findall(r"published (?:order|payment for order) (\d+) as", role.output())
    }


@dataclass
class Ledger:
    """Every message published, to check that each ended as a row or a dead letter."""

    orders: dict[int, dict] = field(default_factory=dict)
    payments: dict[int, dict] = field(default_factory=dict)


def account(pipeline: Pipeline, orders: dict[int, dict], payments: dict[int, dict], orphans=()):
    """published = rows with their data + dead letters; zero lost, zero duplicated.

    The table is read again if the read itself fails (a replica timing out while a node is
    down on a busy machine); what it returns is checked once, exactly.
    """
    rows = eventually(pipeline.rows, timeout=60)
    assert set(rows) == set(orders), (
        f"missing rows {sorted(set(orders) - set(rows))[:20]}, "
        f"unexpected rows {sorted(set(rows) - set(orders))[:20]}"
    )
    for order_id, order in orders.items():
        row = rows[order_id]
        assert {k: row[k] for k in order} == order, f"order {order_id} stored wrongly"
    for order_id, payment in payments.items():
        if order_id in orders:
            assert {k: rows[order_id][k] for k in payment} == payment, f"payment {order_id}"
    dead = pipeline.dead_letters("payments", wait=2)
    dead_ids = sorted(json.loads(m.data)["order_id"] for m in dead)
    assert dead_ids == sorted(orphans), (
        f"dead letters {dead_ids[:20]}, expected {sorted(orphans)[:20]}"
    )
    return rows, dead
