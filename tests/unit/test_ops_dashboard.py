"""The Grafana dashboard and the Prometheus rules name only metrics Herald exports.

`deploy/grafana/herald.json` and `deploy/prometheus/herald-rules.yaml` are read by tools
this suite does not run (Grafana, promtool), so a renamed metric would leave a blank panel
or an alert that never fires, silently. Here every PromQL expression of both files is
reduced to the metric names it selects, and each must be a series one of Herald's
``prometheus_client`` metrics produces (found by importing every module of ``src/herald``
that uses ``prometheus_client``, with the suffixes its type adds: ``_total`` for counters,
``_bucket``/``_count``/``_sum`` for histograms). The dashboard must also be an importable
layout (unique ids, panels that do not overlap) and every alert must carry what
docs/OPERATIONS.md's playbooks and an Alertmanager route rely on.
"""

from __future__ import annotations

import importlib
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.metrics import MetricWrapperBase

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src" / "herald"
DASHBOARD = ROOT / "deploy" / "grafana" / "herald.json"
RULES = ROOT / "deploy" / "prometheus" / "herald-rules.yaml"
OPERATIONS = ROOT / "docs" / "OPERATIONS.md"

GRID_COLUMNS = 24
SEVERITIES = {"critical", "warning", "info"}

# PromQL words that are not metric names: binary operators and modifiers.
_KEYWORDS = {
    "and",
    "or",
    "unless",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "offset",
    "atan2",
}
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENTIFIER = re.compile(r"(?<![\w.$])([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?")


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (functions, labels, keywords left out)."""
    text = _STRING.sub('""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)  # range selectors, including $__rate_interval
    text = _GROUPING.sub(" ", text)
    names: set[str] = set()
    for match in _IDENTIFIER.finditer(text):
        word, call = match.group(1), match.group(2)
        if call or word in _KEYWORDS:
            continue
        names.add(word)
    return names


def test_metric_names_are_found_in_promql() -> None:
    expr = (
        'histogram_quantile(0.95, sum by (le, route) (rate(http_x_bucket{route!="/a/{id}"}'
        "[$__rate_interval]))) / clamp_min(sum without (pool) (a_b), 1e-9) > 0.05 "
        'unless max(c:d{x="and"}) or on (pool) group_left (e) f offset 5m'
    )
    assert metric_names(expr) == {"http_x_bucket", "a_b", "c:d", "f"}


def _metric_modules() -> list[str]:
    modules = []
    for path in sorted(SRC.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        if re.search(r"^\s*(from prometheus_client\b|import prometheus_client\b)", text, re.M):
            parts = path.relative_to(SRC.parent).with_suffix("").parts
            modules.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return modules


def exported_series() -> set[str]:
    """Every series name Herald's own metrics expose, suffixes included."""
    suffixes = {
        "counter": ("_total",),
        "gauge": ("",),
        "histogram": ("_bucket", "_count", "_sum"),
        "summary": ("", "_count", "_sum"),
    }
    series: set[str] = set()
    for name in _metric_modules():
        module = importlib.import_module(name)
        for value in vars(module).values():
            if isinstance(value, MetricWrapperBase):
                for family in value.describe():
                    series.update(family.name + s for s in suffixes[family.type])
    return series


def test_the_metric_modules_are_found() -> None:
    modules = _metric_modules()
    for expected in ("herald.core.metrics", "herald.delivery.metrics", "herald.web.metrics"):
        assert expected in modules
    series = exported_series()
    assert "herald_queue_oldest_ready_age_seconds" in series
    assert "herald_delivery_outcomes_total" in series
    assert "http_server_request_duration_seconds_bucket" in series
    assert "herald_delivery_outcomes" not in series, "a counter is only read with _total"


def load_dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return data


def all_panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    panels: list[dict[str, Any]] = []
    for panel in dashboard["panels"]:
        panels.append(panel)
        panels.extend(panel.get("panels", []))  # a collapsed row holds its panels
    return panels


def load_rules() -> list[dict[str, Any]]:
    data = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    return [rule for group in data["groups"] for rule in group["rules"]]


def expressions() -> list[tuple[str, str]]:
    found = [
        (f"dashboard panel {panel['title']!r}", target["expr"])
        for panel in all_panels(load_dashboard())
        for target in panel.get("targets", [])
    ]
    found += [(f"rule {rule['alert']}", rule["expr"]) for rule in load_rules()]
    return found


def test_every_expression_uses_only_metrics_herald_exports() -> None:
    series = exported_series()
    unknown = {
        (where, name)
        for where, expr in expressions()
        for name in metric_names(expr)
        if name not in series
    }
    assert not unknown, f"metrics Herald does not export: {sorted(unknown)}"


