"""The shipped Prometheus rules and Grafana dashboard (issue 16) are valid and name real metrics.

`promtool` comes with Debian's `prometheus` package; .ci/run installs it when missing. These tests
fail (never skip) without it.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from logistics.config import CONFIG_DIR

ROOT = Path(__file__).resolve().parents[2]
RULES = CONFIG_DIR / "prometheus" / "coldchain-alerts.yml"
RULE_TESTS = Path(__file__).parent / "prometheus" / "coldchain-alerts.test.yml"
PROMETHEUS_CONFIG = CONFIG_DIR / "prometheus" / "prometheus.yml"
DASHBOARD = CONFIG_DIR / "grafana" / "coldchain-dashboard.json"
METRIC = re.compile(r"\bcoldchain_[a-z_]+")
SUFFIXES = ("_bucket", "_count", "_sum", "_total")


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("promtool")
    if binary is None:
        pytest.fail(
            "promtool is missing: apt-get install prometheus (Debian), as .ci/run does",
            pytrace=False,
        )
    return subprocess.run([binary, *args], capture_output=True, text=True, timeout=120)


def test_promtool_accepts_the_alerting_rules():
    checked = promtool("check", "rules", str(RULES))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS" in checked.stdout


def test_alerting_rules_fire_when_their_condition_holds():
    tested = promtool("test", "rules", str(RULE_TESTS))
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_example_prometheus_configuration_is_valid():
    checked = promtool("check", "config", "--syntax-only", str(PROMETHEUS_CONFIG))
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_rules_cover_what_the_issue_asks():
    names = set(re.findall(r"alert: (\w+)", RULES.read_text()))
    assert {
        "ColdchainIngestionStopped",
        "ColdchainEvaluationLagging",
        "ColdchainNoSchedulerLeaseHolder",
        "ColdchainOutboxStuck",
        "ColdchainDiskFilling",
    } <= names


def _defined_metrics() -> set[str]:
    return set(METRIC.findall((ROOT / "logistics" / "metrics.py").read_text()))


def _base(name: str) -> str:
    for suffix in SUFFIXES:
        if name.endswith(suffix):
            return name.removesuffix(suffix)
    return name


def test_rules_and_dashboard_name_only_metrics_the_service_exports():
    defined = _defined_metrics()
    dashboard = DASHBOARD.read_text()
    used = set(METRIC.findall(RULES.read_text())) | set(METRIC.findall(dashboard))
    unknown = {name for name in used if name not in defined and _base(name) not in defined}
    assert unknown == set()


def test_dashboard_is_grafana_json_with_a_query_per_panel():
    dashboard = json.loads(DASHBOARD.read_text())
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert dashboard["uid"] and len(panels) >= 10
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])
    for panel in panels:
        assert panel["targets"] and all(t["expr"] for t in panel["targets"]), panel["title"]
    exprs = " ".join(t["expr"] for p in panels for t in p["targets"])
    for metric in (
        "coldchain_http_request_duration_seconds_bucket",
        "coldchain_ingest_readings_total",
        "coldchain_ingest_lag_seconds_bucket",
        "coldchain_evaluation_queue_depth",
        "coldchain_evaluation_queue_age_seconds",
        "coldchain_alerts_open",
        "coldchain_scheduler_job_runs_total",
        "coldchain_scheduler_last_success_timestamp_seconds",
        "coldchain_notification_outbox_depth",
    ):
        assert metric in exprs
