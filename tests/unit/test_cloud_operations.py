"""What running on real Google Cloud needs from the roles: Cloud Logging's fields, metrics on a
chosen address, and how far behind a consumer is."""

import argparse
import json
import logging

import pytest

from ecom_pipeline import cli

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
