"""What running on real Google Cloud needs from the roles: Cloud Logging's fields, metrics on a
chosen address, and how far behind a consumer is."""

import argparse
import json
import logging
import socket
import urllib.request

import pytest

from ecom_pipeline import cli, commands
from ecom_pipeline.options import ConsumerOptions
from ecom_pipeline.stats import Stats

# Cloud Logging's LogSeverity names (the ones Python's levels can be).
CLOUD_LOGGING_SEVERITIES = {"DEBUG", "INFO", "NOTICE", "WARNING", "ERROR", "CRITICAL"}


@pytest.fixture
def json_lines(capsys):
    """Start JSON logging as --log-format json does; the lines come back parsed."""

    def read():
        return [json.loads(line) for line in capsys.readouterr().err.strip().splitlines()]

    def start():
        # Inside the test: the handler writes to the stream capsys captures then.
        cli.configure_logging(argparse.Namespace(log_level="DEBUG", log_format="json"))
        return read

    yield start
    logging.getLogger().handlers.clear()


def test_json_logs_carry_cloud_loggings_severity_and_source_location(json_lines):
    read = json_lines()
    log = logging.getLogger("ecom_pipeline.test")
    for level in (logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR, logging.CRITICAL):
        log.log(level, "payment consumer: event %d", level)
    entries = read()
    assert [entry["severity"] for entry in entries] == [
        "DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL",
    ]  # fmt: skip
    assert {entry["severity"] for entry in entries} <= CLOUD_LOGGING_SEVERITIES
    assert "level" not in entries[0]
    assert entries[1]["message"] == "payment consumer: event 20"
    location = entries[1]["logging.googleapis.com/sourceLocation"]
    assert location["file"] == __file__
    assert location["function"].startswith("test_json_logs_carry_cloud_loggings_severity")
    assert isinstance(location["line"], int)


def test_a_traceback_goes_where_error_reporting_looks_for_it(json_lines):
    read = json_lines()
    try:
        raise RuntimeError("store exploded")
    except RuntimeError:
        logging.getLogger("ecom_pipeline.test").exception("the handler failed on a batch of 3")
    [entry] = read()
    assert entry["severity"] == "ERROR"
    assert entry["exception"].startswith("Traceback (most recent call last):")
    assert "RuntimeError: store exploded" in entry["exception"]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


def test_metrics_addr_chooses_the_interface_the_metrics_listen_on():
    args = commands.order_data_consumer_parser().parse_args(
        ["--metrics-port", "9102", "--metrics-addr", "127.0.0.1"]
    )
    options = cli.consumer_options(args)
    assert (options.metrics_addr, options.metrics_port) == ("127.0.0.1", 9102)

    port = _free_port()
    stats = Stats("order consumer")
    stats.received(3)
    stats.serve(port, "127.0.0.1")
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        assert 'pipeline_messages_received_total{role="order consumer"} 3.0' in (
            response.read().decode()
        )
    # Another loopback address of this host: reachable only had it bound every interface.
    assert not _answers("127.0.0.2", port)


def test_by_default_the_metrics_listen_on_every_interface_for_a_scraper_elsewhere():
    options = cli.consumer_options(commands.order_data_consumer_parser().parse_args([]))
    assert options.metrics_addr == "0.0.0.0"
    port = _free_port()
    Stats("order consumer").serve(port, options.metrics_addr)
    assert _answers("127.0.0.2", port)


def test_a_metrics_port_in_use_is_one_sentence_not_a_traceback():
    from ecom_pipeline import roles

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        options = ConsumerOptions(metrics_port=port, metrics_addr="127.0.0.1")
        refused = rf"cannot serve metrics on 127.0.0.1 port {port}: .*--metrics-port"
        with pytest.raises(cli.SetupProblem, match=refused):
            roles._serving_metrics("order consumer", options)
