"""Run the two local services without Docker: Apache Cassandra 5.0 and the Pub/Sub emulator.

Cassandra comes from Maven Central (the server jar and its dependencies, fetched
once into .cache/) and runs as a plain JVM process; the emulator comes from the
installed Google Cloud CLI. Both keep their data under .local/ so that it
survives a stop and a start.

Examples:

    python -m devtools.services start            # both, then schema and admin role
    python -m devtools.services status
    python -m devtools.services logs cassandra -f
    python -m devtools.services stop
    python -m devtools.services reset cassandra  # stop and wipe its data
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import yaml

from ecom_pipeline.cassandra_session import CassandraUnavailable, open_session
from ecom_pipeline.settings import Settings

logger = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent
CACHE_DIR = ROOT / ".cache"
STATE_DIR = ROOT / ".local"
CASSANDRA_SOURCE = ROOT / "cassandra-setup"
SCHEMA_FILE = ROOT / "schema.cql"

CASSANDRA_HEAP = "768m"
CASSANDRA_START_TIMEOUT = 240.0
EMULATOR_START_TIMEOUT = 90.0
STOP_TIMEOUT = 60.0
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


class SetupError(RuntimeError):
    """A problem of the machine's set-up, with a message that says what to do."""


# ---------------------------------------------------------------- processes


@dataclass(frozen=True)
class ManagedProcess:
    """A daemon we started, found again through its pid file."""

    name: str
    marker: str  # a string of its command line, to tell it from a recycled pid

    @property
    def state_dir(self) -> Path:
        return STATE_DIR / self.name

    @property
    def pid_file(self) -> Path:
        return self.state_dir / "pid"

    @property
    def output_file(self) -> Path:
        return self.state_dir / "logs" / "stdout.log"

    def pid(self) -> int | None:
        """The pid of the running daemon, or None (a stale pid file is removed)."""
        try:
            pid = int(self.pid_file.read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError):
            self.pid_file.unlink(missing_ok=True)
            return None
        if self.marker.encode() not in cmdline or _is_zombie(pid):
            self.pid_file.unlink(missing_ok=True)
            return None
        return pid

    def spawn(self, argv: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
        self.output_file.parent.mkdir(parents=True, exist_ok=True)
        with self.output_file.open("ab") as out:
            process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=env,
                cwd=self.state_dir,
            )
        self.pid_file.write_text(f"{process.pid}\n")
        return process

    def stop(self, timeout: float = STOP_TIMEOUT) -> bool:
        """SIGTERM the whole process group, SIGKILL it after `timeout`; True if it ran."""
        pid = self.pid()
        if pid is None:
            return False
        logger.info("stopping %s (pid %d)", self.name, pid)
        _signal_group(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _group_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if _group_alive(pid):
            logger.warning("%s did not stop within %.0fs; killing it", self.name, timeout)
            _signal_group(pid, signal.SIGKILL)
            while _group_alive(pid):
                time.sleep(0.1)
        self.pid_file.unlink(missing_ok=True)
        return True

    def output_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.output_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, sig)


