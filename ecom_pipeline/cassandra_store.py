"""Temporary: the old import path, until bench/ moves to cassandra_session and fact_store."""

from ecom_pipeline.cassandra_session import *  # noqa: F403
from ecom_pipeline.cassandra_session import prepare_in_keyspace  # noqa: F401
from ecom_pipeline.fact_store import *  # noqa: F403
