"""Every call the pipeline makes to Pub/Sub beyond publishing: clients, pulls, settlement.

The consumer loop, `status` and `redrive` pull, acknowledge and move deadlines
through these functions only, so chunk sizes, timeouts and error wording live here.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import threading
from typing import Any

import grpc
from google.api_core import exceptions as google_errors
from google.cloud import pubsub_v1
from google.pubsub_v1.services.publisher.transports import PublisherGrpcTransport
from google.pubsub_v1.services.subscriber.transports import SubscriberGrpcTransport

from ecom_pipeline.outcomes import Delivery
from ecom_pipeline.settings import Settings, Stream

logger = logging.getLogger(__name__)

# Pub/Sub takes at most this many ack ids per acknowledge / modifyAckDeadline request.
ACK_CHUNK = 1000
MAX_ACK_DEADLINE = 600
SETTLE_TIMEOUT = 10.0
SETUP_HINT = "run ./setup_pubsub.sh (or check GOOGLE_CLOUD_PROJECT and PUBSUB_EMULATOR_HOST)"

# Pub/Sub's own limits: a message is at most 10 MB, a pull response can be larger.
_CHANNEL_OPTIONS = [
    ("grpc.max_send_message_length", -1),
    ("grpc.max_receive_message_length", -1),
    # gRPC waits ever longer between reconnects (up to 120 s) and fails calls at once while
    # it waits, so an emulator back after an outage would be seen long after it is up.
    ("grpc.max_reconnect_backoff_ms", 2000),
]


class SubscriptionGone(RuntimeError):
    """The subscription does not exist: a set-up problem, not a transient one."""


# ---------------------------------------------------------------- clients


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


# ---------------------------------------------------------------- pulling and settling


def pull(
    subscriber: pubsub_v1.SubscriberClient, subscription: str, max_messages: int, timeout: float
) -> list[Delivery]:
    """One synchronous pull: what the server has at hand, [] when nothing came in `timeout`."""
    try:
        response = subscriber.pull(
            subscription=subscription, max_messages=max_messages, timeout=timeout, retry=None
        )
    except google_errors.DeadlineExceeded:
        return []
    except google_errors.NotFound as error:
        raise SubscriptionGone(
            f"subscription {subscription} does not exist: {SETUP_HINT}"
        ) from error
    # The raw protobuf, not the client's proto-plus wrappers: 4.9 against 43.7 µs a message
    # (`python -m bench.pull_decoding`), at thousands of messages a second.
    return [_delivery(received) for received in response._pb.received_messages]


def _delivery(received) -> Delivery:
    message = received.message
    return Delivery(
        ack_id=received.ack_id,
        message_id=message.message_id,
        data=message.data,
        attributes=dict(message.attributes),
        publish_time=publish_time(message.publish_time),
        delivery_attempt=received.delivery_attempt,
    )


def publish_time(stamp) -> dt.datetime:
    """A protobuf Timestamp as an aware UTC datetime."""
    return dt.datetime.fromtimestamp(stamp.seconds + stamp.nanos / 1e9, dt.UTC)


def acknowledge(
    subscriber: pubsub_v1.SubscriberClient, subscription: str, ack_ids: list[str]
) -> None:
    """Ack in requests of at most ACK_CHUNK ids, without the client's minute of retries."""
    for chunk in _chunks(ack_ids):
        subscriber.acknowledge(
            subscription=subscription, ack_ids=chunk, retry=None, timeout=SETTLE_TIMEOUT
        )


def modify_deadline(
    subscriber: pubsub_v1.SubscriberClient, subscription: str, ack_ids: list[str], seconds: int
) -> None:
    """Redeliver after `seconds` (0: at once, to anyone), in chunks as `acknowledge`."""
    for chunk in _chunks(ack_ids):
        subscriber.modify_ack_deadline(
            subscription=subscription,
            ack_ids=chunk,
            ack_deadline_seconds=seconds,
            retry=None,
            timeout=SETTLE_TIMEOUT,
        )


class Leases:
    """Keeps the messages a consumer holds from being redelivered while it works on them.

    As Pub/Sub's own streaming client does: the subscription's ack deadline stays
    short, so that what a crashed consumer held comes back within seconds, and a
    background thread extends it every `seconds / 2` for what is still in hand.
    Ack ids are released before they are settled, so no extension can undo a delay.
    """

    def __init__(
        self, subscriber: pubsub_v1.SubscriberClient, subscription: str, seconds: int
    ) -> None:
        self.subscriber = subscriber
        self.subscription = subscription
        self.seconds = max(int(seconds), 1)
        self._held: set[str] = set()
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    def hold(self, ack_ids: list[str]) -> None:
        with self._lock:
            self._held.update(ack_ids)

    def release(self, ack_ids: list[str]) -> None:
        with self._lock:
            self._held.difference_update(ack_ids)

    @property
    def held(self) -> int:
        return len(self._held)

    def start(self) -> Leases:
        self._thread = threading.Thread(target=self._extend, name="leases", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        if self._thread is not None:
            self._thread.join(timeout=SETTLE_TIMEOUT)

    def _extend(self) -> None:
        while not self._stopped.wait(self.seconds / 2):
            with self._lock:
                try:
                    modify_deadline(
                        self.subscriber, self.subscription, list(self._held), self.seconds
                    )
                except Exception as error:  # the next round tries again; at worst a redelivery
                    logger.debug("could not extend leases: %s", error)


def deadline_seconds(seconds: float) -> int:
    """Seconds to the next delivery within Pub/Sub's range: at least 1 (0 means at once)."""
    return int(min(max(round(seconds), 1), MAX_ACK_DEADLINE))


def _chunks(items: list[str]) -> list[list[str]]:
    return [items[i : i + ACK_CHUNK] for i in range(0, len(items), ACK_CHUNK)]


# ---------------------------------------------------------------- topics and subscriptions


def create_stream(
    publisher: pubsub_v1.PublisherClient,
    subscriber: pubsub_v1.SubscriberClient,
    project: str,
    stream: Stream,
    *,
    ack_deadline: int = 10,
    max_delivery_attempts: int = 20,
) -> None:
    """A stream's two topics and two subscriptions as setup_pubsub.sh makes them."""
    for topic in (stream.topic, stream.dlq_topic):
        publisher.create_topic(name=publisher.topic_path(project, topic))
    subscriber.create_subscription(
        request={
            "name": subscriber.subscription_path(project, stream.subscription),
            "topic": publisher.topic_path(project, stream.topic),
            "ack_deadline_seconds": ack_deadline,
            "dead_letter_policy": {
                "dead_letter_topic": publisher.topic_path(project, stream.dlq_topic),
                "max_delivery_attempts": max_delivery_attempts,
            },
        }
    )
    subscriber.create_subscription(
        request={
            "name": subscriber.subscription_path(project, stream.dlq_subscription),
            "topic": publisher.topic_path(project, stream.dlq_topic),
            "ack_deadline_seconds": ack_deadline,
        }
    )


def delete_stream(
    publisher: pubsub_v1.PublisherClient,
    subscriber: pubsub_v1.SubscriberClient,
    project: str,
    stream: Stream,
) -> None:
    for subscription in (stream.subscription, stream.dlq_subscription):
        subscriber.delete_subscription(
            subscription=subscriber.subscription_path(project, subscription)
        )
    for topic in (stream.topic, stream.dlq_topic):
        publisher.delete_topic(topic=publisher.topic_path(project, topic))
