"""The `payments_data_producer` role from a checkout: `python payments_data_producer.py --help`.

A shim: `pip install .` installs the same role as the command
`payments_data_producer`, and both run ecom_pipeline.commands.payments_data_producer.
"""

import sys

from ecom_pipeline.commands import payments_data_producer as main

if __name__ == "__main__":
    sys.exit(main())
