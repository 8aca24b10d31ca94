"""The decisions of the two consumers, with a stand-in store (pure logic)."""

import datetime as dt
import json

import pytest
from cassandra import InvalidRequest, Unavailable

from ecom_pipeline import ingest
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


def test_order_wait_zero_dead_letters_at_once(frozen_clock):
    [outcome] = PaymentIngest(StandInStore(), order_wait=0)([at(PAYMENT, age=0)])
    assert outcome == DeadLetter(
        "order_not_found", "order 42 not found within 0s", {"order_id": "42"}
    )


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


# ---------------------------------------------------------------- exact times, on a frozen clock

NOW = dt.datetime(2024, 1, 21, 12, 0, tzinfo=dt.UTC)


class FrozenDatetime(dt.datetime):
    @classmethod
    def now(cls, tz=None):
        return NOW


@pytest.fixture
def frozen_clock(monkeypatch):
    """The handlers' clock stands at NOW."""
    monkeypatch.setattr(ingest.dt, "datetime", FrozenDatetime)


def at(message, age: float, attempt: int = 0) -> Delivery:
    """A delivery published `age` seconds before NOW."""
    return Delivery(
        "ack", "1", json.dumps(message).encode(), {}, NOW - dt.timedelta(seconds=age), attempt
    )


@pytest.mark.parametrize(
    ("age", "seconds"),
    [(0.001, 2.0), (1, 2.0), (4, 2.0), (10, 5.0), (50, 25.0), (100, 20.0), (119.5, 0.5)],
)
def test_a_waiting_payment_comes_back_after_half_its_age_between_2_s_and_the_wait_left(
    frozen_clock, age, seconds
):
    [outcome] = PaymentIngest(StandInStore(), order_wait=120)([at(PAYMENT, age)])
    assert outcome == Delay(
        seconds, f"order 42 not stored yet; waiting up to {120 - age:.0f}s more"
    )


def test_the_delay_grows_with_the_age_up_to_a_minute(frozen_clock):
    handler = PaymentIngest(StandInStore(), order_wait=3600)
    delays = [handler([at(PAYMENT, age)])[0].seconds for age in (10, 60, 119, 121, 1000)]
    assert delays == [5.0, 30.0, 59.5, 60.0, 60.0]


def test_the_grace_period_ends_on_the_second(frozen_clock):
    handler = PaymentIngest(StandInStore(), order_wait=120)
    assert isinstance(handler([at(PAYMENT, age=119.999)])[0], Delay)
    [outcome] = handler([at(PAYMENT, age=120)])
    assert outcome == DeadLetter(
        "order_not_found", "order 42 not found within 120s", {"order_id": "42"}
    )


def test_time_in_an_outage_is_taken_off_the_payments_age(frozen_clock):
    store = StandInStore()
    store.available_since = NOW - dt.timedelta(seconds=10)
    [outcome] = PaymentIngest(store, order_wait=120)([at(PAYMENT, age=300)])
    assert outcome == Delay(5.0, "order 42 not stored yet; waiting up to 110s more")


@pytest.mark.parametrize(("attempt", "seconds"), [(10, 15.0), (18, 46.0), (19, 91.0)])
def test_the_delays_left_are_spread_over_the_deliveries_left(frozen_clock, attempt, seconds):
    """Age 30 s of 120: 90 s are left; the grace ends before delivery 20, the limit."""
    handler = PaymentIngest(StandInStore(), order_wait=120, max_delivery_attempts=20)
    [outcome] = handler([at(PAYMENT, age=30, attempt=attempt)])
    assert outcome == Delay(seconds, "order 42 not stored yet; waiting up to 90s more")


def test_at_the_subscriptions_limit_the_payment_is_dead_lettered_with_its_order(frozen_clock):
    handler = PaymentIngest(StandInStore(), order_wait=120, max_delivery_attempts=20)
    for attempt in (20, 21):
        [outcome] = handler([at(PAYMENT, age=30, attempt=attempt)])
        assert outcome == DeadLetter(
            "order_not_found",
            f"order 42 not found after {attempt} deliveries, the subscription's limit",
            {"order_id": "42"},
        )


def test_without_a_subscription_limit_the_attempt_count_does_not_matter(frozen_clock):
    [outcome] = PaymentIngest(StandInStore(), order_wait=120)([at(PAYMENT, age=30, attempt=50)])
    assert outcome == Delay(15.0, "order 42 not stored yet; waiting up to 90s more")


