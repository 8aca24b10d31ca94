"""Consumer.run with a stand-in subscriber (pure logic, real threads): pulls in flight, what a
stop releases, pull failures, the stats line, and settlements that never fall behind."""

import datetime as dt
import logging
import threading
import time
from types import SimpleNamespace

import pytest
from google.api_core import exceptions as google_errors
from prometheus_client import generate_latest

from ecom_pipeline.outcomes import Retry, Stored
from ecom_pipeline.pubsub import SubscriptionGone
from tests.unit.test_consumer import (
    SUBSCRIPTION,
    RecordingShutdown,
    StandInSubscriber,
    consumer,
    messages,
)


def received(i: int) -> SimpleNamespace:
    published = time.time() - 1
    return SimpleNamespace(
        ack_id=f"ack{i}",
        delivery_attempt=1,
        message=SimpleNamespace(
            message_id=f"id{i}", data=b"{}", attributes={},
            publish_time=SimpleNamespace(seconds=int(published), nanos=0),
        ),
    )  # fmt: skip


class PullingSubscriber(StandInSubscriber):
    """Answers pulls with `answers` in turn (a list of ids, an error, or a callable giving one),
    then with nothing after `idle` seconds; counts pulls in flight."""

    def __init__(self, answers=(), idle=0.01, ack_delay=0.0, events=None):
        super().__init__(events)
        self.answers, self.idle, self.ack_delay = list(answers), idle, ack_delay
        self.lock = threading.Lock()
        self.pulls, self.starts, self.in_flight, self.most_in_flight = [], [], 0, 0

    def pull(self, subscription, max_messages, timeout, retry):
        with self.lock:
            self.pulls.append((subscription, max_messages, timeout))
            self.in_flight += 1
            self.starts.append(self.in_flight)
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
            answer = self.answers.pop(0) if self.answers else None
        try:
            if callable(answer):
                answer = answer()
            if isinstance(answer, Exception):
                raise answer
            if answer is None:
                time.sleep(self.idle)
                answer = []
            return SimpleNamespace(_pb=SimpleNamespace(received_messages=map(received, answer)))
        finally:
            with self.lock:
                self.in_flight -= 1

    def acknowledge(self, subscription, ack_ids, **_):
        time.sleep(self.ack_delay)
        super().acknowledge(subscription, ack_ids)


def run_until(loop, done, timeout: float = 5.0):
    """Run the loop in a thread until `done()` holds, then stop it; its counts."""
    result = {}
    thread = threading.Thread(target=lambda: result.setdefault("counts", loop.run()))
    thread.start()
    deadline = time.monotonic() + timeout
    while not done() and time.monotonic() < deadline:
        time.sleep(0.01)
    loop.shutdown.request()
    thread.join(timeout=15)
    assert not thread.is_alive(), "the loop did not stop"
    assert done(), "the condition never held"
    return result.get("counts")


def make(subscriber, handler=None, **options):
    loop = consumer(handler or (lambda batch: [Stored(f"m {d.message_id}") for d in batch]))
    loop.subscriber = subscriber
    loop.shutdown = RecordingShutdown()
    for name, value in options.items():
        setattr(loop, name, value)
    return loop


def test_sixteen_pulls_of_1000_messages_with_3_s_timeouts_are_in_flight_by_default(caplog):
    subscriber = PullingSubscriber(idle=0.05)
    run_until(make(subscriber), lambda: len(subscriber.pulls) >= 48)
    assert f"test consumer: pulling from {SUBSCRIPTION}" in messages(caplog, logging.INFO)
    assert subscriber.most_in_flight == 16
    assert set(subscriber.pulls) == {(SUBSCRIPTION, 1000, 3.0)}


