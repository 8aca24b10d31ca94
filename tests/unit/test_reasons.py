"""The README's reason table is the reasons the code gives, and says which `redrive` takes."""

import re
from pathlib import Path

from ecom_pipeline.outcomes import INVALID_FIELD, REDRIVABLE, Reason

README = Path(__file__).resolve().parents[2] / "README.md"


def _reason_table() -> dict[str, str]:
    rows = re.findall(r"^\| `([^`]+)` \|.*\| (yes|no) \|$", README.read_text(), re.MULTILINE)
    return dict(rows)


def test_the_readme_lists_every_reason_and_no_other():
    assert set(_reason_table()) == {*Reason, INVALID_FIELD}


def test_the_readme_says_which_reasons_redrive_republishes():
    redrivable = {reason for reason, answer in _reason_table().items() if answer == "yes"}
    assert redrivable == set(REDRIVABLE)