def test_the_longest_order_wait_is_599_s_for_every_delivery_after_the_first():
    assert longest_order_wait(20) == 19 * 599
    PaymentIngest(StandInStore(), 19 * 599, max_delivery_attempts=20)
    with pytest.raises(OrderWaitTooLong) as refused:
        PaymentIngest(StandInStore(), 19 * 599 + 1, max_delivery_attempts=20)
    assert str(refused.value) == (
        "--order-wait 11382 cannot be kept: the subscription dead-letters after 20 deliveries "
        "and Pub/Sub delays a redelivery by 600 s at most, so a payment can wait 11381 s at "
        "most. Lower --order-wait or raise the subscription's max delivery attempts "
        "(setup_pubsub.sh)."
    )
    PaymentIngest(StandInStore(), 10**9, max_delivery_attempts=0)  # no limit: any wait


# ---------------------------------------------------------------- what a store failure becomes


def test_store_outages_are_retried_after_10_s_and_say_which_call_failed():
    orders = OrderIngest(StandInStore(fail_writes=True))([delivery(ORDER)])
    reads = PaymentIngest(StandInStore(fail_reads=True))([delivery(PAYMENT)])
    writes = PaymentIngest(StandInStore(existing=[42], fail_writes=True))([delivery(PAYMENT)])
    assert orders == [Retry(10.0, "Cassandra write failed: write timeout")]
    assert reads == [Retry(10.0, "Cassandra read failed: read timeout")]
    assert writes == [Retry(10.0, "Cassandra write failed: write timeout")]


def test_a_schema_fault_is_retried_after_10_s_with_the_fix_in_its_words():
    error = InvalidRequest("unconfigured table orders_payments_facts")
    [outcome] = PaymentIngest(StandInStore(fail_reads=error))([delivery(PAYMENT)])
    assert outcome == Retry(
        10.0,
        "set-up problem: unconfigured table orders_payments_facts; apply schema.cql "
        "(`make services` does) to put it back",
    )


def test_a_refused_value_is_dead_lettered_with_cassandras_words():
    error = InvalidRequest("Invalid UTF-8 bytes")
    orders = OrderIngest(StandInStore(fail_writes=error))([delivery(ORDER)])
    payments = PaymentIngest(StandInStore(existing=[42], fail_writes=error))([delivery(PAYMENT)])
    assert orders == [DeadLetter("unstorable", "Cassandra refused the write: Invalid UTF-8 bytes")]
    assert payments == [
        DeadLetter("unstorable", "Cassandra refused the write: Invalid UTF-8 bytes")
    ]


@pytest.mark.parametrize("short", ["upsert_orders", "existing_orders", "attach_payments"])
def test_a_store_that_loses_results_fails_the_batch_rather_than_settle_it(short):
    """No message may be acked for a write the store did not report on."""
    store = StandInStore(existing=[42])
    setattr(store, short, lambda *args: [])
    handler = OrderIngest(store) if short == "upsert_orders" else PaymentIngest(store)
    with pytest.raises(ValueError, match="zip"):
        handler([delivery(ORDER if short == "upsert_orders" else PAYMENT)])


# ---------------------------------------------------------------- invalid messages


def test_an_invalid_payment_is_dead_lettered_and_the_rest_of_its_batch_goes_on():
    store = StandInStore(existing=[42, 43])
    batch = [
        delivery({**PAYMENT, "card_last_four": "12345"}),
        delivery({**PAYMENT, "order_id": 43}),
    ]
    outcomes = PaymentIngest(store)(batch)
    assert outcomes == [
        DeadLetter(
            "invalid:card_last_four", "card_last_four: must be exactly four digits",
            {"order_id": "42"},
        ),
        Stored("payment 1042 -> order 43"),
    ]  # fmt: skip


def test_a_message_without_a_readable_order_id_has_no_order_id_attribute():
    [outcome] = OrderIngest(StandInStore())([delivery({**ORDER, "order_id": "42"})])
    assert outcome == DeadLetter(
        "invalid:order_id", "order_id: must be an integer, got a string", {}
    )


def test_an_order_id_that_is_a_card_number_never_reaches_the_dead_letters_attributes():
    """The order id attribute is read from the masked body, never from the original."""
    [outcome] = OrderIngest(StandInStore())([delivery({**ORDER, "order_id": 4111111111111111})])
    assert outcome.reason == "invalid:card_number"
    assert outcome.attributes == {}
    assert json.loads(outcome.body)["order_id"] == "************1111"
    assert outcome.error == (
        "card_number: $.order_id carries what looks like a full card number; every one was "
        "masked to its last four digits"
    )


def test_a_masked_body_keeps_its_readable_order_id():
    masked = {**PAYMENT, "payment_method": "Visa 4111 1111 1111 1111"}
    [outcome] = PaymentIngest(StandInStore())([delivery(masked)])
    assert outcome.reason == "invalid:card_number" and outcome.attributes == {"order_id": "42"}
