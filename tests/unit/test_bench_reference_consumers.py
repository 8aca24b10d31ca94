"""The benchmark's baseline is the reference design, checked from its source and with fakes.

The reference consumers: a synchronous pull of at most 10 (no
return_immediately), the messages one after another, one acknowledge per pull,
nothing concurrent, a JSON error crashes; orders: a prepared INSERT of all 13
columns, one synchronous execute per message; payments: an unprepared f-string
SELECT, then an unprepared UPDATE with %s parameters or an unawaited DLQ publish;
two prints per message; default driver settings.
"""

import ast
import json
import re
from pathlib import Path
from types import SimpleNamespace

import pytest

from bench import reference_consumers
from ecom_pipeline.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
SOURCE = (ROOT / "bench" / "reference_consumers.py").read_text()
TREE = ast.parse(SOURCE)
FACT_TABLE = (ROOT / "schema.cql").read_text().split("orders_payments_facts (")[1].split(");")[0]
TABLE_COLUMNS = re.findall(r"^\s+(\w+) \w+", FACT_TABLE, re.M)


def _function(name: str) -> ast.FunctionDef:
    return next(n for n in TREE.body if isinstance(n, ast.FunctionDef) and n.name == name)


def _calls(node: ast.AST, attribute: str) -> list[ast.Call]:
    return [
        n
        for n in ast.walk(node)
        if isinstance(n, ast.Call)
        and isinstance(n.func, ast.Attribute | ast.Name)
        and getattr(n.func, "attr", getattr(n.func, "id", None)) == attribute
    ]


def _message_loop(function: ast.FunctionDef) -> ast.For:
    (loop,) = [n for n in ast.walk(function) if isinstance(n, ast.For)]
    return loop


@pytest.mark.parametrize("name", ["consume_orders", "consume_payments"])
def test_each_consumer_pulls_at_most_10_synchronously_and_acks_once_per_pull(name):
    function = _function(name)
    (while_loop,) = [n for n in function.body if isinstance(n, ast.While)]
    (pull,) = _calls(function, "pull")
    (keyword,) = pull.keywords
    assert keyword.arg == "request" and not pull.args
    request = {k.value: v for k, v in zip(keyword.value.keys, keyword.value.values, strict=True)}
    assert ast.literal_eval(request["max_messages"]) == 10
    assert "return_immediately" not in request
    assert pull in list(ast.walk(while_loop))
    loop = _message_loop(function)
    assert ast.unparse(loop.iter) == "response.received_messages"
    (acknowledge,) = _calls(function, "acknowledge")
    assert acknowledge in list(ast.walk(while_loop))
    assert acknowledge not in list(ast.walk(loop)), "one acknowledge per pull, not per message"
    assert "ack_ids.append(received.ack_id)" in ast.unparse(loop)


@pytest.mark.parametrize("name", ["consume_orders", "consume_payments"])
def test_messages_are_handled_one_after_another_with_two_prints_each(name):
    loop = _message_loop(_function(name))
    assert len(_calls(loop, "loads")) == 1
    unconditional = [n for n in loop.body if isinstance(n, ast.Expr) and _calls(n, "print")]
    if name == "consume_orders":
        assert len(unconditional) == 2
    else:  # one print, then one in whichever branch runs
        assert len(unconditional) == 1
        (branch,) = [n for n in loop.body if isinstance(n, ast.If)]
        for path in (branch.body, branch.orelse):
            assert sum(len(_calls(statement, "print")) for statement in path) == 1


def test_nothing_runs_concurrently_and_nothing_is_caught():
    imported = {
        alias.name
        for n in ast.walk(TREE)
        if isinstance(n, ast.Import | ast.ImportFrom)
        for alias in n.names
    } | {n.module for n in ast.walk(TREE) if isinstance(n, ast.ImportFrom)}
    assert not imported & {"threading", "concurrent.futures", "asyncio", "multiprocessing"}
    assert not [n for n in ast.walk(TREE) if isinstance(n, ast.Try)], "a JSON error must crash"
    for name in ("execute_async", "execute_concurrent", "result", "add_done_callback"):
        assert not _calls(TREE, name), name