def test_every_expression_is_balanced() -> None:
    pairs = {")": "(", "]": "[", "}": "{"}
    for where, expr in expressions():
        stack: list[str] = []
        for char in _STRING.sub('""', expr):
            if char in "([{":
                stack.append(char)
            elif char in pairs:
                assert stack, f"{where}: unbalanced {char!r}"
                assert stack.pop() == pairs[char], f"{where}: unbalanced {char!r}"
        assert not stack, f"{where}: unclosed {stack}"
        assert metric_names(expr), f"{where}: selects no metric"


def test_the_dashboard_is_importable() -> None:
    dashboard = load_dashboard()
    assert dashboard["schemaVersion"] >= 36
    assert dashboard["uid"]
    assert dashboard["title"]
    [variable] = [v for v in dashboard["templating"]["list"] if v["name"] == "DS_PROMETHEUS"]
    assert variable["type"] == "datasource"
    assert variable["query"] == "prometheus"
    panels = all_panels(dashboard)
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in panels:
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
        assert panel["targets"], f"panel {panel['title']!r} has no query"
        ref_ids = [target["refId"] for target in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids)), f"panel {panel['title']!r}: refIds repeat"
        for target in panel["targets"]:
            assert target["datasource"] == panel["datasource"]


def test_dashboard_panels_do_not_overlap() -> None:
    boxes = []
    for panel in load_dashboard()["panels"]:  # top-level: what the grid lays out
        pos = panel["gridPos"]
        title = panel["title"]
        assert pos["w"] > 0, title
        assert pos["h"] > 0, title
        assert pos["x"] >= 0, title
        assert pos["x"] + pos["w"] <= GRID_COLUMNS, title
        assert pos["y"] >= 0, title
        boxes.append((title, pos["x"], pos["y"], pos["x"] + pos["w"], pos["y"] + pos["h"]))
    for index, (name, x0, y0, x1, y1) in enumerate(boxes):
        for other, u0, v0, u1, v1 in boxes[index + 1 :]:
            overlap = x0 < u1 and u0 < x1 and y0 < v1 and v0 < y1
            assert not overlap, f"panels {name!r} and {other!r} overlap"


def test_the_dashboard_shows_what_the_playbooks_read() -> None:
    used = {name for _, expr in expressions() for name in metric_names(expr)}
    for metric in (
        "herald_queue_oldest_ready_age_seconds",
        "herald_deliveries",
        "herald_delivery_outcomes_total",
        "herald_delivery_claim_to_accepted_seconds_bucket",
        "herald_delivery_lease_rescues_total",
        "herald_delivery_leases_lost_total",
        "herald_delivery_fenced_misses_total",
        "herald_delivery_rate_limit_waits_total",
        "http_server_request_duration_seconds_count",
        "http_server_request_duration_seconds_bucket",
        "http_server_active_requests",
        "herald_db_pool_connections",
        "herald_db_pool_waiting",
        "herald_issues",
        "herald_issue_recipients",
    ):
        assert metric in used, f"no panel or rule reads {metric}"


def github_anchors(markdown: str) -> set[str]:
    anchors = set()
    fenced = False
    for line in markdown.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        heading = None if fenced else re.match(r"#{1,6}\s+(.*)", line)
        if heading:
            text = re.sub(r"[^\w\- ]", "", heading.group(1).strip().lower())
            anchors.add(text.replace(" ", "-"))
    return anchors


@pytest.mark.parametrize("rule", load_rules(), ids=lambda rule: str(rule.get("alert")))
def test_every_rule_is_complete(rule: dict[str, Any]) -> None:
    assert re.fullmatch(r"Herald[A-Za-z0-9]+", rule["alert"])
    assert rule["expr"].strip()
    assert re.fullmatch(r"\d+[smh]", str(rule["for"])), "for: a duration such as 5m (0m too)"
    assert rule["labels"]["severity"] in SEVERITIES
    assert rule["annotations"]["summary"].strip()
    runbook = rule["annotations"]["runbook"]
    page, _, anchor = runbook.partition("#")
    assert page == "docs/OPERATIONS.md"
    assert anchor in github_anchors(OPERATIONS.read_text(encoding="utf-8")), runbook


def test_operations_md_names_every_alert_and_points_at_the_files() -> None:
    text = OPERATIONS.read_text(encoding="utf-8")
    for rule in load_rules():
        assert f"`{rule['alert']}`" in text, f"docs/OPERATIONS.md does not explain {rule['alert']}"
    assert "deploy/prometheus/herald-rules.yaml" in text
    assert "deploy/grafana/herald.json" in text
    assert "- alert:" not in text, "the rules live in the rules file only, not copied here"


def test_alert_names_are_unique() -> None:
    names = [rule["alert"] for rule in load_rules()]
    assert len(names) == len(set(names))
