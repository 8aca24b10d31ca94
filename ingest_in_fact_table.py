"""Attach payments from `payments_data-sub` to their orders in `orders_payments_facts`.

A payment whose order exists fills the five payment columns. One whose order is
not stored yet is redelivered later, until --order-wait seconds after it was
published, and then published unchanged to `dlq_payments_data` with attributes
saying why; it is acked only once that publish is confirmed. A Cassandra error
is never taken for a missing order: the message comes back later. Ctrl+C
finishes the batch in hand; a second Ctrl+C exits at once.

example: python ingest_in_fact_table.py --order-wait 0
"""

from __future__ import annotations

import sys

from ecom_pipeline import cli, roles


def main(argv: list[str] | None = None) -> int:
    parser = cli.parser_for(__doc__, "Environment: see README.md, Settings.")
    cli.add_order_wait_flag(parser)
    cli.add_consumer_flags(parser)
    args = parser.parse_args(argv)
    cli.configure_logging(args)
    return cli.run(
        lambda: roles.consume_payments(
            cli.settings_from(args), cli.consumer_options(args), order_wait=args.order_wait
        )
    )


if __name__ == "__main__":
    sys.exit(main())
