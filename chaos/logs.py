"""What the consumers' JSON logs say: outages and their length, stats, redeliveries stored."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

OUTAGE_STARTED = "backing off and retrying until it works"
OUTAGE_ENDED = re.compile(r"working again: the outage that started at \S+ UTC lasted (\d+)s")
REDELIVERY_STORED = re.compile(r"message \S+ \(delivery (\d+)\) -> Stored\(")


def entries(lines: Iterable[str]) -> Iterator[dict]:
    """The JSON log entries among `lines` (anything else, e.g. a traceback, is skipped)."""
    for line in lines:
        if line.startswith("{"):
            try:
                yield json.loads(line)
            except ValueError:
                continue


def when(entry: dict) -> dt.datetime:
    return dt.datetime.strptime(entry["time"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.UTC)


@dataclass
class RunLog:
    """One process run of a consumer instance, as its log tells it."""

    outages: int = 0
    paused: float = 0.0  # seconds of outages that ended
    unfinished: int = 0  # outages still going when the log ends (killed, stopped)
    processed: int = 0  # stored + dead-lettered, from the last stats line
    redeliveries: list[dt.datetime] | None = None  # when a redelivered message was stored


def read_run(lines: Iterable[str]) -> RunLog:
    run = RunLog(redeliveries=[])
    open_outage = False
    for entry in entries(lines):
        message = entry.get("message", "")
        stats = entry.get("stats")
        if stats is not None:
            run.processed = stats.get("stored", 0) + stats.get("dead_lettered", 0)
        elif OUTAGE_STARTED in message and entry.get("severity") == "ERROR":
            run.outages += 1
            open_outage = True
        elif match := OUTAGE_ENDED.search(message):
            run.paused += float(match.group(1))
            open_outage = False
        elif (match := REDELIVERY_STORED.search(message)) and int(match.group(1)) > 1:
            run.redeliveries.append(when(entry))
    run.unfinished = int(open_outage)
    return run


def recovery(kill: dt.datetime, redeliveries: Iterable[dt.datetime], window: float) -> float | None:
    """Seconds from a kill to the last redelivered message its role stored within `window`
    seconds after it (the killed instance's leases run out, its messages come back and are
    stored by the others); None if none was."""
    after = [
        (moment - kill).total_seconds()
        for moment in redeliveries
        if 0 <= (moment - kill).total_seconds() <= window
    ]
    return max(after) if after else None
