"""Every setting of the pipeline, read once from the environment.

The defaults describe the local setup (`make services`): the Pub/Sub emulator on
127.0.0.1:8085 and a single Cassandra node on 127.0.0.1:9042 with the local-only
superuser admin/admin. Nothing else in the code base knows these values.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

LOCAL_EMULATOR_HOST = "127.0.0.1:8085"
LOCAL_PROJECT = "ecom-local"


@dataclass(frozen=True)
class Stream:
    """One message type's way through Pub/Sub: the four names Pub/Sub's dead-letter set-up takes.

    Each name can be changed through the environment, e.g. `ORDERS_TOPIC` or
    `PAYMENTS_DLQ_SUBSCRIPTION` (the stream's name, then the field's).
    """

    name: str
    topic: str
    subscription: str
    dlq_topic: str
    dlq_subscription: str

    NAME_FIELDS = ("topic", "subscription", "dlq_topic", "dlq_subscription")

    @classmethod
    def named(cls, name: str, topic: str) -> Stream:
        """The default names: `orders_data`, `orders_data-sub`, `dlq_orders_data`, ...-sub."""
        return cls(name, topic, f"{topic}-sub", f"dlq_{topic}", f"dlq_{topic}-sub")

    def variables(self) -> dict[str, str]:
        """The environment variables that name this stream's resources, with their values."""
        return {f"{self.name}_{field}".upper(): getattr(self, field) for field in self.NAME_FIELDS}

    def from_variables(self, env: Mapping[str, str]) -> Stream:
        changes = {
            field: env.get(variable) or getattr(self, field)
            for field, variable in zip(self.NAME_FIELDS, self.variables(), strict=True)
        }
        return dataclasses.replace(self, **changes)

    def suffixed(self, suffix: str) -> Stream:
        """The same stream under names no one else uses (tests, benchmarks)."""
        changes = {field: f"{getattr(self, field)}-{suffix}" for field in self.NAME_FIELDS}
        return dataclasses.replace(self, **changes)


ORDERS = Stream.named("orders", "orders_data")
PAYMENTS = Stream.named("payments", "payments_data")


