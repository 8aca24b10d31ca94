"""Card numbers (PANs) in text, parsed JSON and raw bytes: find them and mask them.

The rule is Google Cloud DLP's CREDIT_CARD_NUMBER: 13 to 19 digits that pass the Luhn check.
Digits are read the way a person reads them, one original character at a time: a character
stands for the digits of its NFKC form (full-width, Arabic-Indic, Devanagari, mathematical,
circled, superscript digits; '⑫' is 12, '⒈' is 1 and a separator) or for its Unicode digit
value ('❶'). Digits form groups; groups joined by runs of separators (anything that is
neither a letter nor a digit: whitespace of every kind, punctuation, symbols, control and
format characters) form a chain, and a letter ends a chain. A card number is a run of whole
consecutive groups of one chain, never a part of a group: a group of more than 19 digits is
not one, and a PAN is not found inside a longer run of digits.

No recursion anywhere, and the cost is linear in the input, a 10 MB chain of digits included.
"""

import datetime as dt
import json
import re
import unicodedata
from array import array
from bisect import bisect_right
from collections.abc import Callable
from decimal import Decimal
from itertools import accumulate, compress, count
from typing import Any, NamedTuple

__all__ = ["Match", "body_holds_card", "find", "luhn_valid", "mask_json", "mask_text", "scan_bytes"]

MIN_DIGITS, MAX_DIGITS = 13, 19


class Match(NamedTuple):
    """A card number in a text: text[start:end] runs from its first digit to its last."""

    start: int
    end: int
    digits: str  # ASCII, e.g. "4111111111111111"


# Folded text (see _fold) has only ASCII digits, ASCII letters and separators.
_CHAIN = re.compile(r"[0-9](?:[^0-9A-Za-z]*+[0-9]){12,}+")  # possessive: no backtracking
_LONG_GROUP = re.compile(r"[0-9]{20,}")  # in no card number, so as good as letters
_CLASS = bytes(100 if chr(b).isdigit() else 97 if chr(b).isalpha() else 32 for b in range(128))
_CLASS += bytes(128)  # folded text is ASCII
# Chains are checked in one pass, joined by a group of 20 digits that no card number spans.
_FILLER = " " + "0" * (MAX_DIGITS + 1) + " "
_DIGIT_FLAG = bytes(int(48 <= b <= 57) for b in range(256))
_NON_DIGITS = bytes(b for b in range(256) if not 48 <= b <= 57)
_GROUP_END = bytes.maketrans(b"de", b"\x00\x01")
_VALUE = bytes.maketrans(b"0123456789", bytes(range(10)))
_DOUBLE = bytes.maketrans(b"0123456789", bytes([0, 2, 4, 6, 8, 1, 3, 5, 7, 9]))
_LUHN_OK = bytes(int(b % 10 == 0) for b in range(256))
_NONZERO = re.compile(rb"[^\x00]")
_HEX = "[0-9a-f]"
_ESCAPE = re.compile(
    rf"(\\(?:u(?:d[89ab]{_HEX}{{2}}\\ud[c-f]{_HEX}{{2}}|{_HEX}{{4}})|.))", re.I | re.S
)
_ESCAPES = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
_SMALLEST, _LARGEST = 10 ** (MIN_DIGITS - 1), 10**MAX_DIGITS
# What goes to the DLQ instead of a body that carries a card number but cannot be
# masked safely (not UTF-8, not JSON, or too large to look at field by field).
REPLACED_BODY = json.dumps(
    {
        "replaced": "the message carried a full card number and could not be masked field by "
        "field, so its body is not forwarded; see the dead letter's attributes"
    }
).encode()
# A string that is exactly an ISO-8601 date and time is a time, though its digits can pass the
# rule: `12:01:30.123456+00:00` alone is 16 digits in groups, Luhn-valid one time in ten.
_DATETIME = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]{1,6})?)?"
    r"(?:Z|[+-][0-9]{2}(?::?[0-9]{2})?)?"
)


