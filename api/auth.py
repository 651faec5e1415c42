"""Bearer-token authentication for the query API, and the check each personal route makes.

:class:`Verifier` knows nothing of HTTP: settings in, ``verify(token) -> Principal`` out, or
an :class:`AuthError` naming one of a few bounded reasons. Which algorithms are accepted is
pinned in settings; a token's header only picks among them, and each algorithm has its own
key (a JWKS or PEM public key for RS256/ES256, a shared secret for HS256), so a token can
never make a public key be used as an HMAC secret, nor choose ``none``. ``iss``, ``aud``,
``exp`` and ``sub`` are required. A verified token is remembered until it expires (at most
a minute, ``api.verified_tokens``), since a widget sends the same one with every request.

Verifying is CPU work, done on the event loop when no network fetch is needed (a key file,
an HS256 secret, or a fresh JWKS holding the token's key): handing it to a worker thread
costs more than it takes. Only a JWKS (re)fetch goes to a thread.

:func:`authorize` is what a route handler calls: 401 problem for a bad or missing token,
and 404 — the same answer as for an unknown student — for a student the caller may not
see, so the API never confirms that someone else's record exists. Staff requests are
audited on the way (``api.audit``).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

import jwt
from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from api.access import Principal, Role, can_read_student
from api.audit import audit_staff_read
from api.metrics import AUTH_FAILURES
from api.problems import RETRY_AFTER_SECONDS, ProblemError, problem_type
from api.verified_tokens import VerifiedTokens
from leap.reference import Student
from leap.settings import Settings

__all__ = [
    "REASONS",
    "AuthConfigError",
    "AuthError",
    "KeySetUnavailableError",
    "Reason",
    "Verifier",
    "authenticate",
    "authorize",
    "bearer_token",
    "unknown_student",
]

Reason = Literal[
    "missing",
    "malformed",
    "expired",
    "bad_signature",
    "wrong_audience",
    "wrong_issuer",
    "algorithm",
    "forbidden",
]
REASONS: tuple[Reason, ...] = get_args(Reason)
for _reason in REASONS:  # every reason exported from the start, so rate() sees the first one
    AUTH_FAILURES.labels(_reason)

PublicKey = RSAPublicKey | EllipticCurvePublicKey
ASYMMETRIC = {"RS256": RSAPublicKey, "ES256": EllipticCurvePublicKey}
#: RFC 7518 §3.2: an HS256 key at least as long as the hash output.
MIN_HS256_SECRET_BYTES = 32
#: The JWKS is fetched within a request (then cached for 5 min): fail fast if the IdP hangs.
JWKS_TIMEOUT = 3.0
REALM = "leap"

log = logging.getLogger(__name__)


class AuthConfigError(ValueError):
    """The LEAP_AUTH_* settings cannot verify any token; the API refuses to start."""


class AuthError(Exception):
    """A token was refused; ``reason`` is one of :data:`REASONS` (a metric label)."""

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(detail)
        self.reason: Reason = reason
        self.detail = detail


class KeySetUnavailableError(Exception):
    """The identity provider's JWKS cannot be fetched: the caller is not at fault."""


_REFUSALS: tuple[tuple[type[jwt.PyJWTError], Reason, str], ...] = (
    # Most specific first: InvalidSignatureError is a DecodeError.
    (jwt.ExpiredSignatureError, "expired", "The token has expired."),
    (jwt.ImmatureSignatureError, "expired", "The token is not valid yet."),
    (jwt.InvalidAudienceError, "wrong_audience", "The token is not meant for this API."),
    (jwt.InvalidIssuerError, "wrong_issuer", "The token's issuer is not trusted."),
    (jwt.InvalidSignatureError, "bad_signature", "The token's signature does not verify."),
    (jwt.InvalidAlgorithmError, "algorithm", "The token's algorithm is not accepted."),
    (jwt.InvalidKeyError, "algorithm", "The token's algorithm does not fit the key."),
    (jwt.PyJWTError, "malformed", "The token is malformed or lacks a required claim."),
)


