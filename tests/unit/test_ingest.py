"""The decisions of the two consumers, with a stand-in store (pure logic)."""

import datetime as dt
import json

import pytest
from cassandra import InvalidRequest, Unavailable

from ecom_pipeline.ingest import OrderIngest, OrderWaitTooLong, PaymentIngest, longest_order_wait
from ecom_pipeline.outcomes import DeadLetter, Delay, Delivery, Retry, Stored
from ecom_pipeline.producer import id_sequence
from tests.unit.test_messages import ORDER, PAYMENT


class StandInStore:
    def __init__(self, existing=(), fail_reads=None, fail_writes=None):
        self.existing = set(existing)
        self.fail_reads = RuntimeError("read timeout") if fail_reads is True else fail_reads
        self.fail_writes = RuntimeError("write timeout") if fail_writes is True else fail_writes
        self.orders, self.payments, self.timestamps = [], [], []
        self.available_since = None

    def upsert_orders(self, orders, timestamps):
        self.orders += orders
        self.timestamps += timestamps
        return [self.fail_writes for _ in orders]

    def existing_orders(self, order_ids):
        if self.fail_reads:
            return [self.fail_reads for _ in order_ids]
        return [order_id in self.existing for order_id in order_ids]

    def attach_payments(self, payments, timestamps):
        self.payments += payments
        self.timestamps += timestamps
        return [self.fail_writes for _ in payments]


def delivery(message, age: float = 0.0, attempt: int = 0, message_id: str = "1") -> Delivery:
    data = message if isinstance(message, bytes) else json.dumps(message).encode()
    return Delivery(
        ack_id="ack",
        message_id=message_id,
        data=data,
        attributes={},
        publish_time=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=age),
        delivery_attempt=attempt,
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


def test_each_write_carries_its_messages_publish_time():
    store = StandInStore(existing=[42])
    newer, older = delivery(ORDER, age=1, message_id="7"), delivery(ORDER, age=60, message_id="8")
    OrderIngest(store)([newer, older])
    PaymentIngest(store)([delivery(PAYMENT, age=30)])
    assert store.timestamps[0] == newer.write_timestamp
    assert store.timestamps[1] == older.write_timestamp
    assert store.timestamps[0] > store.timestamps[2] > store.timestamps[1]


@pytest.mark.parametrize(
    "error",
    [
        InvalidRequest('code=2200 [Invalid query] message="table t does not exist"'),
        InvalidRequest("Keyspace 'ecom_store' does not exist"),
        InvalidRequest("Undefined column name payment_note"),
        Unavailable("Cannot achieve consistency level LOCAL_QUORUM"),
    ],
)
def test_schema_faults_and_outages_are_retried_never_dead_lettered(error):
    orders = OrderIngest(StandInStore(fail_writes=error))([delivery(ORDER)])
    reads = PaymentIngest(StandInStore(fail_reads=error))([delivery(PAYMENT)])
    writes = PaymentIngest(StandInStore(existing=[42], fail_writes=error))([delivery(PAYMENT)])
    for [outcome] in (orders, reads, writes):
        assert isinstance(outcome, Retry), outcome


def test_a_schema_fault_says_what_to_do():
    error = InvalidRequest('message="table orders_payments_facts does not exist"')
    [outcome] = OrderIngest(StandInStore(fail_writes=error))([delivery(ORDER)])
    assert "set-up problem" in outcome.error and "schema.cql" in outcome.error


def test_a_value_cassandra_refuses_is_dead_lettered_as_unstorable():
    error = InvalidRequest("Invalid UTF-8 bytes")
    [outcome] = OrderIngest(StandInStore(fail_writes=error))([delivery(ORDER)])
    assert isinstance(outcome, DeadLetter) and outcome.reason == "unstorable"


def test_time_in_an_outage_does_not_count_against_the_grace_period():
    store = StandInStore()
    store.available_since = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5)
    [outcome] = PaymentIngest(store, order_wait=120)([delivery(PAYMENT, age=300)])
    assert isinstance(outcome, Delay)
    store.available_since -= dt.timedelta(seconds=120)
    [outcome] = PaymentIngest(store, order_wait=120)([delivery(PAYMENT, age=300)])
    assert isinstance(outcome, DeadLetter) and outcome.reason == "order_not_found"


@pytest.mark.parametrize("max_attempts", [5, 20])
def test_the_longest_order_wait_allowed_is_kept_to_the_end(max_attempts):
    """Redeliver as Pub/Sub would (at most 600 s later) until our own dead letter:
    with the longest grace allowed, it comes only once the grace is over."""
    order_wait = longest_order_wait(max_attempts)
    handler = PaymentIngest(StandInStore(), order_wait, max_delivery_attempts=max_attempts)
    age, attempt = 0.0, 1
    while True:
        [outcome] = handler([delivery(PAYMENT, age=age, attempt=attempt)])
        if not isinstance(outcome, Delay):
            break
        assert attempt < max_attempts, "Pub/Sub's policy would forward it first"
        age += min(max(round(outcome.seconds), 1), 600)
        attempt += 1
    assert outcome.reason == "order_not_found"
    assert age >= order_wait


def test_an_order_wait_the_subscription_cannot_keep_is_refused():
    PaymentIngest(StandInStore(), longest_order_wait(20), max_delivery_attempts=20)
    with pytest.raises(OrderWaitTooLong, match=r"--order-wait 11400 cannot be kept.*20 deliveries"):
        PaymentIngest(StandInStore(), 11_400, max_delivery_attempts=20)