class _Table(dict):
    """A lookup table filled on demand; bounded, as its keys come from untrusted input."""

    def __init__(self, make: Callable[[Any], str], fixed: dict) -> None:
        super().__init__(fixed)
        self.make, self.fixed = make, fixed

    def __missing__(self, key: Any) -> str:
        if len(self) > 100_000:
            self.clear()
            self.update(self.fixed)
        self[key] = value = self.make(key)
        return value


def _fold(code: int) -> str:
    """A character as ASCII digits, 'a' for a letter, ' ' for a separator, after NFKC."""
    return "".join(map(_fold_one, unicodedata.normalize("NFKC", chr(code)))) or " "


def _fold_one(char: str) -> str:
    if unicodedata.category(char)[0] == "L":
        return "a"
    value = unicodedata.digit(char, None)  # decimal digits ('٤') and other digits ('❶')
    return " " if value is None else str(value)


def _unescape(escape: str) -> str:
    """A JSON string escape such as \\u0034, decoded and folded."""
    if len(escape) == 12:
        high, low = int(escape[2:6], 16) - 0xD800, int(escape[8:], 16) - 0xDC00
        return _FOLD[0x10000 + (high << 10) + low]
    if len(escape) == 6:
        return _FOLD[int(escape[2:], 16)]
    return _ESCAPES.get(escape[1], escape[1])


_FOLD = _Table(_fold, {code: chr(code) for code in range(128)})
_UNESCAPE = _Table(_unescape, {})
_LATIN1 = bytes(ord(_FOLD[b]) if len(_FOLD[b]) == 1 else 32 for b in range(256))
_LATIN1_WIDE = [(bytes([b]), _FOLD[b].encode()) for b in range(256) if len(_FOLD[b].strip()) > 1]


def luhn_valid(digits: str) -> bool:
    """Whether a string of ASCII digits passes the Luhn check; False if empty or not digits."""
    if not (digits.isascii() and digits.isdigit()):
        return False
    doubled = digits.encode()[-2::-2].translate(_DOUBLE)
    return (sum(map(int, digits[-1::-2])) + sum(doubled)) % 10 == 0


def find(text: str) -> list[Match]:
    """The card numbers in `text`, left to right, not overlapping.

    Of the runs of groups that qualify, the one starting at the earliest group wins, and of
    those the longest. `start` and `end` index `text` and cover whole characters.
    """
    folded = _folded(text)
    if folded is None:
        return []
    spans = [chain.span() for chain in _CHAIN.finditer(folded)]
    joined = _FILLER.join(folded[start:end] for start, end in spans).encode()
    starts = _window_starts(joined)
    if not starts:
        return []
    digit_at = array("q", compress(count(), joined.translate(_DIGIT_FLAG)))
    offsets = list(accumulate((end - start + len(_FILLER) for start, end in spans), initial=0))
    origin = None
    if len(folded) != len(text):
        origin = array("q", accumulate(map(len, map(_FOLD.__getitem__, map(ord, text)))))
    starts_at = starts.to_bytes(len(digit_at), "little")
    matches, first = [], 0
    while hit := _NONZERO.search(starts_at, first):
        first = hit.start()
        after = first + MIN_DIGITS - 1 + starts_at[first].bit_length()
        start, end = digit_at[first], digit_at[after - 1] + 1
        digits = joined[start:end].translate(None, _NON_DIGITS).decode()
        chain = bisect_right(offsets, start) - 1
        shift = spans[chain][0] - offsets[chain]
        start, end = start + shift, end + shift
        if origin is not None:
            start, end = bisect_right(origin, start), bisect_right(origin, end - 1) + 1
        matches.append(Match(start, end, digits))
        first = after
    return matches


