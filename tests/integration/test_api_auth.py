"""Who sees what, over real Redis, Kafka, PostgreSQL and tokens: every route, role and target.

A student's record may be read by the student, their tutor, their department and admins,
and by nobody else; tutee lists and cohort distributions follow the same relationships,
and a contact preference is set by the student or an admin only. Staff requests are
audited, allowed or not. Refusals of a *valid* token are 404s identical to an unknown student's,
so the API never confirms that someone else's record exists; bad or missing tokens are 401
problems with an RFC 6750 challenge. Each refusal is counted by reason.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import jwt
import pytest
import redis.asyncio as aioredis
from aiokafka.errors import KafkaConnectionError
from cryptography.hazmat.primitives.asymmetric import rsa
from prometheus_client import REGISTRY
from starlette.routing import Route

from api.access import Principal, Role
from api.app import create_app
from api.auth import AuthConfigError
from api.pages import STATIC
from leap.brokers import free_port
from leap.reference import Student
from leap.settings import Settings
from leap.state_keys import cohort_key, indicator_key
from streams.topics import ensure_topics
from tests.integration.api_client import (
    ADMIN,
    TEST_AUDIENCE,
    TEST_ISSUER,
    bearer,
    serve,
    signing_key,
    with_test_auth,
)
from tests.integration.leap_db import migrated_pool
from tests.integration.leap_process import isolated_worker
from tests.integration.test_api import INDICATOR

pytestmark = pytest.mark.integration

ENGAGEMENT = "/v1/students/{student_id}/engagement"
HISTORY = "/v1/students/{student_id}/history"
CONTACT = "/v1/students/{student_id}/contact-preference"
TUTEES = "/v1/tutors/{tutor_id}/tutees"
DISTRIBUTION = "/v1/cohorts/{course}/{year}/distribution"
#: Routes anyone may call: no personal data (probes and the scraper carry no token; the
#: staff page and the widget's files hold no data, their calls to /v1 carry the token).
PUBLIC = {
    "/healthz": 200,
    "/readyz": 200,
    "/openapi.json": 200,
    "/metrics": 200,
    **dict.fromkeys(STATIC, 200),
}

OWN = "S1000001"  # tutor T0001, Physics
OTHER = "S1000002"  # tutor T0002, History
UNSCORED = "S1000003"  # T0001's tutee in Physics, with no indicator yet
OFF_ROSTER = "S1000009"  # an indicator in Redis, but not in the reference data
UNKNOWN = "S1999999"
TARGETS = (OWN, OTHER, UNSCORED, OFF_ROSTER, UNKNOWN)
ROSTER = {
    s.student_id: s
    for s in (
        Student(OWN, "BSc Physics", 1, "full-time", "Physics", "T0001"),
        Student(OTHER, "BA History", 1, "full-time", "History", "T0002"),
        Student(UNSCORED, "BSc Physics", 1, "full-time", "Physics", "T0001"),
    )
}
STUDENT_OWN = Principal(Role.STUDENT, OWN)
STUDENT_OTHER = Principal(Role.STUDENT, OTHER)
STUDENT_OFF = Principal(Role.STUDENT, OFF_ROSTER)  # not in the reference data: nothing
TUTOR_1, TUTOR_2, TUTOR_X = (Principal(Role.TUTOR, t) for t in ("T0001", "T0002", "T9999"))
HOD_PHYSICS = Principal(Role.DEPARTMENT, "hod-physics", "Physics")
HOD_HISTORY = Principal(Role.DEPARTMENT, "hod-history", "History")
CHEMISTRY = Principal(Role.DEPARTMENT, "T0001", "Chemistry")  # sub is a tutor's id: no matter
#: Principal -> the students whose records it may read; it gets 200 for those (engagement:
#: those with an indicator, so not UNSCORED), and 404 for every other target. None: no token.
MATRIX: dict[Principal | None, set[str]] = {
    STUDENT_OWN: {OWN},
    STUDENT_OTHER: {OTHER},
    STUDENT_OFF: set(),
    TUTOR_1: {OWN, UNSCORED},
    TUTOR_2: {OTHER},
    TUTOR_X: set(),
    HOD_PHYSICS: {OWN, UNSCORED},
    HOD_HISTORY: {OTHER},
    CHEMISTRY: set(),
    ADMIN: {OWN, OTHER, UNSCORED},
    None: set(),
}
#: Whose contact preference each may set: the student's own, or an admin for anyone.
SETTABLE: dict[Principal | None, set[str]] = {
    **{p: set() for p in MATRIX},
    STUDENT_OWN: {OWN},
    STUDENT_OTHER: {OTHER},
    ADMIN: {OWN, OTHER, UNSCORED},
}
TUTORS = ("T0001", "T0002", "T9999")
#: Whose tutee lists each may see (a tutor always their own, even if empty).
TUTEE_LISTS: dict[Principal | None, set[str]] = {
    **{p: set() for p in MATRIX},
    TUTOR_1: {"T0001"},
    TUTOR_2: {"T0002"},
    TUTOR_X: {"T9999"},
    HOD_PHYSICS: {"T0001"},
    HOD_HISTORY: {"T0002"},
    ADMIN: {"T0001", "T0002"},
}
PHYSICS_1, HISTORY_1, PHYSICS_2 = ("BSc Physics", 1), ("BA History", 1), ("BSc Physics", 2)
COHORTS = (PHYSICS_1, HISTORY_1, PHYSICS_2)  # PHYSICS_2 has a hash, but nobody in scope
#: Whose distributions each may see: staff with a student in the cohort.
COHORT_VIEWS: dict[Principal | None, set[tuple[str, int]]] = {
    **{p: set() for p in MATRIX},
    TUTOR_1: {PHYSICS_1},
    TUTOR_2: {HISTORY_1},
    HOD_PHYSICS: {PHYSICS_1},
    HOD_HISTORY: {HISTORY_1},
    ADMIN: {PHYSICS_1, HISTORY_1},
}
DISTRIBUTION_HASH = {
    "as_of": "2025-03-14",
    "reference_score": "12.0",
    "policy_version": "2025.1",
    "size": "10",
    **{"high": "1", "good": "2", "partial": "3", "low": "2", "very_low": "2"},
}


def failures(reason: str) -> float:
    return REGISTRY.get_sample_value("leap_api_auth_failures_total", {"reason": reason}) or 0.0


@pytest.fixture
def settings(redis_url: str, redis_prefix: str) -> Settings:
    return Settings(
        redis_url=redis_url, redis_prefix=redis_prefix, kafka_bootstrap=f"127.0.0.1:{free_port()}"
    )


@pytest.fixture
async def audit_pool(postgres_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    async with migrated_pool(postgres_dsn) as pool:
        yield pool


@pytest.fixture
async def kafka_settings(
    kafka_bootstrap: str, redis_url: str, redis_prefix: str, topic_prefix: str
) -> Settings:
    """Real Kafka, with reference topics of this test's own."""
    settings = Settings(
        redis_url=redis_url,
        redis_prefix=redis_prefix,
        kafka_bootstrap=kafka_bootstrap,
        partitions=1,
        **isolated_worker(topic_prefix, Path("unused")),
    )
    await ensure_topics(settings)
    return settings


