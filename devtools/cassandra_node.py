"""Apache Cassandra 5.0 as a plain JVM process, from Maven Central jars.

Owns fetching the jars into .cache/, finding a supported JDK, writing cassandra.yaml,
starting, stopping and resetting the node, and the admin role and schema.cql.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import tempfile
import xml.etree.ElementTree as ElementTree
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from devtools.processes import (
    CACHE_DIR,
    ROOT,
    ManagedProcess,
    SetupError,
    check_port_free,
    port_open,
    wait_until,
)
from ecom_pipeline.cassandra_session import CassandraUnavailable, session_when_up
from ecom_pipeline.settings import Settings

logger = logging.getLogger(__name__)

CASSANDRA_SOURCE = ROOT / "cassandra-setup"
SCHEMA_FILE = ROOT / "schema.cql"


def pinned_release(pom: Path = CASSANDRA_SOURCE / "pom.xml") -> str:
    """The Cassandra release cassandra-setup/pom.xml pins: the one place it is written."""
    namespace = {"m": "http://maven.apache.org/POM/4.0.0"}
    root = ElementTree.parse(pom).getroot()
    prefix = "m:" if root.tag.startswith("{") else ""
    for dependency in root.iterfind(f".//{prefix}dependency", namespace):
        if dependency.findtext(f"{prefix}artifactId", namespaces=namespace) == "cassandra-all":
            return dependency.findtext(f"{prefix}version", namespaces=namespace).strip()
    raise SetupError(f"{pom} has no cassandra-all dependency")


CASSANDRA_VERSION = pinned_release()
# The same release as a Docker image (docker-compose-cassandra.yml, PIPELINE_TEST_DOCKER=1).
CASSANDRA_IMAGE = f"cassandra:{CASSANDRA_VERSION}"

CASSANDRA_HEAP = "768m"
CASSANDRA_START_TIMEOUT = 240.0
SUPPORTED_JDKS = (17, 11)

# Cassandra 5.0's conf/jvm17-server.options (JPMS section) plus what
# bin/cassandra adds; without them the daemon fails on JDK 17.
JDK17_OPTIONS = (
    "-Djdk.attach.allowAttachSelf=true",
    "--add-exports=java.base/jdk.internal.misc=ALL-UNNAMED",
    "--add-exports=java.management.rmi/com.sun.jmx.remote.internal.rmi=ALL-UNNAMED",
    "--add-exports=java.rmi/sun.rmi.registry=ALL-UNNAMED",
    "--add-exports=java.rmi/sun.rmi.server=ALL-UNNAMED",
    "--add-exports=java.sql/java.sql=ALL-UNNAMED",
    "--add-exports=java.base/java.lang.ref=ALL-UNNAMED",
    "--add-exports=jdk.unsupported/sun.misc=ALL-UNNAMED",
    "--add-exports=jdk.compiler/com.sun.tools.javac.file=ALL-UNNAMED",
    "--add-exports=jdk.attach/sun.tools.attach=ALL-UNNAMED",
    "--add-opens=java.base/java.lang.module=ALL-UNNAMED",
    "--add-opens=java.base/jdk.internal.loader=ALL-UNNAMED",
    "--add-opens=java.base/jdk.internal.ref=ALL-UNNAMED",
    "--add-opens=java.base/jdk.internal.reflect=ALL-UNNAMED",
    "--add-opens=java.base/jdk.internal.math=ALL-UNNAMED",
    "--add-opens=java.base/jdk.internal.module=ALL-UNNAMED",
    "--add-opens=java.base/jdk.internal.util.jar=ALL-UNNAMED",
    "--add-opens=jdk.management/com.sun.management.internal=ALL-UNNAMED",
    "--add-opens=java.base/sun.nio.ch=ALL-UNNAMED",
    "--add-opens=java.base/java.io=ALL-UNNAMED",
    "--add-opens=java.base/java.lang.reflect=ALL-UNNAMED",
    "--add-opens=jdk.compiler/com.sun.tools.javac=ALL-UNNAMED",
    "--add-opens=java.base/java.lang=ALL-UNNAMED",
    "--add-opens=java.base/java.util=ALL-UNNAMED",
    "-Dio.netty.tryReflectionSetAccessible=true",
    "-Dio.netty.allocator.useCacheForAllThreads=true",
    "-Dio.netty.allocator.maxOrder=11",
)


CASSANDRA = ManagedProcess("cassandra", "org.apache.cassandra.service.CassandraDaemon")


@dataclass(frozen=True)
class Node:
    """A Cassandra node on this machine: its process (and so its directories), the loopback
    address it listens on, its storage port, heap, and cassandra.yaml settings beyond
    cassandra-setup/cassandra.yaml's (e.g. client_encryption_options). Its CQL port is the
    settings' CASSANDRA_PORT. A node is its own seed, so it never joins another, unless it
    names the seeds of a cluster."""

    process: ManagedProcess = CASSANDRA
    address: str = "127.0.0.1"
    storage_port: int = 7000
    heap: str = CASSANDRA_HEAP
    config: Mapping[str, object] = field(default_factory=dict)
    # In a local cluster (devtools.cassandra_cluster): the first node's address as the
    # seed, a JMX port for nodetool, the data centre and an evenly spaced token.
    seeds: str | None = None
    jmx_port: int | None = None
    datacenter: str | None = None
    initial_token: int | None = None


LOCAL_NODE = Node()  # make services' node


def cassandra_lib_dir() -> Path:
    return CACHE_DIR / "cassandra" / "lib"


def cassandra_release() -> str | None:
    """The release in the cache, if one was fetched."""
    for jar in sorted(cassandra_lib_dir().glob("cassandra-all-*.jar")):
        return jar.name.removeprefix("cassandra-all-").removesuffix(".jar")
    return None


def install_cassandra() -> str:
    """Fetch the pinned release's jars with Maven, once; returns the release.

    A cache of another release (an older pin) is replaced, so that every clone
    runs the release pom.xml names.
    """
    release = cassandra_release()
    if release == CASSANDRA_VERSION:
        return release
    if release:
        logger.info("the cache holds Cassandra %s, pom.xml pins %s", release, CASSANDRA_VERSION)
    mvn = shutil.which("mvn")
    if mvn is None:
        raise SetupError(
            "Maven (mvn) is not installed; it fetches Cassandra from Maven Central. "
            "Install it (Debian: apt-get install maven) or use docker-compose-cassandra.yml."
        )
    logger.info(
        "fetching Apache Cassandra %s from Maven Central (once, into %s)",
        CASSANDRA_VERSION,
        CACHE_DIR,
    )
    target = cassandra_lib_dir()
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        result = subprocess.run(
            [
                mvn,
                "-B",
                "-q",
                "-f",
                str(CASSANDRA_SOURCE / "pom.xml"),
                "dependency:copy-dependencies",
                "-DincludeScope=runtime",
                f"-DoutputDirectory={tmp}/lib",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-15:])
            raise SetupError(
                "Maven could not download Cassandra from Maven Central. Check the network, "
                "a proxy or mirror in ~/.m2/settings.xml, then run again.\n" + tail
            )
        shutil.rmtree(target, ignore_errors=True)
        Path(tmp, "lib").rename(target)
    release = cassandra_release()
    if release != CASSANDRA_VERSION:
        raise SetupError(f"Maven ran but no cassandra-all-{CASSANDRA_VERSION}.jar is in {target}")
    logger.info("Cassandra %s is in %s", release, target)
    return release


def find_java() -> tuple[str, int]:
    """A java binary of a JDK Cassandra 5.0 supports (17 or 11), and its version."""
    candidates: list[Path] = []
    if os.environ.get("JAVA_HOME"):
        candidates.append(Path(os.environ["JAVA_HOME"]) / "bin" / "java")
    if shutil.which("java"):
        candidates.append(Path(shutil.which("java")))
    candidates += sorted(Path("/usr/lib/jvm").glob("*/bin/java"))
    seen: list[str] = []
    usable: dict[int, Path] = {}
    for java in candidates:
        version = _java_major(java)
        if version in SUPPORTED_JDKS:
            usable.setdefault(version, java)
        elif version is not None:
            seen.append(f"{java} is Java {version}")
    for version in SUPPORTED_JDKS:  # 17 first, even if JAVA_HOME is an 11
        if version in usable:
            return str(usable[version]), version
    found = "; ".join(seen) if seen else "no java found"
    raise SetupError(
        f"Cassandra 5.0 needs JDK 17 (or 11): {found}. "
        "Install OpenJDK 17 (Debian: apt-get install openjdk-17-jdk-headless) "
        "or point JAVA_HOME at one."
    )


def _java_major(java: Path) -> int | None:
    try:
        out = subprocess.run(
            [str(java), "-version"], capture_output=True, text=True, timeout=30, check=False
        ).stderr
    except OSError:
        return None
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out)
    if not match:
        return None
    major = int(match.group(1))
    return int(match.group(2)) if major == 1 else major


def write_cassandra_config(settings: Settings, node: Node = LOCAL_NODE) -> Path:
    """The shared cassandra.yaml with the node's directories, address and ports."""
    state = node.process.state_dir
    config = yaml.safe_load((CASSANDRA_SOURCE / "cassandra.yaml").read_text())
    seeds = config["seed_provider"][0]["parameters"][0]
    seeds["seeds"] = node.seeds or f"{node.address}:{node.storage_port}"
    conf_dir = state / "conf"
    conf_dir.mkdir(parents=True, exist_ok=True)
    if node.datacenter is not None:
        config.update(
            endpoint_snitch="GossipingPropertyFileSnitch",
            initial_token=str(node.initial_token),
            auto_bootstrap=False,  # a new, empty cluster: nothing to stream
        )
        (conf_dir / "cassandra-rackdc.properties").write_text(f"dc={node.datacenter}\nrack=rack1\n")
    config.update(
        listen_address=node.address,
        rpc_address=node.address,
        storage_port=node.storage_port,
        native_transport_port=settings.cassandra_port,
        data_file_directories=[str(state / "data" / "data")],
        commitlog_directory=str(state / "data" / "commitlog"),
        hints_directory=str(state / "data" / "hints"),
        saved_caches_directory=str(state / "data" / "saved_caches"),
        cdc_raw_directory=str(state / "data" / "cdc_raw"),
        **node.config,
    )
    path = conf_dir / "cassandra.yaml"
    path.write_text(
        "# Written by devtools/cassandra_node.py from cassandra-setup/cassandra.yaml; edits lost.\n"
        + yaml.safe_dump(config, sort_keys=False)
    )
    return path