def _group_alive(pgid: int) -> bool:
    """Whether any live (non-zombie) process is left in the process group."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def _wait_until(
    check: Callable[[], bool], timeout: float, what: str, alive: Callable[[], bool]
) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if not alive():
            raise SetupError(f"{what}: the process exited")
        if time.monotonic() > deadline:
            raise SetupError(f"{what}: not ready after {timeout:.0f}s")
        time.sleep(0.5)


# ---------------------------------------------------------------- Cassandra

CASSANDRA = ManagedProcess("cassandra", "org.apache.cassandra.service.CassandraDaemon")


def cassandra_lib_dir() -> Path:
    return CACHE_DIR / "cassandra" / "lib"


def cassandra_release() -> str | None:
    """The 5.0.x release in the cache, if it was fetched."""
    for jar in sorted(cassandra_lib_dir().glob("cassandra-all-*.jar")):
        return jar.name.removeprefix("cassandra-all-").removesuffix(".jar")
    return None


def install_cassandra() -> str:
    """Fetch the newest Cassandra 5.0.x jars with Maven, once; returns the release."""
    release = cassandra_release()
    if release:
        return release
    mvn = shutil.which("mvn")
    if mvn is None:
        raise SetupError(
            "Maven (mvn) is not installed; it fetches Cassandra from Maven Central. "
            "Install it (Debian: apt-get install maven) or use docker-compose-cassandra.yml."
        )
    logger.info("fetching Apache Cassandra 5.0.x from Maven Central (once, into %s)", CACHE_DIR)
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
        Path(tmp, "lib").rename(target)
    release = cassandra_release()
    if not release:
        raise SetupError(f"Maven ran but no cassandra-all jar is in {target}")
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


def write_cassandra_config(settings: Settings) -> Path:
    """The shared cassandra.yaml with this machine's directories and loopback addresses."""
    state = CASSANDRA.state_dir
    config = yaml.safe_load((CASSANDRA_SOURCE / "cassandra.yaml").read_text())
    config.update(
        listen_address="127.0.0.1",
        rpc_address="127.0.0.1",
        native_transport_port=settings.cassandra_port,
        data_file_directories=[str(state / "data" / "data")],
        commitlog_directory=str(state / "data" / "commitlog"),
        hints_directory=str(state / "data" / "hints"),
        saved_caches_directory=str(state / "data" / "saved_caches"),
        cdc_raw_directory=str(state / "data" / "cdc_raw"),
    )
    conf_dir = state / "conf"
    conf_dir.mkdir(parents=True, exist_ok=True)
    path = conf_dir / "cassandra.yaml"
    path.write_text(
        "# Written by devtools/services.py from cassandra-setup/cassandra.yaml; edits are lost.\n"
        + yaml.safe_dump(config, sort_keys=False)
    )
    return path


def cassandra_command(java: str, config: Path) -> list[str]:
    state = CASSANDRA.state_dir
    tmp = state / "tmp"
    for directory in (tmp, state / "logs"):
        directory.mkdir(parents=True, exist_ok=True)
    return [
        java,
        f"-Xms{CASSANDRA_HEAP}",
        f"-Xmx{CASSANDRA_HEAP}",
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
        *JDK17_OPTIONS,
        "-cp",
        str(cassandra_lib_dir() / "*"),
        "org.apache.cassandra.service.CassandraDaemon",
    ]


def start_cassandra(settings: Settings) -> None:
    """Start (or reuse) a Cassandra on the settings' port, then roles and schema."""
    host = settings.cassandra_hosts[0]
    if CASSANDRA.pid() is not None:
        logger.info("Cassandra is already running (pid %d)", CASSANDRA.pid())
    elif _port_open(host, settings.cassandra_port):
        _check_foreign_cassandra(settings)
    else:
        _check_port_free(host, 7000, "Cassandra's storage port")
        release = install_cassandra()
        java, java_version = find_java()
        config = write_cassandra_config(settings)
        logger.info(
            "starting Cassandra %s on Java %d (heap %s)", release, java_version, CASSANDRA_HEAP
        )
        process = CASSANDRA.spawn(cassandra_command(java, config))
        alive = lambda: process.poll() is None  # noqa: E731
        try:
            _wait_until(
                lambda: _port_open(host, settings.cassandra_port),
                CASSANDRA_START_TIMEOUT,
                "Cassandra did not open its CQL port",
                alive,
            )
        except SetupError as error:
            raise SetupError(
                f"{error}; last lines of {CASSANDRA.output_file}:\n"
                f"{CASSANDRA.output_tail()}\n{_system_log_tail()}"
            ) from None
    ensure_roles_and_schema(settings)


def _system_log_tail(lines: int = 20) -> str:
    log = CASSANDRA.state_dir / "logs" / "system.log"
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _check_port_free(host: str, port: int, what: str) -> None:
    if _port_open(host, port):
        raise SetupError(
            f"port {port} ({what}) on {host} is taken by another process. "
            f"Find it with `ss -ltnp 'sport = :{port}'` and stop it, then run again."
        )


def _check_foreign_cassandra(settings: Settings) -> None:
    """Something we did not start listens on the CQL port: reuse it if it is Cassandra."""
    host, port = settings.cassandra_hosts[0], settings.cassandra_port
    try:
        session = _session_with_retry(settings, timeout=20)
    except CassandraUnavailable as error:
        raise SetupError(
            f"port {port} on {host} is taken by something that is not a Cassandra accepting "
            f"the login {settings.cassandra_username!r} ({error}). Stop it (`ss -ltnp "
            f"'sport = :{port}'` shows what it is), or point CASSANDRA_HOSTS/CASSANDRA_PORT "
            "at the Cassandra you want to use."
        ) from None
    session.cluster.shutdown()
    logger.info("using the Cassandra already listening on %s:%d (not managed here)", host, port)


