"""What the four role scripts share: flags, logging, and errors as one sentence."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
import time
from collections.abc import Callable
from typing import TypeVar

from ecom_pipeline import __version__, settings
from ecom_pipeline.options import (
    CONSUMER,
    METRICS_ADDR,
    ORDER_WAIT,
    STATS_INTERVAL,
    ConsumerOptions,
    ProducerOptions,
)
from ecom_pipeline.settings import Settings

T = TypeVar("T")

logger = logging.getLogger(__name__)


class SetupProblem(RuntimeError):
    """An infrastructure problem the user must fix; printed as one sentence."""


def checked_by(rule: Callable[[str], object]) -> Callable[[str], str]:
    """An argparse type for a flag that takes a setting's place: refused by the setting's
    own rule (settings.py), in argparse's words, which name the flag."""

    def check(text: str) -> str:
        try:
            rule(text)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None
        return text

    return check


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def non_negative_float(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {text}")
    return value


def parser_for(doc: str | None, epilog: str, prog: str | None = None) -> argparse.ArgumentParser:
    """A command's parser, with `--version`; `prog` defaults to the name it was run by."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description=doc,
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return parser


def parse(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """A role's flags, parsed and checked together; then logging is set up as they say."""
    args = parser.parse_args(argv)
    first, last = getattr(args, "first_id", None), getattr(args, "last_id", None)
    if first is not None and last is not None and last < first:
        parser.error(f"--last-id {last} is below --first-id {first}: no order id between them")
    configure_logging(args)
    return args


def add_pubsub_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("Pub/Sub (defaults from the environment)")
    group.add_argument(
        "--project", help="Google Cloud project (GOOGLE_CLOUD_PROJECT, default ecom-local)"
    )
    group.add_argument(
        "--emulator-host",
        metavar="HOST:PORT",
        help="Pub/Sub emulator; '' for real Google Cloud (PUBSUB_EMULATOR_HOST, "
        "default 127.0.0.1:8085)",
    )


def add_cassandra_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("Cassandra (defaults from the environment)")
    group.add_argument(
        "--cassandra-hosts",
        metavar="H1,H2",
        type=checked_by(settings.host_list),
        help="contact points (CASSANDRA_HOSTS, default 127.0.0.1)",
    )
    group.add_argument(
        "--cassandra-port",
        type=checked_by(settings.port_number),
        metavar="PORT",
        help="CQL port (CASSANDRA_PORT, default 9042)",
    )
    group.add_argument("--keyspace", help="keyspace (CASSANDRA_KEYSPACE, default ecom_store)")
    group.add_argument(
        "--consistency",
        type=checked_by(settings.consistency_level),
        metavar="LEVEL",
        help="consistency level, one of "
        f"{', '.join(settings.CONSISTENCY_LEVELS)} (CASSANDRA_CONSISTENCY, default LOCAL_QUORUM)",
    )


def add_common_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--metrics-port",
        type=positive_int,
        metavar="PORT",
        help="serve Prometheus metrics on http://ADDR:PORT/metrics (default: off)",
    )
    parser.add_argument(
        "--metrics-addr",
        default=METRICS_ADDR,
        metavar="ADDR",
        help="the address --metrics-port listens on: 127.0.0.1 for this host only, '::' for "
        "IPv6 (default %(default)s, every IPv4 interface)",
    )
    parser.add_argument(
        "--log-format",
        choices=["text", "json"],
        default="text",
        help="json: one JSON object per line with Cloud Logging's fields (severity, message, "
        "time), for log shippers (default text)",
    )
    parser.add_argument(
        "--stats-interval",
        type=float,
        default=STATS_INTERVAL,
        metavar="SECONDS",
        help="how often to log a stats line (default %(default)s)",
    )
    parser.add_argument(
        "--log-level",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="default %(default)s",
    )


FLAG_VARIABLES = {
    "project": "GOOGLE_CLOUD_PROJECT",
    "emulator_host": "PUBSUB_EMULATOR_HOST",
    "cassandra_hosts": "CASSANDRA_HOSTS",
    "cassandra_port": "CASSANDRA_PORT",
    "keyspace": "CASSANDRA_KEYSPACE",
    "consistency": "CASSANDRA_CONSISTENCY",
}


def settings_from(args: argparse.Namespace) -> Settings:
    """The environment, with the flags that were given taking the place of their variables."""
    environ = dict(os.environ)
    for flag, variable in FLAG_VARIABLES.items():
        value = getattr(args, flag, None)
        if value is not None:
            environ[variable] = str(value)
    try:
        return Settings.from_env(environ)
    except ValueError as error:
        raise SetupProblem(str(error)) from None


