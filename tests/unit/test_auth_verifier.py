"""The token verifier: what it accepts, every way a token is refused, and bad configuration.

Real keys and real signatures throughout (PyJWT + cryptography); no network (the JWKS path is
tested against a real HTTP server in tests/integration/test_api_auth.py).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from api.access import Principal, Role
from api.auth import AuthConfigError, AuthError, Verifier, bearer_token
from leap.settings import Settings

ISSUER = "https://idp.example.ac.uk"
AUDIENCE = "leap-api"
SECRET = "s" * 32


def pem_public(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture
def rsa_file(tmp_path: Path, rsa_key: rsa.RSAPrivateKey) -> Path:
    path = tmp_path / "rsa.pub.pem"
    path.write_bytes(pem_public(rsa_key))
    return path


@pytest.fixture
def verifier(rsa_file: Path) -> Verifier:
    return Verifier.from_settings(settings(auth_public_key_file=rsa_file))


def settings(**auth: Any) -> Settings:
    return Settings(**{"auth_issuer": ISSUER, "auth_audience": AUDIENCE, **auth})


def claims(**changes: Any) -> dict[str, Any]:
    now = int(time.time())
    base = {"iss": ISSUER, "aud": AUDIENCE, "sub": "S1", "role": "student", "exp": now + 60}
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def sign(
    key: Any, alg: str = "RS256", headers: dict[str, Any] | None = None, **changes: Any
) -> str:
    return jwt.encode(claims(**changes), key, algorithm=alg, headers=headers)


def _part(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned(**changes: Any) -> str:
    """An ``alg: none`` token, written by hand as an attacker would."""
    header = json.dumps({"alg": "none", "typ": "JWT"}).encode()
    return f"{_part(header)}.{_part(json.dumps(claims(**changes)).encode())}."


def forged_hs256(secret: bytes, **changes: Any) -> str:
    """HS256 by hand, since PyJWT refuses to key HMAC with a PEM: the attacker would not."""
    header = json.dumps({"alg": "HS256", "typ": "JWT"}).encode()
    signing_input = f"{_part(header)}.{_part(json.dumps(claims(**changes)).encode())}"
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_part(mac)}"


def refused(verifier: Verifier, token: str) -> str:
    with pytest.raises(AuthError) as caught:
        verifier.verify(token)
    return caught.value.reason


@pytest.mark.parametrize(
    ("extra", "principal"),
    [
        ({}, Principal(Role.STUDENT, "S1")),
        ({"role": "tutor", "sub": "T1"}, Principal(Role.TUTOR, "T1")),
        (
            {"role": "department", "sub": "hod", "department": "Physics"},
            Principal(Role.DEPARTMENT, "hod", "Physics"),
        ),
        ({"role": "admin", "sub": "root", "department": "ignored"}, Principal(Role.ADMIN, "root")),
        ({"aud": ["other", AUDIENCE]}, Principal(Role.STUDENT, "S1")),  # one of several
    ],
)
def test_accepts(
    verifier: Verifier, rsa_key: rsa.RSAPrivateKey, extra: dict[str, Any], principal: Principal
) -> None:
    assert verifier.verify(sign(rsa_key, **extra)) == principal


def test_accepts_an_expiry_within_the_leeway(
    verifier: Verifier, rsa_key: rsa.RSAPrivateKey
) -> None:
    assert verifier.verify(sign(rsa_key, exp=int(time.time()) - 10)).sub == "S1"


def test_refusals(verifier: Verifier, rsa_key: rsa.RSAPrivateKey, rsa_file: Path) -> None:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = int(time.time())
    good = sign(rsa_key)
    head, body, signature = good.split(".")
    admin_body = sign(rsa_key, role="admin").split(".")[1]
    cases = {
        "garbage": ("not a token", "malformed"),
        "two parts": (f"{head}.{body}", "malformed"),
        "bad base64": (f"{head}.{body}!.{signature}", "malformed"),
        "expired": (sign(rsa_key, exp=now - 31), "expired"),
        "not yet valid": (sign(rsa_key, nbf=now + 3600), "expired"),
        "issued in the future": (sign(rsa_key, iat=now + 3600), "expired"),
        "wrong audience": (sign(rsa_key, aud="someone-else"), "wrong_audience"),
        "wrong issuer": (sign(rsa_key, iss="https://evil.example"), "wrong_issuer"),
        "other key": (sign(other), "bad_signature"),
        "tampered claims": (f"{head}.{admin_body}.{signature}", "bad_signature"),
        "alg none": (unsigned(), "algorithm"),
        "alg none, admin": (unsigned(role="admin"), "algorithm"),
        # The classic key confusion: HS256 keyed with the RS256 public key everyone has.
        "HS256 when RS256 pinned": (forged_hs256(rsa_file.read_bytes()), "algorithm"),
        "ES256 when RS256 pinned": (
            sign(ec.generate_private_key(ec.SECP256R1()), "ES256"),
            "algorithm",
        ),
        "no exp": (sign(rsa_key, exp=None), "malformed"),
        "no iss": (sign(rsa_key, iss=None), "malformed"),
        "no aud": (sign(rsa_key, aud=None), "malformed"),
        "no sub": (sign(rsa_key, sub=None), "malformed"),
        "sub not a string": (sign(rsa_key, sub=1000001), "malformed"),
        "empty sub": (sign(rsa_key, sub=""), "malformed"),
        "no role": (sign(rsa_key, role=None), "malformed"),
        "unknown role": (sign(rsa_key, role="superuser"), "malformed"),
        "role list": (sign(rsa_key, role=["admin"]), "malformed"),
        "department without department": (sign(rsa_key, role="department"), "malformed"),
        "department not a string": (
            sign(rsa_key, role="department", department=["Physics"]),
            "malformed",
        ),
    }
    got = {name: refused(verifier, token) for name, (token, _) in cases.items()}
    assert got == {name: reason for name, (_, reason) in cases.items()}


def test_leeway_is_configurable(rsa_file: Path, rsa_key: rsa.RSAPrivateKey) -> None:
    strict = Verifier.from_settings(settings(auth_public_key_file=rsa_file, auth_leeway_seconds=0))
    assert refused(strict, sign(rsa_key, exp=int(time.time()) - 2)) == "expired"


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
def test_weak_rsa_keys_are_refused(tmp_path: Path) -> None:
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    path = tmp_path / "weak.pem"
    path.write_bytes(pem_public(weak))
    verifier = Verifier.from_settings(settings(auth_public_key_file=path))
    assert refused(verifier, sign(weak)) == "algorithm"


def test_es256_with_a_pem_key(tmp_path: Path, ec_key: ec.EllipticCurvePrivateKey) -> None:
    path = tmp_path / "ec.pem"
    path.write_bytes(pem_public(ec_key))
    verifier = Verifier.from_settings(
        settings(auth_public_key_file=path, auth_algorithms=["ES256"])
    )
    assert verifier.verify(sign(ec_key, "ES256")) == Principal(Role.STUDENT, "S1")
    assert refused(verifier, sign(rsa.generate_private_key(65537, 2048))) == "algorithm"


def test_hs256_only_when_configured(rsa_file: Path, rsa_key: rsa.RSAPrivateKey) -> None:
    both = Verifier.from_settings(
        settings(
            auth_public_key_file=rsa_file,
            auth_algorithms=["RS256", "HS256"],
            auth_hs256_secret=SECRET,
        )
    )
    assert both.verify(sign(SECRET, "HS256")) == Principal(Role.STUDENT, "S1")
    assert both.verify(sign(rsa_key)) == Principal(Role.STUDENT, "S1")
    # HS256 has its own key: the public key as an HMAC secret proves nothing.
    assert refused(both, forged_hs256(rsa_file.read_bytes())) == "bad_signature"
    assert both.verify(forged_hs256(SECRET.encode())).sub == "S1"  # the forger is faithful
    assert refused(both, sign("t" * 32, "HS256")) == "bad_signature"


@pytest.mark.parametrize(
    ("auth", "message"),
    [
        ({"auth_issuer": None}, "LEAP_AUTH_ISSUER"),
        ({"auth_algorithms": []}, "empty"),
        ({}, "exactly one of"),  # RS256 by default, but no key
        ({"auth_jwks_url": "https://idp/jwks", "public": True}, "exactly one of"),
        ({"auth_algorithms": ["HS256"]}, "HS256"),
        ({"auth_algorithms": ["HS256"], "auth_hs256_secret": "short"}, "32 bytes"),
        ({"public": True, "auth_hs256_secret": SECRET}, "HS256"),
        ({"auth_algorithms": ["HS256"], "auth_hs256_secret": SECRET, "public": True}, "no RS256"),
        ({"public": True, "auth_algorithms": ["ES256"]}, "not a key for ES256"),
        ({"auth_public_key_file": Path("/nonexistent.pem")}, "nonexistent"),
        ({"auth_jwks_url": "file:///etc/passwd"}, "LEAP_AUTH_JWKS_URL"),
    ],
)
def test_unusable_configuration(rsa_file: Path, auth: dict[str, Any], message: str) -> None:
    if auth.pop("public", False):
        auth["auth_public_key_file"] = rsa_file
    with pytest.raises(AuthConfigError, match=message):
        Verifier.from_settings(settings(**auth))


def test_configuration_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, rsa_file: Path, rsa_key: rsa.RSAPrivateKey
) -> None:
    monkeypatch.setenv("LEAP_AUTH_ISSUER", ISSUER)
    monkeypatch.setenv("LEAP_AUTH_ALGORITHMS", '["RS256", "HS256"]')
    monkeypatch.setenv("LEAP_AUTH_PUBLIC_KEY_FILE", str(rsa_file))
    monkeypatch.setenv("LEAP_AUTH_HS256_SECRET", SECRET)
    from_env = Settings()
    assert SECRET not in repr(from_env)  # a SecretStr: never logged with the settings
    verifier = Verifier.from_settings(from_env)
    assert verifier.algorithms == ["RS256", "HS256"]
    assert verifier.verify(sign(SECRET, "HS256", aud="leap-api")).sub == "S1"


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        (None, "missing"),
        ("Basic dXNlcjpwYXNz", "missing"),
        ("Bearer", "malformed"),
        ("Bearer ", "malformed"),
        ("Bearer a b", "malformed"),
    ],
)
def test_bearer_header_refusals(header: str | None, reason: str) -> None:
    with pytest.raises(AuthError) as caught:
        bearer_token(header)
    assert caught.value.reason == reason


@pytest.mark.parametrize(
    "header", ["Bearer abc.def.ghi", "bearer abc.def.ghi", "BEARER  abc.def.ghi"]
)
def test_bearer_header(header: str) -> None:
    assert bearer_token(header) == "abc.def.ghi"


class DecodeCalls:
    """Counts real signature checks (``jwt.decode``), to tell them from cache hits."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        real = jwt.decode

        def counting(*args: Any, **kwargs: Any) -> Any:
            self.count += 1
            return real(*args, **kwargs)

        monkeypatch.setattr(jwt, "decode", counting)


