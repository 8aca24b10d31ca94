"""The local three-node cluster and the emulator, started once for the cluster tests.

`make test-cluster` stops a single node first (both use 127.0.0.1); a test session
that finds the single node running fails at once instead of mixing the two.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devtools import cassandra_cluster, cassandra_node, pubsub_emulator
from ecom_pipeline.settings import Settings
from tests.integration.conftest import (  # noqa: F401 (fixtures, over this file's services)
    Services,
    cassandra,
    facts_table,
    pipeline,
    run_setup_pubsub,
    settings,
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        item.add_marker(pytest.mark.cluster)


@pytest.fixture(scope="session")
def services() -> Iterator[Services]:
    if cassandra_node.CASSANDRA.pid() is not None:
        pytest.fail("the single-node Cassandra runs on 127.0.0.1: `make stop` it first")
    cluster = cassandra_cluster.cluster_settings(Settings.for_local_services())
    pubsub_emulator.start_emulator(cluster)
    cassandra_cluster.start_cluster(cluster)
    running = Services(
        cluster,
        "cluster",
        restart_cassandra=lambda: None,
        stop_cassandra=cassandra_cluster.stop_cluster,
        start_cassandra=lambda: cassandra_cluster.start_cluster(cluster),
    )
    result = run_setup_pubsub(running)
    assert result.returncode == 0, result.stderr
    yield running


@pytest.fixture
def nodes_back(services: Services):
    """Whatever a test stops, every node is running again after it."""
    yield
    for index, node in enumerate(cassandra_cluster.NODES, start=1):
        if node.process.pid() is None:
            cassandra_cluster.start_one(index, services.settings)
