"""Development API tokens: ``leap token`` signs them with a local RSA key made on first use.

Production tokens come from the university's identity provider; this exists so a developer,
``leap dev`` and the tests can call the API exactly as a portal would, with a real RS256
signature checked by the real verifier. The API accepts these tokens when its
``LEAP_AUTH_PUBLIC_KEY_FILE`` is the key's public half and ``LEAP_AUTH_ISSUER`` its issuer:
:func:`api_environment` says so.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from api.access import Principal, Role
from leap.settings import Settings

__all__ = [
    "DEV_ISSUER",
    "api_environment",
    "dev_key_file",
    "dev_token",
    "ensure_signing_key",
    "mint",
    "public_key_file",
]

#: The issuer of development tokens when LEAP_AUTH_ISSUER is unset.
DEV_ISSUER = "leap-dev"


def dev_key_file(settings: Settings) -> Path:
    """Where ``leap token``'s private key lives (``LEAP_AUTH_DEV_KEY_FILE``)."""
    return settings.auth_dev_key_file or settings.data_dir / "auth" / "dev-signing-key.pem"


def public_key_file(private_key_file: Path) -> Path:
    """The public half's PEM, beside the private key: what the API is configured with."""
    return private_key_file.with_name(private_key_file.name.removesuffix(".pem") + ".pub.pem")


def ensure_signing_key(private_key_file: Path) -> Path:
    """Create an RSA-2048 private key (owner-only) unless it exists, and its public half
    beside it unless that exists; the public key's path."""
    if not private_key_file.exists():
        private_key_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        pem = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        fd = os.open(private_key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(pem)
    public = public_key_file(private_key_file)
    if not public.exists():
        key = serialization.load_pem_private_key(private_key_file.read_bytes(), password=None)
        public.write_bytes(
            key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
    return public


def mint(
    private_key_pem: bytes,
    principal: Principal,
    *,
    issuer: str,
    audience: str,
    ttl: int,
    kid: str | None = None,
) -> str:
    """An RS256 token for ``principal`` valid for ``ttl`` seconds from now."""
    if ttl <= 0:
        raise ValueError("a token's time to live must be positive")
    now = int(time.time())
    claims: dict[str, object] = {
        "iss": issuer,
        "aud": audience,
        "sub": principal.sub,
        "role": str(principal.role),
        "iat": now,
        "exp": now + ttl,
    }
    if principal.department is not None:
        claims["department"] = principal.department
    headers = {"kid": kid} if kid else None
    return jwt.encode(claims, private_key_pem, algorithm="RS256", headers=headers)


def dev_token(
    settings: Settings, role: str, sub: str, department: str | None = None, ttl: int = 3600
) -> str:
    """A development token for the API configured by :func:`api_environment`.

    Raises ValueError for an unknown role, a department role without a department, or
    settings whose API would refuse RS256.
    """
    if "RS256" not in settings.auth_algorithms:
        raise ValueError(
            f"development tokens are RS256, but LEAP_AUTH_ALGORITHMS is {settings.auth_algorithms}"
        )
    try:
        principal = Principal(Role(role), sub, department)
    except ValueError as exc:
        roles = ", ".join(Role)
        raise ValueError(f"{exc} (roles: {roles})") from exc
    private = dev_key_file(settings)
    ensure_signing_key(private)
    return mint(
        private.read_bytes(),
        principal,
        issuer=settings.auth_issuer or DEV_ISSUER,
        audience=settings.auth_audience,
        ttl=ttl,
    )


def api_environment(settings: Settings) -> dict[str, str]:
    """The ``LEAP_AUTH_*`` variables under which the API accepts :func:`dev_token`'s tokens."""
    return {
        "LEAP_AUTH_PUBLIC_KEY_FILE": str(public_key_file(dev_key_file(settings)).resolve()),
        "LEAP_AUTH_ISSUER": settings.auth_issuer or DEV_ISSUER,
        "LEAP_AUTH_AUDIENCE": settings.auth_audience,
    }
