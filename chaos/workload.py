"""The messages of a chaos run, made from a seed: orders in version rounds, then payments.

Round k publishes version k of every order id that has at least k versions (1 to
`max_versions` each), so a later version always has a later publish time and the
latest published version is unambiguous. Round 1 also carries invalid orders
(quantity 0) for existing ids. Then payments: a valid one for every order, orphans for
ids never published, and invalid ones (card_last_four "x", a full card number in a note).
"""

from __future__ import annotations

import datetime as dt
import json
import random
from collections.abc import Iterator
from dataclasses import dataclass

from chaos.ledger import Item, order_columns, payment_columns
from ecom_pipeline.messages import mock_order, mock_payment
from ecom_pipeline.outcomes import Reason

CARD_NOTE = "card 4111 1111 1111 1111"  # the Luhn-valid test number: invalid:card_number


@dataclass(frozen=True)
class Workload:
    orders: int
    seed: int
    max_versions: int = 3
    orphan_share: float = 0.02
    invalid_share: float = 0.01

    def versions(self) -> list[int]:
        """versions()[i - 1]: how many versions order i gets."""
        rng = random.Random(f"{self.seed}-versions")
        return [rng.randint(1, self.max_versions) for _ in range(self.orders)]

    def count(self) -> int:
        """Every message of the run."""
        return sum(self.versions()) + self.invalid() + self.payment_count()

    def payment_count(self) -> int:
        return self.orders + self.orphans() + self.invalid()

    def invalid(self) -> int:
        """Invalid orders, and as many invalid payments."""
        return round(self.orders * self.invalid_share)

    def orphans(self) -> int:
        return round(self.orders * self.orphan_share)

    def phases(self) -> Iterator[list[Item]]:
        """Every message in publish order, one phase (a round, the payments) in memory at a
        time: a million orders' round is some hundreds of MB of messages."""
        yield from self.rounds()
        yield self.payments()

    def rounds(self) -> Iterator[list[Item]]:
        """The order rounds, in publish order."""
        versions = self.versions()
        today = dt.datetime.now(dt.UTC).date()
        for version in range(1, self.max_versions + 1):
            rng = random.Random(f"{self.seed}-orders-{version}")
            items = [
                _order(mock_order(order_id, rng, today))
                for order_id in range(1, self.orders + 1)
                if versions[order_id - 1] >= version
            ]
            if version == 1:
                items += self._invalid_orders(rng)
                rng.shuffle(items)
            yield items

    def _invalid_orders(self, rng: random.Random) -> list[Item]:
        items = []
        for _ in range(self.invalid()):
            order = mock_order(rng.randint(1, self.orders), rng).__dict__
            data = json.dumps({**order, "quantity": 0}).encode()
            items.append(Item("orders", data, order["order_id"], reason=Reason.invalid("quantity")))
        return items

    def payments(self) -> list[Item]:
        rng = random.Random(f"{self.seed}-payments")
        items = []
        for order_id in range(1, self.orders + 1):
            payment = mock_payment(order_id, rng)
            items.append(Item("payments", payment.to_json(), order_id, payment_columns(payment)))
        for order_id in range(self.orders + 1, self.orders + self.orphans() + 1):
            items.append(
                Item(
                    "payments",
                    mock_payment(order_id, rng).to_json(),
                    order_id,
                    reason=Reason.ORDER_NOT_FOUND,
                )
            )
        for index in range(self.invalid()):
            order_id = rng.randint(1, self.orders)
            fields = mock_payment(order_id, rng).__dict__
            if index % 2:
                fields, reason = {**fields, "note": CARD_NOTE}, Reason.CARD_NUMBER
            else:
                fields, reason = {**fields, "card_last_four": "x"}, Reason.invalid("card_last_four")
            items.append(Item("payments", json.dumps(fields).encode(), order_id, reason=reason))
        rng.shuffle(items)
        return items


def _order(order) -> Item:
    # json.dumps of the fields as Order.to_json writes them, without asdict's deep copy
    return Item("orders", json.dumps(vars(order)).encode(), order.order_id, order_columns(order))
