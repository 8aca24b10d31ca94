"""The reference consumers, reproduced on purpose as the benchmark's baseline.

This is the design users would otherwise run (the original scripts of this
pipeline's design), kept faithful, neither weakened nor improved; it is not how to
consume (see ecom_pipeline/). Both loop on a synchronous pull of at most 10 messages, handle the
messages one after another, then acknowledge them with one request; nothing runs
concurrently and a JSON error crashes the script. Two print lines per message.

- orders: one synchronous execute per message of a prepared INSERT of all 13
  columns, the 5 payment columns as NULL;
- payments: an unprepared SELECT built with an f-string, then, if the order is
  there, an unprepared UPDATE with parameters, otherwise a publish of the body to
  the DLQ topic whose future is never awaited.

Only for the benchmark: Cassandra's host, port and keyspace and the Pub/Sub names
come from the environment (CASSANDRA_HOSTS, CASSANDRA_PORT, CASSANDRA_KEYSPACE,
PUBSUB_EMULATOR_HOST, ORDERS_SUBSCRIPTION, ...; defaults 127.0.0.1, 9042,
ecom_store), and stdout is line-buffered even into a file, as on the terminal the
scripts print to. Stop it with Ctrl+C or SIGTERM.

example: CASSANDRA_KEYSPACE=ecom_bench python -m bench.reference_consumers orders
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from cassandra.auth import PlainTextAuthProvider
from cassandra.cluster import Cluster, Session
from google.cloud import pubsub_v1

from ecom_pipeline.settings import Settings

INSERT_ORDER = (
    "INSERT INTO orders_payments_facts (order_id, customer_id, item, quantity, price, "
    "shipping_address, order_status, creation_date, payment_id, payment_method, "
    "card_last_four, payment_status, payment_datetime) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
UPDATE_PAYMENT = (
    "UPDATE orders_payments_facts SET payment_id = %s, payment_method = %s, "
    "card_last_four = %s, payment_status = %s, payment_datetime = %s WHERE order_id = %s"
)


def connect(settings: Settings) -> Session:
    """As the reference: Cluster(['127.0.0.1'], port=9042, auth_provider=...).connect(keyspace)."""
    cluster = Cluster(
        list(settings.cassandra_hosts),
        port=settings.cassandra_port,
        auth_provider=PlainTextAuthProvider(
            settings.cassandra_username, settings.cassandra_password
        ),
    )
    return cluster.connect(settings.cassandra_keyspace)


def consume_orders(settings: Settings) -> None:
    session = connect(settings)
    insert = session.prepare(INSERT_ORDER)
    subscriber = pubsub_v1.SubscriberClient()
    subscription = subscriber.subscription_path(settings.project, settings.orders.subscription)
    print(f"Listening for orders on {subscription}")
    while True:
        response = subscriber.pull(request={"subscription": subscription, "max_messages": 10})
        ack_ids = []
        for received in response.received_messages:
            order = json.loads(received.message.data.decode("utf-8"))
            print(f"Received order: {order}")
            session.execute(
                insert,
                (
                    order["order_id"],
                    order["customer_id"],
                    order["item"],
                    order["quantity"],
                    order["price"],
                    order["shipping_address"],
                    order["order_status"],
                    order["creation_date"],
                    None,
                    None,
                    None,
                    None,
                    None,
                ),
            )
            print(f"Inserted order {order['order_id']} into orders_payments_facts")
            ack_ids.append(received.ack_id)
        if ack_ids:
            subscriber.acknowledge(request={"subscription": subscription, "ack_ids": ack_ids})


def consume_payments(settings: Settings) -> None:
    session = connect(settings)
    subscriber = pubsub_v1.SubscriberClient()
    publisher = pubsub_v1.PublisherClient()
    subscription = subscriber.subscription_path(settings.project, settings.payments.subscription)
    dlq_topic = publisher.topic_path(settings.project, settings.payments.dlq_topic)
    print(f"Listening for payments on {subscription}")
    while True:
        response = subscriber.pull(request={"subscription": subscription, "max_messages": 10})
        ack_ids = []
        for received in response.received_messages:
            body = received.message.data
            payment = json.loads(body.decode("utf-8"))
            print(f"Received payment: {payment}")
            order_id = payment["order_id"]
            rows = session.execute(
                f"SELECT order_id FROM orders_payments_facts WHERE order_id = {order_id}"  # noqa: S608
            )
            if rows.one() is not None:
                session.execute(
                    UPDATE_PAYMENT,
                    (
                        payment["payment_id"],
                        payment["payment_method"],
                        payment["card_last_four"],
                        payment["payment_status"],
                        payment["payment_datetime"],
                        order_id,
                    ),
                )
                print(f"Updated order {order_id} with payment {payment['payment_id']}")
            else:
                publisher.publish(dlq_topic, data=body)
                print(f"Order {order_id} not found, payment sent to {dlq_topic}")
            ack_ids.append(received.ack_id)
        if ack_ids:
            subscriber.acknowledge(request={"subscription": subscription, "ack_ids": ack_ids})


CONSUMERS = {"orders": consume_orders, "payments": consume_payments}
# The second print of every message, which the benchmark counts as one message handled.
HANDLED_LINE = ("Inserted order ", "Updated order ", "Order ")
READY_LINE = "Listening for "


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.reference_consumers",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("consumer", choices=sorted(CONSUMERS))
    args = parser.parse_args(argv)
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    settings = Settings.from_env()
    if settings.emulator_host:  # the Google clients find the emulator through this variable
        os.environ["PUBSUB_EMULATOR_HOST"] = settings.emulator_host
    CONSUMERS[args.consumer](settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
