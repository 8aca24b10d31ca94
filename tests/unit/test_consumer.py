"""The pull loop's bookkeeping with stand-in clients (pure logic): what is acked, delayed,
dead-lettered, logged and counted for each outcome, and how a failing store is waited out."""

import datetime as dt
import logging
import threading
import time
from concurrent.futures import Future

import pytest
from google.api_core import exceptions as google_errors
from prometheus_client import generate_latest

from ecom_pipeline import consumer as consumer_module
from ecom_pipeline.consumer import Consumer, dead_letter_message
from ecom_pipeline.outcomes import DeadLetter, Delay, Delivery, Retry, Stored
from ecom_pipeline.settings import Settings
from ecom_pipeline.shutdown import Shutdown

SUBSCRIPTION = "projects/ecom-local/subscriptions/orders_data-sub"
DLQ_TOPIC = "projects/ecom-local/topics/dlq_orders_data"


class StandInPublisher:
    """Confirms each publish at once, or `fail`s it, or leaves it `pending`, or confirms it
    `later` (after that many seconds, from another thread)."""

    def __init__(self, fail=False, pending=False, later=0.0):
        self.published = []
        self.fail, self.pending, self.later = fail, pending, later
        self.events: list[tuple] = []

    def topic_path(self, project, topic):
        return f"projects/{project}/topics/{topic}"

    def publish(self, topic, data, **attributes):
        future = Future()
        if self.fail:
            future.set_exception(RuntimeError("publish refused"))
            return future
        self.published.append((topic, data, attributes))
        message_id = str(len(self.published))
        if self.later:

            def confirm():
                self.events.append(("confirmed", message_id))
                future.set_result(message_id)

            threading.Timer(self.later, confirm).start()
        elif not self.pending:
            future.set_result(message_id)
        return future


class StandInSubscriber:
    def __init__(self, events=None):
        self.acked, self.deadlines, self.requests = [], [], []
        self.events = [] if events is None else events

    def subscription_path(self, project, subscription):
        return f"projects/{project}/subscriptions/{subscription}"

    def acknowledge(self, subscription, ack_ids, **_):
        self.requests.append(("ack", subscription, len(ack_ids)))
        self.events.append(("acked", tuple(ack_ids)))
        self.acked += ack_ids

    def modify_ack_deadline(self, subscription, ack_ids, ack_deadline_seconds, **_):
        self.requests.append(("deadline", subscription, len(ack_ids)))
        self.deadlines += [(ack_id, ack_deadline_seconds) for ack_id in ack_ids]


class RecordingShutdown(Shutdown):
    """Records how long the loop backs off instead of sleeping."""

    def __init__(self):
        super().__init__()
        self.waits = []

    def wait(self, seconds):
        self.waits.append(seconds)
        return self.requested


def deliveries(count, age=0.0, **attributes):
    moment = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=age)
    return [
        Delivery(f"ack{i}", f"id{i}", f"body{i}".encode(), dict(attributes), moment, 3)
        for i in range(count)
    ]


def consumer(handler, publisher=None, subscriber=None, health_check=None, shutdown=None, **options):
    return Consumer(
        name="test consumer",
        settings=Settings.from_env({}),
        stream=Settings().orders,
        handler=handler,
        subscriber=subscriber or StandInSubscriber(),
        publisher=publisher or StandInPublisher(),
        shutdown=shutdown or RecordingShutdown(),
        health_check=health_check,
        **options,
    )


def messages(caplog, level=logging.DEBUG) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= level]