def cassandra_command(java: str, config: Path, node: Node = LOCAL_NODE) -> list[str]:
    state = node.process.state_dir
    tmp = state / "tmp"
    for directory in (tmp, state / "logs"):
        directory.mkdir(parents=True, exist_ok=True)
    rackdc = config.with_name("cassandra-rackdc.properties")
    return [
        java,
        f"-Xms{node.heap}",
        f"-Xmx{node.heap}",
        "-Xss256k",
        "-XX:+UseG1GC",
        "-XX:+ParallelRefProcEnabled",
        "-XX:MaxTenuringThreshold=1",
        "-XX:+HeapDumpOnOutOfMemoryError",
        f"-XX:HeapDumpPath={state / 'logs'}",
        "-XX:+CrashOnOutOfMemoryError",
        "-Djava.net.preferIPv4Stack=true",
        f"-Djava.io.tmpdir={tmp}",
        f"-Djna.tmpdir={tmp}",
        f"-Dcassandra.config={config.as_uri()}",
        f"-Dcassandra.storagedir={state / 'data'}",
        f"-Dcassandra.logdir={state / 'logs'}",
        f"-Dlogback.configurationFile={(CASSANDRA_SOURCE / 'logback.xml').as_uri()}",
        "-Dcassandra-foreground=yes",
        "-Dcassandra.skip_wait_for_gossip_to_settle=0",
        "-Dcassandra.superuser_setup_delay_ms=0",
        *([f"-Dcassandra.jmx.local.port={node.jmx_port}"] if node.jmx_port else []),
        *([f"-Dcassandra-rackdc.properties={rackdc.as_uri()}"] if rackdc.exists() else []),
        f"-Decom.node={node.process.name}",  # tells the nodes of one machine apart
        *JDK17_OPTIONS,
        "-cp",
        str(cassandra_lib_dir() / "*"),
        "org.apache.cassandra.service.CassandraDaemon",
    ]


