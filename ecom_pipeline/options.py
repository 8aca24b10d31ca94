"""What a role is asked to do, besides where the services are (settings.py)."""

from __future__ import annotations

from dataclasses import dataclass

from ecom_pipeline.cassandra_store import WRITE_BATCH


@dataclass(frozen=True)
class ProducerOptions:
    interval: float
    last_id: int
    first_id: int = 1
    count: int | None = None  # None: orders forever, payments one pass over the ids
    seed: int | None = None
    max_in_flight: int = 1000
    stats_interval: float = 5.0
    metrics_port: int | None = None


@dataclass(frozen=True)
class ConsumerOptions:
    batch_size: int = 1000
    pulls: int = 4
    concurrency: int = 256
    write_batch: int = WRITE_BATCH
    stats_interval: float = 5.0
    naive: bool = False
    metrics_port: int | None = None


CONSUMER = ConsumerOptions()
ORDER_PRODUCER = ProducerOptions(interval=2.0, last_id=80)
PAYMENT_PRODUCER = ProducerOptions(interval=1.0, last_id=500)
