"""Settings come from the standard environment variables with local defaults."""

import pytest

from ecom_pipeline.settings import Settings


def test_defaults_describe_the_local_setup():
    settings = Settings.from_env({})
    assert settings.project == "ecom-local"
    assert settings.emulator_host == "127.0.0.1:8085"
    assert settings.cassandra_hosts == ("127.0.0.1",)
    assert settings.cassandra_port == 9042
    assert (settings.cassandra_username, settings.cassandra_password) == ("admin", "admin")
    assert settings.cassandra_keyspace == "ecom_store"
    assert settings.payments.dlq_topic == "dlq_payments_data"


def test_standard_variables_override_the_defaults():
    settings = Settings.from_env(
        {
            "PUBSUB_EMULATOR_HOST": "localhost:8681",
            "GOOGLE_CLOUD_PROJECT": "shop-prod",
            "CASSANDRA_HOSTS": "10.0.0.1, 10.0.0.2,",
            "CASSANDRA_PORT": "9142",
            "CASSANDRA_USERNAME": "ingest",
            "CASSANDRA_PASSWORD": "s3cret",
            "CASSANDRA_KEYSPACE": "shop",
            "CASSANDRA_CONSISTENCY": "local_one",
        }
    )
    assert settings.emulator_host == "localhost:8681"
    assert settings.project == "shop-prod"
    assert settings.cassandra_hosts == ("10.0.0.1", "10.0.0.2")
    assert settings.cassandra_port == 9142
    assert (settings.cassandra_username, settings.cassandra_password) == ("ingest", "s3cret")
    assert settings.cassandra_keyspace == "shop"
    assert settings.cassandra_consistency == "LOCAL_ONE"


def test_each_stream_name_can_be_changed_and_the_environment_round_trips():
    settings = Settings.from_env({"ORDERS_TOPIC": "shop_orders", "PAYMENTS_DLQ_SUBSCRIPTION": "d"})
    assert settings.orders.topic == "shop_orders"
    assert settings.orders.subscription == "orders_data-sub"
    assert settings.payments.dlq_subscription == "d"
    renamed = settings.suffixed("x1")
    assert renamed.payments.dlq_topic == "dlq_payments_data-x1"
    assert Settings.from_env(renamed.to_env()) == renamed


def test_an_address_map_names_where_each_reported_node_is_reached_and_round_trips():
    settings = Settings.from_env(
        {"CASSANDRA_ADDRESS_MAP": " 10.0.0.5 = 127.0.1.1 ,10.0.0.6=proxy-2,fd00::6=fd00::1:6"}
    )
    assert settings.cassandra_address_map == (
        ("10.0.0.5", "127.0.1.1"),
        ("10.0.0.6", "proxy-2"),
        ("fd00::6", "fd00::1:6"),
    )
    assert Settings.from_env(settings.to_env()) == settings
    assert Settings.from_env({}).cassandra_address_map == ()
    assert Settings.from_env(Settings().to_env()).cassandra_address_map == ()


def test_an_empty_emulator_host_means_real_google_cloud():
    assert Settings.from_env({"PUBSUB_EMULATOR_HOST": ""}).emulator_host is None


def test_repr_never_shows_the_password():
    settings = Settings.from_env({"CASSANDRA_PASSWORD": "hunter2-very-secret"})
    assert "hunter2-very-secret" not in repr(settings)
    assert "hunter2-very-secret" not in str(settings)
    assert "cassandra_password='***'" in repr(settings)


def test_settings_are_frozen_and_flags_override_by_copy():
    settings = Settings.from_env({})
    with pytest.raises(AttributeError):
        settings.project = "other"  # type: ignore[misc]
    assert settings.replace(project="other").project == "other"
    assert settings.project == "ecom-local"


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("CASSANDRA_PORT", "ninety", "CASSANDRA_PORT must be a number"),
        ("CASSANDRA_PORT", "70000", "between 1 and 65535"),
        ("CASSANDRA_HOSTS", " , ", "CASSANDRA_HOSTS has no host"),
        ("CASSANDRA_CONSISTENCY", "MOST", "CASSANDRA_CONSISTENCY must be one of"),
        ("CASSANDRA_ADDRESS_MAP", "10.0.0.5", "CASSANDRA_ADDRESS_MAP must be REPORTED=REACHABLE"),
        ("CASSANDRA_ADDRESS_MAP", "10.0.0.5=", "must be REPORTED=REACHABLE pairs, not '10.0.0.5='"),
        ("CASSANDRA_ADDRESS_MAP", "=1.2.3.4", "must be REPORTED=REACHABLE pairs, not '=1.2.3.4'"),
        ("CASSANDRA_ADDRESS_MAP", "a=b,a=c", "CASSANDRA_ADDRESS_MAP maps a twice"),
        ("CASSANDRA_ADDRESS_MAP", "10.0.0.5=127.0.0.1:9043", "maps addresses only, not ports"),
        ("CASSANDRA_ADDRESS_MAP", " , ", "CASSANDRA_ADDRESS_MAP has no REPORTED=REACHABLE pair"),
    ],
)
def test_bad_values_are_refused_with_the_variable_named(variable, value, message):
    with pytest.raises(ValueError, match=message):
        Settings.from_env({variable: value})


