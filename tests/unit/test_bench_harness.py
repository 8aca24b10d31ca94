"""The pure parts of the benchmark's harness: percentiles, CPU and socket parsing, checks."""

import collections
import json
import os
import socket
from types import SimpleNamespace

import pytest

from bench import harness, network
from bench.harness import BenchmarkFailed
from ecom_pipeline.settings import Settings


def test_percentiles_pick_ranks_from_the_sorted_values():
    values = [float(v) for v in range(100, 0, -1)]  # 1..100, unsorted
    assert harness.percentiles(values) == {
        "p50": 51.0, "p95": 96.0, "p99": 100.0, "max": 100.0, "mean": 50.5
    }  # fmt: skip
    assert harness.percentiles([]) == {}
    assert harness.percentiles([3.14159]) == {
        "p50": 3.1, "p95": 3.1, "p99": 3.1, "max": 3.1, "mean": 3.1
    }  # fmt: skip


def test_cpu_time_is_utime_plus_stime_even_with_a_strange_command_name():
    ticks = harness.CLOCK_TICKS
    fields = ["S", "1", "1", "1", "0", "-1", "4194304", "100", "0", "0", "0"]
    stat = f"1234 (py (x) y) {' '.join(fields)} {3 * ticks} {ticks} 0 0 20 0 5"
    assert harness.cpu_seconds_from_stat(stat) == 4.0
    assert harness.cpu_seconds(None) == 0.0


def test_per_message_cost_is_in_microseconds():
    assert harness.per_message_us(1.5, 1000) == 1500.0
    assert harness.per_message_us(1.0, 0) == 0.0


PROC_NET_TCP = """\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 111 1
   1: 0100007F:A3F2 0100007F:2352 01 00000000:00000000 00:00000000 00000000     0        0 222 1
   2: 0400007F:A3F3 0400007F:2352 06 00000000:00000000 00:00000000 00000000     0        0 333 1
"""
PROC_NET_TCP6 = """\
  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0000000000000000FFFF00000100007F:C350 0000000000000000FFFF00000100007F:1F95 01 00000000:00000000 00:00000000 00000000     0        0 444 1
   1: 00000000000000000000000001000000:C351 00000000000000000000000001000000:1F95 01 00000000:00000000 00:00000000 00000000     0        0 555 1
"""  # noqa: E501


def test_proc_net_tcp_gives_addresses_states_and_inodes():
    assert harness.parse_proc_net_tcp(PROC_NET_TCP) == [
        ("127.0.0.1:8080", "0.0.0.0:0", "0A", 111),
        ("127.0.0.1:41970", "127.0.0.1:9042", "01", 222),
        ("127.0.0.4:41971", "127.0.0.4:9042", "06", 333),
    ]


def test_ipv4_mapped_ipv6_sockets_read_as_ipv4():
    sockets = harness.parse_proc_net_tcp(PROC_NET_TCP6)
    assert sockets[0] == ("127.0.0.1:50000", "127.0.0.1:8085", "01", 444)
    assert sockets[1][1] == "[0000:0000:0000:0000:0000:0000:0000:0001]:8085"


class _Network:
    name = "proxied"
    exclusive = True

    def __init__(self, allowed, traffic=()):
        self.allowed = set(allowed)
        self.readings = list(traffic)

    def allowed_peers(self):
        return self.allowed

    def traffic(self):
        return self.readings.pop(0) if len(self.readings) > 1 else self.readings[0]


def test_a_consumer_connected_past_the_proxy_fails_the_run():
    proxies = {"127.0.0.1:41000", "127.0.0.1:41001"}
    harness.check_peers(_Network(proxies), collections.Counter(proxies))
    with pytest.raises(BenchmarkFailed, match=r"127\.0\.0\.1:9042"):
        harness.check_peers(_Network(proxies), collections.Counter([*proxies, "127.0.0.1:9042"]))
    with pytest.raises(BenchmarkFailed, match="no connection"):
        harness.check_peers(_Network(proxies), collections.Counter(["127.0.0.1:41000"]))


def test_on_loopback_other_cluster_nodes_are_fine():
    loopback = network.Loopback(Settings())
    nodes = ["127.0.0.1:9042", "127.0.0.2:9042", "127.0.0.3:9042", "127.0.0.1:8085"]
    harness.check_peers(loopback, collections.Counter(nodes))
    with pytest.raises(BenchmarkFailed, match=r"127\.0\.0\.1:8085"):
        harness.check_peers(loopback, collections.Counter(nodes[:3]))


def test_proxy_traffic_is_counted_once_the_closed_connections_are(monkeypatch):
    monkeypatch.setattr(harness.time, "sleep", lambda seconds: None)
    readings = [{"cassandra": 10, "pubsub": 5}, {"cassandra": 90, "pubsub": 50}]
    carried = harness.carried(_Network((), readings + readings[-1:]), {"cassandra": 10})
    assert carried == {"cassandra": 80, "pubsub": 50}
    assert harness.carried(_Network((), [{}]), {}) == {}


def test_a_proxy_that_carried_nothing_fails_the_run(monkeypatch):
    clock = iter(range(0, 100, 3))
    monkeypatch.setattr(harness.time, "monotonic", lambda: next(clock))
    monkeypatch.setattr(harness.time, "sleep", lambda seconds: None)
    with pytest.raises(BenchmarkFailed, match="carried nothing"):
        harness.carried(_Network((), [{"cassandra": 7, "pubsub": 3}]), {"cassandra": 7})


