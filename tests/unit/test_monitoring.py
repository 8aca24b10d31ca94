"""The Grafana dashboard and the Prometheus alert rules in monitoring/ use only metrics the roles
export, so that neither shows an empty panel nor an alert that can never fire."""

import datetime as dt
import json
import re
from pathlib import Path

import pytest
import yaml

from ecom_pipeline.options import ORDER_WAIT
from ecom_pipeline.stats import Stats

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = json.loads((ROOT / "monitoring" / "grafana-dashboard.json").read_text())
RULES = yaml.safe_load((ROOT / "monitoring" / "prometheus-alerts.yml").read_text())
ALERTS = {rule["alert"]: rule for group in RULES["groups"] for rule in group["rules"]}

# PromQL words that look like names but are not metrics.
KEYWORDS = {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring",
            "group_left", "group_right", "inf", "nan", "le"}  # fmt: skip


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads (Grafana's $variables allowed)."""
    expr = re.sub(r'"(?:\\.|[^"\\])*"', '""', expr)  # strings: label values, regexes
    expr = re.sub(r"\{[^}]*\}", "", expr)  # label matchers
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # ranges, e.g. [$__rate_interval]
    expr = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)
    names = set()
    for match in re.finditer(r"(?<![\w$.])[A-Za-z_:][A-Za-z0-9_:]*", expr):
        if expr[match.end() :].lstrip().startswith("("):  # a function or an aggregation
            continue
        if match.group().lower() not in KEYWORDS:
            names.add(match.group())
    return names


def test_the_metric_name_reader_finds_metrics_and_nothing_else():
    expr = (
        'histogram_quantile(0.95, sum by (le, role) (rate(a_seconds_bucket{role=~"$role"}'
        "[$__rate_interval]))) / on(role) group_left b_total offset 5m > bool 3 or absent(c)"
    )
    assert metric_names(expr) == {"a_seconds_bucket", "b_total", "c"}


def _exported() -> dict[str, set[str]]:
    """Every series name the roles export -> its metric family, with every event recorded once
    (labelled metrics have no series until their first event)."""
    stats = Stats("payment consumer")
    stats.received(1)
    stats.stored(0.5)
    stats.dead_lettered("order_not_found")
    stats.delayed()
    stats.retried("store")
    stats.error("pubsub")
    stats.published()
    stats.lost()
    stats.pulled([dt.datetime.now(dt.UTC)])
    stats.acked([0.0])
    stats.failing(False)
    return {
        sample.name: family.name for family in stats.registry.collect() for sample in family.samples
    }


EXPORTED = _exported()


def _dashboard_queries() -> list[tuple[str, str]]:
    queries = []
    for panel in DASHBOARD["panels"]:
        for target in panel.get("targets", []):
            queries.append((panel["title"], target["expr"]))
    for variable in DASHBOARD["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]["query"]
            queries.append((f"${variable['name']}", query.split("(", 1)[1].rsplit(",", 1)[0]))
    return queries


@pytest.mark.parametrize(("where", "expr"), _dashboard_queries())
def test_every_dashboard_query_reads_metrics_the_roles_export(where, expr):
    unknown = metric_names(expr) - set(EXPORTED)
    assert not unknown, f"{where}: {sorted(unknown)} are not exported by the roles"


def test_the_dashboard_shows_every_metric_the_roles_export():
    used = set().union(*(metric_names(expr) for _, expr in _dashboard_queries()))
    shown = {EXPORTED[name] for name in used}
    assert shown == set(EXPORTED.values())


def test_the_dashboard_is_importable_into_grafana():
    assert DASHBOARD["uid"] and DASHBOARD["title"] and DASHBOARD["schemaVersion"] >= 36
    ids = [panel["id"] for panel in DASHBOARD["panels"]]
    assert len(ids) == len(set(ids))
    datasource = next(v for v in DASHBOARD["templating"]["list"] if v["type"] == "datasource")
    assert datasource["query"] == "prometheus"
    for panel in DASHBOARD["panels"]:
        assert set(panel["gridPos"]) == {"h", "w", "x", "y"}
        assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24
        for target in panel.get("targets", []):
            assert target["datasource"]["uid"] == "${datasource}"
            assert target["refId"] and target["expr"].count("(") == target["expr"].count(")")


@pytest.mark.parametrize("name", sorted(ALERTS))
def test_every_alert_reads_metrics_the_roles_export_and_says_what_to_do(name):
    rule = ALERTS[name]
    used = metric_names(rule["expr"])
    assert used, f"{name} reads no metric"
    assert not used - set(EXPORTED), f"{name}: {sorted(used - set(EXPORTED))} are not exported"
    assert rule["expr"].count("(") == rule["expr"].count(")")
    assert rule["labels"]["severity"] in {"warning", "critical"}
    assert rule["annotations"]["summary"] and rule["annotations"]["description"]
    if "for" in rule:
        assert re.fullmatch(r"[0-9]+[smh]", rule["for"])


def test_the_alerts_cover_backlog_age_dead_letter_rate_and_outage():
    def reads(metric: str) -> set[str]:
        return {name for name, rule in ALERTS.items() if metric in metric_names(rule["expr"])}

    assert reads("pipeline_oldest_pulled_message_age_seconds")  # backlog age (and absence)
    assert reads("pipeline_messages_dead_lettered_total")  # dead-letter rate
    assert reads("pipeline_failing")  # outage


def test_the_backlog_alert_leaves_room_for_payments_that_wait_for_their_order():
    """A delayed payment comes back up to --order-wait after its publish: that is no backlog."""
    threshold = float(ALERTS["ConsumerBacklogOld"]["expr"].rsplit(">", 1)[1])
    assert threshold > ORDER_WAIT