def start_cassandra(settings: Settings, node: Node = LOCAL_NODE) -> None:
    """Start (or reuse) a Cassandra node on the settings' port, then roles and schema."""
    host = settings.cassandra_hosts[0]
    if node.process.pid() is not None:
        logger.info("Cassandra is already running (pid %d)", node.process.pid())
    elif port_open(host, settings.cassandra_port):
        _check_foreign_cassandra(settings)
    else:
        start_node(node, settings)
    ensure_roles_and_schema(settings)


def start_node(node: Node, settings: Settings) -> None:
    """Spawn one node and wait for its CQL port."""
    check_port_free(node.address, node.storage_port, "Cassandra's storage port")
    release = install_cassandra()
    java, java_version = find_java()
    config = write_cassandra_config(settings, node)
    logger.info(
        "starting Cassandra %s on Java %d (heap %s) at %s",
        release,
        java_version,
        node.heap,
        node.address,
    )
    process = node.process.spawn(cassandra_command(java, config, node))
    alive = lambda: process.poll() is None  # noqa: E731
    try:
        wait_until(
            lambda: port_open(node.address, settings.cassandra_port),
            CASSANDRA_START_TIMEOUT,
            f"Cassandra on {node.address} did not open its CQL port",
            alive,
        )
    except SetupError as error:
        raise SetupError(
            f"{error}; last lines of {node.process.output_file}:\n"
            f"{node.process.output_tail()}\n{_system_log_tail(node)}"
        ) from None


