"""A broken set-up gets one clear message saying what to do."""

import socket
from pathlib import Path

import pytest
import yaml

from devtools import cassandra_node, processes, pubsub_emulator
from devtools.processes import SetupError
from ecom_pipeline.settings import Settings


def test_schema_file_splits_into_its_statements():
    statements = list(cassandra_node.cql_statements(cassandra_node.SCHEMA_FILE.read_text()))
    assert len(statements) == 3
    assert statements[0].startswith("CREATE KEYSPACE IF NOT EXISTS ecom_store")
    assert statements[1].startswith("CREATE TABLE IF NOT EXISTS ecom_store.orders_payments_facts")
    assert statements[2].startswith("CREATE TABLE IF NOT EXISTS ecom_store.pipeline_health")


def test_no_supported_jdk_is_named_with_what_to_install(monkeypatch, tmp_path):
    java21 = tmp_path / "jdk21" / "bin" / "java"
    java21.parent.mkdir(parents=True)
    java21.write_text("#!/bin/sh\necho 'openjdk version \"21.0.2\" 2024-01-16' >&2\n")
    java21.chmod(0o755)
    monkeypatch.setenv("JAVA_HOME", str(java21.parent.parent))
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(cassandra_node, "Path", _NoSystemJdks)
    with pytest.raises(SetupError, match=r"needs JDK 17 \(or 11\).*Java 21.*JAVA_HOME"):
        cassandra_node.find_java()


class _NoSystemJdks(type(Path())):
    def glob(self, pattern):
        return iter(()) if str(self) == "/usr/lib/jvm" else super().glob(pattern)


def test_a_taken_port_is_reported_with_how_to_find_the_owner():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        with pytest.raises(
            SetupError, match=rf"port {port} .* is taken by another process.*ss -ltnp"
        ):
            processes.check_port_free("127.0.0.1", port, "test")


def test_maven_unable_to_download_says_so(monkeypatch, tmp_path):
    monkeypatch.setattr(cassandra_node, "CACHE_DIR", tmp_path / "cache")
    # Offline with an empty local repository: the real Maven can resolve nothing.
    (tmp_path / ".m2").mkdir()
    (tmp_path / ".m2" / "settings.xml").write_text(
        f"<settings><offline>true</offline>"
        f"<localRepository>{tmp_path / 'empty-repo'}</localRepository></settings>"
    )
    monkeypatch.setenv("MAVEN_OPTS", f"-Duser.home={tmp_path}")
    with pytest.raises(SetupError, match="Maven could not download Cassandra from Maven Central"):
        cassandra_node.install_cassandra()


def test_missing_gcloud_says_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(processes, "STATE_DIR", tmp_path / "state")
    settings = Settings.from_env({"PUBSUB_EMULATOR_HOST": "127.0.0.1:1"})
    with pytest.raises(SetupError, match=r"gcloud.*not installed.*pubsub-emulator"):
        pubsub_emulator.start_emulator(settings)


def test_schema_is_applied_to_the_configured_keyspace():
    statements = cassandra_node.schema_statements("shop_test")
    assert statements[0].startswith("CREATE KEYSPACE IF NOT EXISTS shop_test")
    assert all("ecom_store" not in statement for statement in statements)


@pytest.mark.parametrize("name", ["", "1shop", "shop; DROP KEYSPACE x", "a" * 49, 'shop"'])
def test_a_keyspace_that_is_not_a_plain_name_is_refused(name):
    with pytest.raises(SetupError, match="CASSANDRA_KEYSPACE"):
        cassandra_node.schema_statements(name)


def test_cluster_nodes_are_laid_out_like_ccm_lays_out_a_local_cluster(monkeypatch, tmp_path):
    from devtools import cassandra_cluster

    monkeypatch.setattr(processes, "STATE_DIR", tmp_path)
    tokens = [node.initial_token for node in cassandra_cluster.NODES]
    assert tokens == sorted(tokens) and tokens[0] == -(2**63)
    assert len({node.jmx_port for node in cassandra_cluster.NODES}) == 3
    node = cassandra_cluster.NODES[1]
    config = yaml.safe_load(cassandra_node.write_cassandra_config(Settings(), node).read_text())
    assert (config["listen_address"], config["rpc_address"]) == ("127.0.0.2", "127.0.0.2")
    assert config["endpoint_snitch"] == "GossipingPropertyFileSnitch"
    assert config["seed_provider"][0]["parameters"][0]["seeds"] == "127.0.0.1:7000"
    rackdc = tmp_path / "cassandra-node2" / "conf" / "cassandra-rackdc.properties"
    assert rackdc.read_text() == "dc=dc1\nrack=rack1\n"
    command = cassandra_node.cassandra_command("java", rackdc.with_name("cassandra.yaml"), node)
    assert "-Dcassandra.jmx.local.port=7102" in command
    assert f"-Dcassandra-rackdc.properties={rackdc.as_uri()}" in command


def test_the_cluster_schema_replicates_to_three_nodes_of_dc1():
    statements = cassandra_node.schema_statements("ecom_store", cluster=True)
    assert "'NetworkTopologyStrategy', 'dc1': 3" in statements[0]
    assert "SimpleStrategy" not in " ".join(statements)
