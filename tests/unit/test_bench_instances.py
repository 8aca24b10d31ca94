"""The multi-consumer drain reads its progress from the consumers' own log lines."""

import logging

from bench.instances import stored_in
from ecom_pipeline.outcomes import Delay, Stored
from tests.unit.test_consumer import consumer, deliveries


def test_the_stored_count_is_read_from_the_line_a_consumer_logs_for_each_batch(caplog):
    caplog.set_level(logging.INFO, logger="ecom_pipeline.consumer")
    outcomes = [Stored(f"order {i}") for i in range(12)] + [Delay(30, "order 9 not stored yet")]
    consumer(lambda batch: outcomes).process(deliveries(13))
    assert [stored_in(record.getMessage()) for record in caplog.records] == [12, 0]
    assert stored_in("order consumer: pulling from projects/p/subscriptions/s") == 0
