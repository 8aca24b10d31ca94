"""Card numbers are found in every form a reader would read as one, and masked for good."""

import json
import time
import unicodedata
from decimal import Decimal
from itertools import pairwise

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ecom_pipeline.card_numbers import (
    _fold,
    _Table,
    body_holds_card,
    find,
    luhn_valid,
    mask_json,
    mask_text,
    scan_bytes,
)
from tests.unit.test_messages import ORDER as WORKED_ORDER
from tests.unit.test_messages import PAYMENT

VISA = "4111111111111111"
# The worked example, as json.loads(..., parse_float=Decimal) reads it.
ORDER = {**WORKED_ORDER, "price": Decimal(str(WORKED_ORDER["price"]))}
# Ten characters for the digits 0..9, in scripts and forms a reader reads as digits.
ZEROS = {"ascii": 0x30, "arabic-indic": 0x660, "extended-arabic-indic": 0x6F0, "nko": 0x7C0}
ZEROS |= {"devanagari": 0x966, "bengali": 0x9E6, "tamil": 0xBE6, "thai": 0xE50}
ZEROS |= {"tibetan": 0xF20, "myanmar": 0x1040, "khmer": 0x17E0, "mongolian": 0x1810}
ZEROS |= {"full-width": 0xFF10, "math-bold": 0x1D7CE, "math-monospace": 0x1D7F6}
ZEROS |= {"adlam": 0x1E950, "segmented": 0x1FBF0}
SCRIPTS = {name: "".join(chr(zero + d) for d in range(10)) for name, zero in ZEROS.items()}
SCRIPTS |= {
    "superscript": "⁰¹²³⁴⁵⁶⁷⁸⁹",
    "subscript": "₀₁₂₃₄₅₆₇₈₉",
    "circled": "⓪①②③④⑤⑥⑦⑧⑨",
    "negative-circled": "⓿❶❷❸❹❺❻❼❽❾",
    "full-stop": "🄀⒈⒉⒊⒋⒌⒍⒎⒏⒐",
}
SEPARATORS = [" ", "-", "\t", "  ", "\u00a0", "\u202f", "\u200b", ".", "_", "/", "\n", "\r\n"]
SEPARATORS += ["\u3000", "\u2009", "·", "\x00", "\ufeff", "\u0301", "*", ",", "'", " - ", "\\"]
LETTERS = "aZTxéжд中ǅ"


def luhn_complete(prefix: str) -> str:
    """`prefix` and the check digit that makes it pass Luhn, computed the long way."""
    for check in "0123456789":
        total = 0
        for position, char in enumerate(reversed(prefix + check)):
            value = int(char) * (2 if position % 2 else 1)
            total += value - 9 if value > 9 else value
        if total % 10 == 0:
            return prefix + check
    raise AssertionError


def reference_find(text: str) -> list[tuple[int, int, str]]:
    """The rule spelled out character by character: slow, but plainly right."""
    chains: list[list[tuple[str, int, int]]] = [[]]
    group: list[str] = []
    first = last = 0
    for index, char in enumerate(text):
        for part in unicodedata.normalize("NFKC", char) or " ":
            value = unicodedata.decimal(part, None)
            value = unicodedata.digit(part, None) if value is None else value
            if unicodedata.category(part).startswith("L") or value is None:
                if group:
                    chains[-1].append(("".join(group), first, last + 1))
                    group = []
                if unicodedata.category(part).startswith("L"):
                    chains.append([])
            else:
                first = first if group else index
                group.append(str(value))
                last = index
    if group:
        chains[-1].append(("".join(group), first, last + 1))
    found = []
    for chain in chains:
        i = 0
        while i < len(chain):
            best = None
            for j in range(i, len(chain)):
                digits = "".join(g[0] for g in chain[i : j + 1])
                if len(digits) > 19:
                    break
                if len(digits) >= 13 and luhn_complete(digits[:-1]) == digits:
                    best = (chain[i][1], chain[j][2], digits, j)
            if best:
                found.append(best[:3])
                i = best[3] + 1
            else:
                i += 1
    return found


def digits_of(text: str) -> str:
    """The digits a reader reads in `text`, letters kept as breaks, separators dropped."""
    out = []
    for char in text:
        for part in unicodedata.normalize("NFKC", char):
            value = unicodedata.decimal(part, None)
            value = unicodedata.digit(part, None) if value is None else value
            out.append(str(value) if value is not None else "|" * part.isalpha())
    return "".join(out)


