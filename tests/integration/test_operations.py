"""Operating the pipeline: status, re-drive, metrics and the live view, on the real services."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import signal
import socket
import subprocess
import sys
import time
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from tests.integration.pipeline import ROOT, Pipeline
from tests.integration.test_bad_input import order, payment
from tests.waiting import eventually


def run_operation(pipeline: Pipeline, *args: str, timeout: float = 120) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "ecom_pipeline", *args],
        env=pipeline.env(), cwd=ROOT, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout


def stats_of(role) -> dict[str, int]:
    found = re.findall(r"stored (\d+), dead-lettered (\d+)", role.output())
    stored, dead = found[-1] if found else (0, 0)
    return {"stored": int(stored), "dead_lettered": int(dead)}


def test_status_reports_exact_counts_and_leaves_the_dlqs_as_they_were(pipeline: Pipeline):
    orders = pipeline.start("order_data_consumer.py")
    payments = pipeline.start("ingest_in_fact_table.py", "--order-wait", "5")
    producer = pipeline.start(
        "order_data_producer.py", "--interval", "0", "--last-id", "20", "--count", "20"
    )
    assert producer.wait(timeout=60) == 0
    eventually(lambda: _equal(stats_of(orders)["stored"], 20), timeout=60)
    assert (
        pipeline.start("payments_data_producer.py", "--interval", "0", "--last-id", "50").wait(60)
        == 0
    )
    pipeline.publish("orders", order(61))  # no payment is ever published for these
    pipeline.publish("orders", order(62))
    pipeline.publish("orders", order(63, quantity=0))
    eventually(lambda: _equal(stats_of(payments), {"stored": 20, "dead_lettered": 30}), timeout=60)
    eventually(lambda: _equal(stats_of(orders), {"stored": 22, "dead_lettered": 1}), timeout=30)

    first = run_operation(pipeline, "status")
    assert "orders stored:           22" in first
    assert "orders paid:             20" in first
    assert re.search(r"orders awaiting payment: 2 +\(oldest: order 61, published ", first), first
    assert f"{pipeline.settings.payments.dlq_subscription}: 30 messages" in first
    assert re.search(r"\n +30 +order_not_found\n", first)
    assert f"{pipeline.settings.orders.dlq_subscription}: 1 messages" in first
    assert re.search(r"\n +1 +invalid:quantity\n", first)

    assert run_operation(pipeline, "status") == first, "status must not consume the DLQs"
    assert len(pipeline.dead_letters("payments")) == 30


def _equal(actual, expected) -> None:
    assert actual == expected


def test_redrive_attaches_payments_whose_order_arrived_later(pipeline: Pipeline):
    payments = pipeline.start("ingest_in_fact_table.py", "--order-wait", "0")
    for number in range(1, 41):
        pipeline.publish("payments", payment(number))
    eventually(lambda: _equal(stats_of(payments)["dead_lettered"], 40), timeout=60)
    pipeline.start("order_data_consumer.py")
    for number in range(1, 31):
        pipeline.publish("orders", order(number))
    eventually(lambda: _equal(len(pipeline.rows()), 30), timeout=60)

    dry = run_operation(pipeline, "redrive", "--dry-run")
    assert len(re.findall(r"^republish ", dry, re.M)) == 30
    assert len(re.findall(r"^keep ", dry, re.M)) == 10
    assert "would republish 30; left on the DLQ: 10 order_still_missing" in dry
    assert all(row["payment_id"] is None for row in pipeline.rows().values())

    done = run_operation(pipeline, "redrive")
    assert "republished 30; left on the DLQ: 10 order_still_missing" in done
    rows = eventually(lambda: _all_paid(pipeline, range(1, 31)), timeout=60)
    assert all(rows[n]["payment_id"] == n + 1000 for n in range(1, 31))
    left = pipeline.dead_letters("payments")
    assert sorted(json.loads(m.data)["order_id"] for m in left) == list(range(31, 41))


def _all_paid(pipeline: Pipeline, numbers) -> dict:
    rows = pipeline.rows()
    assert all(rows.get(n, {}).get("payment_id") for n in numbers)
    return rows


def test_an_interrupted_redrive_loses_nothing_when_run_again(pipeline: Pipeline):
    payments = pipeline.start("ingest_in_fact_table.py", "--order-wait", "0")
    numbers = range(1, 301)
    futures = [
        pipeline.publisher.publish(
            pipeline.topic_path(pipeline.settings.payments.topic), payment(n)
        )
        for n in numbers
    ]
    for future in futures:
        future.result(timeout=60)
    eventually(lambda: _equal(stats_of(payments)["dead_lettered"], 300), timeout=60)
    pipeline.start("order_data_consumer.py")
    futures = [
        pipeline.publisher.publish(pipeline.topic_path(pipeline.settings.orders.topic), order(n))
        for n in numbers
    ]
    for future in futures:
        future.result(timeout=60)
    eventually(lambda: _equal(len(pipeline.rows()), 300), timeout=60)

    log = pipeline.workdir / "redrive.log"
    with log.open("w") as out:
        interrupted = subprocess.Popen(
            [sys.executable, "-m", "ecom_pipeline", "redrive", "--batch-size", "20",
             "--log-level", "INFO"],
            env=pipeline.env(), cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    eventually(lambda: _assert_in("re-drove", log.read_text()), timeout=60, interval=0.01)
    interrupted.send_signal(signal.SIGKILL)
    interrupted.wait(timeout=30)
    assert "examined" not in log.read_text(), "the re-drive must have been cut short"

    # What the killed run held is leased to it for up to the subscription's ack
    # deadline (60 s); a user runs the re-drive again until the DLQ is empty.
    deadline = time.monotonic() + 120
    while True:
        run_operation(pipeline, "redrive")
        try:
            eventually(lambda: _all_paid(pipeline, numbers), timeout=10)
            break
        except AssertionError:
            if time.monotonic() > deadline:
                raise
    assert pipeline.dead_letters("payments", wait=5) == []


def _assert_in(needle: str, text: str) -> None:
    assert needle in text


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_metrics_endpoint_serves_prometheus_text_matching_the_counts(pipeline: Pipeline):
    port = _free_port()
    consumer = pipeline.start("order_data_consumer.py", "--metrics-port", str(port))
    for number in range(1, 6):
        pipeline.publish("orders", order(number))
    pipeline.publish("orders", order(6, quantity=0))
    pipeline.publish("orders", b"not json")
    eventually(lambda: _equal(stats_of(consumer), {"stored": 5, "dead_lettered": 2}), timeout=60)

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        assert response.headers["Content-Type"].startswith("text/plain")
        text = response.read().decode()
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    role = ("role", "order consumer")
    assert samples[("pipeline_messages_received_total", (role,))] == 7
    assert samples[("pipeline_messages_stored_total", (role,))] == 5
    assert (
        samples[("pipeline_messages_dead_lettered_total", (("reason", "invalid:quantity"), role))]
        == 1
    )
    assert (
        samples[("pipeline_messages_dead_lettered_total", (("reason", "invalid:message"), role))]
        == 1
    )
    assert samples[("pipeline_publish_to_stored_seconds_count", (role,))] == 5
    assert consumer.stop() == 0


def test_live_view_renders_in_a_terminal_and_falls_back_to_lines_when_piped(pipeline: Pipeline):
    env = {**pipeline.env(), "TERM": "xterm"}
    pid, terminal = pty.fork()
    if pid == 0:  # the child: the supervisor on a pseudo-terminal
        os.chdir(ROOT)
        os.execve(sys.executable, [sys.executable, "-m", "devtools.run_pipeline"], env)
    screen = _read_for(terminal, seconds=12)
    os.kill(pid, signal.SIGINT)
    screen += _read_for(terminal, seconds=15, until_closed=True)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert "\x1b[H\x1b[2J" in screen, "the view refreshes in place"
    last = screen.rsplit("\x1b[H\x1b[2J", 1)[1]
    for role in ("order-producer", "payment-producer", "order-consumer", "payment-consumer"):
        assert role in last
    assert "dead-letters" in last and "delayed" in last and "errors" in last
    assert re.search(r"order-consumer +(done|running) +[\d.]+ +\d+ +\d+", last), last

    piped = subprocess.Popen(
        [sys.executable, "-m", "devtools.run_pipeline"],
        env=pipeline.env(), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    time.sleep(8)
    piped.send_signal(signal.SIGINT)
    output, _ = piped.communicate(timeout=30)
    assert piped.returncode == 0
    assert "\x1b[" not in output
    assert re.search(r"^ +order-consumer \| .*order consumer: pulling from", output, re.M)
    assert re.search(r"^ +order-producer \| .*published order 1 as message", output, re.M)


def _read_for(fd: int, seconds: float, until_closed: bool = False) -> str:
    chunks = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                data = os.read(fd, 65536)
            except OSError:
                break
            if not data:
                break
            chunks.append(data.decode(errors="replace"))
        elif until_closed is False:
            continue
    return "".join(chunks)
