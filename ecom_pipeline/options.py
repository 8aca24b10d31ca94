"""What a role is asked to do, besides where the services are (settings.py).

Every default of a role lives here once; the flags, the roles and the scripts read it.
"""

from __future__ import annotations

from dataclasses import dataclass

STATS_INTERVAL = 5.0
# How long after its publish a payment may wait for its order before it is dead-lettered.
ORDER_WAIT = 120.0
# Rows per write request. Cassandra's defaults warn above 10 partitions in an
# unlogged batch (unlogged_batch_across_partitions_warn_threshold) and above
# 5 KiB (batch_size_warn_threshold); ten order rows are about 2.5 KiB.
WRITE_BATCH = 10
# Where --metrics-port listens: every interface, so that a scraper on another host
# (or a sidecar, or Managed Service for Prometheus) reaches it; 127.0.0.1 keeps it local.
METRICS_ADDR = "0.0.0.0"


@dataclass(frozen=True)
class ProducerOptions:
    interval: float
    last_id: int
    first_id: int = 1
    count: int | None = None  # None: orders forever, payments one pass over the ids
    seed: int | None = None
    max_in_flight: int = 1000
    # Seconds the client gathers messages into one publish request. At one message every
    # second or two a window only delays each one; the client's own default is 10 ms.
    batch_window: float = 0.001
    stats_interval: float = STATS_INTERVAL
    metrics_port: int | None = None
    metrics_addr: str = METRICS_ADDR


@dataclass(frozen=True)
class ConsumerOptions:
    batch_size: int = 1000
    pulls: int = 16
    concurrency: int = 256
    write_batch: int = WRITE_BATCH
    ttl: int | None = None  # seconds until written cells expire; None: never
    stats_interval: float = STATS_INTERVAL
    metrics_port: int | None = None
    metrics_addr: str = METRICS_ADDR


CONSUMER = ConsumerOptions()
ORDER_PRODUCER = ProducerOptions(interval=2.0, last_id=80)
PAYMENT_PRODUCER = ProducerOptions(interval=1.0, last_id=500)
