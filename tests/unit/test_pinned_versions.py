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


def test_the_cassandra_release_is_pinned_exactly_and_docker_runs_the_same_one():
    from devtools import cassandra_node

    assert re.fullmatch(r"5\.0\.[0-9]+", cassandra_node.CASSANDRA_VERSION)
    assert "[" not in (ROOT / "cassandra-setup" / "pom.xml").read_text()  # no version range
    compose = (ROOT / "docker-compose-cassandra.yml").read_text()
    image = f"cassandra:{cassandra_node.CASSANDRA_VERSION}"
    assert set(re.findall(r"image:\s*(\S+)", compose)) == {image}
    assert image == cassandra_node.CASSANDRA_IMAGE  # what the Docker test containers run


def test_a_cache_of_another_release_is_replaced_by_the_pinned_one(monkeypatch, tmp_path):
    """What Maven is asked for is the pom's release; an older jar in .cache/ is not used."""
    from devtools import cassandra_node

    monkeypatch.setattr(cassandra_node, "CACHE_DIR", tmp_path / "cache")
    old = cassandra_node.cassandra_lib_dir()
    old.mkdir(parents=True)
    (old / "cassandra-all-5.0.1.jar").touch()
    # A stand-in mvn that copies "the dependencies of the pom it is given" as Maven would.
    calls = tmp_path / "mvn-calls"
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    (fake_bin / "mvn").write_text(
        "#!/usr/bin/env python3\n"
        "import re, sys, pathlib\n"
        f"pathlib.Path({str(calls)!r}).write_text(' '.join(sys.argv[1:]))\n"
        "pom = pathlib.Path(sys.argv[sys.argv.index('-f') + 1]).read_text()\n"
        "version = re.search(r'cassandra-all</artifactId>\\s*<version>([^<]+)<', pom)[1]\n"
        "out = next(a for a in sys.argv if a.startswith('-DoutputDirectory='))\n"
        "target = pathlib.Path(out.split('=', 1)[1])\n"
        "target.mkdir(parents=True)\n"
        "(target / f'cassandra-all-{version}.jar').touch()\n"
    )
    (fake_bin / "mvn").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake_bin}:/usr/bin:/bin")

    assert cassandra_node.install_cassandra() == cassandra_node.CASSANDRA_VERSION
    assert sorted(p.name for p in old.iterdir()) == [
        f"cassandra-all-{cassandra_node.CASSANDRA_VERSION}.jar"
    ]
    assert "cassandra-setup/pom.xml" in calls.read_text()
    calls.unlink()
    assert cassandra_node.install_cassandra() == cassandra_node.CASSANDRA_VERSION
    assert not calls.exists(), "the pinned release in the cache is fetched only once"
