"""The `order_data_producer` role from a checkout: `python order_data_producer.py --help`.

A shim: `pip install .` installs the same role as the command `order_data_producer`,
and both run ecom_pipeline.commands.order_data_producer.
"""

import sys

from ecom_pipeline.commands import order_data_producer as main

if __name__ == "__main__":
    sys.exit(main())
