"""Run the two local services without Docker: Apache Cassandra 5.0 and the Pub/Sub emulator.

Cassandra comes from Maven Central (the server jar and its dependencies, fetched
once into .cache/) and runs as a plain JVM process; the emulator comes from the
installed Google Cloud CLI. Both keep their data under .local/ so that it
survives a stop and a start.

Examples:

    python -m devtools.services start            # both, then schema, admin role and topics
    python -m devtools.services start --nodes 3  # a three-node Cassandra cluster instead
    python -m devtools.services nodetool status  # Cassandra's nodetool, against node 1
    python -m devtools.services status
    python -m devtools.services logs cassandra -f
    python -m devtools.services stop
    python -m devtools.services reset cassandra  # stop and wipe its data
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

from devtools import cassandra_cluster
from devtools.cassandra_node import (
    CASSANDRA,
    cassandra_release,
    reset_cassandra,
    start_cassandra,
    stop_cassandra,
)
from devtools.processes import ROOT, SetupError, port_open
from devtools.pubsub_emulator import (
    EMULATOR,
    emulator_address,
    emulator_answers,
    reset_emulator,
    start_emulator,
    stop_emulator,
)
from ecom_pipeline.settings import Settings


def start(settings: Settings, which: str = "all", nodes: int = 1) -> None:
    """Start the chosen services side by side: Cassandra's slow boot overlaps the emulator's."""
    starters = []
    if which in ("all", "pubsub"):
        starters.append(start_emulator)
    if which in ("all", "cassandra"):
        starters.append(cassandra_cluster.start_cluster if nodes > 1 else start_cassandra)
    with ThreadPoolExecutor(max_workers=len(starters)) as pool:
        futures = [pool.submit(starter, settings) for starter in starters]
    errors = [str(f.exception()) for f in futures if f.exception() is not None]
    if errors:
        raise SetupError("\n".join(errors))


def create_topics(settings: Settings) -> None:
    """setup_pubsub.sh against the settings' emulator, named explicitly: a
    GOOGLE_CLOUD_PROJECT in the shell would otherwise send it to real Google Cloud."""
    result = subprocess.run(
        [str(ROOT / "setup_pubsub.sh")],
        env={**os.environ, **settings.to_env()},
        check=False,
    )
    if result.returncode != 0:
        raise SetupError("setup_pubsub.sh could not create the topics (its output is above)")


def stop(which: str = "all") -> None:
    if which in ("all", "pubsub"):
        stop_emulator()
    if which in ("all", "cassandra"):
        stop_cassandra()
        cassandra_cluster.stop_cluster()


def status(settings: Settings) -> bool:
    """Print one line per service (per node of a cluster); True if they all answer."""
    if cassandra_cluster.running():
        lines = cassandra_cluster.status_lines(settings)
        print("\n".join(lines))
        emulator_up = _emulator_status(settings)
        return all(" running " in line for line in lines) and emulator_up
    host = settings.cassandra_hosts[0]
    release = cassandra_release()
    cassandra_pid = CASSANDRA.pid()
    cql_up = port_open(host, settings.cassandra_port)
    print(
        f"cassandra: {'running' if cql_up else 'down'} on {host}:{settings.cassandra_port}"
        + (f", pid {cassandra_pid}" if cassandra_pid else ", not started here" if cql_up else "")
        + (f", release {release} cached" if release else ", not fetched yet")
    )
    emulator_up = _emulator_status(settings)  # printed whatever Cassandra's state
    return cql_up and emulator_up


def _emulator_status(settings: Settings) -> bool:
    emulator_host, emulator_port = emulator_address(settings)
    emulator_pid = EMULATOR.pid()
    emulator_up = emulator_answers(emulator_host, emulator_port)
    print(
        f"pubsub emulator: {'running' if emulator_up else 'down'} "
        f"on {emulator_host}:{emulator_port}"
        + (f", pid {emulator_pid}" if emulator_pid else ", not started here" if emulator_up else "")
    )
    return emulator_up


def show_logs(which: str, lines: int, follow: bool) -> None:
    files = []
    if which in ("all", "cassandra"):
        for process in (CASSANDRA, *(node.process for node in cassandra_cluster.NODES)):
            files.append(process.state_dir / "logs" / "system.log")
    if which in ("all", "pubsub"):
        files.append(EMULATOR.output_file)
    existing = [str(f) for f in files if f.exists()]
    if not existing:
        print("no logs yet: the services were never started here", file=sys.stderr)
        return
    os.execvp("tail", ["tail", f"-n{lines}", *(["-F"] if follow else []), *existing])


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["nodetool"]:
        result = cassandra_cluster.nodetool(*argv[1:])
        print(result.stdout + result.stderr, end="")
        return result.returncode
    parser = argparse.ArgumentParser(
        prog="python -m devtools.services",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("command", choices=["start", "stop", "status", "logs", "reset"])
    parser.add_argument("service", nargs="?", default="all", choices=["all", "cassandra", "pubsub"])
    parser.add_argument("-n", "--lines", type=int, default=50, help="log lines to show (logs)")
    parser.add_argument("-f", "--follow", action="store_true", help="keep following (logs)")
    parser.add_argument(
        "--nodes",
        type=int,
        choices=[1, 3],
        default=1,
        help="start: 1 Cassandra node (default) or a local 3-node cluster",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s services %(message)s", datefmt="%H:%M:%S"
    )
    logging.getLogger("cassandra").setLevel(logging.CRITICAL)
    try:
        settings = Settings.for_local_services()
        if args.command == "start":
            start(settings, args.service, args.nodes)
            if args.service in ("all", "pubsub"):
                create_topics(settings)
        elif args.command == "stop":
            stop(args.service)
        elif args.command == "status":
            return 0 if status(settings) else 3
        elif args.command == "logs":
            show_logs(args.service, args.lines, args.follow)
        elif args.command == "reset":
            if args.service in ("all", "cassandra"):
                reset_cassandra()
                cassandra_cluster.reset_cluster()
            if args.service in ("all", "pubsub"):
                reset_emulator()
    except (SetupError, ValueError) as error:  # ValueError: a setting's variable is wrong
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
