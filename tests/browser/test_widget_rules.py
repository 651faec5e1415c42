"""The widget's copy of the scoring weights and caps equals the policy's.

The widget splits each day's points by activity and explains the rules with these numbers;
a policy change that forgot the widget would show students wrong figures.
"""

from __future__ import annotations

import json
import re
import tomllib
from importlib.resources import files

WIDGET = files("api").joinpath("static", "leap-engagement.js")
POLICIES = files("leap").joinpath("policies")


def test_widget_rules_equal_the_shipped_policies() -> None:
    found = re.search(r"^\s*const RULES = (\{.*\});$", WIDGET.read_text(), re.MULTILINE)
    assert found, "the widget's RULES line (one line of JSON)"
    rules = json.loads(found.group(1))
    shipped = [p for p in POLICIES.iterdir() if p.name.endswith(".toml")]
    policies = [tomllib.loads(p.read_text()) for p in shipped]
    assert {p["version"] for p in policies} == set(rules)
    for policy in policies:
        want = {name: [s["weight"], s["cap"]] for name, s in policy["sources"].items()}
        assert rules[policy["version"]] == want
