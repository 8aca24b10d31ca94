"""The chaos run's schedule and workload: made from a seed alone, and printed."""

from __future__ import annotations

import itertools
import json
from collections import Counter

import pytest

from chaos.__main__ import main
from chaos.schedule import COMPRESSED, FULL, NETWORK_FAULTS, describe, make_schedule
from chaos.workload import Workload
from ecom_pipeline.messages import parse_order


def test_the_same_seed_gives_the_same_schedule_and_another_seed_another():
    first = make_schedule(7, 600, 300, compressed=False)
    assert make_schedule(7, 600, 300, compressed=False) == first
    assert make_schedule(8, 600, 300, compressed=False) != first
    assert describe(7, first) == describe(7, make_schedule(7, 600, 300, compressed=False))


def test_every_fault_kind_is_in_the_schedule_in_time_order():
    faults = make_schedule(3, 600, 300, compressed=False)
    assert [f.at for f in faults] == sorted(f.at for f in faults)
    kinds = {f.kind for f in faults}
    assert kinds == {
        "kill_consumer",
        "kill_node",
        "stop_two_nodes",
        "latency",
        "reset",
        "bandwidth",
        "timeout",
        "restart_emulator",
    }
    network = [f for f in faults if f.kind in ("latency", "reset", "bandwidth", "timeout")]
    assert {(f.kind, f.target) for f in network} == {
        (kind, service)
        for kind in ("latency", "reset", "bandwidth", "timeout")
        for service in ("pubsub", "cassandra")
    }
    assert all(f.amount > 0 for f in network if f.kind != "reset")
    counts = Counter((f.kind, f.target) for f in network)
    assert {kind: counts[kind, "cassandra"] for kind in NETWORK_FAULTS} == NETWORK_FAULTS
    assert {kind: counts[kind, "pubsub"] for kind in NETWORK_FAULTS} == NETWORK_FAULTS
    kills = [f for f in faults if f.kind == "kill_consumer"]
    assert all(b.at - a.at == FULL.kill_every for a, b in itertools.pairwise(kills))
    (emulator,) = [f for f in faults if f.kind == "restart_emulator"]
    assert emulator.at < 300  # while orders are published, before any payment
    (one,) = [f for f in faults if f.kind == "kill_node"]
    (two,) = [f for f in faults if f.kind == "stop_two_nodes"]
    assert one.duration == 60 and two.duration == 30
    assert one.at + one.duration < two.at, "node faults never overlap"


def test_the_compressed_schedule_has_the_same_kinds_in_less_time():
    full = make_schedule(5, 120, 60, compressed=False)
    short = make_schedule(5, 120, 60, compressed=True)
    assert {f.kind for f in short} == {f.kind for f in full}
    assert max(f.at for f in short) <= max(f.at for f in full)
    assert [f.duration for f in short if f.kind == "kill_node"] == [COMPRESSED.node_down]


def test_the_schedule_is_printed(capsys):
    assert main(["--schedule-only", "--orders", "1000", "--seed", "9", "--compressed"]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("fault schedule (seed 9, ")
    assert "SIGKILL consumer" in printed and "restart the emulator" in printed
    assert main(["--schedule-only", "--orders", "1000", "--seed", "9", "--compressed"]) == 0
    assert capsys.readouterr().out == printed


def test_workload_versions_come_in_rounds_and_invalid_ones_say_why():
    workload = Workload(200, seed=4)
    rounds = list(workload.rounds())
    versions = workload.versions()
    assert len(rounds) == 3
    for number, items in enumerate(rounds, start=1):
        valid = [i for i in items if i.reason is None]
        assert sorted(i.order_id for i in valid) == [
            order_id for order_id in range(1, 201) if versions[order_id - 1] >= number
        ]
    invalid = [i for i in rounds[0] if i.reason]
    assert len(invalid) == 2 and {i.reason for i in invalid} == {"invalid:quantity"}
    assert json.loads(invalid[0].data)["quantity"] == 0
    first = next(i for i in rounds[0] if i.reason is None)
    assert parse_order(first.data).order_id == first.order_id
    payments = workload.payments()
    reasons = sorted({i.reason for i in payments if i.reason})
    assert reasons == ["invalid:card_last_four", "invalid:card_number", "order_not_found"]
    assert len([i for i in payments if i.reason == "order_not_found"]) == workload.orphans() == 4
    assert all(i.order_id > 200 for i in payments if i.reason == "order_not_found")
    assert workload.count() == sum(map(len, rounds)) + len(payments)
    assert workload.payment_count() == len(payments)
    assert Workload(200, seed=4).payments()[0].order_id == payments[0].order_id


def test_each_network_fault_is_the_toxic_it_says():
    from chaos.run import _toxic
    from chaos.schedule import Fault

    def body(kind: str, amount: int = 0) -> tuple[str, dict]:
        made = _toxic(Fault(1.0, kind, "cassandra", 6, amount), "downstream", "x")
        assert made["stream"] == "downstream" and made["name"] == "x"
        return made["type"], made["attributes"]

    assert body("latency", 200) == ("latency", {"latency": 200, "jitter": 50})
    assert body("bandwidth", 64) == ("bandwidth", {"rate": 64})
    assert body("timeout", 3000) == ("timeout", {"timeout": 3000})
    assert body("reset") == ("reset_peer", {"timeout": 0})
    with pytest.raises(ValueError, match="not a network fault: 'kill_node'"):
        body("kill_node")
    printed = Fault(1.0, "timeout", "pubsub", 6, 3000).describe()
    assert "connections to pubsub stall, closed after 3000 ms, for 6s" in printed
