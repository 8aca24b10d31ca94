"""The four roles of the pipeline, each a function the top-level script calls."""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Iterator
from typing import TypeVar

from google.api_core import exceptions as google_errors
from google.cloud import pubsub_v1
from google.cloud.pubsub_v1.types import BatchSettings

from ecom_pipeline.cassandra_session import session_when_up
from ecom_pipeline.cli import SetupProblem
from ecom_pipeline.consumer import LEASE_SECONDS, Consumer
from ecom_pipeline.fact_store import FactStore
from ecom_pipeline.ingest import OrderIngest, OrderWaitTooLong, PaymentIngest
from ecom_pipeline.messages import mock_order, mock_payment
from ecom_pipeline.options import (
    CONSUMER,
    ORDER_PRODUCER,
    ORDER_WAIT,
    PAYMENT_PRODUCER,
    ConsumerOptions,
    ProducerOptions,
)
from ecom_pipeline.outcomes import Handler
from ecom_pipeline.producer import Producer, id_sequence
from ecom_pipeline.pubsub import SETUP_HINT, publisher_client, subscriber_client
from ecom_pipeline.settings import Settings, Stream
from ecom_pipeline.shutdown import Shutdown
from ecom_pipeline.startup import until_up
from ecom_pipeline.stats import Stats

logger = logging.getLogger(__name__)

CHECK_TIMEOUT = 15.0
# How long a role waits at start-up for Cassandra to accept its login and for Pub/Sub to
# answer, so that it can be started before they are up (docker compose, a reboot).
CONNECT_WAIT = 60.0
T = TypeVar("T")


def publish_orders(settings: Settings, options: ProducerOptions = ORDER_PRODUCER) -> int:
    """Mock orders, ids first..last cycling (forever unless `count`); exit code."""
    rng = random.Random(options.seed)
    return _publish(
        settings,
        options,
        name="order producer",
        kind="order",
        topic=settings.orders.topic,
        make_message=lambda order_id: mock_order(order_id, rng).to_json(),
        ids=id_sequence(options.first_id, options.last_id, options.count),
    )


def publish_payments(settings: Settings, options: ProducerOptions = PAYMENT_PRODUCER) -> int:
    """Mock payments for order ids first..last, once (or `count` in all); exit code."""
    rng = random.Random(options.seed)
    once = options.last_id - options.first_id + 1
    return _publish(
        settings,
        options,
        name="payment producer",
        kind="payment for order",
        topic=settings.payments.topic,
        make_message=lambda order_id: mock_payment(order_id, rng).to_json(),
        ids=id_sequence(options.first_id, options.last_id, options.count or once),
    )


def consume_orders(settings: Settings, options: ConsumerOptions = CONSUMER) -> int:
    """Store orders from orders_data-sub until stopped; exit code."""
    return _consume(
        settings,
        options,
        name="order consumer",
        stream=settings.orders,
        make_handler=lambda store, _max_attempts: OrderIngest(store),
    )


def consume_payments(
    settings: Settings,
    options: ConsumerOptions = CONSUMER,
    order_wait: float = ORDER_WAIT,
) -> int:
    """Attach payments from payments_data-sub to their orders until stopped; exit code."""
    return _consume(
        settings,
        options,
        name="payment consumer",
        stream=settings.payments,
        make_handler=lambda store, max_attempts: PaymentIngest(
            store, order_wait=order_wait, max_delivery_attempts=max_attempts
        ),
        before_start=lambda subscriber: _check_order_wait(settings, subscriber, order_wait),
    )


def _check_order_wait(settings: Settings, subscriber, order_wait: float) -> None:
    """Warn when the grace cannot cover a crashed order consumer's redelivery time."""
    path = subscriber.subscription_path(settings.project, settings.orders.subscription)
    try:
        deadline = subscriber.get_subscription(
            subscription=path, timeout=CHECK_TIMEOUT, retry=None
        ).ack_deadline_seconds
    except google_errors.GoogleAPICallError:
        return
    if 0 < order_wait < 3 * deadline:
        logger.warning(
            "--order-wait %gs is short: what a crashed order consumer held comes back only after "
            "%s's ack deadline (%d s) and must then be stored, so payments may be dead-lettered "
            "whose orders exist; at least %d s is safe",
            order_wait,
            settings.orders.subscription,
            deadline,
            3 * deadline,
        )


