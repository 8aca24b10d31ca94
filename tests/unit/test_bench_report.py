"""The benchmark's report: ratios against the reference design, tables and JSON."""

import json

from bench.report import (
    DrainResult,
    LatencyResult,
    Report,
    format_drains,
    format_latencies,
    format_report,
    format_traffic,
    ratio_to_reference,
    write_json,
)


def _drain(config, consumer, throughput, network="loopback", **extra):
    fields = {
        "config": config, "consumer": consumer, "messages": 1000, "seconds": 1000 / throughput,
        "throughput": throughput, "latency_ms": {"p50": 1.0, "p99": 2.0}, "cpu_seconds": 1.5,
        "peak_rss_mb": 100.0, "network": network, "cpu_us_per_message": 700.0,
        "cassandra_us_per_message": 400.0, "emulator_us_per_message": 90.0,
    }  # fmt: skip
    fields.update(extra)
    return DrainResult(**fields)


def _report():
    return Report(
        machine={"cpus": "2", "date": "2026-11-26"},
        command="python -m bench.benchmark",
        networks={"loopback": "loopback: directly", "proxied": "through Toxiproxy: +1 ms"},
        drains=[
            _drain("reference", "orders", 1000),
            _drain("reference", "payments", 150),
            _drain("fast", "orders", 14000),
            _drain("fast", "payments", 6000),
            _drain("reference", "orders", 100, "proxied", proxy_us_per_message=12.5),
            _drain(
                "fast",
                "orders",
                9000,
                "proxied",
                proxy_bytes={"cassandra": 250_000},
                peers={"127.0.0.1:41000": 2},
            ),
        ],
    )


def test_the_ratio_is_against_the_reference_of_the_same_consumer_and_network():
    report = _report()
    by_key = {(d.config, d.consumer, d.network): d for d in report.drains}
    assert ratio_to_reference(report, by_key[("fast", "orders", "loopback")]) == 14.0
    assert ratio_to_reference(report, by_key[("fast", "payments", "loopback")]) == 40.0
    assert ratio_to_reference(report, by_key[("fast", "orders", "proxied")]) == 90.0
    assert ratio_to_reference(report, by_key[("reference", "orders", "loopback")]) == 1.0


def test_without_a_reference_run_there_is_no_ratio():
    report = Report(machine={}, command="", drains=[_drain("fast", "orders", 14000)])
    assert ratio_to_reference(report, report.drains[0]) is None
    row = format_drains(report).splitlines()[-1].split()
    assert row[:5] == ["orders", "fast", "1000", "0.07", "14,000"]
    assert row[5] == "-"


def test_one_table_per_network_with_the_reference_first_and_cpu_per_message():
    text = format_drains(_report())
    assert "x naive" not in text
    loopback, proxied = text.split("\nDrain on ")[1:]
    assert loopback.startswith("loopback: directly")
    assert proxied.startswith("through Toxiproxy: +1 ms")
    header = loopback.splitlines()[1]
    for column in ("x reference", "CPU us/msg", "C* us/msg", "emu us/msg", "proxy us/msg"):
        assert column in header
    rows = [line.split() for line in loopback.splitlines()[2:]]
    assert [(r[0], r[1]) for r in rows] == [
        ("orders", "reference"), ("payments", "reference"), ("orders", "fast"), ("payments", "fast")
    ]  # fmt: skip
    assert [r[5] for r in rows] == ["1.0", "1.0", "14.0", "40.0"]
    assert rows[0][10:] == ["700", "400", "90", "-"]  # no proxy on loopback
    proxied_rows = [line.split() for line in proxied.splitlines()[2:]]
    assert proxied_rows[0][-1] == "12.5"


def test_the_traffic_section_shows_bytes_a_message_and_connections():
    text = format_traffic(_report())
    (line,) = text.splitlines()[2:]
    assert line.split()[:4] == ["orders", "fast", "cassandra", "250"]
    assert "127.0.0.1:41000 x2" in line
    assert format_traffic(Report(machine={}, command="")) == ""


def test_latencies_are_listed_per_network_and_stream():
    report = Report(
        machine={},
        command="",
        latencies=[
            LatencyResult(
                "1,000 msg/s", 60000,
                {"p50": 25.4, "p95": 51.3, "p99": 57.4, "max": 202.8},
                {"p50": 25.0, "p95": 50.0, "p99": 63.0, "max": 213.3},
                network="proxied", publish_order_agreement=0.987,
            )
        ],
    )  # fmt: skip
    lines = format_latencies(report).splitlines()
    assert lines[2].split()[-2:] == ["order", "ok"]
    orders, payments = (line.split() for line in lines[3:5])
    assert orders[0] == "proxied"
    assert orders[-6:] == ["orders", "25.4", "51.3", "57.4", "202.8", "99%"]
    assert payments[-6:] == ["payments", "25.0", "50.0", "63.0", "213.3", "99%"]
    assert "publish order" in lines[5]


def test_the_whole_report_and_its_json(tmp_path):
    report = _report()
    assert "Drain on loopback" in format_report(report)
    path = tmp_path / "results.json"
    write_json(report, path)
    data = json.loads(path.read_text())
    assert data["networks"]["proxied"] == "through Toxiproxy: +1 ms"
    assert data["drains"][0]["config"] == "reference"
    assert data["drains"][0]["cpu_us_per_message"] == 700.0
    assert data["drains"][5]["proxy_bytes"] == {"cassandra": 250_000}
