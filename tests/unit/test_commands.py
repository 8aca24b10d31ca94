"""The commands people run: the four roles and the operations CLI, installed or from a checkout."""

import importlib
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from ecom_pipeline import __main__ as operations_cli
from ecom_pipeline import __version__, commands

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
SCRIPTS = PYPROJECT["project"]["scripts"]


def _entry_point(target: str):
    module, _, function = target.partition(":")
    return getattr(importlib.import_module(module), function)


def test_the_package_installs_a_command_for_each_role_and_the_operations_cli():
    assert set(SCRIPTS) == {*commands.PARSERS, "ecom-pipeline"}
    assert _entry_point(SCRIPTS["ecom-pipeline"]) is operations_cli.main
    for name in commands.PARSERS:
        assert _entry_point(SCRIPTS[name]) is getattr(commands, name)


def test_the_top_level_scripts_run_the_installed_commands_functions():
    for name in commands.PARSERS:
        script = importlib.import_module(name)
        assert script.main is getattr(commands, name), name
        assert len((ROOT / f"{name}.py").read_text().splitlines()) < 20, f"{name}.py is no shim"


def test_the_package_declares_what_pip_needs_to_build_and_install_it():
    assert PYPROJECT["build-system"]["build-backend"] == "setuptools.build_meta"
    dependencies = " ".join(PYPROJECT["project"]["dependencies"])
    for runtime in ("google-cloud-pubsub", "cassandra-driver", "prometheus-client"):
        assert runtime in dependencies
    assert "pytest" in " ".join(PYPROJECT["project"]["optional-dependencies"]["dev"])


@pytest.mark.parametrize("name", sorted(commands.PARSERS))
def test_each_role_tells_its_version(name, capsys):
    with pytest.raises(SystemExit) as exited:
        getattr(commands, name)(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.split()[-1] == __version__


def test_python_m_ecom_pipeline_names_itself_in_its_usage():
    result = subprocess.run(
        [sys.executable, "-m", "ecom_pipeline", "--help"],
        capture_output=True, text=True, cwd=ROOT, check=True, timeout=60,
    )  # fmt: skip
    assert result.stdout.startswith("usage: python -m ecom_pipeline ")
    assert "__main__.py" not in result.stdout
    assert "python -m ecom_pipeline redrive --dry-run" in result.stdout


def test_the_operations_cli_tells_its_version(capsys):
    with pytest.raises(SystemExit):
        operations_cli.main(["--version"], prog="ecom-pipeline")
    assert capsys.readouterr().out.strip() == f"ecom-pipeline {__version__}"


def _refused(command, argv, capsys) -> str:
    """What a role prints when it refuses its flags; it exits 2 without a traceback."""
    with pytest.raises(SystemExit) as exited:
        command(argv)
    assert exited.value.code == 2
    return capsys.readouterr().err


@pytest.mark.parametrize("name", ["order_data_producer", "payments_data_producer"])
def test_an_id_range_with_no_id_in_it_is_refused_in_one_sentence(name, capsys):
    error = _refused(getattr(commands, name), ["--first-id", "10", "--last-id", "5"], capsys)
    assert "--last-id 5 is below --first-id 10" in error
    assert "Traceback" not in error


@pytest.mark.parametrize("flag", ["--first-id", "--last-id"])
def test_ids_must_be_positive(flag, capsys):
    error = _refused(commands.payments_data_producer, [flag, "0"], capsys)
    assert f"argument {flag}: must be at least 1, not 0" in error


@pytest.mark.parametrize(
    ("flag", "value", "rule"),
    [
        ("--consistency", "foo", "must be one of ONE, TWO"),
        ("--cassandra-port", "70000", "must be between 1 and 65535"),
        ("--cassandra-hosts", " , ", "has no host in it"),
    ],
)
def test_a_bad_connection_flag_is_named_as_the_flag_not_as_its_variable(flag, value, rule, capsys):
    error = _refused(commands.order_data_consumer, [flag, value], capsys)
    assert f"argument {flag}: {rule}" in error
    assert "CASSANDRA_" not in error.splitlines()[-1]


def test_the_variable_is_named_when_the_environment_is_wrong(monkeypatch, capsys):
    monkeypatch.setenv("CASSANDRA_CONSISTENCY", "foo")
    assert commands.order_data_consumer([]) == 2
    assert "error: CASSANDRA_CONSISTENCY must be one of" in capsys.readouterr().err


def test_no_make_target_shares_a_name_with_an_operations_command():
    """`make status` (the services) and `ecom-pipeline status` (the pipeline) were two things."""
    makefile = (ROOT / "Makefile").read_text()
    targets = set(re.findall(r"^([a-z][\w-]*):", makefile, flags=re.MULTILINE))
    assert {"services", "run", "services-status"} <= targets
    assert set(operations_cli.COMMANDS) == {"status", "redrive"}
    assert not targets & set(operations_cli.COMMANDS)
    assert "make status" not in (ROOT / "README.md").read_text()


class _PublisherMade(Exception):
    pass


@pytest.mark.parametrize(
    ("name", "argv", "window"),
    [
        ("order_data_producer", [], 0.001),
        ("payments_data_producer", ["--batch-window", "0.05"], 0.05),
    ],
)
def test_a_producer_publishes_with_its_batch_window(name, argv, window, monkeypatch):
    """At the producers' rates the client's 10 ms default would only delay each message."""
    from ecom_pipeline import roles

    made = {}

    def publisher_client(settings, **options):
        made.update(options)
        raise _PublisherMade

    monkeypatch.setattr(roles, "publisher_client", publisher_client)
    monkeypatch.setattr(sys, "argv", [name, *argv])
    with pytest.raises((_PublisherMade, SystemExit)):
        getattr(commands, name)()
    assert made["batch_settings"].max_latency == window


def _settings():
    from ecom_pipeline.settings import Settings

    return Settings.from_env({})


def test_a_role_waits_for_pub_sub_at_start_up_with_one_log_line(monkeypatch, caplog):
    from google.api_core import exceptions as google_errors

    from ecom_pipeline import roles, startup

    answers = [google_errors.ServiceUnavailable("connection refused")] * 3 + ["subscription"]

    def call():
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    monkeypatch.setattr(startup.time, "sleep", lambda seconds: None)
    assert roles._check(call, "subscription s", _settings()) == "subscription"
    waits = [r.getMessage() for r in caplog.records if "waiting for Pub/Sub" in r.getMessage()]
    assert waits == ["waiting for Pub/Sub on the emulator at 127.0.0.1:8085: connection refused"]


def test_a_role_gives_up_on_an_unreachable_pub_sub_in_one_sentence(monkeypatch):
    from google.api_core import exceptions as google_errors

    from ecom_pipeline import roles
    from ecom_pipeline.cli import SetupProblem

    def call():
        raise google_errors.DeadlineExceeded("no answer")

    with pytest.raises(SetupProblem) as unreachable:
        roles._check(call, "topic t", _settings(), wait=0)
    assert str(unreachable.value) == (
        "cannot reach Pub/Sub on the emulator at 127.0.0.1:8085 (waited 0 s): no answer"
    )

    def missing():
        raise google_errors.NotFound("gone")

    with pytest.raises(SetupProblem, match="topic t does not exist on the emulator"):
        roles._check(missing, "topic t", _settings())