@pytest.fixture
async def client(
    kafka_settings: Settings,
    redis_url: str,
    redis_prefix: str,
    postgres_dsn: str,
    audit_pool: asyncpg.Pool,
) -> AsyncIterator[httpx.AsyncClient]:
    """The API on real Redis, Kafka (the preference topic of this test) and PostgreSQL (an
    audit log of this test's own)."""
    settings = kafka_settings.model_copy(update={"postgres_dsn": postgres_dsn})
    store = aioredis.Redis.from_url(redis_url)
    for sid in (OWN, OTHER, OFF_ROSTER):
        await store.hset(indicator_key(redis_prefix, sid), mapping={**INDICATOR, "student_id": sid})
    for course, year in COHORTS:
        await store.hset(cohort_key(redis_prefix, course, year), mapping=DISTRIBUTION_HASH)
    await store.aclose()
    async with serve(settings, roster=ROSTER, headers={}) as client:
        yield client


def headers_for(principal: Principal | None) -> dict[str, str]:
    return {} if principal is None else bearer(principal)


def assert_unauthorized(response: httpx.Response, error: bool = True) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == "urn:leap:problem:unauthorized"
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith('Bearer realm="leap"')
    assert ('error="invalid_token"' in challenge) is error
    assert "score" not in response.text


