"""Where the milliseconds from publish to pull go, with no consumer code in the way.

Publishes one small message at a time at a steady rate and pulls them the way the
consumers do (`pubsub.pull`, `--pulls` synchronous pulls in flight), then splits each
message's time from the `publish()` call to its pull returning into:

- in the publisher client: from the call to the emulator's publish time (the
  client's batch window, `--batch-window`, then the request);
- in Pub/Sub: from the publish time to a waiting pull returning it.

The consumer's own part (parse, write, acknowledge, log) is what the benchmark's
publish-to-row latency adds to these. Runs against PUBSUB_EMULATOR_HOST (default the
local emulator), on topics of its own, removed afterwards.

Pub/Sub's publish times are whole milliseconds, so each part may be off by up to 1 ms.

example: python -m bench.delivery_latency --per-second 2 --seconds 30
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time

from google.cloud.pubsub_v1.types import BatchSettings

from bench.pull_comparison import scratch_subscription
from ecom_pipeline import pubsub
from ecom_pipeline.options import ORDER_PRODUCER
from ecom_pipeline.pubsub import publisher_client, subscriber_client
from ecom_pipeline.settings import Settings


def percentiles(values: list[float]) -> str:
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return f"p50 {statistics.median(ordered):6.1f}  p99 {p99:6.1f}  max {ordered[-1]:6.1f} ms"


def measure(
    settings: Settings, per_second: float, seconds: float, batch_window: float, pulls: int
) -> tuple[list[float], list[float], list[float]]:
    """(call to publish time, publish time to pulled, call to pulled), in ms per message."""
    publisher = publisher_client(settings, batch_settings=BatchSettings(max_latency=batch_window))
    subscriber = subscriber_client(settings)
    topic, subscription = scratch_subscription(
        publisher, subscriber, settings.project, "delivery-latency"
    )
    try:
        called, pulled = _publish_and_pull(
            publisher, subscriber, topic, subscription, per_second, seconds, pulls
        )
    finally:
        subscriber.delete_subscription(subscription=subscription)
        publisher.delete_topic(topic=topic)
        publisher.stop()
    total = len(called)
    if len(pulled) < total:
        raise SystemExit(f"only {len(pulled)} of {total} messages were pulled")
    in_client = [(pulled[b][0] - called[b]) * 1000 for b in called]
    in_pubsub = [(pulled[b][1] - pulled[b][0]) * 1000 for b in called]
    overall = [(pulled[b][1] - called[b]) * 1000 for b in called]
    return in_client, in_pubsub, overall


def _publish_and_pull(
    publisher,
    subscriber,
    topic: str,
    subscription: str,
    per_second: float,
    seconds: float,
    pulls: int,
) -> tuple[dict[bytes, float], dict[bytes, tuple[float, float]]]:
    """When each body was handed to publish(), and (its publish time, when a pull returned it)."""
    called: dict[bytes, float] = {}
    pulled: dict[bytes, tuple[float, float]] = {}  # body -> (publish time, pulled at)
    total = max(1, round(per_second * seconds))
    done = threading.Event()

    def pull_loop() -> None:
        while not done.is_set():
            deliveries = pubsub.pull(subscriber, subscription, 1000, timeout=3.0)
            now = time.time()
            for delivery in deliveries:
                pulled[delivery.data] = (delivery.publish_time.timestamp(), now)
            if deliveries:
                pubsub.acknowledge(subscriber, subscription, [d.ack_id for d in deliveries])

    threads = [threading.Thread(target=pull_loop, daemon=True) for _ in range(pulls)]
    for thread in threads:
        thread.start()
    time.sleep(2)  # every pull is waiting before the first publish
    started = time.time()
    for tick in range(total):
        time.sleep(max(0.0, started + tick / per_second - time.time()))
        body = b'{"order_id": %d}' % tick
        called[body] = time.time()
        publisher.publish(topic, body)
    deadline = time.time() + 30
    while len(pulled) < total and time.time() < deadline:
        time.sleep(0.1)
    done.set()
    for thread in threads:
        thread.join(timeout=5)
    return called, pulled


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.delivery_latency",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--per-second", type=float, default=2.0, help="default %(default)s")
    parser.add_argument("--seconds", type=float, default=30.0, help="default %(default)s")
    parser.add_argument(
        "--batch-window",
        type=float,
        action="append",
        help="the publisher's batch window in seconds; repeat to compare (default: the "
        f"producers' {ORDER_PRODUCER.batch_window:g}, then the client library's 0.01)",
    )
    parser.add_argument("--pulls", type=int, default=4, help="pulls in flight (default 4)")
    args = parser.parse_args(argv)
    settings = Settings.for_local_services()
    for window in args.batch_window or [ORDER_PRODUCER.batch_window, 0.01]:
        in_client, in_pubsub, overall = measure(
            settings, args.per_second, args.seconds, window, args.pulls
        )
        print(f"batch window {window * 1000:g} ms, {len(overall)} messages:")
        print(f"  call to publish time     {percentiles(in_client)}")
        print(f"  publish time to pulled   {percentiles(in_pubsub)}")
        print(f"  call to pulled           {percentiles(overall)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
