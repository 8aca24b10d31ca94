"""The chaos run's exact account: rows and dead letters against what was published."""

from __future__ import annotations

import datetime as dt
import json
import logging
import random
import time as time_module

from chaos import logs
from chaos.ledger import (
    ORDER_COLUMNS,
    PAYMENT_COLUMNS,
    DeadLetterSeen,
    Item,
    Ledger,
    account,
    order_columns,
    payment_columns,
)
from ecom_pipeline.cli import JsonFormatter
from ecom_pipeline.messages import mock_order, mock_payment


def published():
    """Order 1 in two versions with its payment, order 2 unpaid, an orphan, an invalid order."""
    rng = random.Random(1)
    ledger = Ledger()
    first, latest, other = mock_order(1, rng), mock_order(1, rng), mock_order(2, rng)
    payment = mock_payment(1, rng)
    for number, order in enumerate((first, other, latest)):
        ledger.confirmed(
            Item("orders", order.to_json(), order.order_id, order_columns(order)), f"o{number}"
        )
    ledger.confirmed(Item("payments", payment.to_json(), 1, payment_columns(payment)), "p1")
    ledger.confirmed(Item("payments", b"{}", 99, reason="order_not_found"), "p2")
    ledger.confirmed(Item("orders", b"{}", 2, reason="invalid:quantity"), "o9")
    rows = {
        1: {**dict(zip(ORDER_COLUMNS, order_columns(latest), strict=True)),
            **dict(zip(PAYMENT_COLUMNS, payment_columns(payment), strict=True))},
        2: {**dict(zip(ORDER_COLUMNS, order_columns(other), strict=True)),
            **dict.fromkeys(PAYMENT_COLUMNS)},
    }  # fmt: skip
    dead = [
        DeadLetterSeen("payments", "p2", "order_not_found"),
        DeadLetterSeen("orders", "o9", "invalid:quantity"),
    ]
    return ledger, rows, dead, first


def test_rows_and_dead_letters_as_published_are_exact():
    ledger, rows, dead, _ = published()
    result = account(ledger, rows.values(), dead)
    assert result.exact and (result.lost, result.wrong) == (0, 0)
    assert (result.rows, result.dead_letters) == (2, 2)
    assert ledger.messages == 6 and ledger.published == {"orders": 4, "payments": 2}


def test_a_row_with_an_older_version_is_wrong():
    ledger, rows, dead, first = published()
    rows[1] = {**rows[1], **dict(zip(ORDER_COLUMNS, order_columns(first), strict=True))}
    result = account(ledger, rows.values(), dead)
    assert (result.lost, result.wrong) == (0, 1)
    assert result.examples[0].startswith("wrong: order 1 is ")
    assert "lost 0, wrong 1" in result.lines()


def test_a_missing_row_a_missing_payment_and_a_missing_dead_letter_are_lost():
    ledger, rows, dead, _ = published()
    del rows[2]
    rows[1] = {**rows[1], **dict.fromkeys(PAYMENT_COLUMNS)}
    result = account(ledger, rows.values(), dead[1:])
    assert (result.lost, result.wrong) == (3, 0)
    assert sorted(result.examples) == [
        "lost: message p2 (payments, order_not_found) is not on its dead-letter topic",
        "lost: order 2 has no row",
        "lost: the payment of order 1 is not attached",
    ]


def test_a_valid_message_dead_lettered_a_wrong_reason_and_a_stray_row_are_wrong():
    ledger, rows, dead, _ = published()
    dead = [
        DeadLetterSeen("payments", "p2", "invalid:card_last_four"),
        DeadLetterSeen("payments", "o9", "invalid:quantity"),
        DeadLetterSeen("orders", "o2", "invalid:quantity"),
    ]
    rows[99] = {**rows[2], "order_id": 99}
    result = account(ledger, rows.values(), dead)
    assert (result.lost, result.wrong) == (0, 4)
    assert any("valid or never published" in e for e in result.examples)
    assert any("row 99 that no valid order" in e for e in result.examples)


def test_message_ids_of_a_restarted_emulator_are_told_apart_by_epoch():
    ledger, rows, dead, _ = published()
    ledger.epoch = 1  # the same id, "p2", again after the emulator restart
    ledger.confirmed(Item("payments", b"{}", 2, reason="invalid:card_last_four"), "p2")
    again = DeadLetterSeen("payments", "p2", "invalid:card_last_four", epoch=1)
    assert account(ledger, rows.values(), [*dead, again]).exact
    result = account(ledger, rows.values(), dead)
    assert result.lost == 1 and "p2 (payments, invalid:card_last_four)" in result.examples[0]


def test_a_repeated_dead_letter_is_counted_not_wrong():
    ledger, rows, dead, _ = published()
    result = account(ledger, rows.values(), [*dead, dead[0]])
    assert result.exact and result.duplicate_dead_letters == 1


def _line(time: str, message: str, level: str = "INFO", **extra) -> str:
    """A log line as a consumer writes it with --log-format json (the roles' own formatter)."""
    moment = dt.datetime.strptime(time, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.UTC)
    record = logging.LogRecord(
        "ecom_pipeline.consumer", getattr(logging, level), __file__, 1, message, (), None
    )
    record.created = moment.timestamp()
    record.msecs = moment.microsecond // 1000
    for key, value in extra.items():
        setattr(record, key, value)
    formatter = JsonFormatter()
    formatter.converter = time_module.gmtime
    line = formatter.format(record)
    assert json.loads(line)["time"] == time
    return line


def test_a_consumer_log_gives_paused_time_processed_messages_and_redeliveries():
    lines = [
        _line("2026-11-26T10:00:00.000Z", "x", stats={"stored": 5, "dead_lettered": 1}),
        _line(
            "2026-11-26T10:00:01.000Z",
            "orders: store outage: Unavailable; backing off and retrying until it works",
            "ERROR",
        ),
        _line(
            "2026-11-26T10:00:31.000Z",
            "orders: working again: the outage that started at 10:00:01 UTC lasted 30s",
            "WARNING",
        ),
        _line("2026-11-26T10:00:32.000Z", "orders: message 7 (delivery 1) -> Stored(what='')"),
        _line("2026-11-26T10:00:33.500Z", "orders: message 8 (delivery 2) -> Stored(what='')"),
        "Traceback (most recent call last):",
        _line("2026-11-26T10:00:40.000Z", "x", stats={"stored": 9, "dead_lettered": 2}),
        _line(
            "2026-11-26T10:00:41.000Z",
            "orders: cannot pull from Pub/Sub: down; backing off and retrying until it works",
            "ERROR",
        ),
    ]
    run = logs.read_run(lines)
    assert (run.outages, run.paused, run.unfinished, run.processed) == (2, 30.0, 1, 11)
    kill = dt.datetime(2026, 11, 26, 10, 0, 25, tzinfo=dt.UTC)
    assert run.redeliveries == [dt.datetime(2026, 11, 26, 10, 0, 33, 500000, tzinfo=dt.UTC)]
    assert logs.recovery(kill, run.redeliveries, window=25) == 8.5
    assert logs.recovery(kill, run.redeliveries, window=5) is None