def test_every_route_is_in_the_matrix() -> None:
    routes = {r.path for r in create_app(Settings()).routes if isinstance(r, Route)}
    classified = {ENGAGEMENT, HISTORY, CONTACT, TUTEES, DISTRIBUTION}
    assert routes == set(PUBLIC) | classified, "classify the new route here"


#: (method, route) -> who gets a 200 for which student.
STUDENT_ROUTES: dict[tuple[str, str], dict[Principal | None, set[str]]] = {
    ("GET", ENGAGEMENT): {p: readable - {UNSCORED} for p, readable in MATRIX.items()},
    ("GET", HISTORY): MATRIX,
    ("GET", CONTACT): MATRIX,
    ("PUT", CONTACT): SETTABLE,
}
#: What authorisation decided for each student route (engagement: before Redis is read).
ALLOWED: dict[tuple[str, str], dict[Principal | None, set[str]]] = {
    **{route: MATRIX for route in STUDENT_ROUTES},
    ("PUT", CONTACT): SETTABLE,
}


async def audit_rows(pool: asyncpg.Pool) -> Counter[tuple[str, str, str, str, bool]]:
    rows = await pool.fetch(
        "SELECT actor_sub, actor_role, student_id, endpoint, allowed FROM leap.audit_log"
    )
    return Counter(tuple(row) for row in rows)  # type: ignore[misc]


async def test_every_route_role_and_student(
    client: httpx.AsyncClient, audit_pool: asyncpg.Pool
) -> None:
    """Each principal against each personal route and target: 200 exactly where the rules
    say, the same 404 everywhere else, 401 without a token; and the audit log holds one row
    per staff request naming a student (allowed or not) and one per tutee listed."""
    forbidden, missing = failures("forbidden"), failures("missing")
    leaks: list[tuple[Principal | None, str, str, int]] = []
    not_found: dict[str, dict[str, set[str]]] = {}
    audited: Counter[tuple[str, str, str, str, bool]] = Counter()
    requests = 0

    def expect(
        principal: Principal | None, route: str, target: str, ok: bool, response: httpx.Response
    ) -> bool:
        """Checks the status; True for a 200 whose body is then checked by the caller."""
        if principal is None:
            assert_unauthorized(response, error=False)
        elif ok:
            assert response.status_code == 200, (principal, route, target, response.text)
            return True
        elif response.status_code != 404:
            leaks.append((principal, route, target, response.status_code))
        else:
            body = response.text.replace(target, "<target>")
            key = body + response.headers["cache-control"]
            not_found.setdefault(route, {}).setdefault(key, set()).add(target)
        return False

    for principal in MATRIX:
        headers = headers_for(principal)
        staff = principal is not None and principal.role is not Role.STUDENT
        for path, status in PUBLIC.items():
            assert (await client.get(path, headers=headers)).status_code == status, path
        for (method, route), readable in STUDENT_ROUTES.items():
            for sid in TARGETS:
                requests += 1
                response = await client.request(
                    method,
                    route.format(student_id=sid),
                    headers=headers,
                    json={"contact_allowed": True} if method == "PUT" else None,
                )
                if expect(
                    principal, f"{method} {route}", sid, sid in readable[principal], response
                ):
                    assert response.json()["student_id"] == sid
                if staff:
                    assert principal is not None
                    allowed = sid in ALLOWED[(method, route)][principal]
                    audited[(principal.sub, principal.role, sid, f"{method} {route}", allowed)] += 1
        for tutor in TUTORS:
            requests += 1
            response = await client.get(TUTEES.format(tutor_id=tutor), headers=headers)
            if expect(principal, TUTEES, tutor, tutor in TUTEE_LISTS[principal], response):
                assert principal is not None
                listed = {t["student_id"] for t in response.json()["tutees"]}
                mine = {sid for sid, s in ROSTER.items() if s.tutor_id == tutor}
                assert listed == mine & MATRIX[principal], (principal, tutor)
                for sid in listed:
                    audited[(principal.sub, principal.role, sid, f"GET {TUTEES}", True)] += 1
        for course, year in COHORTS:
            requests += 1
            response = await client.get(
                DISTRIBUTION.format(course=course, year=year), headers=headers
            )
            ok = (course, year) in COHORT_VIEWS[principal]
            if expect(principal, DISTRIBUTION, f"{course} year {year}", ok, response):
                assert response.json()["counts"]["partial"] == 3
    assert leaks == []
    # One 404 per route for the unknown, the unscored and the not-yours: nothing tells
    # them apart.
    for route, bodies in not_found.items():
        assert len(bodies) == 1, (route, bodies)
    assert next(iter(not_found[f"GET {ENGAGEMENT}"].values())) == set(TARGETS)
    assert await audit_rows(audit_pool) == audited
    # Counted: valid tokens refused a student on the roster (unknown ones are just 404s),
    # a tutor's existing tutees, or a cohort with students.
    denied = 0
    for principal in MATRIX:
        if principal is None:
            continue
        denied += sum(len(set(ROSTER) - readable[principal]) for readable in ALLOWED.values())
        if principal.role is not Role.ADMIN:
            denied += len({"T0001", "T0002"} - TUTEE_LISTS[principal])
            denied += len({PHYSICS_1, HISTORY_1} - COHORT_VIEWS[principal])
    assert failures("forbidden") - forbidden == denied
    assert failures("missing") - missing == requests / len(MATRIX)


