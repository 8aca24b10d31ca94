"""Client certificates (mutual TLS) against a real Cassandra with require_client_auth on.

The module starts its own Cassandra node from the same jars as `make services` (devtools),
on another loopback address with its own ports and directories, configured with
client_encryption_options, and stops it at the end. It never skips: without a JDK or the
jars it fails and says why. The certificates are made here with `cryptography`.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from devtools import cassandra_node
from devtools.processes import ManagedProcess
from ecom_pipeline.cassandra_session import CassandraUnavailable, open_session, prepare_in_keyspace
from ecom_pipeline.fact_store import FactStore
from ecom_pipeline.messages import parse_order, parse_payment
from ecom_pipeline.settings import Settings
from tests.certificates import Certificates, make_certificates
from tests.unit.test_messages import ORDER, PAYMENT

pytestmark = pytest.mark.timeout(600)  # the node's first start includes fetching the jars

ADDRESS = "127.0.0.5"  # a loopback address of its own: the shared Cassandra is on 127.0.0.1


# ---------------------------------------------------------------- the node


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind((ADDRESS, 0))
        return probe.getsockname()[1]


@dataclass
class MutualTlsCassandra:
    certificates: Certificates
    port: int

    def environment(self, **tls: str) -> dict[str, str]:
        """What a role's environment holds to reach this node (TLS variables as given)."""
        return {
            "CASSANDRA_HOSTS": ADDRESS,
            "CASSANDRA_PORT": str(self.port),
            "PUBSUB_EMULATOR_HOST": "127.0.0.1:1",  # not used here
            **tls,
        }

    def with_client_certificate(self) -> dict[str, str]:
        return self.environment(
            CASSANDRA_TLS_CA=str(self.certificates.ca),
            CASSANDRA_TLS_CERT=str(self.certificates.client_cert),
            CASSANDRA_TLS_KEY=str(self.certificates.client_key),
        )


@pytest.fixture(scope="module")
def mtls_cassandra(tmp_path_factory) -> Iterator[MutualTlsCassandra]:
    certificates = make_certificates(tmp_path_factory.mktemp("certificates"), server_ip=ADDRESS)
    node = cassandra_node.Node(
        process=ManagedProcess(
            "cassandra-mtls",
            "org.apache.cassandra.service.CassandraDaemon",
            root=tmp_path_factory.mktemp("node"),
        ),
        address=ADDRESS,
        storage_port=_free_port(),
        heap="512m",
        config={
            "cluster_name": "ecom-mtls-test",
            "client_encryption_options": {
                "enabled": True,
                "optional": False,
                "require_client_auth": "true",
                "ssl_context_factory": {
                    "class_name": "org.apache.cassandra.security.PEMBasedSslContextFactory"
                },
                "keystore": str(certificates.server),
                "truststore": str(certificates.ca),
            },
        },
    )
    running = MutualTlsCassandra(certificates, _free_port())
    settings = Settings.from_env(running.with_client_certificate())
    try:
        # Starts the node, then creates admin and the schema over mutual TLS.
        cassandra_node.start_cassandra(settings, node)
        yield running
    finally:
        node.process.stop()


# ---------------------------------------------------------------- the tests


def test_with_a_client_certificate_the_worked_example_is_written_and_read_back(mtls_cassandra):
    settings = Settings.from_env(mtls_cassandra.with_client_certificate())
    session = open_session(settings)
    try:
        store = FactStore(session, settings)
        order = parse_order(json.dumps(ORDER).encode())
        payment = parse_payment(json.dumps(PAYMENT).encode())
        assert store.upsert_orders([order], [1_000]) == [None]
        assert store.attach_payments([payment], [2_000]) == [None]
        select = prepare_in_keyspace(
            session, settings, "SELECT * FROM orders_payments_facts WHERE order_id = ?"
        )
        row = session.execute(select, (42,)).one()._asdict()
        assert row == {**ORDER, **PAYMENT} and len(row) == 13
    finally:
        session.cluster.shutdown()


def test_without_a_client_certificate_the_server_refuses_the_connection(mtls_cassandra):
    server_only = Settings.from_env(
        mtls_cassandra.environment(CASSANDRA_TLS_CA=str(mtls_cassandra.certificates.ca))
    )
    with pytest.raises(CassandraUnavailable, match=f"cannot reach Cassandra at {ADDRESS}"):
        open_session(server_only, connect_timeout=5)


def test_a_client_certificate_from_a_ca_the_server_does_not_trust_is_refused(mtls_cassandra):
    stranger = Settings.from_env(
        mtls_cassandra.environment(
            CASSANDRA_TLS_CA=str(mtls_cassandra.certificates.ca),
            CASSANDRA_TLS_CERT=str(mtls_cassandra.certificates.stranger_cert),
            CASSANDRA_TLS_KEY=str(mtls_cassandra.certificates.stranger_key),
        )
    )
    with pytest.raises(CassandraUnavailable, match=f"cannot reach Cassandra at {ADDRESS}"):
        open_session(stranger, connect_timeout=5)


def test_a_client_without_tls_is_refused(mtls_cassandra):
    plain = Settings.from_env(mtls_cassandra.environment())
    with pytest.raises(CassandraUnavailable, match=f"cannot reach Cassandra at {ADDRESS}"):
        open_session(plain, connect_timeout=5)
