"""With GOOGLE_CLOUD_PROJECT exported, as Cloud Shell does, the local tooling stays local.

`make services`, `make run` and `make services-status` start and use the local emulator; the
project only names the project on it. Nothing here touches a running service.
"""

import os
import subprocess
import sys
from pathlib import Path

from devtools import run_pipeline, services
from ecom_pipeline.settings import LOCAL_EMULATOR_HOST, Settings

ROOT = Path(__file__).resolve().parents[2]
CLOUD_SHELL = {"GOOGLE_CLOUD_PROJECT": "my-shop-project"}


def _cloud_shell_environ() -> dict[str, str]:
    environ = {k: v for k, v in os.environ.items() if k != "PUBSUB_EMULATOR_HOST"}
    return {**environ, **CLOUD_SHELL}


def test_the_services_status_reports_the_local_emulator_instead_of_failing():
    result = subprocess.run(
        [sys.executable, "-m", "devtools.services", "status"],
        env=_cloud_shell_environ(), cwd=ROOT, capture_output=True, text=True, timeout=60,
        check=False,
    )  # fmt: skip
    assert "must be HOST:PORT" not in result.stderr
    assert result.returncode in (0, 3), result.stderr  # 3: a service is down
    assert "pubsub emulator: " in result.stdout
    assert f"on {LOCAL_EMULATOR_HOST}" in result.stdout.split("pubsub emulator:")[1]


def test_the_roles_of_make_run_are_pointed_at_the_local_emulator():
    env = run_pipeline.role_environment(_cloud_shell_environ())
    assert env["PUBSUB_EMULATOR_HOST"] == LOCAL_EMULATOR_HOST
    assert env["GOOGLE_CLOUD_PROJECT"] == "my-shop-project"
    assert Settings.from_env(env).emulator_host == LOCAL_EMULATOR_HOST


def test_topics_are_created_on_the_emulator_not_in_the_real_project(tmp_path, monkeypatch):
    """setup_pubsub.sh itself, run as `make services` runs it, with a gcloud that records."""
    calls = tmp_path / "gcloud-calls"
    gcloud = tmp_path / "bin" / "gcloud"
    gcloud.parent.mkdir()
    gcloud.write_text(
        "#!/bin/sh\n"
        f'echo "$CLOUDSDK_API_ENDPOINT_OVERRIDES_PUBSUB|$CLOUDSDK_CORE_PROJECT|$*" >> {calls}\n'
    )
    gcloud.chmod(0o755)
    monkeypatch.delenv("PUBSUB_EMULATOR_HOST", raising=False)
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", CLOUD_SHELL["GOOGLE_CLOUD_PROJECT"])
    monkeypatch.setenv("PATH", f"{gcloud.parent}:{os.environ['PATH']}")

    services.create_topics(Settings.for_local_services())

    lines = calls.read_text().splitlines()
    assert any("topics create orders_data" in line for line in lines)
    for line in lines:
        endpoint, project, _ = line.split("|", 2)
        assert (endpoint, project) == (f"http://{LOCAL_EMULATOR_HOST}/", "my-shop-project")


def test_the_roles_themselves_still_take_the_project_as_real_google_cloud():
    """Outside the local tooling nothing changes: a project of your own means real Pub/Sub."""
    assert Settings.from_env(CLOUD_SHELL).emulator_host is None
    assert Settings.for_local_services(CLOUD_SHELL).emulator_host == LOCAL_EMULATOR_HOST
    named = {**CLOUD_SHELL, "PUBSUB_EMULATOR_HOST": "127.0.0.1:8681"}
    assert Settings.for_local_services(named).emulator_host == "127.0.0.1:8681"
