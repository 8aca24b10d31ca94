"""Store orders from `orders_data-sub` in the fact table `orders_payments_facts`.

Writes the order columns only (an order published again never erases its
payment) and acks a message only after Cassandra confirmed the write. Invalid
orders go to `dlq_orders_data` with a `reason` attribute. Ctrl+C finishes the
batch in hand; a second Ctrl+C exits at once.

example: python order_data_consumer.py --batch-size 100
"""

from __future__ import annotations

import sys

from ecom_pipeline import cli, roles


def main(argv: list[str] | None = None) -> int:
    parser = cli.parser_for(__doc__, "Environment: see README.md, Settings.")
    cli.add_consumer_flags(parser)
    args = parser.parse_args(argv)
    cli.configure_logging(args)
    return cli.run(
        lambda: roles.consume_orders(cli.settings_from(args), cli.consumer_options(args))
    )


if __name__ == "__main__":
    sys.exit(main())
