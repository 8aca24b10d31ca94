"""Warm and cold stops on SIGINT/SIGTERM, the way rq's worker does it.

The first signal asks the role to stop after the work in hand (publishes in
flight, the batch being stored) and to exit 0; a second signal exits at once.
"""

from __future__ import annotations

import logging
import os
import signal
import threading

logger = logging.getLogger(__name__)


class Shutdown:
    """A flag set by the first SIGINT/SIGTERM; `wait` sleeps but wakes up on it."""

    def __init__(self) -> None:
        self._requested = threading.Event()
        self.signal_name: str | None = None

    @property
    def requested(self) -> bool:
        return self._requested.is_set()

    def request(self, why: str = "requested") -> None:
        self.signal_name = self.signal_name or why
        self._requested.set()

    def wait(self, seconds: float) -> bool:
        """Sleep up to `seconds`; True if a stop was requested meanwhile."""
        return self._requested.wait(max(seconds, 0))

    def install(self) -> Shutdown:
        """Handle SIGINT and SIGTERM in this (main) thread."""
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._on_signal)
        return self

    def _on_signal(self, signum: int, _frame: object) -> None:
        name = signal.Signals(signum).name
        if self.requested:
            logger.warning("second %s: stopping at once", name)
            os._exit(128 + signum)
        logger.info("%s received: finishing the work in hand, then stopping (again to force)", name)
        self.request(name)