def scalars_and_keys(value):
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            yield from item
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        else:
            yield item


def assert_no_card_left(masked, card: str) -> None:
    for item in scalars_and_keys(masked):
        if isinstance(item, bool) or item is None:
            continue
        text = str(item)
        assert find(text) == [], text
        assert card not in digits_of(text), text


def dumps(value) -> str:
    return json.dumps(value, default=str, ensure_ascii=False)


# Groups of digits in several forms, joined by separators, letters or nothing: about one
# text in four holds a card number, many hold overlapping candidates.
digit_rich_texts = st.lists(
    st.tuples(
        st.text("01234567890123456789٤١⑫⒈¹１", min_size=1, max_size=9),  # noqa: RUF001
        st.sampled_from([" ", "-", " / ", "\t", "\u00a0", "", "x", "é", ". "]),
    ),
    min_size=2,
    max_size=14,
).map(lambda parts: "".join(group + joint for group, joint in parts))


# ---------------------------------------------------------------- Luhn and lengths


def test_luhn_valid_follows_the_check_digit():
    assert luhn_valid(VISA) and luhn_valid("4222222222222") and luhn_valid("0")
    assert not luhn_valid("4111111111111112")
    assert not any(map(luhn_valid, ["", "4111 1111", "٤١١١", "41a1", "-4111111111111111"]))


@pytest.mark.parametrize("length", range(13, 20))
def test_13_to_19_digits_that_pass_luhn_are_card_numbers(length):
    card = luhn_complete("4" + "0123456789" * 2)[-length:]
    card = luhn_complete(card[:-1])
    assert find(f"no. {card}.") == [(4, 4 + length, card)]


@pytest.mark.parametrize("length", [12, 20, 21])
def test_12_or_20_digits_are_not_card_numbers_even_when_they_pass_luhn(length):
    number = luhn_complete("5" * (length - 1))
    assert luhn_valid(number)
    assert find(number) == [] and find(f"x {number} y") == []


def test_numbers_failing_luhn_are_not_card_numbers():
    assert find("4111 1111 1111 1112") == [] and find("4111111111111113") == []


def test_no_card_number_is_found_inside_a_longer_run_of_digits():
    assert find("1234" + VISA) == [] and find(VISA + "0000") == []
    assert find("0" * 100 + VISA + "0" * 100) == []
    assert find("1234 " + VISA)[0].digits == VISA


def test_the_card_number_is_the_run_of_whole_groups_that_passes():
    text = "call 555 4111 1111 1111 1111 now"
    [match] = find(text)
    assert (text[match.start : match.end], match.digits) == ("4111 1111 1111 1111", VISA)


def test_matches_are_left_to_right_and_the_longest_at_the_earliest_group():
    nineteen = luhn_complete("4" * 18)
    text = f"{VISA}, {nineteen[:4]} {nineteen[4:]}; {VISA}"
    assert [m.digits for m in find(text)] == [VISA, nineteen, VISA]
    spans = [(m.start, m.end) for m in find(text)]
    assert spans == sorted(spans) and all(a[1] <= b[0] for a, b in pairwise(spans))


# ---------------------------------------------------------------- forms of digits and separators


@pytest.mark.parametrize("separator", SEPARATORS)
def test_any_run_of_separators_between_groups_joins_them(separator):
    text = "card:" + separator.join(["4111", "1111", "1111", "1111"]) + "!"
    [match] = find(text)
    assert match.digits == VISA and text[match.start : match.end].endswith("1111")
    assert mask_text(text) == "card:************1111!"


def test_every_digit_in_a_group_of_its_own_is_still_read():
    text = " ".join(VISA)
    assert find(text) == [(0, len(text), VISA)]
    assert find("\u200b".join(VISA)) != [] and find(" \t ".join(VISA)) != []


@pytest.mark.parametrize("letter", LETTERS)
def test_letters_break_a_chain(letter):
    assert find(f"4111 1111 1111 111{letter}1") == [] and find(f"4111{letter}1111 1111 1111") == []
    assert find(f"{letter}4111 1111 1111 1111{letter}")[0].digits == VISA


