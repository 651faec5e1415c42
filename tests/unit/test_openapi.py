"""The OpenAPI document is well-formed and describes every route the app serves."""

from __future__ import annotations

import json

from starlette.routing import Route

from api.app import create_app
from api.openapi import DOCUMENT
from leap.settings import Settings


def _refs(node: object) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if "$ref" in node else []
        return found + [ref for value in node.values() for ref in _refs(value)]
    if isinstance(node, list):
        return [ref for item in node for ref in _refs(item)]
    return []


def test_document_shape() -> None:
    assert DOCUMENT["openapi"].startswith("3.1.")
    assert DOCUMENT["info"]["title"] and DOCUMENT["info"]["version"]
    json.dumps(DOCUMENT)  # servable as-is
    for path, operations in DOCUMENT["paths"].items():
        assert path.startswith("/")
        for operation in operations.values():
            assert operation["operationId"] and operation["responses"]
            for status in operation["responses"]:
                assert status.isdigit()


def test_every_ref_resolves() -> None:
    for ref in _refs(DOCUMENT):
        node: object = DOCUMENT
        for part in ref.removeprefix("#/").split("/"):
            assert isinstance(node, dict) and part in node, ref
            node = node[part]


def test_every_route_is_documented() -> None:
    app = create_app(Settings())
    routes = [route for route in app.routes if isinstance(route, Route)]
    assert routes
    for route in routes:
        documented = {method.upper() for method in DOCUMENT["paths"][route.path]}
        assert documented == (route.methods or set()) - {"HEAD"}, route.path
    assert set(DOCUMENT["paths"]) == {route.path for route in routes}


def test_path_parameters_are_declared() -> None:
    for path, operations in DOCUMENT["paths"].items():
        in_path = {part[1:-1] for part in path.split("/") if part.startswith("{")}
        for operation in operations.values():
            declared = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
            assert declared == in_path, path


def test_problem_responses_use_the_problem_schema() -> None:
    for operations in DOCUMENT["paths"].values():
        for operation in operations.values():
            for status, response in operation["responses"].items():
                if int(status) >= 400:
                    assert list(response["content"]) == ["application/problem+json"]
