"""Publish mock orders to the `orders_data` topic.

By default one order every 2 seconds, order ids cycling 1..80 forever (SPEC.md).
Each publish is confirmed; failures are retried and the exit code is 1 if any
order was finally lost. Ctrl+C waits for the publishes in flight.

example: python order_data_producer.py --interval 0 --last-id 20 --count 20
"""

from __future__ import annotations

import sys

from ecom_pipeline import cli, options, roles


def main(argv: list[str] | None = None) -> int:
    parser = cli.parser_for(__doc__, "Environment: see README.md, Settings.")
    cli.add_producer_flags(
        parser,
        options.ORDER_PRODUCER,
        what="orders",
        count_help="orders in all (default: forever)",
    )
    args = parser.parse_args(argv)
    cli.configure_logging(args)
    return cli.run(
        lambda: roles.publish_orders(cli.settings_from(args), cli.producer_options(args))
    )


if __name__ == "__main__":
    sys.exit(main())
