"""`redrive` with stand-in clients (pure logic): it goes on until the DLQ is really drained."""

import datetime as dt
import json
from concurrent.futures import Future
from types import SimpleNamespace

from ecom_pipeline.operations import redrive
from ecom_pipeline.settings import Settings
from tests.unit.test_messages import PAYMENT

HOUR_AGO = (dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)).timestamp()


def dead_letter(order_id: int, reason: str = "order_not_found") -> SimpleNamespace:
    return SimpleNamespace(
        ack_id=f"ack-{order_id}",
        delivery_attempt=1,
        message=SimpleNamespace(
            message_id=f"m-{order_id}",
            data=json.dumps({**PAYMENT, "order_id": order_id}).encode(),
            attributes={"reason": reason},
            publish_time=SimpleNamespace(seconds=int(HOUR_AGO), nanos=0),
        ),
    )


class StandInSubscriber:
    """Answers each pull with the next list of `pulls`, then with nothing."""

    def __init__(self, pulls):
        self.pulls = list(pulls)
        self.acked, self.released = [], []

    def subscription_path(self, project, name):
        return f"projects/{project}/subscriptions/{name}"

    def pull(self, **_):
        batch = self.pulls.pop(0) if self.pulls else []
        return SimpleNamespace(_pb=SimpleNamespace(received_messages=batch))

    def acknowledge(self, subscription, ack_ids, **_):
        self.acked += ack_ids

    def modify_ack_deadline(self, subscription, ack_ids, ack_deadline_seconds, **_):
        if ack_deadline_seconds == 0:
            self.released += ack_ids


class StandInPublisher:
    def __init__(self):
        self.published = []

    def topic_path(self, project, name):
        return f"projects/{project}/topics/{name}"

    def publish(self, topic, data, **attributes):
        self.published.append(json.loads(data)["order_id"])
        future = Future()
        future.set_result("id")
        return future


class StandInStore:
    def __init__(self, existing):
        self.existing = set(existing)

    def existing_orders(self, order_ids):
        return [order_id in self.existing for order_id in order_ids]


def run(pulls, existing=(1, 2, 3, 4)):
    subscriber, publisher = StandInSubscriber(pulls), StandInPublisher()
    report = redrive(Settings(), subscriber, publisher, StandInStore(existing), batch_size=10)
    return report, subscriber, publisher


def test_pulls_that_bring_nothing_for_a_moment_do_not_end_the_redrive():
    pulls = [[], [dead_letter(1), dead_letter(2)], [], [dead_letter(3)]]
    report, subscriber, publisher = run(pulls)
    assert sorted(publisher.published) == [1, 2, 3]
    assert sorted(subscriber.acked) == ["ack-1", "ack-2", "ack-3"]
    assert report.republished == 3 and report.examined == 3


def test_dead_letters_it_keeps_are_released_and_counted_by_reason():
    pulls = [[dead_letter(1), dead_letter(9), dead_letter(4, reason="invalid:quantity")]]
    report, subscriber, publisher = run(pulls)
    assert publisher.published == [1]
    assert sorted(subscriber.released) == ["ack-4", "ack-9"]
    assert dict(report.left) == {"order_still_missing": 1, "invalid:quantity": 1}
