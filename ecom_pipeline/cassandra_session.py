"""Cassandra sessions: how the roles connect, and what a Cassandra error means for a message."""

from __future__ import annotations

import logging
import re
import ssl

from cassandra import AuthenticationFailed, ConsistencyLevel, InvalidRequest, ProtocolVersion
from cassandra.auth import PlainTextAuthProvider
from cassandra.cluster import (
    EXEC_PROFILE_DEFAULT,
    Cluster,
    ExecutionProfile,
    NoHostAvailable,
    Session,
)
from cassandra.policies import (
    AddressTranslator,
    DCAwareRoundRobinPolicy,
    ExponentialReconnectionPolicy,
    TokenAwarePolicy,
)
from cassandra.query import PreparedStatement

from ecom_pipeline.settings import Settings
from ecom_pipeline.startup import until_up

logger = logging.getLogger(__name__)

# `make mutate` mutates what an error means and how statements are prepared; connecting is
# the integration tests' part, so it is marked `# pragma: no mutate block`.


# What Cassandra says when the keyspace, a table or a column is not what the statements expect.
_SCHEMA_FAULT = re.compile(
    r"does not exist|unconfigured table|undefined column|unknown identifier", re.IGNORECASE
)


def is_schema_fault(error: Exception) -> bool:
    """A missing keyspace, table or column: a set-up problem, not the message's fault."""
    return isinstance(error, InvalidRequest) and bool(_SCHEMA_FAULT.search(str(error)))


def is_refusal(error: Exception) -> bool:
    """Whether Cassandra or the driver refuses the values themselves, so a retry cannot help.

    Anything else (unavailable replicas, timeouts, overload, no host, a schema
    fault) is an outage: the message is fine and is tried again once it is over.
    """
    return isinstance(error, (TypeError, ValueError, InvalidRequest)) and not is_schema_fault(error)


SCHEMA_HINT = "apply schema.cql (`make services` does) to put it back"


class MappedAddresses(AddressTranslator):
    """The driver reaches a node the cluster reports at one address through another.

    `CASSANDRA_ADDRESS_MAP` (e.g. nodes behind NAT or a proxy per node; the port stays the
    node's own); an address the map does not name is used as reported.
    """

    def __init__(self, pairs: tuple[tuple[str, str], ...]) -> None:
        self.addresses = dict(pairs)

    def translate(self, addr: str) -> str:
        return self.addresses.get(addr, addr)


class CassandraUnavailable(ConnectionError):  # pragma: no mutate block
    """Cassandra cannot be reached or refuses the login; the message says which and what to do.

    `lasting`: waiting cannot help (a refused login, TLS files that cannot be used).
    """

    def __init__(self, message: str, *, login_refused: bool = False, lasting: bool = False) -> None:
        super().__init__(message)
        self.login_refused = login_refused
        self.lasting = lasting or login_refused


def open_session(
    settings: Settings,
    *,
    username: str | None = None,
    password: str | None = None,
    connect_timeout: float = 10.0,
    request_timeout: float = 10.0,
) -> Session:  # pragma: no mutate block
    """Connect with password authentication; close with `session.cluster.shutdown()`.

    The session has no keyspace of its own: statements name it when they are
    prepared (`prepare_in_keyspace`), as Cassandra 5 recommends.
    """
    username = username or settings.cassandra_username
    ssl_context = tls_context(settings)
    profile = ExecutionProfile(
        # Token-aware over the local data centre: each request goes to a replica there.
        load_balancing_policy=TokenAwarePolicy(
            DCAwareRoundRobinPolicy(local_dc=settings.cassandra_local_dc or "")
        ),
        consistency_level=ConsistencyLevel.name_to_value[settings.cassandra_consistency],
        request_timeout=request_timeout,
    )
    cluster = Cluster(
        contact_points=list(settings.cassandra_hosts),
        port=settings.cassandra_port,
        auth_provider=PlainTextAuthProvider(
            username=username,
            password=settings.cassandra_password if password is None else password,
        ),
        protocol_version=ProtocolVersion.V5,
        # Reconnect within seconds of an outage's end, not minutes.
        reconnection_policy=ExponentialReconnectionPolicy(base_delay=0.5, max_delay=5.0),
        execution_profiles={EXEC_PROFILE_DEFAULT: profile},
        connect_timeout=connect_timeout,
        ssl_context=ssl_context,
        address_translator=MappedAddresses(settings.cassandra_address_map),
    )
    try:
        return cluster.connect()
    except NoHostAvailable as error:
        cluster.shutdown()
        raise _unavailable(error, settings, username) from error
    except Exception:
        cluster.shutdown()
        raise