def forged_hs256(secret: bytes, claims: dict[str, Any]) -> str:
    """HS256 keyed with the API's own public key: the classic algorithm-confusion attack."""

    def part(data: bytes) -> str:
        return jwt.utils.base64url_encode(data).decode()

    header = part(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    signing_input = f"{header}.{part(json.dumps(claims).encode())}"
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{part(mac)}"


async def test_bad_tokens_are_401_problems_counted_by_reason(client: httpx.AsyncClient) -> None:
    now = int(time.time())
    claims = {
        "iss": TEST_ISSUER,
        "aud": TEST_AUDIENCE,
        "sub": "root",
        "role": "admin",
        "exp": now + 300,
    }
    key = signing_key().read_bytes()
    public = signing_key().with_name("signing-key.pub.pem").read_bytes()
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    none_header = jwt.utils.base64url_encode(b'{"alg":"none"}').decode()
    payload = jwt.utils.base64url_encode(json.dumps(claims).encode()).decode()
    cases: dict[str, tuple[str | None, str]] = {
        "no header": (None, "missing"),
        "basic auth": ("Basic cm9vdDpyb290", "missing"),
        "not a jwt": ("Bearer not-a-jwt", "malformed"),
        "no role": (
            f"Bearer {jwt.encode({**claims, 'role': None}, key, 'RS256')}",
            "malformed",
        ),
        "expired": (
            f"Bearer {jwt.encode({**claims, 'exp': now - 3600}, key, 'RS256')}",
            "expired",
        ),
        "alg none": (f"Bearer {none_header}.{payload}.", "algorithm"),
        "HS256 with the public key": (f"Bearer {forged_hs256(public, claims)}", "algorithm"),
        "wrong audience": (
            f"Bearer {jwt.encode({**claims, 'aud': 'moodle'}, key, 'RS256')}",
            "wrong_audience",
        ),
        "wrong issuer": (
            f"Bearer {jwt.encode({**claims, 'iss': 'https://evil.test'}, key, 'RS256')}",
            "wrong_issuer",
        ),
        "bad signature": (f"Bearer {jwt.encode(claims, stranger, 'RS256')}", "bad_signature"),
    }
    for name, (authorization, reason) in cases.items():
        before = failures(reason)
        headers = {} if authorization is None else {"Authorization": authorization}
        for sid in (OWN, UNKNOWN):  # 401 before the roster is consulted: no existence oracle
            response = await client.get(f"/v1/students/{sid}/engagement", headers=headers)
            assert_unauthorized(response, error=reason != "missing")
        assert failures(reason) - before == 2, name
    valid = {"Authorization": f"Bearer {jwt.encode(claims, key, 'RS256')}"}
    assert (await client.get(f"/v1/students/{OWN}/engagement", headers=valid)).status_code == 200


class _JwksServer(ThreadingHTTPServer):
    document: bytes = b"{}"


class _JwksHandler(BaseHTTPRequestHandler):
    server: _JwksServer

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(self.server.document)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def jwks_server() -> Iterator[_JwksServer]:
    server = _JwksServer(("127.0.0.1", 0), _JwksHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


async def test_jwks(settings: Settings, jwks_server: _JwksServer, redis_prefix: str) -> None:
    """Keys by kid from a real JWKS endpoint; kept through an IdP outage; 503 without them."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
    jwks_server.document = json.dumps({"keys": [{**jwk, "kid": "k1", "use": "sig"}]}).encode()
    url = f"http://127.0.0.1:{jwks_server.server_address[1]}/jwks.json"
    jwks_settings = settings.model_copy(
        update={"auth_issuer": "https://idp.test", "auth_audience": "leap", "auth_jwks_url": url}
    )
    claims = {"iss": "https://idp.test", "aud": "leap", "sub": "root", "role": "admin"}

    def signed(kid: str | None) -> dict[str, str]:
        headers = {"kid": kid} if kid else None
        body = {**claims, "exp": int(time.time()) + 60}
        return {"Authorization": f"Bearer {jwt.encode(body, key, 'RS256', headers=headers)}"}

    path = f"/v1/students/{UNKNOWN}/engagement"  # 404 = authenticated, as admin
    before = failures("bad_signature")
    async with serve(jwks_settings, roster=ROSTER, headers={}) as client:
        assert (await client.get(path, headers=signed("k1"))).status_code == 404
        assert_unauthorized(await client.get(path, headers=signed("k2")))
        assert_unauthorized(await client.get(path, headers=signed(None)))
        jwks_server.shutdown()  # the IdP goes away: the cached key set still serves
        assert (await client.get(path, headers=signed("k1"))).status_code == 404
    assert failures("bad_signature") - before == 1
    async with serve(jwks_settings, roster=ROSTER, headers={}) as client:  # a fresh process
        response = await asyncio.wait_for(client.get(path, headers=signed("k1")), 10)
    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
    assert response.json()["type"] == "urn:leap:problem:keys-unavailable"


async def test_no_way_to_check_tokens_no_start(settings: Settings) -> None:
    unconfigured = create_app(settings, ROSTER)
    with pytest.raises(AuthConfigError, match="LEAP_AUTH_ISSUER"):
        async with unconfigured.router.lifespan_context(unconfigured):
            pass


@pytest.mark.parametrize(
    ("students", "error"),
    [(None, KafkaConnectionError), (Path("/nonexistent/students.csv"), ValueError)],
)
async def test_no_roster_no_start(
    settings: Settings, students: Path | None, error: type[Exception]
) -> None:
    """No reference data (the topics' broker is unreachable, or the file is): no start."""
    app = create_app(with_test_auth(settings).model_copy(update={"students": students}))
    with pytest.raises(error):
        async with app.router.lifespan_context(app):
            pass


async def test_roster_is_the_in_scope_students_of_the_file(
    kafka_settings: Settings, tmp_path: Path, redis_url: str, redis_prefix: str
) -> None:
    """Students outside the institution's scope have no place in the API, even for admins."""
    students = tmp_path / "students.csv"
    students.write_text(
        "student_id,course,year,mode,department,tutor_id\n"
        f"{OWN},PHYS,1,full-time,Physics,T0001\n"
        f"{OTHER},HIST,1,full-time,Physics,T0001\n"
    )
    institution = tmp_path / "institution.toml"
    institution.write_text('[scope]\ncohorts = ["PHYS:1-3"]\n')
    store = aioredis.Redis.from_url(redis_url)
    for sid in (OWN, OTHER):
        await store.hset(indicator_key(redis_prefix, sid), mapping={**INDICATOR, "student_id": sid})
    await store.aclose()
    files = kafka_settings.model_copy(update={"students": students, "institution": institution})
    for principal in (Principal(Role.TUTOR, "T0001"), ADMIN):
        async with serve(files, headers=bearer(principal)) as client:
            assert (await client.get(f"/v1/students/{OWN}/engagement")).status_code == 200
            assert (await client.get(f"/v1/students/{OTHER}/engagement")).status_code == 404