@dataclass(frozen=True)
class Verifier:
    """Checks API tokens against pinned algorithms, issuer, audience and keys."""

    issuer: str
    audience: str
    algorithms: Sequence[str]
    leeway: float
    public_key: PublicKey | None = None
    jwks: jwt.PyJWKClient | None = None
    hs256_secret: bytes | None = None
    verified: VerifiedTokens = field(default_factory=VerifiedTokens, compare=False, repr=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> Verifier:
        """Keys for exactly the pinned algorithms, or an :class:`AuthConfigError` saying why not.

        Reads the key file, so call it at start-up, not per request.
        """
        if not settings.auth_issuer:
            raise AuthConfigError("set LEAP_AUTH_ISSUER to the `iss` of your identity provider")
        algorithms = list(dict.fromkeys(settings.auth_algorithms))
        if not algorithms:
            raise AuthConfigError("LEAP_AUTH_ALGORITHMS is empty: no token could be accepted")
        asymmetric = [a for a in algorithms if a in ASYMMETRIC]
        sources = [s for s in (settings.auth_jwks_url, settings.auth_public_key_file) if s]
        if asymmetric and len(sources) != 1:
            raise AuthConfigError(
                f"{', '.join(asymmetric)} need exactly one of LEAP_AUTH_JWKS_URL and "
                "LEAP_AUTH_PUBLIC_KEY_FILE"
            )
        if sources and not asymmetric:
            raise AuthConfigError("a JWKS or public key is set, but no RS256/ES256 is accepted")
        secret = settings.auth_hs256_secret
        if ("HS256" in algorithms) != (secret is not None):
            raise AuthConfigError(
                "LEAP_AUTH_HS256_SECRET is used if, and only if, LEAP_AUTH_ALGORITHMS has HS256"
            )
        hs256 = secret.get_secret_value().encode() if secret is not None else None
        if hs256 is not None and len(hs256) < MIN_HS256_SECRET_BYTES:
            raise AuthConfigError(
                f"LEAP_AUTH_HS256_SECRET must be at least {MIN_HS256_SECRET_BYTES} bytes"
            )
        public_key = None
        if asymmetric and settings.auth_public_key_file is not None:
            public_key = _load_public_key(settings.auth_public_key_file, asymmetric)
        jwks = None
        if asymmetric and settings.auth_jwks_url:
            try:
                jwks = jwt.PyJWKClient(settings.auth_jwks_url, timeout=JWKS_TIMEOUT)
            except jwt.PyJWKClientError as exc:
                raise AuthConfigError(f"LEAP_AUTH_JWKS_URL: {exc}") from exc
        return cls(
            issuer=settings.auth_issuer,
            audience=settings.auth_audience,
            algorithms=algorithms,
            leeway=settings.auth_leeway_seconds,
            public_key=public_key,
            jwks=jwks,
            hs256_secret=hs256,
        )

    def verify(self, token: str) -> Principal:
        """The token's principal; raises :class:`AuthError` or :class:`KeySetUnavailableError`.

        Blocking when the JWKS needs (re)fetching: in async code, try :meth:`verify_local`
        first and call this from a thread only when that returns None.
        """
        principal = self.verified.get(token)
        if principal is not None:
            return principal
        alg, header = self._header(token)
        return self._check(token, alg, self._key(alg, header))

    def verify_local(self, token: str) -> Principal | None:
        """As :meth:`verify`, without blocking: None when only fetching the JWKS can tell."""
        principal = self.verified.get(token)
        if principal is not None:
            return principal
        alg, header = self._header(token)
        key = self._local_key(alg, header)
        return None if key is None else self._check(token, alg, key)

    def _header(self, token: str) -> tuple[str, dict[str, Any]]:
        """The token's pinned algorithm and its (unverified) header."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise AuthError("malformed", "The token is not a JWS compact serialisation.") from None
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self.algorithms:
            raise AuthError("algorithm", "The token's algorithm is not accepted.")
        return alg, header

    def _check(self, token: str, alg: str, key: Any) -> Principal:
        """Signature and claims checked with ``key``; the principal remembered if valid."""
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[alg],
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway,
                options={
                    "require": ["exp", "iss", "aud", "sub"],
                    "enforce_minimum_key_length": True,  # no RSA under 2048 bits
                },
            )
        except jwt.PyJWTError as exc:
            raise _refusal(exc) from None
        principal = _principal(claims)
        self.verified.put(token, principal, int(claims["exp"]))  # as PyJWT reads ``exp``
        return principal

    def _local_key(self, alg: str, header: dict[str, Any]) -> Any:
        """The key to check the token with, or None if the JWKS must be fetched to find it.

        Reads the JWKS client's cached set directly: its own lookups take a lock that a
        fetching thread may hold for seconds, which the event loop must never wait on.
        """
        if alg == "HS256":
            return self.hs256_secret
        if self.jwks is None:
            return self.public_key
        cache = self.jwks.jwk_set_cache
        key_set = cache.get() if cache is not None else None
        if key_set is None:  # never fetched, or older than its lifespan
            return None
        kid = header.get("kid")
        if not isinstance(kid, str):
            raise AuthError("malformed", "The token names no key (kid).")
        for key in key_set.keys:
            if key.key_id == kid and key.public_key_use in ("sig", None):
                return key
        return None  # perhaps a new key: verify() refetches the set (within its cooldown)

    def _key(self, alg: str, header: dict[str, Any]) -> Any:
        if alg == "HS256":
            return self.hs256_secret
        if self.jwks is None:
            return self.public_key
        try:
            self.jwks.get_signing_keys()  # cached; an outage here is the IdP's, not the caller's
        except (jwt.PyJWKClientError, jwt.PyJWKSetError) as exc:
            log.warning("JWKS unavailable: %s", exc)
            raise KeySetUnavailableError(str(exc)) from exc
        kid = header.get("kid")
        if not isinstance(kid, str):
            raise AuthError("malformed", "The token names no key (kid).")
        try:
            return self.jwks.get_signing_key(kid)
        except jwt.PyJWKClientConnectionError as exc:
            raise KeySetUnavailableError(str(exc)) from exc
        except (jwt.PyJWKClientError, jwt.PyJWKSetError):
            raise AuthError("bad_signature", "The token's key is not in the key set.") from None


def _load_public_key(path: Path, algorithms: Sequence[str]) -> PublicKey:
    try:
        key = load_pem_public_key(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise AuthConfigError(f"LEAP_AUTH_PUBLIC_KEY_FILE {path}: {exc}") from exc
    for alg in algorithms:
        if not isinstance(key, ASYMMETRIC[alg]):
            raise AuthConfigError(f"LEAP_AUTH_PUBLIC_KEY_FILE {path} is not a key for {alg}")
    assert isinstance(key, PublicKey)  # checked just above
    return key


def _refusal(exc: jwt.PyJWTError) -> AuthError:
    """The first matching row of ``_REFUSALS`` (its last row matches every PyJWT error)."""
    return next(AuthError(why, text) for kind, why, text in _REFUSALS if isinstance(exc, kind))


def _principal(claims: dict[str, Any]) -> Principal:
    """The LEAP claims (``role``, ``sub``, ``department``) as a :class:`Principal`."""
    role = claims.get("role")
    department = claims.get("department") if role == Role.DEPARTMENT else None
    if isinstance(role, str) and isinstance(department, str | None):
        with contextlib.suppress(ValueError):  # an unknown role, or an empty id
            return Principal(Role(role), claims["sub"], department)  # PyJWT: sub is a string
    raise AuthError("malformed", "The token's role claims are missing or invalid.")


def bearer_token(authorization: str | None) -> str:
    """The token of an ``Authorization: Bearer <token>`` header (RFC 6750 §2.1)."""
    if authorization is None:
        raise AuthError("missing", "This resource needs a bearer token.")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer":
        raise AuthError("missing", "This resource needs a bearer token (Authorization: Bearer).")
    token = token.strip()
    if not token or " " in token:
        raise AuthError("malformed", "The Authorization header has no single bearer token.")
    return token


def _challenge(error: AuthError) -> str:
    """RFC 6750 §3: no error code when no credentials were sent at all."""
    if error.reason == "missing":
        return f'Bearer realm="{REALM}"'
    return f'Bearer realm="{REALM}", error="invalid_token", error_description="{error.detail}"'


async def authenticate(request: Request) -> Principal:
    """The request's principal, or a 401 problem (503 if the JWKS is unreachable)."""
    verifier: Verifier = request.app.state.verifier
    try:
        token = bearer_token(request.headers.get("authorization"))
        principal = verifier.verify_local(token)
        if principal is None:
            principal = await run_in_threadpool(verifier.verify, token)
        return principal
    except AuthError as exc:
        AUTH_FAILURES.labels(exc.reason).inc()
        raise ProblemError(
            401,
            "Unauthorized",
            exc.detail,
            type_=problem_type("unauthorized"),
            headers={"WWW-Authenticate": _challenge(exc)},
        ) from None
    except KeySetUnavailableError:
        raise ProblemError(
            503,
            "Signing keys unavailable",
            "The identity provider's keys cannot be fetched right now; retry shortly.",
            type_=problem_type("keys-unavailable"),
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        ) from None


def unknown_student(student_id: str) -> ProblemError:
    """The one answer for a student who is unknown, has no indicator, or is not yours."""
    return ProblemError(
        404,
        "Unknown student",
        f"There is no indicator for student {student_id} that you may see.",
        type_=problem_type("unknown-student"),
    )


async def authorize(
    request: Request,
    student_id: str,
    may: Callable[[Principal, Student], bool] = can_read_student,
) -> Principal:
    """The principal, if it ``may`` act on ``student_id``'s record; else a 401 or 404 problem.

    A staff request is audited, allowed or not, before it is answered (a 503 if the audit
    row cannot be written). A student unknown to the roster is a denied one too."""
    principal = await authenticate(request)
    student = request.app.state.roster.get(student_id)
    allowed = student is not None and may(principal, student)
    await audit_staff_read(request, principal, [student_id], allowed)
    if student is None:
        raise unknown_student(student_id)
    if not allowed:
        AUTH_FAILURES.labels("forbidden").inc()
        log.info("Refused %s %s the record of %s", principal.role, principal.sub, student_id)
        raise unknown_student(student_id)
    return principal
