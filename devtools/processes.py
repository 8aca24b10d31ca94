"""Processes we start and find again, and what the local services have in common.

Owns the project's paths (.cache/ for downloads, .local/ for state), SetupError,
ManagedProcess (a daemon tracked through its pid file) and the port and readiness
checks that Cassandra and the Pub/Sub emulator both use.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent
CACHE_DIR = ROOT / ".cache"
STATE_DIR = ROOT / ".local"

STOP_TIMEOUT = 60.0


class SetupError(RuntimeError):
    """A problem of the machine's set-up, with a message that says what to do."""


@dataclass(frozen=True)
class ManagedProcess:
    """A daemon we started, found again through its pid file."""

    name: str
    marker: str  # a string of its command line, to tell it from a recycled pid
    root: Path | None = None  # where its state directory is: STATE_DIR unless given

    @property
    def state_dir(self) -> Path:
        return (self.root or STATE_DIR) / self.name

    @property
    def pid_file(self) -> Path:
        return self.state_dir / "pid"

    @property
    def output_file(self) -> Path:
        return self.state_dir / "logs" / "stdout.log"

    def pid(self) -> int | None:
        """The pid of the running daemon, or None (a stale pid file is removed)."""
        try:
            pid = int(self.pid_file.read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError):
            self.pid_file.unlink(missing_ok=True)
            return None
        if self.marker.encode() not in cmdline or _is_zombie(pid):
            self.pid_file.unlink(missing_ok=True)
            return None
        return pid

    def spawn(self, argv: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
        self.output_file.parent.mkdir(parents=True, exist_ok=True)
        with self.output_file.open("ab") as out:
            process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=env,
                cwd=self.state_dir,
            )
        self.pid_file.write_text(f"{process.pid}\n")
        return process

    def stop(self, timeout: float = STOP_TIMEOUT, sig: signal.Signals = signal.SIGTERM) -> bool:
        """`sig` (SIGTERM) to the whole process group, SIGKILL after `timeout`; True if it ran."""
        pid = self.pid()
        if pid is None:
            return False
        logger.info("stopping %s (pid %d) with %s", self.name, pid, sig.name)
        _signal_group(pid, sig)
        deadline = time.monotonic() + timeout
        while _group_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if _group_alive(pid):
            logger.warning("%s did not stop within %.0fs; killing it", self.name, timeout)
            _signal_group(pid, signal.SIGKILL)
            while _group_alive(pid):
                time.sleep(0.1)
        self.pid_file.unlink(missing_ok=True)
        return True

    def output_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.output_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, sig)


def _group_alive(pgid: int) -> bool:
    """Whether any live (non-zombie) process is left in the process group."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def wait_until(
    check: Callable[[], bool], timeout: float, what: str, alive: Callable[[], bool]
) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if not alive():
            raise SetupError(f"{what}: the process exited")
        if time.monotonic() > deadline:
            raise SetupError(f"{what}: not ready after {timeout:.0f}s")
        time.sleep(0.5)


def check_port_free(host: str, port: int, what: str) -> None:
    if port_open(host, port):
        raise SetupError(
            f"port {port} ({what}) on {host} is taken by another process. "
            f"Find it with `ss -ltnp 'sport = :{port}'` and stop it, then run again."
        )