def _session_with_retry(settings: Settings, timeout: float, **login: str):
    """A session as soon as the node accepts the login; a refused login is not retried."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return open_session(settings, **login)
        except CassandraUnavailable as error:
            if error.login_refused or time.monotonic() > deadline:
                raise
            time.sleep(1)


def ensure_roles_and_schema(settings: Settings) -> None:
    """Create admin (retiring the default superuser) and apply schema.cql, idempotently."""
    try:
        session = _session_with_retry(settings, timeout=CASSANDRA_START_TIMEOUT)
    except CassandraUnavailable as error:
        if not error.login_refused:
            raise SetupError(str(error)) from None
        logger.info("creating the superuser %r", settings.cassandra_username)
        try:
            bootstrap = _session_with_retry(
                settings, timeout=60, username="cassandra", password="cassandra"
            )
        except CassandraUnavailable:
            raise SetupError(
                f"{error} The default superuser cassandra/cassandra is gone too, so the "
                "role cannot be created here: use the credentials of this cluster, or "
                "`python -m devtools.services reset cassandra` to start a local one afresh."
            ) from None
        try:
            run_cql_file(bootstrap, CASSANDRA_SOURCE / "create_admin.cql")
        finally:
            bootstrap.cluster.shutdown()
        session = _session_with_retry(settings, timeout=60)
        logger.info("dropping the default superuser 'cassandra'")
        run_cql_file(session, CASSANDRA_SOURCE / "drop_default_role.cql")
    try:
        for statement in schema_statements(settings.cassandra_keyspace):
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


def schema_statements(keyspace: str) -> list[str]:
    """schema.cql's statements for `keyspace` (CASSANDRA_KEYSPACE), which names every table.

    A keyspace is an identifier, which CQL cannot bind as a value: it is checked
    against Cassandra's rule for unquoted names before it takes `ecom_store`'s place.
    """
    if not KEYSPACE_NAME.fullmatch(keyspace):
        raise SetupError(
            f"CASSANDRA_KEYSPACE must be letters, digits and underscores (at most 48, "
            f"starting with a letter), not {keyspace!r}"
        )
    text = re.sub(r"\becom_store\b", keyspace, SCHEMA_FILE.read_text())
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


# ---------------------------------------------------------------- Pub/Sub emulator

EMULATOR = ManagedProcess("pubsub", "pubsub")


def _emulator_address(settings: Settings) -> tuple[str, int]:
    host, _, port = (settings.emulator_host or "").rpartition(":")
    if not host or not port.isdigit():
        raise SetupError(
            "PUBSUB_EMULATOR_HOST must be HOST:PORT for a local emulator, "
            f"not {settings.emulator_host!r}"
        )
    return host, int(port)


def _emulator_answers(host: str, port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://{host}:{port}/", timeout=2) as response:
            return response.read().strip() == b"Ok"
    except OSError:
        return False


def start_emulator(settings: Settings) -> None:
    host, port = _emulator_address(settings)
    if EMULATOR.pid() is not None:
        logger.info("Pub/Sub emulator is already running (pid %d)", EMULATOR.pid())
        return
    if _port_open(host, port):
        if _emulator_answers(host, port):
            logger.info("using the Pub/Sub emulator already listening on %s:%d", host, port)
            return
        _check_port_free(host, port, "the Pub/Sub emulator")
    gcloud = shutil.which("gcloud")
    if gcloud is None:
        raise SetupError(
            "the Google Cloud CLI (gcloud) is not installed; install it and its emulator with "
            "`gcloud components install pubsub-emulator beta` (Debian: the google-cloud-cli and "
            "google-cloud-cli-pubsub-emulator packages)."
        )
    data_dir = EMULATOR.state_dir / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    logger.info("starting the Pub/Sub emulator on %s:%d", host, port)
    process = EMULATOR.spawn(
        [
            gcloud,
            "beta",
            "emulators",
            "pubsub",
            "start",
            f"--host-port={host}:{port}",
            f"--data-dir={data_dir}",
            f"--project={settings.project}",
            "--quiet",
        ],
    )
    try:
        _wait_until(
            lambda: _emulator_answers(host, port),
            EMULATOR_START_TIMEOUT,
            "the Pub/Sub emulator did not start",
            lambda: process.poll() is None,
        )
    except SetupError as error:
        output = EMULATOR.output_tail()
        if "component" in output.lower() or "not installed" in output.lower():
            raise SetupError(
                "the Pub/Sub emulator component of gcloud is missing: run `gcloud components "
                "install pubsub-emulator beta` (Debian: apt-get install "
                f"google-cloud-cli-pubsub-emulator).\n{output}"
            ) from None
        raise SetupError(f"{error}; last lines of {EMULATOR.output_file}:\n{output}") from None
    logger.info("Pub/Sub emulator is ready on %s:%d (project %s)", host, port, settings.project)


def stop_emulator() -> None:
    if not EMULATOR.stop(timeout=20):
        logger.info("Pub/Sub emulator is not running (not started here)")


def reset_emulator() -> None:
    stop_emulator()
    shutil.rmtree(EMULATOR.state_dir / "data", ignore_errors=True)
    logger.info("emulator data removed; topics and subscriptions are gone")


# ---------------------------------------------------------------- both


def start(settings: Settings, which: str = "all") -> None:
    """Start the chosen services side by side: Cassandra's slow boot overlaps the emulator's."""
    starters = []
    if which in ("all", "pubsub"):
        starters.append(start_emulator)
    if which in ("all", "cassandra"):
        starters.append(start_cassandra)
    with ThreadPoolExecutor(max_workers=len(starters)) as pool:
        futures = [pool.submit(starter, settings) for starter in starters]
    errors = [str(f.exception()) for f in futures if f.exception() is not None]
    if errors:
        raise SetupError("\n".join(errors))


def stop(which: str = "all") -> None:
    if which in ("all", "pubsub"):
        stop_emulator()
    if which in ("all", "cassandra"):
        stop_cassandra()


def status(settings: Settings) -> bool:
    """Print one line per service; True if both answer."""
    host = settings.cassandra_hosts[0]
    release = cassandra_release()
    cassandra_pid = CASSANDRA.pid()
    cql_up = _port_open(host, settings.cassandra_port)
    print(
        f"cassandra: {'running' if cql_up else 'down'} on {host}:{settings.cassandra_port}"
        + (f", pid {cassandra_pid}" if cassandra_pid else ", not started here" if cql_up else "")
        + (f", release {release} cached" if release else ", not fetched yet")
    )
    emulator_host, emulator_port = _emulator_address(settings)
    emulator_pid = EMULATOR.pid()
    emulator_up = _emulator_answers(emulator_host, emulator_port)
    print(
        f"pubsub emulator: {'running' if emulator_up else 'down'} "
        f"on {emulator_host}:{emulator_port}"
        + (f", pid {emulator_pid}" if emulator_pid else ", not started here" if emulator_up else "")
    )
    return cql_up and emulator_up


def show_logs(which: str, lines: int, follow: bool) -> None:
    files = []
    if which in ("all", "cassandra"):
        files.append(CASSANDRA.state_dir / "logs" / "system.log")
    if which in ("all", "pubsub"):
        files.append(EMULATOR.output_file)
    existing = [str(f) for f in files if f.exists()]
    if not existing:
        print("no logs yet: the services were never started here", file=sys.stderr)
        return
    os.execvp("tail", ["tail", f"-n{lines}", *(["-F"] if follow else []), *existing])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devtools.services",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("command", choices=["start", "stop", "status", "logs", "reset"])
    parser.add_argument("service", nargs="?", default="all", choices=["all", "cassandra", "pubsub"])
    parser.add_argument("-n", "--lines", type=int, default=50, help="log lines to show (logs)")
    parser.add_argument("-f", "--follow", action="store_true", help="keep following (logs)")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s services %(message)s", datefmt="%H:%M:%S"
    )
    logging.getLogger("cassandra").setLevel(logging.CRITICAL)
    settings = Settings.from_env()
    try:
        if args.command == "start":
            start(settings, args.service)
        elif args.command == "stop":
            stop(args.service)
        elif args.command == "status":
            return 0 if status(settings) else 3
        elif args.command == "logs":
            show_logs(args.service, args.lines, args.follow)
        elif args.command == "reset":
            if args.service in ("all", "cassandra"):
                reset_cassandra()
            if args.service in ("all", "pubsub"):
                reset_emulator()
    except SetupError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