def test_what_the_pulls_bring_is_handled_acked_and_counted_until_a_stop(caplog):
    subscriber = PullingSubscriber([[1, 2], [3]])
    loop = make(subscriber)
    counts = run_until(loop, lambda: len(subscriber.acked) == 3)
    assert sorted(subscriber.acked) == ["ack1", "ack2", "ack3"]
    assert counts["received"] == 3 and counts["stored"] == 3
    [final] = [m for m in messages(caplog, logging.INFO) if "stopped" in m]
    assert final.startswith("test consumer: stopped; received 3 (")
    assert final.endswith("/s), stored 3, dead-lettered 0, delayed 0, retried 0")


def test_a_stop_gives_back_what_every_pull_in_flight_brings_for_anyone_at_once():
    release = threading.Event()
    down = google_errors.ServiceUnavailable("down")

    def later(answer):
        return lambda: (release.wait(5), answer)[1]

    # Failed and fruitful pulls mixed, in whatever order they are looked at.
    answers = [[1], *[answer for i in range(2, 7) for answer in (later(down), later([i, i + 10]))]]
    subscriber = PullingSubscriber(answers)
    loop = make(subscriber, pulls=11)

    def handler(batch):
        loop.shutdown.request()  # a stop while ten pulls are still in flight
        release.set()
        return [Stored("a") for _ in batch]

    loop.handler = handler
    run_until(loop, lambda: loop.shutdown.requested)
    assert subscriber.acked == ["ack1"]
    given_back = sorted(subscriber.deadlines, key=lambda d: int(d[0][3:]))
    assert given_back == [(f"ack{i}", 0) for i in (*range(2, 7), *range(12, 17))]


def test_a_stop_waits_for_the_last_acks_to_be_sent():
    """The role closes its clients once run() returns: an ack still in flight would be lost."""
    subscriber = PullingSubscriber([[1]], ack_delay=0.3)
    loop = make(subscriber, pulls=1)

    def handler(batch):
        loop.shutdown.request()
        return [Stored("a")]

    loop.handler = handler
    loop.run()
    assert subscriber.acked == ["ack1"]


def test_a_store_outage_gives_back_what_was_pulled_ahead_for_10_s_and_waits_until_healthy():
    slow = threading.Event()
    subscriber = PullingSubscriber([[1], lambda: slow.wait(0.3) or [2]])
    probes = []

    def handler(batch):
        return [Retry(10, "write timeout") for _ in batch]

    loop = make(subscriber, handler, pulls=2, health_check=lambda: probes.append(1))
    run_until(loop, lambda: ("ack2", 10) in subscriber.deadlines)
    assert ("ack1", 10) in subscriber.deadlines
    assert loop.stats.counts["received"] == 1, "the message pulled ahead was not handled"
    assert probes, "the store was probed before pulling more"


def test_a_missing_subscription_on_the_first_pull_stops_the_consumer():
    loop = make(PullingSubscriber([google_errors.NotFound("no such subscription")]), pulls=1)
    with pytest.raises(SubscriptionGone, match=f"subscription {SUBSCRIPTION} does not exist"):
        loop.run()


def test_pull_failures_later_are_logged_once_counted_and_retried_one_pull_at_a_time(caplog):
    caplog.set_level(logging.DEBUG, logger="ecom_pipeline.consumer")
    down = google_errors.ServiceUnavailable("connection refused")
    gone = google_errors.NotFound("deleted")
    bare = google_errors.GoogleAPIError("no message attribute")
    subscriber = PullingSubscriber([[1], down, down, gone, bare, [2]])
    loop = make(subscriber, pulls=1)
    run_until(loop, lambda: len(subscriber.acked) == 2)
    errors = messages(caplog, logging.ERROR)
    assert errors == [
        "test consumer: cannot pull from Pub/Sub: connection refused; backing off and retrying "
        "until it works"
    ]
    metrics = generate_latest(loop.stats.registry).decode()
    assert 'pipeline_errors_total{kind="pubsub",role="test consumer"} 3.0' in metrics
    still = [m for m in messages(caplog) if "still failing" in m]
    assert still == [
        "test consumer: still failing: cannot pull from Pub/Sub: connection refused",
        f"test consumer: still failing: subscription {SUBSCRIPTION} does not exist: run "
        "./setup_pubsub.sh (or check GOOGLE_CLOUD_PROJECT and PUBSUB_EMULATOR_HOST)",
        "test consumer: still failing: cannot pull from Pub/Sub: no message attribute",
    ]
    assert loop.shutdown.waits[:4] == [0.5, 1.0, 2.0, 4.0]
    recovered = [m for m in messages(caplog, logging.WARNING) if "working again" in m]
    assert len(recovered) == 1 and recovered[0].endswith("lasted 0s")


