"""Streaming pull against synchronous pull, receive-and-ack only, from the emulator.

Publishes N small messages, then drains them once with each method and prints
messages per second and the receiving process's CPU seconds. The consumers use
the faster method (see BENCHMARKS.md).

example: python -m bench.pull_comparison --messages 20000
"""

from __future__ import annotations

import argparse
import os
import resource
import threading
import time
import uuid

from google.cloud.pubsub_v1 import PublisherClient, SubscriberClient
from google.cloud.pubsub_v1.types import BatchSettings, FlowControl

from ecom_pipeline.pubsub import publisher_client, subscriber_client
from ecom_pipeline.settings import Settings


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def scratch_subscription(
    publisher: PublisherClient, subscriber: SubscriberClient, project: str, prefix: str
) -> tuple[str, str]:
    """A topic and its subscription under a fresh name, for one measurement: their paths."""
    name = f"{prefix}-{uuid.uuid4().hex[:6]}"
    topic = publisher.topic_path(project, name)
    subscription = subscriber.subscription_path(project, name)
    publisher.create_topic(name=topic)
    subscriber.create_subscription(name=subscription, topic=topic, ack_deadline_seconds=60)
    return topic, subscription


def _fill(settings: Settings, n: int) -> tuple[str, str]:
    publisher = publisher_client(
        settings, batch_settings=BatchSettings(max_messages=1000, max_latency=0.01)
    )
    subscriber = subscriber_client(settings)
    topic, subscription = scratch_subscription(
        publisher, subscriber, settings.project, "pull-comparison"
    )
    body = b'{"order_id": 1, "item": "Laptop", "price": 999.99}'
    for future in [publisher.publish(topic, body) for _ in range(n)]:
        future.result()
    return topic, subscription


def synchronous(settings: Settings, subscription: str, n: int, batch: int) -> int:
    subscriber = subscriber_client(settings)
    received = 0
    while received < n:
        response = subscriber.pull(subscription=subscription, max_messages=batch, timeout=10)
        messages = response._pb.received_messages
        if messages:
            subscriber.acknowledge(subscription=subscription, ack_ids=[m.ack_id for m in messages])
        received += len(messages)
    return received


def streaming(settings: Settings, subscription: str, n: int, batch: int) -> int:
    subscriber = subscriber_client(settings)
    done = threading.Event()
    lock = threading.Lock()
    count = [0]

    def callback(message) -> None:
        message.ack()
        with lock:
            count[0] += 1
            if count[0] >= n:
                done.set()

    future = subscriber.subscribe(
        subscription, callback, flow_control=FlowControl(max_messages=batch * 2)
    )
    done.wait(300)
    future.cancel()
    future.result(timeout=30) if not future.cancelled() else None
    return count[0]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=1000)
    args = parser.parse_args()
    settings = Settings.from_env()
    print(f"{'method':<12} {'messages':>9} {'seconds':>8} {'msg/s':>8} {'CPU s':>7}")
    for name, method in (("synchronous", synchronous), ("streaming", streaming)):
        _, subscription = _fill(settings, args.messages)
        cpu, start = _cpu(), time.monotonic()
        received = method(settings, subscription, args.messages, args.batch)
        seconds = time.monotonic() - start
        rate = received / seconds
        print(f"{name:<12} {received:>9} {seconds:>8.2f} {rate:>8.0f} {_cpu() - cpu:>7.2f}")
    os._exit(0)  # the streaming pull's background threads need not be waited for


if __name__ == "__main__":
    main()
