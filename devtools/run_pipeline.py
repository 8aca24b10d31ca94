"""Run the four roles together, each line prefixed with its role (`make run`).

Ctrl+C (or SIGTERM) asks every role to stop cleanly and waits for them; a second
Ctrl+C kills them. The payment producer exits by itself after its 500 payments;
the others run until stopped.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

PR_SET_PDEATHSIG = 1
ROOT = Path(__file__).resolve().parent.parent
ROLES = (
    ("order-consumer", "order_data_consumer.py", "36"),
    ("payment-consumer", "ingest_in_fact_table.py", "35"),
    ("order-producer", "order_data_producer.py", "32"),
    ("payment-producer", "payments_data_producer.py", "33"),
)


def _die_with_parent() -> None:
    """Linux: the role gets SIGTERM if the supervisor dies, so none is left behind."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class Supervisor:
    def __init__(self, colour: bool) -> None:
        self.colour = colour
        self.processes: dict[str, subprocess.Popen] = {}
        self.print_lock = threading.Lock()
        self.lock = threading.Lock()
        self.stopping = False

    def say(self, role: str, colour: str, line: str) -> None:
        prefix = f"{role:>16} | "
        if self.colour:
            prefix = f"\033[{colour}m{prefix}\033[0m"
        with self.print_lock:
            sys.stdout.write(prefix + line)
            sys.stdout.flush()

    def start(self, role: str, script: str, colour: str) -> None:
        process = subprocess.Popen(
            [sys.executable, str(ROOT / script)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # signals reach roles only through us
            preexec_fn=_die_with_parent,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            cwd=ROOT,
        )
        with self.lock:
            self.processes[role] = process
        threading.Thread(target=self._relay, args=(role, colour, process), daemon=True).start()

    def _relay(self, role: str, colour: str, process: subprocess.Popen) -> None:
        assert process.stdout is not None
        for raw in iter(process.stdout.readline, b""):
            self.say(role, colour, raw.decode(errors="replace"))
        code = process.wait()
        self.say(role, colour, f"exited with code {code}\n")
        if code == 2 and not self.stopping:
            self.say(role, colour, "a set-up problem: stopping the other roles\n")
            self.stop()

    def stop(self, sig: int = signal.SIGTERM) -> None:
        self.stopping = True
        with self.lock:
            running = [p for p in self.processes.values() if p.poll() is None]
        for process in running:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, sig)

    def on_signal(self, signum: int, _frame: object) -> None:
        if self.stopping:
            self.say("run", "0", "second signal: killing every role\n")
            self.stop(signal.SIGKILL)
        else:
            self.say("run", "0", "stopping every role cleanly (Ctrl+C again to kill)\n")
            self.stop()

    def wait(self) -> int:
        with self.lock:
            processes = list(self.processes.values())
        codes = [process.wait() for process in processes]
        return 0 if all(code in (0, -signal.SIGTERM) for code in codes) else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.run_pipeline", description=__doc__)
    parser.parse_args(argv)
    supervisor = Supervisor(colour=sys.stdout.isatty())
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, supervisor.on_signal)
    try:
        for role, script, colour in ROLES:
            supervisor.start(role, script, colour)
        return supervisor.wait()
    finally:
        supervisor.stop(signal.SIGKILL)  # only roles still running after an error


if __name__ == "__main__":
    sys.exit(main())