def test_a_verified_token_is_remembered_and_only_that_token(
    verifier: Verifier, rsa_key: rsa.RSAPrivateKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    decodes = DecodeCalls(monkeypatch)
    expires = int(time.time()) + 60
    token = sign(rsa_key, exp=expires)
    assert verifier.verify(token) == verifier.verify(token) == Principal(Role.STUDENT, "S1")
    assert verifier.verify_local(token) == Principal(Role.STUDENT, "S1")
    assert decodes.count == 1
    # Same claims, other signature: a different string, checked in full, refused each time.
    forged = sign(rsa.generate_private_key(public_exponent=65537, key_size=2048), exp=expires)
    assert forged.split(".")[:2] == token.split(".")[:2]
    assert refused(verifier, forged) == refused(verifier, forged) == "bad_signature"
    assert decodes.count == 3
    assert len(verifier.verified) == 1  # failures are never remembered
    assert verifier.verify(sign(rsa_key, sub="S2")) == Principal(Role.STUDENT, "S2")
    assert decodes.count == 4


def test_a_remembered_token_is_refused_once_expired(
    rsa_file: Path, rsa_key: rsa.RSAPrivateKey
) -> None:
    strict = Verifier.from_settings(settings(auth_public_key_file=rsa_file, auth_leeway_seconds=0))
    expires = int(time.time()) + 2
    token = sign(rsa_key, exp=expires)
    assert strict.verify(token).sub == "S1"
    time.sleep(max(0.0, expires - time.time()) + 0.05)
    assert refused(strict, token) == "expired"
    with pytest.raises(AuthError):
        strict.verify_local(token)


def test_a_token_valid_only_within_the_leeway_is_checked_every_time(
    verifier: Verifier, rsa_key: rsa.RSAPrivateKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    decodes = DecodeCalls(monkeypatch)
    token = sign(rsa_key, exp=int(time.time()) - 5)
    assert verifier.verify(token).sub == verifier.verify(token).sub == "S1"
    assert decodes.count == 2


def jwks_verifier(rsa_key: rsa.RSAPrivateKey) -> tuple[Verifier, dict[str, Any]]:
    """A verifier for a JWKS URL where nothing listens: any fetch would fail."""
    verifier = Verifier.from_settings(settings(auth_jwks_url="http://127.0.0.1:9/jwks.json"))
    jwk = jwt.algorithms.RSAAlgorithm.to_jwk(rsa_key.public_key(), as_dict=True)
    return verifier, {"keys": [{**jwk, "kid": "k1", "use": "sig"}]}


def test_verify_local_uses_a_fresh_jwks_and_never_fetches(rsa_key: rsa.RSAPrivateKey) -> None:
    verifier, key_set = jwks_verifier(rsa_key)
    assert verifier.jwks is not None and verifier.jwks.jwk_set_cache is not None
    k1 = sign(rsa_key, headers={"kid": "k1"})
    assert verifier.verify_local(k1) is None  # never fetched: only verify() can tell
    verifier.jwks.jwk_set_cache.put(key_set)
    assert verifier.verify_local(k1) == Principal(Role.STUDENT, "S1")
    assert verifier.verify_local(sign(rsa_key, headers={"kid": "k2"})) is None  # a new key?
    with pytest.raises(AuthError) as caught:
        verifier.verify_local(sign(rsa_key, sub="S2"))
    assert caught.value.reason == "malformed"  # no kid
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with pytest.raises(AuthError) as caught:
        verifier.verify_local(sign(other, headers={"kid": "k1"}))
    assert caught.value.reason == "bad_signature"
    verifier.jwks.jwk_set_cache.put(None)  # expired or dropped: fetching needed again
    assert verifier.verify_local(sign(rsa_key, sub="S3", headers={"kid": "k1"})) is None
    assert verifier.verify_local(k1) == Principal(Role.STUDENT, "S1")  # remembered