def mask_text(text: str) -> str:
    """`text` with every card number replaced by '*'s and its last four digits.

    Repeated until nothing is found, as the last four digits of one number may complete
    another with the digits after them. Returns `text` itself when there is nothing to mask.
    """
    while matches := find(text):
        parts, last = [], 0
        for match in matches:
            parts += text[last : match.start], "*" * (len(match.digits) - 4) + match.digits[-4:]
            last = match.end
        text = "".join(parts) + text[last:]
    return text


def mask_json(value: object) -> tuple[object, list[str]]:
    """A copy of a parsed JSON value with its card numbers masked, and where they were.

    `value` is what json.loads(text, parse_float=Decimal) returns. Keys, strings and numbers
    are checked; a number that holds a card number becomes its masked text, a string. Paths
    look like `$.payment.card`, `$["card no"]`, `$.items[3]` and are masked themselves.
    Nothing found: `value` itself (no copy) and []. Iterative, so any depth of nesting works.
    """
    if not _holds_card(value):
        return value, []
    holder: list[Any] = [None]
    paths: list[str] = []
    stack: list[tuple[Any, Any, Any, Any, bool]] = [(value, holder, 0, ("$", None), False)]
    while stack:
        item, parent, slot, node, key_masked = stack.pop()
        if key_masked:
            paths.append(_path(node))
        if type(item) is dict:
            parent[slot] = copy = {}
            entries = []
            for key, child in item.items():
                masked_key = _masked_scalar(key)
                new_key = key if masked_key is None else masked_key
                while masked_key is not None and new_key in copy:
                    new_key += "*"
                copy[new_key] = None
                node_of_child = (_key_segment(new_key), node)
                entries.append((child, copy, new_key, node_of_child, masked_key is not None))
            stack += reversed(entries)
        elif type(item) is list:
            parent[slot] = copied = [None] * len(item)
            stack += [(item[i], copied, i, (f"[{i}]", node), False) for i in range(len(item))][::-1]
        else:
            masked = _masked_scalar(item)
            parent[slot] = item if masked is None else masked
            if masked is not None and not key_masked:
                paths.append(_path(node))
    return holder[0], paths


def scan_bytes(data: bytes) -> bool:
    """Whether raw bytes hold a card number: for bodies that are not JSON, UTF-8 or small.

    Reads them as Latin-1 and as UTF-8 (bad bytes replaced), each as is, with JSON string
    escapes decoded (\\u0034, surrogate pairs, \\t, \\/ ...), and decoded twice (JSON text
    in a JSON string).
    """
    readings = [_fold_latin1(data)]
    if not data.isascii():
        readings.append(data.decode("utf-8", "replace").translate(_FOLD))
    for text in readings:
        for _ in range(3):
            folded = _folded(text)
            if folded is not None and _window_starts(_FILLER.join(_CHAIN.findall(folded)).encode()):
                return True
            if "\\" not in text:
                break
            parts = _ESCAPE.split(text)
            parts[1::2] = map(_UNESCAPE.__getitem__, parts[1::2])
            text = "".join(parts)
    return False


def _folded(text: str) -> str | None:
    """`text` folded, groups over 19 digits made letters; None if no chain has 13 digits."""
    folded = text if text.isascii() else text.translate(_FOLD)
    shape = folded.encode().translate(_CLASS)
    if b"d" * MIN_DIGITS not in shape.translate(None, b" "):
        return None
    if b"d" * (MAX_DIGITS + 1) in shape:
        folded = _LONG_GROUP.sub(lambda group: "a" * len(group[0]), folded)
        if not _CHAIN.search(folded):
            return None
    return folded