def _dead(*order_ids):
    return [SimpleNamespace(data=json.dumps({"order_id": i}).encode()) for i in order_ids]


def test_the_result_check_is_exact():
    rows = {1: (1001, 1, 2), 2: (None, 1, None)}
    harness.check_result(rows, 2, paid=[1], orphans=[3], dead=_dead(3))
    with pytest.raises(BenchmarkFailed, match="wrong payment"):
        harness.check_result({**rows, 2: (1002, 1, 2)}, 2, [1], [3], _dead(3))
    with pytest.raises(BenchmarkFailed, match="rows instead"):
        harness.check_result({1: rows[1]}, 2, [1], [3], _dead(3))
    with pytest.raises(BenchmarkFailed, match="dead letters"):
        harness.check_result(rows, 2, [1], [3], _dead(3, 3))


def test_the_networks_tell_the_roles_where_the_services_are():
    settings = Settings()
    loopback = network.Loopback(settings)
    assert loopback.env() == {}
    assert loopback.allowed_peers() == {"127.0.0.1:9042", "127.0.0.1:8085"}
    proxied = network.Proxied(settings, network.ProxyLatency())
    proxied.proxies = {
        "cassandra": network.toxiproxy.Proxy("c", "127.0.0.1:41000", "127.0.0.1:9042"),
        "pubsub": network.toxiproxy.Proxy("p", "127.0.0.1:41001", "127.0.0.1:8085"),
    }
    assert proxied.env() == {
        "CASSANDRA_HOSTS": "127.0.0.1",
        "CASSANDRA_PORT": "41000",
        "PUBSUB_EMULATOR_HOST": "127.0.0.1:41001",
    }
    assert proxied.allowed_peers() == {"127.0.0.1:41000", "127.0.0.1:41001"}
    assert proxied.description == (
        "through Toxiproxy v2.5.0: +1 ms each way to Cassandra, +10 ms each way to Pub/Sub"
    )
    jittery = network.ProxyLatency(cassandra_ms=2, cassandra_jitter_ms=1, pubsub_ms=0)
    assert "+2 ms +/- 1 ms each way to Cassandra, +0 ms" in jittery.describe()


# ---------------------------------------------------------------- when our consumers stored


def _line(message: str, time: str = "2026-11-26T09:25:42.432Z") -> str:
    return json.dumps({"time": time, "severity": "INFO", "logger": "x", "message": message})


def test_log_times_are_utc_to_the_millisecond():
    assert harness.log_time("1970-01-01T00:00:01.250Z") == 1.25


def test_the_role_log_lines_that_matter():
    at = harness.log_time("2026-11-26T09:25:42.432Z")
    assert harness.role_log_event(_line("order consumer: pulling from projects/p/s")) == (
        "ready", at, None
    )  # fmt: skip
    kind, _, batch = harness.role_log_event(
        _line("order consumer: stored 25: order 1, order 2, order 3 and 22 more")
    )
    assert (kind, batch) == ("stored", harness.StoredBatch(at, 25, (1, 2, 3)))
    _, _, batch = harness.role_log_event(
        _line("payment consumer: stored 2: payment 1001 -> order 1, payment 1007 -> order 7")
    )
    assert batch.order_ids == (1, 7)
    dead = "payment consumer: dead-lettered message 12 as order_not_found: ..."
    assert harness.role_log_event(_line(dead))[0] == "dead"
    stats = "order consumer: received 3 (1.0/s), stored 3, dead-lettered 0, delayed 0"
    assert harness.role_log_event(_line(stats)) is None
    assert harness.role_log_event("Traceback (most recent call last):\n") is None


def _batch(at, count, *named):
    return harness.StoredBatch(float(at), count, named)


def test_named_messages_get_their_batch_and_the_others_follow_publish_order():
    batches = [_batch(2, 3, 4, 5), _batch(1, 4, 1, 2)]  # reported out of time order
    times, agreement = harness.stored_times(batches, [1, 2, 3, 4, 5, 6, 7])
    assert times == {1: 1.0, 2: 1.0, 4: 2.0, 5: 2.0, 3: 1.0, 6: 1.0, 7: 2.0}
    # In publish order alone the first batch is 1..4: message 4 is named by the second.
    assert agreement == 0.75


def test_a_message_named_twice_keeps_its_first_batch():
    times, agreement = harness.stored_times([_batch(1, 1, 1), _batch(2, 1, 1)], [1])
    assert times == {1: 1.0}
    assert agreement == 1.0
    assert harness.stored_times([], [1]) == ({}, 1.0)


def test_services_are_found_by_the_socket_they_listen_on():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        pids = harness.service_pids(Settings(cassandra_port=port, emulator_host="127.0.0.1:1"))
    assert pids["cassandra"] == os.getpid()
    assert pids["emulator"] is None


def test_a_process_s_tcp_peers_are_its_established_connections():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        address = f"127.0.0.1:{listener.getsockname()[1]}"
        with socket.create_connection(listener.getsockname()):
            peers = harness.tcp_peers(os.getpid())
    assert peers[address] == 1
