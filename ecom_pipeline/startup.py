"""Waiting at start-up for a service that is not up yet, the same way for Cassandra and Pub/Sub."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def until_up(
    call: Callable[[], T],
    seconds: float,
    *,
    passing: Callable[[Exception], bool],
    announce: Callable[[Exception], None],
) -> T:  # pragma: no mutate block
    """`call()` once a second while it fails in a `passing` way, for up to `seconds`.

    `announce` is told the first such failure (one log line, not one a second); any other
    failure, or a passing one after the time is up, is raised as it is.
    """
    deadline = time.monotonic() + seconds
    announced = False
    while True:
        try:
            return call()
        except Exception as error:
            if not passing(error) or time.monotonic() >= deadline:
                raise
            if not announced:
                announce(error)
                announced = True
            time.sleep(1)