def test_each_outcome_is_settled_as_it_must_be_and_counted():
    outcomes = [Stored("a"), DeadLetter("invalid:quantity", "bad", {"order_id": "7"}),
                Delay(30, "wait"), Retry(10, "down")]  # fmt: skip
    publisher, subscriber = StandInPublisher(), StandInSubscriber()
    loop = consumer(lambda batch: outcomes, publisher, subscriber)
    loop.process(deliveries(4))
    assert subscriber.acked == ["ack0", "ack1"]
    assert sorted(subscriber.deadlines) == [("ack2", 30), ("ack3", 10)]
    assert {subscription for _, subscription, _ in subscriber.requests} == {SUBSCRIPTION}
    [(topic, body, attributes)] = publisher.published
    assert topic == DLQ_TOPIC and body == b"body1"
    assert attributes["reason"] == "invalid:quantity" and attributes["order_id"] == "7"
    assert attributes["original_message_id"] == "id1" and attributes["delivery_attempt"] == "3"
    assert attributes["source_subscription"] == "orders_data-sub"
    assert dict(loop.stats.counts) == {
        "received": 4, "stored": 1, "dead_lettered": 1, "dead_lettered:invalid:quantity": 1,
        "delayed": 1, "retried": 1,
    }  # fmt: skip
    metrics = generate_latest(loop.stats.registry).decode()
    assert 'pipeline_messages_received_total{role="test consumer"} 4.0' in metrics
    assert 'pipeline_messages_stored_total{role="test consumer"} 1.0' in metrics


def test_an_unconfirmed_dead_letter_is_not_acked():
    subscriber = StandInSubscriber()
    loop = consumer(lambda batch: [DeadLetter("x", "y")], StandInPublisher(fail=True), subscriber)
    loop.process(deliveries(1))
    assert subscriber.acked == []
    assert subscriber.deadlines == [("ack0", 5)]


def test_a_handler_that_raises_on_one_message_dead_letters_only_that_one():
    def handler(batch):
        if any(d.data == b"body1" for d in batch):
            if len(batch) == 1:
                raise ValueError("cannot handle this one")
            raise ValueError("batch failed")
        return [Stored("ok") for _ in batch]

    publisher, subscriber = StandInPublisher(), StandInSubscriber()
    consumer(handler, publisher, subscriber).process(deliveries(3))
    assert subscriber.acked == ["ack0", "ack1", "ack2"]
    [(_, body, attributes)] = publisher.published
    assert body == b"body1" and attributes["reason"] == "processing_error"
    assert "cannot handle this one" in attributes["error"]


def test_a_replacement_body_goes_to_the_dlq_instead_of_the_original():
    publisher = StandInPublisher()
    consumer(
        lambda b: [DeadLetter("invalid:card_number", "masked", body=b"***1111")], publisher
    ).process(deliveries(1))
    assert publisher.published[0][1] == b"***1111"


def test_attribute_values_are_clipped_to_pubsubs_1024_bytes():
    publisher = StandInPublisher()
    consumer(lambda b: [DeadLetter("r", "é" * 2000)], publisher).process(deliveries(1))
    assert len(publisher.published[0][2]["error"].encode()) <= 1024


def test_a_dead_letter_over_the_limit_keeps_the_first_mebibyte_and_says_so():
    big = Delivery(
        "ack", "m1", b"{" + b" " * (5 * 1024 * 1024) + b"}", {}, dt.datetime.now(dt.UTC), 1
    )
    body, attributes = dead_letter_message(big, DeadLetter("invalid:message", "too large"), "sub")
    assert body == big.data[: 1024 * 1024]
    assert attributes["body_truncated"] == f"{len(big.data)} bytes, the first 1048576 kept"


def test_a_body_that_still_holds_a_card_number_is_replaced_and_attributes_masked():
    moment = dt.datetime.now(dt.UTC)
    leaky = Delivery("ack", "m2", b'{"note": "4111 1111 1111 1111"}', {}, moment, 1)
    outcome = DeadLetter(
        "processing_error", "ValueError: bad 4111111111111111", {"k": "4111-1111-1111-1111"}
    )
    body, attributes = dead_letter_message(leaky, outcome, "sub")
    assert b"4111" not in body and "body_replaced" in attributes
    assert attributes["error"] == "ValueError: bad ************1111"
    assert attributes["k"] == "************1111"
    assert attributes["original_message_id"] == "m2"


