"""Publish mock payments to the `payments_data` topic.

By default one payment every second for order ids 1..500, once, then exit
(SPEC.md); orders 81..500 never exist, so those payments end in the DLQ. Each
publish is confirmed; failures are retried and the exit code is 1 if any payment
was finally lost. Ctrl+C waits for the publishes in flight.

example: python payments_data_producer.py --interval 0 --last-id 50
"""

from __future__ import annotations

import sys

from ecom_pipeline import cli, options, roles


def main(argv: list[str] | None = None) -> int:
    parser = cli.parser_for(__doc__, "Environment: see README.md, Settings.")
    cli.add_producer_flags(
        parser,
        options.PAYMENT_PRODUCER,
        what="payments",
        count_help="payments in all, cycling the ids (default: each id once)",
    )
    args = parser.parse_args(argv)
    cli.configure_logging(args)
    return cli.run(
        lambda: roles.publish_payments(cli.settings_from(args), cli.producer_options(args))
    )


if __name__ == "__main__":
    sys.exit(main())
