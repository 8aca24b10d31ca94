"""The networks a benchmark runs the roles on: loopback, or through Toxiproxy with latency.

On loopback the roles talk to Cassandra and the Pub/Sub emulator directly, as on one
machine. Through Toxiproxy each service gets a proxy on 127.0.0.1 (a port the proxy
picks) with a latency toxic on both directions, so every request pays the stated
round trip, as between hosts in one data centre (Cassandra) and to a cloud service
(Pub/Sub). Only the roles go through the proxies (CASSANDRA_HOSTS/CASSANDRA_PORT and
PUBSUB_EMULATOR_HOST in their environment); the harness itself publishes and reads
back directly.

Each network also says which addresses a consumer may be connected to, and reports
the bytes its proxies carried, so that a drain can check the traffic really went
through them (the Cassandra driver could otherwise reconnect to the node's own
address, 127.0.0.1:9042, which it learns from system.local).
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass

from devtools import toxiproxy
from ecom_pipeline.settings import Settings

logger = logging.getLogger("bench")


@dataclass(frozen=True)
class ProxyLatency:
    """Latency Toxiproxy adds, each way (ms), to Cassandra and to Pub/Sub."""

    cassandra_ms: int = 1
    cassandra_jitter_ms: int = 0
    pubsub_ms: int = 10
    pubsub_jitter_ms: int = 0

    def describe(self) -> str:
        def one(ms: int, jitter: int) -> str:
            return f"+{ms} ms" + (f" +/- {jitter} ms" if jitter else "")

        return (
            f"through Toxiproxy {toxiproxy.VERSION}: "
            f"{one(self.cassandra_ms, self.cassandra_jitter_ms)} each way to Cassandra, "
            f"{one(self.pubsub_ms, self.pubsub_jitter_ms)} each way to Pub/Sub"
        )


class Loopback:
    """The roles use the services' own addresses."""

    name = "loopback"
    exclusive = False  # the driver may reach other nodes of a cluster too

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.description = (
            f"loopback: Cassandra {settings.cassandra_hosts[0]}:{settings.cassandra_port} "
            f"and the emulator {settings.emulator_host} directly"
        )

    def __enter__(self) -> Loopback:
        return self

    def __exit__(self, *_exc: object) -> None:
        pass

    def env(self) -> dict[str, str]:
        return {}

    def allowed_peers(self) -> set[str]:
        """Addresses a consumer must be connected to."""
        return {_cassandra_address(self.settings), self.settings.emulator_host or ""}

    def traffic(self) -> dict[str, int]:
        """Bytes carried per proxy so far: none here."""
        return {}


class Proxied:
    """A Toxiproxy proxy per service, with latency both ways; removed on exit."""

    name = "proxied"
    exclusive = True

    def __init__(self, settings: Settings, latency: ProxyLatency) -> None:
        self.settings = settings
        self.latency = latency
        self.description = latency.describe()
        self.client = toxiproxy.ToxiproxyClient()
        suffix = uuid.uuid4().hex[:6]
        self.names = {"cassandra": f"bench-cassandra-{suffix}", "pubsub": f"bench-pubsub-{suffix}"}
        self.proxies: dict[str, toxiproxy.Proxy] = {}
        self._started_server = False

    def __enter__(self) -> Proxied:
        self._started_server = toxiproxy.start()
        try:
            upstreams = {
                "cassandra": _cassandra_address(self.settings),
                "pubsub": self.settings.emulator_host or "",
            }
            delays = {
                "cassandra": (self.latency.cassandra_ms, self.latency.cassandra_jitter_ms),
                "pubsub": (self.latency.pubsub_ms, self.latency.pubsub_jitter_ms),
            }
            for service, upstream in upstreams.items():
                proxy = self.client.create_proxy(
                    self.names[service], listen="127.0.0.1:0", upstream=upstream
                )
                self.proxies[service] = proxy
                self.client.add_latency(proxy.name, *delays[service])
                logger.info("proxy %s: %s -> %s", proxy.name, proxy.listen, upstream)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *_exc: object) -> None:
        for proxy in self.proxies.values():
            try:
                self.client.delete_proxy(proxy.name)
            except toxiproxy.ToxiproxyError as error:
                logger.warning("could not delete proxy %s: %s", proxy.name, error)
        self.proxies.clear()
        if self._started_server:
            toxiproxy.stop()

    def env(self) -> dict[str, str]:
        cassandra = self.proxies["cassandra"]
        return {
            "CASSANDRA_HOSTS": cassandra.listen.rpartition(":")[0],
            "CASSANDRA_PORT": str(cassandra.port),
            "PUBSUB_EMULATOR_HOST": self.proxies["pubsub"].listen,
        }

    def allowed_peers(self) -> set[str]:
        return {proxy.listen for proxy in self.proxies.values()}

    def traffic(self) -> dict[str, int]:
        by_name = self.client.traffic()
        return {
            service: by_name.get(proxy.name, toxiproxy.Traffic()).total
            for service, proxy in self.proxies.items()
        }


def _cassandra_address(settings: Settings) -> str:
    return f"{settings.cassandra_hosts[0]}:{settings.cassandra_port}"
