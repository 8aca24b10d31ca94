"""The `order_data_consumer` role from a checkout: `python order_data_consumer.py --help`.

A shim: `pip install .` installs the same role as the command `order_data_consumer`,
and both run ecom_pipeline.commands.order_data_consumer.
"""

import sys

from ecom_pipeline.commands import order_data_consumer as main

if __name__ == "__main__":
    sys.exit(main())
