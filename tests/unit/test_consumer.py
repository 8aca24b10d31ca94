"""The pull loop's bookkeeping with stand-in clients (pure logic): what is acked, delayed,
dead-lettered and counted for each outcome."""

import datetime as dt
from concurrent.futures import Future

from prometheus_client import generate_latest

from ecom_pipeline.consumer import Consumer, dead_letter_message
from ecom_pipeline.outcomes import DeadLetter, Delay, Delivery, Retry, Stored
from ecom_pipeline.settings import Settings
from ecom_pipeline.shutdown import Shutdown


class StandInPublisher:
    def __init__(self, fail=False):
        self.published = []
        self.fail = fail

    def topic_path(self, project, topic):
        return f"projects/{project}/topics/{topic}"

    def publish(self, topic, data, **attributes):
        future = Future()
        if self.fail:
            future.set_exception(RuntimeError("publish refused"))
        else:
            self.published.append((topic, data, attributes))
            future.set_result(str(len(self.published)))
        return future


class StandInSubscriber:
    def __init__(self):
        self.acked, self.deadlines = [], []

    def subscription_path(self, project, subscription):
        return f"projects/{project}/subscriptions/{subscription}"

    def acknowledge(self, subscription, ack_ids, **_):
        self.acked += ack_ids

    def modify_ack_deadline(self, subscription, ack_ids, ack_deadline_seconds, **_):
        self.deadlines += [(ack_id, ack_deadline_seconds) for ack_id in ack_ids]


def deliveries(count):
    moment = dt.datetime.now(dt.UTC)
    return [Delivery(f"ack{i}", f"id{i}", f"body{i}".encode(), {}, moment, 3) for i in range(count)]


def consumer(handler, publisher=None, subscriber=None, pulls=4):
    return Consumer(
        name="test consumer",
        settings=Settings.from_env({}),
        stream=Settings().orders,
        handler=handler,
        subscriber=subscriber or StandInSubscriber(),
        publisher=publisher or StandInPublisher(),
        shutdown=Shutdown(),
        pulls=pulls,
    )


def test_each_outcome_is_settled_as_it_must_be_and_counted():
    outcomes = [Stored("a"), DeadLetter("invalid:quantity", "bad", {"order_id": "7"}),
                Delay(30, "wait"), Retry(10, "down")]  # fmt: skip
    publisher, subscriber = StandInPublisher(), StandInSubscriber()
    loop = consumer(lambda batch: outcomes, publisher, subscriber)
    loop.process(deliveries(4))
    assert subscriber.acked == ["ack0", "ack1"]
    assert sorted(subscriber.deadlines) == [("ack2", 30), ("ack3", 10)]
    [(topic, body, attributes)] = publisher.published
    assert topic.endswith("/dlq_orders_data") and body == b"body1"
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
