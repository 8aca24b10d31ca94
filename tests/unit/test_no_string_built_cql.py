"""CQL is never built from strings: no f-string, %-format, .format or + around a statement."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CQL_WORDS = (
    "SELECT ",
    "INSERT ",
    "UPDATE ",
    "DELETE ",
    "TRUNCATE ",
    "CREATE ",
    "DROP ",
    "ALTER ",
    "GRANT ",
)
SOURCES = [
    *ROOT.glob("*.py"),
    *(ROOT / "ecom_pipeline").glob("*.py"),
    *(ROOT / "devtools").glob("*.py"),
]


def _has_cql(node: ast.AST) -> bool:
    return any(
        isinstance(n, ast.Constant)
        and isinstance(n.value, str)
        and n.value.lstrip().upper().startswith(CQL_WORDS)
        for n in ast.walk(node)
    )


def test_no_cql_statement_is_formatted_or_concatenated():
    offences, files_with_cql = [], set()
    for path in SOURCES:
        tree = ast.parse(path.read_text())
        if _has_cql(tree):
            files_with_cql.add(path.name)
        for node in ast.walk(tree):
            formatted = (
                isinstance(node, ast.JoinedStr)
                or (isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod | ast.Add))
                or (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "format"
                )
            )
            if formatted and _has_cql(node):
                offences.append(f"{path.name}:{node.lineno}")
    assert offences == [], f"CQL built from strings at {offences}"
    # Not a vacuous pass: the modules that hold the pipeline's statements were read.
    assert {"fact_store.py", "cassandra_node.py"} <= files_with_cql
