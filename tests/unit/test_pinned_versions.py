"""Two clones a month apart run the same software: locked Python packages, one Cassandra release."""

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _locked(lock: str) -> dict[str, str]:
    """name -> version of every requirement of a lock file, each checked to carry hashes."""
    entries: list[str] = []
    for line in (ROOT / lock).read_text().splitlines():
        if re.match(r"[A-Za-z0-9]", line):  # a requirement; its hashes follow, indented
            entries.append(line)
        elif line.startswith(" ") and entries:
            entries[-1] += "\n" + line
    assert entries, f"{lock} pins nothing"
    pins = {}
    for entry in entries:
        requirement = entry.split(" \\", 1)[0].strip()
        name, equals, version = requirement.partition("==")
        assert equals and re.fullmatch(r"[0-9][0-9A-Za-z.+!-]*", version), f"not pinned: {entry}"
        assert "--hash=sha256:" in entry, f"no hash: {requirement}"
        pins[canonicalize_name(name)] = version
    return pins


def _assert_pinned_within_range(requirements: list[str], pins: dict[str, str], lock: str) -> None:
    for line in requirements:
        requirement = Requirement(line)
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement.name} is not in {lock}: run make lock"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"{lock} pins {name}=={pins[name]}, outside pyproject's {requirement}: run make lock"
        )


def test_the_runtime_lock_pins_every_dependency_with_hashes_within_pyprojects_ranges():
    _assert_pinned_within_range(
        PROJECT["dependencies"], _locked("requirements.lock"), "requirements.lock"
    )


def test_the_dev_lock_pins_the_dev_extra_and_agrees_with_the_runtime_lock():
    dev = _locked("requirements-dev.lock")
    requirements = PROJECT["dependencies"] + PROJECT["optional-dependencies"]["dev"]
    _assert_pinned_within_range(requirements, dev, "requirements-dev.lock")
    runtime = _locked("requirements.lock")
    assert {name: dev.get(name) for name in runtime} == runtime


def test_make_installs_the_lock_checking_every_hash_and_then_the_package_alone():
    makefile = (ROOT / "Makefile").read_text()
    recipe = makefile.split("$(VENV)/.installed:", 1)[1].split("\n\n", 1)[0]
    assert "requirements-dev.lock" in recipe.splitlines()[0]
    assert "pip install --quiet --require-hashes -r requirements-dev.lock" in recipe
    assert "pip install --quiet --no-deps -e ." in recipe
    assert not (ROOT / "requirements.txt").exists() and not (ROOT / "requirements-dev.txt").exists()
