"""The schedule of faults: made from a seed alone, so that a run can be told and repeated.

Times are seconds from the start of publishing. A fault with a `duration` is undone
after it (a node started again, a toxic removed); a consumer kill is followed by a
restart of the instance at once. The emulator restart waits for the producer to
pause and the consumers to drain, so it happens at or after its time.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

CONSUMERS = ("orders-1", "orders-2", "payments-1", "payments-2")
NODES = (1, 2, 3)
# Toxiproxy sits between the consumers and these: Pub/Sub, and every Cassandra node at once.
SERVICES = ("pubsub", "cassandra")
# The network faults on each service, how many of each, and the amounts drawn from: latency
# (ms, with a quarter of it as jitter), bandwidth (KB/s), timeout (ms until the stalled
# connection is closed); a reset has none.
NETWORK_FAULTS = {"latency": 3, "reset": 3, "bandwidth": 1, "timeout": 1}
AMOUNTS = {
    ("latency", "pubsub"): (200, 500, 1000, 2000),
    ("latency", "cassandra"): (50, 200, 500, 1000),
    ("bandwidth", "pubsub"): (16, 64, 256),
    ("bandwidth", "cassandra"): (16, 64, 256),
    ("timeout", "pubsub"): (1000, 3000),
    ("timeout", "cassandra"): (1000, 3000),
}


@dataclass(frozen=True)
class Timing:
    """How long each kind of fault lasts and how often consumers are killed."""

    kill_every: float
    node_down: float
    two_nodes_down: float
    spike: float
    reset: float


FULL = Timing(kill_every=30, node_down=60, two_nodes_down=30, spike=15, reset=5)
COMPRESSED = Timing(kill_every=15, node_down=20, two_nodes_down=15, spike=6, reset=3)


@dataclass(frozen=True, order=True)
class Fault:
    at: float
    # kill_consumer, kill_node, stop_two_nodes, restart_emulator, or a NETWORK_FAULTS kind
    kind: str
    target: str = ""
    duration: float = 0.0
    amount: int = 0  # the toxic's figure (AMOUNTS)

    def describe(self) -> str:
        what = {
            "kill_consumer": f"SIGKILL consumer {self.target}, restart it",
            "kill_node": f"SIGKILL Cassandra node {self.target} for {self.duration:.0f}s",
            "stop_two_nodes": f"stop Cassandra nodes {self.target} for {self.duration:.0f}s",
            "latency": f"{self.amount} ms latency (jitter {self.amount // 4} ms) on "
            f"{self.target} for {self.duration:.0f}s",
            "reset": f"reset connections to {self.target} for {self.duration:.0f}s",
            "bandwidth": f"{self.amount} KB/s bandwidth to {self.target} for {self.duration:.0f}s",
            "timeout": f"connections to {self.target} stall, closed after {self.amount} ms, "
            f"for {self.duration:.0f}s",
            "restart_emulator": "pause producers, drain, restart the emulator, resume",
        }[self.kind]
        return f"t+{self.at:7.1f}s  {what}"


def make_schedule(seed: int, seconds: float, emulator_by: float, compressed: bool) -> list[Fault]:
    """The faults of a run that publishes for about `seconds`.

    `emulator_by`: the emulator restart comes before this time (while orders are still
    being published, before any payment, so that none waits for its order across it).
    Node faults never overlap, so that at most two nodes are ever down.
    """
    rng = random.Random(seed)
    timing = COMPRESSED if compressed else FULL
    seconds = max(seconds, 4 * timing.node_down)
    faults = []
    at = timing.kill_every * 2 / 3
    while at < seconds:
        faults.append(Fault(round(at, 1), "kill_consumer", rng.choice(CONSUMERS)))
        at += timing.kill_every
    node = rng.choice(NODES)
    faults.append(
        Fault(round(rng.uniform(0.1, 0.2) * seconds, 1), "kill_node", str(node), timing.node_down)
    )
    pair = sorted(rng.sample(NODES, 2))
    faults.append(
        Fault(
            round(rng.uniform(0.6, 0.7) * seconds, 1),
            "stop_two_nodes",
            ",".join(map(str, pair)),
            timing.two_nodes_down,
        )
    )
    for service in SERVICES:
        for kind, count in NETWORK_FAULTS.items():
            for _ in range(count):
                faults.append(
                    Fault(
                        round(rng.uniform(0.05, 0.95) * seconds, 1),
                        kind,
                        service,
                        timing.reset if kind == "reset" else timing.spike,
                        rng.choice(AMOUNTS[kind, service]) if kind != "reset" else 0,
                    )
                )
    faults.append(
        Fault(round(rng.uniform(0.3, 0.8) * min(emulator_by, seconds), 1), "restart_emulator")
    )
    return sorted(faults)


def describe(seed: int, faults: list[Fault]) -> str:
    lines = [f"fault schedule (seed {seed}, {len(faults)} faults):"]
    return "\n".join(lines + [f"  {fault.describe()}" for fault in faults])
