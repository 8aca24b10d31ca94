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

from ecom_pipeline.cassandra_store import prepare_in_keyspace
from ecom_pipeline.pubsub_clients import publisher_client, subscriber_client
from ecom_pipeline.settings import RESOURCE_NAMES, Settings

ROOT = Path(__file__).resolve().parents[2]
TOPIC_OF = {
    "orders_subscription": "orders_topic",
    "payments_subscription": "payments_topic",
    "payments_dlq_subscription": "payments_dlq_topic",
    "orders_dlq_subscription": "orders_dlq_topic",
}


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
    ack_deadline: int = 60
    roles: list[RoleProcess] = field(default_factory=list)

    def __post_init__(self) -> None:
        suffix = uuid.uuid4().hex[:8]
        self.settings = self.settings.replace(
            **{name: f"{getattr(self.settings, name)}-{suffix}" for name in RESOURCE_NAMES}
        )
        self.publisher = publisher_client(self.settings)
        self.subscriber = subscriber_client(self.settings)
        self._select_all = prepare_in_keyspace(
            self.cassandra, self.settings, "SELECT * FROM orders_payments_facts"
        )

    # ------------------------------------------------------------ resources

    def topic_path(self, name: str) -> str:
        return self.publisher.topic_path(self.settings.project, getattr(self.settings, name))

    def subscription_path(self, name: str) -> str:
        return self.subscriber.subscription_path(
            self.settings.project, getattr(self.settings, name)
        )

    def create(self) -> Pipeline:
        for subscription, topic in TOPIC_OF.items():
            self.publisher.create_topic(name=self.topic_path(topic))
            self.subscriber.create_subscription(
                name=self.subscription_path(subscription),
                topic=self.topic_path(topic),
                ack_deadline_seconds=self.ack_deadline,
            )
        return self

    def close(self) -> None:
        for role in self.roles:
            if role.process.poll() is None:
                role.process.kill()
                role.process.wait()
        for subscription, topic in TOPIC_OF.items():
            self.subscriber.delete_subscription(subscription=self.subscription_path(subscription))
            self.publisher.delete_topic(topic=self.topic_path(topic))
        self.publisher.stop()
        self.subscriber.close()

    # ------------------------------------------------------------ roles

    def env(self) -> dict[str, str]:
        s = self.settings
        env = dict(os.environ)
        env.update(
            PUBSUB_EMULATOR_HOST=s.emulator_host or "",
            GOOGLE_CLOUD_PROJECT=s.project,
            CASSANDRA_HOSTS=",".join(s.cassandra_hosts),
            CASSANDRA_PORT=str(s.cassandra_port),
            CASSANDRA_KEYSPACE=s.cassandra_keyspace,
            PYTHONUNBUFFERED="1",
        )
        env.update({name.upper(): getattr(s, name) for name in RESOURCE_NAMES})
        return env

    def start(self, script: str, *args: str) -> RoleProcess:
        log = self.workdir / f"{script.removesuffix('.py')}-{len(self.roles)}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, str(ROOT / script), "--stats-interval", "2", *args],
                env=self.env(),
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
            )
        role = RoleProcess(script, process, log)
        self.roles.append(role)
        return role

    # ------------------------------------------------------------ messages and rows

    def publish(self, topic: str, message: dict | bytes, **attributes: str) -> str:
        data = message if isinstance(message, bytes) else json.dumps(message).encode()
        return self.publisher.publish(self.topic_path(topic), data, **attributes).result(timeout=30)

    def rows(self) -> dict[int, dict]:
        return {row.order_id: row._asdict() for row in self.cassandra.execute(self._select_all)}

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
