"""The Pub/Sub emulator of the Google Cloud CLI, run as a local daemon.

Owns starting (or reusing) the emulator on PUBSUB_EMULATOR_HOST, stopping it and
wiping its data.
"""

from __future__ import annotations

import logging
import shutil
import urllib.request

from devtools.processes import ManagedProcess, SetupError, check_port_free, port_open, wait_until
from ecom_pipeline.settings import Settings

logger = logging.getLogger(__name__)

EMULATOR_START_TIMEOUT = 90.0

EMULATOR = ManagedProcess("pubsub", "pubsub")


def emulator_address(settings: Settings) -> tuple[str, int]:
    host, _, port = (settings.emulator_host or "").rpartition(":")
    if not host or not port.isdigit():
        raise SetupError(
            "PUBSUB_EMULATOR_HOST must be HOST:PORT for a local emulator, "
            f"not {settings.emulator_host!r}"
        )
    return host, int(port)


def emulator_answers(host: str, port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://{host}:{port}/", timeout=2) as response:
            return response.read().strip() == b"Ok"
    except OSError:
        return False


def start_emulator(settings: Settings) -> None:
    host, port = emulator_address(settings)
    if EMULATOR.pid() is not None:
        logger.info("Pub/Sub emulator is already running (pid %d)", EMULATOR.pid())
        return
    if port_open(host, port):
        if emulator_answers(host, port):
            logger.info("using the Pub/Sub emulator already listening on %s:%d", host, port)
            return
        check_port_free(host, port, "the Pub/Sub emulator")
    spawn_emulator(EMULATOR, host, port, settings.project)
    logger.info("Pub/Sub emulator is ready on %s:%d (project %s)", host, port, settings.project)


def spawn_emulator(
    process: ManagedProcess, host: str, port: int, project: str, fresh: bool = False
) -> None:
    """Run gcloud's emulator as `process` on host:port and wait until it answers.

    `fresh`: start from no topics at all (its data directory emptied first).
    """
    gcloud = shutil.which("gcloud")
    if gcloud is None:
        raise SetupError(
            "the Google Cloud CLI (gcloud) is not installed; install it and its emulator with "
            "`gcloud components install pubsub-emulator beta` (Debian: the google-cloud-cli and "
            "google-cloud-cli-pubsub-emulator packages)."
        )
    data_dir = process.state_dir / "data"
    if fresh:
        shutil.rmtree(data_dir, ignore_errors=True)
    data_dir.mkdir(parents=True, exist_ok=True)
    logger.info("starting the Pub/Sub emulator on %s:%d", host, port)
    running = process.spawn(
        [
            gcloud,
            "beta",
            "emulators",
            "pubsub",
            "start",
            f"--host-port={host}:{port}",
            f"--data-dir={data_dir}",
            f"--project={project}",
            "--quiet",
        ],
    )
    try:
        wait_until(
            lambda: emulator_answers(host, port),
            EMULATOR_START_TIMEOUT,
            f"the Pub/Sub emulator on {host}:{port} did not start",
            lambda: running.poll() is None,
        )
    except SetupError as error:
        output = process.output_tail()
        if "component" in output.lower() or "not installed" in output.lower():
            raise SetupError(
                "the Pub/Sub emulator component of gcloud is missing: run `gcloud components "
                "install pubsub-emulator beta` (Debian: apt-get install "
                f"google-cloud-cli-pubsub-emulator).\n{output}"
            ) from None
        raise SetupError(f"{error}; last lines of {process.output_file}:\n{output}") from None


def stop_emulator() -> None:
    if not EMULATOR.stop(timeout=20):
        logger.info("Pub/Sub emulator is not running (not started here)")


def reset_emulator() -> None:
    stop_emulator()
    shutil.rmtree(EMULATOR.state_dir / "data", ignore_errors=True)
    logger.info("emulator data removed; topics and subscriptions are gone")
