"""``leap token``: development tokens the API, configured as the command says, accepts."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from api.access import Principal, Role
from api.auth import AuthError, Verifier
from leap.cli import app
from leap.settings import Settings
from leap.tokens import DEV_ISSUER, api_environment, dev_key_file, dev_token


def api_settings(environment: dict[str, str]) -> Settings:
    return Settings.model_validate(
        {name.removeprefix("LEAP_").lower(): value for name, value in environment.items()}
    )


def test_tokens_verify_under_the_printed_settings(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    token = dev_token(settings, "department", "hod", "Physics", ttl=60)
    key = dev_key_file(settings)
    assert key == tmp_path / "data" / "auth" / "dev-signing-key.pem"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    environment = api_environment(settings)
    assert environment["LEAP_AUTH_ISSUER"] == DEV_ISSUER
    verifier = Verifier.from_settings(api_settings(environment))
    assert verifier.verify(token) == Principal(Role.DEPARTMENT, "hod", "Physics")

    before = key.read_bytes()
    again = dev_token(settings, "student", "S1000001")  # the key is reused, not replaced
    assert key.read_bytes() == before
    assert verifier.verify(again) == Principal(Role.STUDENT, "S1000001")


def test_tokens_of_another_key_are_refused(tmp_path: Path) -> None:
    ours = Settings(data_dir=tmp_path / "ours")
    theirs = Settings(data_dir=tmp_path / "theirs")
    dev_token(ours, "admin", "me")  # makes our key
    verifier = Verifier.from_settings(api_settings(api_environment(ours)))
    with pytest.raises(AuthError) as caught:
        verifier.verify(dev_token(theirs, "admin", "me"))
    assert caught.value.reason == "bad_signature"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--role", "root", "--sub", "x"], "not a valid Role"),
        (["--role", "department", "--sub", "x"], "department"),
        (["--role", "student", "--sub", "S1", "--ttl", "0"], "positive"),
    ],
)
def test_cli_refuses(tmp_path: Path, args: list[str], message: str) -> None:
    result = CliRunner().invoke(app, ["token", *args], env={"LEAP_DATA_DIR": str(tmp_path)})
    assert result.exit_code == 2
    assert message in result.output


def test_cli_prints_a_token_and_the_api_settings(tmp_path: Path) -> None:
    env = {"LEAP_DATA_DIR": str(tmp_path), "LEAP_AUTH_ISSUER": "https://idp.test"}
    result = CliRunner().invoke(app, ["token", "--role", "tutor", "--sub", "T0001"], env=env)
    assert result.exit_code == 0, result.output
    token = result.stdout.strip()
    settings = Settings(data_dir=tmp_path, auth_issuer="https://idp.test")
    exports = api_environment(settings)
    for name, value in exports.items():
        assert f"export {name}={value}" in result.stderr
    assert Verifier.from_settings(api_settings(exports)).verify(token).sub == "T0001"


def test_cli_refuses_when_rs256_is_not_accepted(tmp_path: Path) -> None:
    env = {"LEAP_DATA_DIR": str(tmp_path), "LEAP_AUTH_ALGORITHMS": '["ES256"]'}
    result = CliRunner().invoke(app, ["token", "--role", "admin", "--sub", "me"], env=env)
    assert result.exit_code == 2
    assert "RS256" in result.output
