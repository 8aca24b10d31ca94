"""docker-compose-cassandra.yml cannot run here (no Docker engine), so its promises are read."""

from pathlib import Path

import yaml

from devtools.cassandra_node import CASSANDRA_IMAGE

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose-cassandra.yml").read_text())


def _mounts(service: dict) -> dict[str, str]:
    """container path -> source, for short-syntax volumes."""
    mounts = {}
    for volume in service.get("volumes", []):
        source, target, *_ = volume.split(":")
        mounts[target] = source
    return mounts


def test_cassandra_is_the_official_image_of_the_pinned_release_on_9042_with_a_named_volume():
    cassandra = COMPOSE["services"]["cassandra"]
    assert cassandra["image"] == CASSANDRA_IMAGE
    assert "127.0.0.1:9042:9042" in cassandra["ports"]
    mounts = _mounts(cassandra)
    assert mounts["/var/lib/cassandra"] in COMPOSE["volumes"]


def test_password_authentication_comes_from_the_mounted_config():
    cassandra = COMPOSE["services"]["cassandra"]
    source = _mounts(cassandra)["/pipeline-config/cassandra.yaml"]
    config = yaml.safe_load((ROOT / source).read_text())
    assert config["authenticator"]["class_name"].endswith("PasswordAuthenticator")
    command = " ".join(cassandra["command"])
    assert "cp /pipeline-config/cassandra.yaml /etc/cassandra/cassandra.yaml" in command
    assert "docker-entrypoint.sh cassandra -f" in command


def test_the_docker_entrypoint_finds_the_address_keys_it_rewrites():
    text = (ROOT / "cassandra-setup" / "cassandra.yaml").read_text()
    for key in ("listen_address:", "rpc_address:", "broadcast_address:", "broadcast_rpc_address:"):
        assert any(line.lstrip("# ").startswith(key) for line in text.splitlines()), key
    assert "- seeds:" in text


def test_healthcheck_waits_for_the_cql_port():
    healthcheck = COMPOSE["services"]["cassandra"]["healthcheck"]
    assert "nodetool statusbinary" in " ".join(healthcheck["test"])
    assert healthcheck["retries"] >= 10


def test_one_shot_init_creates_admin_and_applies_the_same_schema():
    init = COMPOSE["services"]["cassandra-init"]
    assert init["image"] == CASSANDRA_IMAGE
    assert init["depends_on"]["cassandra"]["condition"] == "service_healthy"
    assert init["restart"] == "no"
    mounts = _mounts(init)
    assert mounts["/init/schema.cql"] == "./schema.cql"
    script = (ROOT / mounts[init["entrypoint"][0]]).read_text()
    assert "-u cassandra -p cassandra -f /init/create_admin.cql" in script
    assert "-u admin -p admin -f /init/schema.cql" in script
    for source in mounts.values():
        assert (ROOT / source).exists(), source
    create_admin = (ROOT / mounts["/init/create_admin.cql"]).read_text()
    assert "CREATE ROLE IF NOT EXISTS admin" in create_admin
    assert "PASSWORD = 'admin'" in create_admin
