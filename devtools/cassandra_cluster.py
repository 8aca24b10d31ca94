"""A local three-node Apache Cassandra 5.0 cluster, laid out the way ccm lays one out.

One JVM per node on 127.0.0.1, 127.0.0.2 and 127.0.0.3 (same CQL and storage ports, own
data directories and JMX ports, evenly spaced tokens), GossipingPropertyFileSnitch with
one data centre `dc1`, password authentication with the roles replicated to all three
nodes, and schema.cql applied with NetworkTopologyStrategy, replication factor 3.
The single node (cassandra_node.LOCAL_NODE) and the cluster share 127.0.0.1, so only one
of them runs at a time.
"""

from __future__ import annotations

import logging
import shutil
import subprocess

from devtools.cassandra_node import (
    CASSANDRA,
    CASSANDRA_SOURCE,
    JDK17_OPTIONS,
    Node,
    cassandra_lib_dir,
    ensure_roles_and_schema,
    find_java,
    start_node,
)
from devtools.processes import ManagedProcess, SetupError, port_open
from ecom_pipeline.settings import Settings

logger = logging.getLogger(__name__)

DATACENTER = "dc1"
NODE_HEAP = "512m"  # three JVMs on 2 cores and 24 GB
ADDRESSES = ("127.0.0.1", "127.0.0.2", "127.0.0.3")


def _token(index: int, count: int) -> int:
    """Evenly spaced Murmur3 tokens, as `ccm` and the token generator give them."""
    return -(2**63) + index * (2**64 // count)


NODES = tuple(
    Node(
        ManagedProcess(f"cassandra-node{i + 1}", f"-Decom.node=cassandra-node{i + 1}"),
        address=address,
        seeds=f"{ADDRESSES[0]}:7000",
        jmx_port=7101 + i,
        heap=NODE_HEAP,
        datacenter=DATACENTER,
        initial_token=_token(i, len(ADDRESSES)),
    )
    for i, address in enumerate(ADDRESSES)
)


def cluster_settings(settings: Settings) -> Settings:
    """The settings with every node as a contact point and dc1 as the local data centre."""
    return settings.replace(cassandra_hosts=ADDRESSES, cassandra_local_dc=DATACENTER)


def start_cluster(settings: Settings) -> None:
    """Start the nodes one after another (each joins the ring before the next), then roles
    and schema; nodes already running are left as they are."""
    if CASSANDRA.pid() is not None:
        raise SetupError(
            "the single-node Cassandra is running on 127.0.0.1: stop it first (`make stop`)"
        )
    settings = cluster_settings(settings)
    for node in NODES:
        if node.process.pid() is not None:
            logger.info("%s is already running (pid %d)", node.process.name, node.process.pid())
        elif port_open(node.address, settings.cassandra_port):
            raise SetupError(
                f"something else listens on {node.address}:{settings.cassandra_port}; "
                "stop it first (`make stop` stops a single node started here)"
            )
        else:
            start_node(node, settings)
    ensure_roles_and_schema(settings, cluster=True)


def start_one(index: int, settings: Settings) -> None:
    """Start node `index` (1-3) again, e.g. after a fault; it rejoins the ring by itself."""
    start_node(NODES[index - 1], cluster_settings(settings))


def stop_one(index: int) -> None:
    node = NODES[index - 1]
    if not node.process.stop():
        logger.info("%s is not running", node.process.name)


def stop_cluster() -> None:
    for index in range(len(NODES), 0, -1):
        stop_one(index)


def reset_cluster() -> None:
    stop_cluster()
    for node in NODES:
        shutil.rmtree(node.process.state_dir / "data", ignore_errors=True)


def running() -> bool:
    return any(node.process.pid() is not None for node in NODES)


def status_lines(settings: Settings) -> list[str]:
    lines = []
    for node in NODES:
        pid = node.process.pid()
        up = port_open(node.address, settings.cassandra_port)
        lines.append(
            f"{node.process.name}: {'running' if up else 'down'} on "
            f"{node.address}:{settings.cassandra_port} (dc {node.datacenter}, JMX "
            f"{node.jmx_port})" + (f", pid {pid}" if pid else "")
        )
    return lines


def nodetool(*args: str, index: int = 1) -> subprocess.CompletedProcess:
    """Cassandra's own nodetool (`status`, `ring`, ...) against node `index`, over local JMX."""
    java, _ = find_java()
    return subprocess.run(
        [
            java,
            "-Xmx128m",
            "-cp",
            str(cassandra_lib_dir() / "*"),
            *JDK17_OPTIONS,
            f"-Dlogback.configurationFile={(CASSANDRA_SOURCE / 'logback-tools.xml').as_uri()}",
            "org.apache.cassandra.tools.NodeTool",
            "-h",
            "127.0.0.1",
            "-p",
            str(NODES[index - 1].jmx_port),
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