@pytest.mark.parametrize("script", SCRIPTS)
def test_digits_of_any_script_are_read_as_digits(script):
    forms = SCRIPTS[script]
    text = "pay " + "".join(forms[int(d)] for d in VISA) + " ok"
    [match] = find(text)
    assert match.digits == VISA and text[match.start : match.end] == text[4:-3]
    assert "1111" in mask_text(text) and find(mask_text(text)) == []


def test_a_character_for_several_digits_counts_them_all():
    card = luhn_complete("4121111111111")  # 4, ⑫ (12), then ones
    text = "4⑫" + card[3:]
    [match] = find(text)
    assert (match.start, match.end, match.digits) == (0, len(text), card)
    assert mask_text(text) == "*" * 10 + card[-4:]


def test_full_and_mixed_unicode_forms_in_one_number():
    text = "٤١١١ １１１１\u00a0११११\u200b①¹₁₁"  # noqa: RUF001
    assert [m.digits for m in find(text)] == [VISA]


# ---------------------------------------------------------------- things that are not card numbers


@pytest.mark.parametrize(
    "text",
    [
        "2024-01-21T12:01:30Z",
        "2024-01-21T12:01:30.123456Z",
        "2024-01-21T12:01:30+05:30",
        "2024-01-21",
        "21/01/2024 12:01",
        "999.99",
        "1,299.00",
        "$1,234,567.89",
        "123 Main St, City A",
        "order 42 of customer 789, 3 x Laptop at 999.99 on 2024-01-21",
        "0042",
        "+49 30 1234567",
    ],
)
def test_dates_timestamps_prices_and_short_numbers_are_never_flagged(text):
    assert find(text) == [] and mask_text(text) is text and not scan_bytes(text.encode())


@given(
    st.datetimes(),
    st.sampled_from(["%Y-%m-%d", "%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%M:%S.%fZ", "%d.%m.%Y"]),
)
def test_no_date_or_utc_timestamp_is_flagged(moment, layout):
    assert find(moment.strftime(layout)) == []


@given(st.decimals(min_value=0, max_value=10**9, places=2), st.integers(-(10**12) + 1, 10**12 - 1))
def test_prices_and_ids_below_13_digits_are_never_flagged(price, number):
    assert mask_json({"price": price, "id": number}) == ({"price": price, "id": number}, [])


def test_typical_orders_and_payments_come_back_untouched_and_uncopied():
    for message in (ORDER, PAYMENT):
        masked, paths = mask_json(message)
        assert masked is message and paths == []
    for message in (ORDER, PAYMENT):
        assert not scan_bytes(dumps(message).encode())


# ---------------------------------------------------------------- masking


def test_masking_keeps_only_the_last_four_digits():
    assert mask_text(f"card {VISA}, exp 12/27") == "card ************1111, exp 12/27"
    assert mask_text("4111-1111-1111-1111") == "************1111"
    thirteen = luhn_complete("422222222222")
    assert mask_text(thirteen) == "*********" + thirteen[-4:]


def test_nothing_to_mask_returns_the_text_itself():
    text = "nothing here 1234 5678"
    assert mask_text(text) is text


def test_masking_repeats_until_no_card_number_is_left():
    tail = next(tail for tail in (f"{n:012d}" for n in range(100)) if luhn_valid("1111" + tail))
    text = f"{VISA} {tail}"
    assert [m.digits for m in find(text)] == [VISA]
    masked = mask_text(text)
    assert find(masked) == [] and "1111" + tail not in digits_of(masked)


@settings(max_examples=60)
@given(digit_rich_texts)
def test_masked_text_never_holds_a_card_number(text):
    masked = mask_text(text)
    assert find(masked) == []
    assert (masked is text) == (find(text) == [])


@settings(max_examples=150)
@given(digit_rich_texts)
def test_find_agrees_with_the_rule_spelled_out(text):
    assert [tuple(m) for m in find(text)] == reference_find(text)


# ---------------------------------------------------------------- JSON values


def test_json_escapes_are_decoded_before_the_check():
    escaped = '{"note": "4111\\u00201111\\u00201111\\u00201111"}'
    masked, paths = mask_json(json.loads(escaped, parse_float=Decimal))
    assert masked == {"note": "************1111"} and paths == ["$.note"]
    every_digit = json.dumps({"note": VISA}).replace("1", "\\u0031").replace("4", "\\u0034")
    assert mask_json(json.loads(every_digit))[1] == ["$.note"]


