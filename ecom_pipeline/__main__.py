"""Operate the pipeline: `status` of the table and the dead-letter queues, `redrive` of payments.

Installed as the command `ecom-pipeline`; from a checkout, `python -m ecom_pipeline`.

examples:
  %(prog)s status
  %(prog)s redrive --dry-run
  %(prog)s redrive            # payments whose order exists now
  %(prog)s redrive --all      # every dead-lettered payment
"""

from __future__ import annotations

import argparse
import sys

from google.api_core import exceptions as google_errors

from ecom_pipeline import cli
from ecom_pipeline.cassandra_session import open_session
from ecom_pipeline.fact_store import FactStore
from ecom_pipeline.operations import dead_letter_status, print_status, redrive, table_status
from ecom_pipeline.pubsub import SETUP_HINT, publisher_client, subscriber_client
from ecom_pipeline.shutdown import Shutdown


def status(args: argparse.Namespace) -> int:
    """Counts from the table, and a look at each DLQ that leaves it as it was."""
    settings = cli.settings_from(args)
    session = open_session(settings)
    subscriber = subscriber_client(settings)
    try:
        table = table_status(FactStore(session, settings))
        dead_letters = [
            dead_letter_status(subscriber, settings, stream, args.limit)
            for stream in (settings.payments, settings.orders)
        ]
    finally:
        session.cluster.shutdown()
        subscriber.close()
    print_status(table, dead_letters)
    return 0


def redrive_payments(args: argparse.Namespace) -> int:
    """Republish dead-lettered payments to payments_data, acking each only once confirmed."""
    settings = cli.settings_from(args)
    shutdown = Shutdown().install()
    session = open_session(settings)
    subscriber = subscriber_client(settings)
    publisher = publisher_client(settings)
    try:
        report = redrive(
            settings,
            subscriber,
            publisher,
            FactStore(session, settings),
            everything=args.all,
            dry_run=args.dry_run,
            limit=args.limit,
            batch_size=args.batch_size,
            should_stop=lambda: shutdown.requested,
        )
    finally:
        publisher.stop()
        subscriber.close()
        session.cluster.shutdown()
    verb = "would republish" if args.dry_run else "republished"
    count = report.examined - sum(report.left.values()) if args.dry_run else report.republished
    left = ", ".join(f"{n} {why}" for why, n in report.left.most_common()) or "none"
    print(f"examined {report.examined} dead letters; {verb} {count}; left on the DLQ: {left}")
    return 0


COMMANDS = {"status": status, "redrive": redrive_payments}


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    """The `ecom-pipeline` command; `prog` names it in usage lines (default: as it was run)."""
    parser = cli.parser_for(__doc__, "Environment: see the Settings section of the README.", prog)
    commands = parser.add_subparsers(dest="command", required=True)
    for name, function in COMMANDS.items():
        command = commands.add_parser(name, help=function.__doc__, description=function.__doc__)
        command.set_defaults(function=function)
        cli.add_pubsub_flags(command)
        cli.add_cassandra_flags(command)
        command.add_argument(
            "--log-level", default="WARNING", choices=["DEBUG", "INFO", "WARNING", "ERROR"]
        )
        command.add_argument("--log-format", choices=["text", "json"], default="text")
    commands.choices["status"].add_argument(
        "--limit",
        type=cli.positive_int,
        default=10_000,
        help="look at up to this many messages per DLQ (default %(default)s)",
    )
    redrive_command = commands.choices["redrive"]
    redrive_command.add_argument(
        "--all", action="store_true", help="republish every dead-lettered payment"
    )
    redrive_command.add_argument(
        "--dry-run", action="store_true", help="list what would be done; change nothing"
    )
    redrive_command.add_argument(
        "--limit", type=cli.positive_int, help="stop after this many dead letters"
    )
    redrive_command.add_argument(
        "--batch-size",
        type=cli.positive_int,
        default=500,
        help="dead letters pulled, republished and acked at a time (default %(default)s)",
    )
    args = parser.parse_args(argv)
    cli.configure_logging(args)
    return cli.run(lambda: _with_clear_pubsub_errors(args))


def _with_clear_pubsub_errors(args: argparse.Namespace) -> int:
    try:
        return args.function(args)
    except google_errors.NotFound as error:
        raise cli.SetupProblem(f"{error.message}: {SETUP_HINT}") from None
    except google_errors.GoogleAPICallError as error:
        raise cli.SetupProblem(f"cannot reach Pub/Sub: {error.message or error}") from None


if __name__ == "__main__":
    sys.exit(main(prog="python -m ecom_pipeline"))
