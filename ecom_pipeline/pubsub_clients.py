"""Temporary: the old import path, until bench/ moves to ecom_pipeline.pubsub."""

from ecom_pipeline.pubsub import publisher_client, subscriber_client  # noqa: F401
