"""The commands people run: the four roles and the operations CLI, installed or from a checkout."""

import importlib
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