def test_a_card_number_as_a_key_is_masked_in_the_copy_and_in_the_path():
    masked, paths = mask_json({"4111 1111 1111 1111": {"cvv": "123"}, "id": 1})
    assert masked == {"************1111": {"cvv": "123"}, "id": 1}
    assert paths == ['$["************1111"]']


def test_keys_that_mask_alike_keep_their_values_apart():
    other = next(c for c in (f"{n:012d}1111" for n in range(1, 100)) if luhn_valid(c))
    masked, _ = mask_json({VISA: 1, other: 2})
    assert sorted(masked.values()) == [1, 2] and all(find(key) == [] for key in masked)


def test_a_path_never_spells_a_card_number():
    value = {"4111": {"1111": {"1111": {"1111": VISA}}}}
    masked, paths = mask_json(value)
    assert masked == {"4111": {"1111": {"1111": {"1111": "************1111"}}}}
    assert len(paths) == 1 and find(paths[0]) == [] and VISA not in digits_of(paths[0])


@pytest.mark.parametrize(
    ("number", "masked"),
    [
        ("4111111111111111", "************1111"),
        ("-4111111111111111", "-************1111"),
        ("4111111111111111.0", "************1111.0"),
        ("4.111111111111111e15", "************1111"),
        ("4111111111111111e0", "************1111"),
        ("4222222222222e0", "*********2222"),
        ("4111111111111111E5", "************1111"),
        ("-4111111111111111E5", "-************1111"),
        ("18E14", "************0000"),
    ],
)
def test_a_json_number_holding_a_card_number_becomes_a_masked_string(number, masked):
    value = json.loads(f'{{"n": {number}, "ok": 1.5}}', parse_float=Decimal)
    assert mask_json(value) == ({"n": masked, "ok": Decimal("1.5")}, ["$.n"])
    assert json.loads(dumps(mask_json(value)[0]))["n"] == masked


def test_numbers_that_are_not_card_numbers_stay_numbers():
    numbers = "1e400000, -1e-400000, 123456789012, 4111111111111112, 1.5, 12345678901234567890"
    numbers += ", 1e999999999, 1000000000000"
    value = json.loads(f"[{numbers}, true, null]", parse_float=Decimal)
    assert mask_json(value) == (value, []) and mask_json(value)[0] is value
    assert mask_json(True) == (True, []) and mask_json(None) == (None, [])


def test_ids_of_13_digits_or_more_that_pass_luhn_count_as_card_numbers():
    masked, paths = mask_json({"order_id": int(luhn_complete("100000000000"))})
    assert paths == ["$.order_id"] and isinstance(masked["order_id"], str)


def test_the_masked_copy_is_json_and_leaves_the_original_alone():
    original = {"payment": {"card": VISA, "items": [1, {"n": f"x {VISA}"}]}, **PAYMENT}
    before = json.loads(dumps(original))
    masked, paths = mask_json(original)
    assert paths == ["$.payment.card", "$.payment.items[1].n"]
    assert json.loads(dumps(original)) == before
    assert json.loads(dumps(masked))["payment"]["items"][1] == {"n": "x ************1111"}
    assert masked["payment"] is not original["payment"]


def test_100000_levels_of_nesting():
    value: object = VISA
    for level in range(100_000):
        value = [value] if level % 2 else {"k": value}
    masked, paths = mask_json(value)
    for level in reversed(range(100_000)):
        masked = masked[0] if level % 2 else masked["k"]
    assert masked == "************1111" and paths == ["$" + "[0].k" * 50_000]
    clean: list = [1]
    for _ in range(100_000):
        clean = [clean]
    assert mask_json(clean)[0] is clean


# ---------------------------------------------------------------- raw bytes


def test_raw_bytes_that_are_not_utf8():
    assert scan_bytes(b"\xff\xfe{card: 4111 1111 1111 1111}\x80")
    assert scan_bytes(b"4111\xff1111\xff1111\xff1111")
    assert not scan_bytes(b"\xff\xfe{card: 4111 1111 1111 1112}\x80")


def test_raw_bytes_in_latin1():
    body = ("card 4" + "¹" * 15 + " end").encode("latin-1")
    assert VISA not in digits_of(body.decode("utf-8", "replace")) and scan_bytes(body)
    assert scan_bytes("4111\u00a01111\u00a01111\u00a01111".encode("latin-1"))


