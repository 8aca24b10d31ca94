"""The four roles as commands: each one's flags and its `main`.

pyproject.toml installs each as a console script of the same name, and the repository's
top-level scripts (`python order_data_producer.py`) call the same functions.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from ecom_pipeline import cli, options, roles

ENVIRONMENT = "Environment: see the Settings section of the README."

ORDER_PRODUCER = """Publish mock orders to the `orders_data` topic.

By default one order every 2 seconds, order ids cycling 1..80 forever. Each
publish is confirmed; failures are retried and the exit code is 1 if any order
was finally lost. Ctrl+C waits for the publishes in flight.

example: %(prog)s --interval 0 --last-id 20 --count 20
"""

PAYMENT_PRODUCER = """Publish mock payments to the `payments_data` topic.

By default one payment every second for order ids 1..500, once, then exit;
orders 81..500 never exist, so those payments end in the DLQ. Each publish is
confirmed; failures are retried and the exit code is 1 if any payment was
finally lost. Ctrl+C waits for the publishes in flight.

example: %(prog)s --interval 0 --last-id 50
"""

ORDER_CONSUMER = """Store orders from `orders_data-sub` in the fact table `orders_payments_facts`.

Writes the order columns only (an order published again never erases its
payment) and acks a message only after Cassandra confirmed the write. Invalid
orders go to `dlq_orders_data` with a `reason` attribute. Ctrl+C finishes the
batch in hand; a second Ctrl+C exits at once.

example: %(prog)s --batch-size 100
"""

PAYMENT_CONSUMER = """Attach payments from `payments_data-sub` to their orders in the fact table.

A payment whose order exists fills the five payment columns. One whose order is
not stored yet is redelivered later, until --order-wait seconds after it was
published, and then published unchanged to `dlq_payments_data` with attributes
saying why; it is acked only once that publish is confirmed. A Cassandra error
is never taken for a missing order: the message comes back later. Ctrl+C
finishes the batch in hand; a second Ctrl+C exits at once.

example: %(prog)s --order-wait 0
"""


def order_data_producer_parser() -> argparse.ArgumentParser:
    parser = cli.parser_for(ORDER_PRODUCER, ENVIRONMENT)
    cli.add_producer_flags(
        parser,
        options.ORDER_PRODUCER,
        what="orders",
        count_help="orders in all (default: forever)",
    )
    return parser


def order_data_producer(argv: list[str] | None = None) -> int:
    args = cli.parse(order_data_producer_parser(), argv)
    return cli.run(
        lambda: roles.publish_orders(cli.settings_from(args), cli.producer_options(args))
    )


def payments_data_producer_parser() -> argparse.ArgumentParser:
    parser = cli.parser_for(PAYMENT_PRODUCER, ENVIRONMENT)
    cli.add_producer_flags(
        parser,
        options.PAYMENT_PRODUCER,
        what="payments",
        count_help="payments in all, cycling the ids (default: each id once)",
    )
    return parser


def payments_data_producer(argv: list[str] | None = None) -> int:
    args = cli.parse(payments_data_producer_parser(), argv)
    return cli.run(
        lambda: roles.publish_payments(cli.settings_from(args), cli.producer_options(args))
    )


def order_data_consumer_parser() -> argparse.ArgumentParser:
    parser = cli.parser_for(ORDER_CONSUMER, ENVIRONMENT)
    cli.add_consumer_flags(parser)
    return parser


def order_data_consumer(argv: list[str] | None = None) -> int:
    args = cli.parse(order_data_consumer_parser(), argv)
    return cli.run(
        lambda: roles.consume_orders(cli.settings_from(args), cli.consumer_options(args))
    )


def ingest_in_fact_table_parser() -> argparse.ArgumentParser:
    parser = cli.parser_for(PAYMENT_CONSUMER, ENVIRONMENT)
    cli.add_order_wait_flag(parser)
    cli.add_consumer_flags(parser)
    return parser


def ingest_in_fact_table(argv: list[str] | None = None) -> int:
    args = cli.parse(ingest_in_fact_table_parser(), argv)
    return cli.run(
        lambda: roles.consume_payments(
            cli.settings_from(args), cli.consumer_options(args), order_wait=args.order_wait
        )
    )


# Command name -> its parser: the names of the console scripts and of the top-level scripts.
PARSERS: dict[str, Callable[[], argparse.ArgumentParser]] = {
    "order_data_producer": order_data_producer_parser,
    "payments_data_producer": payments_data_producer_parser,
    "order_data_consumer": order_data_consumer_parser,
    "ingest_in_fact_table": ingest_in_fact_table_parser,
}
