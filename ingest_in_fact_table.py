"""The `ingest_in_fact_table` role from a checkout: `python ingest_in_fact_table.py --help`.

A shim: `pip install .` installs the same role as the command `ingest_in_fact_table`,
and both run ecom_pipeline.commands.ingest_in_fact_table.
"""

import sys

from ecom_pipeline.commands import ingest_in_fact_table as main

if __name__ == "__main__":
    sys.exit(main())
