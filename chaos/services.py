"""The chaos run's own services: an emulator on a port of its own, the consumer instances.

The emulator is the Google Cloud CLI's, as devtools.pubsub_emulator runs it, but a
separate process on CHAOS_EMULATOR_PORT, so that restarting it (one of the faults)
touches no one else's topics. Consumer instances are the real role scripts.
"""

from __future__ import annotations

import datetime as dt
import logging
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from devtools.processes import ROOT, ManagedProcess, check_port_free
from devtools.pubsub_emulator import spawn_emulator

logger = logging.getLogger(__name__)

CHAOS_EMULATOR_HOST = "127.0.0.1"
CHAOS_EMULATOR_PORT = 8095
EMULATOR = ManagedProcess("chaos-pubsub", "chaos-pubsub")


def start_emulator(project: str) -> None:
    """A fresh emulator (no topics) on CHAOS_EMULATOR_PORT; SetupError if it does not come up."""
    host, port = CHAOS_EMULATOR_HOST, CHAOS_EMULATOR_PORT
    check_port_free(host, port, "the chaos run's Pub/Sub emulator")
    spawn_emulator(EMULATOR, host, port, project, fresh=True)


def stop_emulator() -> None:
    EMULATOR.stop(timeout=20)


@dataclass
class Instance:
    """One consumer instance (e.g. orders-1): the script, run again after each kill."""

    name: str
    script: str
    args: list[str]
    env: dict[str, str]
    workdir: Path
    runs: list[Path] = field(default_factory=list)
    kills: list[dt.datetime] = field(default_factory=list)
    process: subprocess.Popen | None = None

    @property
    def role(self) -> str:
        return self.name.rsplit("-", 1)[0]

    def start(self) -> None:
        log = self.workdir / f"{self.name}-run{len(self.runs) + 1}.log"
        self.runs.append(log)
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, str(ROOT / self.script), *self.args],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=ROOT,
            )

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL, then a new run at once."""
        if self.alive():
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()
        self.kills.append(dt.datetime.now(dt.UTC))
        self.start()

    def stop(self) -> int | None:
        """SIGTERM (finish the batch in hand), SIGKILL after 30 s; the exit code."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                return self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
        return self.process.wait()