def test_a_publish_refused_before_it_is_sent_becomes_a_retry_not_a_crash():
    class RefusingPublisher(StandInPublisher):
        def publish(self, topic, data, **attributes):
            raise ValueError("message too large")

    subscriber = StandInSubscriber()
    loop = consumer(
        lambda batch: [DeadLetter("x", "y"), Stored("a")], RefusingPublisher(), subscriber
    )
    loop.process(deliveries(2))
    assert subscriber.acked == ["ack1"]
    assert subscriber.deadlines == [("ack0", 5)]


def test_messages_in_hand_are_leased_until_settled_and_a_delay_is_never_undone():
    import time

    from ecom_pipeline.pubsub import Leases

    subscriber = StandInSubscriber()
    leases = Leases(subscriber, "projects/p/subscriptions/s", seconds=1).start()
    try:
        leases.hold(["held", "delayed"])
        time.sleep(1.2)
        assert ("held", 1) in subscriber.deadlines and ("delayed", 1) in subscriber.deadlines
        loop = consumer(lambda batch: [Delay(30, "wait")], subscriber=subscriber)
        loop.leases = leases
        moment = dt.datetime.now(dt.UTC)
        loop.process([Delivery("delayed", "id", b"{}", {}, moment, 1)])
        assert ("delayed", 30) in subscriber.deadlines
        subscriber.deadlines.clear()
        time.sleep(1.2)
        assert ("held", 1) in subscriber.deadlines
        assert all(ack_id != "delayed" for ack_id, _ in subscriber.deadlines)
    finally:
        leases.stop()


# ---------------------------------------------------------------- settling with Pub/Sub


def test_latency_and_store_retries_are_measured():
    loop = consumer(lambda batch: [Stored("a"), Retry(10, "down")])
    loop.process(deliveries(2, age=2))
    metrics = generate_latest(loop.stats.registry).decode()
    line = next(
        x for x in metrics.splitlines() if x.startswith("pipeline_publish_to_stored_seconds_sum")
    )
    assert 2 <= float(line.split()[-1]) < 3
    assert 'pipeline_errors_total{kind="store",role="test consumer"} 1.0' in metrics


def test_acks_and_deadlines_go_in_requests_of_at_most_1000_ids():
    subscriber = StandInSubscriber()
    consumer(lambda batch: [Stored("a")] * 2500, subscriber=subscriber).process(deliveries(2500))
    assert len(set(subscriber.acked)) == 2500
    assert [size for kind, _, size in subscriber.requests if kind == "ack"] == [1000, 1000, 500]


@pytest.mark.parametrize(
    ("seconds", "deadline"), [(0, 1), (0.4, 1), (2.5, 2), (90, 90), (10_000, 600)]
)
def test_a_delay_becomes_a_deadline_pubsub_takes_never_zero(seconds, deadline):
    subscriber = StandInSubscriber()
    consumer(lambda batch: [Delay(seconds, "wait")], subscriber=subscriber).process(deliveries(1))
    assert subscriber.deadlines == [("ack0", deadline)]


def test_dead_letters_are_acked_only_once_pubsub_confirmed_them():
    events = []
    publisher, subscriber = StandInPublisher(later=0.2), StandInSubscriber(events)
    publisher.events = events
    consumer(lambda batch: [DeadLetter("x", "y")] * 3, publisher, subscriber).process(deliveries(3))
    assert sorted(e for e in events if e[0] == "confirmed") == [
        ("confirmed", str(i)) for i in (1, 2, 3)
    ]
    assert events[-1] == ("acked", ("ack0", "ack1", "ack2"))


def test_a_dead_letter_pubsub_never_confirms_is_retried_after_the_timeout(monkeypatch, caplog):
    monkeypatch.setattr(consumer_module, "DEAD_LETTER_TIMEOUT", 0.2)
    subscriber = StandInSubscriber()
    loop = consumer(
        lambda b: [DeadLetter("x", "y")] * 3, StandInPublisher(pending=True), subscriber
    )
    started = time.monotonic()
    loop.process(deliveries(3))
    assert time.monotonic() - started < 1.5, "one wait for all, not one per letter"
    assert subscriber.acked == [] and sorted(subscriber.deadlines) == [
        (f"ack{i}", 5) for i in range(3)
    ]
    assert f"store outage: cannot publish to {DLQ_TOPIC}: TimeoutError; " in messages(caplog)[0]


