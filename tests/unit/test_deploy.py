"""deploy/ is consistent with the code: services, LEAP_* settings, metric names, probes.

Pure and fast, except that the Prometheus rules are checked with ``promtool`` (Debian's
``prometheus`` package, installed by ``make test`` via scripts/services.sh). A missing
promtool is a failure that says how to fix it, never a skip.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from connectors.moodle import MoodleConfig
from leap.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
PROMETHEUS = DEPLOY / "prometheus"

# The metrics the code exports (streams/metrics.py, api/, connectors/); alerts and
# dashboards may use these and nothing else.
METRICS = frozenset(
    {
        "leap_worker_events_total",
        "leap_worker_dead_letters_total",
        "leap_worker_days_closed_total",
        "leap_worker_day_close_seconds",
        "leap_worker_indicator_changes_total",
        "leap_worker_redis_errors_total",
        "leap_worker_event_lag_seconds",
        "leap_worker_consumer_lag_records",
        "leap_worker_students_scored_total",
        "leap_worker_last_closed_day_timestamp_seconds",
        "leap_worker_indicators",
        "leap_worker_redis_write_seconds",
        "leap_worker_table_recovery_seconds",
        "leap_worker_redis_pending_writes",
        "leap_worker_history_pending_rows",
        "leap_worker_history_errors_total",
        "leap_worker_history_write_seconds",
        "leap_worker_alerts_total",
        "leap_api_requests_total",
        "leap_api_request_seconds",
        "leap_api_auth_failures_total",
        "leap_api_audit_failures_total",
        "leap_connector_records_read_total",
        "leap_connector_published_total",
        "leap_connector_rejected_total",
        "leap_connector_lag_records",
        "leap_connector_source_lag_seconds",
        "leap_connector_checkpoint_age_seconds",
    }
)

LEAP_SERVICES = {
    "worker-1",
    "worker-2",
    "api",
    "moodle-connector",
    "xapi-connector",
    "caliper-connector",
}
REQUIRED_SERVICES = LEAP_SERVICES | {
    "kafka",
    "topic-init",
    "redis",
    "postgres",
    "prometheus",
    "grafana",
}

KNOWN_ENV = {f"LEAP_{name.upper()}" for name in Settings.model_fields} | {
    f"LEAP_MOODLE_{name.upper()}" for name in MoodleConfig.model_fields
}


def _compose() -> dict[str, Any]:
    document = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    assert isinstance(document, dict)
    return document


def _env_names(environment: dict[str, Any] | list[str] | None) -> set[str]:
    if environment is None:
        return set()
    if isinstance(environment, dict):
        return set(environment)
    return {item.split("=", 1)[0] for item in environment}


def _k8s_documents() -> Iterator[dict[str, Any]]:
    files = sorted((DEPLOY / "kubernetes").glob("*.yaml"))
    assert files
    for path in files:
        for document in yaml.safe_load_all(path.read_text()):
            if document is not None:
                assert "kind" in document and "apiVersion" in document, path
                yield document


def _metric_names(text: str) -> set[str]:
    names = set(re.findall(r"\bleap_[a-z_]+", text))
    return {re.sub(r"_(bucket|sum|count)$", "", name) for name in names}


def test_compose_has_every_service() -> None:
    services = _compose()["services"]
    assert set(services) >= REQUIRED_SERVICES, REQUIRED_SERVICES - set(services)
    assert services["kafka"]["image"] == "apache/kafka:4.1.1"
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"


def test_compose_creates_the_topics_of_streams_topics() -> None:
    from streams.topics import topic_specs

    script = "\n".join(_compose()["services"]["topic-init"]["command"])
    settings = Settings()
    assert f"--partitions {settings.partitions}" in script
    for spec in topic_specs(settings):
        line = next(line for line in script.splitlines() if re.search(rf"\b{spec.name}\b", line))
        for key, value in spec.config.items():
            assert f"{key}={value}" in line, (spec.name, line)


def test_compose_leap_env_names_are_settings() -> None:
    services = _compose()["services"]
    for name in LEAP_SERVICES:
        env = _env_names(services[name].get("environment"))
        assert "LEAP_KAFKA_BOOTSTRAP" in env, name
        leap_env = {key for key in env if key.startswith("LEAP_")}
        assert leap_env == env, (name, env - leap_env)
        assert leap_env <= KNOWN_ENV, (name, leap_env - KNOWN_ENV)
        assert services[name]["environment"]["LEAP_PARTITIONS"] == str(Settings().partitions)


def test_compose_workers_have_separate_state() -> None:
    services = _compose()["services"]
    workers = [services["worker-1"], services["worker-2"]]
    assert all(worker["command"] == ["worker"] for worker in workers)
    assert workers[0]["volumes"] != workers[1]["volumes"]


def _cli_options(argv: list[str]) -> tuple[list[str], set[str]]:
    """The subcommand path ``argv`` names in the `leap` CLI, and the options it accepts."""
    import typer

    from leap.cli import app

    command: Any = typer.main.get_command(app)  # typer's (vendored) click command tree
    path = []
    for word in argv:
        if word.startswith("-") or not hasattr(command, "commands"):
            break
        assert word in command.commands, (argv, word)
        command = command.commands[word]
        path.append(word)
    options = {opt for param in command.params for opt in getattr(param, "opts", [])}
    return path, options


def _assert_cli_accepts(argv: list[str]) -> None:
    path, options = _cli_options(argv)
    assert path, argv
    for word in argv[len(path) :]:
        if word.startswith("--"):
            assert word.split("=", 1)[0] in options, (argv, word, sorted(options))


def test_compose_commands_exist() -> None:
    services = _compose()["services"]
    for name in LEAP_SERVICES:
        _assert_cli_accepts(services[name]["command"])


def test_k8s_manifests_parse_and_use_known_settings() -> None:
    documents = list(_k8s_documents())
    (config,) = [d for d in documents if d["kind"] == "ConfigMap"]
    assert set(config["data"]) <= KNOWN_ENV, set(config["data"]) - KNOWN_ENV
    deployments = {d["metadata"]["name"]: d for d in documents if d["kind"] == "Deployment"}
    assert {"leap-worker", "leap-api", "leap-connector-moodle"} <= set(deployments)
    assert deployments["leap-worker"]["spec"]["replicas"] == 2
    for deployment in deployments.values():
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            names = {item["name"] for item in container.get("env", [])}
            assert names <= KNOWN_ENV, names - KNOWN_ENV
            _assert_cli_accepts(container["args"])


def test_k8s_api_probes() -> None:
    (api,) = [
        d
        for d in _k8s_documents()
        if d["kind"] == "Deployment" and d["metadata"]["name"] == "leap-api"
    ]
    (container,) = api["spec"]["template"]["spec"]["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"


def test_alert_and_dashboard_metrics_exist() -> None:
    alerts = (PROMETHEUS / "alerts.yml").read_text()
    dashboard = (DEPLOY / "grafana" / "leap.json").read_text()
    for label, text in (("alerts.yml", alerts), ("leap.json", dashboard)):
        used = _metric_names(text)
        assert used, label
        assert used <= METRICS, (label, used - METRICS)


def test_alerts_have_for_severity_and_help() -> None:
    groups = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())["groups"]
    rules = [rule for group in groups for rule in group["rules"]]
    assert {
        "LeapConsumerLagGrowing",
        "LeapDeadLettersHigh",
        "LeapDayNotClosed",
        "LeapApi5xxRate",
        "LeapConnectorCheckpointStale",
    } <= {rule["alert"] for rule in rules}
    for rule in rules:
        assert rule["for"] and rule["labels"]["severity"] in {"warning", "critical"}, rule
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], rule


def test_dashboard_is_provisioned() -> None:
    dashboard = json.loads((DEPLOY / "grafana" / "leap.json").read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    assert any("histogram_quantile" in e and "leap_worker_day_close_seconds" in e for e in exprs)
    assert any("histogram_quantile" in e and "leap_api_request_seconds" in e for e in exprs)
    provisioning = DEPLOY / "grafana" / "provisioning"
    (source,) = yaml.safe_load((provisioning / "datasources" / "prometheus.yaml").read_text())[
        "datasources"
    ]
    assert all(panel["datasource"]["uid"] == source["uid"] for panel in dashboard["panels"])
    assert yaml.safe_load((provisioning / "dashboards" / "leap.yaml").read_text())["providers"]


def test_image_pins_every_runtime_dependency() -> None:
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert dockerfile.startswith("#") and "FROM python:3.11-slim" in dockerfile
    assert re.search(r"^USER (?!root)\S+", dockerfile, re.M)
    assert 'ENTRYPOINT ["leap"]' in dockerfile
    pins = {}
    for line in (DEPLOY / "requirements.lock").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, version = line.split("==")
            pins[canonicalize_name(name)] = version
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for text in project["dependencies"]:
        requirement = Requirement(text)
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{name} is not pinned in deploy/requirements.lock"
        assert requirement.specifier.contains(pins[name]), (text, pins[name])


def _promtool(*args: str) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail(
            "promtool is not on PATH: run `make test` (scripts/services.sh installs Debian's "
            "`prometheus` package, which provides it) or `sudo apt-get install -y prometheus`."
        )
    result = subprocess.run(
        [promtool, *args], cwd=PROMETHEUS, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_file_is_valid_for_compose() -> None:
    """`docker compose config` where the plugin exists, else Debian's docker-compose."""
    docker = shutil.which("docker")
    plugin = docker and subprocess.run(
        [docker, "compose", "version"], capture_output=True, check=False
    )
    if docker and plugin and plugin.returncode == 0:
        command = [docker, "compose"]
    elif shutil.which("docker-compose"):
        command = ["docker-compose"]
    else:
        pytest.fail(
            "no Compose validator: run `make test` (scripts/services.sh installs Debian's "
            "`docker-compose`) or `sudo apt-get install -y docker-compose`."
        )
    result = subprocess.run(
        [*command, "-f", "compose.yaml", "config", "-q"],
        cwd=PROMETHEUS.parent,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_check_rules() -> None:
    _promtool("check", "rules", "alerts.yml")


def test_promtool_check_config() -> None:
    _promtool("check", "config", "prometheus.yml")


def test_promtool_test_rules() -> None:
    _promtool("test", "rules", "alerts_test.yml")