def _window_starts(chains: bytes) -> int:
    """Bit L-13 of byte s is set when digits s to s+L-1 are whole groups and pass Luhn.

    All windows are tested at once with integer arithmetic, one byte a digit: the Luhn sum
    of the L digits ending at e is byte e of the sum over k < L of the digits' values
    (doubled for odd k) shifted k bytes up. Window by window would take minutes on 10 MB.
    """
    digits = chains.translate(None, _NON_DIGITS)
    size = len(digits)
    ends = (chains.translate(_CLASS) + b" ").replace(b"d ", b"e").translate(_GROUP_END, b" ")
    bounds = int.from_bytes(b"\x01" + ends, "little")
    plain = int.from_bytes(digits.translate(_VALUE), "little")
    doubled = int.from_bytes(digits.translate(_DOUBLE), "little")
    sums = starts = 0
    for length in range(1, min(size, MAX_DIGITS) + 1):
        sums += (plain if length % 2 else doubled) << 8 * (length - 1)
        if length >= MIN_DIGITS and (pairs := bounds & (bounds >> 8 * length)):
            luhn = sums.to_bytes(size + length, "little")[length - 1 : size].translate(_LUHN_OK)
            starts |= (int.from_bytes(luhn, "little") & pairs) << (length - MIN_DIGITS)
    return starts


def _holds_card(value: object) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if type(item) is dict:
            for key, child in item.items():
                if _masked_scalar(key) is not None:
                    return True
                if type(child) is dict or type(child) is list:
                    stack.append(child)
                elif _masked_scalar(child) is not None:
                    return True
        elif type(item) is list:
            stack += item
        elif _masked_scalar(item) is not None:
            return True
    return False


def _masked_scalar(value: Any) -> str | None:
    """The masked text of a string or number that holds a card number, else None.

    Numbers are read from their exact value: an int as written; a Decimal in plain form
    (unless its exponent is far from 0: 1e400000 is not expanded) and by its coefficient,
    so that 4111111111111111e5 is seen as well.
    """
    kind = type(value)
    if kind is str:
        if value.isascii() and (len(value) < MIN_DIGITS or not _CHAIN.search(value)):
            return None
        if _is_datetime(value):
            return None
        masked = mask_text(value)
        return None if masked is value else masked
    if kind is int:
        if not _SMALLEST <= abs(value) < _LARGEST:
            return None
        forms = [str(value)]
    elif kind is Decimal or kind is float:
        number = Decimal(repr(value)) if kind is float else value
        if not number.is_finite():
            return None
        text = str(number)
        if len(text) < MIN_DIGITS and "E" not in text:
            return None
        sign, coefficient, _ = number.as_tuple()
        forms = [format(number, "f")] if abs(number.adjusted()) <= 40 else []
        forms.append("-" * sign + "".join(map(str, coefficient)))
    else:
        return None
    for form in forms:
        masked = mask_text(form)
        if masked is not form:
            return masked
    return None


def _is_datetime(text: str) -> bool:
    """Whether `text` is exactly a real ISO-8601 date and time (a valid calendar and clock)."""
    if not _DATETIME.fullmatch(text):
        return False
    try:
        dt.datetime.fromisoformat(text)
    except ValueError:
        return False
    return True


def body_holds_card(data: bytes) -> bool:
    """Whether a message body holds a card number, read as its reader would read it.

    A JSON body is read value by value (as `mask_json`), anything else as raw bytes.
    """
    try:
        value = json.loads(data, parse_float=Decimal)
    except (ValueError, RecursionError):
        return scan_bytes(data)
    return _holds_card(value)


def _key_segment(key: str) -> str:
    """A JSON object key (always a string) as a path segment: `.name` or `["any key"]`."""
    if key.isascii() and key.isidentifier():
        return "." + key
    return "[" + json.dumps(key, ensure_ascii=False) + "]"


def _path(node: tuple | None) -> str:
    """The path to a node (segment, parent), masked: keys in a row can spell a card number."""
    segments = []
    while node is not None:
        segment, node = node
        segments.append(segment)
    return mask_text("".join(reversed(segments)))


def _fold_latin1(data: bytes) -> str:
    """data.decode("latin-1").translate(_FOLD), byte-wise and so 30 times faster."""
    for byte, folded in _LATIN1_WIDE:
        data = data.replace(byte, folded)
    return data.translate(_LATIN1).decode("ascii")
