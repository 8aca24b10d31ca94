"""No card number leaves the consumers, however a message writes it (real services).

Every hostile form of the card-number issue, then hypothesis-generated ones, goes
through the real consumers; afterwards no normalised form of any of the numbers may
appear in the table, either DLQ (bodies and attributes), the consumers' DEBUG logs,
their metrics pages or `status` output. Normalised: JSON escapes decoded, NFKC,
every Unicode decimal digit as ASCII, everything but digits dropped.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import unicodedata
import urllib.request
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tests.integration.pipeline import ROOT, Pipeline
from tests.integration.test_pipeline import WORKED_ORDER, WORKED_PAYMENT
from tests.waiting import eventually

VISA = "4111111111111111"
AMEX = "378282246310005"  # 15 digits
SHORTEST = "4222222222222"  # 13 digits, Luhn-valid
LONGEST = "6011000990139424"  # 16; with 3 more digits below for 19
DIGIT_ZEROS = {"fullwidth": 0xFF10, "arabic-indic": 0x0660, "devanagari": 0x0966, "bold": 0x1D7CE}
SEPARATOR_RUNS = [" ", "-", "\t", "  ", "\u00a0", "\u202f", ".", "_", " - ", "/", "\u200b", "\n"]


# ---------------------------------------------------------------- what a message is


@dataclass(frozen=True)
class Hostile:
    """A message body that carries `number` in some form, for stream `stream`."""

    stream: str
    body: bytes
    number: str
    what: str


def luhn_complete(payload: str) -> str:
    """`payload` with the check digit that makes it pass the Luhn check."""
    total = 0
    for position, char in enumerate(reversed(payload)):
        digit = int(char)
        if position % 2 == 0:
            digit *= 2
            digit -= 9 if digit > 9 else 0
        total += digit
    return payload + str((10 - total % 10) % 10)


def in_script(digits: str, script: str) -> str:
    zero = DIGIT_ZEROS[script]
    return "".join(chr(zero + int(d)) for d in digits)


def grouped(digits: str, separator: str, size: int = 4) -> str:
    return separator.join(digits[i : i + size] for i in range(0, len(digits), size))


def escaped(text: str) -> str:
    """Every character as a JSON \\uXXXX escape (inside a JSON string)."""
    return "".join(f"\\u{ord(c):04x}" for c in text)


def order_with(**fields) -> dict:
    return {**WORKED_ORDER, **fields}


def payment_with(**fields) -> dict:
    return {**WORKED_PAYMENT, **fields}


def as_json(value) -> bytes:
    return json.dumps(value).encode()


def nested(value, depth: int):
    for _ in range(depth):
        value = {"n": [value]}
    return value


def listed_cases() -> list[Hostile]:
    """Each form the card-number issue reports, once."""
    nineteen = luhn_complete(LONGEST + "12")
    cases = [
        Hostile(
            "payments", as_json(payment_with(payment_method=grouped(VISA, " "))), VISA, "plain"
        ),
        Hostile(
            "orders",
            b'{"order_id": 42, "shipping_address": "'
            + escaped(grouped(VISA, " ")).encode()
            + b'"}',
            VISA,
            "every character a JSON escape",
        ),
        Hostile(
            "orders",
            b'{"order_id": 42, "shipping_address": "4111\\u00201111\\u00201111\\u00201111"}',
            VISA,
            "JSON-escaped spaces",
        ),
        Hostile(
            "payments",
            as_json(payment_with(card_last_four=in_script(VISA, "fullwidth"))),
            VISA,
            "full-width digits in a field whose error text echoes values",
        ),
        Hostile(
            "orders",
            as_json(order_with(creation_date=in_script(AMEX, "arabic-indic"))),
            AMEX,
            "Arabic-Indic digits in the date, whose error quotes the value",
        ),
        Hostile(
            "payments",
            as_json(payment_with(payment_status=in_script(SHORTEST, "devanagari"))),
            SHORTEST,
            "Devanagari digits, 13 of them",
        ),
    ]
    for separator in ("\t", "  ", "\u00a0", ".", "_", " -- "):
        cases.append(
            Hostile(
                "orders",
                as_json(order_with(item=grouped(VISA, separator))),
                VISA,
                f"separated by {separator!r}",
            )
        )
    cases += [
        Hostile("orders", as_json({VISA: "key", **WORKED_ORDER}), VISA, "a top-level key"),
        Hostile("payments", b'{"order_id": 42, "n": 4111111111111111.0}', VISA, "float .0"),
        Hostile("payments", b'{"order_id": 42, "n": 4.111111111111111e15}', VISA, "exponent"),
        Hostile("orders", as_json(order_with(order_id=int(nineteen))), nineteen, "19-digit id"),
        Hostile("orders", as_json(nested({"card": VISA}, 300)), VISA, "300 levels deep"),
        Hostile(
            "payments",
            as_json(payment_with(note="x" * 70_000 + grouped(VISA, " "))),
            VISA,
            "over 64 KiB",
        ),
        Hostile(
            "payments",
            b'{"order_id": 42, "card": "' + VISA.encode() + b'", "bad": "\xff\xfe"}',
            VISA,
            "not UTF-8",
        ),
        Hostile(
            "orders", b'{"card": "' + grouped(VISA, " ").encode() + b'", oops', VISA, "not JSON"
        ),
        Hostile(
            "payments",
            b'{"note": "' + escaped(VISA).encode() + b'"' + b", broken",
            VISA,
            "not JSON, digits as escapes",
        ),
        Hostile(
            "orders",
            "caf\u00e9 ".encode("latin-1") + grouped(VISA, " ").encode() + b"\xe9",
            VISA,
            "Latin-1 bytes",
        ),
        Hostile(
            "payments",
            as_json(payment_with(note="y" * 9_800_000, card=VISA)),
            VISA,
            "near Pub/Sub's 10 MB limit",
        ),
    ]
    return cases


# ---------------------------------------------------------------- generated ones

DIGIT_SCRIPTS = st.sampled_from(["ascii", *DIGIT_ZEROS])


@st.composite
def card_numbers(draw) -> str:
    length = draw(st.integers(13, 19))
    payload = draw(st.text("0123456789", min_size=length - 1, max_size=length - 1))
    return luhn_complete(draw(st.sampled_from("3456")) + payload[1:])


@st.composite
def written(draw, number: str) -> str:
    """`number` as text: some script's digits, in groups split by separator runs."""
    script = draw(DIGIT_SCRIPTS)
    digits = number if script == "ascii" else in_script(number, script)
    cuts = sorted(draw(st.sets(st.integers(1, len(digits) - 1), max_size=5)))
    pieces = [digits[a:b] for a, b in zip([0, *cuts], [*cuts, len(digits)], strict=True)]
    separator = draw(st.sampled_from(SEPARATOR_RUNS))
    return separator.join(pieces)