def test_a_settlement_pubsub_refuses_is_logged_and_the_loop_goes_on(caplog):
    class RefusingSubscriber(StandInSubscriber):
        def __init__(self, error):
            super().__init__()
            self.error = error

        def acknowledge(self, subscription, ack_ids, **_):
            raise self.error

    for error, said in [
        (google_errors.ServiceUnavailable("boom"), "boom"),
        (RuntimeError("down"), "down"),
    ]:
        caplog.clear()
        consumer(lambda b: [Stored("a")], subscriber=RefusingSubscriber(error)).process(
            deliveries(1)
        )
        assert (
            f"test consumer: could not settle a batch with Pub/Sub ({said}); it will be redelivered"
            in messages(caplog, logging.WARNING)
        )


# ---------------------------------------------------------------- what is logged


def test_each_batch_is_logged_stored_delayed_and_message_by_message(caplog):
    caplog.set_level(logging.DEBUG, logger="ecom_pipeline.consumer")
    outcomes = [Stored(f"order {i}") for i in range(12)] + [Delay(30, "order 9 not stored yet")]
    consumer(lambda batch: outcomes).process(deliveries(13))
    logged = messages(caplog)
    shown = ", ".join(f"order {i}" for i in range(10))
    assert f"test consumer: stored 12: {shown} and 2 more" in logged
    assert "test consumer: delayed 1 (order 9 not stored yet)" in logged
    assert "test consumer: message id3 (delivery 3) -> Stored(what='order 3')" in logged
    assert (
        "test consumer: message id12 (delivery 3) -> "
        "Delay(seconds=30, why='order 9 not stored yet')" in logged
    )
    caplog.clear()
    consumer(lambda batch: [Stored(f"order {i}") for i in range(10)]).process(deliveries(10))
    assert f"test consumer: stored 10: {shown}" in messages(caplog)
    caplog.clear()
    consumer(lambda batch: [Stored(f"order {i}") for i in range(11)]).process(deliveries(11))
    assert f"test consumer: stored 11: {shown} and 1 more" in messages(caplog)


def test_a_handler_that_loses_outcomes_stops_the_loop_rather_than_leave_messages_unsettled():
    loop = consumer(lambda batch: [DeadLetter("x", "y")])
    with pytest.raises(ValueError, match="zip"):
        loop.process(deliveries(2))


def test_each_dead_letter_is_logged_with_its_order_and_no_card_number(caplog):
    outcomes = [
        DeadLetter("invalid:quantity", "quantity: bad", {"order_id": "7"}),
        DeadLetter("processing_error", "ValueError: 4111111111111111"),
    ]
    consumer(lambda batch: outcomes).process(deliveries(2))
    assert messages(caplog, logging.WARNING) == [
        "test consumer: dead-lettered message id0 (order 7) as 1: invalid:quantity (quantity: bad)",
        "test consumer: dead-lettered message id1 as 2: processing_error "
        "(ValueError: ************1111)",
    ]


def test_one_unconfirmed_dead_letter_does_not_hide_the_others(caplog):
    class FirstFails(StandInPublisher):
        def publish(self, topic, data, **attributes):
            if not self.published:
                self.published.append(None)
                raise ValueError("message too large")
            return super().publish(topic, data, **attributes)

    subscriber = StandInSubscriber()
    loop = consumer(lambda batch: [DeadLetter("x", "y")] * 2, FirstFails(), subscriber)
    loop.process(deliveries(2))
    assert subscriber.acked == ["ack1"] and subscriber.deadlines == [("ack0", 5)]
    warnings = messages(caplog, logging.WARNING)
    assert "test consumer: dead-lettered message id1 as 2: x (y)" in warnings
    assert warnings[-1].startswith(
        f"test consumer: store outage: cannot publish to {DLQ_TOPIC}: message too large; "
        "holding no message and pulling none until a write and a read succeed"
    )


