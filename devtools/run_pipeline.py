"""Run the four roles together (`make run`).

On a terminal, a live view refreshes in place: per role its state, rate, totals,
dead letters, delayed payments and errors, and the latest warnings. When the
output is not a terminal (or with --plain), every log line is printed instead,
prefixed with its role.

Ctrl+C (or SIGTERM) asks every role to stop cleanly and waits for them; a second
Ctrl+C kills them. The payment producer exits by itself after its 500 payments;
the others run until stopped.

A role's own flags (see its --help) go with --<role>, or in make with <ROLE>_ARGS;
each role's parser checks them before any role starts:

  make run PAYMENT_CONSUMER_ARGS="--order-wait 10" ORDER_PRODUCER_ARGS="--interval 0.5"
  python -m devtools.run_pipeline --payment-consumer="--order-wait 10" --plain
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import ctypes
import json
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from ecom_pipeline import commands
from ecom_pipeline.settings import Settings

PR_SET_PDEATHSIG = 1
ROOT = Path(__file__).resolve().parent.parent
# role, its command (a top-level script of the same name), its colour
ROLES = (
    ("order-producer", "order_data_producer", "32"),
    ("payment-producer", "payments_data_producer", "33"),
    ("order-consumer", "order_data_consumer", "36"),
    ("payment-consumer", "ingest_in_fact_table", "35"),
)
CLEAR = "\033[H\033[2J"


def _die_with_parent() -> None:
    """Linux: the role gets SIGTERM if the supervisor dies, so none is left behind."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class LiveView:
    """The dashboard: the latest stats of each role and the latest notable events."""

    def __init__(self, roles: list[str], out=sys.stdout) -> None:
        self.out = out
        self.stats: dict[str, dict] = {role: {} for role in roles}
        self.states: dict[str, str] = dict.fromkeys(roles, "starting")
        self.events: collections.deque[str] = collections.deque(maxlen=8)
        self.lock = threading.Lock()
        self.started = time.monotonic()

    def line(self, role: str, text: str) -> None:
        try:
            entry = json.loads(text)
        except ValueError:
            entry = None
        with self.lock:
            if not isinstance(entry, dict):
                if text.strip():
                    self.events.append(f"{role}: {text.strip()[:150]}")
                return
            if self.states[role] == "starting":
                self.states[role] = "running"
            if "stats" in entry:
                self.stats[role] = entry["stats"]
            elif entry.get("severity") in ("WARNING", "ERROR", "CRITICAL"):
                clock = entry.get("time", "")[11:19]
                self.events.append(f"{clock} {role}: {entry.get('message', '')[:150]}")

    def exited(self, role: str, code: int) -> None:
        with self.lock:
            self.states[role] = "done" if code == 0 else f"exit {code}"

    def render(self) -> str:
        with self.lock:
            rows = [
                f"ecom-pipeline: {len(self.stats)} roles, up {time.monotonic() - self.started:.0f}s"
                "    Ctrl+C stops them cleanly",
                "",
                f"{'role':<17} {'state':<9} {'rate/s':>7} {'total':>8} {'stored':>8}"
                f" {'dead-letters':>12} {'delayed':>8} {'errors':>7}",
            ]
            for role, stats in self.stats.items():
                total = stats.get("published", stats.get("received", 0))
                errors = stats.get("retried", 0) + stats.get("lost", 0)
                consumer = "received" in stats
                rows.append(
                    f"{role:<17} {self.states[role]:<9} {stats.get('rate', 0):>7.1f} {total:>8}"
                    f" {stats.get('stored', '-') if consumer else '-':>8}"
                    f" {stats.get('dead_lettered', '-') if consumer else '-':>12}"
                    f" {stats.get('delayed', '-') if consumer else '-':>8} {errors:>7}"
                    + ("  FAILING" if stats.get("failing") else "")
                )
            rows += ["", "latest warnings and errors:"]
            rows += [f"  {event}" for event in self.events] or ["  none"]
        return "\n".join(rows) + "\n"

    def draw(self) -> None:
        self.out.write(CLEAR + self.render())
        self.out.flush()


def flags_variable(role: str) -> str:
    """The environment (and make) variable of a role's flags: PAYMENT_CONSUMER_ARGS."""
    return f"{role.upper().replace('-', '_')}_ARGS"


def role_command(command: str, flags: list[str], live: bool) -> list[str]:
    """How a role is started: its script, the supervisor's flags, then the user's (which win)."""
    argv = [sys.executable, str(ROOT / f"{command}.py"), "--stats-interval", "2"]
    if live:
        argv += ["--log-format", "json"]
    return argv + flags


def check_role_flags(args: argparse.Namespace) -> dict[str, list[str]]:
    """Each role's flags, split as a shell would and refused (exit 2) by the role's own
    parser, naming the role, before any role starts."""
    flags = {}
    for role, command, _ in ROLES:
        flags[role] = shlex.split(getattr(args, role.replace("-", "_")))
        parser = commands.PARSERS[command]()
        parser.prog = f"{command} (--{role} / {flags_variable(role)})"
        parser.parse_args(flags[role])
    return flags


