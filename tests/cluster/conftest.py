"""The local three-node cluster and the emulator, started once for the cluster tests.

`make test-cluster` stops a single node first (both use 127.0.0.1); a test session
that finds the single node running fails at once instead of mixing the two.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devtools import cassandra_cluster, cassandra_node, pubsub_emulator
from ecom_pipeline.cassandra_session import open_session, prepare_in_keyspace
from ecom_pipeline.settings import Settings
from tests.integration.conftest import Services, run_setup_pubsub
from tests.integration.pipeline import Pipeline


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        item.add_marker(pytest.mark.cluster)


@pytest.fixture(scope="session")
def services() -> Iterator[Services]:
    if cassandra_node.CASSANDRA.pid() is not None:
        pytest.fail("the single-node Cassandra runs on 127.0.0.1: `make stop` it first")
    settings = cassandra_cluster.cluster_settings(Settings.from_env())
    pubsub_emulator.start_emulator(settings)
    cassandra_cluster.start_cluster(settings)
    running = Services(
        settings,
        "cluster",
        restart_cassandra=lambda: None,
        stop_cassandra=cassandra_cluster.stop_cluster,
        start_cassandra=lambda: cassandra_cluster.start_cluster(settings),
    )
    result = run_setup_pubsub(running)
    assert result.returncode == 0, result.stderr
    yield running


@pytest.fixture(scope="session")
def cassandra(services: Services):
    session = open_session(services.settings)
    yield session
    session.cluster.shutdown()


@pytest.fixture
def facts_table(cassandra, services: Services):
    truncate = prepare_in_keyspace(cassandra, services.settings, "TRUNCATE orders_payments_facts")
    cassandra.execute(truncate, timeout=60)
    return cassandra


@pytest.fixture
def pipeline(services: Services, facts_table, tmp_path):
    running = Pipeline(settings=services.settings, workdir=tmp_path, cassandra=facts_table)
    running.create()
    yield running
    running.close()
    for role in running.roles:
        print(f"----- {role.log.name}\n{role.output()[-4000:]}")


@pytest.fixture
def nodes_back(services: Services):
    """Whatever a test stops, every node is running again after it."""
    yield
    for index, node in enumerate(cassandra_cluster.NODES, start=1):
        if node.process.pid() is None:
            cassandra_cluster.start_one(index, services.settings)