def test_orders_use_one_prepared_insert_of_all_13_columns_per_message():
    function = _function("consume_orders")
    (prepare,) = _calls(function, "prepare")
    assert ast.unparse(prepare.args[0]) == "INSERT_ORDER"
    columns = re.search(r"\((.*?)\) VALUES", reference_consumers.INSERT_ORDER).group(1)
    assert [c.strip() for c in columns.split(",")] == TABLE_COLUMNS
    assert len(TABLE_COLUMNS) == 13
    assert reference_consumers.INSERT_ORDER.count("?") == 13
    (execute,) = _calls(function, "execute")
    assert execute in list(ast.walk(_message_loop(function)))
    values = execute.args[1]
    assert len(values.elts) == 13
    assert [ast.unparse(v) for v in values.elts[8:]] == ["None"] * 5


def test_payments_select_is_an_unprepared_f_string_and_the_update_takes_parameters():
    function = _function("consume_payments")
    assert not _calls(function, "prepare")
    select, update = _calls(function, "execute")
    assert isinstance(select.args[0], ast.JoinedStr)
    assert ast.unparse(select.args[0]).startswith(
        "f'SELECT order_id FROM orders_payments_facts WHERE order_id = {order_id}"
    )
    assert ast.unparse(update.args[0]) == "UPDATE_PAYMENT"
    assert reference_consumers.UPDATE_PAYMENT.startswith(
        "UPDATE orders_payments_facts SET payment_id = %s, "
    )
    assert reference_consumers.UPDATE_PAYMENT.endswith("WHERE order_id = %s")
    assert reference_consumers.UPDATE_PAYMENT.count("%s") == len(update.args[1].elts) == 6


def test_a_missing_order_is_published_to_the_dlq_without_waiting():
    loop = _message_loop(_function("consume_payments"))
    (branch,) = [n for n in loop.body if isinstance(n, ast.If)]
    (publish,) = _calls(branch, "publish")
    statement = next(s for s in branch.orelse if publish in list(ast.walk(s)))
    assert isinstance(statement, ast.Expr), "the future is neither kept nor awaited"
    assert ast.unparse(publish) == "publisher.publish(dlq_topic, data=body)"


def test_cassandra_is_reached_with_default_driver_settings():
    (cluster,) = _calls(_function("connect"), "Cluster")
    assert {k.arg for k in cluster.keywords} == {"port", "auth_provider"}
    assert "PlainTextAuthProvider" in ast.unparse(cluster)
    (connect,) = _calls(_function("connect"), "connect")
    assert ast.unparse(connect.args[0]) == "settings.cassandra_keyspace"


# ---------------------------------------------------------------- the same, run with fakes


class _Stop(Exception):
    pass


class _FakeSubscriber:
    def __init__(self, bodies: list[dict]) -> None:
        self.pulls = [bodies[i : i + 10] for i in range(0, len(bodies), 10)]
        self.requests: list[dict] = []
        self.acks: list[list[str]] = []

    def subscription_path(self, project, name):
        return f"projects/{project}/subscriptions/{name}"

    def pull(self, request):
        self.requests.append(request)
        if not self.pulls:
            raise _Stop
        batch = self.pulls.pop(0)
        return SimpleNamespace(
            received_messages=[
                SimpleNamespace(
                    ack_id=f"ack-{body['order_id']}",
                    message=SimpleNamespace(data=json.dumps(body).encode()),
                )
                for body in batch
            ]
        )

    def acknowledge(self, request):
        self.acks.append(request["ack_ids"])


class _FakeSession:
    def __init__(self, existing: set[int]) -> None:
        self.existing = existing
        self.executed: list[tuple] = []

    def prepare(self, cql):
        return ("prepared", cql)

    def execute(self, statement, parameters=None):
        self.executed.append((statement, parameters))
        if isinstance(statement, str) and statement.startswith("SELECT"):
            order_id = int(statement.rsplit("=", 1)[1])
            return SimpleNamespace(one=lambda: (order_id,) if order_id in self.existing else None)
        return None


