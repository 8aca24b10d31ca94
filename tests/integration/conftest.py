"""Real services for the integration tests, started once per session.

Services already listening are reused; otherwise the local Cassandra and the
emulator are started by devtools.services. With PIPELINE_TEST_DOCKER=1 and a
reachable Docker engine, testcontainers runs both instead.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from devtools import cassandra_node, pubsub_emulator
from devtools import services as local_services
from ecom_pipeline.cassandra_session import open_session, prepare_in_keyspace
from ecom_pipeline.pubsub import publisher_client, subscriber_client
from ecom_pipeline.settings import Settings
from tests.integration.pipeline import Pipeline
from tests.waiting import eventually

ROOT = Path(__file__).resolve().parents[2]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if Path(str(item.fspath)).is_relative_to(Path(__file__).parent):
            item.add_marker(pytest.mark.integration)


@dataclass
class Services:
    """Where the services are and how to restart Cassandra (for durability tests)."""

    settings: Settings
    mode: str  # "local", "docker"
    restart_cassandra: Callable[[], None]
    stop_cassandra: Callable[[], None]
    start_cassandra: Callable[[], None]
    stop_emulator: Callable[[], None] | None = None
    start_emulator: Callable[[], None] | None = None

    def pubsub_env(self) -> dict[str, str]:
        """Environment for gcloud and setup_pubsub.sh against these services."""
        env = dict(os.environ, GOOGLE_CLOUD_PROJECT=self.settings.project)
        env["PUBSUB_EMULATOR_HOST"] = self.settings.emulator_host or ""
        if self.settings.emulator_host:
            env["CLOUDSDK_API_ENDPOINT_OVERRIDES_PUBSUB"] = f"http://{self.settings.emulator_host}/"
            env["CLOUDSDK_AUTH_DISABLE_CREDENTIALS"] = "true"
        env["CLOUDSDK_CORE_PROJECT"] = self.settings.project
        return env


def run_setup_pubsub(services: Services) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(ROOT / "setup_pubsub.sh")],
        env=services.pubsub_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _docker_reachable() -> bool:
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _local_services(settings: Settings) -> Iterator[Services]:
    local_services.start(settings)

    def stop() -> None:
        cassandra_node.stop_cassandra()

    def start() -> None:
        cassandra_node.start_cassandra(settings)

    def restart() -> None:
        stop()
        start()

    def start_emulator() -> None:
        pubsub_emulator.start_emulator(settings)
        result = run_setup_pubsub(services)
        assert result.returncode == 0, result.stderr

    services = Services(
        settings,
        "local",
        restart,
        stop,
        start,
        stop_emulator=pubsub_emulator.stop_emulator,
        start_emulator=start_emulator,
    )
    yield services


def _docker_services(settings: Settings) -> Iterator[Services]:
    from testcontainers.core.container import DockerContainer
    from testcontainers.google import PubSubContainer

    cassandra = (
        DockerContainer(cassandra_node.CASSANDRA_IMAGE)
        .with_exposed_ports(9042)
        .with_env("MAX_HEAP_SIZE", "1G")
        .with_env("HEAP_NEWSIZE", "200M")
        .with_volume_mapping(
            str(ROOT / "cassandra-setup" / "cassandra.yaml"),
            "/pipeline-config/cassandra.yaml",
            "ro",
        )
        .with_command(
            [
                "bash",
                "-c",
                "cp /pipeline-config/cassandra.yaml /etc/cassandra/cassandra.yaml"
                " && exec docker-entrypoint.sh cassandra -f",
            ]
        )
    )
    emulator = PubSubContainer(project=settings.project)
    with cassandra, emulator:
        holder: dict[str, Settings] = {}

        def locate() -> Settings:
            holder["settings"] = settings.replace(
                emulator_host=emulator.get_pubsub_emulator_host(),
                cassandra_hosts=(cassandra.get_container_host_ip(),),
                cassandra_port=int(cassandra.get_exposed_port(9042)),
            )
            return holder["settings"]

        cassandra_node.ensure_roles_and_schema(locate())
        wrapped = cassandra.get_wrapped_container()

        def start() -> None:
            wrapped.start()
            services.settings = locate()
            cassandra_node.ensure_roles_and_schema(services.settings)

        def restart() -> None:
            wrapped.stop()
            start()

        services = Services(holder["settings"], "docker", restart, wrapped.stop, start)
        yield services


@pytest.fixture(scope="session")
def services() -> Iterator[Services]:
    settings = Settings.for_local_services()
    if os.environ.get("PIPELINE_TEST_DOCKER") == "1":
        if not _docker_reachable():
            pytest.fail("PIPELINE_TEST_DOCKER=1 but no Docker engine answers `docker info`")
        factory = _docker_services
    else:
        factory = _local_services
    for running in factory(settings):
        result = run_setup_pubsub(running)
        assert result.returncode == 0, result.stderr
        yield running


@pytest.fixture(scope="session")
def settings(services: Services) -> Settings:
    return services.settings


@pytest.fixture(scope="session")
def cassandra(services: Services):
    """One session for the whole test run, like a long-running consumer."""
    session = open_session(services.settings)
    yield session
    session.cluster.shutdown()


@pytest.fixture
def facts_table(cassandra, settings):
    """The fact table, emptied before the test."""
    truncate = prepare_in_keyspace(cassandra, settings, "TRUNCATE orders_payments_facts")
    cassandra.execute(truncate, timeout=60)
    return cassandra


@pytest.fixture
def pipeline(services: Services, facts_table, tmp_path):
    """Uuid-named topics and subscriptions, an empty fact table, role processes."""
    running = Pipeline(settings=services.settings, workdir=tmp_path, cassandra=facts_table)
    running.create()
    yield running
    running.close()
    for role in running.roles:
        print(f"----- {role.log.name}\n{role.output()[-4000:]}")


@pytest.fixture
def publisher(services: Services):
    client = publisher_client(services.settings)
    yield client
    client.stop()


@pytest.fixture
def subscriber(services: Services):
    client = subscriber_client(services.settings)
    yield client
    client.close()


@pytest.fixture
def unique_name() -> Callable[[str], str]:
    """Topic or subscription names no other test uses."""
    suffix = uuid.uuid4().hex[:8]
    return lambda base: f"{base}-test-{suffix}"


__all__ = ["Services", "eventually", "run_setup_pubsub"]
