"""No Prometheus metric may carry a person's identity as a label: label sets stay bounded."""

from __future__ import annotations

from prometheus_client import REGISTRY
from prometheus_client.metrics import MetricWrapperBase

import api.metrics
import connectors.metrics
import streams.metrics

MODULES = (api.metrics, connectors.metrics, streams.metrics)
#: Substrings no label may contain, and words (between underscores) no label may be.
FORBIDDEN = ("student", "sid", "user", "learner", "person", "actor", "email")
FORBIDDEN_WORDS = {"id", "name", "uid"}


def _leap_metrics() -> list[MetricWrapperBase]:
    found = [
        value
        for module in MODULES
        for value in vars(module).values()
        if isinstance(value, MetricWrapperBase)
    ]
    return [m for m in found if m._name.startswith("leap_")]


def test_no_label_names_a_person() -> None:
    metrics = _leap_metrics()
    assert len(metrics) >= 20
    for metric in metrics:
        for label in metric._labelnames:
            assert not any(bad in label.lower() for bad in FORBIDDEN), (metric._name, label)
            assert not FORBIDDEN_WORDS & set(label.lower().split("_")), (metric._name, label)


def test_every_leap_metric_is_registered_once_with_its_module() -> None:
    registered = {name for name in REGISTRY._names_to_collectors if name.startswith("leap_")}
    for metric in _leap_metrics():
        assert metric._name in registered