def test_tls_to_cassandra_is_off_unless_a_ca_is_given(tmp_path):
    import ssl
    import subprocess

    from ecom_pipeline.cassandra_session import tls_context

    assert tls_context(Settings.from_env({})) is None
    ca = tmp_path / "ca.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=test-ca", "-keyout", str(tmp_path / "ca.key"), "-out", str(ca)],
        check=True, capture_output=True,
    )  # fmt: skip
    context = tls_context(Settings.from_env({"CASSANDRA_TLS_CA": str(ca)}))
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    relaxed = Settings.from_env(
        {"CASSANDRA_TLS_CA": str(ca), "CASSANDRA_TLS_VERIFY_HOSTNAME": "false"}
    )
    assert tls_context(relaxed).check_hostname is False


def test_a_project_of_your_own_without_an_emulator_variable_means_real_google_cloud():
    assert Settings.from_env({"GOOGLE_CLOUD_PROJECT": "shop-prod"}).emulator_host is None
    both = {"GOOGLE_CLOUD_PROJECT": "shop-prod", "PUBSUB_EMULATOR_HOST": "localhost:8085"}
    assert Settings.from_env(both).emulator_host == "localhost:8085"


def test_flags_take_the_place_of_their_variables(monkeypatch):
    import argparse

    from ecom_pipeline import cli

    monkeypatch.delenv("PUBSUB_EMULATOR_HOST", raising=False)
    monkeypatch.delenv("GOOGLE_CLOUD_PROJECT", raising=False)
    parser = argparse.ArgumentParser()
    cli.add_consumer_flags(parser)
    settings = cli.settings_from(
        parser.parse_args(["--project", "shop", "--cassandra-port", "9142"])
    )
    assert (settings.project, settings.emulator_host, settings.cassandra_port) == (
        "shop",
        None,
        9142,
    )
    local = cli.settings_from(parser.parse_args(["--emulator-host", "localhost:8681"]))
    assert (local.project, local.emulator_host) == ("ecom-local", "localhost:8681")


def test_json_logs_are_one_object_per_line_with_the_stats_figures(capsys):
    import argparse
    import json
    import logging

    from ecom_pipeline import cli

    cli.configure_logging(argparse.Namespace(log_level="INFO", log_format="json"))
    logging.getLogger("ecom_pipeline.test").info(
        "order consumer: received %d", 3, extra={"stats": {"received": 3, "role": "x"}}
    )
    logging.getLogger("ecom_pipeline.test").warning("dead-lettered message %s", "7")
    lines = capsys.readouterr().err.strip().splitlines()
    first, second = (json.loads(line) for line in lines[-2:])
    assert first["message"] == "order consumer: received 3"
    assert first["stats"] == {"received": 3, "role": "x"}
    assert first["severity"] == "INFO" and first["time"].endswith("Z")
    assert second["severity"] == "WARNING" and "stats" not in second
    logging.getLogger().handlers.clear()


def test_every_role_option_has_its_flag_and_defaults_match_the_roles():
    import argparse

    from ecom_pipeline import cli
    from ecom_pipeline.options import CONSUMER, ORDER_PRODUCER

    consumer = argparse.ArgumentParser()
    cli.add_consumer_flags(consumer)
    assert cli.consumer_options(consumer.parse_args([])) == CONSUMER
    tuned = cli.consumer_options(consumer.parse_args(["--pulls", "2", "--write-batch", "3"]))
    assert (tuned.pulls, tuned.write_batch) == (2, 3)

    producer = argparse.ArgumentParser()
    cli.add_producer_flags(producer, ORDER_PRODUCER, what="orders", count_help="n")
    assert cli.producer_options(producer.parse_args([])) == ORDER_PRODUCER


def test_a_consumer_waits_for_cassandra_at_start_up_but_not_for_a_wrong_password(monkeypatch):
    from cassandra.cluster import NoHostAvailable

    from ecom_pipeline import cassandra_session, startup

    attempts = []

    def not_up_twice(settings, **login):
        attempts.append(login)
        if len(attempts) < 3:
            # What the driver raises when no pool could be opened: a list, not a dict.
            raise cassandra_session._unavailable(
                NoHostAvailable("Unable to connect to any servers", ["127.0.0.1"]),
                settings,
                "admin",
            )
        return "session"

    monkeypatch.setattr(cassandra_session, "open_session", not_up_twice)
    monkeypatch.setattr(startup.time, "sleep", lambda seconds: None)
    assert cassandra_session.session_when_up(Settings(), timeout=60) == "session"
    assert len(attempts) == 3

    def refused(settings, **login):
        raise cassandra_session.CassandraUnavailable("wrong password", login_refused=True)

    monkeypatch.setattr(cassandra_session, "open_session", refused)
    with pytest.raises(cassandra_session.CassandraUnavailable, match="wrong password"):
        cassandra_session.session_when_up(Settings(), timeout=60)