@dataclass(frozen=True)
class Settings:
    """Connection details and resource names shared by all roles.

    `emulator_host` None means real Google Cloud Pub/Sub (Application Default
    Credentials); any other value is a `HOST:PORT` of the emulator.
    """

    project: str = LOCAL_PROJECT
    emulator_host: str | None = LOCAL_EMULATOR_HOST
    cassandra_hosts: tuple[str, ...] = ("127.0.0.1",)
    cassandra_port: int = 9042
    cassandra_username: str = "admin"
    cassandra_password: str = dataclasses.field(default="admin", repr=False)
    cassandra_keyspace: str = "ecom_store"
    cassandra_consistency: str = "LOCAL_QUORUM"
    cassandra_local_dc: str | None = None  # None: the data centre of the contact points
    # Node addresses as the cluster reports them -> the addresses this host reaches them at
    # (NAT, a proxy per node), on the same port; the contact points are already reachable.
    cassandra_address_map: tuple[tuple[str, str], ...] = ()
    cassandra_tls_ca: str | None = None
    # A client certificate and its key (PEM files) for Cassandra's require_client_auth.
    cassandra_tls_cert: str | None = None
    cassandra_tls_key: str | None = None
    cassandra_tls_verify_hostname: bool = True
    orders: Stream = ORDERS
    payments: Stream = PAYMENTS

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Build settings from the standard environment variables.

        Pub/Sub: `PUBSUB_EMULATOR_HOST` set means that emulator, set but empty means
        real Google Cloud; unset, it means the local emulator unless
        `GOOGLE_CLOUD_PROJECT` is set (then real Google Cloud). Topic and subscription names can
        be changed too (`ORDERS_TOPIC`, `PAYMENTS_SUBSCRIPTION`, ...).
        """
        env = os.environ if environ is None else environ
        defaults = cls()
        emulator_host = env.get("PUBSUB_EMULATOR_HOST")
        if emulator_host is None:
            # Nothing configured at all means the local setup; a project of your own
            # without an emulator variable means real Google Cloud, as usual.
            emulator_host = "" if env.get("GOOGLE_CLOUD_PROJECT") else LOCAL_EMULATOR_HOST
        return cls(
            project=env.get("GOOGLE_CLOUD_PROJECT") or defaults.project,
            emulator_host=emulator_host.strip() or None,
            cassandra_hosts=_read(env, "CASSANDRA_HOSTS", host_list, defaults.cassandra_hosts),
            cassandra_port=_read(env, "CASSANDRA_PORT", port_number, defaults.cassandra_port),
            cassandra_username=env.get("CASSANDRA_USERNAME") or defaults.cassandra_username,
            cassandra_password=env.get("CASSANDRA_PASSWORD", defaults.cassandra_password),
            cassandra_keyspace=env.get("CASSANDRA_KEYSPACE") or defaults.cassandra_keyspace,
            cassandra_consistency=_read(
                env, "CASSANDRA_CONSISTENCY", consistency_level, defaults.cassandra_consistency
            ),
            cassandra_local_dc=env.get("CASSANDRA_LOCAL_DC") or None,
            cassandra_address_map=_read(
                env, "CASSANDRA_ADDRESS_MAP", address_map, defaults.cassandra_address_map
            ),
            cassandra_tls_ca=env.get("CASSANDRA_TLS_CA") or None,
            cassandra_tls_cert=env.get("CASSANDRA_TLS_CERT") or None,
            cassandra_tls_key=_key_of(env.get("CASSANDRA_TLS_CERT"), env.get("CASSANDRA_TLS_KEY")),
            cassandra_tls_verify_hostname=_flag(env, "CASSANDRA_TLS_VERIFY_HOSTNAME", True),
            orders=defaults.orders.from_variables(env),
            payments=defaults.payments.from_variables(env),
        )

    @classmethod
    def for_local_services(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """`from_env` for the local tooling (`make services`, `make run`, the tests' services).

        Its Pub/Sub is always an emulator: `PUBSUB_EMULATOR_HOST`, or the local one when that
        is unset or empty, even with `GOOGLE_CLOUD_PROJECT` exported (Cloud Shell does), which
        then only names the project on the emulator.
        """
        env = os.environ if environ is None else environ
        emulator_host = env.get("PUBSUB_EMULATOR_HOST") or LOCAL_EMULATOR_HOST
        return cls.from_env({**env, "PUBSUB_EMULATOR_HOST": emulator_host})

    @property
    def streams(self) -> tuple[Stream, ...]:
        return (self.orders, self.payments)

    def suffixed(self, suffix: str) -> Settings:
        """Every stream under names no one else uses (tests, benchmarks)."""
        return self.replace(
            orders=self.orders.suffixed(suffix), payments=self.payments.suffixed(suffix)
        )

    def to_env(self) -> dict[str, str]:
        """The environment variables that make `from_env` give these settings back (no secrets)."""
        env = {
            "PUBSUB_EMULATOR_HOST": self.emulator_host or "",
            "GOOGLE_CLOUD_PROJECT": self.project,
            "CASSANDRA_HOSTS": ",".join(self.cassandra_hosts),
            "CASSANDRA_PORT": str(self.cassandra_port),
            "CASSANDRA_USERNAME": self.cassandra_username,
            "CASSANDRA_KEYSPACE": self.cassandra_keyspace,
            "CASSANDRA_CONSISTENCY": self.cassandra_consistency,
            "CASSANDRA_LOCAL_DC": self.cassandra_local_dc or "",
            "CASSANDRA_ADDRESS_MAP": ",".join(f"{a}={b}" for a, b in self.cassandra_address_map),
        }
        tls = {
            "CASSANDRA_TLS_CA": self.cassandra_tls_ca,
            "CASSANDRA_TLS_CERT": self.cassandra_tls_cert,
            "CASSANDRA_TLS_KEY": self.cassandra_tls_key,
        }
        env.update({variable: path for variable, path in tls.items() if path})
        if not self.cassandra_tls_verify_hostname:
            env["CASSANDRA_TLS_VERIFY_HOSTNAME"] = "false"
        for stream in self.streams:
            env.update(stream.variables())
        return env

    def replace(self, **changes: object) -> Settings:
        """A copy with some fields changed (flags override the environment)."""
        return dataclasses.replace(self, **changes)

    def __repr__(self) -> str:
        fields = ", ".join(
            f"{f.name}={getattr(self, f.name)!r}" for f in dataclasses.fields(self) if f.repr
        )
        return f"Settings({fields}, cassandra_password='***')"


T = TypeVar("T")


def _read(env: Mapping[str, str], name: str, parse: Callable[[str], T], default: T) -> T:
    """A variable's value by its rule (the default when unset or empty); a refusal names it."""
    value = env.get(name)
    if not value:
        return default
    try:
        return parse(value)
    except ValueError as error:
        raise ValueError(f"{name} {error}") from None


# The rules of the values that a flag can give too (cli.py): their refusals name no
# variable, so that each caller names what was wrong, the variable or the flag.


def host_list(value: str) -> tuple[str, ...]:
    """Comma-separated contact points."""
    hosts = tuple(h.strip() for h in value.split(",") if h.strip())
    if not hosts:
        raise ValueError(f"has no host in it: {value!r}")
    return hosts


def address_map(value: str) -> tuple[tuple[str, str], ...]:
    """`REPORTED=REACHABLE` pairs, comma-separated, each reported address once."""
    pairs: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in value.split(","))):
        reported, equals, reachable = (side.strip() for side in item.partition("="))
        if not (equals and reported and reachable):
            raise ValueError(f"must be REPORTED=REACHABLE pairs, not {item!r}")
        if reachable.count(":") == 1:  # HOST:PORT (an IPv6 address has more colons)
            raise ValueError(
                f"maps addresses only, not ports: {reachable!r} (the driver keeps each "
                "node's CQL port)"
            )
        if reported in pairs:
            raise ValueError(f"maps {reported} twice")
        pairs[reported] = reachable
    if not pairs:
        raise ValueError(f"has no REPORTED=REACHABLE pair in it: {value!r}")
    return tuple(pairs.items())


def _key_of(cert: str | None, key: str | None) -> str | None:
    if key and not cert:
        raise ValueError(
            "CASSANDRA_TLS_KEY is set but CASSANDRA_TLS_CERT is not: the key belongs to a client "
            "certificate, set both (or only CASSANDRA_TLS_CERT for a file that holds both)"
        )
    return key or None


def _flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    value = (env.get(name) or "").strip().lower()
    if not value:
        return default
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{name} must be true or false, not {env[name]!r}")


def port_number(value: str) -> int:
    try:
        port = int(value)
    except ValueError:
        raise ValueError(f"must be a number, not {value!r}") from None
    if not 0 < port < 65536:
        raise ValueError(f"must be between 1 and 65535, not {port}")
    return port


CONSISTENCY_LEVELS = (
    "ONE",
    "TWO",
    "THREE",
    "QUORUM",
    "ALL",
    "LOCAL_QUORUM",
    "EACH_QUORUM",
    "LOCAL_ONE",
)


def consistency_level(value: str) -> str:
    level = value.strip().upper()
    if level not in CONSISTENCY_LEVELS:
        raise ValueError(f"must be one of {', '.join(CONSISTENCY_LEVELS)}, not {value!r}")
    return level
