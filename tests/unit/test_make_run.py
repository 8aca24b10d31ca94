"""`make run` takes each role's own flags (--order-wait, --interval, --count, ...)."""

import subprocess
import sys
from pathlib import Path

import pytest

from devtools import run_pipeline

ROOT = Path(__file__).resolve().parents[2]


def _started_with(argv: list[str], environ: dict[str, str], monkeypatch) -> dict[str, list[str]]:
    """The command line each role would be started with, after `make run` parsed its flags."""
    for role, _, _ in run_pipeline.ROLES:
        monkeypatch.delenv(run_pipeline.flags_variable(role), raising=False)
    for variable, value in environ.items():
        monkeypatch.setenv(variable, value)
    started = {}

    class Recorder(run_pipeline.Supervisor):
        def start(self, role, argv, colour):
            started[role] = argv

        def wait(self):
            return 0

    monkeypatch.setattr(run_pipeline, "Supervisor", Recorder)
    monkeypatch.setattr(run_pipeline.signal, "signal", lambda *_: None)  # pytest keeps Ctrl+C
    assert run_pipeline.main(["--plain", *argv]) == 0
    return started


def test_flags_given_on_the_command_line_reach_their_role_only(monkeypatch):
    started = _started_with(
        ["--payment-consumer=--order-wait 10", "--order-producer", "--interval 0.5 --count 20"],
        {},
        monkeypatch,
    )
    assert started["payment-consumer"][-2:] == ["--order-wait", "10"]
    assert started["order-producer"][-4:] == ["--interval", "0.5", "--count", "20"]
    assert started["payment-producer"][-2:] == ["--stats-interval", "2"]  # only its defaults
    assert started["order-consumer"][1].endswith("order_data_consumer.py")


def test_make_passes_each_roles_flags_in_its_variable(monkeypatch):
    """`make run PAYMENT_CONSUMER_ARGS="--order-wait 10"`: make exports the variable."""
    started = _started_with(
        [],
        {"PAYMENT_CONSUMER_ARGS": "--order-wait 10", "PAYMENT_PRODUCER_ARGS": "--count 3"},
        monkeypatch,
    )
    assert started["payment-consumer"][-2:] == ["--order-wait", "10"]
    assert started["payment-producer"][-2:] == ["--count", "3"]


def test_a_flag_the_role_does_not_have_stops_make_run_before_anything_starts(monkeypatch, capsys):
    with pytest.raises(SystemExit) as exited:
        _started_with(["--order-producer=--order-wait 10"], {}, monkeypatch)
    assert exited.value.code == 2
    error = capsys.readouterr().err
    assert "order_data_producer (--order-producer / ORDER_PRODUCER_ARGS)" in error
    assert "unrecognized arguments: --order-wait 10" in error


def test_make_run_runs_the_supervisor_that_reads_the_variables():
    """make exports a variable given on its command line to the recipe (dry run here)."""
    result = subprocess.run(
        ["make", "-n", "--no-print-directory", "run", "PAYMENT_CONSUMER_ARGS=--order-wait 10",
         "VENV=.venv-that-is-not-made", f"PYTHON={sys.executable}"],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "-m devtools.run_pipeline" in result.stdout