def role_environment(environ: dict[str, str]) -> dict[str, str]:
    """The roles' environment: the local emulator named explicitly, so that a
    GOOGLE_CLOUD_PROJECT exported in the shell does not send them to real Google Cloud."""
    settings = Settings.for_local_services(environ)
    return {**environ, **settings.to_env(), "PYTHONUNBUFFERED": "1"}


class Supervisor:
    def __init__(self, view: LiveView | None, colour: bool, env: dict[str, str]) -> None:
        self.view = view
        self.colour = colour
        self.env = env
        self.processes: dict[str, subprocess.Popen] = {}
        self.relays: list[threading.Thread] = []
        self.print_lock = threading.Lock()
        self.lock = threading.Lock()
        self.stopping = False
        self.setup_problem = False
        self.signals = 0

    def say(self, role: str, colour: str, line: str) -> None:
        if self.view is not None:
            self.view.line(role, line)
            return
        prefix = f"{role:>16} | "
        if self.colour:
            prefix = f"\033[{colour}m{prefix}\033[0m"
        with self.print_lock:
            sys.stdout.write(prefix + line)
            sys.stdout.flush()

    def start(self, role: str, argv: list[str], colour: str) -> None:
        process = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # signals reach roles only through us
            preexec_fn=_die_with_parent,
            env=self.env,
            cwd=ROOT,
        )
        with self.lock:
            self.processes[role] = process
        self.relays.append(
            threading.Thread(target=self._relay, args=(role, colour, process), daemon=True)
        )

    def start_relays(self) -> None:
        """After every role is spawned: preexec_fn is unsafe once other threads run."""
        for relay in self.relays:
            relay.start()

    def _relay(self, role: str, colour: str, process: subprocess.Popen) -> None:
        assert process.stdout is not None
        for raw in iter(process.stdout.readline, b""):
            self.say(role, colour, raw.decode(errors="replace"))
        code = process.wait()
        if self.view is not None:
            self.view.exited(role, code)
        else:
            self.say(role, colour, f"exited with code {code}\n")
        if code == 2 and not self.stopping:
            self.say(role, colour, "a set-up problem: stopping the other roles\n")
            self.setup_problem = True

    def stop(self, sig: int = signal.SIGTERM) -> None:
        self.stopping = True
        with self.lock:
            running = [p for p in self.processes.values() if p.poll() is None]
        for process in running:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, sig)

    def on_signal(self, _signum: int, _frame: object) -> None:
        """Only counts: the wait loop acts, so a signal never waits on a lock."""
        self.signals += 1

    def _act_on_signals(self, handled: int) -> int:
        if self.setup_problem and not self.stopping:
            self.stop()
        if self.signals > handled:
            if self.signals == 1:
                self.say("run", "0", "stopping every role cleanly (Ctrl+C again to kill)\n")
                self.stop()
            else:
                self.say("run", "0", "second signal: killing every role\n")
                self.stop(signal.SIGKILL)
        return self.signals

    def wait(self) -> int:
        with self.lock:
            processes = list(self.processes.values())
        handled = 0
        last_draw = 0.0
        while any(p.poll() is None for p in processes):
            handled = self._act_on_signals(handled)
            if self.view is not None and time.monotonic() - last_draw >= 1.0:
                self.view.draw()
                last_draw = time.monotonic()
            time.sleep(0.1)
        for relay in self.relays:
            relay.join(timeout=5)
        if self.view is not None:
            self.view.draw()
        codes = [process.wait() for process in processes]
        if self.setup_problem:
            return 2
        return 0 if all(code in (0, -signal.SIGTERM) for code in codes) else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devtools.run_pipeline",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--plain", action="store_true", help="log lines even on a terminal")
    for role, command, _ in ROLES:
        variable = flags_variable(role)
        parser.add_argument(
            f"--{role}",
            metavar="FLAGS",
            default=os.environ.get(variable, ""),
            help=f"flags for {command}, as one argument (default: ${variable})",
        )
    args = parser.parse_args(argv)
    flags = check_role_flags(args)
    live = sys.stdout.isatty() and not args.plain
    try:
        env = role_environment(dict(os.environ))
    except ValueError as error:  # a setting's variable is wrong
        print(f"error: {error}", file=sys.stderr)
        return 2
    view = LiveView([r for r, _, _ in ROLES]) if live else None
    supervisor = Supervisor(view, colour=live, env=env)
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, supervisor.on_signal)
    try:
        for role, command, colour in ROLES:
            supervisor.start(role, role_command(command, flags[role], live), colour)
        supervisor.start_relays()
        return supervisor.wait()
    finally:
        supervisor.stop(signal.SIGKILL)  # only roles still running after an error


if __name__ == "__main__":
    sys.exit(main())