def _run(monkeypatch, consumer, bodies, existing=frozenset()):
    subscriber = _FakeSubscriber(bodies)
    session = _FakeSession(set(existing))
    published = []
    publisher = SimpleNamespace(
        topic_path=lambda project, name: f"projects/{project}/topics/{name}",
        publish=lambda topic, data: published.append((topic, data)),
    )
    monkeypatch.setattr(reference_consumers.pubsub_v1, "SubscriberClient", lambda: subscriber)
    monkeypatch.setattr(reference_consumers.pubsub_v1, "PublisherClient", lambda: publisher)
    monkeypatch.setattr(reference_consumers, "connect", lambda settings: session)
    with pytest.raises(_Stop):
        consumer(Settings())
    return subscriber, session, published


def _order(i):
    return {
        "order_id": i, "customer_id": 100, "item": "Book", "quantity": 1, "price": 10.0,
        "shipping_address": "123 Main St, City A", "order_status": "Pending",
        "creation_date": "2024-01-21",
    }  # fmt: skip


def _payment(i):
    return {
        "payment_id": i + 1000, "order_id": i, "payment_method": "PayPal",
        "card_last_four": f"{i:04d}", "payment_status": "Completed",
        "payment_datetime": "2024-01-21T12:01:30Z",
    }  # fmt: skip


def test_the_order_consumer_writes_each_message_and_acks_each_pull_once(monkeypatch, capsys):
    subscriber, session, _ = _run(
        monkeypatch, reference_consumers.consume_orders, [_order(i) for i in range(1, 24)]
    )
    assert [r["max_messages"] for r in subscriber.requests] == [10, 10, 10, 10]
    assert [len(ids) for ids in subscriber.acks] == [10, 10, 3]
    assert len(session.executed) == 23
    statement, values = session.executed[0]
    assert statement == ("prepared", reference_consumers.INSERT_ORDER)
    assert values[:3] == (1, 100, "Book") and values[8:] == (None,) * 5
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 + 2 * 23
    assert sum(line.startswith(reference_consumers.HANDLED_LINE) for line in lines) == 23


def test_the_payment_consumer_updates_or_dead_letters_each_message(monkeypatch, capsys):
    bodies = [_payment(i) for i in (1, 2, 501)]
    subscriber, session, published = _run(
        monkeypatch, reference_consumers.consume_payments, bodies, existing={1, 2}
    )
    assert subscriber.acks == [["ack-1", "ack-2", "ack-501"]]
    selects = [s for s, _ in session.executed if s.startswith("SELECT")]
    assert selects[2] == "SELECT order_id FROM orders_payments_facts WHERE order_id = 501"
    updates = [p for s, p in session.executed if s == reference_consumers.UPDATE_PAYMENT]
    assert updates == [
        (1001, "PayPal", "0001", "Completed", "2024-01-21T12:01:30Z", 1),
        (1002, "PayPal", "0002", "Completed", "2024-01-21T12:01:30Z", 2),
    ]
    assert published == [
        ("projects/ecom-local/topics/dlq_payments_data", json.dumps(bodies[2]).encode())
    ]
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 + 2 * 3
    assert sum(line.startswith(reference_consumers.HANDLED_LINE) for line in lines) == 3


def test_a_message_that_is_not_json_crashes_the_reference(monkeypatch):
    subscriber = _FakeSubscriber([])
    subscriber.pulls = [[]]
    bad = SimpleNamespace(ack_id="a", message=SimpleNamespace(data=b"not json"))
    subscriber.pull = lambda request: SimpleNamespace(received_messages=[bad])
    monkeypatch.setattr(reference_consumers.pubsub_v1, "SubscriberClient", lambda: subscriber)
    monkeypatch.setattr(reference_consumers, "connect", lambda settings: _FakeSession(set()))
    with pytest.raises(json.JSONDecodeError):
        reference_consumers.consume_orders(Settings())
    assert subscriber.acks == []
