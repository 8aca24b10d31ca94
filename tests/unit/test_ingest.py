"""The decisions of the two consumers, with a stand-in store (pure logic)."""

import datetime as dt
import json

from ecom_pipeline.ingest import OrderIngest, PaymentIngest
from ecom_pipeline.outcomes import DeadLetter, Delay, Delivery, Retry, Stored
from ecom_pipeline.producer import id_sequence
from tests.unit.test_messages import ORDER, PAYMENT


class StandInStore:
    def __init__(self, existing=(), fail_reads=False, fail_writes=False):
        self.existing = set(existing)
        self.fail_reads = fail_reads
        self.fail_writes = fail_writes
        self.orders, self.payments = [], []

    def upsert_orders(self, orders):
        self.orders += orders
        return [RuntimeError("write timeout") if self.fail_writes else None for _ in orders]

    def existing_orders(self, order_ids):
        if self.fail_reads:
            return [RuntimeError("read timeout") for _ in order_ids]
        return [order_id in self.existing for order_id in order_ids]

    def attach_payments(self, payments):
        self.payments += payments
        return [RuntimeError("write timeout") if self.fail_writes else None for _ in payments]


def delivery(message, age: float = 0.0) -> Delivery:
    data = message if isinstance(message, bytes) else json.dumps(message).encode()
    return Delivery(
        ack_id="ack",
        message_id="1",
        data=data,
        attributes={},
        publish_time=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=age),
        delivery_attempt=0,
    )


def test_orders_are_stored_and_invalid_ones_dead_lettered():
    store = StandInStore()
    outcomes = OrderIngest(store)([delivery(ORDER), delivery({**ORDER, "quantity": 0})])
    assert outcomes[0] == Stored("order 42")
    assert isinstance(outcomes[1], DeadLetter)
    assert outcomes[1].reason == "invalid:quantity"
    assert outcomes[1].attributes == {"order_id": "42"}
    assert [o.order_id for o in store.orders] == [42]


def test_a_failed_order_write_is_retried_never_dead_lettered():
    outcomes = OrderIngest(StandInStore(fail_writes=True))([delivery(ORDER)])
    assert isinstance(outcomes[0], Retry)


def test_a_payment_for_an_existing_order_is_attached():
    store = StandInStore(existing={42})
    assert PaymentIngest(store)([delivery(PAYMENT)]) == [Stored("payment 1042 -> order 42")]
    assert [p.payment_id for p in store.payments] == [1042]


def test_a_payment_ahead_of_its_order_is_delayed_within_the_grace_period():
    store = StandInStore()
    [outcome] = PaymentIngest(store, order_wait=120)([delivery(PAYMENT, age=10)])
    assert isinstance(outcome, Delay)
    assert 2 <= outcome.seconds <= 110
    assert store.payments == [], "a payment must never create a row"


def test_the_delay_never_runs_past_the_grace_period():
    [outcome] = PaymentIngest(StandInStore(), order_wait=120)([delivery(PAYMENT, age=119.5)])
    assert isinstance(outcome, Delay) and outcome.seconds <= 0.5


def test_after_the_grace_period_the_payment_is_dead_lettered_as_order_not_found():
    [outcome] = PaymentIngest(StandInStore(), order_wait=120)([delivery(PAYMENT, age=121)])
    assert outcome == DeadLetter(
        "order_not_found", "order 42 not found within 120s", {"order_id": "42"}
    )


def test_order_wait_zero_dead_letters_at_once():
    [outcome] = PaymentIngest(StandInStore(), order_wait=0)([delivery(PAYMENT)])
    assert isinstance(outcome, DeadLetter)


def test_a_cassandra_error_is_never_taken_for_a_missing_order():
    [outcome] = PaymentIngest(StandInStore(fail_reads=True), order_wait=0)([delivery(PAYMENT)])
    assert isinstance(outcome, Retry)
    assert "read timeout" in outcome.error


def test_id_sequence_cycles_and_stops_after_count():
    assert list(id_sequence(1, 3, 7)) == [1, 2, 3, 1, 2, 3, 1]
    forever = id_sequence(1, 2, None)
    assert [next(forever) for _ in range(5)] == [1, 2, 1, 2, 1]


def delivery_attempt(message, age: float, attempt: int) -> Delivery:
    base = delivery(message, age)
    return Delivery(**{**base.__dict__, "delivery_attempt": attempt})


def test_delays_are_spread_so_the_grace_period_ends_before_the_subscription_limit():
    ingest = PaymentIngest(StandInStore(), order_wait=120, max_delivery_attempts=20)
    [outcome] = ingest([delivery_attempt(PAYMENT, age=30, attempt=19)])
    assert isinstance(outcome, Delay)
    assert outcome.seconds >= 90, "the one delivery left must come after the grace period"


def test_the_last_delivery_the_subscription_allows_is_dead_lettered_by_us():
    ingest = PaymentIngest(StandInStore(), order_wait=120, max_delivery_attempts=20)
    [outcome] = ingest([delivery_attempt(PAYMENT, age=30, attempt=20)])
    assert isinstance(outcome, DeadLetter)
    assert outcome.reason == "order_not_found"
    assert "20 deliveries" in outcome.error


def test_a_card_number_is_dead_lettered_masked():
    outcomes = OrderIngest(StandInStore())(
        [delivery({**ORDER, "shipping_address": "4111 1111 1111 1111"})]
    )
    assert outcomes[0].reason == "invalid:card_number"
    assert b"4111 1111 1111 1111" not in outcomes[0].body
    assert "4111" not in outcomes[0].error