def session_when_up(
    settings: Settings, timeout: float, **login: str
) -> Session:  # pragma: no mutate block
    """A session as soon as Cassandra accepts the login, within `timeout` seconds.

    A refused login is not retried; anything else (not up yet, still starting,
    busy) is, once a second, with one log line, so that the services can start
    in any order.
    """
    return until_up(
        lambda: open_session(settings, **login),
        timeout,
        passing=lambda error: isinstance(error, CassandraUnavailable) and not error.lasting,
        announce=lambda _error: logger.info(
            "waiting up to %.0fs for Cassandra at %s to accept a login",
            timeout,
            ", ".join(settings.cassandra_hosts),
        ),
    )


def tls_context(settings: Settings) -> ssl.SSLContext | None:  # pragma: no mutate block
    """TLS to Cassandra when a CA (CASSANDRA_TLS_CA) or a client certificate is configured.

    The server's certificate is checked against the CA (the system's CAs without one),
    and its host name unless CASSANDRA_TLS_VERIFY_HOSTNAME=false. A client certificate
    (CASSANDRA_TLS_CERT, its key in CASSANDRA_TLS_KEY or in the same file) is presented to
    a server with require_client_auth. Files that cannot be used are a lasting
    CassandraUnavailable that names the variables.
    """
    if not (settings.cassandra_tls_ca or settings.cassandra_tls_cert):
        return None
    try:
        context = ssl.create_default_context(
            ssl.Purpose.SERVER_AUTH, cafile=settings.cassandra_tls_ca
        )
        context.check_hostname = settings.cassandra_tls_verify_hostname
        if settings.cassandra_tls_cert:
            # An empty password: an encrypted key fails here instead of prompting on a terminal.
            context.load_cert_chain(
                settings.cassandra_tls_cert, settings.cassandra_tls_key, password=""
            )
    except (OSError, ssl.SSLError) as error:
        files = ", ".join(
            f"{variable}={path}"
            for variable, path in (
                ("CASSANDRA_TLS_CA", settings.cassandra_tls_ca),
                ("CASSANDRA_TLS_CERT", settings.cassandra_tls_cert),
                ("CASSANDRA_TLS_KEY", settings.cassandra_tls_key),
            )
            if path
        )
        raise CassandraUnavailable(
            f"cannot use the TLS files for Cassandra ({files}): {error}. They must be readable "
            "PEM files, the key unencrypted and matching the certificate.",
            lasting=True,
        ) from None
    return context


def prepare_in_keyspace(session: Session, settings: Settings, cql: str) -> PreparedStatement:
    """Prepare `cql`, whose table names are unqualified, in the configured keyspace."""
    return session.prepare(cql, keyspace=settings.cassandra_keyspace)


def _unavailable(
    error: NoHostAvailable, settings: Settings, username: str
) -> CassandraUnavailable:  # pragma: no mutate block
    where = ", ".join(f"{host}:{settings.cassandra_port}" for host in settings.cassandra_hosts)
    # A dict of host -> error, or (when no pool could be opened) only the hosts tried.
    causes = list(error.errors.values()) if isinstance(error.errors, dict) else []
    # While a new node sets up its roles it refuses logins with a transient message.
    if causes and all(
        isinstance(cause, AuthenticationFailed) and "not yet" not in str(cause).lower()
        for cause in causes
    ):
        return CassandraUnavailable(
            f"Cassandra at {where} refused the login of user {username!r}: wrong username or "
            "password. Check CASSANDRA_USERNAME and CASSANDRA_PASSWORD.",
            login_refused=True,
        )
    detail = "; ".join(str(cause) for cause in causes) or str(error)
    return CassandraUnavailable(
        f"cannot reach Cassandra at {where} ({detail}). Is it running? "
        "`make services` starts a local one; CASSANDRA_HOSTS and CASSANDRA_PORT say where it is."
    )
