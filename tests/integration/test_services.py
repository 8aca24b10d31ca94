"""The two real services the pipeline is built on: Cassandra 5.0 and the Pub/Sub emulator."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import random
import subprocess
import uuid

import pytest

from devtools import cassandra_node
from ecom_pipeline.cassandra_session import CassandraUnavailable, open_session
from ecom_pipeline.consumer import dead_letter_message
from ecom_pipeline.fact_store import FactStore
from ecom_pipeline.messages import mock_order
from ecom_pipeline.outcomes import DeadLetter, Delivery, Reason
from tests.integration.conftest import Services, run_setup_pubsub
from tests.waiting import eventually

SPEC_COLUMNS = {
    "order_id": "bigint",
    "customer_id": "bigint",
    "item": "text",
    "quantity": "bigint",
    "price": "double",
    "shipping_address": "text",
    "order_status": "text",
    "creation_date": "text",
    "payment_id": "bigint",
    "payment_method": "text",
    "card_last_four": "text",
    "payment_status": "text",
    "payment_datetime": "text",
}

TOPICS = {
    "orders_data": "orders_data-sub",
    "payments_data": "payments_data-sub",
    "dlq_payments_data": "dlq_payments_data-sub",
}


def test_cassandra_reports_release_5_0(cassandra):
    release = cassandra.execute("SELECT release_version FROM system.local").one().release_version
    assert release.startswith("5.0."), release


def test_admin_logs_in_and_a_wrong_password_is_refused_clearly(settings):
    session = open_session(settings)
    assert session.execute("SELECT key FROM system.local").one().key == "local"
    session.cluster.shutdown()

    with pytest.raises(CassandraUnavailable) as refused:
        open_session(settings.replace(cassandra_password="not-the-password"))
    assert refused.value.login_refused
    assert "refused the login of user 'admin'" in str(refused.value)
    assert "CASSANDRA_PASSWORD" in str(refused.value)


def test_the_well_known_default_superuser_is_gone(settings):
    with pytest.raises(CassandraUnavailable) as refused:
        open_session(settings, username="cassandra", password="cassandra")
    assert refused.value.login_refused


def test_fact_table_has_the_spec_columns_and_types(cassandra, settings):
    columns_of = cassandra.prepare(
        "SELECT column_name, type, kind FROM system_schema.columns "
        "WHERE keyspace_name = ? AND table_name = ?"
    )
    rows = cassandra.execute(columns_of, (settings.cassandra_keyspace, "orders_payments_facts"))
    columns = {row.column_name: (row.type, row.kind) for row in rows}
    assert {name: type_ for name, (type_, _) in columns.items()} == SPEC_COLUMNS
    assert columns["order_id"][1] == "partition_key"


def test_setup_pubsub_is_idempotent_and_creates_every_topic_and_subscription(
    services: Services, publisher, subscriber
):
    for _ in range(2):
        result = run_setup_pubsub(services)
        assert result.returncode == 0, result.stderr

    project = services.settings.project
    topics = {
        t.name.rsplit("/", 1)[1] for t in publisher.list_topics(project=f"projects/{project}")
    }
    assert set(TOPICS) <= topics
    for topic, subscription in TOPICS.items():
        found = subscriber.get_subscription(
            subscription=subscriber.subscription_path(project, subscription)
        )
        assert found.topic == publisher.topic_path(project, topic)
        assert found.ack_deadline_seconds == 10


def test_dead_letter_is_read_back_with_gcloud(services: Services, publisher):
    """What people do to inspect the DLQ (gcloud ... pull dlq_payments_data-sub --auto-ack)
    shows a dead letter as the consumer publishes it: its body and every attribute."""
    project = services.settings.project
    body = json.dumps({"payment_id": 1999, "order_id": 999, "marker": uuid.uuid4().hex})
    original = Delivery(
        "ack", "1234567", body.encode(), {"redriven_from": "7654321"},
        dt.datetime(2024, 1, 21, 12, 1, 30, 123456, tzinfo=dt.UTC), 3,
    )  # fmt: skip
    letter = DeadLetter(
        Reason.ORDER_NOT_FOUND, "order 999 not found within 120s", {"order_id": "999"}
    )
    data, attributes = dead_letter_message(original, letter, "payments_data-sub")
    publisher.publish(
        publisher.topic_path(project, "dlq_payments_data"), data, **attributes
    ).result(timeout=30)

    def pulled_by_gcloud() -> dict:
        result = subprocess.run(
            ["gcloud", "pubsub", "subscriptions", "pull", "dlq_payments_data-sub",
             "--auto-ack", "--limit=100", "--format=json", f"--project={project}"],
            env=services.pubsub_env(), capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        messages = [entry["message"] for entry in json.loads(result.stdout or "[]")]
        ours = [m for m in messages if _decoded(m["data"]) == body]
        assert ours, f"not among {len(messages)} pulled messages"
        return ours[0]

    message = eventually(pulled_by_gcloud, timeout=60)
    assert message["attributes"] == {
        "reason": "order_not_found",
        "error": "order 999 not found within 120s",
        "order_id": "999",
        "source_subscription": "payments_data-sub",
        "original_message_id": "1234567",
        "original_publish_time": "2024-01-21T12:01:30.123456+00:00",
        "delivery_attempt": "3",
        "redriven_from": "7654321",
    }


def _decoded(data: str) -> str:
    import base64

    return base64.b64decode(data).decode()


@pytest.mark.restarts_services
def test_a_row_survives_a_stop_and_start_of_cassandra(services: Services, cassandra, settings):
    """What the order consumer wrote is still there after Cassandra stops and starts again,
    and the store's own session reads it back once it has reconnected."""
    store = FactStore(cassandra, settings)
    order = dataclasses.replace(
        mock_order(uuid.uuid4().int % 10**12, random.Random(3)), item="Laptop", price=999.99
    )
    assert store.upsert_orders([order], [1_000]) == [None]

    services.stop_cassandra()
    if services.mode == "local":
        assert cassandra_node.CASSANDRA.pid() is None
        assert not live_processes_with("org.apache.cassandra.service.CassandraDaemon")
    services.start_cassandra()

    def row_is_back():
        [found] = store.existing_orders([order.order_id])
        assert found is True, f"not readable yet: {found}"
        return next(row for row in store.scan() if row.order_id == order.order_id)

    row = eventually(row_is_back, timeout=90)
    assert (row.item, row.price, row.order_written) == ("Laptop", 999.99, 1_000)


def live_processes_with(marker: str) -> list[int]:
    pids = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/cmdline", "rb") as f:
                cmdline = f.read()
            with open(f"/proc/{entry.name}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if marker.encode() in cmdline and state != "Z":
            pids.append(int(entry.name))
    return pids
