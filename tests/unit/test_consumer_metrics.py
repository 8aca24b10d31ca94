"""The consumer's operational metrics with stand-in clients: how far behind it is (the age of
the oldest message it pulled), how long it holds messages (pull to ack) and outages."""

import datetime as dt
import time

from google.api_core import exceptions as google_errors

from ecom_pipeline.consumer import Consumer
from ecom_pipeline.outcomes import DeadLetter, Delay, Delivery, Retry, Stored
from tests.unit.test_consumer import StandInSubscriber, consumer

ROLE = {"role": "test consumer"}


def make_consumer(handler, subscriber=None, pulls=4) -> Consumer:
    loop = consumer(handler, subscriber=subscriber)
    loop.pulls = pulls
    return loop


def metric(loop: Consumer, name: str) -> float | None:
    return loop.stats.registry.get_sample_value(name, ROLE)


def published(seconds_ago: float, index: int = 0, pulled_seconds_ago: float = 0.0) -> Delivery:
    return Delivery(
        f"ack{index}",
        f"id{index}",
        b"{}",
        {},
        dt.datetime.now(dt.UTC) - dt.timedelta(seconds=seconds_ago),
        1,
        pulled_at=time.monotonic() - pulled_seconds_ago,
    )


def test_the_oldest_pulled_message_age_shows_how_far_behind_the_consumer_is():
    loop = make_consumer(lambda batch: [Stored("x") for _ in batch])
    loop.process([published(5, 0), published(90, 1), published(30, 2)])
    assert 89 <= metric(loop, "pipeline_oldest_pulled_message_age_seconds") <= 92


def test_a_pull_that_brings_nothing_means_the_consumer_has_caught_up():
    loop = make_consumer(lambda batch: [Stored("x") for _ in batch])
    loop.process([published(600)])
    assert metric(loop, "pipeline_oldest_pulled_message_age_seconds") >= 599

    def empty_pull():
        loop.shutdown.request()
        return []

    loop.pull = empty_pull
    loop.run()
    assert metric(loop, "pipeline_oldest_pulled_message_age_seconds") == 0
    assert metric(loop, "pipeline_failing") == 0, "nothing failed"


def test_pull_to_ack_time_is_observed_once_pubsub_confirmed_the_ack():
    outcomes = [Stored("a"), DeadLetter("invalid:item", "bad"), Delay(30, "wait"), Retry(10, "x")]
    loop = make_consumer(lambda batch: outcomes)
    loop.process([published(1, i, pulled_seconds_ago=2.0) for i in range(4)])
    # The row and the dead letter were acked; the delayed and retried messages were not.
    assert metric(loop, "pipeline_pull_to_ack_seconds_count") == 2
    assert 4.0 <= metric(loop, "pipeline_pull_to_ack_seconds_sum") <= 5.0
    held = loop.stats.registry.get_sample_value(
        "pipeline_pull_to_ack_seconds_bucket", {**ROLE, "le": "2.5"}
    )
    assert held == 2


def test_pull_to_ack_time_is_observed_for_acks_sent_in_the_background():
    loop = make_consumer(lambda batch: [Stored("a") for _ in batch], pulls=1)
    pulls = iter([[published(1, i, pulled_seconds_ago=2.0) for i in range(3)]])

    def one_pull():
        batch = next(pulls, [])
        if not batch:
            loop.shutdown.request()
        return batch

    loop.pull = one_pull
    loop.run()
    assert metric(loop, "pipeline_pull_to_ack_seconds_count") == 3
    assert metric(loop, "pipeline_pull_to_ack_seconds_sum") >= 6.0


def test_an_ack_pubsub_did_not_confirm_is_not_counted_as_acked():
    class FailingAcks(StandInSubscriber):
        def acknowledge(self, subscription, ack_ids, **_):
            raise google_errors.ServiceUnavailable("no")

    loop = make_consumer(lambda batch: [Stored("a") for _ in batch], FailingAcks())
    loop.process([published(1)])
    assert not metric(loop, "pipeline_pull_to_ack_seconds_count")


def test_failing_is_1_during_an_outage_and_0_once_it_is_over():
    seen_during_outage = []
    pulls = iter([google_errors.ServiceUnavailable("Pub/Sub is down"), []])
    loop = make_consumer(lambda batch: [], pulls=1)

    def scripted_pull():
        result = next(pulls)
        if isinstance(result, Exception):
            raise result
        seen_during_outage.append(metric(loop, "pipeline_failing"))
        loop.shutdown.request()
        return result

    loop.pull = scripted_pull
    loop.run()
    assert seen_during_outage == [1]
    assert metric(loop, "pipeline_failing") == 0
