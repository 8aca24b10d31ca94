"""A message's write time: its publish time, the same for every copy, in millisecond order."""

import datetime as dt

from ecom_pipeline.outcomes import Delivery

MOMENT = dt.datetime(2024, 1, 21, 12, 1, 30, 169000, tzinfo=dt.UTC)


def delivery(message_id: str, publish_time: dt.datetime = MOMENT) -> Delivery:
    return Delivery("ack", message_id, b"{}", {}, publish_time, 1)


def test_the_write_time_is_the_publish_time_in_microseconds():
    stamp = delivery("42").write_timestamp
    assert stamp // 1000 == 1705838490169
    assert 0 <= stamp % 1000 < 1000


def test_every_copy_of_a_message_has_the_same_write_time():
    assert delivery("42").write_timestamp == delivery("42").write_timestamp


def test_messages_of_one_millisecond_get_different_write_times():
    stamps = {delivery(str(n)).write_timestamp for n in range(200)}
    assert len(stamps) > 150


def test_a_later_millisecond_always_wins_whatever_the_tie_break():
    later = MOMENT + dt.timedelta(milliseconds=1)
    for n in range(300):
        assert delivery(str(n), later).write_timestamp > delivery(str(n + 1)).write_timestamp


def test_a_messages_age_is_counted_from_its_publish_time():
    message = delivery("42")
    assert message.age(MOMENT + dt.timedelta(seconds=90)) == 90.0
    just_now = delivery("42", dt.datetime.now(dt.UTC) - dt.timedelta(seconds=30))
    assert 30 <= just_now.age() < 35