def test_while_pulls_fail_only_one_is_in_flight():
    down = google_errors.ServiceUnavailable("down")
    subscriber = PullingSubscriber([down] * 40)
    run_until(make(subscriber), lambda: len(subscriber.starts) >= 30)
    assert subscriber.starts[:4] == [1, 2, 3, 4] or max(subscriber.starts[:4]) <= 4
    assert set(subscriber.starts[10:]) == {1}


def test_messages_of_pulls_that_worked_are_handled_even_if_another_pull_failed():
    down = google_errors.ServiceUnavailable("down")
    both = threading.Barrier(2, timeout=5)
    subscriber = PullingSubscriber([lambda: (both.wait(), down)[1], lambda: (both.wait(), [5])[1]])
    run_until(make(subscriber, pulls=2), lambda: subscriber.acked == ["ack5"])


def test_a_stats_line_every_interval(caplog):
    subscriber = PullingSubscriber([[1]])
    loop = make(subscriber, stats_interval=0.0, pulls=1)
    run_until(loop, lambda: len(subscriber.pulls) >= 10)
    lines = [m for m in messages(caplog, logging.INFO) if m.startswith("test consumer: received")]
    assert len(lines) >= 5
    caplog.clear()
    quiet = PullingSubscriber([[1]])
    run_until(make(quiet, stats_interval=3600.0), lambda: len(quiet.pulls) >= 10)
    assert not [m for m in messages(caplog, logging.INFO) if m.startswith("test consumer: rec")]


def test_acks_never_fall_behind_the_stores_by_more_than_one_batch():
    """The ack of batch n is sent before batch n + 2 is handled, however slow Pub/Sub is."""
    events = []
    subscriber = PullingSubscriber([[1], [2], [3], [4]], ack_delay=0.2, events=events)

    def handler(batch):
        events.append(("handled", batch[0].ack_id))
        return [Stored("a")]

    run_until(make(subscriber, handler, pulls=1), lambda: len(subscriber.acked) == 4)
    order = [f"{kind} {ids if isinstance(ids, str) else ids[0]}" for kind, ids in events]
    for n in (1, 2):
        assert order.index(f"acked ack{n}") < order.index(f"handled ack{n + 2}"), order


def test_publish_times_become_aware_utc_datetimes():
    subscriber = PullingSubscriber([[1]])
    seen = []

    def handler(batch):
        seen.extend(batch)
        return [Stored("a")]

    run_until(make(subscriber, handler), lambda: subscriber.acked)
    assert seen[0].publish_time.tzinfo == dt.UTC


def test_what_a_slow_batch_holds_is_leased_on_the_consumers_own_subscription():
    subscriber = PullingSubscriber([[1]])

    def slow(batch):
        time.sleep(0.8)  # the lease is extended every 0.5 s
        return [Stored(f"m {d.message_id}") for d in batch]

    loop = consumer(slow, subscriber=subscriber, shutdown=RecordingShutdown(), lease_seconds=1)
    run_until(loop, lambda: subscriber.acked == ["ack1"])
    assert ("ack1", 1) in subscriber.deadlines, "extended while the batch was being stored"
    assert ("deadline", SUBSCRIPTION, 1) in subscriber.requests
