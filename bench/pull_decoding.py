"""What reading a pull response costs: the client's proto-plus wrappers against the raw protobuf.

    python -m bench.pull_decoding --messages 1000

ecom_pipeline.pubsub.pull reads `response._pb` because of the difference this prints.
"""

from __future__ import annotations

import argparse
import datetime as dt
import time

from google.pubsub_v1.types import PubsubMessage, PullResponse, ReceivedMessage

from ecom_pipeline.outcomes import Delivery
from ecom_pipeline.pubsub import _delivery


def through_wrappers(response: PullResponse) -> list[Delivery]:
    return [
        Delivery(
            received.ack_id,
            received.message.message_id,
            received.message.data,
            dict(received.message.attributes),
            received.message.publish_time,
            received.delivery_attempt,
        )
        for received in response.received_messages
    ]


def through_protobuf(response: PullResponse) -> list[Delivery]:
    return [_delivery(received) for received in response._pb.received_messages]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    body = b'{"order_id": 42, "customer_id": 789, "item": "Laptop", "quantity": 1}'
    now = dt.datetime.now(dt.UTC)
    wire = PullResponse.serialize(
        PullResponse(
            received_messages=[
                ReceivedMessage(
                    ack_id=f"ack-{i}",
                    delivery_attempt=1,
                    message=PubsubMessage(data=body, message_id=str(i), publish_time=now),
                )
                for i in range(args.messages)
            ]
        )
    )
    for read in (through_wrappers, through_protobuf):
        best = float("inf")
        for _ in range(args.rounds):
            response = PullResponse.deserialize(wire)
            started = time.perf_counter()
            read(response)
            best = min(best, time.perf_counter() - started)
        print(f"{read.__name__:<17} {best / args.messages * 1e6:6.1f} µs a message")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