@st.composite
def hostile_messages(draw) -> Hostile:
    number = draw(card_numbers())
    stream = draw(st.sampled_from(["orders", "payments"]))
    base = dict(WORKED_ORDER if stream == "orders" else WORKED_PAYMENT)
    where = draw(st.sampled_from(["field", "extra", "key", "number", "nested", "escaped"]))
    text = draw(written(number))
    prefix = draw(st.sampled_from(["", "card ", "x:", "№ "]))
    if where == "field":
        field = draw(st.sampled_from(sorted(base)))
        base[field] = prefix + text
        body = as_json(base)
    elif where == "extra":
        base["note"] = prefix + text
        body = as_json(base)
    elif where == "key":
        base[prefix + text] = 1
        body = as_json(base)
    elif where == "number":
        form = draw(st.sampled_from(["int", "float", "exponent"]))
        literal = {
            "int": number,
            "float": number + ".0",
            "exponent": f"{number[0]}.{number[1:]}e{len(number) - 1}",
        }[form]
        body = as_json(base)[:-1] + f', "n": {literal}}}'.encode()
    elif where == "nested":
        body = as_json(nested({**base, "card": text}, draw(st.integers(1, 300))))
    else:
        body = b'{"order_id": 42, "note": "' + escaped(prefix + text).encode() + b'"}'
    if draw(st.booleans()) and len(body) < 60_000:
        body += draw(st.sampled_from([b"", b" ", b"\xff", b"x" * 66_000]))
    return Hostile(stream, body, number, where)


# ---------------------------------------------------------------- the check