def _publish(
    settings: Settings,
    options: ProducerOptions,
    *,
    name: str,
    kind: str,
    topic: str,
    make_message: Callable[[int], bytes],
    ids: Iterator[int],
) -> int:
    shutdown = Shutdown().install()
    stats = _serving_metrics(name, options)
    publisher = publisher_client(
        settings, batch_settings=BatchSettings(max_latency=options.batch_window)
    )
    topic_path = publisher.topic_path(settings.project, topic)
    try:
        _check(
            lambda: publisher.get_topic(topic=topic_path, timeout=CHECK_TIMEOUT, retry=None),
            f"topic {topic_path}",
            settings,
        )
        producer = Producer(
            name=name,
            kind=kind,
            publisher=publisher,
            topic=topic_path,
            make_message=make_message,
            ids=ids,
            interval=options.interval,
            shutdown=shutdown,
            max_in_flight=options.max_in_flight,
            stats_interval=options.stats_interval,
            stats=stats,
        )
        lost = producer.run()
    finally:
        publisher.stop()
    return 1 if lost else 0


def _consume(
    settings: Settings,
    options: ConsumerOptions,
    *,
    name: str,
    stream: Stream,
    make_handler: Callable[[FactStore, int], Handler],
    before_start: Callable[[pubsub_v1.SubscriberClient], None] | None = None,
) -> int:
    shutdown = Shutdown().install()
    stats = _serving_metrics(name, options)
    logger.info("%s: starting with %r", name, settings)
    subscriber = subscriber_client(settings)
    publisher = publisher_client(settings)
    session = None
    try:
        subscription_path = subscriber.subscription_path(settings.project, stream.subscription)
        found = _check(
            lambda: subscriber.get_subscription(
                subscription=subscription_path, timeout=CHECK_TIMEOUT, retry=None
            ),
            f"subscription {subscription_path}",
            settings,
        )
        max_attempts = found.dead_letter_policy.max_delivery_attempts if found else 0
        if max_attempts:
            logger.info("%s: the subscription dead-letters after %d deliveries", name, max_attempts)
        if before_start is not None:
            before_start(subscriber)
        session = session_when_up(settings, timeout=CONNECT_WAIT)
        store = FactStore(
            session,
            settings,
            concurrency=options.concurrency,
            write_batch=options.write_batch,
            ttl=options.ttl or 0,
        )
        consumer = Consumer(
            name=name,
            settings=settings,
            stream=stream,
            handler=_handler(make_handler, store, max_attempts),
            lease_seconds=found.ack_deadline_seconds if found else LEASE_SECONDS,
            health_check=store.check,
            stats=stats,
            subscriber=subscriber,
            publisher=publisher,
            shutdown=shutdown,
            batch_size=options.batch_size,
            pulls=options.pulls,
            stats_interval=options.stats_interval,
        )
        consumer.run()
    finally:
        publisher.stop()
        subscriber.close()
        if session is not None:
            session.cluster.shutdown()
    return 0


def _serving_metrics(name: str, options: ProducerOptions | ConsumerOptions) -> Stats:
    """The role's counts, served on --metrics-addr:--metrics-port if a port is given."""
    stats = Stats(name)
    try:
        stats.serve(options.metrics_port, options.metrics_addr)
    except OSError as error:  # the port is taken, the address is not this host's, ...
        raise SetupProblem(
            f"cannot serve metrics on {options.metrics_addr} port {options.metrics_port}: "
            f"{error.strerror or error}; choose another --metrics-port or --metrics-addr"
        ) from None
    return stats


def _handler(
    make_handler: Callable[[FactStore, int], Handler], store: FactStore, max_attempts: int
) -> Handler:
    try:
        return make_handler(store, max_attempts)
    except OrderWaitTooLong as error:
        raise SetupProblem(str(error)) from None


def _check(
    call: Callable[[], T], what: str, settings: Settings, wait: float = CONNECT_WAIT
) -> T | None:
    """Fail early, in one sentence, when a resource is missing or Pub/Sub stays unreachable.

    Unreachable is waited for up to `wait` seconds, with one log line, as Cassandra is: the
    emulator or the network may come up after the role (docker compose, a reboot).
    """
    where = (
        f"the emulator at {settings.emulator_host}" if settings.emulator_host else "Google Cloud"
    )
    unreachable = (google_errors.ServiceUnavailable, google_errors.DeadlineExceeded)
    try:
        return until_up(
            call,
            wait,
            passing=lambda error: isinstance(error, unreachable),
            announce=lambda error: logger.warning(
                "waiting for Pub/Sub on %s: %s", where, error.message or str(error)
            ),
        )
    except google_errors.NotFound:
        raise SetupProblem(f"{what} does not exist on {where}: {SETUP_HINT}") from None
    except google_errors.PermissionDenied:
        logger.warning("cannot check that %s exists (no permission); going on", what)
        return None
    except unreachable as error:
        reason = error.message or str(error)
        raise SetupProblem(
            f"cannot reach Pub/Sub on {where} (waited {wait:g} s): {reason}"
        ) from None
    except google_errors.GoogleAPICallError as error:
        reason = error.message or str(error)
        raise SetupProblem(f"cannot reach Pub/Sub on {where}: {reason}") from None
