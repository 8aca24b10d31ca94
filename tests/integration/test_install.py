"""`pip install .` and `pip install -e .` as a new user runs them: a fresh virtual environment,
a copy of the repository's files, dependencies from the package index, then every console script
answers `--help` and `--version`. Needs no service, only the package index (the pip cache
makes a second run fast)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from ecom_pipeline import __version__

ROOT = Path(__file__).resolve().parents[2]
COMMANDS = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]

pytestmark = pytest.mark.timeout(600)


def _run(*argv: str | Path, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [str(arg) for arg in argv],
        cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip
    assert result.returncode == 0, f"{argv}: exit {result.returncode}\n{result.stderr[-3000:]}"
    return result


def _clone(into: Path) -> Path:
    """The repository's files as a clone has them (tracked and new, not ignored)."""
    listed = _run(
        "git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", cwd=ROOT
    ).stdout.split("\0")
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():
            (into / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, into / name)
    return into


def _fresh_venv(path: Path) -> Path:
    _run(sys.executable, "-m", "venv", path, cwd=path.parent)
    return path / "bin"


def _check_every_command(bin_dir: Path, cwd: Path) -> None:
    for command in COMMANDS:
        shown = _run(bin_dir / command, "--help", cwd=cwd, timeout=60).stdout
        assert shown.startswith(f"usage: {command} "), shown[:200]
        assert "--version" in shown
        told = _run(bin_dir / command, "--version", cwd=cwd, timeout=60).stdout
        assert told.strip() == f"{command} {__version__}"


def test_pip_install_dot_in_a_fresh_venv_gives_every_command(tmp_path):
    clone = _clone(tmp_path / "clone")
    bin_dir = _fresh_venv(tmp_path / "venv")
    _run(bin_dir / "pip", "install", "--quiet", clone, cwd=tmp_path, timeout=400)

    _check_every_command(bin_dir, cwd=tmp_path)
    where = _run(
        bin_dir / "python",
        "-c",
        "import ecom_pipeline; print(ecom_pipeline.__file__)",
        cwd=tmp_path,
    ).stdout
    assert "site-packages" in where, "the installed package runs, not the copy it was built from"


def test_pip_install_editable_runs_the_checkouts_own_code(tmp_path):
    clone = _clone(tmp_path / "clone")
    bin_dir = _fresh_venv(tmp_path / "venv")
    _run(bin_dir / "pip", "install", "--quiet", "-e", clone, cwd=tmp_path, timeout=400)

    _check_every_command(bin_dir, cwd=tmp_path)
    init = clone / "ecom_pipeline" / "__init__.py"
    init.write_text(init.read_text().replace(__version__, "9.9.9-edited"))
    told = _run(bin_dir / "ingest_in_fact_table", "--version", cwd=tmp_path).stdout
    assert told.strip() == "ingest_in_fact_table 9.9.9-edited", "an edit shows without reinstall"