# ---------------------------------------------------------------- a handler that raises


def test_a_handler_that_works_is_called_once_for_the_whole_batch(caplog):
    calls = []
    consumer(lambda batch: calls.append(list(batch)) or [Stored("a")] * 3).process(deliveries(3))
    assert [len(batch) for batch in calls] == [3]
    assert messages(caplog, logging.ERROR) == []


def test_a_batch_the_handler_fails_is_logged_and_its_error_kept_to_500_characters(caplog):
    def handler(batch):
        if len(batch) > 1:
            raise RuntimeError("batch")
        raise ValueError("x" * 1000)

    publisher = StandInPublisher()
    consumer(handler, publisher).process(deliveries(3))
    assert "test consumer: the handler failed on a batch of 3" in messages(caplog, logging.ERROR)
    errors = [attributes["error"] for _, _, attributes in publisher.published]
    assert errors == [("ValueError: " + "x" * 1000)[:500]] * 3


# ---------------------------------------------------------------- a failing store


def scripted_health_check(failures: int):
    calls = []

    def check():
        calls.append(time.monotonic())
        if len(calls) <= failures:
            raise ConnectionError(f"still down ({len(calls)})")

    return check, calls


def test_after_a_store_failure_the_loop_backs_off_and_probes_until_the_store_works(caplog):
    caplog.set_level(logging.DEBUG, logger="ecom_pipeline.consumer")
    check, calls = scripted_health_check(failures=3)
    shutdown = RecordingShutdown()
    loop = consumer(lambda b: [Retry(10, "write timeout")], health_check=check, shutdown=shutdown)
    loop.process(deliveries(1))
    assert len(calls) == 4, "probed until a probe passed"
    assert shutdown.waits == [0.5, 1.0, 2.0, 4.0], "growing back-off"
    assert messages(caplog, logging.ERROR) == [
        "test consumer: store outage: write timeout; holding no message and pulling none "
        "until a write and a read succeed; backing off and retrying until it works"
    ]
    assert "test consumer: still failing: store still unavailable: still down (3)" in messages(
        caplog
    )


@pytest.fixture
def far_from_utc(monkeypatch):
    """The machine's clock in UTC+14: a local time passed off as UTC shows."""
    monkeypatch.setenv("TZ", "Etc/GMT-14")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_the_back_off_is_capped_at_15_s_and_starts_again_after_a_recovery(caplog, far_from_utc):
    check, _ = scripted_health_check(failures=7)
    shutdown = RecordingShutdown()
    loop = consumer(lambda b: [Retry(10, "down")], health_check=check, shutdown=shutdown)
    started = dt.datetime.now(dt.UTC)
    loop.process(deliveries(1))
    assert shutdown.waits == [0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 15.0, 15.0]
    loop.handler = lambda batch: [Stored("a")]
    loop.process(deliveries(1))
    recovered = [m for m in messages(caplog, logging.WARNING) if "working again" in m]
    at = {f"{started + dt.timedelta(seconds=s):%H:%M:%S}" for s in (0, 1)}
    assert len(recovered) == 1 and any(
        recovered[0] == f"test consumer: working again: the outage that started at {t} UTC "
        "lasted 0s" for t in at
    ), recovered  # fmt: skip
    loop.handler = lambda batch: [Retry(10, "down")]
    loop.process(deliveries(1))
    assert shutdown.waits[-1] == 0.5
    assert len(messages(caplog, logging.ERROR)) == 2, "a new outage is logged as one"
    loop.handler = lambda batch: [Stored("a")]
    loop.process(deliveries(1))
    loop.process(deliveries(1))
    assert len([m for m in messages(caplog) if "working again" in m]) == 2


def test_the_stats_line_says_whether_the_consumer_is_failing(caplog):
    loop = consumer(lambda b: [Retry(10, "down")])
    loop.process(deliveries(1))
    loop.log_stats()
    loop.handler = lambda batch: [Stored("a")]
    loop.process(deliveries(1))
    loop.log_stats(final=True)
    lines = [r.stats for r in caplog.records if hasattr(r, "stats")]
    assert [(line["failing"], line["final"]) for line in lines] == [(True, False), (False, True)]


