"""The product's own docs stand alone: no link leaves the repository, and the README states the
names, fields, rates, schema and worked example the code keeps."""

import json
import re
import tomllib
from pathlib import Path

import pytest

from ecom_pipeline import messages, options
from ecom_pipeline.settings import Settings
from tests.unit.test_messages import ORDER, PAYMENT

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
TEXT_FILES = ("*.md", "*.py", "*.sh", "*.toml", "*.yml", "*.yaml", "*.cql", "*.xml", "Makefile")


def _repository_files(*patterns: str) -> list[Path]:
    """The repository's own files: no hidden directory (.git, .venv, .cache, .local, ...), nor
    what tools build (build/, and mutants/, mutmut's copy)."""
    found = set()
    for pattern in patterns:
        for path in ROOT.rglob(pattern):
            relative = path.relative_to(ROOT)
            if not any(
                part.startswith(".") or part in ("build", "mutants") for part in relative.parts[:-1]
            ):
                found.add(path)
    return sorted(found)


def _without_code(markdown: str) -> str:
    return re.sub(r"^```.*?^```", "", markdown, flags=re.MULTILINE | re.DOTALL)


def _anchors(markdown: str) -> set[str]:
    """GitHub's anchors for the headings of a Markdown text."""
    anchors = set()
    for heading in re.findall(r"^#{1,6} (.+)$", _without_code(markdown), flags=re.MULTILINE):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        anchors.add(slug)
    return anchors


def _section(title: str) -> str:
    return README.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]


MARKDOWN = _repository_files("*.md")


@pytest.mark.parametrize("document", MARKDOWN, ids=lambda path: str(path.relative_to(ROOT)))
def test_every_link_of_the_docs_stays_in_the_repository_and_arrives(document):
    text = _without_code(document.read_text())
    for target in re.findall(r"\]\(([^)\s]+)", text):
        assert "://" not in target, f"{target}: the docs link out of the repository"
        path, _, anchor = target.partition("#")
        file = (document.parent / path).resolve() if path else document
        assert file.is_relative_to(ROOT), f"{target} leaves the repository"
        assert file.exists(), f"{target}: no such file in the repository"
        if anchor:
            assert anchor in _anchors(file.read_text()), f"{target}: no such section"


# Written in pieces so that this file does not match itself.
OUTSIDE_SPEC = re.compile("SPEC" + r"\.md|\.\./" + "shared")


def test_nothing_cites_a_spec_outside_the_repository():
    for path in _repository_files(*TEXT_FILES):
        assert not OUTSIDE_SPEC.search(path.read_text(errors="replace")), path.relative_to(ROOT)


def test_the_readme_leads_with_the_two_commands_and_tells_how_to_deploy_installed_commands():
    first_section = re.search(r"^## (.+)$", README, flags=re.MULTILINE)[1]
    assert first_section == "The two commands"
    assert "make run" in _section("The two commands") and "make test" in _section(
        "The two commands"
    )
    deploying = _section("Deploying the roles as installed commands")
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    for command in scripts:
        assert f"`{command}`" in deploying, command
    assert "pip install" in deploying


def test_the_readme_states_the_names_fields_and_mock_values_the_code_keeps():
    section = _section("Messages and the table")
    settings = Settings()
    for stream in settings.streams:
        assert f"`{stream.topic}`" in section and f"`{stream.dlq_topic}`" in section
        assert f"`{stream.subscription}`" in _section("Topics and subscriptions")
    for field in (*messages.Order.__dataclass_fields__, *messages.Payment.__dataclass_fields__):
        assert f"| `{field}` |" in section, field
    for values in (messages.ITEMS, messages.SHIPPING_ADDRESSES, messages.ORDER_STATUSES,
                   messages.PAYMENT_METHODS):  # fmt: skip
        for value in values:
            assert f"`{value}`" in section, value
    assert f"+ {messages.PAYMENT_ID_OFFSET}" in section


def test_the_readme_states_the_rates_and_id_ranges_of_the_mock_producers():
    section = _section("Messages and the table")
    orders, payments = options.ORDER_PRODUCER, options.PAYMENT_PRODUCER
    assert f"ids {orders.first_id}..{orders.last_id}, cycling forever" in section
    assert f"one order every {orders.interval:g} s" in section
    assert f"ids {payments.first_id}..{payments.last_id}, each once" in section
    assert payments.interval == 1 and "one payment a second" in section


def test_the_readme_states_the_tables_columns_and_types_as_schema_cql_makes_them():
    schema = (ROOT / "schema.cql").read_text()
    body = schema.split("orders_payments_facts (", 1)[1].split(");", 1)[0]
    columns = dict(re.findall(r"^\s*(\w+) (\w+)", body, flags=re.MULTILINE))
    assert len(columns) == 13
    table = _section("Messages and the table").split("**The table.**", 1)[1]
    for line in table.split("**Worked example.**", 1)[0].splitlines():
        if line.startswith("| `"):
            names = re.findall(r"`(\w+)`", line.split("|")[1])
            cql_type = re.search(r"`(\w+)`", line.split("|")[2])[1]
            for name in names:
                assert columns.pop(name) == cql_type, name
    assert not columns, f"columns the README does not list: {sorted(columns)}"


def test_the_readme_worked_example_is_the_one_the_tests_run():
    example = _section("Messages and the table").split("**Worked example.**", 1)[1]
    order, payment = (json.loads(block) for block in re.findall(r"```json\n(.+?)\n```", example))
    assert (order, payment) == (ORDER, PAYMENT)
    messages.parse_order(json.dumps(order).encode())
    messages.parse_payment(json.dumps(payment).encode())
    row = {}
    for line in example.splitlines():
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if len(cells) == 5 and cells[0].startswith("`"):
            for name, value in (cells[0:2], cells[3:5]):
                if name:
                    row[name.strip("`")] = value
    assert row == {name: str(value) for name, value in {**ORDER, **PAYMENT}.items()}