class JsonFormatter(logging.Formatter):
    """One JSON object per line in Cloud Logging's structured-logging fields.

    `severity`, `message`, `time` (RFC 3339, UTC) and
    `logging.googleapis.com/sourceLocation` become the log entry's own fields on Google
    Cloud (Cloud Run, GKE, the Ops Agent); Python's level names are Cloud Logging's
    severities. A stats line carries its figures under "stats"; a traceback goes under
    "exception", where Error Reporting finds it.
    """

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "severity": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "logging.googleapis.com/sourceLocation": {
                "file": record.pathname,
                "line": record.lineno,
                "function": record.funcName,
            },
        }
        stats = getattr(record, "stats", None)
        if stats is not None:
            entry["stats"] = stats
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(args: argparse.Namespace) -> None:
    handler = logging.StreamHandler()
    if getattr(args, "log_format", "text") == "json":
        formatter: logging.Formatter = JsonFormatter()
        formatter.converter = time.gmtime
    else:
        formatter = logging.Formatter(
            "%(asctime)s %(levelname)-7s %(message)s", datefmt="%Y-%m-%d %H:%M:%S"
        )
    handler.setFormatter(formatter)
    logging.basicConfig(level=args.log_level, handlers=[handler], force=True)
    # The Cassandra driver is chatty about reconnections the roles already report.
    logging.getLogger("cassandra").setLevel(
        logging.DEBUG if args.log_level == "DEBUG" else logging.CRITICAL
    )


def run(role: Callable[[], int]) -> int:
    """Run a role; infrastructure errors become one line on stderr and exit code 2."""
    from google.auth.exceptions import DefaultCredentialsError

    from ecom_pipeline.cassandra_session import CassandraUnavailable
    from ecom_pipeline.pubsub import SubscriptionGone

    try:
        return role()
    except (SetupProblem, CassandraUnavailable, SubscriptionGone) as error:
        logger.debug("set-up problem", exc_info=True)
        print(f"error: {error}", file=sys.stderr)
        return 2
    except DefaultCredentialsError:
        print(
            "error: no Google Cloud credentials for real Pub/Sub: run `gcloud auth "
            "application-default login`, or set PUBSUB_EMULATOR_HOST to use the emulator",
            file=sys.stderr,
        )
        return 2
    except KeyboardInterrupt:
        return 130


def add_producer_flags(
    parser: argparse.ArgumentParser, defaults: ProducerOptions, *, what: str, count_help: str
) -> None:
    parser.add_argument(
        "--interval",
        type=non_negative_float,
        default=defaults.interval,
        metavar="SECONDS",
        help=f"seconds between {what}, 0 = as fast as possible (default %(default)g)",
    )
    parser.add_argument(
        "--first-id",
        type=positive_int,
        default=defaults.first_id,
        help="first order id, 1 or more (default %(default)s)",
    )
    parser.add_argument(
        "--last-id",
        type=positive_int,
        default=defaults.last_id,
        help="last order id, not below --first-id (default %(default)s)",
    )
    parser.add_argument("--count", type=positive_int, help=count_help)
    parser.add_argument("--seed", type=int, help=f"random seed, for reproducible {what}")
    parser.add_argument(
        "--max-in-flight",
        type=positive_int,
        default=defaults.max_in_flight,
        help="publishes awaiting confirmation at most (default %(default)s)",
    )
    parser.add_argument(
        "--batch-window",
        type=non_negative_float,
        default=defaults.batch_window,
        metavar="SECONDS",
        help="how long the client gathers messages into one publish request: longer saves "
        "requests at high rates, shorter delays each message less (default %(default)g)",
    )
    add_pubsub_flags(parser)
    add_common_flags(parser)


def producer_options(args: argparse.Namespace) -> ProducerOptions:
    return _options_from(args, ProducerOptions)


def add_order_wait_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--order-wait",
        type=non_negative_float,
        default=ORDER_WAIT,
        metavar="SECONDS",
        help="how long after its publish a payment may wait for its order before it is "
        "dead-lettered; 0 = at once (default %(default)g)",
    )


def add_consumer_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--batch-size",
        type=positive_int,
        default=CONSUMER.batch_size,
        help="messages pulled at once (default %(default)s)",
    )
    parser.add_argument(
        "--pulls",
        type=positive_int,
        default=CONSUMER.pulls,
        help="pull requests kept in flight while a batch is stored; those that have returned "
        "make the next batch (default %(default)s)",
    )
    parser.add_argument(
        "--concurrency",
        type=positive_int,
        default=CONSUMER.concurrency,
        help="Cassandra requests in flight at most (default %(default)s)",
    )
    parser.add_argument(
        "--write-batch",
        type=positive_int,
        default=CONSUMER.write_batch,
        help="rows written per Cassandra request, in unlogged batches of rows whose partitions "
        "the same replicas own; 1 writes each row alone; above 10 Cassandra's default settings "
        "log a warning per batch (default %(default)s)",
    )
    parser.add_argument(
        "--ttl",
        type=positive_int,
        metavar="SECONDS",
        help="let the cells each write touches expire after SECONDS (CQL USING TTL; an order "
        "and its payment expire separately) (default: never)",
    )
    add_pubsub_flags(parser)
    add_cassandra_flags(parser)
    add_common_flags(parser)


def consumer_options(args: argparse.Namespace) -> ConsumerOptions:
    return _options_from(args, ConsumerOptions)


def _options_from(args: argparse.Namespace, options: type[T]) -> T:
    """An options dataclass from the flags of the same names (a missing flag raises)."""
    return options(
        **{field.name: getattr(args, field.name) for field in dataclasses.fields(options)}
    )