def normalised(text: str) -> str:
    """The digits a reader could make out of `text`, in order, as ASCII."""
    text = re.sub(r"\\u([0-9a-fA-F]{4})", lambda m: chr(int(m.group(1), 16)), text)
    text = unicodedata.normalize("NFKC", text)
    return "".join(
        str(unicodedata.decimal(c)) for c in text if unicodedata.decimal(c, None) is not None
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Exposure:
    """Runs hostile messages through the consumers and gathers all they let out."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self.ports = [free_port(), free_port()]
        self.roles = [
            pipeline.start(
                "order_data_consumer.py", "--log-level", "DEBUG",
                "--metrics-port", str(self.ports[0]),
            ),
            pipeline.start(
                "ingest_in_fact_table.py", "--order-wait", "0", "--log-level", "DEBUG",
                "--metrics-port", str(self.ports[1]),
            ),
        ]  # fmt: skip
        self.dead: dict[str, list] = {"orders": [], "payments": []}

    def run(self, messages: list[Hostile]) -> str:
        """Publish, wait for every message on a DLQ; return everything exposed, as text."""
        already = self._dead_lettered()
        for message in messages:
            self.pipeline.publish(message.stream, message.body)
        eventually(lambda: _at_least(self._dead_lettered(), already + len(messages)), timeout=180)
        status = subprocess.run(
            [sys.executable, "-m", "ecom_pipeline", "status"],
            env=self.pipeline.env(),
            capture_output=True,
            text=True,
            timeout=120,
            cwd=ROOT,
        )
        assert status.returncode == 0, status.stderr
        letters = {
            stream: self.pipeline.dead_letters(stream, wait=1) for stream in ("orders", "payments")
        }
        assert sum(len(found) for found in letters.values()) == len(messages)
        for stream, found in letters.items():
            self.dead[stream] += found
        exposed = [status.stdout, status.stderr, repr(self.pipeline.rows())]
        exposed += [role.output() for role in self.roles]
        for port in self.ports:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as page:
                exposed.append(page.read().decode())
        for found in letters.values():
            for letter in found:
                exposed.append(letter.data.decode("utf-8", errors="replace"))
                exposed.append(letter.data.decode("latin-1"))
                exposed.append(repr(dict(letter.attributes)))
        return "\n".join(exposed)

    def _dead_lettered(self) -> int:
        """Dead letters so far, from the consumers' latest stats lines."""
        total = 0
        for role in self.roles:
            counts = re.findall(r"dead-lettered (\d+)", role.output())
            total += int(counts[-1]) if counts else 0
        return total


def _at_least(value: int, minimum: int) -> None:
    assert value >= minimum, f"{value} of {minimum}"


def assert_not_exposed(exposed: str, messages: list[Hostile]) -> None:
    digits = normalised(exposed)
    leaked = [m for m in messages if m.number in digits]
    assert not leaked, [(m.what, m.number) for m in leaked[:10]]


@pytest.fixture
def exposure(pipeline):
    return Exposure(pipeline)


def test_every_reported_form_is_dead_lettered_masked_and_never_exposed(exposure):
    cases = listed_cases()
    exposed = exposure.run(cases)
    assert_not_exposed(exposed, cases)
    letters = exposure.dead["orders"] + exposure.dead["payments"]
    assert len(letters) == len(cases)
    assert {letter.attributes["reason"] for letter in letters} <= {
        "invalid:card_number",
        "invalid:message",
    }
    assert all(len(letter.data) <= 1024 * 1024 for letter in letters)
    for role in exposure.roles:
        assert role.process.poll() is None, "a consumer exited"
        assert "Traceback" not in role.output()


@settings(
    max_examples=3,  # 3 x 100 messages, each run
    phases=[Phase.generate],
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(messages=st.lists(hostile_messages(), min_size=100, max_size=100))
def test_generated_card_numbers_never_leave_the_consumers(exposure, messages):
    assert_not_exposed(exposure.run(messages), messages)


def test_a_message_near_pubsubs_limit_is_dead_lettered_truncated(exposure):
    body = as_json(payment_with(note="z" * 9_800_000))
    exposure.pipeline.publish("payments", body)
    [letter] = eventually(lambda: _non_empty(exposure.pipeline.dead_letters("payments", 1)), 120)
    assert letter.attributes["reason"] == "invalid:message"
    assert letter.data == body[: len(letter.data)] and len(letter.data) <= 1024 * 1024
    assert letter.attributes["body_truncated"].startswith(f"{len(body)} bytes")
    for role in exposure.roles:
        assert role.process.poll() is None and "Traceback" not in role.output()


def _non_empty(found: list) -> list:
    assert found, "nothing yet"
    return found