def test_without_a_health_check_a_store_failure_backs_off_once():
    shutdown = RecordingShutdown()
    consumer(lambda b: [Retry(10, "down")], shutdown=shutdown).process(deliveries(1))
    assert shutdown.waits == [0.5]


def test_a_stop_during_an_outage_ends_the_probing():
    calls = []
    shutdown = RecordingShutdown()

    def check():
        calls.append(1)
        shutdown.request()
        raise ConnectionError("down")

    consumer(lambda b: [Retry(10, "down")], health_check=check, shutdown=shutdown).process(
        deliveries(1)
    )
    assert calls == [1]


# ---------------------------------------------------------------- the dead letter itself


def test_a_dead_letter_carries_where_and_when_its_original_came_from():
    [original] = deliveries(1, redriven_from="dl-77")
    body, attributes = dead_letter_message(
        original, DeadLetter("order_not_found", "gone", {"order_id": "7"}), "payments_data-sub"
    )
    assert body == b"body0"
    assert attributes == {
        "reason": "order_not_found",
        "error": "gone",
        "source_subscription": "payments_data-sub",
        "original_message_id": "id0",
        "original_publish_time": original.publish_time.isoformat(),
        "delivery_attempt": "3",
        "order_id": "7",
        "redriven_from": "dl-77",
    }
    [plain] = deliveries(1)
    assert "redriven_from" not in dead_letter_message(plain, DeadLetter("r", "e"), "s")[1]


def test_pubsubs_own_ids_and_times_are_never_taken_for_card_numbers():
    """A real message id has 16-17 digits and a publish time's microseconds make a chain of
    13 or more: either passes the Luhn check one time in ten, and must reach the DLQ intact."""
    moment = dt.datetime(2026, 11, 26, 10, 5, 6, 978642, tzinfo=dt.UTC)  # Luhn-valid digits
    original = Delivery("a", "4111111111111111", b"{}", {}, moment, 1)
    _, attributes = dead_letter_message(original, DeadLetter("r", "e"), "s")
    assert attributes["original_message_id"] == "4111111111111111"
    assert attributes["original_publish_time"] == "2026-11-26T10:05:06.978642+00:00"
    spoofed = DeadLetter("r", "e", {"order_id": "4111111111111111"})
    assert dead_letter_message(original, spoofed, "s")[1]["order_id"] == "************1111"


def test_a_body_of_exactly_one_mebibyte_is_kept_whole():
    moment = dt.datetime.now(dt.UTC)
    body = b"{" + b" " * (1024 * 1024 - 2) + b"}"
    kept, attributes = dead_letter_message(
        Delivery("a", "m", body, {}, moment, 1), DeadLetter("invalid:message", "big"), "s"
    )
    assert kept == body and "body_truncated" not in attributes


def test_a_replaced_body_says_why():
    moment = dt.datetime.now(dt.UTC)
    leaky = Delivery("a", "m", b"4111 1111 1111 1111", {}, moment, 1)
    _, attributes = dead_letter_message(leaky, DeadLetter("processing_error", "bug"), "s")
    assert attributes["body_replaced"] == "it held what looks like a full card number"


@pytest.mark.parametrize(
    ("value", "sent"),
    [
        ("x" * 1024, "x" * 1024),
        ("x" * 1025, "x" * 1021 + "..."),
        ("é" * 512, "é" * 512),
        ("é" * 513, "é" * 510 + "..."),
        ("bad \ud800 value", "bad \ud800 value"),
        ("\ud800" + "x" * 2000, "?" + "x" * 1020 + "..."),
    ],
)
def test_attribute_values_are_clipped_to_1024_bytes_not_characters(value, sent):
    [original] = deliveries(1)
    _, attributes = dead_letter_message(original, DeadLetter("r", value), "s")
    assert attributes["error"] == sent
