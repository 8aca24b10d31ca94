"""Pub/Sub clients pointed at the emulator or at Google Cloud, as the settings say."""

from __future__ import annotations

import os
from typing import Any

import grpc
from google.cloud import pubsub_v1
from google.pubsub_v1.services.publisher.transports import PublisherGrpcTransport
from google.pubsub_v1.services.subscriber.transports import SubscriberGrpcTransport

from ecom_pipeline.settings import Settings

# Pub/Sub's own limits: a message is at most 10 MB, a pull response can be larger.
_CHANNEL_OPTIONS = [
    ("grpc.max_send_message_length", -1),
    ("grpc.max_receive_message_length", -1),
]


def _real_google_cloud_only(settings: Settings) -> None:
    """The Google clients read PUBSUB_EMULATOR_HOST themselves; our settings decide."""
    if not settings.emulator_host:
        os.environ.pop("PUBSUB_EMULATOR_HOST", None)


def publisher_client(settings: Settings, **options: Any) -> pubsub_v1.PublisherClient:
    """A publisher; `options` are PublisherClient's (batch_settings, publisher_options)."""
    if settings.emulator_host:
        channel = grpc.insecure_channel(settings.emulator_host, options=_CHANNEL_OPTIONS)
        options["transport"] = PublisherGrpcTransport(channel=channel)
    else:
        _real_google_cloud_only(settings)
    return pubsub_v1.PublisherClient(**options)


def subscriber_client(settings: Settings) -> pubsub_v1.SubscriberClient:
    if settings.emulator_host:
        channel = grpc.insecure_channel(settings.emulator_host, options=_CHANNEL_OPTIONS)
        return pubsub_v1.SubscriberClient(transport=SubscriberGrpcTransport(channel=channel))
    _real_google_cloud_only(settings)
    return pubsub_v1.SubscriberClient()