def test_raw_bytes_with_json_escapes():
    escaped = "".join(f"\\u{ord(d):04x}" for d in VISA).encode()
    assert scan_bytes(b'{"c": "' + escaped + b'"')
    assert scan_bytes(b"{broken 4111\\t1111\\u00a01111\\/1111")
    math_bold = "".join(chr(0x1D7CE + int(d)) for d in VISA)
    pairs = math_bold.encode("utf-16-be").hex()
    surrogates = "".join(f"\\u{pairs[i : i + 4]}" for i in range(0, len(pairs), 4))
    assert scan_bytes(f"[{surrogates}".encode())
    assert scan_bytes(json.dumps(json.dumps({"c": "4111\u00a01111\u00a01111\u00a01111"})).encode())
    assert not scan_bytes(b'{"c": "\\u0034\\u0031\\u0031\\u0031 x"}')


def test_10_mb_of_raw_bytes_in_well_under_a_few_seconds():
    line = dumps(ORDER | {"price": 999.99}).encode() + b"\n"
    body = line * (10_000_000 // len(line))
    started = time.perf_counter()
    assert scan_bytes(body + b"4111 1111 1111 1111") and not scan_bytes(body[:1_000_000])
    assert not scan_bytes(b"1 " * 500_000)  # one chain of 500,000 groups, none valid
    assert time.perf_counter() - started < 10


# ---------------------------------------------------------------- properties

digits_forms = st.sampled_from(list(SCRIPTS.values()))
separator_runs = st.lists(st.sampled_from(SEPARATORS), min_size=1, max_size=3).map("".join)
no_digits = st.characters(codec="utf-8").filter(lambda char: not digits_of(char).strip("|"))
surroundings = st.text(no_digits, max_size=12)


@st.composite
def cards(draw) -> str:
    """A Luhn-valid number of 13 to 19 digits, not starting with 0 (it may be a JSON number)."""
    length = draw(st.integers(13, 19))
    body = draw(st.text("0123456789", min_size=length - 2, max_size=length - 2))
    return luhn_complete(draw(st.sampled_from("123456789")) + body)


@st.composite
def written(draw, card: str) -> str:
    """`card` in random scripts, cut into random groups joined by random separator runs."""
    cuts = sorted(draw(st.sets(st.integers(1, len(card) - 1), max_size=len(card) - 1)))
    groups = [card[a:b] for a, b in pairwise([0, *cuts, len(card)])]
    return "".join(
        (draw(separator_runs) if i else "") + "".join(draw(digits_forms)[int(d)] for d in group)
        for i, group in enumerate(groups)
    )


@st.composite
def texts_with_a_card(draw) -> tuple[str, str, str, str]:
    card = draw(cards())
    return card, draw(surroundings), draw(written(card)), draw(surroundings)


@settings(max_examples=60, suppress_health_check=list(HealthCheck))
@given(texts_with_a_card())
def test_a_card_number_in_any_writing_is_found_and_masked_away(case):
    card, before, shown, after = case
    text = before + shown + after
    assert any(m.digits == card and text[m.start : m.end] == shown for m in find(text))
    masked = mask_text(text)
    assert find(masked) == [] and card not in digits_of(masked) and card[-4:] in masked
    assert scan_bytes(text.encode()) and scan_bytes(json.dumps(text).encode())


@st.composite
def json_with_a_card(draw) -> tuple[str, object]:
    card = draw(cards())
    place = draw(st.sampled_from(["text", "key", "int", "negative", "decimal", "exponent"]))
    inner: object = {
        "text": lambda: draw(surroundings) + draw(written(card)) + draw(surroundings),
        "key": lambda: {draw(written(card)): draw(st.integers(0, 9))},
        "int": lambda: int(card),
        "negative": lambda: -int(card),
        "decimal": lambda: Decimal(card + "." + draw(st.sampled_from(["0", "25", "00"]))),
        "exponent": lambda: Decimal(f"{card[0]}.{card[1:]}e{len(card) - 1}"),
    }[place]()
    for _ in range(draw(st.integers(0, 12))):
        key = draw(st.text(no_digits, max_size=6))
        sibling = draw(st.sampled_from([1, "x", None, Decimal("2.5"), [], {}]))
        inner = draw(st.sampled_from([[sibling, inner], {key + "_": sibling, key: inner}]))
    return card, inner


@settings(max_examples=60, suppress_health_check=list(HealthCheck))
@given(json_with_a_card())
def test_a_card_number_anywhere_in_json_is_masked_away(case):
    card, value = case
    before = dumps(value)
    masked, paths = mask_json(value)
    assert paths and masked is not value and dumps(value) == before
    assert_no_card_left(masked, card)
    for path in paths:
        assert find(path) == [] and card not in digits_of(path)


# ---------------------------------------------------------------- the lookup tables


def test_lookup_tables_fill_on_demand_and_stay_bounded_whatever_the_input():
    """Keys come from untrusted text: a table never holds more than about 100,000 of them,
    and clearing it keeps the entries it started with."""
    table = _Table(lambda key: f"<{key}>", {"fixed": "F"})
    assert table["fixed"] == "F" and table[7] == "<7>" and len(table) == 2
    sizes = set()
    for key in range(250_000):
        assert table[key] == f"<{key}>"
        sizes.add(len(table))
    assert max(sizes) == 100_001 and min(sizes) == 2, "cleared down to the fixed entries"
    assert dict.get(table, "fixed") == "F"


def test_folding_a_character_reads_its_digits_letters_and_separators():
    assert [_fold(ord(c)) for c in "7a ٤１⑫⒈é-\u200b"] == [
        "7", "a", " ", "4", "1", "12", "1 ", "a", " ", " "
    ]  # fmt: skip


# ---------------------------------------------------------------- more than one, and the edges


def test_every_card_number_of_a_text_is_masked_and_the_rest_kept():
    text = "visa 4111111111111111, mc 5500-0000-0000-0004; end"
    assert mask_text(text) == "visa ************1111, mc ************0004; end"


def test_raw_bytes_are_read_with_escapes_decoded_twice_as_json_text_in_a_json_string():
    card = "4111\u00a01111\u00a01111\u00a01111"
    assert scan_bytes(json.dumps(json.dumps({"c": card})).encode())
    assert not scan_bytes(json.dumps(json.dumps(json.dumps({"c": card}))).encode())


def test_a_real_timestamp_is_a_time_even_when_its_digits_pass_the_luhn_check():
    moment = "2024-09-23T18:52:22.418104+00:00"  # its digits from 18 on pass the Luhn check
    assert mask_json({"t": moment}) == ({"t": moment}, [])
    not_a_moment = "2024-13-23T23:45:51.204857+00:00"  # month 13: digits, not a time
    assert mask_json({"t": not_a_moment})[1] == ["$.t"]
    assert mask_json({"t": moment.replace("T", "x")})[1] == ["$.t"]


def test_a_json_number_is_read_at_its_exact_value_not_as_a_float():
    """4111111111111110.9999 is no card number; as a float it would be 4111111111111111.0."""
    assert not body_holds_card(b'{"price": 4111111111111110.9999}')
    assert body_holds_card(b'{"price": 4111111111111111.0}')


def test_a_path_shows_a_key_as_it_is_written():
    assert mask_json({"clé": {"n°": VISA}})[1] == ['$["clé"]["n°"]']


def test_a_run_of_more_than_19_digits_ends_a_chain_like_a_letter():
    assert find("4111 1111 " + "5" * 25 + " 1111 1111") == []
    text = "ref 12345678901234567890123 card 4111 1111 1111 1111"
    assert find(text) == [(33, 52, VISA)]
    assert (
        mask_text("x" + "5" * 25 + " 4111 1111 1111 1111")
        == "x" + "5" * 25 + " " + "*" * 12 + "1111"
    )


def test_keys_that_mask_alike_get_stars_added_in_their_order():
    other = next(c for c in (f"{n:012d}1111" for n in range(1, 100)) if luhn_valid(c))
    masked, paths = mask_json({VISA: 1, other: 2, "ok": 3})
    assert masked == {"************1111": 1, "************1111*": 2, "ok": 3}
    assert paths == ['$["************1111"]', '$["************1111*"]']


def test_places_are_named_in_the_order_they_are_written():
    _, paths = mask_json({"a": [VISA, "x", VISA], "b": {"c": VISA}})
    assert paths == ["$.a[0]", "$.a[2]", "$.b.c"]
