"""What running on real Google Cloud needs from the roles: Cloud Logging's fields, metrics on a
chosen address, and client certificates for Cassandra."""

import argparse
import json
import logging
import socket
import ssl
import threading
import time
import urllib.request

import pytest
from cryptography.hazmat.primitives import serialization

from ecom_pipeline import cli, commands
from ecom_pipeline.cassandra_session import CassandraUnavailable, session_when_up, tls_context
from ecom_pipeline.options import ConsumerOptions
from ecom_pipeline.settings import Settings
from ecom_pipeline.stats import Stats
from tests.certificates import make_certificates

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


# ---------------------------------------------------------------- client certificates


def _tls_env(certificates, **extra) -> dict[str, str]:
    return {
        "CASSANDRA_TLS_CA": str(certificates.ca),
        "CASSANDRA_TLS_CERT": str(certificates.client_cert),
        "CASSANDRA_TLS_KEY": str(certificates.client_key),
        **extra,
    }


def test_the_client_certificate_is_presented_to_a_server_that_requires_one(tmp_path):
    """A TLS server of our own that asks for a client certificate (what Cassandra's
    require_client_auth does) sees the one CASSANDRA_TLS_CERT names."""
    certificates = make_certificates(tmp_path)
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=certificates.ca)
    server_context.verify_mode = ssl.CERT_REQUIRED
    server_context.load_cert_chain(certificates.server)
    seen = {}
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()

        def serve():
            connection, _ = listener.accept()
            with server_context.wrap_socket(connection, server_side=True) as tls:
                seen["client"] = dict(pair for rdn in tls.getpeercert()["subject"] for pair in rdn)

        server = threading.Thread(target=serve)
        server.start()
        context = tls_context(Settings.from_env(_tls_env(certificates)))
        with (
            socket.create_connection(listener.getsockname()) as raw,
            context.wrap_socket(raw, server_hostname="127.0.0.1"),
        ):
            pass
        server.join(timeout=10)
    assert seen["client"]["commonName"] == "ecom-pipeline"


def test_a_key_without_its_certificate_is_refused_with_both_variables_named():
    with pytest.raises(ValueError, match="CASSANDRA_TLS_KEY is set but CASSANDRA_TLS_CERT is not"):
        Settings.from_env({"CASSANDRA_TLS_KEY": "/etc/key.pem"})


@pytest.mark.parametrize("problem", ["missing key", "key of another certificate", "encrypted key"])
def test_unusable_tls_files_are_one_sentence_at_once_not_a_minute_of_retries(problem, tmp_path):
    certificates = make_certificates(tmp_path)
    if problem == "missing key":
        key = tmp_path / "no-such-key.pem"
    elif problem == "key of another certificate":
        key = certificates.stranger_key
    else:
        key = tmp_path / "encrypted.pem"
        plain = serialization.load_pem_private_key(certificates.client_key.read_bytes(), None)
        key.write_bytes(
            plain.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.BestAvailableEncryption(b"secret"),
            )
        )
    settings = Settings.from_env(_tls_env(certificates, CASSANDRA_TLS_KEY=str(key)))
    started = time.monotonic()
    with pytest.raises(CassandraUnavailable, match="cannot use the TLS files") as refused:
        session_when_up(settings, timeout=60)
    assert time.monotonic() - started < 5
    assert refused.value.lasting
    assert f"CASSANDRA_TLS_KEY={key}" in str(refused.value)


def test_tls_settings_go_to_the_roles_that_the_local_tooling_starts(tmp_path):
    certificates = make_certificates(tmp_path)
    settings = Settings.from_env(_tls_env(certificates, CASSANDRA_TLS_VERIFY_HOSTNAME="false"))
    assert Settings.from_env(settings.to_env()) == settings
    assert "cassandra_tls_key" in repr(settings)  # a path, not a secret