def _system_log_tail(node: Node, lines: int = 20) -> str:
    log = node.process.state_dir / "logs" / "system.log"
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _check_foreign_cassandra(settings: Settings) -> None:
    """Something we did not start listens on the CQL port: reuse it if it is Cassandra."""
    host, port = settings.cassandra_hosts[0], settings.cassandra_port
    try:
        session = session_when_up(settings, timeout=20)
    except CassandraUnavailable as error:
        raise SetupError(
            f"port {port} on {host} is taken by something that is not a Cassandra accepting "
            f"the login {settings.cassandra_username!r} ({error}). Stop it (`ss -ltnp "
            f"'sport = :{port}'` shows what it is), or point CASSANDRA_HOSTS/CASSANDRA_PORT "
            "at the Cassandra you want to use."
        ) from None
    session.cluster.shutdown()
    logger.info("using the Cassandra already listening on %s:%d (not managed here)", host, port)


def ensure_roles_and_schema(settings: Settings, cluster: bool = False) -> None:
    """Create admin (retiring the default superuser) and apply schema.cql, idempotently.

    On the local cluster (`cluster`), the roles and the keyspace are replicated to all
    three nodes of data centre dc1 (NetworkTopologyStrategy, replication factor 3).
    """
    try:
        session = session_when_up(settings, timeout=CASSANDRA_START_TIMEOUT)
    except CassandraUnavailable as error:
        if not error.login_refused:
            raise SetupError(str(error)) from None
        logger.info("creating the superuser %r", settings.cassandra_username)
        try:
            bootstrap = session_when_up(
                settings, timeout=60, username="cassandra", password="cassandra"
            )
        except CassandraUnavailable:
            raise SetupError(
                f"{error} The default superuser cassandra/cassandra is gone too, so the "
                "role cannot be created here: use the credentials of this cluster, or "
                "`python -m devtools.services reset cassandra` to start a local one afresh."
            ) from None
        try:
            if cluster:
                run_cql_file(bootstrap, CASSANDRA_SOURCE / "cluster_auth.cql")
            run_cql_file(bootstrap, CASSANDRA_SOURCE / "create_admin.cql")
        finally:
            bootstrap.cluster.shutdown()
        session = session_when_up(settings, timeout=60)
        logger.info("dropping the default superuser 'cassandra'")
        run_cql_file(session, CASSANDRA_SOURCE / "drop_default_role.cql")
    try:
        for statement in schema_statements(settings.cassandra_keyspace, cluster=cluster):
            session.execute(statement, timeout=60)
        release = session.execute("SELECT release_version FROM system.local").one()[0]
    finally:
        session.cluster.shutdown()
    logger.info(
        "Cassandra %s is ready on %s:%d (keyspace %s)",
        release,
        settings.cassandra_hosts[0],
        settings.cassandra_port,
        settings.cassandra_keyspace,
    )


def cql_statements(text: str) -> Iterator[str]:
    """The statements of a CQL file: `--` comments dropped, split on semicolons."""
    lines = [line.split("--", 1)[0] for line in text.splitlines()]
    for statement in "\n".join(lines).split(";"):
        if statement.strip():
            yield statement.strip()


KEYSPACE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,47}")
SINGLE_NODE_REPLICATION = "{'class': 'SimpleStrategy', 'replication_factor': 1}"
CLUSTER_REPLICATION = "{'class': 'NetworkTopologyStrategy', 'dc1': 3}"


def schema_statements(keyspace: str, cluster: bool = False) -> list[str]:
    """schema.cql's statements for `keyspace` (CASSANDRA_KEYSPACE), which names every table.

    A keyspace is an identifier, which CQL cannot bind as a value: it is checked
    against Cassandra's rule for unquoted names before it takes `ecom_store`'s place.
    For the local cluster the keyspace is replicated to all three nodes (schema.cql's
    own advice for a multi-node cluster).
    """
    if not KEYSPACE_NAME.fullmatch(keyspace):
        raise SetupError(
            f"CASSANDRA_KEYSPACE must be letters, digits and underscores (at most 48, "
            f"starting with a letter), not {keyspace!r}"
        )
    text = re.sub(r"\becom_store\b", keyspace, SCHEMA_FILE.read_text())
    if cluster:
        text = text.replace(SINGLE_NODE_REPLICATION, CLUSTER_REPLICATION)
    return list(cql_statements(text))


def run_cql_file(session, path: Path) -> None:
    for statement in cql_statements(path.read_text()):
        session.execute(statement, timeout=60)


def stop_cassandra() -> None:
    """SIGTERM runs Cassandra's shutdown hook, which drains before the JVM exits."""
    if not CASSANDRA.stop():
        logger.info("Cassandra is not running (not started here)")


def reset_cassandra() -> None:
    stop_cassandra()
    shutil.rmtree(CASSANDRA.state_dir / "data", ignore_errors=True)
    logger.info("Cassandra data removed; the next start begins empty")
